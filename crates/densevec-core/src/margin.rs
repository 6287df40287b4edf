//! Chapter module `margin`.
