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

use cudarc::cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtrMut, LaunchConfig, PushKernelArg,
};
use densevec_core::error::check_matrix;
use densevec_core::similarity::Metric;
use densevec_core::topk::TopK;
use densevec_core::{Code, Error, Result};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

/// The CUDA C sources of the backend: (file name, source).
pub const KERNELS: &[(&str, &str)] = &[("similarity.cu", include_str!("../kernels/similarity.cu"))];

/// Largest k the fused GPU selection supports (`DV_KMAX` in similarity.cu); larger k runs on the CPU.
pub const KMAX: usize = 128;
const TOPK_THREADS: u32 = 256;

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
}

struct Gpu {
    _ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: Option<CudaBlas>,
    sumsq: CudaFunction,
    aux: CudaFunction,
    finish: CudaFunction,
    gemm: CudaFunction,
    topk: CudaFunction,
    info: DeviceInfo,
}

// SAFETY: the cuBLAS handle and the stream are only used while the Mutex around `Gpu` is held,
// and cudarc binds the context to the calling thread before each driver call.
unsafe impl Send for Gpu {}

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

fn init() -> std::result::Result<Gpu, String> {
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
    let ptx = nv
        .compile(KERNELS[0].1, KERNELS[0].0, &arch)
        .map_err(|e| format!("kernel compilation failed: {e}"))?;
    let module = ctx
        .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
        .map_err(|e| format!("loading the kernels failed: {e:?}"))?;
    let f = |name: &str| {
        module
            .load_function(name)
            .map_err(|e| format!("kernel {name} missing: {e:?}"))
    };
    let stream = ctx.default_stream();
    // SAFETY: only tries to open libcublas.
    let blas = if unsafe { cudarc::cublas::sys::is_culib_present() } {
        catch_unwind(AssertUnwindSafe(|| CudaBlas::new(stream.clone()).ok()))
            .ok()
            .flatten()
    } else {
        None
    };
    Ok(Gpu {
        sumsq: f("dv_row_sumsq")?,
        aux: f("dv_aux")?,
        finish: f("dv_finish")?,
        gemm: f("dv_gemm_nt")?,
        topk: f("dv_topk_merge")?,
        info: DeviceInfo {
            name: info_name,
            total_memory: total,
            compute_capability: (major, minor),
            cublas: blas.is_some(),
            nvrtc: nv.path.clone(),
        },
        blas,
        stream,
        _ctx: ctx,
    })
}

/// The device (its description kept outside the lock, so that asking for it never waits for a
/// running computation), or why there is none.
fn gpu() -> std::result::Result<&'static (DeviceInfo, Mutex<Gpu>), String> {
    static G: OnceLock<std::result::Result<(DeviceInfo, Mutex<Gpu>), String>> = OnceLock::new();
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

fn backend_err(func: &str, e: impl std::fmt::Debug) -> Error {
    Error::new(Code::Backend, format!("{func}: CUDA error: {e:?}"))
}

/// Runs `f` with the device locked; maps unavailability and panics to `E_BACKEND`.
fn with_gpu<T>(func: &str, f: impl FnOnce(&mut Gpu) -> Result<T>) -> Result<T> {
    let g = gpu().map_err(|r| {
        Error::new(
            Code::Backend,
            format!("{func}: the CUDA backend is not available: {r}"),
        )
    })?;
    let mut g = g.1.lock().unwrap_or_else(|p| p.into_inner());
    match catch_unwind(AssertUnwindSafe(|| f(&mut g))) {
        Ok(r) => r,
        Err(p) => Err(Error::new(
            Code::Backend,
            format!("{func}: CUDA failure: {}", panic_text(p)),
        )),
    }
}

fn metric_code(m: Metric) -> i32 {
    match m {
        Metric::Dot => 0,
        Metric::Cosine => 1,
        Metric::L2sq => 2,
    }
}

fn ci(func: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::new(
            Code::Arg,
            format!("{func}: dimension {v} too large for the CUDA backend"),
        )
    })
}

impl Gpu {
    /// Per-row auxiliaries (squared norms / inverse norms) of a device matrix.
    fn aux_of(
        &self,
        func: &str,
        x: &CudaSlice<f32>,
        rows: usize,
        cols: usize,
        metric: i32,
    ) -> Result<CudaSlice<f32>> {
        let mut out = self
            .stream
            .alloc_zeros::<f32>(rows.max(1))
            .map_err(|e| backend_err(func, e))?;
        let (r, c) = (ci(func, rows)?, ci(func, cols)?);
        let blocks = (rows as u32 * 32).div_ceil(256);
        // SAFETY: argument types match the kernel signatures in similarity.cu; sizes are in range.
        unsafe {
            self.stream
                .launch_builder(&self.sumsq)
                .arg(x)
                .arg(&r)
                .arg(&c)
                .arg(&mut out)
                .launch(LaunchConfig {
                    grid_dim: (blocks.max(1), 1, 1),
                    block_dim: (256, 1, 1),
                    shared_mem_bytes: 0,
                })
                .map_err(|e| backend_err(func, e))?;
            self.stream
                .launch_builder(&self.aux)
                .arg(&mut out)
                .arg(&r)
                .arg(&metric)
                .launch(LaunchConfig::for_num_elems(rows.max(1) as u32))
                .map_err(|e| backend_err(func, e))?;
        }
        Ok(out)
    }

    /// out[i*ld + j] = Σ_k a[i,k] b[j,k] for a: m×d (offset a_off rows), b: n×d (offset b_off rows).
    #[allow(clippy::too_many_arguments)]
    fn gemm_nt(
        &self,
        func: &str,
        a: &CudaSlice<f32>,
        a_off: usize,
        m: usize,
        b: &CudaSlice<f32>,
        b_off: usize,
        n: usize,
        d: usize,
        out: &mut CudaSlice<f32>,
        ld: usize,
    ) -> Result<()> {
        let av = a.slice(a_off * d..(a_off + m) * d);
        let bv = b.slice(b_off * d..(b_off + n) * d);
        if let Some(blas) = &self.blas {
            // Row-major out (m×n, ld) is column-major outᵀ (n×m): outᵀ = b · aᵀ, with b and a
            // read as column-major d×n and d×m.
            let cfg = GemmConfig {
                transa: cublasOperation_t::CUBLAS_OP_T,
                transb: cublasOperation_t::CUBLAS_OP_N,
                m: ci(func, n)?,
                n: ci(func, m)?,
                k: ci(func, d)?,
                alpha: 1.0f32,
                lda: ci(func, d)?,
                ldb: ci(func, d)?,
                beta: 0.0f32,
                ldc: ci(func, ld)?,
            };
            // SAFETY: the views hold m×d and n×d values; out holds at least m rows of ld ≥ n.
            unsafe { blas.gemm(cfg, &bv, &av, out) }.map_err(|e| backend_err(func, e))?;
        } else {
            let (mi, ni, di, ldl) = (ci(func, m)?, ci(func, n)?, ci(func, d)?, ld as i64);
            // SAFETY: as above; the kernel bounds-checks every tile edge.
            unsafe {
                self.stream
                    .launch_builder(&self.gemm)
                    .arg(&av)
                    .arg(&bv)
                    .arg(out)
                    .arg(&mi)
                    .arg(&ni)
                    .arg(&di)
                    .arg(&ldl)
                    .launch(LaunchConfig {
                        grid_dim: (
                            (n as u32).div_ceil(64),
                            (m as u32).div_ceil(64).min(65_535),
                            1,
                        ),
                        block_dim: (256, 1, 1),
                        shared_mem_bytes: 0,
                    })
                    .map_err(|e| backend_err(func, e))?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        func: &str,
        out: &mut CudaSlice<f32>,
        m: usize,
        n: usize,
        ld: usize,
        qa: &CudaSlice<f32>,
        qa_off: usize,
        ca: &CudaSlice<f32>,
        ca_off: usize,
        metric: i32,
    ) -> Result<()> {
        if metric == 0 {
            return Ok(());
        }
        let (mi, ni, ldl) = (ci(func, m)?, ci(func, n)?, ld as i64);
        let qv = qa.slice(qa_off..qa_off + m);
        let cv = ca.slice(ca_off..ca_off + n);
        // SAFETY: out holds m rows of ld ≥ n; qv/cv hold m and n auxiliaries.
        unsafe {
            self.stream
                .launch_builder(&self.finish)
                .arg(out)
                .arg(&mi)
                .arg(&ni)
                .arg(&ldl)
                .arg(&qv)
                .arg(&cv)
                .arg(&metric)
                .launch(LaunchConfig {
                    grid_dim: ((n as u32).div_ceil(256), (m as u32).min(65_535), 1),
                    block_dim: (256, 1, 1),
                    shared_mem_bytes: 0,
                })
                .map_err(|e| backend_err(func, e))?;
        }
        Ok(())
    }
}

/// Bytes of scratch a call may hold for one block of scores.
const BLOCK_BYTES: usize = 512 << 20;

/// q.rows × c.rows similarity on the GPU, same contract and formulas as
/// `densevec_core::similarity::similarity_matrix`. Both inputs are uploaded once; the output is
/// produced and copied back in blocks of query rows.
pub fn similarity_matrix(
    q: &[f32],
    q_rows: usize,
    c: &[f32],
    c_rows: usize,
    cols: usize,
    metric: Metric,
) -> Result<Vec<f32>> {
    const F: &str = "cudaSimilarityMatrix";
    check_matrix(F, "q", q, q_rows, cols)?;
    check_matrix(F, "c", c, c_rows, cols)?;
    with_gpu(F, |g| {
        let mut out = vec![0f32; q_rows * c_rows];
        let mc = metric_code(metric);
        let s = g.stream.clone();
        let dq = s.clone_htod(q).map_err(|e| backend_err(F, e))?;
        let dc = s.clone_htod(c).map_err(|e| backend_err(F, e))?;
        let (qa, ca) = if mc != 0 {
            (
                g.aux_of(F, &dq, q_rows, cols, mc)?,
                g.aux_of(F, &dc, c_rows, cols, mc)?,
            )
        } else {
            (
                s.alloc_zeros::<f32>(1).map_err(|e| backend_err(F, e))?,
                s.alloc_zeros::<f32>(1).map_err(|e| backend_err(F, e))?,
            )
        };
        let rows_per = (BLOCK_BYTES / 4 / c_rows.max(1)).clamp(1, q_rows.max(1));
        let mut buf = s
            .alloc_zeros::<f32>(rows_per * c_rows)
            .map_err(|e| backend_err(F, e))?;
        let mut i0 = 0;
        while i0 < q_rows {
            let m = rows_per.min(q_rows - i0);
            g.gemm_nt(F, &dq, i0, m, &dc, 0, c_rows, cols, &mut buf, c_rows)?;
            g.finish(F, &mut buf, m, c_rows, c_rows, &qa, i0, &ca, 0, mc)?;
            s.memcpy_dtoh(
                &buf.slice(0..m * c_rows),
                &mut out[i0 * c_rows..(i0 + m) * c_rows],
            )
            .map_err(|e| backend_err(F, e))?;
            i0 += m;
        }
        s.synchronize().map_err(|e| backend_err(F, e))?;
        Ok(out)
    })
}

/// Exact top-k per query on the GPU, same contract as `densevec_core::topk::top_k` (best first,
/// ties by lower index, NaN last). Queries are uploaded once; the corpus streams through in
/// blocks, each scored by one GEMM and merged into the running best-k lists by a fused
/// selection kernel, so only q.rows × k values come back. k > [`KMAX`] is an `E_ARG` here (the
/// JavaScript layer routes such calls to the CPU).
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
    check_matrix(F, "q", q, q_rows, cols)?;
    check_matrix(F, "c", c, c_rows, cols)?;
    if kk < 1 || kk > c_rows {
        return Err(Error::new(
            Code::Arg,
            format!("{F}: k must be in [1, {c_rows}], got {kk}"),
        ));
    }
    if kk > KMAX {
        return Err(Error::new(
            Code::Arg,
            format!("{F}: k must be at most {KMAX} on the GPU, got {kk}"),
        ));
    }
    with_gpu(F, |g| {
        let mc = metric_code(metric);
        let s = g.stream.clone();
        let dq = s.clone_htod(q).map_err(|e| backend_err(F, e))?;
        let qa = if mc != 0 {
            Some(g.aux_of(F, &dq, q_rows, cols, mc)?)
        } else {
            None
        };
        let mut best_i = s
            .alloc_zeros::<u32>(q_rows * kk)
            .map_err(|e| backend_err(F, e))?;
        let mut best_s = s
            .alloc_zeros::<f32>(q_rows * kk)
            .map_err(|e| backend_err(F, e))?;
        // Corpus rows per block: the score block (q.rows × nb) and the corpus block within budget.
        let nb = (BLOCK_BYTES / 4 / (q_rows + cols).max(1))
            .clamp(1, c_rows)
            .max(kk.min(c_rows));
        let mut scores = s
            .alloc_zeros::<f32>(q_rows * nb)
            .map_err(|e| backend_err(F, e))?;
        let mut dc = s
            .alloc_zeros::<f32>(nb * cols)
            .map_err(|e| backend_err(F, e))?;
        let (qi, ki, mci) = (ci(F, q_rows)?, ci(F, kk)?, mc);
        let mut j0 = 0usize;
        while j0 < c_rows {
            let n = nb.min(c_rows - j0);
            s.memcpy_htod(
                &c[j0 * cols..(j0 + n) * cols],
                &mut dc.slice_mut(0..n * cols),
            )
            .map_err(|e| backend_err(F, e))?;
            g.gemm_nt(F, &dq, 0, q_rows, &dc, 0, n, cols, &mut scores, n)?;
            if let Some(qa) = &qa {
                let ca = g.aux_of(F, &dc, n, cols, mc)?;
                g.finish(F, &mut scores, q_rows, n, n, qa, 0, &ca, 0, mc)?;
            }
            let have = if j0 == 0 { 0 } else { ki };
            let (ni, ldl, j0u) = (
                ci(F, n)?,
                n as i64,
                u32::try_from(j0)
                    .map_err(|_| Error::new(Code::Arg, format!("{F}: corpus too large")))?,
            );
            let _ = qi;
            // SAFETY: scores holds q.rows rows of n; best_* hold q.rows × k; k ≤ KMAX.
            unsafe {
                s.launch_builder(&g.topk)
                    .arg(&scores)
                    .arg(&ni)
                    .arg(&ldl)
                    .arg(&j0u)
                    .arg(&ki)
                    .arg(&have)
                    .arg(&mci)
                    .arg(&mut best_i)
                    .arg(&mut best_s)
                    .launch(LaunchConfig {
                        grid_dim: (q_rows as u32, 1, 1),
                        block_dim: (TOPK_THREADS, 1, 1),
                        shared_mem_bytes: 0,
                    })
                    .map_err(|e| backend_err(F, e))?;
            }
            j0 += n;
        }
        let indices = s.clone_dtoh(&best_i).map_err(|e| backend_err(F, e))?;
        let scores = s.clone_dtoh(&best_s).map_err(|e| backend_err(F, e))?;
        s.synchronize().map_err(|e| backend_err(F, e))?;
        Ok(TopK { indices, scores })
    })
}

/// Device-side timing helpers for the GPU check (not part of the public contract).
pub mod bench {
    use super::*;

    /// Median milliseconds of `reps` runs of (a) the device part of similarityMatrix (GEMM +
    /// epilogue on resident data) and (b) a bare GEMM of the same shape.
    pub fn similarity_vs_gemm(
        m: usize,
        n: usize,
        d: usize,
        metric: Metric,
        reps: usize,
    ) -> Result<(f64, f64, bool)> {
        const F: &str = "bench";
        with_gpu(F, |g| {
            let s = g.stream.clone();
            let a: Vec<f32> = (0..m * d)
                .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
                .collect();
            let b: Vec<f32> = (0..n * d)
                .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
                .collect();
            let da = s.clone_htod(&a).map_err(|e| backend_err(F, e))?;
            let db = s.clone_htod(&b).map_err(|e| backend_err(F, e))?;
            let mut out = s.alloc_zeros::<f32>(m * n).map_err(|e| backend_err(F, e))?;
            let mc = metric_code(metric);
            let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
                f()?;
                s.synchronize().map_err(|e| backend_err(F, e))?;
                let mut t = Vec::new();
                for _ in 0..reps {
                    let t0 = std::time::Instant::now();
                    f()?;
                    s.synchronize().map_err(|e| backend_err(F, e))?;
                    t.push(t0.elapsed().as_secs_f64() * 1e3);
                }
                t.sort_by(|x, y| x.total_cmp(y));
                Ok(t[t.len() / 2])
            };
            let sim = time(&mut || {
                if mc != 0 {
                    let qa = g.aux_of(F, &da, m, d, mc)?;
                    let ca = g.aux_of(F, &db, n, d, mc)?;
                    g.gemm_nt(F, &da, 0, m, &db, 0, n, d, &mut out, n)?;
                    g.finish(F, &mut out, m, n, n, &qa, 0, &ca, 0, mc)
                } else {
                    g.gemm_nt(F, &da, 0, m, &db, 0, n, d, &mut out, n)
                }
            })?;
            let raw = time(&mut || g.gemm_nt(F, &da, 0, m, &db, 0, n, d, &mut out, n))?;
            let _ = out.device_ptr_mut(&s);
            Ok((sim, raw, g.blas.is_some()))
        })
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
                for k in [
                    "dv_row_sumsq",
                    "dv_aux",
                    "dv_finish",
                    "dv_gemm_nt",
                    "dv_topk_merge",
                ] {
                    assert!(
                        p.contains(&format!(".entry {k}")),
                        "{name}: kernel {k} missing from PTX for {arch}"
                    );
                }
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
