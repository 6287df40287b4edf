//! Chapter module `regularizers`.
