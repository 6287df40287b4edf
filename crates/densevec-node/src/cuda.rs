//! Bindings of the optional CUDA backend (`densevec-cuda`). Everything here works on machines
//! without CUDA: `cudaInfo` then says why the backend is unavailable, and the compute functions
//! fail with `E_BACKEND|…`.

use crate::common::{batch_dims, guard, to_usize, IntoJs};
use crate::similarity::TopKResult;
use densevec_core::similarity::Metric;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Availability of the CUDA backend.
#[napi(object)]
pub struct CudaInfo {
    /// Whether similarityMatrix / topK can run on the GPU.
    pub available: bool,
    /// Device name (when available).
    pub device: Option<String>,
    /// Total device memory in bytes (when available).
    pub memory: Option<f64>,
    /// Compute capability as "major.minor" (when available).
    pub compute_capability: Option<String>,
    /// Whether GEMM runs through cuBLAS (when available).
    pub cublas: Option<bool>,
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
            reason: None,
        },
        Ok(Err(r)) => CudaInfo {
            available: false,
            device: None,
            memory: None,
            compute_capability: None,
            cublas: None,
            reason: Some(r),
        },
        Err(_) => CudaInfo {
            available: false,
            device: None,
            memory: None,
            compute_capability: None,
            cublas: None,
            reason: Some("CUDA probe failed unexpectedly".into()),
        },
    }
}

/// GPU twin of `similarityMatrix`; metric 0 dot, 1 cosine, 2 l2sq.
#[napi]
pub fn cuda_similarity_matrix(
    q: &[f32],
    q_rows: f64,
    c: &[f32],
    c_rows: f64,
    cols: f64,
    metric: u32,
) -> napi::Result<Float32Array> {
    const F: &str = "similarityMatrix";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    guard(F, || {
        densevec_cuda::similarity_matrix(q, qr, c, cr, d, Metric::from_code(F, metric)?)
    })
    .map(Float32Array::new)
}

/// GPU twin of `topK` (k ≤ 128); metric 0 dot, 1 cosine, 2 l2sq.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn cuda_top_k(
    env: Env,
    q: &[f32],
    q_rows: f64,
    c: &[f32],
    c_rows: f64,
    cols: f64,
    k: f64,
    metric: u32,
) -> napi::Result<TopKResult> {
    const F: &str = "topK";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    let kk = to_usize(F, "k", k)?;
    guard(F, || {
        densevec_cuda::top_k(q, qr, c, cr, d, kk, Metric::from_code(F, metric)?)
    })?
    .into_js(&env)
}

/// Largest k that `cudaTopK` accepts.
#[napi]
pub fn cuda_top_k_max() -> u32 {
    densevec_cuda::KMAX as u32
}
