//! Bindings of the optional CUDA backend (`densevec-cuda`). Everything here works on machines
//! without CUDA: `cudaInfo` then says why the backend is unavailable, and the compute functions
//! fail with `E_BACKEND|…`.

use crate::common::{batch_dims, guard, to_usize, typed, IntoJs};
use crate::contrastive::{nce_opts, InfoNceResult, NtXentResult};
use crate::margin::{opts as margin_opts, MarginSoftmaxResult};
use crate::regularizers::WassersteinResult;
use crate::similarity::TopKResult;
use densevec_core::similarity::Metric;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Availability of the CUDA backend.
#[napi(object)]
pub struct CudaInfo {
    /// Whether the GPU functions (similarityMatrix, topK, infoNCE, ntXent, marginSoftmax,
    /// wassersteinRegularizer) can run.
    pub available: bool,
    /// Device name (when available).
    pub device: Option<String>,
    /// Total device memory in bytes (when available).
    pub memory: Option<f64>,
    /// Compute capability as "major.minor" (when available).
    pub compute_capability: Option<String>,
    /// Whether GEMM runs through cuBLAS (when available).
    pub cublas: Option<bool>,
    /// How GEMMs run: "3xTF32", "FP32" or "FP32 kernel" (when available).
    pub gemm: Option<String>,
    /// Why the backend is not available (when not).
    pub reason: Option<String>,
}

/// Reports whether the CUDA backend can run here and why not. Never throws; computed once per
/// process.
#[napi]
pub fn cuda_info() -> CudaInfo {
    match std::panic::catch_unwind(densevec_cuda::available) {
        Ok(Ok(d)) => CudaInfo {
            available: true,
            device: Some(d.name),
            memory: Some(d.total_memory as f64),
            compute_capability: Some(format!(
                "{}.{}",
                d.compute_capability.0, d.compute_capability.1
            )),
            cublas: Some(d.cublas),
            gemm: Some(d.gemm),
            reason: None,
        },
        Ok(Err(r)) => CudaInfo {
            available: false,
            device: None,
            memory: None,
            compute_capability: None,
            cublas: None,
            gemm: None,
            reason: Some(r),
        },
        Err(_) => CudaInfo {
            available: false,
            device: None,
            memory: None,
            compute_capability: None,
            cublas: None,
            gemm: None,
            reason: Some("CUDA probe failed unexpectedly".into()),
        },
    }
}

/// GPU twin of `similarityMatrix`; metric 0 dot, 1 cosine, 2 l2sq.
#[napi]
pub fn cuda_similarity_matrix<'e>(
    env: &'e Env,
    q: &[f32],
    q_rows: f64,
    c: &[f32],
    c_rows: f64,
    cols: f64,
    metric: u32,
) -> napi::Result<Float32ArraySlice<'e>> {
    const F: &str = "similarityMatrix";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    guard(F, || {
        densevec_cuda::similarity_matrix(q, qr, c, cr, d, Metric::from_code(F, metric)?)
    })
    .and_then(|v| typed(env, F, "the result", &v))
}

/// GPU twin of `topK` (k ≤ 128); metric 0 dot, 1 cosine, 2 l2sq.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn cuda_top_k<'e>(
    env: &'e Env,
    q: &[f32],
    q_rows: f64,
    c: &[f32],
    c_rows: f64,
    cols: f64,
    k: f64,
    metric: u32,
) -> napi::Result<TopKResult<'e>> {
    const F: &str = "topK";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    let kk = to_usize(F, "k", k)?;
    guard(F, || {
        densevec_cuda::top_k(q, qr, c, cr, d, kk, Metric::from_code(F, metric)?)
    })?
    .into_js(env, F)
}

/// Largest k that `cudaTopK` accepts.
#[napi]
pub fn cuda_top_k_max() -> u32 {
    densevec_cuda::KMAX as u32
}

/// GPU twin of `infoNCE` (same arguments and result).
#[napi(js_name = "cudaInfoNCE")]
#[allow(clippy::too_many_arguments)]
pub fn cuda_info_nce<'e>(
    env: &'e Env,
    q: &[f32],
    q_rows: f64,
    keys: &[f32],
    k_rows: f64,
    cols: f64,
    temperature: f64,
    positives: &[u32],
    log_q: &[f32],
    has_log_q: bool,
    normalize: bool,
) -> napi::Result<InfoNceResult<'e>> {
    const F: &str = "infoNCE";
    let (b, n, d) = (
        to_usize(F, "q.rows", q_rows)?,
        to_usize(F, "keys.rows", k_rows)?,
        to_usize(F, "cols", cols)?,
    );
    let o = nce_opts(temperature, positives, log_q, has_log_q, normalize);
    guard(F, || densevec_cuda::info_nce(q, b, keys, n, d, &o))?.into_js(env, F)
}

/// GPU twin of `ntXent`.
#[napi]
pub fn cuda_nt_xent<'e>(
    env: &'e Env,
    a: &[f32],
    b: &[f32],
    rows: f64,
    cols: f64,
    temperature: f64,
) -> napi::Result<NtXentResult<'e>> {
    const F: &str = "ntXent";
    let (r, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    guard(F, || densevec_cuda::nt_xent(a, b, r, d, temperature))?.into_js(env, F)
}

/// GPU twin of `marginSoftmax`; kind 0 normalized, 1 cosface, 2 arcface.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn cuda_margin_softmax<'e>(
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
) -> napi::Result<MarginSoftmaxResult<'e>> {
    const F: &str = "marginSoftmax";
    let (n, c, d) = (
        to_usize(F, "x.rows", x_rows)?,
        to_usize(F, "prototypes.rows", w_rows)?,
        to_usize(F, "cols", cols)?,
    );
    guard(F, || {
        densevec_cuda::margin_softmax(
            x,
            n,
            w,
            c,
            d,
            labels,
            &margin_opts(F, kind, scale, margin, label_smoothing)?,
        )
    })?
    .into_js(env, F)
}

/// GPU twin of `wassersteinRegularizer`; p ∈ {1, 2}.
#[napi]
pub fn cuda_wasserstein_regularizer<'e>(
    env: &'e Env,
    a: &[f32],
    b: &[f32],
    rows: f64,
    cols: f64,
    p: u32,
) -> napi::Result<WassersteinResult<'e>> {
    const F: &str = "wassersteinRegularizer";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    guard(F, || densevec_cuda::wasserstein_regularizer(a, b, n, d, p))?.into_js(env, F)
}
