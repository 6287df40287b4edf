//! Batched row-wise pairs: one value per row of two `n × d` matrices (`dotRows`, `cosineRows`,
//! `l2sqRows`). Memory-bandwidth bound: each input row is read once, the pair functions of
//! [`crate::similarity`] do the arithmetic, so every value equals the single-pair function on
//! the same two rows, bit for bit.

use crate::bail;
use crate::error::{check_matrix, Result};
use crate::pool;
use crate::similarity;
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
}

impl PairOp {
    fn eval(self, a: &[f32], b: &[f32]) -> Result<f32> {
        match self {
            PairOp::Dot => similarity::dot(a, b),
            PairOp::Cosine => similarity::cosine(a, b),
            PairOp::L2sq => similarity::l2sq(a, b),
        }
    }
}

/// Rows per parallel piece (fixed, so the work split never depends on the thread count; each
/// value is computed independently, so results are identical for every thread count anyway).
const PIECE: usize = 512;

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
    let fill = |(p, chunk): (usize, &mut [f32])| -> Result<()> {
        for (j, o) in chunk.iter_mut().enumerate() {
            let i = p * PIECE + j;
            let r = i * cols..(i + 1) * cols;
            *o = op.eval(&a[r.clone()], &b[r])?;
        }
        Ok(())
    };
    if rows <= PIECE {
        fill((0, &mut out[..]))?;
    } else {
        pool::run(|| out.par_chunks_mut(PIECE).enumerate().try_for_each(fill))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn equals_the_single_pair_functions_on_every_row() {
        for &(rows, cols) in &[(1, 1), (3, 7), (513, 5), (1500, 33)] {
            let a = data(rows * cols, 1);
            let b = data(rows * cols, 2);
            for op in [PairOp::Dot, PairOp::Cosine, PairOp::L2sq] {
                let got = pair_rows("t", op, &a, &b, rows, cols).unwrap();
                for (i, g) in got.iter().enumerate() {
                    let r = i * cols..(i + 1) * cols;
                    let want = op.eval(&a[r.clone()], &b[r]).unwrap();
                    assert_eq!(g.to_bits(), want.to_bits(), "{op:?} row {i}");
                }
            }
        }
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
