//! Short timing of the batched row-wise pairs at one shape, for A/B comparisons:
//!
//! `cargo run --release -p densevec-core --example rows_timing -- <rows> <cols> <reps> [threads]`
//!
//! Prints the best wall time of `dotRows`, `cosineRows` and `l2sqRows` and the input bandwidth
//! it amounts to (2 · rows · cols · 4 bytes read per call), after the bandwidth of a plain copy
//! of one input (read + written bytes, one thread) in the same run, for comparison.

use densevec_core::rows::{pair_rows, PairOp};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("numeric arguments"))
        .collect();
    let (rows, cols, reps) = (args[0], args[1], args[2].max(1));
    if let Some(&t) = args.get(3) {
        densevec_core::pool::set_threads(t).expect("threads");
    }
    let mut s = 1u32;
    let mut gen = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    };
    let (a, b) = (gen(rows * cols), gen(rows * cols));
    let bytes = 2.0 * (rows * cols * 4) as f64;
    let mut copy = vec![0f32; rows * cols];
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        copy.copy_from_slice(&a);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{:>10} {rows} x {cols}: {:8.2} ms  {:6.2} GB/s  (read + written; check {})",
        "copy",
        best * 1e3,
        bytes / best / 1e9,
        copy[rows / 2]
    );
    drop(copy);
    for (name, op) in [
        ("dotRows", PairOp::Dot),
        ("cosineRows", PairOp::Cosine),
        ("l2sqRows", PairOp::L2sq),
    ] {
        let mut best = f64::INFINITY;
        let mut check = 0f32;
        for _ in 0..reps {
            let t = Instant::now();
            let out = pair_rows(name, op, &a, &b, rows, cols).expect("pair_rows");
            best = best.min(t.elapsed().as_secs_f64());
            check += out[rows / 2];
        }
        println!(
            "{name:>10} {rows} x {cols}: {:8.2} ms  {:6.2} GB/s  (check {check})",
            best * 1e3,
            bytes / best / 1e9
        );
    }
}
