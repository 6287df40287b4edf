//! densevec-node: the napi-rs bindings of densevec. No math lives here: each function checks
//! what it receives, calls `densevec-core`, and maps errors to `CODE|message` (see `common`).
//! Sync functions borrow typed-array memory for the duration of the call; `…Async` twins copy
//! their inputs first and run on the libuv pool.

#![deny(clippy::unwrap_used)]
// napi-derive registers exports only outside `cfg(test)`; unit-test builds see them as unused.
#![cfg_attr(test, allow(dead_code))]

mod common;
mod runtime;

mod contrastive;
mod curvature;
mod geometry;
mod margin;
mod mechanisms;
mod regularizers;
mod rows;
mod sampling;
mod similarity;
mod statistics;

mod cuda;
mod quantized;

mod corpus;
