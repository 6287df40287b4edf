//! Batched row-wise pairs: one value per row of two `n × d` matrices (`dotRows`, `cosineRows`,
//! `l2sqRows`, `l1Rows`). Memory-bandwidth bound: each input row is read once. The shapes are
//! checked and the kernel table taken once per call; each parallel piece of rows runs one row
//! kernel of the table (the per-row SIMD kernel inlined into its row loop), then finishes every
//! row as the single-pair function of [`crate::similarity`] does (`dot_finish`,
//! `cosine_finish`, `l2sq_finish`), so every value equals the single-pair function on the same
//! two rows, bit for bit.

use crate::bail;
use crate::error::{check_matrix, Result};
use crate::pool;
use crate::similarity;
use densevec_kernels as k;
use rayon::prelude::*;

/// Which row-wise value to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairOp {
    /// Σ a_k b_k.
    Dot,
    /// a·b / (‖a‖‖b‖), 0 when either norm is 0.
    Cosine,
    /// Σ (a_k − b_k)².
    L2sq,
    /// Σ |a_k − b_k| (the L1, Manhattan, distance), summed in float64.
    L1,
}

impl PairOp {
    /// The values of the `out.len()` rows of `a` and `b` (`cols` values per row, shapes
    /// checked by the caller): one row kernel of `kt` over all of them, then each row finished.
    fn rows(self, kt: &k::Kernels, a: &[f32], b: &[f32], cols: usize, out: &mut [f32]) {
        match self {
            PairOp::Dot => {
                kt.dot_rows(a, b, cols, out);
                finish_rows(a, b, cols, out, similarity::dot_finish);
            }
            PairOp::L2sq => {
                kt.l2sq_rows(a, b, cols, out);
                finish_rows(a, b, cols, out, similarity::l2sq_finish);
            }
            PairOp::Cosine => {
                for (j, out) in out.chunks_mut(COS_BLOCK).enumerate() {
                    let r = j * COS_BLOCK * cols..(j * COS_BLOCK + out.len()) * cols;
                    let (a, b) = (&a[r.clone()], &b[r]);
                    let mut sums = [(0f32, 0f32, 0f32); COS_BLOCK];
                    let sums = &mut sums[..out.len()];
                    kt.dot_norms_rows(a, b, cols, sums);
                    for (i, (o, s)) in out.iter_mut().zip(sums.iter()).enumerate() {
                        let r = i * cols..(i + 1) * cols;
                        *o = similarity::cosine_finish(&a[r.clone()], &b[r], *s) as f32;
                    }
                }
            }
            PairOp::L1 => {
                for (i, o) in out.iter_mut().enumerate() {
                    let r = i * cols..(i + 1) * cols;
                    *o = l1(&a[r.clone()], &b[r]);
                }
            }
        }
    }
}

/// out_i ← finish(a_i, b_i, out_i) for every row: the single-pair function's range check
/// (and float64 redo) on a row kernel's float32 sums.
fn finish_rows(
    a: &[f32],
    b: &[f32],
    cols: usize,
    out: &mut [f32],
    finish: fn(&[f32], &[f32], f32) -> f64,
) {
    for (i, o) in out.iter_mut().enumerate() {
        let r = i * cols..(i + 1) * cols;
        *o = finish(&a[r.clone()], &b[r], *o) as f32;
    }
}

/// Σ |a_k − b_k| of two equal-length rows, summed in float64 (exact to float32 rounding for
/// any row length a typed array holds) and rounded once.
fn l1(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .sum::<f64>() as f32
}

/// Rows per parallel piece (fixed, so the work split never depends on the thread count; each
/// value is computed independently, so results are identical for every thread count anyway).
const PIECE: usize = 512;

/// Rows per call of the cosine row kernel: its sums stay in L1 until the rows are finished.
const COS_BLOCK: usize = 16;

/// The `rows` values `op(a_i, b_i)` of two row-major `rows × cols` matrices.
pub fn pair_rows(
    func: &str,
    op: PairOp,
    a: &[f32],
    b: &[f32],
    rows: usize,
    cols: usize,
) -> Result<Vec<f32>> {
    check_matrix(func, "a", a, rows, cols)?;
    check_matrix(func, "b", b, rows, cols)?;
    let mut out = Vec::new();
    if out.try_reserve_exact(rows).is_err() {
        bail!(
            Arg,
            "{func}: cannot allocate {} bytes for the result",
            rows as u128 * 4
        );
    }
    out.resize(rows, 0f32);
    let kt = k::kernels();
    let fill = |(p, chunk): (usize, &mut [f32])| {
        let r = p * PIECE * cols..(p * PIECE + chunk.len()) * cols;
        op.rows(&kt, &a[r.clone()], &b[r], cols, chunk);
    };
    if rows <= PIECE {
        fill((0, &mut out[..]));
    } else {
        pool::run(|| out.par_chunks_mut(PIECE).enumerate().for_each(fill));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The single-pair function of `op` on one pair of rows.
    fn eval(op: PairOp, a: &[f32], b: &[f32]) -> Result<f32> {
        match op {
            PairOp::Dot => similarity::dot(a, b),
            PairOp::Cosine => similarity::cosine(a, b),
            PairOp::L2sq => similarity::l2sq(a, b),
            PairOp::L1 => Ok(l1(a, b)),
        }
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// Asserts that every row-wise value equals the single-pair function on the same rows.
    fn assert_equals_single_pairs(a: &[f32], b: &[f32], rows: usize, cols: usize) {
        for op in [PairOp::Dot, PairOp::Cosine, PairOp::L2sq, PairOp::L1] {
            let got = pair_rows("t", op, a, b, rows, cols).unwrap();
            for (i, g) in got.iter().enumerate() {
                let r = i * cols..(i + 1) * cols;
                let want = eval(op, &a[r.clone()], &b[r]).unwrap();
                assert_eq!(g.to_bits(), want.to_bits(), "{op:?} {rows}x{cols} row {i}");
            }
        }
    }

    #[test]
    fn equals_the_single_pair_functions_on_every_row() {
        for &(rows, cols) in &[(1, 1), (3, 7), (513, 5), (1500, 33)] {
            assert_equals_single_pairs(&data(rows * cols, 1), &data(rows * cols, 2), rows, cols);
        }
    }

    #[test]
    fn equals_the_single_pair_functions_out_of_the_float32_range() {
        // Special rows in a every third row, in b every other row: every pairing occurs.
        let (rows, cols) = (1100, 19);
        let (a, b) = (
            special_rows(rows, cols, 3, 3),
            special_rows(rows, cols, 4, 2),
        );
        assert_equals_single_pairs(&a, &b, rows, cols);
    }

    /// Ordinary rows and, every `every` rows, one at a magnitude where the float32 sums
    /// over- or underflow, a zero row, or a row holding ±∞ or NaN (in turn).
    fn special_rows(rows: usize, cols: usize, seed: u32, every: usize) -> Vec<f32> {
        let mut a = data(rows * cols, seed);
        let specials = [1e-30f32, 1e-42, 1e25, 0.0, f32::INFINITY, f32::NAN, 3e37];
        for (i, r) in a.chunks_mut(cols).enumerate() {
            if i % every == 0 {
                let s = specials[i / every % specials.len()];
                r.iter_mut().for_each(|v| *v *= s);
            }
        }
        a
    }

    #[test]
    fn normalize_rows_equals_normalize_on_every_row() {
        // Sequential and parallel sizes; the last shape ends in a partial row.
        for &(rows, cols, extra) in &[(1, 1, 0), (40, 7, 0), (1100, 19, 0), (37, 5, 3)] {
            let a = special_rows(rows, cols, 5, 3);
            let mut a = [a, data(extra, 6)].concat();
            let mut want = a.clone();
            want.chunks_mut(cols)
                .for_each(similarity::normalize_inplace);
            similarity::normalize_rows_inplace(&mut a, cols);
            for (i, (g, w)) in a.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{rows}x{cols} value {i}");
            }
        }
    }

    #[test]
    fn row_sumsq_equals_sumsq_robust_on_every_row() {
        for &(rows, cols) in &[(1, 1), (40, 7), (14_000, 19)] {
            let a = special_rows(rows, cols, 7, 3);
            let got = similarity::row_sumsq(&a, rows, cols);
            for (i, (g, r)) in got.iter().zip(a.chunks(cols)).enumerate() {
                let want = similarity::sumsq_robust(r) as f32;
                assert_eq!(g.to_bits(), want.to_bits(), "{rows}x{cols} row {i}");
            }
        }
    }

    #[test]
    fn l1_is_the_sum_of_absolute_differences() {
        let (a, b) = (
            [1.0f32, -2.0, 3.0, 0.5, 0.0, -1.0],
            [0.0f32, 2.0, 3.0, -0.5, 0.0, 1.0],
        );
        let got = pair_rows("l1Rows", PairOp::L1, &a, &b, 2, 3).unwrap();
        assert_eq!(got, vec![5.0, 3.0]);
    }

    #[test]
    fn rejects_bad_shapes() {
        let a = data(6, 1);
        let e = pair_rows("dotRows", PairOp::Dot, &a, &a, 4, 2).unwrap_err();
        assert_eq!(e.code.as_str(), "E_SHAPE");
        let e = pair_rows("dotRows", PairOp::Dot, &a, &a[..4], 3, 2).unwrap_err();
        assert_eq!(e.code.as_str(), "E_SHAPE");
        let e = pair_rows("dotRows", PairOp::Dot, &[], &[], 0, 2).unwrap_err();
        assert_eq!(e.code.as_str(), "E_SHAPE");
    }
}
