//! Chapter 2: statistics of high-dimensional embeddings.
