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
                "device: {} ({:.1} GiB, sm_{}{}), cuBLAS: {}, NVRTC: {}",
                d.name,
                d.total_memory as f64 / (1u64 << 30) as f64,
                d.compute_capability.0,
                d.compute_capability.1,
                d.cublas,
                d.nvrtc
            );
            let _ = write!(
                json,
                "  \"available\": true,\n  \"device\": \"{}\",\n  \"memory\": {},\n  \"computeCapability\": \"{}.{}\",\n  \"cublas\": {},\n",
                esc(&d.name),
                d.total_memory,
                d.compute_capability.0,
                d.compute_capability.1,
                d.cublas
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
    json.push_str(&rows.join(",\n"));
    json.push_str("\n  ],\n  \"bench\": [\n");
    let mut bench = Vec::new();
    // Device part of similarityMatrix vs a bare GEMM of the same shape (target ≥ 80 %).
    for &(m, n, d) in &[(100, 20_000, 768), (1024, 100_000, 768), (4096, 4096, 4096)] {
        for (metric, mname) in metrics {
            match cu::bench::similarity_vs_gemm(m, n, d, metric, 20) {
                Ok((sim, raw, cublas)) => {
                    let gf = 2.0 * (m * n * d) as f64 / (sim * 1e-3) / 1e9;
                    println!("similarityMatrix device {m}x{n}x{d} {mname}: {sim:.3} ms ({gf:.0} GFLOP/s), bare GEMM {raw:.3} ms, ratio {:.2}", raw / sim);
                    bench.push(format!("    {{\"row\": \"similarityMatrix device vs {} GEMM\", \"shape\": [{m}, {n}, {d}], \"metric\": \"{mname}\", \"ms\": {sim:.4}, \"gemmMs\": {raw:.4}, \"ratio\": {:.4}, \"gflops\": {gf:.1}}}", if cublas { "cuBLAS" } else { "own" }, raw / sim));
                }
                Err(e) => println!("bench {m}x{n}x{d}: ERROR {}", e.msg),
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
    json.push_str(&bench.join(",\n"));
    let _ = write!(json, "\n  ],\n  \"failures\": {failures}\n}}\n");
    println!("{failures} parity failure(s)");
    if failures == 0 {
        0
    } else {
        1
    }
}
