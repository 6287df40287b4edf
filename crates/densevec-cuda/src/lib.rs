//! densevec-cuda: the optional CUDA backend of densevec.
//!
//! Everything is opened at run time (cudarc with `dynamic-loading`, NVRTC through our own
//! loader), so this crate builds and links on machines with no CUDA at all. [`available`] never
//! panics; it says why the backend cannot run (no driver, no NVRTC, no device, kernel
//! compilation failure). Kernels are CUDA C under `kernels/`, embedded in the binary and
//! compiled by NVRTC once per process for the device's architecture. GEMM goes through cuBLAS
//! when `libcublas` is present and through our own tiled kernel otherwise.

pub mod dev;
pub mod nvrtc;
pub mod ops;
pub mod stage;

use cudarc::cublas::{result as blas_result, sys as blas_sys, CudaBlas};
use cudarc::driver::{result as drv, CudaContext, CudaFunction, CudaModule, CudaStream};
use densevec_core::contrastive::{InfoNce, InfoNceOpts, NtXent};
use densevec_core::margin::{MarginOpts, MarginSoftmax};
use densevec_core::regularizers::Wasserstein;
use densevec_core::similarity::Metric;
use densevec_core::topk::TopK;
use densevec_core::{Code, Error, Result};
use dev::{Arg, DevPtr, Device, Launch, Sgemm};
use ops::GpuOp;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

pub use ops::KMAX;

/// The CUDA C sources of the backend: (file name, source). Each is compiled by NVRTC to its own
/// module; kernels are looked up by name across all of them.
pub const KERNELS: &[(&str, &str)] = &[
    ("similarity.cu", include_str!("../kernels/similarity.cu")),
    ("contrastive.cu", include_str!("../kernels/contrastive.cu")),
    ("wasserstein.cu", include_str!("../kernels/wasserstein.cu")),
];

/// Every kernel the host code launches (the CI checks each is in the PTX).
pub const KERNEL_NAMES: &[&str] = &[
    "dv_row_aux",
    "dv_finish",
    "dv_l2_direct",
    "dv_sgemm",
    "dv_topk_merge",
    "dv_topk_part",
    "dv_topk_merge_parts",
    "dv_ce_rows",
    "dv_margin_rows",
    "dv_row_normalize",
    "dv_back_norm",
    "dv_pair_keys",
    "dv_bitonic_step",
    "dv_bitonic_tile",
    "dv_w_coef",
    "dv_split_tf32",
];

/// What [`available`] reports about the device the backend uses (ordinal 0).
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Device name, e.g. "NVIDIA H200".
    pub name: String,
    /// Total device memory in bytes.
    pub total_memory: u64,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Whether GEMM runs through cuBLAS (else through densevec's own kernel).
    pub cublas: bool,
    /// Where NVRTC was loaded from.
    pub nvrtc: String,
    /// NVRTC's version (major, minor).
    pub nvrtc_version: (i32, i32),
    /// The CUDA version the driver supports (major, minor), from `cuDriverGetVersion`.
    pub driver_cuda: (i32, i32),
    /// How GEMMs run: "3xTF32" (cuBLAS, tensor cores, float32 accuracy), "FP32" (cuBLAS
    /// SGEMM) or "FP32 kernel" (densevec's own SGEMM kernel, no cuBLAS).
    pub gemm: String,
}

/// The CUDA device: a context, one stream, the compiled kernels, cuBLAS when present.
pub struct Cuda {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: Option<CudaBlas>,
    _modules: Vec<Arc<CudaModule>>,
    funcs: HashMap<&'static str, CudaFunction>,
    info: DeviceInfo,
    /// GEMMs as 3xTF32 (cuBLAS present, sm_80 / sm_90 / sm_100, not DENSEVEC_CUDA_GEMM=fp32).
    tf32x3: bool,
    /// Page-locked staging of large copies, allocated at the first one; `None` inside after a
    /// failed allocation (copies then go through the driver's pageable path).
    stage: RefCell<Option<Option<stage::Staging>>>,
    /// Whether large copies are staged (see [`Cuda::set_staging`]).
    staging: Cell<bool>,
}

// SAFETY: the cuBLAS handle and the stream are only used while the Mutex around `Cuda` is held,
// and the context is bound to the calling thread before each use.
unsafe impl Send for Cuda {}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Compiles every kernel source to PTX for `arch` ("compute_80", "compute_90", …). Needs only
/// NVRTC, no GPU; the CI uses it to check that every kernel compiles.
pub fn compile_all(arch: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let nv = nvrtc::nvrtc()?;
    KERNELS
        .iter()
        .map(|(name, src)| nv.compile(src, name, arch).map(|p| (name.to_string(), p)))
        .collect()
}

/// The highest PTX ISA version (major, minor) the JIT of a driver of `cuda_version`
/// (cuDriverGetVersion: 1000 · major + 10 · minor) accepts, for the CUDA 12 and 13 drivers.
pub fn ptx_isa_for_driver(cuda_version: i32) -> Option<(u32, u32)> {
    let (major, minor) = (cuda_version / 1000, cuda_version % 1000 / 10);
    match (major, minor) {
        (12, m @ 0..=5) => Some((8, m as u32)),
        (12, 6) => Some((8, 5)),
        (12, 7) => Some((8, 6)),
        (12, 8) => Some((8, 7)),
        (12, _) => Some((8, 8)),
        (13, m) => Some((9, m.min(9) as u32)),
        _ => None,
    }
}

/// `ptx` with its `.version` directive set to `isa` when the text declares a newer one.
pub fn with_ptx_version(ptx: &str, isa: (u32, u32)) -> String {
    let mut out = String::with_capacity(ptx.len());
    for line in ptx.split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(".version ") {
            let v: Vec<u32> = rest
                .trim()
                .split('.')
                .filter_map(|x| x.parse().ok())
                .collect();
            if v.len() == 2 && (v[0], v[1]) > isa {
                out.push_str(&format!(".version {}.{}\n", isa.0, isa.1));
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

fn init() -> std::result::Result<Cuda, String> {
    // SAFETY: only tries to open the driver library; no symbol is called.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("no CUDA driver: libcuda could not be loaded".into());
    }
    let nv = nvrtc::nvrtc()?;
    let n = CudaContext::device_count().map_err(|e| format!("CUDA driver unusable: {e:?}"))?;
    if n < 1 {
        return Err("no CUDA device".into());
    }
    let ctx = CudaContext::new(0).map_err(|e| format!("no usable CUDA device: {e:?}"))?;
    let (major, minor) = ctx.compute_capability().map_err(|e| format!("{e:?}"))?;
    let info_name = ctx.name().map_err(|e| format!("{e:?}"))?;
    let total = ctx.total_mem().map_err(|e| format!("{e:?}"))? as u64;
    // PTX for the device's own architecture, capped at what this NVRTC knows (sm_90 is known to
    // every NVRTC since 11.8; the driver JIT-compiles PTX forward to newer devices).
    let arch_num = (major * 10 + minor).min(90);
    let arch = format!("compute_{arch_num}");
    let mut driver_version = 0i32;
    // SAFETY: writes one int; the driver library is loaded (checked above).
    let _ = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut driver_version) };
    let mut modules = Vec::new();
    for (file, src) in KERNELS {
        let ptx = nv
            .compile(src, file, &arch)
            .map_err(|e| format!("kernel compilation failed: {e}"))?;
        let loaded = ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx.clone()));
        let module = match loaded {
            Ok(m) => m,
            Err(first) => {
                // An NVRTC newer than the driver writes a PTX ISA version the driver's JIT does
                // not know. The kernels use nothing beyond PTX 7.8, so the text is declared at
                // the driver's own ISA version and loaded again.
                let retry = ptx_isa_for_driver(driver_version)
                    .map(|isa| with_ptx_version(&ptx, isa))
                    .filter(|p| *p != ptx)
                    .map(|p| ctx.load_module(cudarc::nvrtc::Ptx::from_src(p)));
                match retry {
                    Some(Ok(m)) => m,
                    _ => {
                        return Err(format!(
                            "loading the kernels of {file} failed: {first:?} (driver CUDA {}.{}, NVRTC {}.{}; an NVRTC no newer than the driver avoids this — set DENSEVEC_NVRTC_PATH)",
                            driver_version / 1000,
                            driver_version % 1000 / 10,
                            nv.version().0,
                            nv.version().1
                        ))
                    }
                }
            }
        };
        modules.push(module);
    }
    let mut funcs = HashMap::new();
    for &name in KERNEL_NAMES {
        let f = modules
            .iter()
            .find_map(|m| m.load_function(name).ok())
            .ok_or_else(|| format!("kernel {name} missing from the compiled modules"))?;
        funcs.insert(name, f);
    }
    let stream = ctx.default_stream();
    // SAFETY: only tries to open libcublas.
    let blas = if unsafe { cudarc::cublas::sys::is_culib_present() } {
        catch_unwind(AssertUnwindSafe(|| CudaBlas::new(stream.clone()).ok()))
            .ok()
            .flatten()
    } else {
        None
    };
    // 3xTF32 where TF32 tensor cores are many times faster than FP32 (A100, H100/H200,
    // B100/B200); on consumer parts (sm_86, sm_89, sm_120) they are not, and SGEMM stays.
    let tf32x3 = blas.is_some()
        && ((major, minor) == (8, 0) || major == 9 || major == 10)
        && std::env::var("DENSEVEC_CUDA_GEMM").as_deref() != Ok("fp32");
    let gemm = if tf32x3 {
        "3xTF32"
    } else if blas.is_some() {
        "FP32"
    } else {
        "FP32 kernel"
    };
    Ok(Cuda {
        tf32x3,
        info: DeviceInfo {
            gemm: gemm.into(),
            name: info_name,
            total_memory: total,
            compute_capability: (major, minor),
            cublas: blas.is_some(),
            nvrtc: nv.path.clone(),
            nvrtc_version: nv.version(),
            driver_cuda: (driver_version / 1000, driver_version % 1000 / 10),
        },
        blas,
        stream,
        stage: RefCell::new(None),
        staging: Cell::new(true),
        _modules: modules,
        funcs,
        ctx,
    })
}

impl Cuda {
    /// What the device is.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn bind(&self) -> std::result::Result<(), String> {
        self.ctx.bind_to_thread().map_err(|e| format!("{e:?}"))
    }

    /// Whether copies of [`stage::DIRECT_BELOW`] bytes and more go through the page-locked
    /// staging buffers (the default) or straight through the driver (to compare the two).
    pub fn set_staging(&self, on: bool) {
        self.staging.set(on);
    }

    /// Runs `f` with the staging buffers when a copy of `bytes` should be staged and they can
    /// be had; `None` means: copy directly.
    fn staged<T>(
        &self,
        bytes: usize,
        f: impl FnOnce(
            &mut stage::Staging,
            cudarc::driver::sys::CUstream,
        ) -> std::result::Result<T, String>,
    ) -> Option<std::result::Result<T, String>> {
        if bytes < stage::DIRECT_BELOW || !self.staging.get() {
            return None;
        }
        let mut slot = self.stage.borrow_mut();
        let st = slot
            .get_or_insert_with(|| stage::Staging::new().ok())
            .as_mut()?;
        Some(f(st, self.stream.cu_stream()))
    }
}

impl Device for Cuda {
    fn alloc(&self, bytes: usize) -> std::result::Result<DevPtr, String> {
        self.bind()?;
        // SAFETY: a plain allocation, zeroed below before it is used.
        unsafe {
            let p = drv::malloc_sync(bytes.max(1))
                .map_err(|e| format!("allocating {bytes} bytes: {e:?}"))?;
            if let Err(e) = drv::memset_d8_sync(p, 0, bytes.max(1)) {
                let _ = drv::free_sync(p);
                return Err(format!("{e:?}"));
            }
            Ok(p)
        }
    }
    fn free(&self, p: DevPtr) {
        // SAFETY: p came from alloc; pending work on the stream is ordered before the free by
        // the synchronous free (cuMemFree waits for the device).
        let _ = self.bind();
        let _ = self.stream.synchronize();
        unsafe {
            let _ = drv::free_sync(p);
        }
    }
    fn htod(&self, src: &[u8], dst: DevPtr) -> std::result::Result<(), String> {
        self.bind()?;
        // SAFETY: dst holds at least src.len() bytes (the callers' Buf checks ranges).
        if let Some(r) = self.staged(src.len(), |st, s| unsafe { st.htod(src, dst, s) }) {
            return r;
        }
        self.stream.synchronize().map_err(|e| format!("{e:?}"))?;
        // SAFETY: dst holds at least src.len() bytes (the callers' Buf checks ranges).
        unsafe { drv::memcpy_htod_sync(dst, src) }.map_err(|e| format!("{e:?}"))
    }
    fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> std::result::Result<(), String> {
        self.bind()?;
        let len = dst.len();
        // SAFETY: src holds at least dst.len() bytes (as below).
        if let Some(r) = self.staged(len, |st, s| unsafe { st.dtoh(src, dst, s) }) {
            return r;
        }
        self.stream.synchronize().map_err(|e| format!("{e:?}"))?;
        // SAFETY: as above.
        unsafe { drv::memcpy_dtoh_sync(dst, src) }.map_err(|e| format!("{e:?}"))
    }
    fn zero(&self, p: DevPtr, bytes: usize) -> std::result::Result<(), String> {
        self.bind()?;
        self.stream.synchronize().map_err(|e| format!("{e:?}"))?;
        // SAFETY: p holds at least `bytes` bytes.
        unsafe { drv::memset_d8_sync(p, 0, bytes) }.map_err(|e| format!("{e:?}"))
    }
    fn launch(&self, name: &str, l: Launch, args: &[Arg]) -> std::result::Result<(), String> {
        self.bind()?;
        let f = self
            .funcs
            .get(name)
            .ok_or_else(|| format!("unknown kernel {name}"))?;
        let mut params: Vec<*mut c_void> = args.iter().map(|a| a.as_param()).collect();
        // SAFETY: the argument list matches the kernel's C signature (checked by the emulator
        // tests, which call the same kernels through the same lists); `args` outlives the
        // call, and cuLaunchKernel copies the values before returning.
        unsafe {
            drv::launch_kernel(
                f.cu_function(),
                (l.grid[0], l.grid[1], l.grid[2]),
                (l.block[0], l.block[1], l.block[2]),
                0,
                self.stream.cu_stream(),
                &mut params,
            )
        }
        .map_err(|e| format!("launching {name}: {e:?}"))
    }
    fn sgemm(&self, g: &Sgemm) -> std::result::Result<(), String> {
        self.bind()?;
        let op = |t: bool| {
            if t {
                blas_sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                blas_sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        if let Some(blas) = &self.blas {
            if g.tf32 {
                // SAFETY: as below; TF32 tensor-core products with FP32 accumulation.
                return unsafe {
                    blas_result::gemm_ex(
                        *blas.handle(),
                        op(g.transa),
                        op(g.transb),
                        g.m,
                        g.n,
                        g.k,
                        &g.alpha as *const f32 as *const c_void,
                        g.a as *const c_void,
                        blas_sys::cudaDataType::CUDA_R_32F,
                        g.lda,
                        g.b as *const c_void,
                        blas_sys::cudaDataType::CUDA_R_32F,
                        g.ldb,
                        &g.beta as *const f32 as *const c_void,
                        g.c as *mut c_void,
                        blas_sys::cudaDataType::CUDA_R_32F,
                        g.ldc,
                        blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32,
                        blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                    )
                }
                .map_err(|e| format!("cuBLAS GemmEx (TF32): {e:?}"));
            }
            // SAFETY: the callers size every operand for these dimensions (the emulator tests
            // check the ranges of the same calls); alpha/beta live on the host.
            unsafe {
                blas_result::sgemm(
                    *blas.handle(),
                    op(g.transa),
                    op(g.transb),
                    g.m,
                    g.n,
                    g.k,
                    &g.alpha,
                    g.a as *const f32,
                    g.lda,
                    g.b as *const f32,
                    g.ldb,
                    &g.beta,
                    g.c as *mut f32,
                    g.ldc,
                )
            }
            .map_err(|e| format!("cuBLAS SGEMM: {e:?}"))
        } else {
            dev::sgemm_by_kernel(self, g)
        }
    }
    fn sync(&self) -> std::result::Result<(), String> {
        self.bind()?;
        self.stream.synchronize().map_err(|e| format!("{e:?}"))
    }
    fn tf32x3(&self) -> bool {
        self.tf32x3
    }
    fn block_cap(&self) -> usize {
        // A sixteenth of the device, at least 1 GiB: on an H200 (140 GB) InfoNCE at
        // B = 65,536 then runs in blocks of 16,384 logit rows, whose chunked gradient GEMMs
        // still fill the device (blocks of 2,048 left most of it idle).
        ((self.info.total_memory / 16) as usize).max(1 << 30)
    }
    fn budget(&self) -> usize {
        if self.bind().is_err() {
            return 0;
        }
        drv::mem_get_info()
            .map(|(free, _)| free / 10 * 8)
            .unwrap_or(0)
    }
}

/// The device (its description kept outside the lock, so that asking for it never waits for a
/// running computation), or why there is none.
fn gpu() -> std::result::Result<&'static (DeviceInfo, Mutex<Cuda>), String> {
    static G: OnceLock<std::result::Result<(DeviceInfo, Mutex<Cuda>), String>> = OnceLock::new();
    G.get_or_init(|| {
        if std::env::var("DENSEVEC_CUDA")
            .map(|v| v == "0")
            .unwrap_or(false)
        {
            return Err("disabled by DENSEVEC_CUDA=0".into());
        }
        match catch_unwind(init) {
            Ok(r) => r.map(|g| (g.info.clone(), Mutex::new(g))),
            Err(p) => Err(format!("CUDA initialisation failed: {}", panic_text(p))),
        }
    })
    .as_ref()
    .map_err(|e| e.clone())
}

/// Whether the libraries open, independently of a device: (driver, NVRTC, cuBLAS). For
/// diagnostics; never panics.
pub fn libraries_present() -> (bool, bool, bool) {
    // SAFETY: these only try to open the libraries; no symbol is called.
    let driver =
        catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() }).unwrap_or(false);
    let blas = catch_unwind(|| unsafe { cudarc::cublas::sys::is_culib_present() }).unwrap_or(false);
    (driver, nvrtc::nvrtc().is_ok(), blas)
}

/// The device the backend runs on, or why it cannot run. Never panics; the answer is computed
/// once per process.
pub fn available() -> std::result::Result<DeviceInfo, String> {
    Ok(gpu()?.0.clone())
}

/// Runs `f` with the device locked; maps unavailability and panics to `E_BACKEND`. After `f`
/// the stream is synchronized so that a failure inside the device surfaces here.
pub fn with_gpu<T>(func: &str, f: impl FnOnce(&mut Cuda) -> Result<T>) -> Result<T> {
    let g = gpu().map_err(|r| {
        Error::new(
            Code::Backend,
            format!("{func}: the CUDA backend is not available: {r}"),
        )
    })?;
    let mut g = g.1.lock().unwrap_or_else(|p| p.into_inner());
    match catch_unwind(AssertUnwindSafe(|| {
        let r = f(&mut g)?;
        g.sync()
            .map_err(|e| Error::new(Code::Backend, format!("{func}: CUDA error: {e}")))?;
        Ok(r)
    })) {
        Ok(r) => r,
        Err(p) => Err(Error::new(
            Code::Backend,
            format!("{func}: CUDA failure: {}", panic_text(p)),
        )),
    }
}

/// Runs `op` on the GPU: its argument checks (the core's, so the errors are the CPU's) before
/// the device question, then the device part with the device locked (see [`with_gpu`]).
pub fn run<O: GpuOp>(op: &O) -> Result<O::Out> {
    let host = op.prepare()?;
    with_gpu(O::NAME, |g| op.run(g, host))
}

/// Declares an operation's argument struct (its [`GpuOp`] is in [`ops`]) and the function of
/// the same arguments, in order, that runs it on the GPU: one list for both.
macro_rules! gpu_fn {
    ($(#[$doc:meta])* $name:ident, $args:ident { $($arg:ident: $ty:ty),* $(,)? } -> $out:ty) => {
        #[doc = concat!("The arguments of [`", stringify!($name), "`], for [`run`] or [`ops::on`].")]
        #[derive(Clone, Copy, Debug)]
        pub struct $args<'a> {
            $(pub $arg: $ty),*
        }

        $(#[$doc])*
        pub fn $name<'a>($($arg: $ty),*) -> Result<$out> {
            run(&$args { $($arg),* })
        }
    };
}

gpu_fn!(
    /// q.rows × c.rows similarity on the GPU; same contract and errors as the CPU's
    /// `similarity_matrix`.
    similarity_matrix, SimilarityArgs {
        q: &'a [f32], q_rows: usize, c: &'a [f32], c_rows: usize, cols: usize, metric: Metric,
    } -> Vec<f32>
);

gpu_fn!(
    /// Exact top-k on the GPU, k ≤ [`KMAX`]; same contract and errors as the CPU's `top_k`.
    top_k, TopKArgs {
        q: &'a [f32], q_rows: usize, c: &'a [f32], c_rows: usize, cols: usize, k: usize,
        metric: Metric,
    } -> TopK
);

gpu_fn!(
    /// InfoNCE on the GPU; same contract, checks and results as the CPU.
    info_nce, InfoNceArgs {
        q: &'a [f32], b: usize, keys: &'a [f32], n: usize, d: usize, o: &'a InfoNceOpts<'a>,
    } -> InfoNce
);

gpu_fn!(
    /// NT-Xent on the GPU.
    nt_xent, NtXentArgs {
        a: &'a [f32], b: &'a [f32], rows: usize, d: usize, temperature: f64,
    } -> NtXent
);

gpu_fn!(
    /// Margin softmax on the GPU.
    margin_softmax, MarginArgs {
        x: &'a [f32], n: usize, w: &'a [f32], c: usize, d: usize, labels: &'a [u32],
        o: &'a MarginOpts,
    } -> MarginSoftmax
);

gpu_fn!(
    /// The Wasserstein regularizer on the GPU.
    wasserstein_regularizer, WassersteinArgs {
        a: &'a [f32], b: &'a [f32], n: usize, d: usize, p: u32,
    } -> Wasserstein
);

/// Multiply-adds per byte moved to or from the device that one CPU thread matches: on an H200
/// host, a thread of the CPU core does about 34 GMAC/s on these GEMMs and the staged copies
/// move about 27 GB/s, so a call moving B bytes gains on the GPU only above about
/// 1.26 · threads · B multiply-adds (top-k with 100 queries over 100k × 768 rows, 16 threads:
/// 13.0 ms on the GPU, 14.3 ms on the CPU; with 8 queries over 1M rows: 131 ms against 39 ms).
const MAC_PER_BYTE_PER_THREAD: f64 = 1.25;

/// Whether the `'auto'` backend sends a call of `work` multiply-adds moving `bytes` between
/// host and device to the GPU: its work reaches `min_work`, and there is enough of it per byte
/// moved to beat `threads` CPU threads.
pub fn auto_takes_gpu(work: f64, bytes: f64, threads: usize, min_work: f64) -> bool {
    work >= min_work && work >= MAC_PER_BYTE_PER_THREAD * threads.max(1) as f64 * bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_weighs_the_bytes_moved_against_the_work() {
        let min = 2e9;
        // topK, 16 threads: 100 queries over 100k × 768 rows go to the GPU, 8 over 1M do not.
        let topk = |q: f64, c: f64| (q * c * 768.0, 4.0 * (q + c) * 768.0);
        let (w, b) = topk(100.0, 1e5);
        assert!(auto_takes_gpu(w, b, 16, min));
        let (w, b) = topk(8.0, 1e6);
        assert!(!auto_takes_gpu(w, b, 16, min));
        // Against one CPU thread the 8-query call pays on the GPU (about 180 ms of CPU work
        // against a 3 GB upload at 27 GB/s); with 2 it does not. Below the work threshold
        // nothing goes.
        assert!(auto_takes_gpu(w, b, 1, min));
        assert!(!auto_takes_gpu(w, b, 2, min));
        assert!(!auto_takes_gpu(1e9, 0.0, 1, min));
        // Compute-bound forms move nothing that counts.
        assert!(auto_takes_gpu(3e10, 0.0, 64, min));
    }

    /// Points DENSEVEC_NVRTC_PATH at the `nvidia-cuda-nvrtc` wheel of the local python3 when
    /// it is not set, before any test opens NVRTC.
    fn find_nvrtc() -> std::result::Result<&'static nvrtc::Nvrtc, String> {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if std::env::var_os("DENSEVEC_NVRTC_PATH").is_some() {
                return;
            }
            let code = "import site; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()]))";
            let Ok(out) = std::process::Command::new("python3").args(["-c", code]).output() else { return };
            for dir in String::from_utf8_lossy(&out.stdout).lines() {
                for sub in ["nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib", "nvidia/cu12/lib"] {
                    let p = std::path::Path::new(dir).join(sub);
                    if p.is_dir() {
                        std::env::set_var("DENSEVEC_NVRTC_PATH", &p);
                        return;
                    }
                }
            }
        });
        nvrtc::nvrtc()
    }

    /// Every kernel compiles to PTX for Ampere and Hopper. Needs NVRTC (the `nvidia-cuda-nvrtc`
    /// wheel, found through python3 or DENSEVEC_NVRTC_PATH), not a GPU. Where NVRTC cannot be
    /// installed (macOS) the test reports that and passes, unless DENSEVEC_REQUIRE_NVRTC=1 (set
    /// by the CI script on Linux) makes a missing NVRTC a failure.
    #[test]
    fn every_kernel_compiles_for_sm80_and_sm90() {
        if let Err(e) = find_nvrtc() {
            if std::env::var("DENSEVEC_REQUIRE_NVRTC").as_deref() == Ok("1") {
                panic!("DENSEVEC_REQUIRE_NVRTC=1 but {e}; run `python3 -m pip install nvidia-cuda-nvrtc`");
            }
            eprintln!("NO NVRTC: kernel compilation NOT checked ({e}); `python3 -m pip install nvidia-cuda-nvrtc` enables it");
            return;
        }
        let nv = find_nvrtc().expect("checked above");
        eprintln!("NVRTC {:?} from {}", nv.version(), nv.path);
        for arch in ["compute_80", "compute_90"] {
            let ptx = compile_all(arch).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(ptx.len(), KERNELS.len());
            for (name, p) in &ptx {
                let target = format!(".target sm_{}", &arch[8..]);
                assert!(p.contains(&target), "{name}: no {target} in PTX");
            }
            for k in KERNEL_NAMES {
                assert!(
                    ptx.iter().any(|(_, p)| p.contains(&format!(".entry {k}("))),
                    "kernel {k} missing from the PTX for {arch}"
                );
            }
        }
    }

    /// The PTX retry for drivers older than NVRTC: the ISA table and the rewrite of the
    /// `.version` directive (only downwards), on real NVRTC output when NVRTC is present.
    #[test]
    fn ptx_version_follows_the_driver() {
        assert_eq!(ptx_isa_for_driver(12040), Some((8, 4)));
        assert_eq!(ptx_isa_for_driver(12080), Some((8, 7)));
        assert_eq!(ptx_isa_for_driver(13000), Some((9, 0)));
        assert_eq!(ptx_isa_for_driver(11080), None);
        let text = "//\n.version 9.1\n.target sm_90\n.address_size 64\n";
        assert_eq!(
            with_ptx_version(text, (8, 4)),
            "//\n.version 8.4\n.target sm_90\n.address_size 64\n"
        );
        assert_eq!(with_ptx_version(text, (9, 2)), text);
        if let Ok(ptx) = find_nvrtc().and_then(|_| compile_all("compute_90")) {
            for (_, p) in ptx {
                let q = with_ptx_version(&p, (8, 0));
                assert!(q.contains(".version 8.0\n"), "{}", &q[..200.min(q.len())]);
                assert_eq!(q.matches(".version").count(), 1);
                assert!(q.contains(".target sm_90"));
            }
        }
    }

    /// A broken kernel is reported with NVRTC's log, not a panic.
    #[test]
    fn compile_errors_carry_the_log() {
        let Ok(nv) = find_nvrtc() else { return };
        let e = nv
            .compile(
                "extern \"C\" __global__ void f() { undefined_name(); }",
                "bad.cu",
                "compute_80",
            )
            .unwrap_err();
        assert!(e.contains("undefined_name"), "{e}");
    }

    /// Without a GPU, availability is an explanation, and calls fail with E_BACKEND.
    #[test]
    fn unavailable_is_explained_not_panicked() {
        let _ = find_nvrtc();
        match available() {
            Ok(info) => {
                assert!(!info.name.is_empty());
                assert!(info.compute_capability.0 >= 3);
            }
            Err(reason) => {
                assert!(!reason.is_empty());
                let e = similarity_matrix(&[1.0], 1, &[1.0], 1, 1, Metric::Dot).unwrap_err();
                assert_eq!(e.code, Code::Backend);
                assert!(e.msg.contains(&reason), "{}", e.msg);
            }
        }
    }

    /// Argument errors come before the device question.
    #[test]
    fn shapes_are_checked_first() {
        assert_eq!(
            similarity_matrix(&[1.0, 2.0], 1, &[1.0], 1, 1, Metric::Dot)
                .unwrap_err()
                .code,
            Code::Shape
        );
        assert_eq!(
            top_k(&[1.0], 1, &[1.0], 1, 1, 2, Metric::Dot)
                .err()
                .map(|e| e.code),
            Some(Code::Arg)
        );
    }
}
