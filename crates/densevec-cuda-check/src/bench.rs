//! The GPU check's timings: the device part of similarityMatrix against a bare SGEMM of the same
//! shape, end-to-end calls (host in, host out) against the CPU core, and InfoNCE at
//! B = 65,536, d = 768 against the three SGEMMs it is made of. Each timing is the median of a
//! few runs after one warm-up; each row is a JSON object.

use crate::parity::tk;
use crate::{Gemm, GemmMode, Rng, Timed};
use densevec_core::contrastive::{info_nce as cpu_info_nce, nt_xent as cpu_nt_xent, InfoNceOpts};
use densevec_core::margin::{margin_softmax as cpu_margin, MarginKind, MarginOpts};
use densevec_core::regularizers::wasserstein_regularizer as cpu_wasserstein;
use densevec_core::similarity::{similarity_matrix as cpu_sim, Metric};
use densevec_core::topk::top_k as cpu_topk;
use densevec_core::{Code, Error, Result};
use densevec_cuda as cu;
use densevec_cuda::dev::{gemm_rm, Arg, Buf, Device, Launch, Rm};
use densevec_cuda::ops::{self, GpuOp, Operand, Side};
use std::time::Instant;

/// Median milliseconds of `reps` runs of `f` after one warm-up.
pub fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

/// [`median_ms`] of device work, synchronized after each run; the first error stops it.
fn device_ms(dev: &dyn Device, reps: usize, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    let mut err = None;
    let ms = median_ms(reps, || {
        if err.is_none() {
            err = f()
                .and_then(|_| dev.sync().map_err(|e| Error::new(Code::Backend, e)))
                .err();
        }
    });
    err.map_or(Ok(ms), Err)
}

/// Median milliseconds of (a) the device part of similarityMatrix on resident data (norms, the
/// 3xTF32 split when the mode has it, the GEMM(s), the epilogue) and (b) a bare FP32 SGEMM of
/// the same shape (cuBLAS when present); and whether cuBLAS ran. `GemmMode::AsIs` splits only
/// where the call would (`ops::tf32x3_pays`).
pub fn similarity_vs_gemm(
    [m, n, d]: [usize; 3],
    metric: Metric,
    reps: usize,
    mode: GemmMode,
    data: Data,
) -> Result<(f64, f64, bool)> {
    const F: &str = "bench";
    let be = |e: String| Error::new(Code::Backend, e);
    let cublas = cu::available().map(|i| i.cublas).unwrap_or(false);
    cu::with_gpu(F, |g| {
        let dev = &Gemm { inner: g, mode };
        let mc = ops::metric_code(metric);
        let (hq, hc) = data.make(m, n, d);
        let da = Buf::from(dev, &hq).map_err(be)?;
        let db = Buf::from(dev, &hc).map_err(be)?;
        let flag = Buf::<i32>::zeros(dev, 1).map_err(be)?;
        let split = dev.tf32x3() && (mode != GemmMode::AsIs || ops::tf32x3_pays(m, n));
        let sa = Operand::zeros(dev, F, m * d, split)?;
        let sb = Operand::zeros(dev, F, n * d, split)?;
        let (qa, ca) = (
            Buf::<f32>::zeros(dev, m).map_err(be)?,
            Buf::<f32>::zeros(dev, n).map_err(be)?,
        );
        let out = Buf::<f32>::zeros(dev, m * n).map_err(be)?;
        // The split of a call's operands, redone from the resident data (a no-op when plain).
        let split_into = |x: &Buf<f32>, to: &Operand, len: usize| -> Result<()> {
            let Some(lo) = &to.lo else { return Ok(()) };
            let args = [
                x.arg(0),
                Arg::I64(len as i64),
                to.hi.arg(0),
                lo.arg(0),
                flag.arg(0),
            ];
            dev.launch("dv_split_tf32", Launch::elems(len.min(1 << 24)), &args)
                .map_err(be)
        };
        let sim = device_ms(dev, reps, &mut || {
            if mc != 0 {
                ops::aux_into(dev, F, (&da, 0), [m, d], mc, &qa)?;
                ops::aux_into(dev, F, (&db, 0), [n, d], mc, &ca)?;
            }
            split_into(&da, &sa, m * d)?;
            split_into(&db, &sb, n * d)?;
            let ab = if split {
                (sa.n(0, d), sb.t(0, d))
            } else {
                (Rm::n(da.ptr, d).into(), Rm::t(db.ptr, d).into())
            };
            ops::gemm_x(dev, F, [m, n, d], 1.0, ab, 0.0, Rm::n(out.ptr, n))?;
            let sides = (
                Side::plain(&da, 0, d, qa.ptr),
                Side::plain(&db, 0, d, ca.ptr),
            );
            ops::finish(dev, F, &out, [m, n, n, d], sides, mc)
        })?;
        let raw = device_ms(dev, reps, &mut || {
            let (a, b) = (Rm::n(da.ptr, d), Rm::t(db.ptr, d));
            gemm_rm(dev, [m, n, d], 1.0, a, b, 0.0, Rm::n(out.ptr, n)).map_err(be)
        })?;
        Ok((sim, raw, cublas))
    })
}

/// The data of a similarity timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data {
    /// Uniform in [-1, 1): no l2sq pair cancels.
    Random,
    /// Corpus row j is query row j mod m plus noise of 1e-3: the l2sq pair of a row with its
    /// twin cancels and is recomputed directly, with the rest of its 64 × 64 tile computed
    /// alongside (with 100 queries every tile holds such a pair; with 1,024, one in 16).
    NearDuplicates,
}

impl Data {
    fn name(self) -> &'static str {
        match self {
            Data::Random => "random",
            Data::NearDuplicates => "near-duplicates",
        }
    }

    /// Queries (m × d) and corpus (n × d).
    fn make(self, m: usize, n: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
        let mut rng = Rng(0x5eed ^ (m * 31 + n) as u64);
        let q = rng.mat(m, d);
        let c = match self {
            Data::Random => rng.mat(n, d),
            Data::NearDuplicates => (0..n * d)
                .map(|i| q[(i / d % m) * d + i % d] + 1e-3 * rng.value())
                .collect(),
        };
        (q, c)
    }
}

/// Host ↔ device copy rates (GB/s) of `bytes` through the page-locked staging and straight
/// through the driver: [staged htod, direct htod, staged dtoh, direct dtoh].
pub fn copy_rates(bytes: usize, reps: usize) -> Result<[f64; 4]> {
    let be = |e: String| Error::new(Code::Backend, e);
    cu::with_gpu("bench", |g| {
        let host = vec![1u8; bytes];
        let mut back = vec![0u8; bytes];
        let dst = Buf::<u8>::zeros(g, bytes).map_err(be)?;
        let mut rates = [0f64; 4];
        for (i, staged) in [true, false].into_iter().enumerate() {
            g.set_staging(staged);
            let up = device_ms(g, reps, &mut || dst.write(0, &host).map_err(be));
            let down = device_ms(g, reps, &mut || dst.read(0, &mut back).map_err(be));
            g.set_staging(true);
            rates[i] = bytes as f64 / (up? * 1e-3) / 1e9;
            rates[2 + i] = bytes as f64 / (down? * 1e-3) / 1e9;
        }
        Ok(rates)
    })
}

/// One timed run of `op` on the GPU in `mode` after a warm-up, every device call timed
/// ([`Timed`]); the breakdown as a JSON row.
fn breakdown<O: GpuOp>(label: &str, op: &O, mode: GemmMode) -> Option<String> {
    let r = cu::with_gpu("gpu-check", |g| {
        let dev = Gemm { inner: g, mode };
        ops::on(&dev, op).map(drop)?;
        let timed = Timed::new(&dev);
        let t0 = Instant::now();
        ops::on(&timed, op).map(drop)?;
        let total = t0.elapsed().as_secs_f64() * 1e3;
        Ok(timed.report(label, total))
    });
    match r {
        Ok(row) => Some(row),
        Err(e) => {
            println!("breakdown {label}: ERROR {}", e.msg);
            None
        }
    }
}

/// InfoNCE with the GEMMs in `mode`.
fn info_nce_mode(args: &cu::InfoNceArgs, mode: GemmMode) -> Result<()> {
    cu::with_gpu("gpu-check", |g| {
        ops::on(&Gemm { inner: g, mode }, args).map(drop)
    })
}

/// Every timing row, printed and returned as JSON objects.
pub fn run(rng: &mut Rng) -> Vec<String> {
    let metrics = [
        (Metric::Dot, "dot"),
        (Metric::Cosine, "cosine"),
        (Metric::L2sq, "l2sq"),
    ];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut bench = Vec::new();
    // Device part of similarityMatrix vs a bare GEMM of the same shape (target ≥ 80 %).
    // ratio = bare FP32 SGEMM time / our time: ≥ 0.8 is the target; above 1 with 3xTF32.
    let shapes = [(100, 20_000, 768), (1024, 100_000, 768), (4096, 4096, 4096)];
    type Case = ((usize, usize, usize), Metric, &'static str, Data);
    let mut cases: Vec<Case> = Vec::new();
    for &s in &shapes {
        for (metric, mname) in metrics {
            cases.push((s, metric, mname, Data::Random));
        }
    }
    // l2sq's worst case: nearly every pair recomputed directly.
    for &s in &shapes[..2] {
        cases.push((s, Metric::L2sq, "l2sq", Data::NearDuplicates));
    }
    for ((m, n, d), metric, mname, data) in cases {
        for mode in [GemmMode::AsIs, GemmMode::Fp32, GemmMode::Tf32x3] {
            let mode_name = mode.name();
            let dname = data.name();
            match similarity_vs_gemm([m, n, d], metric, 20, mode, data) {
                Ok((sim, raw, cublas)) => {
                    let gf = 2.0 * (m * n * d) as f64 / (sim * 1e-3) / 1e9;
                    println!("similarityMatrix device {m}x{n}x{d} {mname} ({dname}) {mode_name}: {sim:.3} ms ({gf:.0} GFLOP/s), bare SGEMM {raw:.3} ms, ratio {:.2}", raw / sim);
                    bench.push(format!("    {{\"row\": \"similarityMatrix device vs {} SGEMM\", \"gemmMode\": \"{mode_name}\", \"shape\": [{m}, {n}, {d}], \"metric\": \"{mname}\", \"data\": \"{dname}\", \"ms\": {sim:.4}, \"sgemmMs\": {raw:.4}, \"ratio\": {:.4}, \"gflops\": {gf:.1}}}", if cublas { "cuBLAS" } else { "own" }, raw / sim));
                }
                Err(e) => println!("bench {m}x{n}x{d} {mode_name}: ERROR {}", e.msg),
            }
        }
    }
    // Copies: the staging against the driver's pageable path.
    let mb = 256usize;
    match copy_rates(mb << 20, 5) {
        Ok([su, du, sd, dd]) => {
            println!("copies of {mb} MiB: host to device {su:.1} GB/s staged, {du:.1} GB/s direct; device to host {sd:.1} GB/s staged, {dd:.1} GB/s direct");
            bench.push(format!("    {{\"row\": \"copies\", \"bytes\": {}, \"htodStagedGBs\": {su:.2}, \"htodDirectGBs\": {du:.2}, \"dtohStagedGBs\": {sd:.2}, \"dtohDirectGBs\": {dd:.2}}}", mb << 20));
        }
        Err(e) => println!("copies: ERROR {}", e.msg),
    }
    // Where the time of the end-to-end calls goes.
    {
        let (m, n, d) = (100usize, 100_000usize, 768usize);
        let (q, c) = (rng.mat(m, d), rng.mat(n, d));
        let a = tk(&q, m, &c, n, d, 10);
        bench.extend(breakdown(
            &format!("topK {m}x{n}x{d} k=10"),
            &a,
            GemmMode::AsIs,
        ));
        let o = InfoNceOpts {
            temperature: 0.07,
            positives: None,
            log_q: None,
            normalize: true,
        };
        let b = 4096usize;
        let a = cu::InfoNceArgs {
            q: &c[..b * d],
            b,
            keys: &c[b * d..2 * b * d],
            n: b,
            d,
            o: &o,
        };
        bench.extend(breakdown(
            &format!("infoNCE B={b} d={d}"),
            &a,
            GemmMode::AsIs,
        ));
        let (nn, cc, dd) = (4096usize, 10_000usize, 512usize);
        let labels: Vec<u32> = (0..nn).map(|i| (i % cc) as u32).collect();
        let mo = MarginOpts {
            kind: MarginKind::ArcFace,
            scale: 64.0,
            margin: 0.5,
            label_smoothing: 0.0,
        };
        let a = cu::MarginArgs {
            x: &c[..nn * dd],
            n: nn,
            w: &c[nn * dd..(nn + cc) * dd],
            c: cc,
            d: dd,
            labels: &labels,
            o: &mo,
        };
        bench.extend(breakdown(
            &format!("marginSoftmax N={nn} C={cc} d={dd}"),
            &a,
            GemmMode::AsIs,
        ));
    }
    // End to end (host in, host out) vs the CPU core.
    let mut late = Vec::new();
    let mut row = |name: &str, shape: String, g: f64, h: f64| {
        println!("{name} {shape}: GPU {g:.2} ms, CPU ({threads} threads) {h:.2} ms");
        bench.push(format!("    {{\"row\": \"{name}\", \"shape\": \"{shape}\", \"gpuMs\": {g:.3}, \"cpuMs\": {h:.3}, \"cpuThreads\": {threads}}}"));
    };
    {
        let (m, n, d) = (100, 20_000, 768);
        let (q, c) = (rng.mat(m, d), rng.mat(n, d));
        let g = median_ms(10, || {
            drop(cu::similarity_matrix(&q, m, &c, n, d, Metric::Cosine))
        });
        let h = median_ms(5, || drop(cpu_sim(&q, m, &c, n, d, Metric::Cosine)));
        row(
            "similarityMatrix end-to-end",
            format!("{m}x{n}x{d} cosine"),
            g,
            h,
        );
    }
    for &(m, n, d, k) in &[
        (100, 100_000, 768, 10),
        (8, 1_000_000, 768, 10),
        (1000, 1_000_000, 768, 10),
    ] {
        let (q, c) = (rng.mat(m, d), rng.mat(n, d));
        if m < 64 {
            // Few queries: the selection runs in slices (ops::topk_slices).
            let a = tk(&q, m, &c, n, d, k);
            late.extend(breakdown(
                &format!("topK {m}x{n}x{d} k={k}"),
                &a,
                GemmMode::AsIs,
            ));
        }
        let g = median_ms(5, || drop(cu::top_k(&q, m, &c, n, d, k, Metric::Dot)));
        let h = median_ms(3, || drop(cpu_topk(&q, m, &c, n, d, k, Metric::Dot)));
        row("topK end-to-end", format!("{m}x{n}x{d} k={k}"), g, h);
    }
    let o = InfoNceOpts {
        temperature: 0.07,
        positives: None,
        log_q: None,
        normalize: true,
    };
    {
        let (b, d) = (4096usize, 768usize);
        let (q, k) = (rng.mat(b, d), rng.mat(b, d));
        let g = median_ms(5, || drop(cu::info_nce(&q, b, &k, b, d, &o)));
        let h = median_ms(3, || drop(cpu_info_nce(&q, b, &k, b, d, &o)));
        row("infoNCE fwd+bwd", format!("B={b} d={d}"), g, h);
    }
    {
        let (n, d) = (4096usize, 512usize);
        let (a, b) = (rng.mat(n, d), rng.mat(n, d));
        let g = median_ms(5, || drop(cu::nt_xent(&a, &b, n, d, 0.1)));
        let h = median_ms(3, || drop(cpu_nt_xent(&a, &b, n, d, 0.1)));
        row("ntXent fwd+bwd", format!("N={n} d={d}"), g, h);
    }
    {
        let (n, c, d) = (4096usize, 10_000usize, 512usize);
        let (x, w) = (rng.mat(n, d), rng.mat(c, d));
        let labels: Vec<u32> = (0..n).map(|i| (i % c) as u32).collect();
        let mo = MarginOpts {
            kind: MarginKind::ArcFace,
            scale: 64.0,
            margin: 0.5,
            label_smoothing: 0.0,
        };
        let g = median_ms(5, || {
            drop(cu::margin_softmax(&x, n, &w, c, d, &labels, &mo))
        });
        let h = median_ms(3, || drop(cpu_margin(&x, n, &w, c, d, &labels, &mo)));
        row(
            "marginSoftmax arcface fwd+bwd",
            format!("N={n} C={c} d={d}"),
            g,
            h,
        );
    }
    for &(n, d) in &[(2048usize, 128usize), (8192, 128)] {
        let (a, b) = (rng.mat(n, d), rng.mat(n, d));
        let g = median_ms(5, || drop(cu::wasserstein_regularizer(&a, &b, n, d, 2)));
        let h = median_ms(3, || drop(cpu_wasserstein(&a, &b, n, d, 2)));
        row(
            "wassersteinRegularizer fwd+bwd",
            format!("n={n} d={d}"),
            g,
            h,
        );
    }
    bench.extend(late);
    {
        // The PERF.md anchor shape: PyTorch CUDA is measured by scripts/gpu-torch-anchor.py.
        let (b, d) = (65_536usize, 768usize);
        let (q, k) = (rng.mat(b, d), rng.mat(b, d));
        let args = cu::InfoNceArgs {
            q: &q,
            b,
            keys: &k,
            n: b,
            d,
            o: &o,
        };
        let gemm = similarity_vs_gemm([b, b, d], Metric::Dot, 3, GemmMode::Fp32, Data::Random)
            .map(|r| r.1)
            .unwrap_or(f64::NAN);
        bench.extend(breakdown(
            &format!("infoNCE B={b} d={d}"),
            &args,
            GemmMode::AsIs,
        ));
        for mode in [GemmMode::Tf32x3, GemmMode::Fp32] {
            let name = mode.name();
            let g = median_ms(3, || drop(info_nce_mode(&args, mode)));
            println!("infoNCE fwd+bwd B={b} d={d} {name}: GPU {g:.1} ms end to end; one bare {b}x{b}x{d} SGEMM {gemm:.1} ms (three make the FP32 floor: {:.1} ms)", 3.0 * gemm);
            bench.push(format!("    {{\"row\": \"infoNCE fwd+bwd\", \"gemmMode\": \"{name}\", \"shape\": [{b}, {d}], \"gpuMs\": {g:.3}, \"sgemmMs\": {gemm:.3}, \"fp32FloorMs\": {:.3}}}", 3.0 * gemm));
        }
    }
    bench
}
