//! Bindings of the chapter 6 additions: soft thresholding, the affine part and backward pass
//! of batch normalization, and the running-mean lag.

use crate::args::Mat;
use crate::common::guard;
use crate::common::js_result;
use crate::run::{operation, Op};
use densevec_core::mechanisms as mech;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// The arguments of `softThreshold`: the matrix and λ ≥ 0.
#[napi(object, object_to_js = false)]
pub struct SoftThresholdArgs {
    pub m: Mat,
    pub lambda: f64,
}

impl Op for SoftThresholdArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<Vec<f32>> {
        let (n, d) = self.m.dims(func, "m")?;
        mech::soft_threshold(&self.m.data, n, d, self.lambda)
    }
}

operation!(
    /// sign(x)·max(|x| − λ, 0) elementwise, in a new buffer.
    soft_threshold = "softThreshold",
    SoftThresholdArgs { m: "m" } -> Vec<f32>,
    "Float32Array | Promise<Float32Array>"
);

/// sign(x)·max(|x| − λ, 0) of every entry, in place.
#[napi]
pub fn soft_threshold_in_place(mut args: SoftThresholdArgs) -> napi::Result<()> {
    const F: &str = "softThresholdInPlace";
    guard(F, || {
        let (n, d) = args.m.dims(F, "m")?;
        // SAFETY: the caller's array is alive and not touched by anything else during this
        // synchronous call.
        let data = unsafe { args.m.data.as_mut() };
        mech::soft_threshold_in_place(data, n, d, args.lambda)
    })
}

/// The arguments of `BatchNorm.forward`'s affine step: its output `y` (changed in place), the
/// layer's `weight` and `bias`.
#[napi(object, object_to_js = false)]
pub struct BatchNormAffineArgs {
    pub y: Mat,
    pub weight: Float32Array,
    pub bias: Float32Array,
}

/// y ← y·weight + bias per column, in place.
#[napi]
pub fn batch_norm_affine_in_place(mut args: BatchNormAffineArgs) -> napi::Result<()> {
    const F: &str = "BatchNorm.forward";
    let a = &mut args;
    guard(F, || {
        let (n, d) = a.y.dims(F, "y")?;
        // SAFETY: `y` is the freshly returned output of the forward pass, alive for this call
        // and not aliased by `weight` or `bias`, which are only read.
        let data = unsafe { a.y.data.as_mut() };
        mech::batch_norm_affine_in_place(data, n, d, &a.weight, &a.bias)
    })
}

/// The arguments of `batchNormLag`: PyTorch's momentum μ and the drift per step.
#[napi(object, object_to_js = false)]
pub struct BatchNormLagArgs {
    pub momentum: f64,
    pub drift_per_step: f64,
}

/// Steady-state lag v·(1 − μ)/μ of a running mean behind a drifting batch mean.
#[napi]
pub fn batch_norm_lag(args: BatchNormLagArgs) -> napi::Result<f64> {
    guard("batchNormLag", || {
        mech::batch_norm_lag(args.momentum, args.drift_per_step)
    })
}

js_result!(
    /// `{ gradX, gradWeight, gradBias }` of a training-mode batch norm.
    BatchNormGradsResult from mech::BatchNormGrads {
        ;
        grad_x: Float32ArraySlice = "gradX", grad_weight: Float32ArraySlice = "gradWeight", grad_bias: Float32ArraySlice = "gradBias";

    }
);

/// The arguments of `BatchNorm.backward`: the forward's input `x` (saved), the gradient of
/// the output, the forward's `weight` (absent for a layer without affine parameters) and eps.
#[napi(object, object_to_js = false)]
pub struct BatchNormBackwardArgs {
    pub x: Mat,
    pub grad_out: Float32Array,
    pub weight: Option<Float32Array>,
    pub eps: f64,
}

impl Op for BatchNormBackwardArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<mech::BatchNormGrads> {
        let ((n, d), w) = (self.x.dims(func, "x")?, self.weight.as_deref());
        mech::batch_norm_backward(&self.x.data, &self.grad_out, n, d, w, self.eps)
    }
}

operation!(
    /// Backward pass of a training-mode batch norm.
    batch_norm_backward = "batchNormBackward",
    BatchNormBackwardArgs { x: "x", grad_out: "gradOut", weight: "weight" } -> mech::BatchNormGrads,
    "BatchNormGradsResult | Promise<BatchNormGradsResult>"
);
