//! The held-logits path of InfoNCE and NT-Xent, for batches whose B × K float32 logit matrix
//! fits the scratch budget: three GEMMs where the tiled path does four (NT-Xent: half a GEMM
//! forward and one backward, by symmetry).
//!
//! InfoNCE, parallel over fixed blocks of queries: S_blk = Q_blk·Kᵀ, then each row becomes
//! P'_i = (p_i − y_i)·τ⁻¹/B in place in one pass (the loss, ∂loss/∂τ and the diagnostics come
//! out of the same pass), then gradQ_blk = P'_blk·K while the block is warm. Then
//! gradKeys = P'ᵀ·Q ([`mm_tn_into`]). The logits are written once and read twice from memory.
//!
//! NT-Xent: z = [â; b̂] (2N × d) and S = z·zᵀ is symmetric: only the blocks on and above the
//! diagonal are computed and the rest mirrored (bit-identical: a dot product's chain of fused
//! multiply-adds is the same either way round). After the row pass, ∂loss/∂z = (P' + P'ᵀ)·z:
//! one GEMM after an in-place symmetrization.

use super::{Fused, FusedOut, Grad, Outs, QuerySums, RowExtra};
use crate::alloc;
use crate::error::Result;
use crate::lossgemm::{mm_tn_into, task_rows, SyncPtr};
use crate::pool;
use crate::precision::{Gemm, GemmRef};
use densevec_kernels as k;
use rayon::prelude::*;

/// Rows per block of NT-Xent's triangle and passes.
const RB: usize = 256;
/// Side of the tiles of the mirror and symmetrization passes.
const TS: usize = 64;
const SPLIT: &str = "split the batch, or lower scratchBytes to take the tiled path";

pub(crate) use crate::lossgemm::fits;

/// Turns row `i` of the logits (the raw similarities q_i·k_j on entry) into
/// P'_i = (p_i − y_i)·c in place; returns the row's loss and extras. `e` is scratch of the
/// row's length.
pub(super) fn softmax_row(
    p: &Fused,
    i: usize,
    row: &mut [f32],
    e: &mut [f32],
    c: f32,
) -> (f64, RowExtra) {
    k::scale(row, p.inv_tau);
    if let Some(lq) = p.log_q {
        k::axpy(row, -1.0, lq);
    }
    let pos = p.positives[i] as usize;
    let zp = row[pos];
    // The negatives alone: the positive and the masked keys set to −∞.
    row[pos] = f32::NEG_INFINITY;
    if p.exclude_self {
        row[i] = f32::NEG_INFINITY;
    }
    if p.key_ids.is_some() {
        for (j, v) in row.iter_mut().enumerate() {
            if p.masked(i, j) {
                *v = f32::NEG_INFINITY;
            }
        }
    }
    let mneg = k::max(row);
    if mneg == f32::NEG_INFINITY {
        // No negatives: p(pos) = 1, loss 0, gradient 0.
        row.fill(0.0);
        return (0.0, [0.0, 0.0, 1.0, 0.0, 0.0]);
    }
    e.copy_from_slice(row);
    // Shifted by the largest negative (not the positive), so that the negatives' sums keep
    // their precision next to a dominant positive.
    let mut s = k::exp_shift_sum(e, mneg);
    // Excluded entries: e = 0 exactly and z = 0, so that e·z stays finite.
    let mut drop = |j: usize, row: &mut [f32], e: &mut [f32]| {
        s -= e[j] as f64;
        e[j] = 0.0;
        row[j] = 0.0;
    };
    drop(pos, row, e);
    if p.exclude_self {
        drop(i, row, e);
    }
    if p.key_ids.is_some() {
        for j in 0..row.len() {
            if p.masked(i, j) {
                drop(j, row, e);
            }
        }
    }
    // Σ e·(z − mneg): the logits relative to the shift (the excluded entries, z = 0 and
    // e = 0, add nothing), so that large logits leave the entropy its digits.
    for v in row.iter_mut() {
        *v -= mneg;
    }
    let ezs = k::dot(e, row) as f64;
    let elqn = p.log_q.map_or(0.0, |lq| k::dot(e, lq) as f64);
    let zp64 = zp as f64;
    let sums = QuerySums {
        zp: zp64,
        up: zp64 + p.log_q.map_or(0.0, |lq| lq[pos] as f64),
        mneg: mneg as f64,
        ln: s,
        ezs,
        elqn,
    };
    let (lse, pneg) = sums.lse_pneg();
    k::scale(e, ((mneg as f64 - lse).exp() * c as f64) as f32);
    row.copy_from_slice(e);
    // p_pos − 1 = −p(negatives), without the cancellation.
    row[pos] = (-pneg * c as f64) as f32;
    let ex = sums.extras(p.inv_tau as f64);
    (lse - zp64, ex)
}

/// Loss, gradients and extras from the per-row values.
fn out<'o>(lossv: &[f64], exv: &[RowExtra], gq: Grad<'o>, gk: Grad<'o>) -> FusedOut<'o> {
    let loss = lossv.iter().sum::<f64>() / lossv.len().max(1) as f64;
    let (grad_tau, stats) = super::mean_extras(exv);
    FusedOut {
        loss,
        gq,
        gk,
        grad_tau,
        stats,
        finished: false,
    }
}

/// InfoNCE with the B × K logits held (see the module docs).
pub(super) fn info_nce<'o>(func: &str, p: &Fused, outs: &mut Outs<'o>) -> Result<FusedOut<'o>> {
    let (b, n, d) = (p.b, p.n, p.d);
    let mut s: Vec<f32> = alloc::try_mat(func, "the B × K logits", b, n, SPLIT)?;
    let mut gq = Grad::get(&mut outs.0, (func, "gradQ", SPLIT), b, d)?;
    let mut lossv = vec![0f64; b];
    let mut exv = vec![[0f64; 5]; b];
    let c = (p.inv_tau as f64 / b as f64) as f32;
    // Queries per task of the forward pass.
    let rb = task_rows(b, n, pool::threads());
    pool::run(|| {
        s.par_chunks_mut(rb * n)
            .zip(gq.par_chunks_mut(rb * d))
            .zip(lossv.par_chunks_mut(rb))
            .zip(exv.par_chunks_mut(rb))
            .enumerate()
            .for_each(|(blk, (((sb, gb), lv), ex))| {
                let i0 = blk * rb;
                let mb = lv.len();
                p.prec
                    .gemm_nt(mb, n, d, (&p.q[i0 * d..], d), (p.keys, d), (sb, n));
                let mut e = vec![0f32; n];
                for r in 0..mb {
                    let (l, x) = softmax_row(p, i0 + r, &mut sb[r * n..(r + 1) * n], &mut e, c);
                    lv[r] = l;
                    ex[r] = x;
                }
                p.prec
                    .gemm(GemmRef::nn(mb, d, n, (sb, n), (p.keys, d), (gb, d)));
            })
    });
    let mut gk = Grad::get(&mut outs.1, (func, "gradKeys", "split the batch"), n, d)?;
    mm_tn_into(p.prec, &s, b, n, p.q, d, &mut gk);
    Ok(out(&lossv, &exv, gq, gk))
}

/// NT-Xent with the 2N × 2N logits held (see the module docs); the gradient with respect to
/// z comes back in `gq` (`gk` empty).
pub(super) fn nt_xent(func: &str, p: &Fused) -> Result<FusedOut<'static>> {
    let (r, d) = (p.b, p.d);
    let z = p.q;
    let mut s: Vec<f32> = alloc::try_mat(func, "the 2N × 2N logits", r, r, SPLIT)?;
    let blocks = r.div_ceil(RB);
    let sp = SyncPtr(s.as_mut_ptr());
    // The blocks on and above the diagonal: block row I, columns I·RB.. (one GEMM each).
    pool::run(|| {
        (0..blocks).into_par_iter().for_each(|bi| {
            let i0 = bi * RB;
            let mb = RB.min(r - i0);
            let sp = sp.get();
            // SAFETY: task bi writes rows i0..i0+mb, columns i0..r of s only.
            unsafe {
                p.prec.gemm_raw(&Gemm::nt(
                    mb,
                    r - i0,
                    d,
                    (z[i0 * d..].as_ptr(), d),
                    (z[i0 * d..].as_ptr(), d),
                    (sp.add(i0 * r + i0), r),
                ))
            };
        })
    });
    // The mirror: task J fills rows of block J, columns 0..J·RB, from the columns of block J
    // in the rows above (computed above and not written here), a TS × TS tile at a time
    // through a local buffer, so that memory is only read and written along rows.
    pool::run(|| {
        (1..blocks).into_par_iter().for_each(|bj| {
            let sp = sp.get();
            let j0 = bj * RB;
            let jb = RB.min(r - j0);
            let mut t = [0f32; TS * TS];
            for c0 in (0..j0).step_by(TS) {
                let cn = TS.min(j0 - c0);
                for r0 in (j0..j0 + jb).step_by(TS) {
                    let rn = TS.min(j0 + jb - r0);
                    // SAFETY: reads (c0.., r0..), above the diagonal; writes (r0.., c0..) with
                    // r0 ≥ j0 > c0 (below the diagonal, this task's rows).
                    unsafe {
                        load_transposed(&mut t, sp.add(c0 * r + r0), r, (cn, rn));
                        for a in 0..rn {
                            let dst = std::slice::from_raw_parts_mut(sp.add((r0 + a) * r + c0), cn);
                            dst.copy_from_slice(&t[a * TS..a * TS + cn]);
                        }
                    }
                }
            }
        })
    });
    let mut lossv = vec![0f64; r];
    let mut exv = vec![[0f64; 5]; r];
    let c = (p.inv_tau as f64 / r as f64) as f32;
    pool::run(|| {
        s.par_chunks_mut(RB * r)
            .zip(lossv.par_chunks_mut(RB))
            .zip(exv.par_chunks_mut(RB))
            .enumerate()
            .for_each(|(blk, ((sb, lv), ex))| {
                let mut e = vec![0f32; r];
                for a in 0..lv.len() {
                    let (l, x) =
                        softmax_row(p, blk * RB + a, &mut sb[a * r..(a + 1) * r], &mut e, c);
                    lv[a] = l;
                    ex[a] = x;
                }
            })
    });
    // M = P' + P'ᵀ in place, tile pairs (I, J ≥ I) owned by the task of I's tile row. The
    // tile (J, I) goes through a local buffer, transposed, so that memory is only read and
    // written along rows (walking it by columns cost 9 ns a pair at 2N = 8192).
    let sp = SyncPtr(s.as_mut_ptr());
    let tiles = r.div_ceil(TS);
    pool::run(|| {
        (0..tiles).into_par_iter().for_each(|ti| {
            let sp = sp.get();
            let i0 = ti * TS;
            let ib = TS.min(r - i0);
            let mut t = [0f32; TS * TS];
            for tj in ti..tiles {
                let j0 = tj * TS;
                let jb = TS.min(r - j0);
                // SAFETY: tile pair {(ti, tj), (tj, ti)} with ti ≤ tj belongs to task ti alone.
                unsafe {
                    if ti == tj {
                        for a in 0..ib {
                            for bb in a..jb {
                                let x = sp.add((i0 + a) * r + j0 + bb);
                                let y = sp.add((j0 + bb) * r + i0 + a);
                                let v = *x + *y;
                                *x = v;
                                *y = v;
                            }
                        }
                        continue;
                    }
                    // t[a][bb] = (tj, ti) tile's (bb, a) element.
                    load_transposed(&mut t, sp.add(j0 * r + i0), r, (jb, ib));
                    for a in 0..ib {
                        let x = std::slice::from_raw_parts_mut(sp.add((i0 + a) * r + j0), jb);
                        let ta = &mut t[a * TS..a * TS + jb];
                        for (xv, tv) in x.iter_mut().zip(ta.iter_mut()) {
                            let v = *xv + *tv;
                            *xv = v;
                            *tv = v;
                        }
                    }
                    for bb in 0..jb {
                        let dst = std::slice::from_raw_parts_mut(sp.add((j0 + bb) * r + i0), ib);
                        for (a, d) in dst.iter_mut().enumerate() {
                            *d = t[a * TS + bb];
                        }
                    }
                }
            }
        })
    });
    let mut g: Vec<f32> = alloc::try_mat(func, "the gradient of the views", r, d, SPLIT)?;
    pool::run(|| {
        g.par_chunks_mut(RB * d).enumerate().for_each(|(blk, gb)| {
            let i0 = blk * RB;
            let mb = gb.len() / d;
            p.prec
                .gemm(GemmRef::nn(mb, d, r, (&s[i0 * r..], r), (z, d), (gb, d)));
        })
    });
    Ok(out(&lossv, &exv, Grad::Own(g), Grad::Own(Vec::new())))
}

/// `t[a·TS + b] = src[b·ld + a]` for b < rows, a < cols: a tile of `rows` rows of `cols`
/// values, read along its rows and stored transposed in the local buffer.
///
/// # Safety
/// `src` valid for reads of `rows` rows of `cols` values, `ld` apart; rows, cols ≤ TS.
unsafe fn load_transposed(
    t: &mut [f32; TS * TS],
    src: *const f32,
    ld: usize,
    (rows, cols): (usize, usize),
) {
    for b in 0..rows {
        let row = std::slice::from_raw_parts(src.add(b * ld), cols);
        for (a, &v) in row.iter().enumerate() {
            t[a * TS + b] = v;
        }
    }
}
