//! Chapter module `contrastive`.
