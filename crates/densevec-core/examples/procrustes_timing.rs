//! Short timing of `procrustes` at one shape, for A/B comparisons:
//!
//! `cargo run --release -p densevec-core --example procrustes_timing -- <n> <d> <reps> [threads]`
//!
//! Prints the best and median wall time of a call (y is x plus noise, so the residual comes
//! from the SVD, not from the direct recomputation).

use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("numeric arguments"))
        .collect();
    let (n, d, reps) = (args[0], args[1], args[2].max(1));
    if let Some(&t) = args.get(3) {
        densevec_core::pool::set_threads(t).expect("threads");
    }
    let mut s = 7u32;
    let mut gen = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    };
    let x = gen(n * d);
    let y: Vec<f32> = x
        .iter()
        .zip(gen(n * d))
        .map(|(&a, b)| a + 0.5 * b)
        .collect();
    let mut times = Vec::with_capacity(reps);
    let mut check = 0.0;
    for _ in 0..reps {
        let t = Instant::now();
        let r = densevec_core::geometry::procrustes(&x, &y, n, d).expect("procrustes");
        times.push(t.elapsed().as_secs_f64() * 1e3);
        check = r.residual;
    }
    times.sort_by(f64::total_cmp);
    println!(
        "procrustes {n} x {d}, {} threads: best {:.2} ms, median {:.2} ms (residual {check:.6})",
        densevec_core::pool::threads(),
        times[0],
        times[times.len() / 2]
    );
}
