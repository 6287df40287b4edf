//! Single-thread throughput of the kernels on the active ISA (or `DENSEVEC_ISA`):
//! gemm_nt on 100 × 20,000 × 768 computed as the similarity code does it (tiles of at most
//! 192 query rows × 384 corpus rows) and in one call, gemm_nn on the backward-pass shape
//! (100 × 20,000 scores times the 20,000 × 768 corpus), and dot at d = 768 / 1536.
//!
//!     cargo run --release -p densevec-kernels --example gemm_bench [-- reps [MxNxK]]
//!
//! With a shape (`-- reps MxNxK [nt|nn|tn] [f32|bf16]`), only that product is timed. Every GEMM figure is also given as a
//! percentage of the one-thread FMA peak measured first (`densevec_kernels::fma_peak`).
//!
//! Times are the best of several runs, measured as on-CPU time of the thread
//! (`CLOCK_THREAD_CPUTIME_ID`) where available, so a busy machine distorts them less.

use densevec_kernels as k;
use std::time::Instant;

const TILE_M: usize = 192;
const TILE_N: usize = 384;

fn fill(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

/// Nanoseconds this thread has spent on a CPU (`CLOCK_THREAD_CPUTIME_ID`, Linux), so that
/// time-sharing of a busy machine does not count; `None` elsewhere.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn cpu_ns() -> Option<u64> {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.sec as u64 * 1_000_000_000 + ts.nsec as u64)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn cpu_ns() -> Option<u64> {
    None
}

/// Best of `reps` runs, in seconds: on-CPU time where available, wall time otherwise.
fn best_of<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let (c0, t) = (cpu_ns(), Instant::now());
        f();
        let wall = t.elapsed().as_secs_f64();
        let secs = match (c0, cpu_ns()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 * 1e-9,
            _ => wall,
        };
        best = best.min(secs);
    }
    best
}

fn main() {
    if let Err(e) = k::isa::init_from_env() {
        eprintln!("{}", e);
        std::process::exit(2);
    }
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!(
        "isa: {} (available: {:?})",
        k::isa::active().name(),
        k::isa::available()
            .iter()
            .map(|i| i.name())
            .collect::<Vec<_>>()
    );

    let peak = k::fma_peak(0.3);
    println!("fma peak (one thread): {:.1} GFLOP/s", peak / 1e9);
    let pct = |gflops: f64| 100.0 * gflops * 1e9 / peak;
    if let Some(shape) = std::env::args().nth(2) {
        // `gemm_bench REPS MxNxK [nt|nn|tn] [f32|bf16]`: one product on one shape (default nt,
        // f32): C (m × n) = A·Bᵀ, A·B or Aᵀ·B over k.
        let dims: Vec<usize> = shape.split('x').filter_map(|v| v.parse().ok()).collect();
        let op = std::env::args().nth(3).unwrap_or_else(|| "nt".into());
        let prec = std::env::args().nth(4).unwrap_or_else(|| "f32".into());
        if dims.len() != 3
            || !["nt", "nn", "tn"].contains(&op.as_str())
            || !["f32", "bf16"].contains(&prec.as_str())
        {
            eprintln!("usage: gemm_bench REPS MxNxK [nt|nn|tn] [f32|bf16]");
            std::process::exit(2);
        }
        let (m, n, d) = (dims[0], dims[1], dims[2]);
        let (a, b) = (fill(m * d, 1), fill(n * d, 2));
        let mut c = vec![0f32; m * n];
        let t = best_of(reps, || {
            let g = match op.as_str() {
                "nt" => k::GemmRef::nt(m, n, d, (&a, d), (&b, d), (&mut c, n)),
                "nn" => k::GemmRef::nn(m, n, d, (&a, d), (&b, n), (&mut c, n)),
                _ => k::GemmRef::tn(m, n, d, (&a, m), (&b, n), (&mut c, n)),
            };
            if prec == "bf16" {
                k::bf16::gemm(g)
            } else {
                k::gemm(g)
            }
        });
        let g = 2.0 * (m * n * d) as f64 / t / 1e9;
        println!(
            "gemm_{} {} {}x{}x{}: {:.1} ms, {:.1} GFLOP/s, {:.0} % of the fp32 peak ({})",
            op,
            prec,
            m,
            n,
            d,
            t * 1e3,
            g,
            pct(g),
            if prec == "bf16" {
                k::bf16::path_name()
            } else {
                k::isa::active().name()
            }
        );
        return;
    }
    let (m, n, d) = (100usize, 20_000usize, 768usize);
    let q = fill(m * d, 1);
    let c = fill(n * d, 2);
    let mut out = vec![0f32; m * n];
    let flops = 2.0 * (m * n * d) as f64;
    let t = best_of(reps, || {
        for i0 in (0..m).step_by(TILE_M) {
            for j0 in (0..n).step_by(TILE_N) {
                let (mb, nb) = (TILE_M.min(m - i0), TILE_N.min(n - j0));
                k::gemm_nt(
                    mb,
                    nb,
                    d,
                    (&q[i0 * d..], d),
                    (&c[j0 * d..], d),
                    (&mut out[i0 * n + j0..], n),
                );
            }
        }
    });
    println!(
        "gemm_nt {}x{}x{} in {}x{} tiles: {:.1} ms, {:.1} GFLOP/s, {:.0} % of peak",
        m,
        n,
        d,
        TILE_M,
        TILE_N,
        t * 1e3,
        flops / t / 1e9,
        pct(flops / t / 1e9)
    );

    // One 100 × 384 tile over and over (B panel warm in L2/L3): the micro-kernel's ceiling.
    let t = best_of(reps * 40, || {
        k::gemm_nt(m, TILE_N, d, (&q, d), (&c, d), (&mut out, n))
    });
    println!(
        "gemm_nt {}x{}x{} single tile, best: {:.1} us, {:.1} GFLOP/s",
        m,
        TILE_N,
        d,
        t * 1e6,
        2.0 * (m * TILE_N * d) as f64 / t / 1e9
    );
    let mut tile = vec![0f32; TILE_M * TILE_N];
    let t = best_of(reps * 40, || {
        k::gemm_nt(
            TILE_M,
            TILE_N,
            d,
            (&c, d),
            (&c[TILE_M * d..], d),
            (&mut tile, TILE_N),
        )
    });
    println!(
        "gemm_nt {}x{}x{} single tile, best: {:.1} us, {:.1} GFLOP/s",
        TILE_M,
        TILE_N,
        d,
        t * 1e6,
        2.0 * (TILE_M * TILE_N * d) as f64 / t / 1e9
    );

    let t = best_of(reps, || {
        k::gemm_nt(m, n, d, (&q, d), (&c, d), (&mut out, n))
    });
    println!(
        "gemm_nt {}x{}x{} one call:        {:.1} ms, {:.1} GFLOP/s, {:.0} % of peak",
        m,
        n,
        d,
        t * 1e3,
        flops / t / 1e9,
        pct(flops / t / 1e9)
    );

    // The backward-pass shape: (m × n scores) · (n × d corpus) → m × d, i.e. k = 20,000.
    let mut g = vec![0f32; m * d];
    let t = best_of(reps, || {
        k::gemm_nn(m, d, n, (&out, n), (&c, d), (&mut g, d), false)
    });
    println!(
        "gemm_nn {}x{}x{} one call:        {:.1} ms, {:.1} GFLOP/s",
        m,
        d,
        n,
        t * 1e3,
        flops / t / 1e9
    );

    for &dd in &[768usize, 1536] {
        let a = fill(dd, 4);
        let b = fill(dd, 5);
        let calls = 20_000_000 / dd;
        let mut acc = 0f32;
        let t = best_of(reps * 4, || {
            for _ in 0..calls {
                acc += k::dot(std::hint::black_box(&a), std::hint::black_box(&b));
            }
        });
        println!(
            "dot d={}: {:.1} ns/call (checksum {:.3})",
            dd,
            t / calls as f64 * 1e9,
            acc
        );
    }
}
