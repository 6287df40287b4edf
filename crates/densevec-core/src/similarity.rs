//! Chapter 1: similarity geometry — dot, cosine, L2, normalization, batched similarity.

use crate::bail;
use crate::error::{check_matrix, Result};
use crate::pool;
use crate::quantized::Corpus;
use densevec_kernels as k;
use rayon::prelude::*;

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

/// Σ a_k b_k.
pub fn dot(a: &[f32], b: &[f32]) -> Result<f32> {
    same_len("dot", a, b)?;
    Ok(k::dot(a, b))
}

/// Cosine from the fused (a·b, ‖a‖², ‖b‖²); 0 when either norm is 0.
#[inline]
pub fn cosine_from(ab: f32, aa: f32, bb: f32) -> f32 {
    let den = (aa as f64 * bb as f64).sqrt();
    if den == 0.0 {
        0.0
    } else {
        (ab as f64 / den) as f32
    }
}

/// a·b / (‖a‖‖b‖); 0 when either norm is 0.
pub fn cosine(a: &[f32], b: &[f32]) -> Result<f32> {
    same_len("cosine", a, b)?;
    let (ab, aa, bb) = k::dot_norms(a, b);
    Ok(cosine_from(ab, aa, bb))
}

/// Σ (a_k − b_k)².
pub fn l2sq(a: &[f32], b: &[f32]) -> Result<f32> {
    same_len("l2sq", a, b)?;
    Ok(k::l2sq(a, b))
}

/// ‖a‖₂.
pub fn norm(a: &[f32]) -> f32 {
    (k::sumsq(a) as f64).sqrt() as f32
}

/// Scales `x` to unit length in place; a zero vector stays zero.
pub fn normalize_inplace(x: &mut [f32]) {
    let n = (k::sumsq(x) as f64).sqrt();
    if n > 0.0 && n.is_finite() {
        k::scale(x, (1.0 / n) as f32);
    } else if n.is_infinite() {
        // Rescale first so the norm is representable, then normalize.
        let m = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        if m.is_finite() && m > 0.0 {
            k::scale(x, 1.0 / m);
            let n2 = (k::sumsq(x) as f64).sqrt();
            k::scale(x, (1.0 / n2) as f32);
        } else {
            k::scale(x, f32::NAN);
        }
    } else if n.is_nan() {
        k::scale(x, f32::NAN);
    }
}

/// Rows per parallel piece for row-wise work (fixed, so results do not depend on threads).
const ROW_PIECE: usize = 256;

/// Normalizes every row of a row-major `rows × cols` buffer in place (parallel over rows).
pub fn normalize_rows_inplace(data: &mut [f32], cols: usize) {
    if cols == 0 {
        return;
    }
    if data.len() < ROW_PIECE * cols * 4 {
        data.chunks_mut(cols).for_each(normalize_inplace);
        return;
    }
    pool::run(|| {
        data.par_chunks_mut(ROW_PIECE * cols)
            .for_each(|piece| piece.chunks_mut(cols).for_each(normalize_inplace));
    });
}

/// ‖row_i‖² for every row.
pub fn row_sumsq(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows];
    if rows * cols < ROW_PIECE * 1024 {
        for (o, r) in out.iter_mut().zip(data.chunks(cols)) {
            *o = k::sumsq(r);
        }
        return out;
    }
    pool::run(|| {
        out.par_chunks_mut(ROW_PIECE)
            .zip(data.par_chunks(ROW_PIECE * cols))
            .for_each(|(o, d)| {
                for (oi, r) in o.iter_mut().zip(d.chunks(cols)) {
                    *oi = k::sumsq(r);
                }
            });
    });
    out
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

/// Turns raw dot products of a tile into the metric in place.
/// `qs`/`cs` are per-row auxiliaries: inverse norms (cosine) or squared norms (l2sq).
///
/// # Safety
/// `tile` must be valid for reads and writes of `m` rows of `n` values, `ld` apart.
#[inline]
pub(crate) unsafe fn finish_tile_raw(
    metric: Metric,
    tile: *mut f32,
    ld: usize,
    m: usize,
    n: usize,
    qs: &[f32],
    cs: &[f32],
) {
    for (i, &qi) in qs.iter().enumerate().take(m) {
        let row = std::slice::from_raw_parts_mut(tile.add(i * ld), n);
        match metric {
            Metric::Dot => {}
            Metric::Cosine => {
                for (v, c) in row.iter_mut().zip(cs) {
                    *v *= qi * *c;
                }
            }
            Metric::L2sq => {
                for (v, c) in row.iter_mut().zip(cs) {
                    // Clamp the rounding error of the expansion at 0; NaN stays NaN.
                    let d = qi + *c - 2.0 * *v;
                    *v = if d < 0.0 { 0.0 } else { d };
                }
            }
        }
    }
}

/// Per-row auxiliaries for a metric: inverse norms for cosine, squared norms for l2sq.
pub(crate) fn aux(metric: Metric, data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    match metric {
        Metric::Dot => Vec::new(),
        Metric::Cosine => inv_norms(&row_sumsq(data, rows, cols)),
        Metric::L2sq => row_sumsq(data, rows, cols),
    }
}

/// q.rows × c.rows matrix of the metric between rows of `q` and rows of `c`.
///
/// Cosine is the dot product scaled by inverse row norms; l2sq uses ‖q‖² + ‖c‖² − 2 q·c
/// (clamped at 0), so its absolute error is about ε·(‖q‖² + ‖c‖²).
pub fn similarity_matrix(
    q: &[f32],
    q_rows: usize,
    c: &[f32],
    c_rows: usize,
    cols: usize,
    metric: Metric,
) -> Result<Vec<f32>> {
    const F: &str = "similarityMatrix";
    check_matrix(F, "q", q, q_rows, cols)?;
    check_matrix(F, "c", c, c_rows, cols)?;
    similarity_corpus(q, q_rows, &Corpus::F32(c), c_rows, cols, metric)
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
    const F: &str = "similarityMatrix";
    check_matrix(F, "q", q, q_rows, cols)?;
    check_matrix(F, "c", c, c_rows, cols)?;
    check_out(F, out, q_rows, c_rows)?;
    similarity_corpus_into(q, q_rows, &Corpus::F32(c), c_rows, cols, metric, out);
    Ok(())
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

/// The similarity matrix of checked inputs against a corpus in any storage type (allocated
/// fallibly; see [`similarity_corpus_into`]).
pub(crate) fn similarity_corpus(
    q: &[f32],
    q_rows: usize,
    c: &Corpus,
    c_rows: usize,
    cols: usize,
    metric: Metric,
) -> Result<Vec<f32>> {
    let mut out = crate::alloc::try_mat(SIM_F, SIM_WHAT, q_rows, c_rows, SIM_HINT)?;
    similarity_corpus_into(q, q_rows, c, c_rows, cols, metric, &mut out);
    Ok(out)
}

/// The similarity matrix of checked inputs against a corpus in any storage type, written into
/// `out` (q.rows × c.rows) tile by tile (each tile takes its corpus rows as float32: a slice of a
/// float32 corpus, or decoded into the task's buffer).
pub(crate) fn similarity_corpus_into(
    q: &[f32],
    q_rows: usize,
    c: &Corpus,
    c_rows: usize,
    cols: usize,
    metric: Metric,
    out: &mut [f32],
) {
    let qa = aux(metric, q, q_rows, cols);
    let ca = c.aux(metric, c_rows, cols);
    let (m, n) = (q_rows, c_rows);
    let tiles: Vec<(usize, usize)> = (0..m)
        .step_by(TILE_M)
        .flat_map(|i| (0..n).step_by(TILE_N).map(move |j| (i, j)))
        .collect();
    let ptr = SendPtr(out.as_mut_ptr());
    let work = |buf: &mut Vec<f32>, &(i0, j0): &(usize, usize)| {
        let mb = TILE_M.min(m - i0);
        let nb = TILE_N.min(n - j0);
        let cb = c.rows(j0, nb, cols, buf);
        // SAFETY: tiles are disjoint rectangles of `out` (rows i0..i0+mb, columns j0..j0+nb)
        // and this task is their only reader and writer; q and cb hold these rows.
        unsafe {
            let t = ptr.get().add(i0 * n + j0);
            k::gemm_nt_raw(
                mb,
                nb,
                cols,
                q.as_ptr().add(i0 * cols),
                cols,
                cb.as_ptr(),
                cols,
                t,
                n,
            );
            if metric != Metric::Dot {
                finish_tile_raw(metric, t, n, mb, nb, &qa[i0..i0 + mb], &ca[j0..j0 + nb]);
            }
        }
    };
    if tiles.len() == 1 {
        work(&mut Vec::new(), &tiles[0]);
    } else {
        pool::run(|| tiles.par_iter().for_each_init(Vec::new, work));
    }
}

const SIM_F: &str = "similarityMatrix";
const SIM_WHAT: &str = "the q.rows × c.rows similarity matrix";
const SIM_HINT: &str = "use topK for nearest neighbours, or split the batch";
