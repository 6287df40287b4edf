//! Short timings of the fused losses at one shape (fwd + bwd), for A/B comparisons:
//!
//! `cargo run --release -p densevec-core --example loss_timing -- <infonce|ntxent|margin> <rows>
//! <cols> <d> <reps> [scratchBytes,…]`
//!
//! Each rep runs every listed scratch budget once, interleaved; the medians are printed with
//! the fraction of the three-GEMM floor at `PEAK_GFLOPS` (default 117, one core). `THREADS`
//! sets the pool (default 1) and `PRECISION=bf16` runs the GEMMs in bf16. Large freed blocks
//! are kept for reuse as in the addon (`densevec_core::keep`), for `KEEP_MS` (default 10,000;
//! 0 turns keeping off).

use densevec_core::contrastive::{self as c, InfoNceOpts};
use densevec_core::margin::{self as mg, MarginKind, MarginOpts};
use densevec_core::view::Operand;
use std::time::Instant;

#[path = "../src/testdata.rs"]
#[allow(dead_code)]
mod testdata;
use testdata::randv;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn clock_gettime(clk: i32, ts: *mut Timespec) -> i32;
}

/// CPU seconds of the whole process (all threads): on a shared machine a steadier measure of
/// the work than wall time.
fn cpu_s() -> f64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: CLOCK_PROCESS_CPUTIME_ID (2) writes one timespec.
    unsafe { clock_gettime(2, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

/// The addon's allocator, so that calls after the first reuse their working memory as there.
#[global_allocator]
static ALLOC: densevec_core::keep::KeepLarge = densevec_core::keep::KeepLarge;

fn main() {
    let keep_ms: u64 = std::env::var("KEEP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    densevec_core::keep::start(std::time::Duration::from_millis(keep_ms), 512 << 20).unwrap();
    let a: Vec<String> = std::env::args().collect();
    let what = a.get(1).map(String::as_str).unwrap_or("infonce");
    let rows: usize = a.get(2).and_then(|v| v.parse().ok()).unwrap_or(4096);
    let cols: usize = a.get(3).and_then(|v| v.parse().ok()).unwrap_or(rows);
    let d: usize = a.get(4).and_then(|v| v.parse().ok()).unwrap_or(768);
    let reps: usize = a.get(5).and_then(|v| v.parse().ok()).unwrap_or(3);
    let budgets: Vec<usize> = a
        .get(6)
        .map(|v| v.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or_else(|| vec![c::DEFAULT_SCRATCH_BYTES]);
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    densevec_core::pool::set_threads(threads).unwrap();
    let peak: f64 = std::env::var("PEAK_GFLOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(117.0);
    let x = randv(rows * d, 1);
    let y = randv(cols * d, 2);
    let labels: Vec<u32> = (0..rows).map(|i| ((i * 7919) % cols) as u32).collect();
    // The three GEMMs of forward + backward.
    let flop = match what {
        "ntxent" => 6.0 * (2 * rows) as f64 * (2 * rows) as f64 * d as f64,
        _ => 6.0 * rows as f64 * cols as f64 * d as f64,
    };
    let floor_s = flop / (peak * 1e9 * threads as f64);
    let (xo, yo) = (Operand::new(&x, rows), Operand::new(&y, cols));
    // PRECISION=bf16 runs the GEMMs in bf16.
    let prec = match std::env::var("PRECISION").as_deref() {
        Ok("bf16") => densevec_core::precision::Precision::Bf16,
        _ => densevec_core::precision::Precision::F32,
    };
    let run = |budget: usize| -> f64 {
        match what {
            "infonce" => {
                let o = InfoNceOpts {
                    temperature: 0.07,
                    positives: None,
                    log_q: None,
                    normalize: true,
                };
                c::info_nce_with(xo, yo, d, &o, None, budget).unwrap().loss
            }
            "ntxent" => {
                c::nt_xent_with(&x, &y[..rows * d], rows, d, 0.1, budget)
                    .unwrap()
                    .loss
            }
            _ => {
                let o = MarginOpts {
                    kind: MarginKind::ArcFace,
                    scale: 30.0,
                    margin: 0.5,
                    label_smoothing: 0.0,
                };
                mg::margin_softmax_with(xo, yo, d, &labels, &o, budget)
                    .unwrap()
                    .loss
            }
        }
    };
    let mut wall = vec![Vec::new(); budgets.len()];
    let mut cpu = vec![Vec::new(); budgets.len()];
    for _ in 0..reps {
        for (bi, &b) in budgets.iter().enumerate() {
            let (t, c0) = (Instant::now(), cpu_s());
            let l = densevec_core::precision::with_precision(prec, || run(b));
            cpu[bi].push((cpu_s() - c0) / threads as f64);
            wall[bi].push(t.elapsed().as_secs_f64());
            std::hint::black_box(l);
        }
    }
    let med = |v: &Vec<f64>| {
        let mut t = v.clone();
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (t[t.len() / 2], t[0])
    };
    for (bi, &b) in budgets.iter().enumerate() {
        let (wm, wmin) = med(&wall[bi]);
        let (cm, cmin) = med(&cpu[bi]);
        println!(
            "{what} rows={rows} cols={cols} d={d} threads={threads} scratch={b}: wall median {wm:.3} s (min {wmin:.3}); CPU/thread median {cm:.3} s (min {cmin:.3}) over {reps}; {:.0} % of the three-GEMM floor by CPU time ({floor_s:.3} s at {peak} GFLOP/s/core)",
            100.0 * floor_s / cm,
        );
    }
}
