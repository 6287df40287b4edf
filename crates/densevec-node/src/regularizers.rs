//! Bindings of chapter 6: practical mechanisms and regularizers.

use crate::args::Mat;
use crate::common::js_result;
use crate::common::{call, plain_js};
use crate::run::{operation, Op};
use densevec_core::regularizers as reg;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// The arguments of `BatchNorm.forward`: the running statistics are updated in place.
#[napi(object, object_to_js = false)]
pub struct BatchNormForwardArgs {
    pub x: Mat,
    pub running_mean: Float32Array,
    pub running_var: Float32Array,
    pub momentum: f64,
    pub eps: f64,
    pub training: bool,
}

/// Batch normalization of the rows of x (training: batch statistics, updating the running
/// ones in place; else the running statistics).
#[napi]
pub fn batch_norm_forward<'e>(
    env: &'e Env,
    mut args: BatchNormForwardArgs,
) -> napi::Result<Float32ArraySlice<'e>> {
    let a = &mut args;
    // SAFETY: the running-statistics arrays are alive for this synchronous call, owned by the
    // layer object and not touched by anything else meanwhile; `x` is only read.
    let (rm, rv) = unsafe { (a.running_mean.as_mut(), a.running_var.as_mut()) };
    let (x, momentum, eps, training) = (&a.x, a.momentum, a.eps, a.training);
    call(env, "BatchNorm.forward", |f| {
        let (n, d) = x.dims(f, "x")?;
        let layer = reg::BatchNormLayer {
            running_mean: rm,
            running_var: rv,
            momentum,
            eps,
        };
        reg::batch_norm_forward(&x.data, n, d, layer, training)
    })
}

/// `{ meanCosine, meanL2 }` of embedding drift.
#[napi(object)]
pub struct EmbeddingDriftResult {
    pub mean_cosine: f64,
    pub mean_l2: f64,
}

/// The arguments of `embeddingDrift`: two matrices of the same shape.
#[napi(object, object_to_js = false)]
pub struct DriftArgs {
    pub a: Mat,
    pub b: Mat,
}

impl Op for DriftArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<EmbeddingDriftResult> {
        let (a, b, n, d) = self.a.views(func, "a", &self.b)?;
        let (mean_cosine, mean_l2) = reg::embedding_drift(a, b, n, d)?;
        Ok(EmbeddingDriftResult {
            mean_cosine,
            mean_l2,
        })
    }
}

operation!(
    /// Mean cosine and mean Euclidean distance over matching rows.
    embedding_drift = "embeddingDrift",
    DriftArgs { a: "a", b: "b" } -> EmbeddingDriftResult,
    "EmbeddingDriftResult | Promise<EmbeddingDriftResult>"
);

plain_js!(EmbeddingDriftResult);

/// `{ fractionNearZero, hoyer }`.
#[napi(object)]
pub struct SparsityResult {
    pub fraction_near_zero: f64,
    pub hoyer: f64,
}

plain_js!(SparsityResult);

/// The arguments of `sparsity`: the matrix and the near-zero threshold.
#[napi(object, object_to_js = false)]
pub struct SparsityArgs {
    pub m: Mat,
    pub eps: f64,
}

impl Op for SparsityArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<SparsityResult> {
        let (n, d) = self.m.dims(func, "m")?;
        let (fraction_near_zero, hoyer) = reg::sparsity(&self.m.data, n, d, self.eps)?;
        Ok(SparsityResult {
            fraction_near_zero,
            hoyer,
        })
    }
}

operation!(
    /// Fraction of near-zero entries and mean Hoyer sparsity.
    sparsity = "sparsity",
    SparsityArgs { m: "m" } -> SparsityResult,
    "SparsityResult | Promise<SparsityResult>"
);

js_result!(
    /// `{ loss, gradA, gradB }` of the Wasserstein regularizer (gradients n × d row-major).
    WassersteinResult from reg::Wasserstein {
        loss;
        grad_a: Float32ArraySlice = "gradA", grad_b: Float32ArraySlice = "gradB";

    }
);

/// The arguments of `wassersteinRegularizer`: two views of the same n items, p ∈ {1, 2}.
#[napi(object, object_to_js = false)]
pub struct WassersteinArgs {
    pub a: Mat,
    pub b: Mat,
    pub p: u32,
}

/// A form of the Wasserstein regularizer: `(a, b, n, d, p)`, the CPU's or the GPU's.
type WassersteinFn =
    fn(&[f32], &[f32], usize, usize, u32) -> densevec_core::Result<reg::Wasserstein>;

impl WassersteinArgs {
    /// Runs the form `f` (the CPU and GPU forms take the same arguments, converted here once).
    fn with(&self, func: &str, f: WassersteinFn) -> densevec_core::Result<reg::Wasserstein> {
        let (a, b, n, d) = self.a.views(func, "a", &self.b)?;
        f(a, b, n, d, self.p)
    }
}

impl Op for WassersteinArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<reg::Wasserstein> {
        self.with(func, reg::wasserstein_regularizer)
    }

    /// Two n × n × d GEMMs per view (cosines, gradient) and the sort of n(n−1)/2 pairs.
    fn gpu_work(&self) -> Option<f64> {
        let n = self.a.rows;
        Some(4.0 * n * n * self.a.cols + 64.0 * (n * (n - 1.0) / 2.0))
    }

    fn gpu(&self, func: &str) -> densevec_core::Result<reg::Wasserstein> {
        self.with(func, densevec_cuda::wasserstein_regularizer)
    }
}

operation!(
    /// The Wasserstein geometry regularizer with its gradients, now or as a Promise (`how`).
    wasserstein_regularizer = "wassersteinRegularizer",
    WassersteinArgs { a: "a", b: "b" } -> reg::Wasserstein,
    "WassersteinResult | Promise<WassersteinResult>"
);
