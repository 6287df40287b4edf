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

use cudarc::cublas::{result as blas_result, sys as blas_sys, CudaBlas};
use cudarc::driver::{result as drv, CudaContext, CudaFunction, CudaModule, CudaStream};
use densevec_core::contrastive::{info_nce_prepare, nt_xent_prepare, InfoNce, InfoNceOpts, NtXent};
use densevec_core::margin::{margin_prepare, MarginOpts, MarginSoftmax};
use densevec_core::regularizers::{wasserstein_check, Wasserstein};
use densevec_core::similarity::Metric;
use densevec_core::topk::TopK;
use densevec_core::{Code, Error, Result};
use dev::{Arg, DevPtr, Device, Launch, Sgemm};
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
    "dv_row_sumsq",
    "dv_aux",
    "dv_finish",
    "dv_sgemm",
    "dv_topk_merge",
    "dv_ce_rows",
    "dv_margin_rows",
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
        },
        blas,
        stream,
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

    /// Runs `f` with cuBLAS switched off (our own GEMM kernel), for the GPU check.
    pub fn without_cublas<T>(&mut self, f: impl FnOnce(&Cuda) -> T) -> T {
        let (blas, t) = (self.blas.take(), self.tf32x3);
        self.tf32x3 = false;
        let r = f(self);
        self.blas = blas;
        self.tf32x3 = t;
        r
    }

    /// Runs `f` with the GEMMs as plain FP32 SGEMM (`tf32x3 = false`) or as 3xTF32 (`true`,
    /// where cuBLAS is present), for the GPU check.
    pub fn with_gemm_mode<T>(&mut self, tf32x3: bool, f: impl FnOnce(&Cuda) -> T) -> T {
        let t = self.tf32x3;
        self.tf32x3 = tf32x3 && self.blas.is_some();
        let r = f(self);
        self.tf32x3 = t;
        r
    }

    /// Whether GEMMs run as 3xTF32.
    pub fn gemm_mode_tf32x3(&self) -> bool {
        self.tf32x3
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
        self.stream.synchronize().map_err(|e| format!("{e:?}"))?;
        // SAFETY: dst holds at least src.len() bytes (the callers' Buf checks ranges).
        unsafe { drv::memcpy_htod_sync(dst, src) }.map_err(|e| format!("{e:?}"))
    }
    fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> std::result::Result<(), String> {
        self.bind()?;
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

/// q.rows × c.rows similarity on the GPU (see [`ops::similarity_matrix`]). Argument errors
/// come before the device question.
pub fn similarity_matrix(
    q: &[f32],
    q_rows: usize,
    c: &[f32],
    c_rows: usize,
    cols: usize,
    metric: Metric,
) -> Result<Vec<f32>> {
    const F: &str = "cudaSimilarityMatrix";
    densevec_core::error::check_matrix(F, "q", q, q_rows, cols)?;
    densevec_core::error::check_matrix(F, "c", c, c_rows, cols)?;
    with_gpu(F, |g| {
        ops::similarity_matrix(g, q, q_rows, c, c_rows, cols, metric)
    })
}

/// Exact top-k on the GPU (see [`ops::top_k`]).
#[allow(clippy::too_many_arguments)]
pub fn top_k(
    q: &[f32],
    q_rows: usize,
    c: &[f32],
    c_rows: usize,
    cols: usize,
    kk: usize,
    metric: Metric,
) -> Result<TopK> {
    const F: &str = "cudaTopK";
    ops::check_top_k(F, q, q_rows, c, c_rows, cols, kk)?;
    with_gpu(F, |g| ops::top_k(g, q, q_rows, c, c_rows, cols, kk, metric))
}

/// InfoNCE on the GPU (see [`ops::fused_ce`]); same contract, checks and results as the CPU.
pub fn info_nce(
    q: &[f32],
    b: usize,
    keys: &[f32],
    n: usize,
    d: usize,
    o: &InfoNceOpts,
) -> Result<InfoNce> {
    let p = info_nce_prepare(q, b, keys, n, d, o)?;
    let (loss, gq, gk, ex) = with_gpu("cudaInfoNCE", |g| ops::fused_ce(g, "cudaInfoNCE", &p))?;
    Ok(p.finish_info_nce_with(loss, gq, gk, ex))
}

/// NT-Xent on the GPU (see [`ops::fused_ce`]).
pub fn nt_xent(a: &[f32], b: &[f32], rows: usize, d: usize, temperature: f64) -> Result<NtXent> {
    let p = nt_xent_prepare(a, b, rows, d, temperature)?;
    let (loss, g, _, ex) = with_gpu("cudaNtXent", |dev| ops::fused_ce(dev, "cudaNtXent", &p))?;
    Ok(p.finish_nt_xent_with(loss, g, ex))
}

/// Margin softmax on the GPU (see [`ops::margin_softmax`]).
#[allow(clippy::too_many_arguments)]
pub fn margin_softmax(
    x: &[f32],
    n: usize,
    w: &[f32],
    c: usize,
    d: usize,
    labels: &[u32],
    o: &MarginOpts,
) -> Result<MarginSoftmax> {
    let pr = margin_prepare(x, n, w, c, d, labels, o)?;
    with_gpu("cudaMarginSoftmax", |g| {
        ops::margin_run(g, &pr, n, c, d, labels, o)
    })
}

/// The Wasserstein regularizer on the GPU (see [`ops::wasserstein_regularizer`]).
pub fn wasserstein_regularizer(
    a: &[f32],
    b: &[f32],
    n: usize,
    d: usize,
    p: u32,
) -> Result<Wasserstein> {
    wasserstein_check(a, b, n, d, p)?;
    with_gpu("cudaWassersteinRegularizer", |g| {
        ops::wasserstein_run(g, a, b, n, d, p)
    })
}

/// Device-side timing helpers for the GPU check (not part of the public contract).
pub mod bench {
    use super::*;
    use dev::{gemm_rm, Buf};

    /// Median milliseconds of `reps` timed runs (after one warm-up) of `f`, synchronized.
    fn median(g: &Cuda, reps: usize, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        f()?;
        g.sync().map_err(|e| Error::new(Code::Backend, e))?;
        let mut t = Vec::new();
        for _ in 0..reps.max(1) {
            let t0 = std::time::Instant::now();
            f()?;
            g.sync().map_err(|e| Error::new(Code::Backend, e))?;
            t.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        t.sort_by(|x, y| x.total_cmp(y));
        Ok(t[t.len() / 2])
    }

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i.wrapping_mul(7919).wrapping_add(seed)) % 1000) as f32 / 1000.0 - 0.5)
            .collect()
    }

    /// Median milliseconds of (a) the device part of similarityMatrix on resident data (norms,
    /// the 3xTF32 split when `tf32x3`, the GEMM(s), the epilogue) and (b) a bare FP32 SGEMM of
    /// the same shape (cuBLAS when present); and whether cuBLAS ran.
    pub fn similarity_vs_gemm(
        m: usize,
        n: usize,
        d: usize,
        metric: Metric,
        reps: usize,
        tf32x3: bool,
    ) -> Result<(f64, f64, bool)> {
        const F: &str = "bench";
        with_gpu(F, |g| {
            g.with_gemm_mode(tf32x3, |g| {
                let be = ops::be(F);
                let dev = g as &dyn Device;
                let mc = match metric {
                    Metric::Dot => 0,
                    Metric::Cosine => 1,
                    Metric::L2sq => 2,
                };
                let split = g.gemm_mode_tf32x3();
                let da = Buf::from(dev, &data(m * d, 1)).map_err(&be)?;
                let db = Buf::from(dev, &data(n * d, 2)).map_err(&be)?;
                let flag = Buf::<i32>::zeros(dev, 1).map_err(&be)?;
                let (sa, sb) = if split {
                    (
                        Some(ops::Operand::zeros(dev, F, m * d, true)?),
                        Some(ops::Operand::zeros(dev, F, n * d, true)?),
                    )
                } else {
                    (None, None)
                };
                let out = Buf::<f32>::zeros(dev, m * n).map_err(&be)?;
                let sim = median(g, reps, &mut || {
                    let aux = if mc != 0 {
                        Some((
                            ops::aux_of(dev, F, &da, 0, m, d, mc)?,
                            ops::aux_of(dev, F, &db, 0, n, d, mc)?,
                        ))
                    } else {
                        None
                    };
                    let (a, b) = match (&sa, &sb) {
                        (Some(x), Some(y)) => {
                            ops::split_from(dev, F, &da, x, &flag, m * d)?;
                            ops::split_from(dev, F, &db, y, &flag, n * d)?;
                            (x.at(0), y.at(0))
                        }
                        _ => ((da.ptr, None), (db.ptr, None)),
                    };
                    ops::gemm_x(
                        dev, F, false, true, m, n, d, 1.0, a, d, b, d, 0.0, out.ptr, n,
                    )?;
                    match &aux {
                        Some((qa, ca)) => ops::finish(dev, F, &out, m, n, n, qa, 0, ca, mc),
                        None => Ok(()),
                    }
                })?;
                let raw = median(g, reps, &mut || {
                    gemm_rm(
                        dev, false, true, m, n, d, 1.0, da.ptr, d, db.ptr, d, 0.0, out.ptr, n,
                    )
                    .map_err(ops::be(F))
                })?;
                Ok((sim, raw, g.blas.is_some()))
            })
        })
    }

    /// Median milliseconds of a whole call `f` (host↔device copies included).
    pub fn time_call(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
        f()?;
        let mut t = Vec::new();
        for _ in 0..reps.max(1) {
            let t0 = std::time::Instant::now();
            f()?;
            t.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        t.sort_by(|x, y| x.total_cmp(y));
        Ok(t[t.len() / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
