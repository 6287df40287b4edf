//! Bindings of the batched row-wise pairs (`dotRows`, `cosineRows`, `l2sqRows`, `l1Rows`).

use crate::args::Mat;
use crate::common::call;
use densevec_core::rows::{pair_rows, PairOp};
use densevec_core::view::MatRef;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// The arguments of a row-wise call: two matrices of the same shape.
#[napi(object, object_to_js = false)]
pub struct PairRowsArgs {
    pub a: Mat,
    pub b: Mat,
}

fn pair<'e>(
    env: &'e Env,
    func: &str,
    op: PairOp,
    args: &PairRowsArgs,
) -> napi::Result<Float32ArraySlice<'e>> {
    call(env, func, |func| {
        let a = args.a.view(func, "a")?;
        let b = MatRef::new(func, "b", &args.b.data, a.rows, a.cols)?;
        pair_rows(func, op, a.data, b.data, a.rows, a.cols)
    })
}

/// Σ_k a_ik b_ik for every row i of two `rows × cols` matrices.
#[napi]
pub fn dot_rows<'e>(env: &'e Env, args: PairRowsArgs) -> napi::Result<Float32ArraySlice<'e>> {
    pair(env, "dotRows", PairOp::Dot, &args)
}

/// Cosine of row i of `a` and row i of `b`, for every row.
#[napi]
pub fn cosine_rows<'e>(env: &'e Env, args: PairRowsArgs) -> napi::Result<Float32ArraySlice<'e>> {
    pair(env, "cosineRows", PairOp::Cosine, &args)
}

/// Squared Euclidean distance of row i of `a` and row i of `b`, for every row.
#[napi(js_name = "l2sqRows")]
pub fn l2sq_rows<'e>(env: &'e Env, args: PairRowsArgs) -> napi::Result<Float32ArraySlice<'e>> {
    pair(env, "l2sqRows", PairOp::L2sq, &args)
}

/// L1 (Manhattan) distance Σ_k |a_ik − b_ik| of row i of `a` and row i of `b`, for every row.
#[napi(js_name = "l1Rows")]
pub fn l1_rows<'e>(env: &'e Env, args: PairRowsArgs) -> napi::Result<Float32ArraySlice<'e>> {
    pair(env, "l1Rows", PairOp::L1, &args)
}
