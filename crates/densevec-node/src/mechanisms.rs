//! Bindings of the chapter 6 additions: soft thresholding, the affine part and backward pass
//! of batch normalization, and the running-mean lag.

use crate::common::{guard, to_usize};
use densevec_core::mechanisms as mech;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// sign(x)·max(|x| − λ, 0) of every entry, as a new buffer.
#[napi]
pub fn soft_threshold(m: &[f32], rows: f64, cols: f64, lambda: f64) -> napi::Result<Float32Array> {
    const F: &str = "softThreshold";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    guard(F, || mech::soft_threshold(m, n, d, lambda)).map(Float32Array::new)
}

/// sign(x)·max(|x| − λ, 0) of every entry, in place.
#[napi]
pub fn soft_threshold_in_place(
    mut m: Float32ArraySlice,
    rows: f64,
    cols: f64,
    lambda: f64,
) -> napi::Result<()> {
    const F: &str = "softThresholdInPlace";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    // SAFETY: the caller's array is alive and not touched by anything else during this
    // synchronous call.
    let data = unsafe { m.as_mut() };
    guard(F, || mech::soft_threshold_in_place(data, n, d, lambda))
}

/// y ← y·weight + bias per column, in place.
#[napi]
pub fn batch_norm_affine_in_place(
    mut y: Float32ArraySlice,
    rows: f64,
    cols: f64,
    weight: &[f32],
    bias: &[f32],
) -> napi::Result<()> {
    const F: &str = "BatchNorm.forward";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    // SAFETY: `y` is the freshly returned output of the forward pass, alive for this call and
    // not aliased by `weight` or `bias`, which are only read.
    let data = unsafe { y.as_mut() };
    guard(F, || {
        mech::batch_norm_affine_in_place(data, n, d, weight, bias)
    })
}

/// `{ gradX, gradWeight, gradBias }` of a training-mode batch norm.
#[napi(object)]
pub struct BatchNormGradsResult {
    pub grad_x: Float32Array,
    pub grad_weight: Float32Array,
    pub grad_bias: Float32Array,
}

/// Backward pass of a training-mode batch norm (input `x`, the forward's weight — empty for a
/// layer without affine parameters — and eps).
#[napi]
pub fn batch_norm_backward(
    x: &[f32],
    grad_out: &[f32],
    rows: f64,
    cols: f64,
    weight: &[f32],
    eps: f64,
) -> napi::Result<BatchNormGradsResult> {
    const F: &str = "BatchNorm.backward";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    let w = if weight.is_empty() {
        None
    } else {
        Some(weight)
    };
    let g = guard(F, || mech::batch_norm_backward(x, grad_out, n, d, w, eps))?;
    Ok(BatchNormGradsResult {
        grad_x: Float32Array::new(g.grad_x),
        grad_weight: Float32Array::new(g.grad_weight),
        grad_bias: Float32Array::new(g.grad_bias),
    })
}

/// Steady-state lag v·(1 − μ)/μ of a running mean behind a drifting batch mean.
#[napi]
pub fn batch_norm_lag(momentum: f64, drift_per_step: f64) -> napi::Result<f64> {
    guard("batchNormLag", || {
        mech::batch_norm_lag(momentum, drift_per_step)
    })
}
