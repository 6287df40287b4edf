//! Chapter 3: contrastive learning — softmax over similarities, InfoNCE, NT-Xent, mismatch score.
//!
//! InfoNCE and NT-Xent are fused and memory-lean: the B × K logit matrix is never held. Work is
//! tiled over keys with an online log-sum-exp (as in flash attention):
//!
//! * pass A, parallel over fixed blocks of queries: for each key tile, logits = Q_blk·K_tileᵀ/τ
//!   (`gemm_nt`), the running row max and sum of exponentials are updated (the accumulator is
//!   rescaled when the max grows) and O_blk += exp(S − m)·K_tile (`gemm_nn`). At the end
//!   gradQ_i = (O_i / l_i − k_pos(i)) / (Bτ) and lse_i = m_i + ln l_i. The same pass keeps
//!   the negatives' sums (Σ e, Σ e·z, Σ e·logQ with their own running max as shift) from which
//!   ∂loss/∂τ and the softmax diagnostics follow per query.
//! * pass B, parallel over fixed blocks of keys: each query tile's logits are recomputed,
//!   P = exp(S − m_i)/l_i with the final statistics, the positive entries get −1, and
//!   gradK_blk += (P − 1_pos)ᵀ·Q_tile (the tile read as a transposed GEMM operand).
//!
//! Every output row is written by exactly one task, in a fixed order, so results are
//! bit-identical for any thread count. Extra memory: O(B + K) statistics, the normalized copies
//! when normalizing, and one tile per running task.

use crate::alloc;
use crate::bail;
use crate::error::{check_finite, check_matrix, check_rows, js_num, Result};
use crate::pool;
use crate::precision::GemmRef;
use crate::precision::{self, Precision};
use crate::view::Operand;
use densevec_kernels as k;
use rayon::prelude::*;
use std::borrow::Cow;

mod held;

/// Queries per task in pass A.
const BQ: usize = 128;
/// Keys per tile in pass A.
const BK: usize = 256;
/// Keys per task in pass B.
const BK2: usize = 128;
/// Queries per tile in pass B.
const BQ2: usize = 256;
/// Rows per piece for row-wise work (normalization, backprop through it).
const ROWS: usize = 256;

/// Diagnostics of the softmax over keys, each averaged over queries (anchors for NT-Xent).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NceStats {
    /// Entropy of p(·|q) in nats.
    pub mean_entropy: f64,
    /// p(positive | q).
    pub mean_positive_probability: f64,
    /// The largest probability of a negative (0 for a query without negatives).
    pub mean_max_negative_probability: f64,
    /// exp of the entropy of the negatives' renormalized probabilities (0 without negatives).
    pub effective_negatives: f64,
}

/// Result of [`info_nce`].
#[derive(Clone, Debug)]
pub struct InfoNce {
    pub loss: f64,
    pub grad_q: Vec<f32>,
    pub grad_keys: Vec<f32>,
    /// ∂loss/∂τ.
    pub grad_temperature: f64,
    pub stats: NceStats,
}

/// Result of [`nt_xent`].
#[derive(Clone, Debug)]
pub struct NtXent {
    pub loss: f64,
    pub grad_a: Vec<f32>,
    pub grad_b: Vec<f32>,
    /// ∂loss/∂τ.
    pub grad_temperature: f64,
    pub stats: NceStats,
}

/// Result of [`mismatch_score`].
#[derive(Clone, Copy, Debug)]
pub struct Mismatch {
    pub mu_p: f64,
    pub mu_q: f64,
    pub m: f64,
}

/// Default scratch budget of the fused losses (256 MiB): a call whose logit matrix fits keeps
/// it (three GEMMs); a larger one takes the tiled O((B + K)·d) path.
pub const DEFAULT_SCRATCH_BYTES: usize = 256 << 20;

/// Options of [`info_nce`].
#[derive(Clone, Copy, Debug)]
pub struct InfoNceOpts<'a> {
    pub temperature: f64,
    /// Index of each query's positive; `None` means query i ↔ key i.
    pub positives: Option<&'a [u32]>,
    /// Per-key log sampling probability subtracted from the logits.
    pub log_q: Option<&'a [f32]>,
    pub normalize: bool,
}

/// Checks τ > 0 and finite.
pub fn check_temperature(func: &str, t: f64) -> Result<()> {
    if !t.is_finite() || t <= 0.0 {
        bail!(
            Arg,
            "{func}: temperature must be > 0 and finite, got {}",
            js_num(t)
        );
    }
    Ok(())
}

/// ‖x‖ in float64, robust to float32 underflow and overflow of the sum of squares.
pub(crate) fn row_norm(x: &[f32]) -> f64 {
    let s = k::sumsq(x);
    if s.is_finite() && s > 1e-30 {
        (s as f64).sqrt()
    } else {
        x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt()
    }
}

/// Unit rows of `x` (rows × d) and the original norms; E_ARG on the first zero row.
pub fn normalized_rows(
    func: &str,
    name: &str,
    x: &[f32],
    rows: usize,
    d: usize,
) -> Result<(Vec<f32>, Vec<f64>)> {
    let mut out = alloc::try_copy(func, name, x)?;
    let mut norms = vec![0f64; rows];
    let work = |(o, n): (&mut [f32], &mut [f64])| {
        for (r, nn) in o.chunks_mut(d).zip(n.iter_mut()) {
            let v = row_norm(r);
            *nn = v;
            if v > 0.0 && v.is_finite() {
                let inv = 1.0 / v;
                if v >= 1e-30 {
                    k::scale(r, inv as f32);
                } else {
                    for e in r.iter_mut() {
                        *e = (*e as f64 * inv) as f32;
                    }
                }
            }
        }
    };
    if rows * d < ROWS * 512 {
        work((&mut out[..], &mut norms[..]));
    } else {
        pool::run(|| {
            out.par_chunks_mut(ROWS * d)
                .zip(norms.par_chunks_mut(ROWS))
                .for_each(work)
        });
    }
    if let Some(i) = norms.iter().position(|&v| v == 0.0) {
        return Err(zero_norm(func, name, i));
    }
    Ok((out, norms))
}

/// The error of a row that cannot be normalized.
fn zero_norm(func: &str, name: &str, i: usize) -> crate::Error {
    crate::Error::new(
        crate::Code::Arg,
        format!("{func}: {name} row {i} has zero norm and cannot be normalized"),
    )
}

/// Index of the first of the `rows` rows of `x` (rows × d) that [`normalized_rows`] refuses
/// (all values zero), found without normalizing: a parallel read of `x`.
pub fn first_zero_row(x: &[f32], rows: usize, d: usize) -> Option<usize> {
    if d == 0 {
        return (rows > 0).then_some(0);
    }
    let zero = |r: &[f32]| r.iter().all(|&v| v == 0.0);
    if rows * d < ROWS * 512 {
        return x.chunks(d).position(zero);
    }
    pool::run(|| x.par_chunks(d).position_first(zero))
}

/// Backprop through x̂ = x/‖x‖ in place: g ← (g − x̂(x̂·g))/‖x‖.
pub fn back_norm(g: &mut [f32], xh: &[f32], norms: &[f64], d: usize) {
    let work = |(gc, (xc, nc)): (&mut [f32], (&[f32], &[f64]))| {
        for ((gr, xr), &n) in gc.chunks_mut(d).zip(xc.chunks(d)).zip(nc) {
            let s = k::dot(xr, gr);
            k::axpy(gr, -s, xr);
            k::scale(gr, (1.0 / n) as f32);
        }
    };
    let rows = norms.len();
    if rows * d < ROWS * 512 {
        work((g, (xh, norms)));
    } else {
        pool::run(|| {
            g.par_chunks_mut(ROWS * d)
                .zip(xh.par_chunks(ROWS * d).zip(norms.par_chunks(ROWS)))
                .for_each(work)
        });
    }
}

/// The fused InfoNCE problem on prepared (possibly normalized) rows.
struct Fused<'a> {
    q: &'a [f32],
    b: usize,
    keys: &'a [f32],
    n: usize,
    d: usize,
    inv_tau: f32,
    log_q: Option<&'a [f32]>,
    positives: &'a [u32],
    /// Mask logit (i, i): queries and keys are the same rows (NT-Xent).
    exclude_self: bool,
    /// Mask keys j ≠ p_i with key_ids[j] = key_ids[p_i] (accidental hits).
    key_ids: Option<&'a [u32]>,
    /// Precision of every GEMM (logits and both gradients); see [`crate::precision`].
    prec: Precision,
}

impl Fused<'_> {
    /// Whether logit (i, j) is excluded from the softmax.
    #[inline]
    fn masked(&self, i: usize, j: usize) -> bool {
        if self.exclude_self && i == j {
            return true;
        }
        match self.key_ids {
            Some(ids) => {
                let pos = self.positives[i] as usize;
                j != pos && ids[j] == ids[pos]
            }
            None => false,
        }
    }
}

/// Logits of queries i0..i0+mb against keys j0..j0+nb into `tile` (mb × nb, ld nb), with the
/// temperature, the logQ correction and the self mask applied.
fn logits_tile(p: &Fused, i0: usize, mb: usize, j0: usize, nb: usize, tile: &mut [f32]) {
    let d = p.d;
    p.prec.gemm_nt(
        mb,
        nb,
        d,
        (&p.q[i0 * d..(i0 + mb) * d], d),
        (&p.keys[j0 * d..(j0 + nb) * d], d),
        (tile, nb),
    );
    for r in 0..mb {
        let row = &mut tile[r * nb..(r + 1) * nb];
        k::scale(row, p.inv_tau);
        if let Some(lq) = p.log_q {
            k::axpy(row, -1.0, &lq[j0..j0 + nb]);
        }
        if p.exclude_self {
            let i = i0 + r;
            if i >= j0 && i < j0 + nb {
                row[i - j0] = f32::NEG_INFINITY;
            }
        }
        if p.key_ids.is_some() {
            let i = i0 + r;
            for (jj, v) in row.iter_mut().enumerate() {
                if p.masked(i, j0 + jj) {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
    }
}

/// exp(row − shift) in place with masked (−∞) entries and the entry `pin` (the positive,
/// set to −∞ by the caller) forced to exactly 0; returns the sum.
#[inline]
fn exp_row(p: &Fused, i: usize, j0: usize, row: &mut [f32], shift: f32, pin: Option<usize>) -> f64 {
    let mut s = k::exp_shift_sum(row, shift);
    if let Some(jj) = pin {
        s -= row[jj] as f64;
        row[jj] = 0.0;
    }
    if p.exclude_self && i >= j0 && i < j0 + row.len() {
        s -= row[i - j0] as f64;
        row[i - j0] = 0.0;
    }
    if p.key_ids.is_some() {
        for (jj, v) in row.iter_mut().enumerate() {
            if p.masked(i, j0 + jj) {
                s -= *v as f64;
                *v = 0.0;
            }
        }
    }
    s
}

/// One query's ∂loss_i/∂τ and diagnostics: [gradτ, entropy, p(pos), max p(neg), effective
/// negatives].
type RowExtra = [f64; 5];

/// The sums of one query after its pass over the keys: the positive logit `zp` (and
/// zp + logQ_pos = `up`), and the negatives' sums shifted by their largest logit `mneg`:
/// `ln` = Σ exp(z − mneg), `ezs` = Σ exp(z − mneg)·(z − mneg), `elqn` = Σ exp(z − mneg)·logQ.
struct QuerySums {
    zp: f64,
    up: f64,
    mneg: f64,
    ln: f64,
    ezs: f64,
    elqn: f64,
}

impl QuerySums {
    /// (log-sum-exp over every key, p(negatives)).
    fn lse_pneg(&self) -> (f64, f64) {
        let lsen = self.mneg + self.ln.ln();
        let lse = log_add_exp(self.zp, lsen);
        (lse, (lsen - lse).exp())
    }

    /// The query's ∂loss_i/∂τ and diagnostics, every logit taken relative to `mneg` (so that
    /// logits of 1e19, say, leave the entropy its digits): with a = zp − mneg, l = ln Σ e,
    /// r = lse − mneg = ln(e^a + Σ e) and E = E_neg[z] − mneg = ezs / Σ e, the entropy is
    /// p(pos)·(r − a) + p(neg)·(r − E) and the effective negatives e^(l − E).
    fn extras(&self, inv_tau: f64) -> RowExtra {
        let a = self.zp - self.mneg;
        let l = self.ln.ln();
        let r = log_add_exp(a, l);
        let e = self.ezs / self.ln;
        let eqlq = self.elqn / self.ln;
        let pneg = (l - r).exp();
        let pp = (a - r).exp();
        let h = pp * (r - a) + pneg * (r - e);
        [
            -inv_tau * pneg * (e + eqlq + (self.mneg - self.up)),
            h,
            pp,
            (-r).exp(),
            (l - e).exp(),
        ]
    }
}

/// One pass-A task's outputs: gradQ rows, per-row shift, scale and p(negatives), per-row
/// loss, per-row extras.
type PassA<'a> = (
    (
        (
            ((&'a mut [f32], &'a mut [f32]), &'a mut [f32]),
            &'a mut [f32],
        ),
        &'a mut [f64],
    ),
    &'a mut [RowExtra],
);

/// What the fused passes return: loss, gradQ, gradKeys, ∂loss/∂τ and the diagnostics.
struct FusedOut<'o> {
    loss: f64,
    gq: Grad<'o>,
    gk: Grad<'o>,
    grad_tau: f64,
    stats: NceStats,
    /// The gradients are already taken back through the normalization (in float64, by the
    /// float64 path; for NT-Xent both views' gradient is in `gq` and `gk` is zero).
    finished: bool,
}

/// A gradient the fused paths fill: a fresh zeroed vector, or a caller's zeroed buffer of the
/// same length (one that the runtime returns, so that the gradient is computed where the
/// caller keeps it instead of being copied there).
pub(crate) enum Grad<'o> {
    Own(Vec<f32>),
    Into(&'o mut [f32]),
}

impl std::ops::Deref for Grad<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Grad::Own(v) => v,
            Grad::Into(s) => s,
        }
    }
}

impl std::ops::DerefMut for Grad<'_> {
    fn deref_mut(&mut self) -> &mut [f32] {
        match self {
            Grad::Own(v) => v,
            Grad::Into(s) => s,
        }
    }
}

impl<'o> Grad<'o> {
    /// The caller's buffer from `slot` when it holds one, else a fresh zeroed `rows × d`
    /// matrix (E_ARG naming `what` with `hint` when refused), allocated where the path used to.
    pub(crate) fn get(
        slot: &mut Option<&'o mut [f32]>,
        (func, what, hint): (&str, &str, &str),
        rows: usize,
        d: usize,
    ) -> Result<Grad<'o>> {
        Ok(match slot.take() {
            Some(s) => Grad::Into(s),
            None => Grad::Own(alloc::try_mat(func, what, rows, d, hint)?),
        })
    }

    /// The vector, or an empty one when the gradient went into the caller's buffer.
    pub(crate) fn into_vec(self) -> Vec<f32> {
        match self {
            Grad::Own(v) => v,
            Grad::Into(_) => Vec::new(),
        }
    }
}

/// The caller's buffers for gradQ and gradKeys (none: the paths allocate them).
type Outs<'o> = (Option<&'o mut [f32]>, Option<&'o mut [f32]>);

/// ∂loss/∂τ and the diagnostics from a backend's per-query rows of five values
/// [Pneg·(E_q[z] + E_q[logQ] − u_pos), entropy, p(pos), max p(neg), effective negatives]
/// (the first times −1/τ is ∂loss_i/∂τ).
#[doc(hidden)]
pub fn nce_extras_from_rows(rows: &[f64], inv_tau: f32) -> (f64, NceStats) {
    let ex: Vec<RowExtra> = rows
        .chunks_exact(5)
        .map(|r| [-(inv_tau as f64) * r[0], r[1], r[2], r[3], r[4]])
        .collect();
    mean_extras(&ex)
}

/// Mean of the per-query extras, in a fixed order.
fn mean_extras(ex: &[RowExtra]) -> (f64, NceStats) {
    let mut t = [0f64; 5];
    for e in ex {
        for (a, b) in t.iter_mut().zip(e) {
            *a += b;
        }
    }
    let inv = 1.0 / ex.len().max(1) as f64;
    (
        t[0] * inv,
        NceStats {
            mean_entropy: t[1] * inv,
            mean_positive_probability: t[2] * inv,
            mean_max_negative_probability: t[3] * inv,
            effective_negatives: t[4] * inv,
        },
    )
}

/// ln(eᵃ + eᵇ) in float64.
#[inline]
fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// The tiled path: both passes, O((B + K)·d) memory; results with respect to the prepared
/// rows.
///
/// The online softmax is shifted by the running largest *negative* logit m (the positive
/// set aside and added in float64 at the end), so one exp per logit gives the gradient, the
/// loss and the negatives' statistics: Σ e_j, Σ e_j·logQ_j and Σ e_j·(z_j − m), each rescaled
/// when m grows.
fn fused<'o>(func: &str, p: &Fused, outs: &mut Outs<'o>) -> Result<FusedOut<'o>> {
    let (b, n, d) = (p.b, p.n, p.d);
    let mut gq = Grad::get(&mut outs.0, (func, "gradQ", "split the batch"), b, d)?;
    let mut mx = vec![0f32; b];
    let mut scv = vec![0f32; b];
    let mut negp = vec![0f32; b];
    let mut lossv = vec![0f64; b];
    let mut exv = vec![[0f64; 5]; b];
    // ∂loss/∂logit = (P − 1_pos)/B, and ∂logit/∂(q·k) = 1/τ.
    let c = (p.inv_tau as f64 / b as f64) as f32;

    // Pass A: online log-sum-exp over the negatives, gradQ and the per-query extras, one task
    // per block of BQ queries.
    let pass_a = |(blk, (((((g, m), sc), ng), lv), ex)): (usize, PassA)| {
        let i0 = blk * BQ;
        let mb = m.len();
        let mut tile = vec![0f32; mb * BK.min(n)];
        let mut l = vec![0f64; mb];
        let mut elq = vec![0f64; mb];
        // Σ e_j·(z_j − m): the negatives' Σ e·z relative to the running shift, so that neither
        // large logits nor the GEMM's rounding (bf16) cancel it (see below).
        let mut ezs = vec![0f64; mb];
        let mut zs = vec![0f32; BK.min(n)];
        let mut pos_logit = vec![0f32; mb];
        m.fill(f32::NEG_INFINITY);
        for j0 in (0..n).step_by(BK) {
            let nb = BK.min(n - j0);
            let t = &mut tile[..mb * nb];
            logits_tile(p, i0, mb, j0, nb, t);
            for r in 0..mb {
                let i = i0 + r;
                let row = &mut t[r * nb..(r + 1) * nb];
                let pos = p.positives[i] as usize;
                let pin = (pos >= j0 && pos < j0 + nb).then(|| pos - j0);
                if let Some(jj) = pin {
                    pos_logit[r] = row[jj];
                    row[jj] = f32::NEG_INFINITY;
                }
                let mnew = m[r].max(k::max(row));
                if mnew == f32::NEG_INFINITY {
                    row.fill(0.0);
                    continue;
                }
                if m[r] != mnew && m[r] != f32::NEG_INFINITY {
                    let a = ((m[r] - mnew) as f64).exp();
                    ezs[r] = a * (ezs[r] + (m[r] as f64 - mnew as f64) * l[r]);
                    l[r] *= a;
                    elq[r] *= a;
                    k::scale(&mut g[r * d..(r + 1) * d], a as f32);
                }
                m[r] = mnew;
                // z − m of this tile (0 where a logit is excluded: its e is 0 below).
                let zs = &mut zs[..nb];
                for (v, &z) in zs.iter_mut().zip(row.iter()) {
                    *v = if z == f32::NEG_INFINITY {
                        0.0
                    } else {
                        z - mnew
                    };
                }
                l[r] += exp_row(p, i, j0, row, mnew, pin);
                ezs[r] += k::dot(row, zs) as f64;
                if let Some(lq) = p.log_q {
                    elq[r] += k::dot(row, &lq[j0..j0 + nb]) as f64;
                }
            }
            p.prec.gemm(
                GemmRef::nn(
                    mb,
                    d,
                    nb,
                    (t, nb),
                    (&p.keys[j0 * d..(j0 + nb) * d], d),
                    (g, d),
                )
                .accumulate(true),
            );
        }
        for r in 0..mb {
            let i = i0 + r;
            let pos = p.positives[i] as usize;
            let zp = pos_logit[r] as f64;
            if m[r] == f32::NEG_INFINITY {
                // No negatives: p(pos) = 1, loss 0, gradient 0 (the row was never touched).
                lv[r] = 0.0;
                ex[r] = [0.0, 0.0, 1.0, 0.0, 0.0];
                sc[r] = 0.0;
                ng[r] = 0.0;
                continue;
            }
            let gr = &mut g[r * d..(r + 1) * d];
            // Σ e_j·(z_j − m) as accumulated. (Formed from the gradient accumulator as
            // q_i·(Σ e_j k_j)/τ − m·Σ e_j it took the products of the GEMM, rounded to bf16 at
            // that precision, against logits of the other GEMM: the entropy and the effective
            // negatives were off by 0.1 for one negative at τ = 0.001.)
            let sums = QuerySums {
                zp,
                up: zp + p.log_q.map_or(0.0, |lq| lq[pos] as f64),
                mneg: m[r] as f64,
                ln: l[r],
                ezs: ezs[r],
                elqn: elq[r],
            };
            let (lse, pneg) = sums.lse_pneg();
            ex[r] = sums.extras(p.inv_tau as f64);
            lv[r] = lse - zp;
            let s = (sums.mneg - lse).exp();
            sc[r] = s as f32;
            ng[r] = pneg as f32;
            // gradQ_i = (Σ_neg p_j k_j − p(neg)·k_pos)·c with p_j = e_j·exp(m − lse).
            k::scale(gr, (s * c as f64) as f32);
            k::axpy(
                gr,
                (-pneg * c as f64) as f32,
                &p.keys[pos * d..(pos + 1) * d],
            );
        }
    };
    let it_a = gq
        .par_chunks_mut(BQ * d)
        .zip(mx.par_chunks_mut(BQ))
        .zip(scv.par_chunks_mut(BQ))
        .zip(negp.par_chunks_mut(BQ))
        .zip(lossv.par_chunks_mut(BQ))
        .zip(exv.par_chunks_mut(BQ))
        .enumerate();
    pool::run(|| it_a.for_each(pass_a));
    let loss = lossv.iter().sum::<f64>() / b as f64;
    let (grad_tau, stats) = mean_extras(&exv);

    // Pass B: gradKeys, one task per block of BK2 keys.
    let mut gk = Grad::get(&mut outs.1, (func, "gradKeys", "split the batch"), n, d)?;
    let (mx, scv, negp) = (&mx, &scv, &negp);
    let pass_b = |(blk, g): (usize, &mut [f32])| {
        let j0 = blk * BK2;
        let nb = g.len() / d;
        let qt = BQ2.min(b);
        let mut tile = vec![0f32; qt * nb];
        for i0 in (0..b).step_by(BQ2) {
            let mb = BQ2.min(b - i0);
            let t = &mut tile[..mb * nb];
            logits_tile(p, i0, mb, j0, nb, t);
            for r in 0..mb {
                let i = i0 + r;
                let row = &mut t[r * nb..(r + 1) * nb];
                if mx[i] == f32::NEG_INFINITY {
                    row.fill(0.0);
                    continue;
                }
                exp_row(p, i, j0, row, mx[i], None);
                k::scale(row, scv[i]);
                let pos = p.positives[i] as usize;
                if pos >= j0 && pos < j0 + nb {
                    // p_pos − 1 = −p(negatives).
                    row[pos - j0] = -negp[i];
                }
            }
            // The tile read as a transposed operand (no transposed copy).
            p.prec.gemm(
                GemmRef::tn(nb, d, mb, (t, nb), (&p.q[i0 * d..(i0 + mb) * d], d), (g, d))
                    .accumulate(true),
            );
        }
        k::scale(g, c);
    };
    pool::run(|| gk.par_chunks_mut(BK2 * d).enumerate().for_each(pass_b));

    Ok(FusedOut {
        loss,
        gq,
        gk,
        grad_tau,
        stats,
        finished: false,
    })
}

/// A validated InfoNCE / NT-Xent problem on prepared rows (normalized where asked), shared by
/// the CPU path here and the GPU backend (which runs the O(B·K·d) part on the device and
/// [`Prepared::finish_info_nce_with`] / [`Prepared::finish_nt_xent_with`] on the host).
#[doc(hidden)]
pub struct Prepared<'a> {
    /// Queries, b × d (for NT-Xent: z = [â; b̂], 2N × d).
    pub q: Cow<'a, [f32]>,
    pub b: usize,
    /// Keys, n × d; `None` when the keys are the queries (NT-Xent).
    pub keys: Option<Cow<'a, [f32]>>,
    pub n: usize,
    pub d: usize,
    pub inv_tau: f32,
    pub log_q: Option<&'a [f32]>,
    /// Index of each query's positive key.
    pub positives: Cow<'a, [u32]>,
    /// Mask logit (i, i) (NT-Xent).
    pub exclude_self: bool,
    /// Key ids for the removal of accidental hits (InfoNCE's `keyIds`).
    pub key_ids: Option<&'a [u32]>,
    /// Norms of the raw query / key rows when they were normalized.
    pub q_norms: Option<Vec<f64>>,
    pub k_norms: Option<Vec<f64>>,
    /// The rows are to be normalized by the backend ([`info_nce_prepare_raw`]), which then
    /// returns gradients with respect to the raw rows.
    pub normalize_pending: bool,
}

impl<'a> Prepared<'a> {
    /// The keys (the queries for NT-Xent).
    pub fn keys(&self) -> &[f32] {
        self.keys.as_deref().unwrap_or(&self.q)
    }

    fn fused(&self) -> Fused<'_> {
        Fused {
            q: &self.q,
            b: self.b,
            keys: self.keys(),
            n: self.n,
            d: self.d,
            inv_tau: self.inv_tau,
            log_q: self.log_q,
            positives: &self.positives,
            exclude_self: self.exclude_self,
            key_ids: self.key_ids,
            prec: precision::current(),
        }
    }

    /// InfoNCE's result from the loss, the gradients with respect to the prepared rows, and
    /// ∂loss/∂τ with the diagnostics.
    pub fn finish_info_nce_with(
        &self,
        loss: f64,
        mut gq: Vec<f32>,
        mut gk: Vec<f32>,
        (grad_temperature, stats): (f64, NceStats),
    ) -> InfoNce {
        self.back_norm_grads(&mut gq, &mut gk);
        InfoNce {
            loss,
            grad_q: gq,
            grad_keys: gk,
            grad_temperature,
            stats,
        }
    }

    /// gradQ and gradKeys taken back through the normalization of the rows, when the rows
    /// were normalized.
    fn back_norm_grads(&self, gq: &mut [f32], gk: &mut [f32]) {
        if let (Some(qn), Some(kn)) = (&self.q_norms, &self.k_norms) {
            back_norm(gq, &self.q, qn, self.d);
            back_norm(gk, self.keys(), kn, self.d);
        }
    }

    /// NT-Xent's result from the loss, the gradient with respect to z (queries and keys
    /// together), and ∂loss/∂τ with the diagnostics.
    pub fn finish_nt_xent_with(
        &self,
        loss: f64,
        mut g: Vec<f32>,
        (grad_temperature, stats): (f64, NceStats),
    ) -> NtXent {
        let norms = self.q_norms.as_ref().expect("NT-Xent rows are normalized");
        back_norm(&mut g, &self.q, norms, self.d);
        let grad_b = g.split_off(self.b / 2 * self.d);
        NtXent {
            loss,
            grad_a: g,
            grad_b,
            grad_temperature,
            stats,
        }
    }
}

/// Validates an InfoNCE call and prepares its rows (see [`info_nce`]).
#[doc(hidden)]
pub fn info_nce_prepare<'a>(
    q: &'a [f32],
    b: usize,
    keys: &'a [f32],
    n: usize,
    d: usize,
    o: &InfoNceOpts<'a>,
) -> Result<Prepared<'a>> {
    info_nce_prepare_ids(Operand::new(q, b), Operand::new(keys, n), d, o, None)
}

/// [`info_nce_prepare`] with the `keyIds` of the removal of accidental hits (`q` B × d, `keys`
/// K × d).
#[doc(hidden)]
pub fn info_nce_prepare_ids<'a>(
    q: Operand<'a>,
    keys: Operand<'a>,
    d: usize,
    o: &InfoNceOpts<'a>,
    key_ids: Option<&'a [u32]>,
) -> Result<Prepared<'a>> {
    prepare_nce(q, keys, d, o, key_ids, false)
}

/// [`info_nce_prepare`] for a backend that normalizes the rows itself: the same checks, in the
/// same order, with the same errors (a zero row is found by [`first_zero_row`]), but the rows
/// stay as given and [`Prepared::normalize_pending`] is set: the backend normalizes them, and
/// returns gradients already taken back through the normalization.
#[doc(hidden)]
pub fn info_nce_prepare_raw<'a>(
    q: &'a [f32],
    b: usize,
    keys: &'a [f32],
    n: usize,
    d: usize,
    o: &InfoNceOpts<'a>,
) -> Result<Prepared<'a>> {
    prepare_nce(Operand::new(q, b), Operand::new(keys, n), d, o, None, true)
}

fn prepare_nce<'a>(
    q: Operand<'a>,
    keys: Operand<'a>,
    d: usize,
    o: &InfoNceOpts<'a>,
    key_ids: Option<&'a [u32]>,
    raw: bool,
) -> Result<Prepared<'a>> {
    const F: &str = "infoNCE";
    let (b, n) = (q.rows, keys.rows);
    let q = q.check(F, "q", d)?.data;
    let keys = keys.check(F, "keys", d)?.data;
    if let Some(pos) = o.positives {
        check_rows(F, "positives", pos.len(), "q", b)?;
    } else if n < b {
        bail!(Shape, "{F}: without positives, query i's positive is key i, so keys needs at least q.rows = {b} rows, got {n}");
    }
    if let Some(lq) = o.log_q {
        check_rows(F, "logQ", lq.len(), "keys", n)?;
    }
    if let Some(ids) = key_ids {
        check_rows(F, "keyIds", ids.len(), "keys", n)?;
    }
    check_temperature(F, o.temperature)?;
    let positives: Cow<[u32]> = match o.positives {
        Some(p) => {
            if let Some(i) = p.iter().position(|&v| v as usize >= n) {
                bail!(
                    Arg,
                    "{F}: positives[{i}] = {} is out of range [0, {n}) (rows of keys)",
                    p[i]
                );
            }
            Cow::Borrowed(p)
        }
        None => Cow::Owned((0..b as u32).collect()),
    };
    let normed = if o.normalize && raw {
        for (x, rows, name) in [(q, b, "q"), (keys, n, "keys")] {
            if let Some(i) = first_zero_row(x, rows, d) {
                return Err(zero_norm(F, name, i));
            }
        }
        None
    } else if o.normalize {
        let qn = normalized_rows(F, "q", q, b, d)?;
        let kn = normalized_rows(F, "keys", keys, n, d)?;
        Some((qn, kn))
    } else {
        None
    };
    check_finite(F, "q", q)?;
    check_finite(F, "keys", keys)?;
    if let Some(lq) = o.log_q {
        check_finite(F, "logQ", lq)?;
    }
    let inv_tau = (1.0 / o.temperature) as f32;
    Ok(match normed {
        Some(((qh, qn), (kh, kn))) => Prepared {
            q: Cow::Owned(qh),
            b,
            keys: Some(Cow::Owned(kh)),
            n,
            d,
            inv_tau,
            log_q: o.log_q,
            positives,
            exclude_self: false,
            key_ids,
            q_norms: Some(qn),
            k_norms: Some(kn),
            normalize_pending: false,
        },
        None => Prepared {
            q: Cow::Borrowed(q),
            b,
            keys: Some(Cow::Borrowed(keys)),
            n,
            d,
            inv_tau,
            log_q: o.log_q,
            positives,
            exclude_self: false,
            key_ids,
            q_norms: None,
            k_norms: None,
            normalize_pending: raw && o.normalize,
        },
    })
}

/// InfoNCE with logits q·k/τ − logQ_k, mean over queries of −log p(positive | query), and its
/// gradients with respect to q and keys (through the normalization when `normalize`), ∂loss/∂τ
/// and the diagnostics.
pub fn info_nce(
    q: &[f32],
    b: usize,
    keys: &[f32],
    n: usize,
    d: usize,
    o: &InfoNceOpts,
) -> Result<InfoNce> {
    info_nce_ids(q, b, keys, n, d, o, None)
}

/// [`info_nce`] with accidental hits removed: for query i with positive p_i, every key j ≠ p_i
/// with `key_ids[j] == key_ids[p_i]` is left out of the softmax (logit −∞, gradient 0).
pub fn info_nce_ids(
    q: &[f32],
    b: usize,
    keys: &[f32],
    n: usize,
    d: usize,
    o: &InfoNceOpts,
    key_ids: Option<&[u32]>,
) -> Result<InfoNce> {
    let (q, keys) = (Operand::new(q, b), Operand::new(keys, n));
    info_nce_with(q, keys, d, o, key_ids, DEFAULT_SCRATCH_BYTES)
}

/// [`info_nce_ids`] with a scratch budget in bytes: when the B × K float32 logits (4·B·K
/// bytes) fit it they are held and the call does three GEMMs; otherwise it takes the tiled
/// path, O((B + K)·d) extra memory and four GEMMs. Both give the same results within float32
/// rounding, and each is bit-identical for every thread count. `q` is B × d, `keys` K × d.
pub fn info_nce_with(
    q: Operand,
    keys: Operand,
    d: usize,
    o: &InfoNceOpts,
    key_ids: Option<&[u32]>,
    scratch_bytes: usize,
) -> Result<InfoNce> {
    const F: &str = "infoNCE";
    let p = info_nce_prepare_ids(q, keys, d, o, key_ids)?;
    let r = info_nce_paths(F, &p, o.temperature, scratch_bytes, &mut (None, None))?;
    let (mut gq, mut gk) = (r.gq.into_vec(), r.gk.into_vec());
    if r.finished {
        return Ok(InfoNce {
            loss: r.loss,
            grad_q: gq,
            grad_keys: gk,
            grad_temperature: r.grad_tau,
            stats: r.stats,
        });
    }
    p.back_norm_grads(&mut gq, &mut gk);
    Ok(InfoNce {
        loss: r.loss,
        grad_q: gq,
        grad_keys: gk,
        grad_temperature: r.grad_tau,
        stats: r.stats,
    })
}

/// The path of an InfoNCE call on prepared rows (see [`info_nce_with`]).
fn info_nce_paths<'o>(
    func: &str,
    p: &Prepared,
    temperature: f64,
    scratch_bytes: usize,
    outs: &mut Outs<'o>,
) -> Result<FusedOut<'o>> {
    if logits_may_overflow(p, temperature) {
        info_nce_f64(func, p, temperature, outs)
    } else if held::fits(p.b, p.n, scratch_bytes) {
        held::info_nce(func, &p.fused(), outs)
    } else {
        fused(func, &p.fused(), outs)
    }
}

/// [`info_nce_with`] on rows prepared by [`info_nce_prepare_ids`] (every argument error is
/// raised there, first), with gradQ and gradKeys computed in the caller's `grad_q` (B × d) and
/// `grad_keys` (K × d), which must hold zeros: buffers that the caller returns, so that the
/// gradients are not copied into them. The same values, bit for bit, as [`info_nce_with`];
/// the returned `grad_q` and `grad_keys` are empty.
pub fn info_nce_prepared_into(
    p: &Prepared,
    temperature: f64,
    scratch_bytes: usize,
    grad_q: &mut [f32],
    grad_keys: &mut [f32],
) -> Result<InfoNce> {
    const F: &str = "infoNCE";
    if grad_q.len() != p.b * p.d || grad_keys.len() != p.n * p.d {
        bail!(
            Shape,
            "{F}: gradient buffers of {} and {} values for {} × {} and {} × {}",
            grad_q.len(),
            grad_keys.len(),
            p.b,
            p.d,
            p.n,
            p.d
        );
    }
    let r = info_nce_paths(
        F,
        p,
        temperature,
        scratch_bytes,
        &mut (Some(grad_q), Some(grad_keys)),
    )?;
    let (mut gq, mut gk) = (r.gq, r.gk);
    if !r.finished {
        p.back_norm_grads(&mut gq, &mut gk);
    }
    Ok(InfoNce {
        loss: r.loss,
        grad_q: gq.into_vec(),
        grad_keys: gk.into_vec(),
        grad_temperature: r.grad_tau,
        stats: r.stats,
    })
}

/// Whether the float32 logits q·k/τ − logQ of the fused paths could go wrong (see
/// [`float32_logits_unsafe`]); such calls take the float64 path.
pub fn logits_may_overflow(p: &Prepared, temperature: f64) -> bool {
    let max_abs = |x: &[f32]| x.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    let lq = p.log_q.map_or(0.0, max_abs);
    float32_logits_unsafe(max_abs(&p.q), max_abs(p.keys()), p.d, temperature, lq)
}

/// Whether float32 logits q·k/τ − logQ, for rows whose largest magnitudes are `qmax` and
/// `kmax` (d columns) and logQ's largest magnitude `lqmax`, could lose what the float64
/// reference keeps:
/// - overflow: 1/τ past the float32 range, or max|q|·max|k|·d (the products and partial sums
///   of the GEMM) or that over τ plus max|logQ| near it (≥ 1e36);
/// - underflow: max|q|·max|k| below 2^-100, where the products fall out of the float32 (and
///   bf16) normal range although q·k/τ may matter (τ tiny too);
/// - logQ above 64 in magnitude: the float32 logits' spacing there (≥ 2^-17) would show in the
///   loss.
///
/// NaN in any magnitude answers true. The GPU routing uses the same rule.
pub fn float32_logits_unsafe(qmax: f64, kmax: f64, d: usize, tau: f64, lqmax: f64) -> bool {
    let prod = qmax * kmax;
    let raw = prod * d as f64;
    let bound = raw / tau + lqmax;
    let safe = ((1.0 / tau) as f32).is_finite()
        && bound < 1e36
        && raw < 1e36
        && (prod == 0.0 || prod >= 7.888609052210118e-31)
        && lqmax <= 64.0;
    !safe
}

/// InfoNCE (and NT-Xent, whose keys are its queries with the self logit masked) in float64 on
/// the prepared rows, the logits held scaled by α = min(τ, 1) as in the reference: u = α·(q·k/τ − logQ), exp((u − max u)/α), gradients divided by τ last. Used
/// when [`logits_may_overflow`]; never forms an infinite logit, so a subnormal τ gives a
/// finite loss wherever the true loss is representable. ∂loss/∂τ and the diagnostics come from
/// the log-probabilities (∂loss/∂τ overflows with 1/τ²).
fn info_nce_f64<'o>(
    func: &str,
    p: &Prepared,
    tau: f64,
    outs: &mut Outs<'o>,
) -> Result<FusedOut<'o>> {
    let (b, n, d) = (p.b, p.n, p.d);
    // At precision bf16 the similarities and both gradient products take the bf16 values of
    // the rows, as the GEMMs of the other paths do (and the reference).
    let prec = crate::precision::current();
    let (mut qr, mut kr) = (Vec::new(), Vec::new());
    let (q, keys): (&[f32], &[f32]) = if prec == crate::precision::Precision::Bf16 {
        prec.round_into(&p.q, &mut qr);
        prec.round_into(p.keys(), &mut kr);
        (&qr, &kr)
    } else {
        (&p.q, p.keys())
    };
    let alpha = tau.min(1.0);
    let fz = p.fused();
    let mut z = vec![0f64; n];
    let mut lu = vec![0f64; n];
    let mut sims = vec![0f64; n];
    let mut gq: Vec<f64> = alloc::try_mat(func, "gradQ", b, d, "split the batch")?;
    let mut gk: Vec<f64> = alloc::try_mat(func, "gradKeys", n, d, "split the batch")?;
    let mut exv = vec![[0f64; 5]; b];
    let mut loss = 0.0;
    for i in 0..b {
        let qi = &q[i * d..(i + 1) * d];
        for (j, zj) in z.iter_mut().enumerate() {
            let kj = &keys[j * d..(j + 1) * d];
            let s: f64 = qi.iter().zip(kj).map(|(&x, &y)| x as f64 * y as f64).sum();
            sims[j] = s;
            let lq = p.log_q.map_or(0.0, |l| l[j] as f64);
            *zj = if fz.masked(i, j) {
                f64::NEG_INFINITY
            } else {
                (if tau < 1.0 { s } else { s / tau }) - alpha * lq
            };
        }
        let pos = p.positives[i] as usize;
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let zp = z[pos];
        let mut sum = 0.0;
        lu.copy_from_slice(&z);
        for v in z.iter_mut() {
            *v = ((*v - m) / alpha).exp();
            sum += *v;
        }
        loss += sum.ln() + (m - zp) / alpha;
        exv[i] = extras_from_probs(&lu, alpha, sum, pos, &sims, tau);
        for (j, &e) in z.iter().enumerate() {
            let g = (e / sum - if j == pos { 1.0 } else { 0.0 }) / b as f64;
            if g == 0.0 {
                continue;
            }
            for t in 0..d {
                gq[i * d + t] += g * keys[j * d + t] as f64;
                gk[j * d + t] += g * qi[t] as f64;
            }
        }
    }
    // Divided by τ and taken back through the normalization in float64 before the one
    // rounding to float32: with a tiny τ the gradients pass the float32 range, and the
    // projection of an infinite row would be NaN where the reference's is ±∞ or finite.
    // NT-Xent (the keys are the queries): both views' gradient in gq, gk zero.
    let (mut gq, mut gk) = (gq, gk);
    let nt = p.keys.is_none() && p.exclude_self;
    if nt {
        for (a, c) in gq.iter_mut().zip(&gk) {
            *a += c;
        }
        gk.iter_mut().for_each(|v| *v = 0.0);
    }
    for v in gq.iter_mut().chain(gk.iter_mut()) {
        *v /= tau;
    }
    let back64 = |g: &mut [f64], h: &[f32], norms: &[f64]| {
        for (gr, (hr, &nr)) in g.chunks_mut(d).zip(h.chunks(d).zip(norms)) {
            let s: f64 = gr.iter().zip(hr).map(|(&a, &x)| a * x as f64).sum();
            for (a, &x) in gr.iter_mut().zip(hr) {
                *a = (*a - x as f64 * s) / nr;
            }
        }
    };
    let finished = match (&p.q_norms, &p.k_norms) {
        (Some(qn), Some(kn)) => {
            back64(&mut gq, &p.q, qn);
            back64(&mut gk, p.keys(), kn);
            true
        }
        (Some(qn), None) if nt => {
            back64(&mut gq, &p.q, qn);
            true
        }
        _ => false,
    };
    let out = |g: Vec<f64>, slot: &mut Option<&'o mut [f32]>, what: &str, rows: usize| {
        let mut o = Grad::get(slot, (func, what, "split the batch"), rows, d)?;
        for (o, v) in o.iter_mut().zip(g) {
            *o = v as f32;
        }
        Ok::<_, crate::Error>(o)
    };
    let (gq, gk) = (
        out(gq, &mut outs.0, "gradQ", b)?,
        out(gk, &mut outs.1, "gradKeys", n)?,
    );
    let (grad_tau, stats) = mean_extras(&exv);
    Ok(FusedOut {
        loss: loss / b as f64,
        gq,
        gk,
        grad_tau,
        stats,
        finished,
    })
}

/// One query's extras from its logits held scaled by α (`u`, masked entries −∞; the
/// probabilities are e^((u − max u)/α) / `sum`), positive `pos` and similarities `sims`
/// (before dividing by τ), in log space and with every difference of logits taken before
/// dividing by α: a probability that underflows to 0 still has its log, the negatives'
/// distribution (max p, effective negatives) is formed relative to the largest negative (so
/// it exists next to a dominant positive and at a subnormal τ), and the positive's −s_pos term
/// of ∂L/∂τ is kept when p(pos) underflows.
fn extras_from_probs(
    u: &[f64],
    alpha: f64,
    sum: f64,
    pos: usize,
    sims: &[f64],
    tau: f64,
) -> RowExtra {
    let m = u.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lsum = sum.ln();
    let lp = |j: usize| (u[j] - m) / alpha - lsum;
    let mut h = 0.0;
    let mut gt = 0.0;
    let mut mneg = f64::NEG_INFINITY;
    for (j, &v) in u.iter().enumerate() {
        let pj = if v == f64::NEG_INFINITY {
            0.0
        } else {
            lp(j).exp()
        };
        if pj > 0.0 {
            h -= pj * lp(j);
        }
        if j == pos {
            gt += (pj - 1.0) * sims[j];
        } else if v > f64::NEG_INFINITY {
            gt += pj * sims[j];
            mneg = mneg.max(v);
        }
    }
    // ∂L_i/∂τ = −(1/τ)·Σ_j (p_j − y_j)·s_j/τ.
    let gt = -gt / tau / tau;
    if mneg == f64::NEG_INFINITY {
        return [gt, h, 1.0, 0.0, 0.0];
    }
    let dn = |j: usize| (u[j] - mneg) / alpha;
    let mut l = 0.0;
    for (j, &v) in u.iter().enumerate() {
        if j != pos && v > f64::NEG_INFINITY {
            l += dn(j).exp();
        }
    }
    let ll = l.ln();
    let mut hn = 0.0;
    for (j, &v) in u.iter().enumerate() {
        if j != pos && v > f64::NEG_INFINITY {
            let lq = dn(j) - ll;
            let q = lq.exp();
            if q > 0.0 {
                hn -= q * lq;
            }
        }
    }
    let ln_max = (mneg - m) / alpha - lsum;
    [gt, h, lp(pos).exp(), ln_max.exp(), hn.exp()]
}

/// Validates an NT-Xent call and prepares z = [â; b̂] (see [`nt_xent`]).
#[doc(hidden)]
pub fn nt_xent_prepare(
    a: &[f32],
    b: &[f32],
    rows: usize,
    d: usize,
    temperature: f64,
) -> Result<Prepared<'static>> {
    const F: &str = "ntXent";
    check_matrix(F, "a", a, rows, d)?;
    check_matrix(F, "b", b, rows, d)?;
    check_temperature(F, temperature)?;
    let r = 2 * rows;
    let (ah, an) = normalized_rows(F, "a", a, rows, d)?;
    let (bh, bn) = normalized_rows(F, "b", b, rows, d)?;
    check_finite(F, "a", a)?;
    check_finite(F, "b", b)?;
    let mut z = ah;
    alloc::try_reserve(F, "the 2N × d normalized views", &mut z, bh.len())?;
    z.extend_from_slice(&bh);
    drop(bh);
    let mut norms = an;
    norms.extend_from_slice(&bn);
    let positives: Vec<u32> = (0..r).map(|i| ((i + rows) % r) as u32).collect();
    Ok(Prepared {
        q: Cow::Owned(z),
        b: r,
        keys: None,
        n: r,
        d,
        inv_tau: (1.0 / temperature) as f32,
        log_q: None,
        positives: Cow::Owned(positives),
        exclude_self: true,
        key_ids: None,
        q_norms: Some(norms),
        k_norms: None,
        normalize_pending: false,
    })
}

/// SimCLR's NT-Xent over two views a, b (N × d each): rows normalized inside, z = [â; b̂],
/// logits cos/τ with the self-similarity excluded, the partner view as positive, mean over 2N.
pub fn nt_xent(a: &[f32], b: &[f32], rows: usize, d: usize, temperature: f64) -> Result<NtXent> {
    nt_xent_with(a, b, rows, d, temperature, DEFAULT_SCRATCH_BYTES)
}

/// [`nt_xent`] with a scratch budget in bytes: when the 2N × 2N float32 logits (16·N² bytes)
/// fit it they are held, the symmetric similarity is computed once per pair and the gradient
/// is one GEMM with P' + P'ᵀ; otherwise the tiled path runs in O(N·d) extra memory.
pub fn nt_xent_with(
    a: &[f32],
    b: &[f32],
    rows: usize,
    d: usize,
    temperature: f64,
    scratch_bytes: usize,
) -> Result<NtXent> {
    const F: &str = "ntXent";
    let p = nt_xent_prepare(a, b, rows, d, temperature)?;
    let r = if logits_may_overflow(&p, temperature) {
        info_nce_f64(F, &p, temperature, &mut (None, None))?
    } else if held::fits(p.b, p.n, scratch_bytes) {
        held::nt_xent(F, &p.fused())?
    } else {
        fused(F, &p.fused(), &mut (None, None))?
    };
    let (mut g, gk) = (r.gq.into_vec(), r.gk.into_vec());
    if r.finished {
        let grad_b = g.split_off(p.b / 2 * p.d);
        return Ok(NtXent {
            loss: r.loss,
            grad_a: g,
            grad_b,
            grad_temperature: r.grad_tau,
            stats: r.stats,
        });
    }
    if !gk.is_empty() {
        k::axpy(&mut g, 1.0, &gk);
    }
    Ok(p.finish_nt_xent_with(r.loss, g, (r.grad_tau, r.stats)))
}

/// muP = mean cos(a_i, b_i), muQ = mean cos(a_i, b_j) over i ≠ j, M = muP − muQ (n ≥ 2).
/// Zero rows have cosine 0 with everything.
pub fn mismatch_score(a: &[f32], b: &[f32], rows: usize, d: usize) -> Result<Mismatch> {
    mismatch_score_opts(a, b, rows, d, false)
}

/// [`mismatch_score`]; with `within_view`, muQ is the mean over every non-matching pair of the
/// 2n views: the n(n − 1) cross-view pairs (a_i, b_j), i ≠ j, and the within-view pairs
/// (a_i, a_j) and (b_i, b_j), i < j — 2n(n − 1) pairs in all.
pub fn mismatch_score_opts(
    a: &[f32],
    b: &[f32],
    rows: usize,
    d: usize,
    within_view: bool,
) -> Result<Mismatch> {
    const F: &str = "mismatchScore";
    check_matrix(F, "a", a, rows, d)?;
    check_matrix(F, "b", b, rows, d)?;
    if rows < 2 {
        bail!(Shape, "{F}: a has {rows} row(s) but at least 2 are needed");
    }
    check_finite(F, "a", a)?;
    check_finite(F, "b", b)?;
    let mut sa = vec![0f64; d];
    let mut sb = vec![0f64; d];
    let mut diag = 0f64;
    // Σ_i ‖â_i‖² + ‖b̂_i‖² (1 per non-zero row).
    let mut selfs = 0f64;
    for (ar, br) in a.chunks(d).zip(b.chunks(d)) {
        let na = row_norm(ar);
        let nb = row_norm(br);
        let ia = if na > 0.0 { 1.0 / na } else { 0.0 };
        let ib = if nb > 0.0 { 1.0 / nb } else { 0.0 };
        let mut dd = 0f64;
        for kk in 0..d {
            let x = ar[kk] as f64 * ia;
            let y = br[kk] as f64 * ib;
            sa[kk] += x;
            sb[kk] += y;
            dd += x * y;
            selfs += x * x + y * y;
        }
        diag += dd;
    }
    let all: f64 = sa.iter().zip(&sb).map(|(x, y)| x * y).sum();
    let n = rows as f64;
    let mu_p = diag / n;
    let mu_q = if within_view {
        // Σ_{i<j} â_i·â_j + b̂_i·b̂_j = (‖Σâ‖² + ‖Σb̂‖² − Σ‖â_i‖² − Σ‖b̂_i‖²)/2.
        let sq = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
        let within = (sq(&sa) + sq(&sb) - selfs) / 2.0;
        (all - diag + within) / (2.0 * n * (n - 1.0))
    } else {
        (all - diag) / (n * (n - 1.0))
    };
    Ok(Mismatch {
        mu_p,
        mu_q,
        m: mu_p - mu_q,
    })
}

/// softmax_j(x·y_j / τ) over the rows of ys (rows × d).
pub fn softmax_probabilities(
    x: &[f32],
    ys: &[f32],
    rows: usize,
    d: usize,
    temperature: f64,
) -> Result<Vec<f32>> {
    const F: &str = "softmaxProbabilities";
    check_matrix(F, "ys", ys, rows, d)?;
    if x.len() != d {
        bail!(
            Shape,
            "{F}: x has length {} but ys has {d} columns",
            x.len()
        );
    }
    check_temperature(F, temperature)?;
    check_finite(F, "x", x)?;
    check_finite(F, "ys", ys)?;
    let mut z = vec![0f32; rows];
    let scaled = {
        // Logits that could overflow float32 (a tiny τ): softmax in float64 on x·y scaled by
        // α = min(τ, 1), exp((u − max u)/α), as the reference does.
        // `dot_pair` redoes in float64 a dot that overflowed float32 or is small enough for
        // underflowed products to matter. With products out of the float32 normal range
        // (max|x|·max|y| below 2^-100, the rule of the fused losses) the softmax also runs in
        // float64.
        let max_abs = |v: &[f32]| v.iter().fold(0f64, |m, &t| m.max((t as f64).abs()));
        let prod = max_abs(x) * max_abs(ys);
        let tiny = prod > 0.0 && prod < 7.888609052210118e-31;
        let dots: Vec<f64> = ys
            .chunks(d)
            .map(|y| crate::similarity::dot_pair(x, y))
            .collect();
        let big = dots.iter().fold(0f64, |m, v| m.max(v.abs())) / temperature;
        if tiny || big.is_nan() || big >= 1e36 {
            let alpha = temperature.min(1.0);
            let u: Vec<f64> = dots
                .iter()
                .map(|&v| {
                    if temperature < 1.0 {
                        v
                    } else {
                        v / temperature
                    }
                })
                .collect();
            let m = u.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = u.iter().map(|&v| ((v - m) / alpha).exp()).collect();
            let sum: f64 = e.iter().sum();
            for (o, v) in z.iter_mut().zip(e) {
                *o = (v / sum) as f32;
            }
            true
        } else {
            for (o, v) in z.iter_mut().zip(dots) {
                *o = (v / temperature) as f32;
            }
            false
        }
    };
    if scaled {
        return Ok(z);
    }
    let m = k::max(&z);
    let s = k::exp_shift_sum(&mut z, m);
    k::scale(&mut z, (1.0 / s) as f32);
    Ok(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::randv;

    /// Dense float64 InfoNCE (no normalization) for comparison.
    fn dense(
        q: &[f32],
        b: usize,
        keys: &[f32],
        n: usize,
        d: usize,
        tau: f64,
        pos: &[u32],
    ) -> (f64, Vec<f64>, Vec<f64>) {
        let mut loss = 0.0;
        let mut gq = vec![0f64; b * d];
        let mut gk = vec![0f64; n * d];
        for i in 0..b {
            let z: Vec<f64> = (0..n)
                .map(|j| {
                    (0..d)
                        .map(|t| q[i * d + t] as f64 * keys[j * d + t] as f64)
                        .sum::<f64>()
                        / tau
                })
                .collect();
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
            let p = pos[i] as usize;
            loss += m + s.ln() - z[p];
            for j in 0..n {
                let g = ((z[j] - m).exp() / s - if j == p { 1.0 } else { 0.0 }) / (b as f64 * tau);
                for t in 0..d {
                    gq[i * d + t] += g * keys[j * d + t] as f64;
                    gk[j * d + t] += g * q[i * d + t] as f64;
                }
            }
        }
        (loss / b as f64, gq, gk)
    }

    #[test]
    fn fused_matches_dense_across_tiles() {
        for &(b, n, d) in &[
            (1usize, 1usize, 1usize),
            (3, 5, 7),
            (130, 300, 9),
            (257, 513, 4),
        ] {
            let q = randv(b * d, 1 + b as u64);
            let keys = randv(n * d, 2 + n as u64);
            let pos: Vec<u32> = (0..b).map(|i| ((i * 7) % n) as u32).collect();
            let o = InfoNceOpts {
                temperature: 0.5,
                positives: Some(&pos),
                log_q: None,
                normalize: false,
            };
            let r = info_nce(&q, b, &keys, n, d, &o).unwrap();
            let (l, gq, gk) = dense(&q, b, &keys, n, d, 0.5, &pos);
            assert!(
                (r.loss - l).abs() < 1e-4 * l.abs().max(1.0),
                "{b} {n} {d}: {} vs {l}",
                r.loss
            );
            for (x, y) in r.grad_q.iter().zip(&gq) {
                assert!((*x as f64 - y).abs() < 1e-5, "gq {x} vs {y}");
            }
            for (x, y) in r.grad_keys.iter().zip(&gk) {
                assert!((*x as f64 - y).abs() < 1e-5, "gk {x} vs {y}");
            }
        }
    }

    #[test]
    fn grad_temperature_matches_finite_differences_across_tiles() {
        let (b, n, d) = (130usize, 300usize, 5usize);
        let q = randv(b * d, 11);
        let keys = randv(n * d, 12);
        let pos: Vec<u32> = (0..b).map(|i| ((i * 13) % n) as u32).collect();
        let lq: Vec<f32> = (0..n).map(|j| -1.0 - (j % 7) as f32 * 0.3).collect();
        let ids: Vec<u32> = (0..n).map(|j| (j % 37) as u32).collect();
        for key_ids in [None, Some(&ids[..])] {
            let at = |t: f64| {
                let o = InfoNceOpts {
                    temperature: t,
                    positives: Some(&pos),
                    log_q: Some(&lq),
                    normalize: true,
                };
                info_nce_ids(&q, b, &keys, n, d, &o, key_ids).unwrap()
            };
            let r = at(0.4);
            let fd = (at(0.4 + 1e-3).loss - at(0.4 - 1e-3).loss) / 2e-3;
            assert!(
                (fd - r.grad_temperature).abs() < 1e-3 * fd.abs().max(1.0),
                "{key_ids:?}: fd {fd} vs {}",
                r.grad_temperature
            );
            let s = r.stats;
            assert!(s.mean_positive_probability > 0.0 && s.mean_positive_probability < 1.0);
            assert!(s.effective_negatives >= 1.0 && s.effective_negatives <= n as f64);
        }
        let x = nt_xent(&q, &keys[..b * d], b, d, 0.3).unwrap();
        let fd = (nt_xent(&q, &keys[..b * d], b, d, 0.301).unwrap().loss
            - nt_xent(&q, &keys[..b * d], b, d, 0.299).unwrap().loss)
            / 2e-3;
        assert!((fd - x.grad_temperature).abs() < 1e-3 * fd.abs().max(1.0));
    }

    fn close(a: f64, b: f64, tol: f64, what: &str) {
        assert!(
            (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0),
            "{what}: {a} vs {b}"
        );
    }

    fn close_v(a: &[f32], b: &[f32], tol: f64, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = a
            .iter()
            .fold(0f64, |m, v| m.max((*v as f64).abs()))
            .max(1e-30);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                ((*x - *y) as f64).abs() <= tol * scale,
                "{what}[{i}]: {x} vs {y} (scale {scale})"
            );
        }
    }

    fn close_stats(a: &NceStats, b: &NceStats, tol: f64, what: &str) {
        close(a.mean_entropy, b.mean_entropy, tol, what);
        close(
            a.mean_positive_probability,
            b.mean_positive_probability,
            tol,
            what,
        );
        close(
            a.mean_max_negative_probability,
            b.mean_max_negative_probability,
            tol,
            what,
        );
        close(a.effective_negatives, b.effective_negatives, tol, what);
    }

    /// A result of InfoNCE or NT-Xent as (loss, the two gradients, ∂loss/∂τ, diagnostics).
    trait Parts {
        fn parts(&self) -> (f64, &[f32], &[f32], f64, NceStats);
    }

    impl Parts for InfoNce {
        fn parts(&self) -> (f64, &[f32], &[f32], f64, NceStats) {
            let (l, t) = (self.loss, self.grad_temperature);
            (l, &self.grad_q, &self.grad_keys, t, self.stats)
        }
    }

    impl Parts for NtXent {
        fn parts(&self) -> (f64, &[f32], &[f32], f64, NceStats) {
            let (l, t) = (self.loss, self.grad_temperature);
            (l, &self.grad_a, &self.grad_b, t, self.stats)
        }
    }

    /// Two results are the same to the bit.
    fn assert_same_bits<R: Parts>(a: &R, b: &R, what: &str) {
        let ((la, ga, ha, ta, sa), (lb, gb, hb, tb, sb)) = (a.parts(), b.parts());
        assert_eq!(la.to_bits(), lb.to_bits(), "{what}");
        assert_eq!(ga, gb, "{what}");
        assert_eq!(ha, hb, "{what}");
        assert_eq!(ta.to_bits(), tb.to_bits(), "{what}");
        assert_eq!(sa, sb, "{what}");
    }

    /// A result agrees with the float64 one within float32 rounding.
    fn assert_close<R: Parts>(r: &R, want: &R, what: &str) {
        let ((l, g, h, t, st), (lw, gw, hw, tw, sw)) = (r.parts(), want.parts());
        close(l, lw, 1e-5, what);
        close_v(g, gw, 2e-5, what);
        close_v(h, hw, 2e-5, what);
        close(t, tw, 1e-4, what);
        close_stats(&st, &sw, 1e-4, what);
    }

    #[test]
    fn held_and_tiled_paths_agree_with_float64_and_across_threads() {
        // Shapes across the tiles of both paths, every option.
        // The largest takes larger row blocks on one thread than on three.
        for &(b, n, d) in &[
            (1usize, 2usize, 3usize),
            (37, 300, 9),
            (300, 520, 17),
            (1100, 700, 6),
        ] {
            let q = randv(b * d, 31 + b as u64);
            let keys = randv(n * d, 32 + n as u64);
            let (qo, ko) = (Operand::new(&q, b), Operand::new(&keys, n));
            let pos: Vec<u32> = (0..b).map(|i| ((i * 11 + 3) % n) as u32).collect();
            let lq: Vec<f32> = (0..n).map(|j| -2.0 + (j % 5) as f32 * 0.25).collect();
            let ids: Vec<u32> = (0..n).map(|j| (j % 29) as u32).collect();
            for (with_pos, with_lq, with_ids, normalize) in [
                (false, false, false, true),
                (true, true, false, false),
                (true, false, true, true),
                (true, true, true, false),
            ] {
                if !with_pos && n < b {
                    continue;
                }
                let o = InfoNceOpts {
                    temperature: 0.2,
                    positives: with_pos.then_some(&pos[..]),
                    log_q: with_lq.then_some(&lq[..]),
                    normalize,
                };
                let key_ids = with_ids.then_some(&ids[..]);
                let what = format!("{b}x{n}x{d} {with_pos} {with_lq} {with_ids} {normalize}");
                let pr = info_nce_prepare_ids(qo, ko, d, &o, key_ids).unwrap();
                let want = info_nce_f64("infoNCE", &pr, 0.2, &mut (None, None)).unwrap();
                // The float64 path takes its gradients through the normalization itself.
                assert_eq!(want.finished, normalize);
                let want = InfoNce {
                    loss: want.loss,
                    grad_q: want.gq.into_vec(),
                    grad_keys: want.gk.into_vec(),
                    grad_temperature: want.grad_tau,
                    stats: want.stats,
                };
                let want = if normalize {
                    want
                } else {
                    pr.finish_info_nce_with(
                        want.loss,
                        want.grad_q,
                        want.grad_keys,
                        (want.grad_temperature, want.stats),
                    )
                };
                let mut per_path = Vec::new();
                for budget in [0usize, DEFAULT_SCRATCH_BYTES] {
                    pool::set_threads(1).unwrap();
                    let r1 = info_nce_with(qo, ko, d, &o, key_ids, budget).unwrap();
                    pool::set_threads(3).unwrap();
                    let r3 = info_nce_with(qo, ko, d, &o, key_ids, budget).unwrap();
                    let w = format!("{what} budget {budget}");
                    assert_same_bits(&r1, &r3, &w);
                    assert_close(&r1, &want, &w);
                    per_path.push(r1);
                }
                close(per_path[0].loss, per_path[1].loss, 1e-5, &what);
                close_v(&per_path[0].grad_q, &per_path[1].grad_q, 2e-5, &what);
                close_v(&per_path[0].grad_keys, &per_path[1].grad_keys, 2e-5, &what);
            }
        }
        pool::set_threads(1).unwrap();
    }

    #[test]
    fn nt_xent_paths_agree_with_float64_and_across_threads() {
        for &(rows, d) in &[(1usize, 3usize), (5, 4), (150, 11), (300, 7)] {
            let a = randv(rows * d, 41 + rows as u64);
            let bb = randv(rows * d, 42 + rows as u64);
            let pr = nt_xent_prepare(&a, &bb, rows, d, 0.15).unwrap();
            let w = info_nce_f64("ntXent", &pr, 0.15, &mut (None, None)).unwrap();
            // Finished in float64: both views' gradient in gq, through the normalization.
            assert!(w.finished && w.gk.iter().all(|&v| v == 0.0));
            let mut g = w.gq.to_vec();
            let grad_b = g.split_off(rows * d);
            let want = NtXent {
                loss: w.loss,
                grad_a: g,
                grad_b,
                grad_temperature: w.grad_tau,
                stats: w.stats,
            };
            for budget in [0usize, DEFAULT_SCRATCH_BYTES] {
                pool::set_threads(1).unwrap();
                let r1 = nt_xent_with(&a, &bb, rows, d, 0.15, budget).unwrap();
                pool::set_threads(3).unwrap();
                let r3 = nt_xent_with(&a, &bb, rows, d, 0.15, budget).unwrap();
                let what = format!("{rows}x{d} budget {budget}");
                assert_same_bits(&r1, &r3, &what);
                assert_close(&r1, &want, &what);
            }
        }
        pool::set_threads(1).unwrap();
    }

    #[test]
    fn budget_picks_the_path() {
        assert!(held::fits(4096, 4096, DEFAULT_SCRATCH_BYTES));
        assert!(held::fits(8192, 8192, DEFAULT_SCRATCH_BYTES));
        assert!(!held::fits(8192, 8193, DEFAULT_SCRATCH_BYTES));
        assert!(!held::fits(65536, 65536, DEFAULT_SCRATCH_BYTES));
        assert!(!held::fits(1, 1, 0));
        assert!(!held::fits(usize::MAX, 2, usize::MAX));
    }

    #[test]
    fn negative_stats_survive_a_dominant_positive() {
        // Negatives 70–90 nats below the positive would underflow a float32 shift shared with
        // the positive; with their own shift their statistics stay exact.
        let q = [1f32, 0.0, 0.0, 0.0];
        let keys = [
            1f32, 0.0, 0.0, 0.0, 0.1, 0.99, 0.0, 0.0, 0.2, 0.0, 0.97, 0.0, 0.3, 0.0, 0.0, 0.95,
        ];
        let o = InfoNceOpts {
            temperature: 0.01,
            positives: None,
            log_q: None,
            normalize: false,
        };
        let z: Vec<f64> = [10.0f64, 20.0, 30.0]
            .iter()
            .map(|v| (*v as f32 / 100.0) as f64 * 100.0)
            .collect();
        let m = z[2];
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let l: f64 = e.iter().sum();
        let h: f64 = -e.iter().map(|v| v / l * (v / l).ln()).sum::<f64>();
        for budget in [0, DEFAULT_SCRATCH_BYTES] {
            let r = info_nce_with(
                Operand::new(&q, 1),
                Operand::new(&keys, 4),
                4,
                &o,
                None,
                budget,
            )
            .unwrap();
            assert!(
                (r.stats.effective_negatives - h.exp()).abs() < 1e-3 * h.exp(),
                "{budget}: {} vs {}",
                r.stats.effective_negatives,
                h.exp()
            );
            assert!(r.stats.mean_max_negative_probability > 0.0);
        }
    }

    #[test]
    fn thread_count_does_not_change_bits() {
        let (b, n, d) = (300, 700, 33);
        let q = randv(b * d, 5);
        let keys = randv(n * d, 6);
        let o = InfoNceOpts {
            temperature: 0.1,
            positives: None,
            log_q: None,
            normalize: true,
        };
        pool::set_threads(1).unwrap();
        let r1 = info_nce(&q, b, &keys, n, d, &o).unwrap();
        let x1 = nt_xent(&q, &keys[..b * d], b, d, 0.2).unwrap();
        pool::set_threads(3).unwrap();
        let r2 = info_nce(&q, b, &keys, n, d, &o).unwrap();
        let x2 = nt_xent(&q, &keys[..b * d], b, d, 0.2).unwrap();
        assert_same_bits(&r1, &r2, "infoNCE");
        assert_same_bits(&x1, &x2, "ntXent");
    }

    #[test]
    fn subnormal_temperature_gives_a_finite_loss() {
        // Each query's positive is its own (unit) key, the strict best match: the loss and the
        // gradients are exactly 0 however small τ is; 1/τ overflows float32 and float64.
        let q = [1.0f32, 0.0, 0.0, 1.0, 0.6, 0.8];
        for tau in [1e-320, 1e-300, 1e-40, 1e-20] {
            let o = InfoNceOpts {
                temperature: tau,
                positives: None,
                log_q: None,
                normalize: false,
            };
            let r = info_nce(&q, 3, &q, 3, 2, &o).unwrap();
            assert_eq!(r.loss, 0.0, "tau={tau}");
            assert!(
                r.grad_q.iter().chain(&r.grad_keys).all(|&g| g == 0.0),
                "tau={tau}"
            );
        }
        // NT-Xent and softmaxProbabilities take the same float64 path.
        let a = [1.0f32, 0.0, 0.0, 1.0];
        for tau in [1e-320, 1e-40] {
            let r = nt_xent(&a, &a, 2, 2, tau).unwrap();
            assert_eq!(r.loss, 0.0, "tau={tau}");
            assert!(r.grad_a.iter().chain(&r.grad_b).all(|&g| g == 0.0));
            let p = softmax_probabilities(&[1.0, 0.0], &a, 2, 2, tau).unwrap();
            assert_eq!(p, vec![1.0, 0.0]);
        }
        // The float64 path equals the fused one where both apply.
        let q = [0.3f32, -0.2, 0.5, 0.1, -0.4, 0.25];
        let o = InfoNceOpts {
            temperature: 0.5,
            positives: None,
            log_q: None,
            normalize: false,
        };
        let p = info_nce_prepare(&q, 3, &q, 3, 2, &o).unwrap();
        let r1 = fused("infoNCE", &p.fused(), &mut (None, None)).unwrap();
        let r2 = info_nce_f64("infoNCE", &p, 0.5, &mut (None, None)).unwrap();
        assert!((r1.loss - r2.loss).abs() < 1e-6);
        for (a, b) in r1
            .gq
            .iter()
            .chain(r1.gk.iter())
            .zip(r2.gq.iter().chain(r2.gk.iter()))
        {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert!((r1.grad_tau - r2.grad_tau).abs() < 1e-5 * r1.grad_tau.abs().max(1.0));
        let (s1, s2) = (r1.stats, r2.stats);
        for (a, b) in [
            (s1.mean_entropy, s2.mean_entropy),
            (s1.mean_positive_probability, s2.mean_positive_probability),
            (
                s1.mean_max_negative_probability,
                s2.mean_max_negative_probability,
            ),
            (s1.effective_negatives, s2.effective_negatives),
        ] {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    /// The tiled path's entropy and effective negatives equal the held path's at any τ and
    /// precision, also where the logits are large (τ = 1e-8); with one negative the effective
    /// negatives are exactly 1 and the entropy is never negative.
    #[test]
    fn tiled_diagnostics_match_the_held_path() {
        use crate::precision::{with_precision, Precision};
        let q = [-0.4997482f32, -0.4374833];
        let keys = [-0.4934532f32, 0.1368891, -0.4967295, 0.0305031];
        for prec in [Precision::F32, Precision::Bf16] {
            for tau in [1.0, 1e-3, 1e-6, 1e-8] {
                let o = InfoNceOpts {
                    temperature: tau,
                    positives: None,
                    log_q: None,
                    normalize: false,
                };
                let run = |budget: usize| {
                    with_precision(prec, || {
                        info_nce_with(
                            Operand::new(&q, 1),
                            Operand::new(&keys, 2),
                            2,
                            &o,
                            None,
                            budget,
                        )
                    })
                    .unwrap()
                    .stats
                };
                let (st, held) = (run(0), run(DEFAULT_SCRATCH_BYTES));
                assert!(
                    st.mean_entropy >= 0.0 && (st.mean_entropy - held.mean_entropy).abs() < 1e-7,
                    "{prec:?} τ {tau}: H {} vs held {}",
                    st.mean_entropy,
                    held.mean_entropy
                );
                assert!(
                    (st.effective_negatives - 1.0).abs() < 1e-9,
                    "{prec:?} τ {tau}: effective negatives {}",
                    st.effective_negatives
                );
            }
        }
        // Many negatives over several key tiles, with logQ: tiled against held.
        let (b, n, d) = (7, 3 * BK + 17, 12);
        let q = randv(b * d, 71);
        let keys = randv(n * d, 72);
        let lq: Vec<f32> = (0..n).map(|j| -2.0 - (j % 13) as f32 * 0.3).collect();
        let pos: Vec<u32> = (0..b as u32).map(|i| i * 41).collect();
        for prec in [Precision::F32, Precision::Bf16] {
            for tau in [0.5, 0.05, 1e-6] {
                let o = InfoNceOpts {
                    temperature: tau,
                    positives: Some(&pos),
                    log_q: Some(&lq),
                    normalize: true,
                };
                let run = |budget: usize| {
                    with_precision(prec, || {
                        info_nce_with(
                            Operand::new(&q, b),
                            Operand::new(&keys, n),
                            d,
                            &o,
                            None,
                            budget,
                        )
                    })
                    .unwrap()
                    .stats
                };
                let (t, h) = (run(0), run(DEFAULT_SCRATCH_BYTES));
                for (what, a, c) in [
                    ("entropy", t.mean_entropy, h.mean_entropy),
                    (
                        "effective negatives",
                        t.effective_negatives,
                        h.effective_negatives,
                    ),
                    (
                        "p(pos)",
                        t.mean_positive_probability,
                        h.mean_positive_probability,
                    ),
                ] {
                    assert!(
                        (a - c).abs() <= 1e-4 * c.abs().max(1.0),
                        "{prec:?} τ {tau} {what}: tiled {a} vs held {c}"
                    );
                }
            }
        }
    }

    #[test]
    fn low_temperature_stays_finite() {
        let (b, d) = (64, 16);
        let mut q = randv(b * d, 9);
        let keys = q.clone();
        q[0] += 0.01;
        let o = InfoNceOpts {
            temperature: 0.01,
            positives: None,
            log_q: None,
            normalize: true,
        };
        let r = info_nce(&q, b, &keys, b, d, &o).unwrap();
        assert!(r.loss.is_finite());
        assert!(r.grad_q.iter().chain(&r.grad_keys).all(|v| v.is_finite()));
        let x = nt_xent(&q, &keys, b, d, 0.01).unwrap();
        assert!(x.loss.is_finite() && x.grad_a.iter().chain(&x.grad_b).all(|v| v.is_finite()));
    }

    #[test]
    fn errors_have_codes() {
        use crate::Code;
        let q = vec![1f32, 0.0, 0.0, 0.0];
        let o = InfoNceOpts {
            temperature: 1.0,
            positives: None,
            log_q: None,
            normalize: true,
        };
        assert_eq!(info_nce(&q, 2, &q, 2, 2, &o).unwrap_err().code, Code::Arg);
        let o = InfoNceOpts {
            temperature: 0.0,
            positives: None,
            log_q: None,
            normalize: false,
        };
        assert_eq!(info_nce(&q, 2, &q, 2, 2, &o).unwrap_err().code, Code::Arg);
        let bad = vec![f32::NAN, 1.0, 1.0, 1.0];
        let o = InfoNceOpts {
            temperature: 1.0,
            positives: None,
            log_q: None,
            normalize: false,
        };
        assert_eq!(
            info_nce(&bad, 2, &q, 2, 2, &o).unwrap_err().code,
            Code::NonFinite
        );
        assert_eq!(
            info_nce(&q, 2, &q[..2], 1, 2, &o).unwrap_err().code,
            Code::Shape
        );
        let pos = [0u32, 2];
        let o = InfoNceOpts {
            temperature: 1.0,
            positives: Some(&pos),
            log_q: None,
            normalize: false,
        };
        assert_eq!(info_nce(&q, 2, &q, 2, 2, &o).unwrap_err().code, Code::Arg);
        assert_eq!(
            mismatch_score(&q[..2], &q[..2], 1, 2).unwrap_err().code,
            Code::Shape
        );
    }

    #[test]
    fn raw_prepare_refuses_what_the_normalizing_prepare_refuses() {
        // The backends that normalize on their own device get the same errors, in the same
        // order, as the CPU path: zero rows of q, then of keys, then non-finite values.
        let d = 3;
        let x = [1f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let zero = [1f32, 2.0, 3.0, 0.0, 0.0, 0.0];
        let nan = [f32::NAN, 2.0, 3.0, 4.0, 5.0, 6.0];
        let o = InfoNceOpts {
            temperature: 0.1,
            positives: None,
            log_q: None,
            normalize: true,
        };
        for (q, k) in [
            (&zero, &nan),
            (&x, &zero),
            (&nan, &zero),
            (&nan, &x),
            (&x, &x),
        ] {
            let want = info_nce_prepare(q, 2, k, 2, d, &o).map(|p| p.normalize_pending);
            let got = info_nce_prepare_raw(q, 2, k, 2, d, &o).map(|p| p.normalize_pending);
            match (want, got) {
                (Err(a), Err(b)) => assert_eq!((a.code, a.msg), (b.code, b.msg)),
                (Ok(a), Ok(b)) => assert!(!a && b),
                (a, b) => panic!("{a:?} vs {b:?}"),
            }
        }
        // Large inputs are scanned in parallel; the first zero row is still the one named.
        let rows = 5000;
        let mut big = vec![1f32; rows * 64];
        for r in [4321, 1234, 4999] {
            big[r * 64..(r + 1) * 64].fill(0.0);
        }
        assert_eq!(first_zero_row(&big, rows, 64), Some(1234));
        assert_eq!(first_zero_row(&[], 3, 0), Some(0));
        assert_eq!(first_zero_row(&[], 0, 0), None);
    }
}
