//! densevec-core: the algorithms of densevec, one module per chapter, on plain slices.
//!
//! Matrices are row-major `&[f32]` with explicit `rows`/`cols`. Every public function
//! validates what it relies on and returns [`error::Error`] with the public error code instead
//! of panicking. Parallel work runs in [`pool`] and never depends on the thread count.

pub mod alloc;
pub mod error;
pub mod keep;
pub mod pool;

pub mod contrastive;
pub mod curvature;
pub mod geometry;
pub(crate) mod lossgemm;
pub mod margin;
pub mod mechanisms;
pub mod precision;
pub mod quantized;
pub mod regularizers;
pub mod rows;
pub mod sampling;
pub mod similarity;
pub mod statistics;
#[cfg(test)]
mod testdata;
pub mod topk;
pub mod view;

pub use error::{Code, Error, Result};
