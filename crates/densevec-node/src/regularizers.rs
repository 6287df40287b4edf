//! Bindings of chapter 6: practical mechanisms and regularizers.

use crate::common::{copy, guard, to_usize, typed, IntoJs, Job};
use densevec_core::regularizers as reg;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// One batch-norm forward pass; updates `running_mean`/`running_var` in place in training mode.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward<'e>(
    env: &'e Env,
    x: &[f32],
    rows: f64,
    cols: f64,
    mut running_mean: Float32ArraySlice,
    mut running_var: Float32ArraySlice,
    momentum: f64,
    eps: f64,
    training: bool,
) -> napi::Result<Float32ArraySlice<'e>> {
    const F: &str = "BatchNorm.forward";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    // SAFETY: the running-statistics arrays are alive for this synchronous call, owned by the
    // layer object and not touched by anything else meanwhile; they never alias `x`'s view in
    // a way that matters, as `x` is only read before they are written.
    let (rm, rv) = unsafe { (running_mean.as_mut(), running_var.as_mut()) };
    guard(F, || {
        reg::batch_norm_forward(x, n, d, rm, rv, momentum, eps, training)
    })
    .and_then(|v| typed(env, F, "the result", &v))
}

/// `{ meanCosine, meanL2 }` of embedding drift.
#[napi(object)]
pub struct EmbeddingDriftResult {
    pub mean_cosine: f64,
    pub mean_l2: f64,
}

/// Mean cosine and mean Euclidean distance over matching rows.
#[napi]
pub fn embedding_drift(
    a: &[f32],
    b: &[f32],
    rows: f64,
    cols: f64,
) -> napi::Result<EmbeddingDriftResult> {
    const F: &str = "embeddingDrift";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    let (c, l) = guard(F, || reg::embedding_drift(a, b, n, d))?;
    Ok(EmbeddingDriftResult {
        mean_cosine: c,
        mean_l2: l,
    })
}

/// `{ fractionNearZero, hoyer }`.
#[napi(object)]
pub struct SparsityResult {
    pub fraction_near_zero: f64,
    pub hoyer: f64,
}

/// Fraction of near-zero entries and mean Hoyer sparsity.
#[napi]
pub fn sparsity(m: &[f32], rows: f64, cols: f64, eps: f64) -> napi::Result<SparsityResult> {
    const F: &str = "sparsity";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    let (f, h) = guard(F, || reg::sparsity(m, n, d, eps))?;
    Ok(SparsityResult {
        fraction_near_zero: f,
        hoyer: h,
    })
}

/// `{ loss, gradA, gradB }` of the Wasserstein regularizer (gradients n × d row-major).
#[napi(object, object_from_js = false)]
pub struct WassersteinResult<'e> {
    pub loss: f64,
    pub grad_a: Float32ArraySlice<'e>,
    pub grad_b: Float32ArraySlice<'e>,
}

impl IntoJs for reg::Wasserstein {
    type Js<'e> = WassersteinResult<'e>;
    fn into_js<'e>(self, env: &'e Env, func: &str) -> napi::Result<WassersteinResult<'e>> {
        Ok(WassersteinResult {
            loss: self.loss,
            grad_a: typed(env, func, "gradA", &self.grad_a)?,
            grad_b: typed(env, func, "gradB", &self.grad_b)?,
        })
    }
}

/// Wasserstein pairwise-similarity regularizer with gradients; p ∈ {1, 2}.
#[napi]
pub fn wasserstein_regularizer<'e>(
    env: &'e Env,
    a: &[f32],
    b: &[f32],
    rows: f64,
    cols: f64,
    p: u32,
) -> napi::Result<WassersteinResult<'e>> {
    const F: &str = "wassersteinRegularizer";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    guard(F, || reg::wasserstein_regularizer(a, b, n, d, p))?.into_js(env, F)
}

/// Async twin of `wassersteinRegularizer` (inputs are copied first).
#[napi(ts_return_type = "Promise<WassersteinResult>")]
pub fn wasserstein_regularizer_async(
    a: &[f32],
    b: &[f32],
    rows: f64,
    cols: f64,
    p: u32,
) -> napi::Result<AsyncTask<Job<reg::Wasserstein>>> {
    const F: &str = "wassersteinRegularizerAsync";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    let (a, b) = (copy(F, "a", a)?, copy(F, "b", b)?);
    Ok(Job::new(F, move || {
        reg::wasserstein_regularizer(&a, &b, n, d, p)
    }))
}
