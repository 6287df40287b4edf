//! Bindings of chapter 4 (margin losses) and of the cross-entropy and penalties of chapter 6.

use crate::common::{copy, guard, to_usize, typed, IntoJs, Job};
use densevec_core::margin::{self as mg, MarginKind, MarginOpts};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// `{ loss, gradX, gradW, logits, gradScale, angularMargins }` of marginSoftmax (row-major buffers).
#[napi(object, object_from_js = false)]
pub struct MarginSoftmaxResult<'e> {
    pub loss: f64,
    pub grad_x: Float32ArraySlice<'e>,
    pub grad_w: Float32ArraySlice<'e>,
    pub logits: Float32ArraySlice<'e>,
    pub grad_scale: f64,
    pub angular_margins: Float32ArraySlice<'e>,
}

impl IntoJs for mg::MarginSoftmax {
    type Js<'e> = MarginSoftmaxResult<'e>;
    fn into_js<'e>(self, env: &'e Env, func: &str) -> napi::Result<MarginSoftmaxResult<'e>> {
        Ok(MarginSoftmaxResult {
            loss: self.loss,
            grad_x: typed(env, func, "gradX", &self.grad_x)?,
            grad_w: typed(env, func, "gradW", &self.grad_w)?,
            logits: typed(env, func, "logits", &self.logits)?,
            grad_scale: self.grad_scale,
            angular_margins: typed(env, func, "angularMargins", &self.angular_margins)?,
        })
    }
}

/// `{ loss, grad }` of the cross-entropy and the penalties.
#[napi(object, object_from_js = false)]
pub struct LossGradResult<'e> {
    pub loss: f64,
    pub grad: Float32ArraySlice<'e>,
}

fn lg<'e>(env: &'e Env, func: &str, r: mg::LossGrad) -> napi::Result<LossGradResult<'e>> {
    Ok(LossGradResult {
        loss: r.loss,
        grad: typed(env, func, "the gradient", &r.grad)?,
    })
}

pub(crate) fn opts(
    func: &str,
    kind: u32,
    scale: f64,
    margin: f64,
    label_smoothing: f64,
) -> densevec_core::Result<MarginOpts> {
    Ok(MarginOpts {
        kind: MarginKind::from_code(func, kind)?,
        scale,
        margin,
        label_smoothing,
    })
}

/// Margin softmax; kind 0 normalized, 1 cosface, 2 arcface (defaults applied by the caller).
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn margin_softmax<'e>(
    env: &'e Env,
    x: &[f32],
    x_rows: f64,
    w: &[f32],
    w_rows: f64,
    cols: f64,
    labels: &[u32],
    kind: u32,
    scale: f64,
    margin: f64,
    label_smoothing: f64,
    scratch_bytes: f64,
) -> napi::Result<MarginSoftmaxResult<'e>> {
    const F: &str = "marginSoftmax";
    let (n, c, d) = (
        to_usize(F, "x.rows", x_rows)?,
        to_usize(F, "prototypes.rows", w_rows)?,
        to_usize(F, "cols", cols)?,
    );
    let scratch = to_usize(F, "scratchBytes", scratch_bytes)?;
    guard(F, || {
        mg::margin_softmax_with(
            x,
            n,
            w,
            c,
            d,
            labels,
            &opts(F, kind, scale, margin, label_smoothing)?,
            scratch,
        )
    })?
    .into_js(env, F)
}

/// Async twin of `marginSoftmax` (inputs are copied first).
#[napi(ts_return_type = "Promise<MarginSoftmaxResult>")]
#[allow(clippy::too_many_arguments)]
pub fn margin_softmax_async(
    x: &[f32],
    x_rows: f64,
    w: &[f32],
    w_rows: f64,
    cols: f64,
    labels: &[u32],
    kind: u32,
    scale: f64,
    margin: f64,
    label_smoothing: f64,
    scratch_bytes: f64,
) -> napi::Result<AsyncTask<Job<mg::MarginSoftmax>>> {
    const F: &str = "marginSoftmaxAsync";
    let (n, c, d) = (
        to_usize(F, "x.rows", x_rows)?,
        to_usize(F, "prototypes.rows", w_rows)?,
        to_usize(F, "cols", cols)?,
    );
    let scratch = to_usize(F, "scratchBytes", scratch_bytes)?;
    let (x, w, labels) = (
        copy(F, "x", x)?,
        copy(F, "w", w)?,
        copy(F, "labels", labels)?,
    );
    Ok(Job::new(F, move || {
        mg::margin_softmax_with(
            &x,
            n,
            &w,
            c,
            d,
            &labels,
            &opts(F, kind, scale, margin, label_smoothing)?,
            scratch,
        )
    }))
}

/// Cross-entropy with label smoothing (PyTorch's convention, mean over rows).
#[napi]
pub fn label_smoothing_cross_entropy<'e>(
    env: &'e Env,
    logits: &[f32],
    rows: f64,
    cols: f64,
    labels: &[u32],
    epsilon: f64,
) -> napi::Result<LossGradResult<'e>> {
    const F: &str = "labelSmoothingCrossEntropy";
    let (n, c) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    guard(F, || {
        mg::label_smoothing_cross_entropy(logits, n, c, labels, epsilon)
    })
    .and_then(|r| lg(env, F, r))
}

/// λ Σ‖row‖² and 2λ·m.
#[napi]
pub fn norm_penalty<'e>(
    env: &'e Env,
    m: &[f32],
    rows: f64,
    cols: f64,
    lambda: f64,
) -> napi::Result<LossGradResult<'e>> {
    const F: &str = "normPenalty";
    let (r, c) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    guard(F, || mg::norm_penalty(m, r, c, lambda)).and_then(|r| lg(env, F, r))
}

/// λ Σ|m_ij| and λ·sign(m).
#[napi]
pub fn l1_penalty<'e>(
    env: &'e Env,
    m: &[f32],
    rows: f64,
    cols: f64,
    lambda: f64,
) -> napi::Result<LossGradResult<'e>> {
    const F: &str = "l1Penalty";
    let (r, c) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    guard(F, || mg::l1_penalty(m, r, c, lambda)).and_then(|r| lg(env, F, r))
}
