//! Chapter 5: symmetry and geometry — k-NN classification on the fused top-k path, Haar random
//! orthogonal matrices from the documented Gaussian stream, matrix product, orthogonal
//! Procrustes (faer SVD in f64) and numerically careful spherical triangles.

use crate::alloc;
use crate::bail;
use crate::error::{check_finite, check_matrix, check_rows, Result};
use crate::pool;
use crate::similarity::Metric;
use crate::topk;
use crate::view::Operand;
use densevec_kernels as k;
use faer::Mat;
use rayon::prelude::*;

// ---------------------------------------------------------------------------------------------
// k-nearest-neighbour classification

/// Majority vote over neighbour labels listed best first; a tie on votes goes to the label
/// whose best-ranked member comes first (is nearest).
pub fn vote(neigh: &[u32]) -> u32 {
    // k is small: a quadratic scan keeps it allocation-free and obviously correct.
    let mut best = neigh[0];
    let mut best_count = 0usize;
    for (t, &l) in neigh.iter().enumerate() {
        if neigh[..t].contains(&l) {
            continue; // counted at its first (nearest) occurrence
        }
        let c = neigh[t..].iter().filter(|&&m| m == l).count();
        // Labels are visited in order of their nearest member, so a strict `>` keeps the
        // nearer label on a tie.
        if c > best_count {
            best = l;
            best_count = c;
        }
    }
    best
}

/// Predicted label of every query row: majority vote among its k nearest training rows under
/// `metric` (ranked as by `top_k`, ties by lower index); a tie on votes goes to the label whose
/// closest member among the k is nearest.
pub fn knn_classify(
    train: Operand,
    labels: &[u32],
    queries: Operand,
    cols: usize,
    kk: usize,
    metric: Metric,
) -> Result<Vec<u32>> {
    const F: &str = "knnClassify";
    let (train, queries) = (
        train.check(F, "train", cols)?,
        queries.check(F, "queries", cols)?,
    );
    let (train_rows, query_rows) = (train.rows, queries.rows);
    check_rows(F, "labels", labels.len(), "train", train_rows)?;
    if kk < 1 || kk > train_rows {
        bail!(
            Arg,
            "{F}: k must be in [1, {train_rows}] (rows of the corpus), got {kk}"
        );
    }
    // Dot and squared-distance ranks do not change when both sides are scaled by the same
    // power of two (exact), but float32 scores overflow to ∞ beyond entries of ~1e19 and vanish
    // below ~1e-19, where every neighbour would tie and the lowest index win: such inputs are
    // ranked on copies scaled into [2^-40, 2^40] (cosine is scale-free already).
    let scaled;
    let (qd, td) = match knn_scale(queries.data, train.data, metric) {
        None => (queries.data, train.data),
        Some(alpha) => {
            scaled = (
                scaled_copy(
                    F,
                    "the queries scaled into the float32 product range",
                    queries.data,
                    alpha,
                )?,
                scaled_copy(
                    F,
                    "the corpus scaled into the float32 product range",
                    train.data,
                    alpha,
                )?,
            );
            (&scaled.0[..], &scaled.1[..])
        }
    };
    let t = topk::top_k(qd, query_rows, td, train_rows, cols, kk, metric)
        .map_err(|e| alloc::renamed(e, "topK", F))?;
    let mut neigh = vec![0u32; kk];
    let mut out = Vec::with_capacity(query_rows);
    for qi in 0..query_rows {
        for (s, &idx) in neigh.iter_mut().zip(&t.indices[qi * kk..(qi + 1) * kk]) {
            *s = labels[idx as usize];
        }
        out.push(vote(&neigh));
    }
    Ok(out)
}

/// The power of two by which [`knn_classify`] scales both sides before ranking (`None`: as
/// they are): dot and squared-distance metrics whose largest magnitude is outside
/// [2^-40, 2^40].
fn knn_scale(q: &[f32], c: &[f32], metric: Metric) -> Option<f64> {
    if metric == Metric::Cosine {
        return None;
    }
    let amax = pool::run(|| {
        q.par_chunks(1 << 14)
            .chain(c.par_chunks(1 << 14))
            .map(|ch| ch.iter().fold(0f32, |m, &v| m.max(v.abs())))
            .reduce(|| 0f32, f32::max)
    });
    if amax.is_finite() {
        range_scale(amax)
    } else {
        None
    }
}

/// The power of two 2^-e that brings a largest magnitude `amax` outside [2^-40, 2^40] to
/// [1/2, 1), where float32 products neither overflow nor vanish (`None` inside, or for 0).
fn range_scale(amax: f32) -> Option<f64> {
    if amax > 0.0 && !(PR_SAFE_LO..=PR_SAFE_HI).contains(&amax) {
        let e = (amax as f64).log2().floor() as i32 + 1;
        Some(2f64.powi(-e))
    } else {
        None
    }
}

/// A copy of `src` scaled by the power of two `alpha` (exact for normal results), or E_ARG.
fn scaled_copy(func: &str, what: &str, src: &[f32], alpha: f64) -> Result<Vec<f32>> {
    let mut v = alloc::try_copy(func, what, src)?;
    pool::run(|| {
        v.par_chunks_mut(PR_ROWS * 64).for_each(|c| {
            for x in c {
                *x = (*x as f64 * alpha) as f32;
            }
        })
    });
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// Gaussian stream and Haar orthogonal matrices

/// The documented Gaussian stream of densevec (the TypeScript reference has the same one):
/// SplitMix64 seeded with `seed`; uniforms `u = ((out >> 11) + 0.5)·2^−53 ∈ (0, 1)`;
/// Box–Muller on consecutive pairs (u1, u2): `r = √(−2 ln u1)`, emitting `r·cos(2πu2)` then
/// `r·sin(2πu2)` (the same construction as `statistics`' documented PRNG).
pub struct GaussianStream {
    state: u64,
    spare: Option<f64>,
}

impl GaussianStream {
    pub fn new(seed: u64) -> Self {
        GaussianStream {
            state: seed,
            spare: None,
        }
    }

    /// Next SplitMix64 output.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1): ((out >> 11) + 0.5)·2^−53, never 0 or 1.
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Standard normal.
    pub fn gauss(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let u1 = self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * t.sin());
        r * t.cos()
    }
}

/// Largest dimension accepted by [`random_orthogonal`].
pub const MAX_ORTHO_DIM: usize = 16384;

/// A d × d Haar-distributed orthogonal matrix (row-major): Q of the QR decomposition of a
/// d × d standard normal matrix (filled row by row from [`GaussianStream`]) with the sign fix
/// Q ← Q·diag(sign Rᵢᵢ).
pub fn random_orthogonal(d: usize, seed: u64) -> Result<Vec<f32>> {
    const F: &str = "randomOrthogonal";
    if !(1..=MAX_ORTHO_DIM).contains(&d) {
        bail!(Arg, "{F}: d must be in [1, {MAX_ORTHO_DIM}], got {d}");
    }
    let mut g = GaussianStream::new(seed);
    let mut a: Vec<f64> = alloc::try_mat(F, "the d × d Gaussian matrix", d, d, "")?;
    // faer's QR holds the matrix, its factor and Q (d × d f64 each): checked before it runs.
    let faer_bytes = alloc::elems(F, "the QR factorization", &[3, d, d, 8], 1, "")?;
    alloc::probe(F, "the QR factorization", faer_bytes, "")?;
    for v in a.iter_mut() {
        *v = g.gauss();
    }
    let m = Mat::<f64>::from_fn(d, d, |i, j| a[i * d + j]);
    let qr = m.qr();
    let q = qr.compute_Q();
    let r = qr.R();
    let mut out = alloc::try_mat(F, "the d × d result", d, d, "")?;
    for j in 0..d {
        let s = if r[(j, j)] < 0.0 { -1.0 } else { 1.0 };
        for i in 0..d {
            out[i * d + j] = (s * q[(i, j)]) as f32;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Matrix product

const MM_ROWS: usize = 64;

/// a·b for row-major a (m × kd) and b (kd × n); parallel over fixed blocks of output rows.
pub fn matmul(a: &[f32], m: usize, kd: usize, b: &[f32], n: usize) -> Result<Vec<f32>> {
    const F: &str = "matmul";
    check_matrix(F, "a", a, m, kd)?;
    check_matrix(F, "b", b, kd, n)?;
    let mut out = alloc::try_mat(
        F,
        "the a.rows × b.cols product",
        m,
        n,
        "split a into row blocks",
    )?;
    pool::par_row_blocks(&mut out, n, MM_ROWS, |i0, c| {
        let mb = c.len() / n;
        k::gemm_nn(
            mb,
            n,
            kd,
            (&a[i0 * kd..(i0 + mb) * kd], kd),
            (b, n),
            (c, n),
            false,
        );
        // An entry whose chain of partial sums passed the float32 range (±∞ or NaN where the
        // product may fit, or ∞ of the wrong sign) is recomputed in float64 from its row and
        // column, as the reference forms it.
        if crate::error::any_non_finite(c) {
            for (r, row) in c.chunks_mut(n).enumerate() {
                let ar = &a[(i0 + r) * kd..(i0 + r + 1) * kd];
                for (j, v) in row.iter_mut().enumerate() {
                    if !v.is_finite() {
                        *v = (0..kd)
                            .map(|t| ar[t] as f64 * b[t * n + j] as f64)
                            .sum::<f64>() as f32;
                    }
                }
            }
        }
    });
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Orthogonal Procrustes

/// Result of [`procrustes`].
pub struct Procrustes {
    /// d × d row-major orthogonal matrix.
    pub rotation: Vec<f32>,
    /// ‖x·rotation − y‖_F.
    pub residual: f64,
}

/// Rows of x and y per piece: the unit of the xᵀy accumulation, of the norms, of the magnitude
/// scan and of the direct residual. Fixed, so the split never depends on the thread count.
const PR_ROWS: usize = 512;
/// Memory for the float32 xᵀy tiles of the pieces in flight (at least one piece is).
const PR_TILE_BYTES: usize = 32 << 20;
/// The residual comes from the SVD, √(‖x‖² + ‖y‖² − 2Σσ), when that difference is at least
/// this fraction of ‖x‖² + ‖y‖²; below it (a near-perfect fit, where the subtraction cancels)
/// it is recomputed directly from x·Q − y. See [`procrustes`].
pub const PR_CANCELLATION: f64 = 1e-3;

/// What one pass over x and y gathers: xᵀy (d × d, row-major), ‖x‖² + ‖y‖², and the largest
/// magnitude's bit pattern (sign cleared) of x and of y — for finite values it orders as the
/// magnitudes do, ±∞ and NaN give `NON_FINITE` or more.
struct Pass {
    m: Vec<f64>,
    norms: f64,
    bits_x: u32,
    bits_y: u32,
}

const NON_FINITE: u32 = 0x7F80_0000;

/// [`Pass`] for n × d row-major x, y, split along n into pieces of `PR_ROWS` rows computed in
/// parallel: a float32 GEMM per piece, the pieces summed in float64 in piece order (every entry
/// of xᵀy is ((t₀ + t₁) + t₂) + …), the squared norms likewise (float32 per row, float64 per
/// piece and across pieces). Nothing depends on the thread count or on how many pieces are in
/// flight at once. Non-finite inputs give a meaningless xᵀy (never a panic): the caller
/// checks the bit patterns first.
fn xt_y(x: &[f32], y: &[f32], n: usize, d: usize) -> Result<Pass> {
    const F: &str = "procrustes";
    let mut m: Vec<f64> = alloc::try_mat(F, "the d × d matrix x^T y", d, d, "")?;
    let pieces = n.div_ceil(PR_ROWS);
    let tile_bytes = alloc::elems(F, "the d × d matrix x^T y", &[d, d], 4, "")?;
    let wave = (PR_TILE_BYTES / tile_bytes).clamp(1, pieces);
    let mut tiles: Vec<f32> = alloc::try_mat(F, "the float32 tiles of x^T y", wave, d * d, "")?;
    // Per piece: (‖x‖² + ‖y‖², magnitude bits of x, of y).
    let mut stats = vec![(0f64, 0u32, 0u32); pieces];
    for p0 in (0..pieces).step_by(wave) {
        let w = wave.min(pieces - p0);
        let tiles = &mut tiles[..w * d * d];
        pool::run(|| {
            tiles
                .par_chunks_mut(d * d)
                .zip(stats[p0..p0 + w].par_iter_mut())
                .enumerate()
                .for_each(|(t, (tile, st))| {
                    let r0 = (p0 + t) * PR_ROWS;
                    let rows = PR_ROWS.min(n - r0);
                    let xs = &x[r0 * d..(r0 + rows) * d];
                    let ys = &y[r0 * d..(r0 + rows) * d];
                    *st = (
                        row_sumsq(xs, d) + row_sumsq(ys, d),
                        amax_bits(xs),
                        amax_bits(ys),
                    );
                    // xsᵀ·ys, with xs read as a transposed operand (no transposed copy).
                    k::gemm(k::GemmRef::tn(d, d, rows, (xs, d), (ys, d), (tile, d)));
                });
            m.par_chunks_mut(d).enumerate().for_each(|(i, acc)| {
                for tile in tiles.chunks_exact(d * d) {
                    for (a, &t) in acc.iter_mut().zip(&tile[i * d..(i + 1) * d]) {
                        *a += t as f64;
                    }
                }
            });
        });
    }
    Ok(Pass {
        m,
        norms: stats.iter().map(|s| s.0).sum(),
        bits_x: stats.iter().map(|s| s.1).max().unwrap_or(0),
        bits_y: stats.iter().map(|s| s.2).max().unwrap_or(0),
    })
}

/// Σ of the squared entries of the rows of `m` (width d): float32 per row, float64 across rows.
fn row_sumsq(m: &[f32], d: usize) -> f64 {
    m.chunks_exact(d).map(|r| k::sumsq(r) as f64).sum()
}

/// The largest of the bit patterns of |v| over `m` (see [`Pass`]).
fn amax_bits(m: &[f32]) -> u32 {
    m.iter().fold(0u32, |a, v| a.max(v.to_bits() & 0x7FFF_FFFF))
}

/// Orthogonal Procrustes: Q = U·Vᵀ from the SVD U·Σ·Vᵀ of xᵀy (minimizes ‖x·Q − y‖_F over
/// orthogonal Q, reflections allowed) and the residual ‖x·Q − y‖_F.
///
/// The residual is √(‖x‖² + ‖y‖² − 2Σσᵢ) (tr(QᵀM) = Σσᵢ for this Q) when that difference is at
/// least [`PR_CANCELLATION`] of ‖x‖² + ‖y‖²; a closer fit would lose too many digits to the
/// subtraction, and the residual is then recomputed directly from x·Q − y (one more n × d × d
/// product).
pub fn procrustes(x: &[f32], y: &[f32], n: usize, d: usize) -> Result<Procrustes> {
    const F: &str = "procrustes";
    check_matrix(F, "x", x, n, d)?;
    check_matrix(F, "y", y, n, d)?;
    // One parallel pass forms xᵀy, the norms and the largest magnitudes; a non-finite value is
    // then located by the serial check (same error, same precedence).
    let pass = xt_y(x, y, n, d)?;
    if pass.bits_x >= NON_FINITE {
        check_finite(F, "x", x)?;
    }
    if pass.bits_y >= NON_FINITE {
        check_finite(F, "y", y)?;
    }
    // Q is unchanged and the residual scales by α when x and y are both scaled by α. The
    // float32 products of xᵀy overflow beyond ~1e19 and vanish below ~1e-19, so inputs whose
    // largest magnitude is outside [2^-40, 2^40] are scaled by a power of two (exact) and the
    // pass is made again on the scaled copies.
    let amax = f32::from_bits(pass.bits_x.max(pass.bits_y));
    if let Some(alpha) = range_scale(amax) {
        drop(pass);
        let sx = scaled_copy(F, "x scaled into the float32 product range", x, alpha)?;
        let sy = scaled_copy(F, "y scaled into the float32 product range", y, alpha)?;
        let pass = xt_y(&sx, &sy, n, d)?;
        let mut r = solve(&sx, &sy, pass, d)?;
        r.residual /= alpha;
        return Ok(r);
    }
    solve(x, y, pass, d)
}

/// Largest magnitudes [`procrustes`] takes without scaling.
const PR_SAFE_LO: f32 = 9.094947e-13; // 2^-40
const PR_SAFE_HI: f32 = 1.0995116e12; // 2^40

/// Q and the residual from the pass over checked x and y whose magnitudes suit float32 products.
fn solve(x: &[f32], y: &[f32], pass: Pass, d: usize) -> Result<Procrustes> {
    const F: &str = "procrustes";
    let dd = alloc::elems(F, "the d × d matrices of the SVD", &[d, d], 8, "")?;
    let mut rotation = alloc::try_vec(F, "the d × d rotation", dd)?;
    let Pass { m, norms, .. } = pass;
    // faer allocates infallibly: its copy of x^T y, U, V, U·V^T (d × d f64 each) and the SVD
    // workspace are checked here, before it runs.
    let par = faer::get_global_parallelism();
    let scratch = faer::linalg::svd::svd_scratch::<f64>(
        d,
        d,
        faer::linalg::svd::ComputeSvdVectors::Full,
        faer::linalg::svd::ComputeSvdVectors::Full,
        par,
        Default::default(),
    );
    let faer_bytes = dd
        .checked_mul(8 * 4)
        .and_then(|b| b.checked_add(scratch.size_bytes()));
    match faer_bytes {
        Some(b) => alloc::probe(F, "the SVD of the d × d matrix x^T y", b, "")?,
        None => bail!(
            Arg,
            "{F}: cannot allocate the SVD of the {d} × {d} matrix x^T y"
        ),
    }
    let mm = Mat::<f64>::from_fn(d, d, |i, j| m[i * d + j]);
    drop(m);
    let svd = match mm.svd() {
        Ok(s) => s,
        Err(_) => bail!(Arg, "{F}: the SVD of x^T y did not converge"),
    };
    let q = svd.U() * svd.V().transpose();
    for i in 0..d {
        for j in 0..d {
            rotation[i * d + j] = q[(i, j)] as f32;
        }
    }
    // ‖xQ − y‖² = ‖x‖² + ‖y‖² − 2·tr(QᵀM) = ‖x‖² + ‖y‖² − 2·Σσ.
    let sv = svd.S().column_vector();
    let sigma: f64 = (0..d).map(|i| sv[i]).sum();
    let algebraic = norms - 2.0 * sigma;
    let residual = if algebraic >= PR_CANCELLATION * norms {
        algebraic.sqrt()
    } else {
        direct_residual(x, y, &rotation, d)
    };
    Ok(Procrustes { rotation, residual })
}

/// ‖x·rot − y‖_F formed directly: a float32 product per piece of `PR_ROWS` rows, the squared
/// differences summed in float64 per piece and across pieces in order.
fn direct_residual(x: &[f32], y: &[f32], rot: &[f32], d: usize) -> f64 {
    let pieces: Vec<f64> = pool::run(|| {
        x.par_chunks(PR_ROWS * d)
            .zip(y.par_chunks(PR_ROWS * d))
            .map(|(xs, ys)| {
                let p = xs.len() / d;
                let mut t = vec![0f32; p * d];
                k::gemm_nn(p, d, d, (xs, d), (rot, d), (&mut t, d), false);
                t.iter()
                    .zip(ys)
                    .map(|(&a, &b)| ((a - b) as f64).powi(2))
                    .sum::<f64>()
            })
            .collect()
    });
    pieces.iter().sum::<f64>().sqrt()
}

// ---------------------------------------------------------------------------------------------
// Spherical triangles

/// Result of [`spherical_triangle`].
#[derive(Clone, Debug)]
pub struct Triangle {
    pub sides: [f64; 3],
    pub angles: [f64; 3],
    pub excess: f64,
    pub area: f64,
    pub chord_area: f64,
    pub curvature: f64,
}

/// Relative volume below which three unit vectors count as one great circle.
pub const SPHERICAL_DEGENERACY: f64 = 1e-9;

fn dot64(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn nrm64(a: &[f64]) -> f64 {
    dot64(a, a).sqrt()
}

fn sub64(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// q minus its projections on the orthonormal `basis` (two passes).
fn reject(q: &[f64], basis: &[&[f64]]) -> Vec<f64> {
    let mut w = q.to_vec();
    for _ in 0..2 {
        for b in basis {
            let t = dot64(&w, b);
            for (wi, bi) in w.iter_mut().zip(b.iter()) {
                *wi -= t * bi;
            }
        }
    }
    w
}

fn angle_between(p: &[f64], q: &[f64]) -> f64 {
    let np = nrm64(p);
    let ph: Vec<f64> = p.iter().map(|x| x / np).collect();
    let perp = reject(q, &[&ph]);
    (np * nrm64(&perp)).atan2(dot64(p, q))
}

fn vertex_angle(at: &[f64], p: &[f64], q: &[f64]) -> f64 {
    let tp = reject(&sub64(p, at), &[at]);
    let tq = reject(&sub64(q, at), &[at]);
    angle_between(&tp, &tq)
}

fn geodesic(p: &[f64], q: &[f64]) -> f64 {
    let (mut s, mut t) = (0.0, 0.0);
    for (a, b) in p.iter().zip(q) {
        s += (a - b) * (a - b);
        t += (a + b) * (a + b);
    }
    2.0 * s.sqrt().atan2(t.sqrt())
}

fn unit64(name: &str, a: &[f32]) -> Result<Vec<f64>> {
    let m = a.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    if m == 0.0 {
        bail!(Arg, "sphericalTriangle: {name} is the zero vector");
    }
    let mut out: Vec<f64> = a.iter().map(|&v| v as f64 / m).collect();
    let n = nrm64(&out);
    for v in out.iter_mut() {
        *v /= n;
    }
    Ok(out)
}

/// The spherical triangle with vertices x, y, z (normalized inside); see the TypeScript
/// reference for the formulas (atan2 forms; excess by Van Oosterom–Strackee with a
/// Gram–Schmidt volume). Degenerate triangles → E_ARG.
pub fn spherical_triangle(x: &[f32], y: &[f32], z: &[f32]) -> Result<Triangle> {
    const F: &str = "sphericalTriangle";
    if x.len() != y.len() || x.len() != z.len() {
        bail!(
            Shape,
            "{F}: x, y, z have lengths {}, {}, {}; they must be equal",
            x.len(),
            y.len(),
            z.len()
        );
    }
    if x.is_empty() {
        bail!(Shape, "{F}: x, y, z are empty");
    }
    if x.len() < 2 {
        bail!(Arg, "{F}: the dimension must be >= 2, got {}", x.len());
    }
    check_finite(F, "x", x)?;
    check_finite(F, "y", y)?;
    check_finite(F, "z", z)?;
    let (xx, yy, zz) = (unit64("x", x)?, unit64("y", y)?, unit64("z", z)?);
    let u = sub64(&yy, &xx);
    let w = sub64(&zz, &xx);
    let (nu, nw) = (nrm64(&u), nrm64(&w));
    let u1 = reject(&u, &[&xx]);
    let h2 = nrm64(&u1);
    let h3 = if h2 > 0.0 {
        let e2: Vec<f64> = u1.iter().map(|t| t / h2).collect();
        nrm64(&reject(&w, &[&xx, &e2]))
    } else {
        0.0
    };
    let vol = h2 * h3;
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(nu > 0.0) || !(nw > 0.0) || !(vol > SPHERICAL_DEGENERACY * nu * nw) {
        bail!(Arg, "{F}: degenerate triangle (two vertices equal or antipodal, or all three on one great circle)");
    }
    let sides = [geodesic(&yy, &zz), geodesic(&xx, &zz), geodesic(&xx, &yy)];
    let angles = [
        vertex_angle(&xx, &yy, &zz),
        vertex_angle(&yy, &zz, &xx),
        vertex_angle(&zz, &xx, &yy),
    ];
    let den = 1.0 + dot64(&xx, &yy) + dot64(&yy, &zz) + dot64(&zz, &xx);
    let excess = 2.0 * vol.atan2(den);
    let uh: Vec<f64> = u.iter().map(|t| t / nu).collect();
    let chord_area = 0.5 * nu * nrm64(&reject(&w, &[&uh]));
    Ok(Triangle {
        sides,
        angles,
        excess,
        area: excess,
        chord_area,
        curvature: excess / chord_area,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn randn(n: usize, seed: u64) -> Vec<f32> {
        let mut g = GaussianStream::new(seed);
        (0..n).map(|_| g.gauss() as f32).collect()
    }

    #[test]
    fn splitmix_known_values() {
        // SplitMix64 with seed 0: first outputs of the published reference implementation.
        let mut g = GaussianStream::new(0);
        assert_eq!(g.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(g.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn vote_ties_go_to_nearest() {
        assert_eq!(vote(&[3, 1, 1, 3]), 3);
        assert_eq!(vote(&[3, 1, 1]), 1);
        assert_eq!(vote(&[7]), 7);
        assert_eq!(vote(&[2, 5, 9]), 2);
    }

    #[test]
    fn random_orthogonal_is_orthogonal() {
        for d in [1usize, 2, 5, 33] {
            let q = random_orthogonal(d, 42).unwrap();
            for i in 0..d {
                for j in 0..d {
                    let s: f64 = (0..d)
                        .map(|t| q[t * d + i] as f64 * q[t * d + j] as f64)
                        .sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((s - want).abs() < 1e-5, "d={d} ({i},{j}) {s}");
                }
            }
        }
        assert_eq!(
            random_orthogonal(7, 3).unwrap(),
            random_orthogonal(7, 3).unwrap()
        );
        assert!(random_orthogonal(0, 1).is_err());
    }

    #[test]
    fn procrustes_recovers_planted_rotation() {
        let (n, d) = (600, 17);
        let x = randn(n * d, 5);
        let q = random_orthogonal(d, 9).unwrap();
        let y = matmul(&x, n, d, &q, d).unwrap();
        let p = procrustes(&x, &y, n, d).unwrap();
        for (a, b) in p.rotation.iter().zip(&q) {
            assert!((a - b).abs() < 1e-4);
        }
        assert!(p.residual < 1e-3, "{}", p.residual);
    }

    /// ‖x·rot − y‖_F in float64 from the returned (float32) rotation.
    fn direct64(x: &[f32], y: &[f32], rot: &[f32], n: usize, d: usize) -> f64 {
        let mut s = 0f64;
        for r in 0..n {
            for j in 0..d {
                let v: f64 = (0..d)
                    .map(|i| x[r * d + i] as f64 * rot[i * d + j] as f64)
                    .sum();
                s += (v - y[r * d + j] as f64).powi(2);
            }
        }
        s.sqrt()
    }

    #[test]
    fn procrustes_residual_matches_the_direct_form() {
        let (n, d) = (1100, 13);
        let (x, noise) = (randn(n * d, 21), randn(n * d, 22));
        let xq = matmul(&x, n, d, &random_orthogonal(d, 4).unwrap(), d).unwrap();
        // Unrelated (from the SVD), noisy fits on both sides of the cancellation rule, and a
        // near-perfect fit (recomputed directly).
        for (eps, tol) in [
            (f32::NAN, 1e-6),
            (0.3, 1e-6),
            (0.05, 1e-5),
            (0.03, 1e-5),
            (1e-4, 1e-5),
        ] {
            let y: Vec<f32> = if eps.is_nan() {
                randn(n * d, 23)
            } else {
                xq.iter().zip(&noise).map(|(a, e)| a + eps * e).collect()
            };
            let p = procrustes(&x, &y, n, d).unwrap();
            let want = direct64(&x, &y, &p.rotation, n, d);
            assert!(
                (p.residual - want).abs() <= tol * want,
                "eps {eps}: {} vs {want}",
                p.residual
            );
            // Scaled inputs: same rotation, residual scaled (powers of two are exact).
            for s in [2f32.powi(60), 2f32.powi(-60)] {
                let (sx, sy): (Vec<f32>, Vec<f32>) =
                    x.iter().zip(&y).map(|(&a, &b)| (a * s, b * s)).unzip();
                let ps = procrustes(&sx, &sy, n, d).unwrap();
                assert_eq!(ps.rotation, p.rotation, "eps {eps} scale {s}");
                let rel = (ps.residual / s as f64 - p.residual).abs() / p.residual;
                assert!(rel < 1e-12, "eps {eps} scale {s}: {rel}");
            }
        }
    }

    #[test]
    fn procrustes_is_identical_for_every_thread_count() {
        // Several pieces: any dependence of the summation order on the threads would show.
        let (n, d) = (3 * PR_ROWS + 17, 9);
        let x = randn(n * d, 31);
        let y = randn(n * d, 32);
        pool::set_threads(1).unwrap();
        let a = procrustes(&x, &y, n, d).unwrap();
        pool::set_threads(3).unwrap();
        let b = procrustes(&x, &y, n, d).unwrap();
        assert_eq!(a.rotation, b.rotation);
        assert_eq!(a.residual.to_bits(), b.residual.to_bits());
    }

    #[test]
    fn procrustes_reports_non_finite_input() {
        let (n, d) = (700, 4);
        let x = randn(n * d, 1);
        let mut y = randn(n * d, 2);
        y[2001] = f32::INFINITY;
        let e = procrustes(&x, &y, n, d).err().unwrap();
        assert_eq!(e.code.as_str(), "E_NON_FINITE");
        assert!(
            e.msg
                .contains("y has a non-finite value Infinity at index 2001"),
            "{}",
            e.msg
        );
        let mut x2 = x.clone();
        x2[5] = f32::NAN;
        let e = procrustes(&x2, &y, n, d).err().unwrap();
        assert!(
            e.msg.contains("x has a non-finite value NaN at index 5"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn octant_triangle() {
        let t = spherical_triangle(&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0], &[0.0, 0.0, 1.0]).unwrap();
        let h = std::f64::consts::FRAC_PI_2;
        for v in t.sides.iter().chain(t.angles.iter()) {
            assert!((v - h).abs() < 1e-12);
        }
        assert!((t.excess - h).abs() < 1e-12);
        assert!(spherical_triangle(&[1.0, 0.0, 0.0], &[1.0, 0.0, 0.0], &[0.0, 0.0, 1.0]).is_err());
        assert!(spherical_triangle(&[1.0, 0.0, 0.0], &[-1.0, 0.0, 0.0], &[0.0, 0.0, 1.0]).is_err());
        assert!(spherical_triangle(&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0], &[1.0, 1.0, 0.0]).is_err());
    }
}
