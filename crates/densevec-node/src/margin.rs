//! Bindings of chapter 4 (margin losses) and of the cross-entropy and penalties of chapter 6.

use crate::common::{guard, to_usize, IntoJs, Job};
use densevec_core::margin::{self as mg, MarginKind, MarginOpts};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// `{ loss, gradX, gradW, logits }` of marginSoftmax (row-major buffers).
#[napi(object)]
pub struct MarginSoftmaxResult {
    pub loss: f64,
    pub grad_x: Float32Array,
    pub grad_w: Float32Array,
    pub logits: Float32Array,
    pub grad_scale: f64,
    pub angular_margins: Float32Array,
}

impl IntoJs for mg::MarginSoftmax {
    type Js = MarginSoftmaxResult;
    fn into_js(self, _env: &Env) -> napi::Result<MarginSoftmaxResult> {
        Ok(MarginSoftmaxResult {
            loss: self.loss,
            grad_x: Float32Array::new(self.grad_x),
            grad_w: Float32Array::new(self.grad_w),
            logits: Float32Array::new(self.logits),
            grad_scale: self.grad_scale,
            angular_margins: Float32Array::new(self.angular_margins),
        })
    }
}

/// `{ loss, grad }` of the cross-entropy and the penalties.
#[napi(object)]
pub struct LossGradResult {
    pub loss: f64,
    pub grad: Float32Array,
}

fn lg(r: mg::LossGrad) -> LossGradResult {
    LossGradResult {
        loss: r.loss,
        grad: Float32Array::new(r.grad),
    }
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
pub fn margin_softmax(
    env: Env,
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
) -> napi::Result<MarginSoftmaxResult> {
    const F: &str = "marginSoftmax";
    let (n, c, d) = (
        to_usize(F, "x.rows", x_rows)?,
        to_usize(F, "prototypes.rows", w_rows)?,
        to_usize(F, "cols", cols)?,
    );
    guard(F, || {
        mg::margin_softmax(
            x,
            n,
            w,
            c,
            d,
            labels,
            &opts(F, kind, scale, margin, label_smoothing)?,
        )
    })?
    .into_js(&env)
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
) -> napi::Result<AsyncTask<Job<mg::MarginSoftmax>>> {
    const F: &str = "marginSoftmaxAsync";
    let (n, c, d) = (
        to_usize(F, "x.rows", x_rows)?,
        to_usize(F, "prototypes.rows", w_rows)?,
        to_usize(F, "cols", cols)?,
    );
    let (x, w, labels) = (x.to_vec(), w.to_vec(), labels.to_vec());
    Ok(Job::new(F, move || {
        mg::margin_softmax(
            &x,
            n,
            &w,
            c,
            d,
            &labels,
            &opts(F, kind, scale, margin, label_smoothing)?,
        )
    }))
}

/// Cross-entropy with label smoothing (PyTorch's convention, mean over rows).
#[napi]
pub fn label_smoothing_cross_entropy(
    logits: &[f32],
    rows: f64,
    cols: f64,
    labels: &[u32],
    epsilon: f64,
) -> napi::Result<LossGradResult> {
    const F: &str = "labelSmoothingCrossEntropy";
    let (n, c) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    guard(F, || {
        mg::label_smoothing_cross_entropy(logits, n, c, labels, epsilon)
    })
    .map(lg)
}

/// λ Σ‖row‖² and 2λ·m.
#[napi]
pub fn norm_penalty(m: &[f32], rows: f64, cols: f64, lambda: f64) -> napi::Result<LossGradResult> {
    const F: &str = "normPenalty";
    let (r, c) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    guard(F, || mg::norm_penalty(m, r, c, lambda)).map(lg)
}

/// λ Σ|m_ij| and λ·sign(m).
#[napi]
pub fn l1_penalty(m: &[f32], rows: f64, cols: f64, lambda: f64) -> napi::Result<LossGradResult> {
    const F: &str = "l1Penalty";
    let (r, c) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    guard(F, || mg::l1_penalty(m, r, c, lambda)).map(lg)
}
