//! Chapter 2: statistics of high-dimensional embeddings.
//!
//! - The documented PRNG (SplitMix64 → uniforms in (0, 1) → Box–Muller normals), shared with
//!   the TypeScript reference bit for bit, and random unit vectors drawn from it.
//! - The exact null distribution of the cosine between two independent uniform unit vectors:
//!   (1 + cos)/2 ~ Beta((d−1)/2, (d−1)/2), and its p-values.
//! - Mean / variance of all pairwise cosines of a matrix (blocked, upper triangle only), or of
//!   a seeded random sample of pairs.
//!
//! Parallel pieces have boundaries that depend only on the input sizes, each piece of a random
//! stream starts from the SplitMix64 state it would have reached sequentially (the state after
//! k draws is seed + k·γ), and reductions run in piece order: results are identical for every
//! thread count.

use crate::bail;
use crate::error::{check_finite, check_matrix, Result};
use crate::pool;
use crate::similarity::normalize_rows_inplace;
use densevec_kernels as k;
use rayon::prelude::*;

// ------------------------------------------------------------------------------------------
// PRNG
// ------------------------------------------------------------------------------------------

/// SplitMix64's increment γ.
pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 (Steele, Lea, Flood 2014) with the uniform and normal draws of densevec.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The generator as it is after `draws` calls of [`SplitMix64::next_u64`] from `seed`.
    pub fn at(seed: u64, draws: u64) -> Self {
        SplitMix64 {
            state: seed.wrapping_add(draws.wrapping_mul(GAMMA)),
        }
    }

    /// Next 64-bit output.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform double in (0, 1): ((z >> 11) + 0.5) / 2^53.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// One Box–Muller pair from two consecutive uniforms (u1, u2):
    /// r = √(−2 ln u1), t = 2π·u2 → (r·cos t, r·sin t).
    #[inline]
    pub fn normal_pair(&mut self) -> (f64, f64) {
        let u1 = self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        (r * t.cos(), r * t.sin())
    }
}

/// Fills `out` with the normals of index `first`, `first + 1`, … of the stream seeded with
/// `seed` (normal t comes from the Box–Muller pair ⌊t/2⌋, cos part for even t, sin for odd).
pub fn fill_normals(seed: u64, first: u64, out: &mut [f64]) {
    if out.is_empty() {
        return;
    }
    let mut rng = SplitMix64::at(seed, 2 * (first / 2));
    let mut i = 0;
    if first % 2 == 1 {
        out[0] = rng.normal_pair().1;
        i = 1;
    }
    while i < out.len() {
        let (c, s) = rng.normal_pair();
        out[i] = c;
        if i + 1 < out.len() {
            out[i + 1] = s;
        }
        i += 2;
    }
}

/// Checks a seed given as a JS number: an integer in [0, 2^53).
pub fn check_seed(func: &str, name: &str, seed: f64) -> Result<u64> {
    if !(seed.is_finite()) || seed.fract() != 0.0 {
        bail!(Type, "{func}: {name} must be an integer, got {seed}");
    }
    if !(0.0..9_007_199_254_740_992.0).contains(&seed) {
        bail!(Arg, "{func}: {name} must be in [0, 2^53), got {seed}");
    }
    Ok(seed as u64)
}

/// Largest number of values `random_unit_vectors` produces (n·d).
pub const MAX_RANDOM_VALUES: usize = 1 << 30;

/// Normal values per parallel piece of `random_unit_vectors` (whole rows; at least one row).
const RANDOM_PIECE_VALUES: usize = 1 << 14;

/// n × d row-major matrix of rows uniform on S^{d−1}: n·d normals of the stream (row-major),
/// each row normalized in f64 and rounded to f32. Identical to the TypeScript reference.
pub fn random_unit_vectors(n: usize, d: usize, seed: u64) -> Result<Vec<f32>> {
    const F: &str = "randomUnitVectors";
    if n < 1 {
        bail!(Arg, "{F}: n must be >= 1, got {n}");
    }
    if d < 1 {
        bail!(Arg, "{F}: d must be >= 1, got {d}");
    }
    match n.checked_mul(d) {
        Some(t) if t <= MAX_RANDOM_VALUES => {}
        _ => bail!(
            Arg,
            "{F}: n * d = {n} * {d} exceeds the limit of {MAX_RANDOM_VALUES} values"
        ),
    }
    let mut out =
        crate::alloc::try_vec_hint(F, "the n × d result", n * d, "generate the rows in batches")?;
    let rows_per_piece = (RANDOM_PIECE_VALUES / d).max(1);
    let work = |(p, piece): (usize, &mut [f32])| {
        let first = (p * rows_per_piece * d) as u64;
        let mut buf = vec![0f64; piece.len()];
        fill_normals(seed, first, &mut buf);
        for (o, r) in piece.chunks_mut(d).zip(buf.chunks(d)) {
            let s: f64 = r.iter().map(|x| x * x).sum();
            let inv = 1.0 / s.sqrt();
            for (oi, x) in o.iter_mut().zip(r) {
                *oi = (x * inv) as f32;
            }
        }
    };
    if n <= rows_per_piece {
        work((0, &mut out[..]));
    } else {
        pool::run(|| {
            out.par_chunks_mut(rows_per_piece * d)
                .enumerate()
                .for_each(work)
        });
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------
// Null distribution of the cosine
// ------------------------------------------------------------------------------------------

const LANCZOS_G: f64 = 7.0;
const LANCZOS: [f64; 9] = [
    0.999_999_999_999_809_9,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_1,
    -176.615_029_162_140_6,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_572e-6,
    1.505_632_735_149_311_6e-7,
];
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// ln Γ(x) for x ≥ ½ (Lanczos, g = 7, n = 9; about 1e-15 relative).
pub fn ln_gamma(x: f64) -> f64 {
    let z = x - 1.0;
    let t = z + LANCZOS_G + 0.5;
    let mut a = LANCZOS[0];
    for (i, c) in LANCZOS.iter().enumerate().skip(1) {
        a += c / (z + i as f64);
    }
    LN_SQRT_2PI + (z + 0.5) * t.ln() - t + a.ln()
}

/// Stirling remainder δ(x) = ln Γ(x) − [(x − ½) ln x − x + ½ ln 2π], for x ≥ 10.
fn stirling_delta(x: f64) -> f64 {
    let r = 1.0 / x;
    let r2 = r * r;
    r * (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 * (1.0 / 1260.0 - r2 * (1.0 / 1680.0 - r2 / 1188.0))))
}

/// ln(4^{−a} / B(a, a)) without cancellation of large terms.
fn ln_symmetric_beta_factor(a: f64) -> f64 {
    if a < 10.0 {
        ln_gamma(2.0 * a) - 2.0 * ln_gamma(a) - 2.0 * a * std::f64::consts::LN_2
    } else {
        0.5 * (a / (4.0 * std::f64::consts::PI)).ln() - 2.0 * stirling_delta(a)
            + stirling_delta(2.0 * a)
    }
}

/// ln(1 − s²) for |s| ≤ 1.
fn ln_1m_s2(s: f64) -> f64 {
    let t = s.abs();
    if t < 0.5 {
        (-t * t).ln_1p()
    } else {
        ((1.0 - t) * (1.0 + t)).ln()
    }
}

const CF_TINY: f64 = 1e-300;
const CF_EPS: f64 = 1e-16;

/// Continued fraction h of I_x(a, a) = x^a (1−x)^a / (a·B(a, a)) · h (modified Lentz).
fn beta_cf(a: f64, x: f64) -> f64 {
    let b = a;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let clamp = |v: f64| if v.abs() < CF_TINY { CF_TINY } else { v };
    let mut c = 1.0;
    let mut d = 1.0 / clamp(1.0 - qab * x / qap);
    let mut h = d;
    let max_it = 1000 + (50.0 * a.sqrt()).ceil() as usize;
    for m in 1..=max_it {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < CF_EPS {
            break;
        }
    }
    h
}

/// Dimension from which [`upper_tail`] uses the asymptotic form (the continued fraction needs
/// O(√d) steps).
pub const PVALUE_ASYMPTOTIC_D: f64 = 1e5;

/// erfcx(x) = e^{x²}·erfc(x) for x ≥ 0 (about 1e-14 relative): the series of erf below 2,
/// Laplace's continued fraction (60 terms, evaluated backwards) from 2 on.
pub fn erfcx(x: f64) -> f64 {
    if x < 2.0 {
        let x2 = x * x;
        let mut term = x;
        let mut sum = x;
        for k in 1..200 {
            term *= 2.0 * x2 / (2 * k + 1) as f64;
            sum += term;
            if term < 1e-17 * sum {
                break;
            }
        }
        return x2.exp() - (2.0 / std::f64::consts::PI.sqrt()) * sum;
    }
    let mut f = 0.0;
    for k in (1..=60).rev() {
        f = k as f64 / 2.0 / (x + f);
    }
    1.0 / (std::f64::consts::PI.sqrt() * (x + f))
}

/// Coefficients of dt/dw = Σ c_k w^{2k} for t = √(1 − e^{−w²}).
const DTDW: [f64; 6] = [
    1.0,
    -3.0 / 4.0,
    25.0 / 96.0,
    -7.0 / 128.0,
    79.0 / 10240.0,
    -33.0 / 40960.0,
];

/// P(cos ≥ s) for 0 < s < 1 and d ≥ [`PVALUE_ASYMPTOTIC_D`], in log space: with m = (d − 3)/2
/// and w = √(−ln(1 − t²)), P = C ∫_{w₀}^∞ e^{−m w²} (dt/dw) dw, C = Γ(d/2)/(√π Γ((d−1)/2));
/// dt/dw is expanded in powers of w² and each ∫ w^{2k} e^{−m w²} is exact (erfcx and a
/// recurrence). The same formula as the reference.
fn upper_tail_asymptotic(s: f64, d: f64) -> f64 {
    let m = (d - 3.0) / 2.0;
    let x = (d - 1.0) / 2.0;
    let ln_c = 0.5 * x.ln() + (x * (1.0 / (2.0 * x)).ln_1p() - 0.5) + stirling_delta(x + 0.5)
        - stirling_delta(x)
        - 0.5 * std::f64::consts::PI.ln();
    let w0 = (-(-s * s).ln_1p()).sqrt();
    // Beyond this the tail is below the smallest double (C ≤ 4e7, K₀ ≤ 1), and the expansion
    // of dt/dw, meant for small w, would no longer hold.
    if m * w0 * w0 > 800.0 {
        return 0.0;
    }
    let mut kk = 0.5 * (std::f64::consts::PI / m).sqrt() * erfcx(w0 * m.sqrt());
    let mut sum = DTDW[0] * kk;
    for (k, c) in DTDW.iter().enumerate().skip(1) {
        kk = (w0.powi(2 * k as i32 - 1) + (2 * k - 1) as f64 * kk) / (2.0 * m);
        sum += c * kk;
    }
    (ln_c - m * w0 * w0 + sum.ln()).exp()
}

/// P(cos ≥ s) for 0 < s ≤ 1: I_{(1−s)/2}(a, a) with a = (d − 1)/2; for d ≥
/// [`PVALUE_ASYMPTOTIC_D`] the asymptotic form (bounded work for every d).
fn upper_tail(s: f64, d: f64) -> f64 {
    if s >= 1.0 {
        return 0.0;
    }
    if d >= PVALUE_ASYMPTOTIC_D {
        return upper_tail_asymptotic(s, d);
    }
    let a = (d - 1.0) / 2.0;
    let x = (1.0 - s) / 2.0;
    let ln_front = a * ln_1m_s2(s) + ln_symmetric_beta_factor(a);
    ln_front.exp() * beta_cf(a, x) / a
}

/// P(cos ≥ s) under the null in dimension d, for any s in [−1, 1].
pub fn cosine_upper(s: f64, d: f64) -> f64 {
    if s == 0.0 {
        0.5
    } else if s > 0.0 {
        upper_tail(s, d)
    } else {
        1.0 - upper_tail(-s, d)
    }
}

/// Largest integer a JavaScript number holds exactly (2^53 − 1): the domain of d ends there.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Exact p-value of the cosine `s` in dimension `d` under the null (two independent uniform
/// unit vectors): P(cos ≥ s), or P(|cos| ≥ |s|) when `two_sided`.
pub fn cosine_p_value(s: f64, d: usize, two_sided: bool) -> Result<f64> {
    const F: &str = "cosinePValue";
    if d < 2 {
        bail!(Arg, "{F}: d must be >= 2, got {d}");
    }
    if d as u64 > MAX_SAFE_INTEGER {
        bail!(Arg, "{F}: d must be < 2^53, got {d}");
    }
    if s.abs() > 1.0 {
        bail!(Arg, "{F}: s must be in [-1, 1], got {s}");
    }
    if s.is_nan() {
        bail!(NonFinite, "{F}: s is NaN");
    }
    let d = d as f64;
    Ok(if two_sided {
        (2.0 * cosine_upper(s.abs(), d)).min(1.0)
    } else {
        cosine_upper(s, d)
    })
}

// ------------------------------------------------------------------------------------------
// Pairwise cosine statistics
// ------------------------------------------------------------------------------------------

/// Result of [`similarity_stats`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimilarityStats {
    pub mean: f64,
    pub variance: f64,
    pub null_variance: f64,
    pub z_score: f64,
    pub pairs: f64,
}

/// Largest sample size accepted by [`similarity_stats`].
pub const MAX_SAMPLE_PAIRS: u64 = 1 << 32;

/// The next random pair (i ≠ j) of rows 0..n: i = min(⌊u·n⌋, n−1), j = min(⌊u'·(n−1)⌋, n−2),
/// then j += (j ≥ i). (The clamps matter only when u·n rounds up to n.)
#[inline]
pub fn sample_pair(rng: &mut SplitMix64, n: usize) -> (usize, usize) {
    let i = ((rng.uniform() * n as f64) as usize).min(n - 1);
    let mut j = ((rng.uniform() * (n - 1) as f64) as usize).min(n - 2);
    if j >= i {
        j += 1;
    }
    (i, j)
}

/// Rows per block of the exact path (blocks are B × B tiles of the upper triangle).
const STATS_BLOCK: usize = 256;
/// Pairs per parallel piece of the sampled path.
const SAMPLE_PIECE: u64 = 1 << 15;

fn finish(s1: f64, s2: f64, shift: f64, pairs: f64, d: usize) -> SimilarityStats {
    let m1 = s1 / pairs;
    let mean = shift + m1;
    let variance = (s2 / pairs - m1 * m1).max(0.0);
    let null_variance = 1.0 / d as f64;
    SimilarityStats {
        mean,
        variance,
        null_variance,
        z_score: mean / (null_variance / pairs).sqrt(),
        pairs,
    }
}

/// (Σ (c − shift), Σ (c − shift)²) of one block's cosines.
#[inline]
fn accumulate(vals: &[f32], shift: f64, s1: &mut f64, s2: &mut f64) {
    for &v in vals {
        let c = v as f64 - shift;
        *s1 += c;
        *s2 += c * c;
    }
}

/// Mean and population variance of cos(row_i, row_j) over all pairs i < j, or over
/// `sample = Some((pairs, seed))` random pairs i ≠ j (i = ⌊u·n⌋, j = ⌊u'·(n−1)⌋, j += (j ≥ i),
/// from consecutive uniforms of the PRNG). Zero rows have cosine 0 with every row.
pub fn similarity_stats(
    data: &[f32],
    n: usize,
    d: usize,
    sample: Option<(u64, u64)>,
) -> Result<SimilarityStats> {
    const F: &str = "similarityStats";
    check_matrix(F, "m", data, n, d)?;
    if n < 2 {
        bail!(Shape, "{F}: m has {n} row(s) but at least 2 are needed");
    }
    if let Some((p, _)) = sample {
        if !(1..=MAX_SAMPLE_PAIRS).contains(&p) {
            bail!(Arg, "{F}: sample.pairs must be in [1, 2^32], got {p}");
        }
    }
    check_finite(F, "m", data)?;
    let mut u = crate::alloc::try_copy(F, "the normalized rows", data)?;
    normalize_rows_inplace(&mut u, d);
    let row = |i: usize| &u[i * d..(i + 1) * d];
    // Sums run around a shift (the cosine of rows 0 and 1), so the variance does not cancel.
    let shift = row(0)
        .iter()
        .zip(row(1))
        .map(|(a, b)| *a as f64 * *b as f64)
        .sum::<f64>();

    if let Some((pairs, seed)) = sample {
        let pieces = pairs.div_ceil(SAMPLE_PIECE);
        let work = |p: u64| {
            let start = p * SAMPLE_PIECE;
            let end = (start + SAMPLE_PIECE).min(pairs);
            let mut rng = SplitMix64::at(seed, 2 * start);
            let (mut s1, mut s2) = (0f64, 0f64);
            for _ in start..end {
                let (i, j) = sample_pair(&mut rng, n);
                let c = k::dot(row(i), row(j)) as f64 - shift;
                s1 += c;
                s2 += c * c;
            }
            (s1, s2)
        };
        let parts: Vec<(f64, f64)> = if pieces == 1 {
            vec![work(0)]
        } else {
            pool::run(|| (0..pieces).into_par_iter().map(work).collect())
        };
        let (s1, s2) = parts
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        return Ok(finish(s1, s2, shift, pairs as f64, d));
    }

    let nb = n.div_ceil(STATS_BLOCK);
    let tiles: Vec<(usize, usize)> = (0..nb)
        .flat_map(|bi| (bi..nb).map(move |bj| (bi, bj)))
        .collect();
    let work = |&(bi, bj): &(usize, usize)| {
        let (i0, j0) = (bi * STATS_BLOCK, bj * STATS_BLOCK);
        let mb = STATS_BLOCK.min(n - i0);
        let nbj = STATS_BLOCK.min(n - j0);
        let mut tile = vec![0f32; mb * nbj];
        k::gemm_nt(
            mb,
            nbj,
            d,
            (&u[i0 * d..(i0 + mb) * d], d),
            (&u[j0 * d..(j0 + nbj) * d], d),
            (&mut tile, nbj),
        );
        let (mut s1, mut s2) = (0f64, 0f64);
        for (r, vals) in tile.chunks(nbj).enumerate() {
            // On a diagonal tile only the pairs j > i count.
            let from = if bi == bj { r + 1 } else { 0 };
            if from < nbj {
                accumulate(&vals[from..], shift, &mut s1, &mut s2);
            }
        }
        (s1, s2)
    };
    let parts: Vec<(f64, f64)> = if tiles.len() == 1 {
        vec![work(&tiles[0])]
    } else {
        pool::run(|| tiles.par_iter().map(work).collect())
    };
    let (s1, s2) = parts
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let pairs = n as f64 * (n as f64 - 1.0) / 2.0;
    Ok(finish(s1, s2, shift, pairs, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_known_values() {
        // First outputs of SplitMix64 seeded with 0 (the published reference implementation).
        let mut g = SplitMix64::new(0);
        assert_eq!(g.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(g.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(g.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn jump_equals_sequential_draws() {
        let mut a = SplitMix64::new(12345);
        for _ in 0..1001 {
            a.next_u64();
        }
        let mut b = SplitMix64::at(12345, 1001);
        assert_eq!(a.next_u64(), b.next_u64());
        // Normals from any offset agree with the sequential stream, odd offsets included.
        let mut all = vec![0f64; 101];
        fill_normals(7, 0, &mut all);
        for first in [1usize, 2, 3, 50, 99] {
            let mut part = vec![0f64; 101 - first];
            fill_normals(7, first as u64, &mut part);
            assert_eq!(&all[first..], &part[..]);
        }
    }

    #[test]
    fn uniforms_stay_inside_the_unit_interval() {
        let mut g = SplitMix64::new(3);
        for _ in 0..100_000 {
            let u = g.uniform();
            assert!(u > 0.0 && u <= 1.0);
        }
    }

    #[test]
    fn unit_vectors_have_unit_norm_and_split_deterministically() {
        for (n, d) in [(1, 1), (3, 7), (5000, 3), (40, 1025)] {
            let v = random_unit_vectors(n, d, 99).unwrap();
            for r in v.chunks(d) {
                let s: f64 = r.iter().map(|x| (*x as f64).powi(2)).sum();
                assert!((s - 1.0).abs() < 1e-6);
            }
            // Same as one sequential stream.
            let mut all = vec![0f64; n * d];
            fill_normals(99, 0, &mut all);
            let r0: f64 = all[..d].iter().map(|x| x * x).sum::<f64>().sqrt();
            assert_eq!(v[0], (all[0] / r0) as f32);
            let last = (n - 1) * d;
            let rl: f64 = all[last..].iter().map(|x| x * x).sum::<f64>().sqrt();
            assert_eq!(v[last + d - 1], (all[last + d - 1] / rl) as f32);
        }
        assert!(random_unit_vectors(0, 3, 1).is_err());
        assert!(random_unit_vectors(3, 0, 1).is_err());
        assert!(random_unit_vectors(1 << 20, 1 << 11, 1).is_err());
    }

    #[test]
    fn p_values_closed_forms() {
        // d = 2: θ uniform on [0, π], P(cos ≥ s) = arccos(s)/π; d = 3: cos uniform on [−1, 1].
        for s in [-1.0, -0.9, -0.3, 0.0, 1e-9, 0.2, 0.7, 0.999999, 1.0] {
            let p2 = cosine_p_value(s, 2, false).unwrap();
            assert!(
                (p2 - f64::acos(s) / std::f64::consts::PI).abs() < 1e-13,
                "d=2 s={s}: {p2}"
            );
            let p3 = cosine_p_value(s, 3, false).unwrap();
            assert!((p3 - (1.0 - s) / 2.0).abs() < 1e-13, "d=3 s={s}: {p3}");
        }
        // d = 5: a = 2, I_x(2, 2) = 3x² − 2x³.
        for s in [0.1, 0.5, 0.9] {
            let x: f64 = (1.0 - s) / 2.0;
            let want = 3.0 * x * x - 2.0 * x * x * x;
            assert!((cosine_p_value(s, 5, false).unwrap() - want).abs() < 1e-13);
        }
        assert_eq!(cosine_p_value(0.0, 768, true).unwrap(), 1.0);
        assert!(cosine_p_value(1.5, 10, false).is_err());
        assert!(cosine_p_value(0.5, 1, false).is_err());
        assert!(cosine_p_value(f64::NAN, 10, false).is_err());
    }

    #[test]
    fn huge_d_uses_the_asymptotic_form() {
        // Values of P(cos ≥ z/√d) by mpmath quadrature of the density at 40 digits.
        let d = 1_000_000_000usize;
        for (z, want) in [
            (1.0, 0.158_655_254_052_442_4),
            (2.0, 0.022_750_131_921_183_716),
            (5.0, 2.866_515_309_944_093e-7),
            (10.0, 7.619_834_364_780_436e-24),
        ] {
            let p = cosine_p_value(z / (d as f64).sqrt(), d, false).unwrap();
            assert!((p / want - 1.0).abs() < 1e-11, "z={z}: {p} vs {want}");
        }
        // Both forms agree where they meet.
        for s in [1e-9, 1e-4, 1e-3, 3e-3, 1e-2, 2e-2] {
            let d = PVALUE_ASYMPTOTIC_D;
            let a = (d - 1.0) / 2.0;
            let x = (1.0 - s) / 2.0;
            let cf = (a * ln_1m_s2(s) + ln_symmetric_beta_factor(a)).exp() * beta_cf(a, x) / a;
            let asy = upper_tail_asymptotic(s, d);
            assert!((asy / cf - 1.0).abs() < 1e-11, "s={s}: {asy} vs {cf}");
        }
        // Bounded work and the domain end: tiny s at the largest d, and d ≥ 2^53 refused.
        let p = cosine_p_value(1e-17, (1usize << 53) - 1, false).unwrap();
        assert!((p - 0.5).abs() < 1e-9, "{p}");
        assert_eq!(cosine_p_value(0.0, (1usize << 53) - 1, false).unwrap(), 0.5);
        assert!(cosine_p_value(1e-17, 1usize << 53, false).is_err());
        assert!((erfcx(0.0) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn large_d_matches_the_gamma_route() {
        // The Stirling route for ln(4^{-a}/B(a,a)) agrees with ln Γ at moderate a.
        for a in [10.0, 13.5, 50.0, 383.5] {
            let direct = ln_gamma(2.0 * a) - 2.0 * ln_gamma(a) - 2.0 * a * std::f64::consts::LN_2;
            let stir = 0.5 * (a / (4.0 * std::f64::consts::PI)).ln() - 2.0 * stirling_delta(a)
                + stirling_delta(2.0 * a);
            assert!((direct - stir).abs() < 1e-12, "a={a}: {direct} vs {stir}");
        }
    }

    fn naive_stats(data: &[f32], n: usize, d: usize) -> (f64, f64) {
        let mut cs = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                let (a, b) = (&data[i * d..(i + 1) * d], &data[j * d..(j + 1) * d]);
                let ab: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
                let aa: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
                let bb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum();
                let den = (aa * bb).sqrt();
                cs.push(if den == 0.0 { 0.0 } else { ab / den });
            }
        }
        let m = cs.iter().sum::<f64>() / cs.len() as f64;
        let v = cs.iter().map(|c| (c - m).powi(2)).sum::<f64>() / cs.len() as f64;
        (m, v)
    }

    #[test]
    fn exact_stats_match_naive_and_thread_count() {
        for (n, d) in [(2, 3), (17, 5), (300, 9), (600, 33)] {
            let mut data = random_unit_vectors(n, d, n as u64).unwrap();
            // A shared offset gives a positive mean; one zero row has cosine 0 with everything.
            for (i, v) in data.iter_mut().enumerate() {
                *v += 0.3 * ((i % d) as f32 / d as f32);
            }
            if n > 10 {
                for v in &mut data[5 * d..6 * d] {
                    *v = 0.0;
                }
            }
            let s = similarity_stats(&data, n, d, None).unwrap();
            let (m, v) = naive_stats(&data, n, d);
            assert!((s.mean - m).abs() < 1e-6, "n={n} d={d}: {} vs {m}", s.mean);
            assert!((s.variance - v).abs() < 1e-6 * (1.0 + v));
            assert_eq!(s.pairs, (n * (n - 1) / 2) as f64);
            assert_eq!(s.null_variance, 1.0 / d as f64);
            pool::set_threads(1).unwrap();
            let one = similarity_stats(&data, n, d, None).unwrap();
            let one_s = similarity_stats(&data, n, d, Some((70_000, 5))).unwrap();
            pool::set_threads(3).unwrap();
            assert_eq!(similarity_stats(&data, n, d, None).unwrap(), one);
            assert_eq!(
                similarity_stats(&data, n, d, Some((70_000, 5))).unwrap(),
                one_s
            );
            assert_eq!(one, s);
        }
    }

    #[test]
    fn stats_errors() {
        assert!(similarity_stats(&[1.0, 2.0], 1, 2, None).is_err());
        assert!(similarity_stats(&[1.0, f32::NAN, 0.0, 1.0], 2, 2, None).is_err());
        assert!(similarity_stats(&[1.0, 0.0, 0.0, 1.0], 2, 2, Some((0, 1))).is_err());
        let s = similarity_stats(&[1.0, 0.0, 0.0, 1.0], 2, 2, Some((5, 1))).unwrap();
        assert_eq!((s.mean, s.variance, s.pairs), (0.0, 0.0, 5.0));
    }
}
