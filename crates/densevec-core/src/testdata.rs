//! Deterministic data for the tests and the examples (the examples include this file by path):
//! one 64-bit linear congruential stream.

/// The next state of the stream.
pub fn lcg_next(s: &mut u64) -> u64 {
    *s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *s
}

/// A uniform value in [0, 1) (53 bits) from the stream at `s`.
pub fn uniform(s: &mut u64) -> f64 {
    (lcg_next(s) >> 11) as f64 / (1u64 << 53) as f64
}

/// `n` values in [−1, 1) (24 bits each) from the stream seeded with `seed`.
pub fn randv(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| ((lcg_next(&mut s) >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32)
        .collect()
}

/// Asserts that the finite difference `fd` matches the gradient `g` within `tol`.
pub fn assert_fd(fd: f64, g: f32, tol: f64, what: &str) {
    assert!((fd - g as f64).abs() < tol, "{what}: fd {fd} vs {g}");
}
