//! GPU check: parity of every CUDA function against the CPU core, then timings.
//!
//!     gpu-check [OUTPUT.json]      (default: $OUT/gpu-check.json, else ./gpu-check.json)
//!
//! Exit status 0 when the device is present and every parity check passes; 2 when no usable
//! device (the JSON says why); 1 when a parity check fails. Tolerances are those of the
//! reference parity tests (test/similarity.test.ts): |got − want| ≤ 1e-4·|want| + 1e-4·d for
//! similarityMatrix, 1e-4 relative + 1e-4 absolute for top-k scores, and identical indices
//! except where two candidates' scores are within that tolerance (a near-tie GPU and CPU
//! rounding may order differently).

use densevec_core::contrastive::{info_nce as cpu_info_nce, nt_xent as cpu_nt_xent, InfoNceOpts};
use densevec_core::margin::{margin_softmax as cpu_margin, MarginKind, MarginOpts};
use densevec_core::regularizers::wasserstein_regularizer as cpu_wasserstein;
use densevec_core::similarity::{similarity_matrix as cpu_sim, Metric};
use densevec_core::topk::top_k as cpu_topk;
use densevec_cuda as cu;
use std::fmt::Write as _;
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn mat(&mut self, r: usize, c: usize) -> Vec<f32> {
        (0..r * c).map(|_| self.next()).collect()
    }
}

fn close(got: &[f32], want: &[f32], rtol: f32, atol: f32) -> (bool, f32) {
    let mut worst = 0f32;
    let mut ok = got.len() == want.len();
    for (g, w) in got.iter().zip(want) {
        let e = (g - w).abs();
        let within = e <= atol + rtol * w.abs() || (g.is_nan() && w.is_nan());
        if !within {
            ok = false;
        }
        if e > worst {
            worst = e;
        }
    }
    (ok, worst)
}

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| match std::env::var("OUT") {
            Ok(o) if !o.is_empty() => format!("{o}/gpu-check.json"),
            _ => "gpu-check.json".into(),
        });
    let mut json = String::from("{\n");
    let info = cu::available();
    let code = match &info {
        Err(r) => {
            let (drv, nv, blas) = cu::libraries_present();
            println!("no GPU: {r} (libraries: driver {drv}, NVRTC {nv}, cuBLAS {blas})");
            let _ = write!(
                json,
                "  \"available\": false,\n  \"reason\": \"{}\",\n  \"libraries\": {{\"driver\": {drv}, \"nvrtc\": {nv}, \"cublas\": {blas}}}\n}}\n",
                esc(r)
            );
            2
        }
        Ok(d) => {
            println!(
                "device: {} ({:.1} GiB, sm_{}{}), cuBLAS: {}, GEMM: {}, NVRTC: {}",
                d.name,
                d.total_memory as f64 / (1u64 << 30) as f64,
                d.compute_capability.0,
                d.compute_capability.1,
                d.cublas,
                d.gemm,
                d.nvrtc
            );
            let _ = write!(
                json,
                "  \"available\": true,\n  \"device\": \"{}\",\n  \"memory\": {},\n  \"computeCapability\": \"{}.{}\",\n  \"cublas\": {},\n  \"gemm\": \"{}\",\n",
                esc(&d.name),
                d.total_memory,
                d.compute_capability.0,
                d.compute_capability.1,
                d.cublas,
                esc(&d.gemm)
            );
            run(&mut json)
        }
    };
    if let Err(e) = std::fs::write(&path, &json) {
        eprintln!("cannot write {path}: {e}");
    } else {
        println!("wrote {path}");
    }
    std::process::exit(code);
}

fn run(json: &mut String) -> i32 {
    let metrics = [
        (Metric::Dot, "dot"),
        (Metric::Cosine, "cosine"),
        (Metric::L2sq, "l2sq"),
    ];
    let mut failures = 0;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    json.push_str("  \"parity\": [\n");
    let mut rows = Vec::new();
    // similarityMatrix: the shapes of the reference parity test plus larger odd ones.
    for &(m, n, d) in &[
        (1, 1, 1),
        (3, 5, 7),
        (17, 33, 65),
        (200, 401, 97),
        (129, 3001, 768),
        (1000, 1000, 1536),
    ] {
        let (q, c) = (rng.mat(m, d), rng.mat(n, d));
        for (metric, mname) in metrics {
            let want = cpu_sim(&q, m, &c, n, d, metric).expect("cpu");
            let (ok, worst) = match cu::similarity_matrix(&q, m, &c, n, d, metric) {
                Ok(got) => close(&got, &want, 1e-4, 1e-4 * d as f32),
                Err(e) => {
                    println!("similarityMatrix {m}x{n}x{d} {mname}: ERROR {}", e.msg);
                    (false, f32::NAN)
                }
            };
            failures += !ok as i32;
            println!(
                "similarityMatrix {m}x{n}x{d} {mname}: {} (max abs err {worst:e})",
                if ok { "ok" } else { "FAIL" }
            );
            rows.push(format!("    {{\"fn\": \"similarityMatrix\", \"shape\": [{m}, {n}, {d}], \"metric\": \"{mname}\", \"ok\": {ok}, \"maxAbsErr\": {}}}", if worst.is_finite() { worst } else { -1.0 }));
        }
    }
    // topK: the reference test's shapes, k across the register lists' range, a corpus larger
    // than one streamed block, duplicate rows (ties by lower index) and NaN rows (rank last).
    let cases: &[(usize, usize, usize, &[usize])] = &[
        (7, 5000, 33, &[1, 5, 64]),
        (33, 20011, 97, &[1, 10, 128]),
        (100, 300_007, 768, &[10]),
    ];
    for &(m, n, d, ks) in cases {
        let q = rng.mat(m, d);
        let mut c = rng.mat(n, d);
        // duplicates of row 3 at rows 11 and 12; a NaN row at 20
        let r3: Vec<f32> = c[3 * d..4 * d].to_vec();
        c[11 * d..12 * d].copy_from_slice(&r3);
        c[12 * d..13 * d].copy_from_slice(&r3);
        c[20 * d] = f32::NAN;
        for &k in ks {
            for (metric, mname) in metrics {
                let want = cpu_topk(&q, m, &c, n, d, k, metric).expect("cpu");
                let (ok, worst, swaps) = match cu::top_k(&q, m, &c, n, d, k, metric) {
                    Ok(got) => {
                        let (sok, worst) = close(&got.scores, &want.scores, 1e-4, 1e-4);
                        let mut swaps = 0;
                        let mut iok = true;
                        for i in 0..got.indices.len() {
                            if got.indices[i] != want.indices[i] {
                                // accept only a near-tie: the CPU's score of the GPU's pick equals the wanted score within tolerance
                                let gi = got.indices[i] as usize;
                                let row = i / k;
                                let s = cpu_sim(
                                    &q[row * d..(row + 1) * d],
                                    1,
                                    &c[gi * d..(gi + 1) * d],
                                    1,
                                    d,
                                    metric,
                                )
                                .expect("cpu")[0];
                                if (s - want.scores[i]).abs() <= 1e-4 + 1e-4 * want.scores[i].abs()
                                {
                                    swaps += 1;
                                } else {
                                    iok = false;
                                }
                            }
                        }
                        (sok && iok, worst, swaps)
                    }
                    Err(e) => {
                        println!("topK {m}x{n}x{d} k={k} {mname}: ERROR {}", e.msg);
                        (false, f32::NAN, 0)
                    }
                };
                failures += !ok as i32;
                println!("topK {m}x{n}x{d} k={k} {mname}: {} (max abs err {worst:e}, near-tie swaps {swaps})", if ok { "ok" } else { "FAIL" });
                rows.push(format!("    {{\"fn\": \"topK\", \"shape\": [{m}, {n}, {d}], \"k\": {k}, \"metric\": \"{mname}\", \"ok\": {ok}, \"maxAbsErr\": {}, \"nearTieSwaps\": {swaps}}}", if worst.is_finite() { worst } else { -1.0 }));
            }
        }
    }
    failures += learning_parity(&mut rng, &mut rows);
    json.push_str(&rows.join(",\n"));
    json.push_str("\n  ],\n  \"bench\": [\n");
    let mut bench = Vec::new();
    // Device part of similarityMatrix vs a bare GEMM of the same shape (target ≥ 80 %).
    // ratio = bare FP32 SGEMM time / our time: ≥ 0.8 is the target; above 1 with 3xTF32.
    for &(m, n, d) in &[(100, 20_000, 768), (1024, 100_000, 768), (4096, 4096, 4096)] {
        for (metric, mname) in metrics {
            for (tf32x3, mode) in [(false, "FP32"), (true, "3xTF32")] {
                match cu::bench::similarity_vs_gemm(m, n, d, metric, 20, tf32x3) {
                    Ok((sim, raw, cublas)) => {
                        let gf = 2.0 * (m * n * d) as f64 / (sim * 1e-3) / 1e9;
                        println!("similarityMatrix device {m}x{n}x{d} {mname} {mode}: {sim:.3} ms ({gf:.0} GFLOP/s), bare SGEMM {raw:.3} ms, ratio {:.2}", raw / sim);
                        bench.push(format!("    {{\"row\": \"similarityMatrix device vs {} SGEMM\", \"gemmMode\": \"{mode}\", \"shape\": [{m}, {n}, {d}], \"metric\": \"{mname}\", \"ms\": {sim:.4}, \"sgemmMs\": {raw:.4}, \"ratio\": {:.4}, \"gflops\": {gf:.1}}}", if cublas { "cuBLAS" } else { "own" }, raw / sim));
                    }
                    Err(e) => println!("bench {m}x{n}x{d} {mode}: ERROR {}", e.msg),
                }
            }
        }
    }
    // End to end (host in, host out) vs the CPU core, cosine.
    {
        let (m, n, d) = (100, 20_000, 768);
        let (q, c) = (rng.mat(m, d), rng.mat(n, d));
        let g = median_ms(10, || {
            drop(cu::similarity_matrix(&q, m, &c, n, d, Metric::Cosine))
        });
        let h = median_ms(5, || drop(cpu_sim(&q, m, &c, n, d, Metric::Cosine)));
        println!("similarityMatrix end-to-end {m}x{n}x{d}: GPU {g:.2} ms, CPU {h:.2} ms");
        bench.push(format!("    {{\"row\": \"similarityMatrix end-to-end\", \"shape\": [{m}, {n}, {d}], \"gpuMs\": {g:.3}, \"cpuMs\": {h:.3}}}"));
    }
    for &(m, n, d, k) in &[(100, 100_000, 768, 10), (1000, 1_000_000, 768, 10)] {
        let (q, c) = (rng.mat(m, d), rng.mat(n, d));
        let g = median_ms(5, || drop(cu::top_k(&q, m, &c, n, d, k, Metric::Dot)));
        let h = median_ms(3, || drop(cpu_topk(&q, m, &c, n, d, k, Metric::Dot)));
        println!("topK end-to-end {m}x{n}x{d} k={k}: GPU {g:.2} ms ({:.0} q/s), CPU {h:.2} ms ({:.0} q/s)", m as f64 / g * 1e3, m as f64 / h * 1e3);
        bench.push(format!("    {{\"row\": \"topK end-to-end\", \"shape\": [{m}, {n}, {d}], \"k\": {k}, \"gpuMs\": {g:.3}, \"cpuMs\": {h:.3}}}"));
    }
    learning_bench(&mut rng, &mut bench);
    json.push_str(&bench.join(",\n"));
    let _ = write!(json, "\n  ],\n  \"failures\": {failures}\n}}\n");
    println!("{failures} parity failure(s)");
    if failures == 0 {
        0
    } else {
        1
    }
}

/// Gradient comparison of the reference parity tests: elementwise within `rtol`, plus an
/// absolute floor of `floor` × the largest wanted entry. Returns (ok, worst error relative to
/// that largest entry).
fn close_grad(got: &[f32], want: &[f32], rtol: f32, floor: f32) -> (bool, f32) {
    let m = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let (ok, worst) = close(got, want, rtol, floor * m);
    (ok, worst / m)
}

fn close_loss(got: f64, want: f64) -> (bool, f64) {
    let e = (got - want).abs();
    (e <= 1e-5 + 1e-5 * want.abs(), e)
}

/// Records one parity row; returns 1 on failure.
fn record(rows: &mut Vec<String>, what: &str, shape: &str, parts: &[(&str, bool, f64)]) -> i32 {
    let ok = parts.iter().all(|p| p.1);
    let detail: Vec<String> = parts
        .iter()
        .map(|(n, o, e)| format!("{n} {}{e:.2e}", if *o { "" } else { "FAIL " }))
        .collect();
    println!(
        "{what} {shape}: {} ({})",
        if ok { "ok" } else { "FAIL" },
        detail.join(", ")
    );
    let js: Vec<String> = parts
        .iter()
        .map(|(n, o, e)| {
            format!(
                "\"{n}\": {{\"ok\": {o}, \"err\": {}}}",
                if e.is_finite() { *e } else { -1.0 }
            )
        })
        .collect();
    rows.push(format!(
        "    {{\"fn\": \"{what}\", \"case\": \"{}\", \"ok\": {ok}, {}}}",
        esc(shape),
        js.join(", ")
    ));
    !ok as i32
}

fn error_row(rows: &mut Vec<String>, what: &str, shape: &str, msg: &str) -> i32 {
    println!("{what} {shape}: ERROR {msg}");
    rows.push(format!(
        "    {{\"fn\": \"{what}\", \"case\": \"{}\", \"ok\": false, \"error\": \"{}\"}}",
        esc(shape),
        esc(msg)
    ));
    1
}

/// InfoNCE, NT-Xent, marginSoftmax and the Wasserstein regularizer against the CPU core, at the
/// reference parity tests' tolerances (loss 1e-5 relative + 1e-5; gradients 1e-4 relative plus
/// 1e-5 × the largest entry).
fn learning_parity(rng: &mut Rng, rows: &mut Vec<String>) -> i32 {
    let mut failures = 0;
    // InfoNCE: default positives, explicit positives + logQ, normalize, one query, d = 1.
    for &(b, n, d, variant) in &[
        (1usize, 1usize, 1usize, 0u8),
        (7, 13, 5, 1),
        (33, 33, 64, 2),
        (129, 300, 65, 3),
        (1000, 1000, 128, 2),
        (4096, 4096, 768, 0),
    ] {
        let (q, k) = (rng.mat(b, d), rng.mat(n, d));
        let pos: Vec<u32> = (0..b).map(|i| ((i * 7 + 3) % n) as u32).collect();
        let lq: Vec<f32> = (0..n).map(|j| -((j % 17) as f32 + 1.0).ln()).collect();
        let o = InfoNceOpts {
            temperature: [0.07, 0.5, 0.1, 0.05][variant as usize],
            positives: if variant == 1 || variant == 3 {
                Some(&pos)
            } else {
                None
            },
            log_q: if variant == 1 || variant == 3 {
                Some(&lq)
            } else {
                None
            },
            normalize: variant >= 2,
        };
        let shape = format!(
            "B={b} K={n} d={d} tau={} positives={} logQ={} normalize={}",
            o.temperature,
            o.positives.is_some(),
            o.log_q.is_some(),
            o.normalize
        );
        let want = cpu_info_nce(&q, b, &k, n, d, &o).expect("cpu");
        failures += compare(
            rows,
            "infoNCE",
            &shape,
            cu::info_nce(&q, b, &k, n, d, &o),
            &want,
        );
    }
    for &(n, d, t) in &[
        (1usize, 1usize, 0.5f64),
        (9, 17, 0.2),
        (300, 128, 0.1),
        (2048, 512, 0.07),
    ] {
        let (a, b) = (rng.mat(n, d), rng.mat(n, d));
        let shape = format!("N={n} d={d} tau={t}");
        let want = cpu_nt_xent(&a, &b, n, d, t).expect("cpu");
        failures += compare(rows, "ntXent", &shape, cu::nt_xent(&a, &b, n, d, t), &want);
    }
    for &(n, c, d) in &[
        (1usize, 1usize, 1usize),
        (5, 3, 7),
        (200, 37, 64),
        (2048, 1000, 256),
    ] {
        let (x, w) = (rng.mat(n, d), rng.mat(c, d));
        let labels: Vec<u32> = (0..n).map(|i| ((i * 13 + 1) % c) as u32).collect();
        for (kind, margin, eps) in [
            (MarginKind::Normalized, 0.0, 0.0),
            (MarginKind::CosFace, 0.35, 0.1),
            (MarginKind::ArcFace, 0.5, 0.0),
        ] {
            let o = MarginOpts {
                kind,
                scale: 30.0,
                margin,
                label_smoothing: eps,
            };
            let shape = format!("N={n} C={c} d={d} {kind:?} m={margin} eps={eps}");
            let want = cpu_margin(&x, n, &w, c, d, &labels, &o).expect("cpu");
            failures += compare(
                rows,
                "marginSoftmax",
                &shape,
                cu::margin_softmax(&x, n, &w, c, d, &labels, &o),
                &want,
            );
        }
    }
    for &(n, d, p) in &[
        (2usize, 1usize, 2u32),
        (3, 4, 1),
        (100, 16, 2),
        (257, 33, 1),
        (2048, 128, 2),
    ] {
        let (a, b) = (rng.mat(n, d), rng.mat(n, d));
        let shape = format!("n={n} d={d} p={p}");
        let want = cpu_wasserstein(&a, &b, n, d, p).expect("cpu");
        // p = 1: GPU and CPU round near-equal cosines differently, so two sorted slots can
        // swap where sign(S_a − S_b) changes and move ±2/N between pairs; a few gradient
        // entries may then differ (the loss may not).
        let grads_within = if p == 1 { 0.99 } else { 1.0 };
        failures += compare_frac(
            rows,
            "wassersteinRegularizer",
            &shape,
            cu::wasserstein_regularizer(&a, &b, n, d, p),
            &want,
            grads_within,
        );
    }
    // Plain FP32 SGEMM (DENSEVEC_CUDA_GEMM=fp32, or a device without TF32 tensor cores).
    {
        let (b, k, d) = (300usize, 501usize, 96usize);
        let (qq, kk) = (rng.mat(b, d), rng.mat(k, d));
        let o = InfoNceOpts {
            temperature: 0.1,
            positives: None,
            log_q: None,
            normalize: true,
        };
        let want = cpu_info_nce(&qq, b, &kk, k, d, &o).expect("cpu");
        let shape = format!("B={b} K={k} d={d}, FP32 SGEMM");
        failures += compare(
            rows,
            "infoNCE",
            &shape,
            info_nce_mode(&qq, b, &kk, k, d, &o, false),
            &want,
        );
        let (m, n) = (77usize, 1001usize);
        let (q, c) = (rng.mat(m, d), rng.mat(n, d));
        let want = cpu_sim(&q, m, &c, n, d, Metric::Cosine).expect("cpu");
        let got = cu::with_gpu("gpu-check", |g| {
            g.with_gemm_mode(false, |g| {
                cu::ops::similarity_matrix(g, &q, m, &c, n, d, Metric::Cosine)
            })
        });
        let shape = format!("{m}x{n}x{d} cosine, FP32 SGEMM");
        failures += compare_values(
            rows,
            "similarityMatrix",
            &shape,
            got,
            &want,
            1e-4 * d as f32,
        );
    }
    // The same kernels with densevec's own SGEMM instead of cuBLAS (a machine without libcublas).
    {
        let (m, n, d) = (67usize, 301usize, 129usize);
        let (q, c) = (rng.mat(m, d), rng.mat(n, d));
        let want = cpu_sim(&q, m, &c, n, d, Metric::Cosine).expect("cpu");
        let got = cu::with_gpu("gpu-check", |g| {
            g.without_cublas(|g| cu::ops::similarity_matrix(g, &q, m, &c, n, d, Metric::Cosine))
        });
        let shape = format!("{m}x{n}x{d} cosine, own SGEMM");
        failures += compare_values(
            rows,
            "similarityMatrix",
            &shape,
            got,
            &want,
            1e-4 * d as f32,
        );
        let (b, k) = (97usize, 211usize);
        let (qq, kk) = (rng.mat(b, d), rng.mat(k, d));
        let o = InfoNceOpts {
            temperature: 0.1,
            positives: None,
            log_q: None,
            normalize: true,
        };
        let want = cpu_info_nce(&qq, b, &kk, k, d, &o).expect("cpu");
        let p =
            densevec_core::contrastive::info_nce_prepare(&qq, b, &kk, k, d, &o).expect("prepare");
        let got = cu::with_gpu("gpu-check", |g| {
            g.without_cublas(|g| cu::ops::fused_ce(g, "infoNCE", &p))
        });
        let shape = format!("B={b} K={k} d={d}, own SGEMM");
        failures += compare(
            rows,
            "infoNCE",
            &shape,
            got.map(|(loss, gq, gk, ex)| p.finish_info_nce_with(loss, gq, gk, ex)),
            &want,
        );
    }
    failures
}

/// Timings of the learning functions: GPU end to end (host in, host out) against the CPU core
/// on the same machine, and InfoNCE at B = 65,536 against the three bare SGEMMs it is made of.
fn learning_bench(rng: &mut Rng, bench: &mut Vec<String>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    {
        let (b, d) = (4096usize, 768usize);
        let (q, k) = (rng.mat(b, d), rng.mat(b, d));
        let o = InfoNceOpts {
            temperature: 0.07,
            positives: None,
            log_q: None,
            normalize: true,
        };
        let g = median_ms(5, || drop(cu::info_nce(&q, b, &k, b, d, &o)));
        let h = median_ms(3, || drop(cpu_info_nce(&q, b, &k, b, d, &o)));
        println!("infoNCE fwd+bwd B={b} d={d}: GPU {g:.2} ms, CPU ({threads} threads) {h:.2} ms");
        bench.push(format!("    {{\"row\": \"infoNCE fwd+bwd\", \"shape\": [{b}, {d}], \"gpuMs\": {g:.3}, \"cpuMs\": {h:.3}, \"cpuThreads\": {threads}}}"));
    }
    {
        // The PERF.md anchor shape: PyTorch CUDA is measured by scripts/gpu-torch-anchor.py.
        let (b, d) = (65_536usize, 768usize);
        let (q, k) = (rng.mat(b, d), rng.mat(b, d));
        let o = InfoNceOpts {
            temperature: 0.07,
            positives: None,
            log_q: None,
            normalize: true,
        };
        let gemm = cu::bench::similarity_vs_gemm(b, b, d, Metric::Dot, 3, false)
            .map(|r| r.1)
            .unwrap_or(f64::NAN);
        for (tf32x3, mode) in [(true, "3xTF32"), (false, "FP32")] {
            let g = median_ms(3, || drop(info_nce_mode(&q, b, &k, b, d, &o, tf32x3)));
            println!("infoNCE fwd+bwd B={b} d={d} {mode}: GPU {g:.1} ms end to end; one bare {b}x{b}x{d} SGEMM {gemm:.1} ms (three make the FP32 floor: {:.1} ms)", 3.0 * gemm);
            bench.push(format!("    {{\"row\": \"infoNCE fwd+bwd\", \"gemmMode\": \"{mode}\", \"shape\": [{b}, {d}], \"gpuMs\": {g:.3}, \"sgemmMs\": {gemm:.3}, \"fp32FloorMs\": {:.3}}}", 3.0 * gemm));
        }
    }
    {
        let (n, d) = (4096usize, 512usize);
        let (a, b) = (rng.mat(n, d), rng.mat(n, d));
        let g = median_ms(5, || drop(cu::nt_xent(&a, &b, n, d, 0.1)));
        let h = median_ms(3, || drop(cpu_nt_xent(&a, &b, n, d, 0.1)));
        println!("ntXent N={n} d={d}: GPU {g:.2} ms, CPU {h:.2} ms");
        bench.push(format!("    {{\"row\": \"ntXent fwd+bwd\", \"shape\": [{n}, {d}], \"gpuMs\": {g:.3}, \"cpuMs\": {h:.3}, \"cpuThreads\": {threads}}}"));
    }
    {
        let (n, c, d) = (4096usize, 10_000usize, 512usize);
        let (x, w) = (rng.mat(n, d), rng.mat(c, d));
        let labels: Vec<u32> = (0..n).map(|i| (i % c) as u32).collect();
        let o = MarginOpts {
            kind: MarginKind::ArcFace,
            scale: 64.0,
            margin: 0.5,
            label_smoothing: 0.0,
        };
        let g = median_ms(5, || drop(cu::margin_softmax(&x, n, &w, c, d, &labels, &o)));
        let h = median_ms(3, || drop(cpu_margin(&x, n, &w, c, d, &labels, &o)));
        println!("marginSoftmax arcface N={n} C={c} d={d}: GPU {g:.2} ms, CPU {h:.2} ms");
        bench.push(format!("    {{\"row\": \"marginSoftmax fwd+bwd\", \"shape\": [{n}, {c}, {d}], \"gpuMs\": {g:.3}, \"cpuMs\": {h:.3}, \"cpuThreads\": {threads}}}"));
    }
    for &(n, d) in &[(2048usize, 128usize), (8192, 128)] {
        let (a, b) = (rng.mat(n, d), rng.mat(n, d));
        let g = median_ms(5, || drop(cu::wasserstein_regularizer(&a, &b, n, d, 2)));
        let h = median_ms(3, || drop(cpu_wasserstein(&a, &b, n, d, 2)));
        println!("wassersteinRegularizer n={n} d={d}: GPU {g:.2} ms, CPU {h:.2} ms");
        bench.push(format!("    {{\"row\": \"wassersteinRegularizer fwd+bwd\", \"shape\": [{n}, {d}], \"gpuMs\": {g:.3}, \"cpuMs\": {h:.3}, \"cpuThreads\": {threads}}}"));
    }
}

/// InfoNCE with the GEMMs as 3xTF32 (`true`, where the device has tensor cores) or FP32 SGEMM.
fn info_nce_mode(
    q: &[f32],
    b: usize,
    k: &[f32],
    n: usize,
    d: usize,
    o: &InfoNceOpts,
    tf32x3: bool,
) -> densevec_core::Result<densevec_core::contrastive::InfoNce> {
    let p = densevec_core::contrastive::info_nce_prepare(q, b, k, n, d, o)?;
    let (loss, gq, gk, ex) = cu::with_gpu("gpu-check", |g| {
        g.with_gemm_mode(tf32x3, |g| cu::ops::fused_ce(g, "infoNCE", &p))
    })?;
    Ok(p.finish_info_nce_with(loss, gq, gk, ex))
}

/// The loss and the named arrays of a result, for [`compare`].
trait Parts {
    fn parts(&self) -> (f64, Vec<(&'static str, &[f32])>);
}

impl Parts for densevec_core::contrastive::InfoNce {
    fn parts(&self) -> (f64, Vec<(&'static str, &[f32])>) {
        (
            self.loss,
            vec![("gradQ", &self.grad_q), ("gradKeys", &self.grad_keys)],
        )
    }
}

impl Parts for densevec_core::contrastive::NtXent {
    fn parts(&self) -> (f64, Vec<(&'static str, &[f32])>) {
        (
            self.loss,
            vec![("gradA", &self.grad_a), ("gradB", &self.grad_b)],
        )
    }
}

impl Parts for densevec_core::margin::MarginSoftmax {
    fn parts(&self) -> (f64, Vec<(&'static str, &[f32])>) {
        (
            self.loss,
            vec![
                ("logits", &self.logits),
                ("gradX", &self.grad_x),
                ("gradW", &self.grad_w),
            ],
        )
    }
}

impl Parts for densevec_core::regularizers::Wasserstein {
    fn parts(&self) -> (f64, Vec<(&'static str, &[f32])>) {
        (
            self.loss,
            vec![("gradA", &self.grad_a), ("gradB", &self.grad_b)],
        )
    }
}

/// Compares a GPU result with the CPU's at the reference tolerances and records the row;
/// returns 1 on failure.
fn compare<T: Parts>(
    rows: &mut Vec<String>,
    what: &str,
    shape: &str,
    got: densevec_core::Result<T>,
    want: &T,
) -> i32 {
    compare_frac(rows, what, shape, got, want, 1.0)
}

/// [`compare`] where a gradient passes when at least `within` of its entries are within the
/// tolerance (1.0: all of them).
fn compare_frac<T: Parts>(
    rows: &mut Vec<String>,
    what: &str,
    shape: &str,
    got: densevec_core::Result<T>,
    want: &T,
    within: f64,
) -> i32 {
    match got {
        Ok(g) => {
            let ((gl, ga), (wl, wa)) = (g.parts(), want.parts());
            let l = close_loss(gl, wl);
            let mut parts = vec![("loss", l.0, l.1)];
            for ((name, x), (_, y)) in ga.into_iter().zip(wa) {
                let (mut ok, err) = close_grad(x, y, 1e-4, 1e-5);
                if !ok && within < 1.0 {
                    let m = y.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
                    let good = x
                        .iter()
                        .zip(y)
                        .filter(|(a, b)| (*a - *b).abs() <= 1e-5 * m + 1e-4 * b.abs())
                        .count();
                    ok = good as f64 >= within * y.len() as f64;
                }
                parts.push((name, ok, err as f64));
            }
            record(rows, what, shape, &parts)
        }
        Err(e) => error_row(rows, what, shape, &e.msg),
    }
}

/// Compares GPU similarities with the CPU's (1e-4 relative plus `atol`) and records the row;
/// returns 1 on failure.
fn compare_values(
    rows: &mut Vec<String>,
    what: &str,
    shape: &str,
    got: densevec_core::Result<Vec<f32>>,
    want: &[f32],
    atol: f32,
) -> i32 {
    match got {
        Ok(g) => {
            let r = close(&g, want, 1e-4, atol);
            record(rows, what, shape, &[("values", r.0, r.1 as f64)])
        }
        Err(e) => error_row(rows, what, shape, &e.msg),
    }
}
