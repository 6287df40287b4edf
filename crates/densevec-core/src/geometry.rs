//! Chapter module `geometry`.
