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

/// Default time large freed blocks are kept for reuse (the idle time after which jemalloc
/// returns dirty pages by default, too).
const KEEP_MS: u64 = 10_000;
/// Default cap on the bytes kept, in MiB.
const KEEP_MB: u64 = 512;

/// A non-negative integer environment setting: its value, the default when unset or empty,
/// or the default and a warning when it is not an integer in [0, max].
fn env_u64(name: &str, default: u64, max: u64, warnings: &mut Vec<String>) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u64>() {
            Ok(n) if n <= max => n,
            _ => {
                warnings.push(format!(
                    "{name} must be an integer in [0, {max}], got '{v}'; using {default}"
                ));
                default
            }
        },
        _ => default,
    }
}

/// Applies DENSEVEC_ISA and starts keeping large freed blocks for reuse (DENSEVEC_KEEP_MS,
/// default 10,000 ms of idleness; DENSEVEC_KEEP_MB, default 512 MiB; 0 turns it off); returns
/// a warning text when a setting cannot be honoured.
#[napi]
pub fn native_init() -> Option<String> {
    let mut warnings: Vec<String> = isa::init_from_env().err().into_iter().collect();
    let ms = env_u64("DENSEVEC_KEEP_MS", KEEP_MS, 86_400_000, &mut warnings);
    let mb = env_u64("DENSEVEC_KEEP_MB", KEEP_MB, 1 << 30, &mut warnings);
    let cap = usize::try_from(mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    if let Err(e) = densevec_core::keep::start(std::time::Duration::from_millis(ms), cap) {
        warnings.push(e);
    }
    if warnings.is_empty() {
        None
    } else {
        Some(warnings.join("; "))
    }
}

/// Returns every large freed block kept for reuse to the system now (see `releaseMemory`).
#[napi]
pub fn native_release_memory() {
    densevec_core::keep::release();
}

/// The blocks and bytes kept for reuse now.
#[napi]
pub fn native_kept_memory() -> Vec<f64> {
    let (blocks, bytes) = densevec_core::keep::held_now();
    vec![blocks as f64, bytes as f64]
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
