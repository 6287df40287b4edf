//! Bindings of the batched row-wise pairs (`dotRows`, `cosineRows`, `l2sqRows`).

use crate::common::{guard, to_usize};
use densevec_core::rows::{pair_rows, PairOp};
use napi::bindgen_prelude::*;
use napi_derive::napi;

fn run(
    func: &'static str,
    op: PairOp,
    a: &[f32],
    b: &[f32],
    rows: f64,
    cols: f64,
) -> napi::Result<Float32Array> {
    let (r, c) = (to_usize(func, "rows", rows)?, to_usize(func, "cols", cols)?);
    guard(func, || pair_rows(func, op, a, b, r, c)).map(Float32Array::new)
}

/// Σ_k a_ik b_ik for every row i of two `rows × cols` matrices.
#[napi]
pub fn dot_rows(a: &[f32], b: &[f32], rows: f64, cols: f64) -> napi::Result<Float32Array> {
    run("dotRows", PairOp::Dot, a, b, rows, cols)
}

/// Cosine of row i of `a` and row i of `b`, for every row.
#[napi]
pub fn cosine_rows(a: &[f32], b: &[f32], rows: f64, cols: f64) -> napi::Result<Float32Array> {
    run("cosineRows", PairOp::Cosine, a, b, rows, cols)
}

/// Squared Euclidean distance of row i of `a` and row i of `b`, for every row.
#[napi(js_name = "l2sqRows")]
pub fn l2sq_rows(a: &[f32], b: &[f32], rows: f64, cols: f64) -> napi::Result<Float32Array> {
    run("l2sqRows", PairOp::L2sq, a, b, rows, cols)
}
