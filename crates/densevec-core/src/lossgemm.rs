//! The GEMM call sites of the fused losses (InfoNCE, NT-Xent, marginSoftmax) and the small
//! dense helpers around them (the block sizes, the parallel Aᵀ·B product).
//!
//! Every product of those losses goes through the call's [`Precision`] (its `gemm`,
//! `gemm_raw` and `gemm_nt`) or [`mm_tn_into`]. The kernels form each
//! element of C as one sequential chain over k whatever the tiling, so splitting the output
//! across tasks never changes a bit: results are identical for every thread count.

use crate::pool;
use crate::precision::GemmRef;
use crate::precision::Precision;
use rayon::prelude::*;

/// Whether a `rows × cols` float32 matrix fits `budget` bytes.
pub(crate) fn fits(rows: usize, cols: usize, budget: usize) -> bool {
    rows.checked_mul(cols)
        .and_then(|x| x.checked_mul(4))
        .is_some_and(|x| x > 0 && x <= budget)
}

/// Rows per task of a loss's row-block GEMMs, for `len` rows that each take `width` floats of
/// scratch in a block (a block of logits or of their gradient): as few blocks as blocks of at
/// most 1,024 rows and 32 MiB allow, at least two per thread and a multiple of the thread
/// count (so no thread waits on a last, lone block), of equal size rounded up to 16 rows, and
/// never under 256 rows. Each task packs the operand all tasks share (the keys, the
/// prototypes, the rows) for its GEMMs, so fewer, larger blocks pack it
/// fewer times. The size never changes a value: each element of a product is one chain of
/// multiply-adds over k, and the softmax is row by row.
pub(crate) fn task_rows(len: usize, width: usize, threads: usize) -> usize {
    let t = threads.max(1);
    let most = ((32 << 20) / (4 * width.max(1))).clamp(256, 1024);
    let blocks = len.div_ceil(most).max(2 * t).div_ceil(t) * t;
    (len.div_ceil(blocks).div_ceil(16) * 16).clamp(256, most)
}

/// Aᵀ·B for row-major A (rows × n) and B (rows × d) into `out` (n × d, overwritten), one GEMM
/// per block of n ([`task_rows`] rows of the result) that reads A in its own layout as a
/// transposed operand (`GemmRef::tn`), so nothing is transposed or copied. Each element is the
/// chain of fused multiply-adds over the rows in order, whatever the blocks.
pub(crate) fn mm_tn_into(
    prec: Precision,
    a: &[f32],
    rows: usize,
    n: usize,
    b: &[f32],
    d: usize,
    out: &mut [f32],
) {
    if rows == 0 || n == 0 || d == 0 {
        out.fill(0.0);
        return;
    }
    let cb = task_rows(n, d, pool::threads());
    pool::run(|| {
        out.par_chunks_mut(cb * d)
            .enumerate()
            .for_each(|(blk, ob)| {
                let j0 = blk * cb;
                let nb = ob.len() / d;
                prec.gemm(GemmRef::tn(nb, d, rows, (&a[j0..], n), (b, d), (ob, d)));
            })
    });
}

/// A raw pointer shared by tasks that touch disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr(pub *mut f32);

impl SyncPtr {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    #[inline]
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: users only access disjoint ranges from different tasks (documented at each use).
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

#[cfg(test)]
mod tests {
    use super::task_rows;

    #[test]
    fn task_rows_balance_the_threads() {
        // marginSoftmax 4096 × 10,000: 32 MiB blocks of the gradient hold 838 rows.
        assert_eq!(task_rows(4096, 10_000, 1), 832);
        assert_eq!(4096usize.div_ceil(task_rows(4096, 10_000, 2)), 6);
        // infoNCE 4096 × 4096: four blocks of 1,024 on one or two threads.
        assert_eq!(task_rows(4096, 4096, 1), 1024);
        assert_eq!(task_rows(4096, 4096, 2), 1024);
        assert_eq!(4096usize.div_ceil(task_rows(4096, 4096, 3)), 6);
        // Small batches and huge widths stay at 256 rows.
        assert_eq!(task_rows(300, 700, 1), 256);
        assert_eq!(task_rows(4096, 1 << 20, 2), 256);
    }
}
