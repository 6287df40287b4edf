//! Runtime controls: ISA, threads, and the availability of the CUDA backend (whose compute
//! forms are chosen by the runner, `run.rs`).

use crate::common::{err, to_usize};
use densevec_core::Code;
use densevec_kernels::isa;
use napi_derive::napi;

/// Name of the ISA the kernels dispatch to now (`avx512`, `avx2`, `neon`, `scalar`).
#[napi]
pub fn native_isa() -> String {
    isa::active().name().to_string()
}

/// Every ISA this CPU can run, scalar first.
#[napi]
pub fn native_isas() -> Vec<String> {
    isa::available()
        .into_iter()
        .map(|i| i.name().to_string())
        .collect()
}

/// Forces an ISA (for tests and benchmarks); it must be one of `nativeIsas()`.
#[napi]
pub fn native_set_isa(name: String) -> napi::Result<()> {
    let i = isa::Isa::parse(&name).ok_or_else(|| {
        err(
            Code::Arg,
            format!("setIsa: unknown ISA '{name}' (scalar, neon, avx2, avx512)"),
        )
    })?;
    isa::set(i).map_err(|m| err(Code::Arg, format!("setIsa: {m}")))
}

/// Worker threads of the native pool.
#[napi]
pub fn native_threads() -> u32 {
    densevec_core::pool::threads() as u32
}

/// Sets the worker threads of the native pool.
#[napi]
pub fn native_set_threads(n: f64) -> napi::Result<()> {
    let n = to_usize("setThreads", "n", n)?;
    if n == 0 || n > 1024 {
        return Err(err(
            Code::Arg,
            format!("setThreads: n must be in [1, 1024], got {n}"),
        ));
    }
    densevec_core::pool::set_threads(n).map_err(|m| err(Code::Arg, format!("setThreads: {m}")))
}

/// Applies DENSEVEC_ISA; returns a warning text when it is set but cannot be honoured.
#[napi]
pub fn native_init() -> Option<String> {
    isa::init_from_env().err()
}

/// The GPU the CUDA backend runs on.
#[napi(object)]
pub struct CudaDevice {
    /// Device name.
    pub name: String,
    /// Total device memory in bytes.
    pub memory: f64,
    /// Compute capability as "major.minor".
    pub compute_capability: String,
    /// Whether GEMM runs through cuBLAS.
    pub cublas: bool,
    /// How GEMMs run: "3xTF32", "FP32" or "FP32 kernel".
    pub gemm: String,
}

/// Availability of the CUDA backend: the device when available, else why not.
#[napi(object)]
pub struct CudaInfo {
    /// Whether the GPU functions (similarityMatrix, topK, infoNCE, ntXent, marginSoftmax,
    /// wassersteinRegularizer) can run.
    pub available: bool,
    /// The device (when available).
    pub device: Option<CudaDevice>,
    /// Why the backend is not available (when not).
    pub reason: Option<String>,
}

/// Reports whether the CUDA backend can run here and why not. Never throws; computed once per
/// process.
#[napi]
pub fn cuda_info() -> CudaInfo {
    let probe = std::panic::catch_unwind(densevec_cuda::available)
        .unwrap_or_else(|_| Err("CUDA probe failed unexpectedly".into()));
    match probe {
        Ok(d) => CudaInfo {
            available: true,
            device: Some(CudaDevice {
                name: d.name,
                memory: d.total_memory as f64,
                compute_capability: format!(
                    "{}.{}",
                    d.compute_capability.0, d.compute_capability.1
                ),
                cublas: d.cublas,
                gemm: d.gemm,
            }),
            reason: None,
        },
        Err(reason) => CudaInfo {
            available: false,
            device: None,
            reason: Some(reason),
        },
    }
}
