//! Chapter 1: similarity geometry — dot, cosine, L2, normalization, batched similarity.

use crate::bail;
use crate::error::{check_matrix, Result};
use crate::pool;
use crate::precision::Gemm;
use crate::precision::{self, Precision};
use crate::quantized::{check_corpus, Corpus};
use densevec_kernels::{self as k, RawRowsMut};
use rayon::prelude::*;
use std::borrow::Cow;
use std::ops::Range;

/// Similarity metric of the batched functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Dot,
    Cosine,
    L2sq,
}

impl Metric {
    /// 0 = dot, 1 = cosine, 2 = l2sq (the binding's wire code).
    pub fn from_code(func: &str, code: u32) -> Result<Metric> {
        match code {
            0 => Ok(Metric::Dot),
            1 => Ok(Metric::Cosine),
            2 => Ok(Metric::L2sq),
            _ => bail!(Arg, "{func}: unknown metric code {code}"),
        }
    }
    /// Whether larger scores are better (dot, cosine) or smaller (l2sq).
    pub fn larger_is_better(self) -> bool {
        !matches!(self, Metric::L2sq)
    }
}

fn same_len(func: &str, a: &[f32], b: &[f32]) -> Result<()> {
    if a.len() != b.len() {
        bail!(
            Shape,
            "{func}: a has length {} but b has length {}",
            a.len(),
            b.len()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Range. The SIMD kernels accumulate squares and products in float32, which overflows for
// entries beyond ~1e19 and loses everything below ~1e-19 although both fit in float32. Every
// function here checks the float32 result and, when it is out of the safe range, redoes the
// work in float64, where the square of any float32 value is exact in range.

/// A float32 sum of `n` squares below `n · SUMSQ_FLOOR` may have lost underflowed terms
/// (each below f32::MIN_POSITIVE) beyond 2^-24 of itself.
const SUMSQ_FLOOR: f64 = f32::MIN_POSITIVE as f64 * 16_777_216.0;

/// Whether a float32 sum of `n` squares is exact to float32 rounding: finite and far enough
/// above the underflow threshold.
#[inline]
pub(crate) fn sumsq_in_range(s: f32, n: usize) -> bool {
    s.is_finite() && s as f64 >= n as f64 * SUMSQ_FLOOR
}

/// Σ a_k² in float64 (no overflow or underflow for float32 entries).
pub(crate) fn sumsq_f64(a: &[f32]) -> f64 {
    a.iter().map(|&v| v as f64 * v as f64).sum()
}

/// ‖a‖² in float64 over the whole float32 range: the SIMD sum when it is in range, otherwise
/// the float64 sum.
#[inline]
pub fn sumsq_robust(a: &[f32]) -> f64 {
    sumsq_robust_with(&k::kernels(), a)
}

/// [`sumsq_robust`] with a kernel table taken once by the caller's row loop.
#[inline]
fn sumsq_robust_with(kt: &k::Kernels, a: &[f32]) -> f64 {
    sumsq_finish(a, kt.sumsq(a))
}

/// ‖a‖² from the SIMD sum `s` of `a`: `s` when it is in range, otherwise the float64 sum.
#[inline]
fn sumsq_finish(a: &[f32], s: f32) -> f64 {
    if sumsq_in_range(s, a.len()) {
        s as f64
    } else {
        sumsq_f64(a)
    }
}

/// (a·b, ‖a‖², ‖b‖²) in float64.
pub(crate) fn dot_norms_f64(a: &[f32], b: &[f32]) -> (f64, f64, f64) {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    (ab, aa, bb)
}

/// Cosine from float64 sums, as the reference forms it (0 when either norm is 0).
#[inline]
fn cos_f64(ab: f64, aa: f64, bb: f64) -> f64 {
    let den = aa.sqrt() * bb.sqrt();
    if den == 0.0 {
        0.0
    } else {
        ab / den
    }
}

/// Σ (a_k − b_k)² in float64.
fn l2sq_f64(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum()
}

/// Σ a_k b_k.
pub fn dot(a: &[f32], b: &[f32]) -> Result<f32> {
    same_len("dot", a, b)?;
    Ok(dot_pair(a, b) as f32)
}

/// Σ a_k b_k over the whole float32 range (unchecked lengths): the SIMD sum, redone in float64
/// when it overflowed or is so small that underflowed products may matter.
pub fn dot_pair(a: &[f32], b: &[f32]) -> f64 {
    dot_finish(a, b, k::dot(a, b))
}

/// [`dot_pair`] from the SIMD sum `s` of a·b: `s` when it is in range, otherwise the float64
/// sum. Shared by the single pair and the row loops, so both give the same bits.
#[inline]
pub fn dot_finish(a: &[f32], b: &[f32], s: f32) -> f64 {
    if s.is_finite() && s.abs() as f64 >= a.len() as f64 * SUMSQ_FLOOR {
        s as f64
    } else {
        a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
    }
}

/// Cosine from the fused (a·b, ‖a‖², ‖b‖²); 0 when either norm is 0. The sums must be in
/// range (see [`cosine_pair`] for any input).
#[inline]
pub fn cosine_from(ab: f32, aa: f32, bb: f32) -> f32 {
    let den = (aa as f64 * bb as f64).sqrt();
    if den == 0.0 {
        0.0
    } else {
        (ab as f64 / den) as f32
    }
}

/// a·b / (‖a‖‖b‖) over the whole float32 range (unchecked lengths); 0 when either norm is 0.
pub fn cosine_pair(a: &[f32], b: &[f32]) -> f64 {
    cosine_finish(a, b, k::dot_norms(a, b))
}

/// [`cosine_pair`] from the SIMD sums (a·b, ‖a‖², ‖b‖²): formed in float64 from them when
/// both norms are in range, otherwise from float64 sums. Shared by the single pair and the row
/// loops, so both give the same bits.
#[inline]
pub fn cosine_finish(a: &[f32], b: &[f32], (ab, aa, bb): (f32, f32, f32)) -> f64 {
    if sumsq_in_range(aa, a.len()) && sumsq_in_range(bb, b.len()) {
        cos_f64(ab as f64, aa as f64, bb as f64)
    } else {
        let (ab, aa, bb) = dot_norms_f64(a, b);
        cos_f64(ab, aa, bb)
    }
}

/// a·b / (‖a‖‖b‖); 0 when either norm is 0.
pub fn cosine(a: &[f32], b: &[f32]) -> Result<f32> {
    same_len("cosine", a, b)?;
    Ok(cosine_pair(a, b) as f32)
}

/// Σ (a_k − b_k)² over the whole float32 range (unchecked lengths), in float64.
pub fn l2sq_pair(a: &[f32], b: &[f32]) -> f64 {
    l2sq_finish(a, b, k::l2sq(a, b))
}

/// [`l2sq_pair`] from the SIMD sum `s` of (a − b)²: `s` when it is in range, otherwise the
/// float64 sum. Shared by the single pair and the row loops, so both give the same bits.
#[inline]
pub fn l2sq_finish(a: &[f32], b: &[f32], s: f32) -> f64 {
    if sumsq_in_range(s, a.len()) {
        s as f64
    } else {
        l2sq_f64(a, b)
    }
}

/// Σ (a_k − b_k)².
pub fn l2sq(a: &[f32], b: &[f32]) -> Result<f32> {
    same_len("l2sq", a, b)?;
    Ok(l2sq_pair(a, b) as f32)
}

/// ‖a‖₂ in float64, over the whole float32 range.
pub fn norm64(a: &[f32]) -> f64 {
    sumsq_robust(a).sqrt()
}

/// ‖a‖₂.
pub fn norm(a: &[f32]) -> f32 {
    norm64(a) as f32
}

/// Scales `x` to unit length in place; a zero vector stays zero, a vector holding NaN or ±∞
/// becomes NaN (as in the reference).
pub fn normalize_inplace(x: &mut [f32]) {
    normalize_with(&k::kernels(), x)
}

/// [`normalize_inplace`] with a kernel table taken once by the caller's row loop.
fn normalize_with(kt: &k::Kernels, x: &mut [f32]) {
    let s = kt.sumsq(x);
    if sumsq_in_range(s, x.len()) {
        kt.scale(x, inv_sqrt(s));
        return;
    }
    normalize_f64(x)
}

/// 1/√s rounded to float32, for a float32 sum of squares in range.
#[inline]
fn inv_sqrt(s: f32) -> f32 {
    (1.0 / (s as f64).sqrt()) as f32
}

/// [`normalize_inplace`] of a row whose float32 sum of squares is out of range: from the
/// float64 sum.
fn normalize_f64(x: &mut [f32]) {
    let s = sumsq_f64(x);
    if s == 0.0 {
        return;
    }
    if !s.is_finite() {
        k::scale(x, f32::NAN);
        return;
    }
    // Out of the float32 range of the sum of squares: scale in float64 (1/‖x‖ itself may not
    // fit in float32).
    let inv = 1.0 / s.sqrt();
    for v in x.iter_mut() {
        *v = (*v as f64 * inv) as f32;
    }
}

/// Rows per parallel piece for row-wise work (fixed, so results do not depend on threads).
const ROW_PIECE: usize = 256;

/// Normalizes every row of a row-major `rows × cols` buffer in place (parallel over rows).
pub fn normalize_rows_inplace(data: &mut [f32], cols: usize) {
    if cols == 0 {
        return;
    }
    let kt = k::kernels();
    if data.len() < ROW_PIECE * cols * 4 {
        normalize_block(&kt, data, cols);
        return;
    }
    pool::run(|| {
        data.par_chunks_mut(ROW_PIECE * cols)
            .for_each(|piece| normalize_block(&kt, piece, cols));
    });
}

/// Rows per call of the row kernels in [`normalize_block`] (small enough to stay in L1/L2
/// between the sum of squares and the scaling).
const NORM_BLOCK: usize = 16;

/// [`normalize_inplace`] of every row of `data` (rows of `cols` values, the last one possibly
/// shorter), the same bits: per block of rows, the sums of squares in one row kernel, the rows
/// out of range normalized by [`normalize_f64`], then one scaling row kernel (by 1/‖row‖, or
/// by 1 for the rows already done, which leaves every value, NaN included, as it is).
fn normalize_block(kt: &k::Kernels, data: &mut [f32], cols: usize) {
    for block in data.chunks_mut(NORM_BLOCK * cols) {
        let n = block.len() / cols;
        let (block, part) = block.split_at_mut(n * cols);
        if !part.is_empty() {
            normalize_with(kt, part);
        }
        let (mut s, mut f) = ([0f32; NORM_BLOCK], [1f32; NORM_BLOCK]);
        kt.sumsq_rows(block, cols, &mut s[..n]);
        for ((r, &si), fi) in block.chunks_mut(cols).zip(&s[..n]).zip(&mut f) {
            if sumsq_in_range(si, cols) {
                *fi = inv_sqrt(si);
            } else {
                normalize_f64(r);
            }
        }
        kt.scale_rows(block, cols, &f[..n]);
    }
}

/// Applies `f` to every row of a row-major buffer, parallel over fixed pieces of rows.
fn map_rows(data: &[f32], rows: usize, cols: usize, f: impl Fn(&[f32]) -> f32 + Sync) -> Vec<f32> {
    map_pieces(data, rows, cols, |d, o| {
        for (oi, r) in o.iter_mut().zip(d.chunks(cols)) {
            *oi = f(r);
        }
    })
}

/// One value per row of the first `rows` rows of a row-major buffer: `f(piece, out)` on fixed
/// pieces of rows (whole rows, one output each), parallel over the pieces.
fn map_pieces(
    data: &[f32],
    rows: usize,
    cols: usize,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) -> Vec<f32> {
    let mut out = vec![0f32; rows];
    if cols == 0 {
        return out;
    }
    if rows * cols < ROW_PIECE * 1024 {
        f(data, &mut out);
        return out;
    }
    pool::run(|| {
        out.par_chunks_mut(ROW_PIECE)
            .zip(data.par_chunks(ROW_PIECE * cols))
            .for_each(|(o, d)| f(d, o));
    });
    out
}

/// ‖row_i‖² for every row (float64 sums where float32 would over- or underflow, rounded to
/// float32): one row kernel per piece, each row finished as [`sumsq_robust`] does. `data`
/// must hold at least `rows × cols` values.
pub fn row_sumsq(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let kt = k::kernels();
    let data = &data[..rows * cols];
    map_pieces(data, rows, cols, |d, o| {
        kt.sumsq_rows(d, cols, o);
        for (oi, r) in o.iter_mut().zip(d.chunks(cols)) {
            *oi = sumsq_finish(r, *oi) as f32;
        }
    })
}

/// 1/‖row‖ per row, 0 for a zero row (so that zero rows give cosine 0).
pub fn inv_norms(sumsq: &[f32]) -> Vec<f32> {
    sumsq
        .iter()
        .map(|&s| {
            let n = (s as f64).sqrt();
            if n == 0.0 {
                0.0
            } else {
                (1.0 / n) as f32
            }
        })
        .collect()
}

/// A raw pointer that parallel tasks use to write disjoint regions of one output buffer.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    #[inline(always)]
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Tile sizes of the batched similarity (queries × corpus rows per task).
pub(crate) const TILE_M: usize = 192;
pub(crate) const TILE_N: usize = 384;

/// The tile of a q.rows × c.rows similarity matrix on `threads` threads: [`TILE_M`] ×
/// [`TILE_N`], doubled up to twice while both sides hold the larger tile and at least four
/// tiles per thread remain. Each tile packs its query rows and corpus rows for its GEMM, so
/// with 192 × 384 tiles a 4,096 × 10,000 product packed the corpus 21 times and the queries 26
/// times (about a third of the GEMM's time); 768 × 1,536 tiles pack them 6 and 7 times. The
/// tile never changes a value: every score is the same chain of operations on its two rows.
fn tile_shape(m: usize, n: usize, threads: usize) -> (usize, usize) {
    let mut f = 1;
    while f < 4 && m >= 2 * f * TILE_M && n >= 2 * f * TILE_N {
        let tiles = m.div_ceil(2 * f * TILE_M) * n.div_ceil(2 * f * TILE_N);
        if tiles < 4 * threads.max(1) {
            break;
        }
        f *= 2;
    }
    (f * TILE_M, f * TILE_N)
}

// ---------------------------------------------------------------------------------------------
// The batched metrics.
//
// Dot: the float32 GEMM of the rows.
//
// Cosine: the query rows are normalized first (float64 norm, so any finite row has a unit
// twin), the GEMM gives ‖c‖·cos, scaled by 1/‖c‖. Corpus rows whose norm is outside
// [COS_LO, COS_HI] (or not finite) are scored directly in float64.
//
// L2sq: ‖q‖² + ‖c‖² − 2q·c (as FAISS does), and wherever that cancels — the result below
// τ·(‖q‖² + ‖c‖²) (see `l2_recompute_threshold`), which is where its absolute error (about
// √d·2^-24·(‖q‖² + ‖c‖²)) could exceed 2^-14 of the result — the pair is recomputed directly
// as Σ(q_k − c_k)². So
// the error is relative, every score depends only on its two rows (not on the other queries
// or corpus rows of the call), and data with a common offset costs one direct pass per pair.
// Rows whose squared norms are outside [L2_LO, L2_HI], or not finite, are scored directly in
// float64.

/// Corpus-row norms the batched cosine takes on the float32 path.
const COS_LO: f64 = 8.271806125530277e-25; // 2^-80
const COS_HI: f64 = 1.2676506002282294e30; // 2^100
/// Query-row norms the bf16 cosine takes into its GEMM as they are (see `Queries::new`):
/// with corpus norms in [COS_LO, COS_HI] the products stay below 2^110 and, for rows that
/// matter, above the bf16 flush threshold.
const BF16_Q_LO: f64 = 9.765625e-4; // 2^-10
const BF16_Q_HI: f64 = 1024.0; // 2^10
/// Below τ·(‖q‖² + ‖c‖²), a batched l2sq is recomputed directly, with τ = 2^-5·max(1, √(d/64))
/// (capped at 1/2): the expansion's error grows like √d·2^-24·(‖q‖² + ‖c‖²). The GPU backend
/// applies the same rule.
#[doc(hidden)]
pub fn l2_recompute_threshold(d: usize) -> f32 {
    (0.03125 * (d as f32 / 64.0).sqrt()).clamp(0.03125, 0.5)
}
/// Squared norms the batched l2sq takes on the float32 path (0 is always fine).
const L2_LO: f64 = 7.888609052210118e-31; // 2^-100
const L2_HI: f64 = 1.2676506002282294e30; // 2^100

#[inline]
fn l2_in_range(s: f64) -> bool {
    s == 0.0 || (L2_LO..=L2_HI).contains(&s)
}

/// ‖c‖² of a corpus row for the batched l2sq, or NaN when the row is scored directly.
#[inline]
fn l2_aux(kt: &k::Kernels, c: &[f32]) -> f32 {
    let s = kt.sumsq(c);
    if s.is_finite() && (L2_LO..=L2_HI).contains(&(s as f64)) {
        return s;
    }
    let s = sumsq_f64(c);
    if l2_in_range(s) {
        s as f32
    } else {
        f32::NAN
    }
}

/// 1/‖c‖ of a corpus row for the batched cosine: 0 for a zero row, −1 for a row scored
/// directly (non-finite, or its norm outside [COS_LO, COS_HI]).
#[inline]
fn cos_aux(c: &[f32]) -> f32 {
    let n = norm64(c);
    if n == 0.0 {
        0.0
    } else if (COS_LO..=COS_HI).contains(&n) {
        (1.0 / n) as f32
    } else {
        -1.0
    }
}

/// Per-corpus-row auxiliaries of a metric, computed once per call: inverse norms for cosine
/// (see `cos_aux`), nothing for dot and l2sq (l2sq forms its corpus terms per tile).
pub(crate) fn aux(metric: Metric, data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    match metric {
        Metric::Cosine => map_rows(data, rows, cols, cos_aux),
        Metric::Dot | Metric::L2sq => Vec::new(),
    }
}

/// `start .. end` of every block of `size` in `0 .. n` (the last one shorter).
pub(crate) fn blocks(n: usize, size: usize) -> impl Iterator<Item = Range<usize>> {
    (0..n).step_by(size).map(move |s| s..n.min(s + size))
}

/// The inputs of a batched call (similarity matrix, top-k): `q_rows × cols` query rows against
/// `c_rows × cols` corpus rows in any storage type, under `metric`; checked by the call.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub q: &'a [f32],
    pub q_rows: usize,
    pub c: Corpus<'a>,
    pub c_rows: usize,
    pub cols: usize,
    pub metric: Metric,
}

impl<'a> Batch<'a> {
    pub fn new(
        q: &'a [f32],
        q_rows: usize,
        c: Corpus<'a>,
        c_rows: usize,
        cols: usize,
        metric: Metric,
    ) -> Self {
        Batch {
            q,
            q_rows,
            c,
            c_rows,
            cols,
            metric,
        }
    }

    /// Checks the query matrix, then the corpus ([`check_corpus`]).
    pub(crate) fn check(&self, func: &str) -> Result<()> {
        check_matrix(func, "q", self.q, self.q_rows, self.cols)?;
        check_corpus(func, &self.c, self.c_rows, self.cols)
    }

    /// The checked q.rows × c.rows matrix of the metric (allocated fallibly).
    pub(crate) fn similarity(&self) -> Result<Vec<f32>> {
        self.check(SIM_F)?;
        let mut out = crate::alloc::try_mat(SIM_F, SIM_WHAT, self.q_rows, self.c_rows, SIM_HINT)?;
        Search::new(*self).matrix_into(&mut out);
        Ok(out)
    }

    /// [`Batch::similarity`] written into `out` (checked to hold q.rows × c.rows values).
    pub(crate) fn similarity_into(&self, out: &mut [f32]) -> Result<()> {
        self.check(SIM_F)?;
        check_out(SIM_F, out, self.q_rows, self.c_rows)?;
        Search::new(*self).matrix_into(out);
        Ok(())
    }
}

/// The query side of a batched call, prepared for the metric.
pub(crate) struct Queries<'a> {
    /// The caller's rows as the GEMM sees them: q (f32), or its bf16 values (also for the
    /// entries scored directly).
    orig: Cow<'a, [f32]>,
    /// Cosine: the rows that enter the GEMM instead of `orig` — at f32 precision the unit
    /// rows; at bf16 precision, when some row's norm is far from 1, the rounded rows with
    /// those rows scaled by a power of two (empty otherwise).
    unit: Vec<f32>,
    /// l2sq: ‖q_i‖² per row.
    qa: Vec<f32>,
    /// Rows scored directly in float64 against every corpus row.
    direct: Vec<bool>,
    /// Cosine at bf16 precision: 1/‖q_i‖ per row, applied after the GEMM (the rows enter the
    /// GEMM unnormalized, so that their bf16 values are the caller's rounded values). Empty
    /// otherwise.
    qscale: Vec<f32>,
    /// Cosine and dot at bf16 precision: the corpus rows reach [`Search::finish`] unrounded
    /// (the GEMM rounds them itself), so a pair scored directly rounds its corpus row first.
    round_c: bool,
    cols: usize,
}

impl<'a> Queries<'a> {
    /// Prepares the query rows of `b` for its metric at `prec` (O(rows·cols) work).
    fn new(b: &Batch<'a>, prec: Precision) -> Self {
        let (metric, rows, cols) = (b.metric, b.q_rows, b.cols);
        let q = round_queries(b.q, prec);
        let mut p = Queries {
            orig: Cow::Borrowed(&[]),
            unit: Vec::new(),
            qa: Vec::new(),
            direct: vec![false; rows],
            qscale: Vec::new(),
            round_c: metric != Metric::L2sq && prec == Precision::Bf16,
            cols,
        };
        match metric {
            Metric::Dot => {}
            Metric::Cosine if prec == Precision::Bf16 => {
                let mut qs = vec![0f32; rows];
                // The GEMM takes the rounded rows unnormalized, so its products are q̃·c̃:
                // with ‖c̃‖ up to COS_HI they overflow for large ‖q̃‖, and are flushed to zero
                // (bf16 products below 2^-126) for small ones. Rows with a norm outside
                // [BF16_Q_LO, BF16_Q_HI] enter it scaled by a power of two (exact: bf16
                // values stay bf16 values) to a norm in [1/2, 1); the cosine does not change.
                let mut scaled: Option<Vec<f32>> = None;
                for (i, r) in q.chunks(cols.max(1)).enumerate().take(rows) {
                    let n = norm64(r);
                    if (COS_LO..=COS_HI).contains(&n) {
                        if (BF16_Q_LO..=BF16_Q_HI).contains(&n) {
                            qs[i] = (1.0 / n) as f32;
                        } else {
                            let f = 2f64.powi(-(n.log2().floor() as i32 + 1));
                            let u = scaled.get_or_insert_with(|| q.to_vec());
                            for v in &mut u[i * cols..(i + 1) * cols] {
                                *v = (*v as f64 * f) as f32;
                            }
                            qs[i] = (1.0 / (n * f)) as f32;
                        }
                    } else if n != 0.0 {
                        // Not finite, or 1/‖r‖ outside the float32 path's range.
                        p.direct[i] = true;
                    }
                }
                p.qscale = qs;
                if let Some(u) = scaled {
                    p.unit = u;
                }
            }
            Metric::Cosine => {
                let mut u = q.to_vec();
                for (r, dr) in u.chunks_mut(cols.max(1)).zip(p.direct.iter_mut()) {
                    let n = norm64(r);
                    if !n.is_finite() {
                        *dr = true;
                        r.fill(0.0);
                    } else if (COS_LO..=COS_HI).contains(&n) {
                        k::scale(r, (1.0 / n) as f32);
                    } else if n > 0.0 {
                        // 1/‖r‖ may not fit in float32.
                        let inv = 1.0 / n;
                        for v in r.iter_mut() {
                            *v = (*v as f64 * inv) as f32;
                        }
                    }
                }
                p.unit = u;
            }
            Metric::L2sq => {
                let mut qa = vec![0f32; rows];
                let kt = k::kernels();
                for (i, r) in q.chunks(cols.max(1)).enumerate() {
                    let s = sumsq_robust_with(&kt, r);
                    qa[i] = s as f32;
                    p.direct[i] = !l2_in_range(s);
                }
                p.qa = qa;
            }
        }
        p.orig = q;
        p
    }

    /// The rows that enter the GEMM: q (dot, l2sq, cosine at bf16), `unit` when it is set.
    fn gemm_rows(&self) -> &[f32] {
        if self.unit.is_empty() {
            &self.orig
        } else {
            &self.unit
        }
    }

    /// Query row `i` as the caller gave it (rounded at bf16).
    fn row(&self, i: usize) -> &[f32] {
        &self.orig[i * self.cols..(i + 1) * self.cols]
    }
}

/// The metric between query row `qi` and corpus row `c`, directly in float64 (as the
/// reference forms it), rounded to float32.
fn direct_score(metric: Metric, q: &[f32], c: &[f32]) -> f32 {
    match metric {
        Metric::Dot => q
            .iter()
            .zip(c)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum::<f64>() as f32,
        Metric::Cosine => {
            let (ab, aa, bb) = dot_norms_f64(q, c);
            cos_f64(ab, aa, bb) as f32
        }
        Metric::L2sq => l2sq_f64(q, c) as f32,
    }
}

/// A block of corpus rows as float32: rows `j0 .. j0 + rows` of the corpus (`c`, rows × cols
/// values) and their auxiliaries (`ca`, cosine only; empty otherwise).
#[derive(Clone, Copy)]
pub(crate) struct CBlock<'b> {
    pub c: &'b [f32],
    pub ca: &'b [f32],
    pub j0: usize,
    pub rows: usize,
}

impl<'b> CBlock<'b> {
    /// Rows `r` of this block (block-relative), as a block of their own.
    pub(crate) fn sub(&self, r: Range<usize>, cols: usize) -> CBlock<'b> {
        CBlock {
            c: &self.c[r.start * cols..r.end * cols],
            ca: aux_rows(self.ca, &r),
            j0: self.j0 + r.start,
            rows: r.len(),
        }
    }
}

/// The auxiliaries of rows `r` (none when the metric has none).
fn aux_rows<'b>(ca: &'b [f32], r: &Range<usize>) -> &'b [f32] {
    if ca.is_empty() {
        ca
    } else {
        &ca[r.clone()]
    }
}

/// A task's reusable buffers for corpus blocks: the decoded rows, their bf16 values and the
/// l2sq corpus terms of a tile.
#[derive(Default)]
pub(crate) struct TileBufs {
    decoded: Vec<f32>,
    rounded: Vec<f32>,
    scratch: Vec<f32>,
}

impl TileBufs {
    /// Corpus rows `r` of the call as float32, as the batched functions take them at the call's
    /// precision (stored or decoded, and at bf16 precision rounded for l2sq, which needs them
    /// after the GEMM: the bf16 GEMM rounds its inputs itself; cosine rounds the rare rows it
    /// scores directly, see `Queries::round_c`), and the scratch of the tiles scored on them.
    pub(crate) fn block<'b>(
        &'b mut self,
        s: &'b Search,
        r: Range<usize>,
    ) -> (CBlock<'b>, &'b mut Vec<f32>) {
        let (b, prec) = (&s.b, s.prec);
        let raw = b.c.rows(r.start, r.len(), b.cols, &mut self.decoded);
        let c = if prec == Precision::F32 || b.metric != Metric::L2sq {
            raw
        } else {
            prec.round_into(raw, &mut self.rounded);
            &self.rounded[..]
        };
        let blk = CBlock {
            c,
            ca: aux_rows(&s.ca, &r),
            j0: r.start,
            rows: r.len(),
        };
        (blk, &mut self.scratch)
    }
}

/// A batched call prepared at the call's precision (read once, at the entry): the query rows
/// for the metric and the corpus auxiliaries. Its tiles ([`Search::score`]) serve the
/// similarity matrix and top-k alike.
pub(crate) struct Search<'a> {
    pub b: Batch<'a>,
    pub prec: Precision,
    qs: Queries<'a>,
    ca: Vec<f32>,
}

impl<'a> Search<'a> {
    pub(crate) fn new(b: Batch<'a>) -> Self {
        let prec = precision::current();
        Search {
            qs: Queries::new(&b, prec),
            ca: corpus_aux(&b, prec),
            b,
            prec,
        }
    }

    /// Scores query rows `qr` against the corpus block `blk` into `out` (`qr.len()` rows of
    /// `blk.rows` values, `out.1` apart): the GEMM at the call's precision, then the metric.
    ///
    /// # Safety
    /// `out` must be valid for reads and writes of that many rows and values.
    pub(crate) unsafe fn score(
        &self,
        qr: Range<usize>,
        blk: &CBlock,
        out: RawRowsMut,
        scratch: &mut Vec<f32>,
    ) {
        let cols = self.b.cols;
        let q = self.qs.gemm_rows().as_ptr().add(qr.start * cols);
        self.prec.gemm_raw(&Gemm::nt(
            qr.len(),
            blk.rows,
            cols,
            (q, cols),
            (blk.c.as_ptr(), cols),
            out,
        ));
        self.finish(qr, blk, out, scratch);
    }

    /// Turns the raw products of a tile into the metric in place. The tile holds the products
    /// of prepared query rows `qr` with the corpus rows of `blk`; `scratch` is the task's
    /// reusable buffer.
    ///
    /// # Safety
    /// As [`Search::score`].
    unsafe fn finish(
        &self,
        qr: Range<usize>,
        blk: &CBlock,
        (tile, ld): RawRowsMut,
        scratch: &mut Vec<f32>,
    ) {
        let (metric, qs, d, nb) = (self.b.metric, &self.qs, self.qs.cols, blk.rows);
        let crow = |j: usize| &blk.c[j * d..(j + 1) * d];
        // A pair scored directly (rare: rows the float32 path cannot take), with the corpus
        // row rounded to bf16 first when it arrives unrounded.
        let direct = |qi: usize, j: usize| {
            if qs.round_c {
                let r: Vec<f32> = crow(j).iter().map(|&x| Precision::Bf16.round(x)).collect();
                direct_score(metric, qs.row(qi), &r)
            } else {
                direct_score(metric, qs.row(qi), crow(j))
            }
        };
        if metric == Metric::L2sq {
            scratch.clear();
            let kt = k::kernels();
            scratch.extend((0..nb).map(|j| l2_aux(&kt, crow(j))));
        }
        for (i, qi) in qr.enumerate() {
            let row = std::slice::from_raw_parts_mut(tile.add(i * ld), nb);
            if qs.direct[qi] {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = direct(qi, j);
                }
                continue;
            }
            match metric {
                Metric::Dot => {
                    // A product past the float32 range in the GEMM's chain of partial sums
                    // (entries of ~1e19 and up) gives ±∞ or NaN even where the dot fits, or ∞
                    // of the wrong sign: such pairs are recomputed in float64. One branch-free
                    // scan of the tile finds them.
                    if crate::error::any_non_finite(row) {
                        for (j, v) in row.iter_mut().enumerate() {
                            if !v.is_finite() {
                                *v = direct(qi, j);
                            }
                        }
                    }
                }
                Metric::Cosine => {
                    let qscale = qs.qscale.get(qi).copied();
                    for (j, (v, &c)) in row.iter_mut().zip(blk.ca).enumerate() {
                        if c >= 0.0 {
                            *v *= c;
                            if let Some(s) = qscale {
                                *v *= s;
                            }
                        } else {
                            *v = direct(qi, j);
                        }
                    }
                }
                Metric::L2sq => {
                    let (qa, tau) = (qs.qa[qi], l2_recompute_threshold(d));
                    for (j, (v, &cn)) in row.iter_mut().zip(scratch.iter()).enumerate() {
                        if cn.is_nan() {
                            *v = direct(qi, j);
                        } else {
                            let s = qa + cn;
                            let r = s - 2.0 * *v;
                            // Cancelled (or negative): recompute the pair directly.
                            *v = if r >= tau * s {
                                r
                            } else {
                                l2sq_pair(qs.row(qi), crow(j)) as f32
                            };
                        }
                    }
                }
            }
        }
    }

    /// The similarity matrix into `out` (q.rows × c.rows) tile by tile, in parallel (each tile
    /// takes its corpus rows as float32: a slice of a float32 corpus, or decoded into the task's
    /// buffer).
    fn matrix_into(&self, out: &mut [f32]) {
        let (m, n) = (self.b.q_rows, self.b.c_rows);
        let (tm, tn) = tile_shape(m, n, pool::threads());
        let tiles: Vec<(Range<usize>, Range<usize>)> = blocks(m, tm)
            .flat_map(|i| blocks(n, tn).map(move |j| (i.clone(), j)))
            .collect();
        let ptr = SendPtr(out.as_mut_ptr());
        let work = |bufs: &mut TileBufs, (qr, cr): &(Range<usize>, Range<usize>)| {
            let t = qr.start * n + cr.start;
            let (blk, scratch) = bufs.block(self, cr.clone());
            // SAFETY: tiles are disjoint rectangles of `out` (rows qr, columns cr) and this
            // task is their only reader and writer; the prepared q and the block hold these
            // rows.
            unsafe { self.score(qr.clone(), &blk, (ptr.get().add(t), n), scratch) }
        };
        if tiles.len() == 1 {
            work(&mut TileBufs::default(), &tiles[0]);
        } else {
            pool::run(|| tiles.par_iter().for_each_init(TileBufs::default, work));
        }
    }
}

/// q.rows × c.rows matrix of the metric between rows of `q` and rows of `c`.
///
/// Cosine is the product of unit query rows with the corpus rows scaled by their inverse norms;
/// l2sq is ‖q‖² + ‖c‖² − 2q·c, recomputed directly where that cancels (see the comment above
/// `COS_LO`), so its error is relative: below 2^-14·l2sq (README, "Tolerance"). Rows the float32 products cannot take are scored in float64.
pub fn similarity_matrix(
    q: &[f32],
    q_rows: usize,
    c: &[f32],
    c_rows: usize,
    cols: usize,
    metric: Metric,
) -> Result<Vec<f32>> {
    Batch::new(q, q_rows, Corpus::F32(c), c_rows, cols, metric).similarity()
}

/// [`similarity_matrix`] written into `out` (q.rows × c.rows values), e.g. a buffer that the
/// caller's runtime owns.
pub fn similarity_matrix_into(
    q: &[f32],
    q_rows: usize,
    c: &[f32],
    c_rows: usize,
    cols: usize,
    metric: Metric,
    out: &mut [f32],
) -> Result<()> {
    Batch::new(q, q_rows, Corpus::F32(c), c_rows, cols, metric).similarity_into(out)
}

/// Checks that an output buffer holds q.rows × c.rows values.
pub(crate) fn check_out(func: &str, out: &[f32], q_rows: usize, c_rows: usize) -> Result<()> {
    if q_rows.checked_mul(c_rows) != Some(out.len()) {
        bail!(
            Shape,
            "{func}: the output has length {} but q.rows * c.rows = {q_rows} * {c_rows}",
            out.len()
        );
    }
    Ok(())
}

/// The query rows as the batched functions take them at `prec`: `q` itself (f32), or its bf16
/// values.
fn round_queries(q: &[f32], prec: Precision) -> Cow<'_, [f32]> {
    match prec {
        Precision::F32 => Cow::Borrowed(q),
        Precision::Bf16 => Cow::Owned(q.iter().map(|&x| prec.round(x)).collect()),
    }
}

/// The corpus auxiliaries of the metric (see [`aux`]) at `prec`: of the bf16 values at bf16
/// precision; a compact corpus decoded a piece at a time.
fn corpus_aux(b: &Batch, prec: Precision) -> Vec<f32> {
    let (metric, rows, cols) = (b.metric, b.c_rows, b.cols);
    if metric != Metric::Cosine {
        return Vec::new();
    }
    if let (Corpus::F32(d), Precision::F32) = (b.c, prec) {
        return aux(metric, d, rows, cols);
    }
    const PIECE: usize = 4096;
    let mut out = Vec::with_capacity(rows);
    let (mut buf, mut rbuf) = (Vec::new(), Vec::new());
    for r in blocks(rows, PIECE) {
        let raw = b.c.rows(r.start, r.len(), cols, &mut buf);
        let piece = if prec == Precision::F32 {
            raw
        } else {
            prec.round_into(raw, &mut rbuf);
            &rbuf[..]
        };
        out.extend(aux(metric, piece, r.len(), cols));
    }
    out
}

const SIM_F: &str = "similarityMatrix";
const SIM_WHAT: &str = "the q.rows × c.rows similarity matrix";
const SIM_HINT: &str = "use topK for nearest neighbours, or split the batch";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::uniform;

    fn cos64(a: &[f32], b: &[f32]) -> f64 {
        let (ab, aa, bb) = dot_norms_f64(a, b);
        cos_f64(ab, aa, bb)
    }

    /// The in-place form writes every value of the caller's buffer: started from NaN, it gives
    /// the bits of the vector form for every metric, precision and corpus storage, with zero
    /// rows (scored directly) on both sides and shapes across the tiles.
    #[test]
    fn into_writes_every_value_of_a_buffer_of_any_contents() {
        use crate::precision::{with_precision, Precision};
        use crate::quantized::{f32_to_f16, similarity_matrix_q, similarity_matrix_q_into};
        let (qr, cr, d) = (37, 1289, 45);
        let mut q = crate::testdata::randv(qr * d, 5);
        let mut c = crate::testdata::randv(cr * d, 6);
        q[3 * d..4 * d].fill(0.0);
        c[700 * d..701 * d].fill(0.0);
        let c16: Vec<u16> = c.iter().map(|&v| f32_to_f16(v)).collect();
        for prec in [Precision::F32, Precision::Bf16] {
            for metric in [Metric::Dot, Metric::Cosine, Metric::L2sq] {
                with_precision(prec, || {
                    let want = similarity_matrix(&q, qr, &c, cr, d, metric).unwrap();
                    let mut out = vec![f32::NAN; qr * cr];
                    similarity_matrix_into(&q, qr, &c, cr, d, metric, &mut out).unwrap();
                    assert!(
                        want.iter()
                            .zip(&out)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{metric:?} {prec:?}"
                    );
                    let h = Corpus::F16(&c16);
                    let want = similarity_matrix_q(&q, qr, &h, cr, d, metric).unwrap();
                    out.fill(f32::NAN);
                    similarity_matrix_q_into(&q, qr, &h, cr, d, metric, &mut out).unwrap();
                    assert!(
                        want.iter()
                            .zip(&out)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "f16 {metric:?} {prec:?}"
                    );
                });
            }
        }
    }

    /// bf16 cosine of rows whose norms are far from 1 (the products q̃·c̃ of the GEMM would
    /// pass the float32 range, or be flushed to zero): the cosine of the rounded rows, for
    /// every pairing of query and corpus scales, in the matrix and in top-k.
    #[test]
    fn bf16_cosine_takes_rows_of_any_norm() {
        use crate::precision::{with_precision, Precision};
        let (qr, cr, d) = (3, 5, 7);
        let q0 = crate::testdata::randv(qr * d, 11);
        let c0 = crate::testdata::randv(cr * d, 12);
        let scales = [1e-22f32, 1e-20, 1e-5, 1.0, 3e3, 1e20, 1e30];
        for &sq in &scales {
            for &sc in &scales {
                let q: Vec<f32> = q0.iter().map(|&v| v * sq).collect();
                let c: Vec<f32> = c0.iter().map(|&v| v * sc).collect();
                let r = |v: &[f32]| -> Vec<f32> {
                    v.iter().map(|&x| Precision::Bf16.round(x)).collect()
                };
                let (qb, cb) = (r(&q), r(&c));
                let got = with_precision(Precision::Bf16, || {
                    similarity_matrix(&q, qr, &c, cr, d, Metric::Cosine).unwrap()
                });
                for i in 0..qr {
                    for j in 0..cr {
                        let want = cos64(&qb[i * d..(i + 1) * d], &cb[j * d..(j + 1) * d]);
                        let g = got[i * cr + j] as f64;
                        assert!(
                            (g - want).abs() <= 2e-6,
                            "q × {sq:e}, c × {sc:e}, ({i}, {j}): {g} vs {want}"
                        );
                    }
                }
                let t = with_precision(Precision::Bf16, || {
                    crate::topk::top_k(&q, qr, &c, cr, d, 2, Metric::Cosine).unwrap()
                });
                for i in 0..qr {
                    let j = t.indices[i * 2] as usize;
                    assert_eq!(
                        t.scores[i * 2],
                        got[i * cr + j],
                        "top-k q × {sq:e}, c × {sc:e}"
                    );
                    let best = (0..cr).map(|j| got[i * cr + j]).fold(f32::MIN, f32::max);
                    assert_eq!(t.scores[i * 2], best);
                }
            }
        }
    }

    /// Runs a check (on the detected ISA: switching ISAs is global state, and other tests
    /// compare bits across runs; the JS suite runs these regimes on every ISA).
    fn on_detected_isa(f: impl Fn()) {
        f()
    }

    /// The tile grows with the matrix and shrinks with the thread count.
    #[test]
    fn tile_shape_follows_size_and_threads() {
        assert_eq!(tile_shape(100, 20_000, 1), (TILE_M, TILE_N));
        assert_eq!(tile_shape(4096, 10_000, 1), (4 * TILE_M, 4 * TILE_N));
        assert_eq!(tile_shape(4096, 4096, 16), (2 * TILE_M, 2 * TILE_N));
        assert_eq!(tile_shape(800, 1600, 1), (4 * TILE_M, 4 * TILE_N));
        assert_eq!(tile_shape(800, 1600, 3), (TILE_M, TILE_N));
    }

    /// The same matrix, bit for bit, whatever the tiles (one thread takes 768 × 1,536 tiles
    /// here, three take 192 × 384), and each entry is its own pair's score.
    #[test]
    fn similarity_is_independent_of_the_tile() {
        let (m, n, d) = (800usize, 1600usize, 24usize);
        let mut s = 7u64;
        let mut gen =
            |len: usize| -> Vec<f32> { (0..len).map(|_| (uniform(&mut s) - 0.5) as f32).collect() };
        let (q, c) = (gen(m * d), gen(n * d));
        for metric in [Metric::Dot, Metric::Cosine, Metric::L2sq] {
            crate::pool::set_threads(1).unwrap();
            let one = similarity_matrix(&q, m, &c, n, d, metric).unwrap();
            crate::pool::set_threads(3).unwrap();
            let three = similarity_matrix(&q, m, &c, n, d, metric).unwrap();
            assert!(
                one.iter()
                    .zip(&three)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{metric:?}"
            );
            for &(i, j) in &[(0usize, 0usize), (799, 1599), (421, 1100), (767, 1536)] {
                let (a, b) = (&q[i * d..(i + 1) * d], &c[j * d..(j + 1) * d]);
                let want = match metric {
                    Metric::Dot => dot_pair(a, b) as f32,
                    Metric::Cosine => cos64(a, b) as f32,
                    Metric::L2sq => l2sq_f64(a, b) as f32,
                };
                let got = one[i * n + j];
                assert!(
                    (got - want).abs() <= 1e-5,
                    "{metric:?} ({i}, {j}): {got} vs {want}"
                );
            }
        }
        crate::pool::set_threads(1).unwrap();
    }

    #[test]
    fn pair_functions_cover_the_float32_range() {
        on_detected_isa(|| {
            for &scale in &[1e-25f32, 1e-23, 1e-19, 1.0, 1e19, 1e20, 1e30] {
                let a: Vec<f32> = (0..37)
                    .map(|k| scale * ((k as f32 * 0.7).sin() + 0.1))
                    .collect();
                let b: Vec<f32> = (0..37)
                    .map(|k| scale * ((k as f32 * 1.3).cos() - 0.2))
                    .collect();
                let c = cosine(&a, &b).unwrap() as f64;
                assert!((c - cos64(&a, &b)).abs() < 1e-6, "cosine at {scale}: {c}");
                let n = norm64(&a);
                let n64 = sumsq_f64(&a).sqrt();
                assert!(
                    (n - n64).abs() <= 1e-6 * n64,
                    "norm at {scale}: {n} vs {n64}"
                );
                let mut u = a.clone();
                normalize_inplace(&mut u);
                assert!((sumsq_f64(&u) - 1.0).abs() < 1e-6, "normalize at {scale}");
                let l = l2sq_pair(&a, &b);
                let l64 = l2sq_f64(&a, &b);
                assert!(
                    (l - l64).abs() <= 1e-6 * l64,
                    "l2sq at {scale}: {l} vs {l64}"
                );
                let d = dot_pair(&a, &b);
                let d64: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
                assert!(
                    (d - d64).abs() <= 1e-5 * d64.abs(),
                    "dot at {scale}: {d} vs {d64}"
                );
            }
        });
    }

    #[test]
    fn batched_cosine_covers_the_float32_range() {
        let d = 19;
        // Rows at very different magnitudes, a zero row and a row beyond the float32 range of
        // the squares.
        let scales = [1e-25f32, 1e-23, 1.0, 1e20, 3e37, 0.0, 1e-40];
        let m: Vec<f32> = scales
            .iter()
            .enumerate()
            .flat_map(|(i, &s)| (0..d).map(move |k| s * ((k as f32 + i as f32) * 0.9).sin()))
            .collect();
        let r = scales.len();
        on_detected_isa(|| {
            let sm = similarity_matrix(&m, r, &m, r, d, Metric::Cosine).unwrap();
            let tk = crate::topk::top_k(&m, r, &m, r, d, r, Metric::Cosine).unwrap();
            for i in 0..r {
                for j in 0..r {
                    let want = cos64(&m[i * d..(i + 1) * d], &m[j * d..(j + 1) * d]);
                    let got = sm[i * r + j] as f64;
                    assert!((got - want).abs() < 1e-6, "({i}, {j}): {got} vs {want}");
                }
                for t in 1..r {
                    assert!(tk.scores[i * r + t - 1] >= tk.scores[i * r + t]);
                }
            }
        });
    }

    #[test]
    fn batched_l2sq_of_infinite_rows_is_infinite() {
        let d = 5;
        let q: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0, 5.0, 0.5, 0.5, 0.5, 0.5, 0.5];
        let mut c = vec![0f32; 3 * d];
        c[1] = f32::INFINITY;
        c[d + 3] = f32::NEG_INFINITY;
        c[2 * d] = 7.0;
        on_detected_isa(|| {
            let sm = similarity_matrix(&q, 2, &c, 3, d, Metric::L2sq).unwrap();
            for i in 0..2 {
                assert_eq!(sm[i * 3], f32::INFINITY);
                assert_eq!(sm[i * 3 + 1], f32::INFINITY);
                let want = l2sq_f64(&q[i * d..(i + 1) * d], &c[2 * d..]) as f32;
                assert!((sm[i * 3 + 2] - want).abs() <= 1e-6 * want);
            }
            // A query holding ∞ against finite rows: ∞ too.
            let sm = similarity_matrix(&c, 3, &q, 2, d, Metric::L2sq).unwrap();
            assert_eq!(&sm[..4], &[f32::INFINITY; 4]);
        });
    }

    /// The batched l2sq meets the bound of the README, |error| ≤ 2^-14·l2sq, over random
    /// offsets, spreads and d (random and structured rows).
    #[test]
    fn batched_l2sq_meets_its_bound() {
        let mut seed = 7u64;
        for &d in &[1usize, 2, 3, 4, 9, 33, 100, 768, 2048] {
            for trial in 0..6 {
                let (qr, cr) = ([1usize, 3, 20][trial % 3], 25);
                let off = [0.0, 1.0, 1e3, 1e5, 30.0, 1e4][trial];
                let spread = [1.0, 0.01, 3.0][trial % 3];
                let o: Vec<f64> = (0..d).map(|_| off * (1.0 + uniform(&mut seed))).collect();
                let mut gen = |n: usize, f: f64| -> Vec<f32> {
                    (0..n * d)
                        .map(|t| {
                            let w = if trial % 2 == 0 {
                                uniform(&mut seed) * 2.0 - 1.0
                            } else {
                                ((t % d) as f64 * f + (t / d) as f64).sin()
                            };
                            (o[t % d] + spread * w) as f32
                        })
                        .collect()
                };
                let q = gen(qr, 1.0);
                let c = gen(cr, 3.0);
                on_detected_isa(|| {
                    let sm = similarity_matrix(&q, qr, &c, cr, d, Metric::L2sq).unwrap();
                    let mut worst = 0f64;
                    for i in 0..qr {
                        let qi = &q[i * d..(i + 1) * d];
                        for j in 0..cr {
                            let cj = &c[j * d..(j + 1) * d];
                            let want = l2sq_f64(qi, cj);
                            let err = (sm[i * cr + j] as f64 - want).abs();
                            worst = worst.max(err / want);
                            assert!(
                                err <= 2f64.powi(-14) * want,
                                "d {d} trial {trial} ({i},{j}): {err} vs {want}"
                            );
                        }
                    }
                    if std::env::var("DENSEVEC_PRINT_BOUND").is_ok() {
                        println!("d {d} trial {trial}: worst relative error {worst:e}");
                    }
                });
            }
        }
    }
}
