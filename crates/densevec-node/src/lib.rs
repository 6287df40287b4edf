//! densevec-node: the napi-rs bindings of densevec. No math lives here: each function checks
//! what it receives, calls `densevec-core`, and maps errors to `CODE|message` (see `common`).
//! Sync functions borrow typed-array memory for the duration of the call; `…Async` twins copy
//! their inputs first and run on the libuv pool.

#![deny(clippy::unwrap_used)]

mod common;
mod runtime;

mod similarity;
mod statistics;
mod contrastive;
mod margin;
mod geometry;
mod regularizers;

mod cuda;
