//! densevec-node: the napi-rs bindings of densevec. No math lives here: each operation is one
//! entry point taking one argument struct (`#[napi(object)]`: typed arrays, `Option`s for
//! optional inputs, string enums for small name sets), converted once into validated core
//! views (`densevec_core::view`), and run by the one runner (`run.rs`) synchronously (borrowing
//! the caller's memory), as a task on the libuv pool (inputs copied first) or on the GPU.
//! Errors cross as `CODE|message` (see `common`).

#![deny(clippy::unwrap_used)]
// napi-derive registers exports only outside `cfg(test)`; unit-test builds see them as unused.
#![cfg_attr(test, allow(dead_code))]

mod args;
mod common;
mod run;
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

mod corpus;
mod mapguard;

/// Large freed blocks are kept for reuse for a while (`densevec_core::keep`; started, with its
/// limits, by `native_init`).
#[global_allocator]
static ALLOC: densevec_core::keep::KeepLarge = densevec_core::keep::KeepLarge;
