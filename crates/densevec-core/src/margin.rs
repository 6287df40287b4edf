//! Chapter 4: margin losses for classification (normalized softmax, CosFace, ArcFace), and the
//! classification-side regularizers of chapter 6: label-smoothed cross-entropy, the squared-norm
//! penalty and the L1 penalty.
//!
//! marginSoftmax returns the N × C logits, so it holds them; the N × C gradient of the logits is
//! held too when it fits the scratch budget, and formed block by block from the logits
//! otherwise (the same values). Both GEMMs of the backward pass are cut into output blocks
//! (gradX by rows, gradW by classes) without splitting a sum, so results are bit-identical for
//! every thread count.

use crate::alloc;
use crate::bail;
use crate::contrastive::DEFAULT_SCRATCH_BYTES;
use crate::contrastive::{back_norm, normalized_rows, Grad};
use crate::error::{check_finite, check_matrix, check_rows, js_num, Result};
use crate::lossgemm::task_rows;
use crate::pool;
use crate::precision::GemmRef;
use crate::similarity::{dot_norms_f64, similarity_matrix_into, Metric};
use crate::view::Operand;
use densevec_kernels as k;
use rayon::prelude::*;

/// Rows per task of the row-wise passes (the softmax, the preparation, the target terms).
const ROWS: usize = 64;
/// The way out of a refused allocation proportional to the batch.
pub const SPLIT: &str = "split the batch";
/// The public name of marginSoftmax in its errors.
const MARGIN: &str = "marginSoftmax";
/// What the N × C logits are called in a refused allocation.
pub const LOGITS: &str = "the N × C logits";
/// Classes per task of the target's share of gradW.
const CLS: usize = 256;
/// Rows of N per slab of the gradient in gradW on the bounded-scratch path.
const SLAB: usize = 1024;
/// Classes per chunk of the gradient's blocks in gradX (even, and not a power of two: the
/// GEMM's packing reads MR rows of a chunk at once).
const CHUNK: usize = 1000;

/// Elements per piece of the penalties.
const PIECE: usize = 1 << 16;

/// Scales whose logits the float32 pass takes (see [`scale_is_wide`]).
const SCALE_LO: f64 = 8.673617379884035e-19; // 2^-60
const SCALE_HI: f64 = 1.329227995784916e36; // 2^120

/// Whether marginSoftmax's scale s is outside [2^-60, 2^120], where float32 logits s·cos θ
/// would overflow (s near or past the float32 range) or lose ∂loss/∂s to underflow (s tiny).
/// Such calls form the softmax and the logit gradient in float64 from the cosines (see
/// [`margin_softmax_with`]), and stay on the CPU.
pub fn scale_is_wide(s: f64) -> bool {
    !(SCALE_LO..=SCALE_HI).contains(&s)
}

/// The e with s/N·2^-e in [1/2, 1) (up to rounding), from log2 s − log2 N: s/N itself may
/// underflow to 0 for a subnormal s.
fn grad_exponent(s: f64, n: usize) -> i32 {
    (s.log2() - (n as f64).log2()).floor() as i32 + 1
}

/// v·2^e in float64 for any e (a step at a time, so neither factor overflows on its own; e
/// beyond ±1,200 saturates to 0 or ±∞ like any larger one, so it is clamped there).
fn pow2_mul(mut v: f64, e: i32) -> f64 {
    let mut e = e.clamp(-1200, 1200);
    while e > 1000 {
        v *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        v *= 2f64.powi(-1000);
        e += 1000;
    }
    v * 2f64.powi(e)
}

/// Lower clamp of sin θ_y in the arcface derivative (see [`target_logit`]).
pub const ARCFACE_SIN_EPS: f64 = 1e-6;

/// Target-logit rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarginKind {
    Normalized,
    CosFace,
    ArcFace,
}

impl MarginKind {
    /// 0 normalized, 1 cosface, 2 arcface (the binding's wire code).
    pub fn from_code(func: &str, code: u32) -> Result<MarginKind> {
        match code {
            0 => Ok(MarginKind::Normalized),
            1 => Ok(MarginKind::CosFace),
            2 => Ok(MarginKind::ArcFace),
            _ => bail!(Arg, "{func}: unknown kind code {code}"),
        }
    }
}

/// Options of [`margin_softmax`] (defaults are applied by the caller).
#[derive(Clone, Copy, Debug)]
pub struct MarginOpts {
    pub kind: MarginKind,
    pub scale: f64,
    pub margin: f64,
    pub label_smoothing: f64,
}

/// Result of [`margin_softmax`].
#[derive(Clone, Debug)]
pub struct MarginSoftmax {
    pub loss: f64,
    pub grad_x: Vec<f32>,
    pub grad_w: Vec<f32>,
    pub logits: Vec<f32>,
    /// ∂loss/∂s.
    pub grad_scale: f64,
    /// Per row, min over j ≠ y of θ_j − θ_y in radians (+∞ when C = 1).
    pub angular_margins: Vec<f32>,
}

/// `{ loss, grad }` of the cross-entropy and the penalties.
#[derive(Clone, Debug)]
pub struct LossGrad {
    pub loss: f64,
    pub grad: Vec<f32>,
}

/// Target logit z = s·f(cos θ) and dz/d cos θ.
///
/// ArcFace: for cos θ > cos(π − m), z = s·cos(θ + m) = s·(cos θ cos m − sin θ sin m) with
/// sin θ = √(max(1 − cos²θ, 0)); its derivative cos m + sin m·cos θ / sin θ is evaluated with
/// sin θ clamped below at [`ARCFACE_SIN_EPS`], so it stays finite at θ = 0 (it multiplies the
/// tangent of length sin θ, so the gradient goes to 0 there; see [`MarginPrepared`]). Beyond
/// π − m the continuation s·(cos θ − m·sin m) is used (derivative s).
pub fn target_logit(o: &MarginOpts, c: f64) -> (f64, f64) {
    let (s, m) = (o.scale, o.margin);
    match o.kind {
        MarginKind::Normalized => (s * c, s),
        MarginKind::CosFace => (s * (c - m), s),
        MarginKind::ArcFace => {
            if c > (std::f64::consts::PI - m).cos() {
                let sin = (1.0 - c * c).max(0.0).sqrt();
                (
                    s * (c * m.cos() - sin * m.sin()),
                    s * (m.cos() + m.sin() * c / sin.max(ARCFACE_SIN_EPS)),
                )
            } else {
                (s * (c - m * m.sin()), s)
            }
        }
    }
}

/// Checks the margin of `kind`: in [0, 1] for cosface, in [0, π/2) radians for arcface.
fn check_margin(func: &str, kind: MarginKind, margin: f64) -> Result<()> {
    match kind {
        MarginKind::CosFace if !(0.0..=1.0).contains(&margin) => {
            bail!(
                Arg,
                "{func}: margin must be in [0, 1] for cosface, got {}",
                js_num(margin)
            )
        }
        MarginKind::ArcFace if !(0.0..std::f64::consts::FRAC_PI_2).contains(&margin) => {
            bail!(
                Arg,
                "{func}: margin must be in [0, π/2) radians for arcface, got {}",
                js_num(margin)
            )
        }
        _ => Ok(()),
    }
}

fn check_epsilon(func: &str, name: &str, e: f64) -> Result<()> {
    if !(0.0..1.0).contains(&e) {
        bail!(Arg, "{func}: {name} must be in [0, 1), got {}", js_num(e));
    }
    Ok(())
}

fn check_labels(func: &str, labels: &[u32], n: usize, what: &str) -> Result<()> {
    if let Some(i) = labels.iter().position(|&l| l as usize >= n) {
        bail!(
            Arg,
            "{func}: labels[{i}] = {} is out of range [0, {n}) ({what})",
            labels[i]
        );
    }
    Ok(())
}

/// Softmax cross-entropy with label smoothing of one row, in place: `row` holds the logits on
/// entry and p − ε/C on exit (the caller subtracts 1 − ε at the label); returns the row's loss.
fn ce_row(row: &mut [f32], y: usize, eps: f64) -> (f64, f64) {
    let c = row.len();
    let sum: f64 = row.iter().map(|&v| v as f64).sum();
    let zy = row[y] as f64;
    let m = k::max(row);
    let se = k::exp_shift_sum(row, m);
    k::scale(row, (1.0 / se) as f32);
    let lse = m as f64 + se.ln();
    // 1 − p_y as the sum of the other probabilities: p_y − 1 in float32 cancels to 0 when the
    // label's probability rounds to 1.
    let others: f64 = row
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != y)
        .map(|(_, &p)| p as f64)
        .sum();
    if eps != 0.0 {
        let sub = (eps / c as f64) as f32;
        for v in row.iter_mut() {
            *v -= sub;
        }
    }
    (lse - (1.0 - eps) * zy - eps / c as f64 * sum, others)
}

/// One row-block task of the preparation: (z_y, dz_y/d cos θ_y), cos θ_y and tangent rows.
type PrepTask<'a> = ((&'a mut [(f64, f64)], &'a mut [f64]), &'a mut [f32]);

/// min over j ≠ y of θ_j − θ_y = acos(max_{j≠y} cos θ_j) − acos(cos θ_y) from a row of cosines
/// (+∞ for a single class).
fn angular_margin(cos: &[f32], y: usize) -> f32 {
    let mut mx = f32::NEG_INFINITY;
    for (j, &v) in cos.iter().enumerate() {
        if j != y && v > mx {
            mx = v;
        }
    }
    if mx == f32::NEG_INFINITY {
        return f32::INFINITY;
    }
    let a = |v: f32| (v as f64).clamp(-1.0, 1.0).acos();
    (a(mx) - a(cos[y])) as f32
}

/// ∂loss/∂s and the angular margins from the logits a backend returned (a host pass over the
/// N × C logits, O(N·(C + d)), in parallel over blocks of rows; each row's term is summed in row
/// order, so the result does not depend on the thread count): cos θ_j = z_j/s off the label,
/// cos θ_y from the unit rows.
pub fn margin_extras(
    pr: &MarginPrepared,
    logits: &[f32],
    n: usize,
    c: usize,
    d: usize,
    labels: &[u32],
    o: &MarginOpts,
) -> (f64, Vec<f32>) {
    let eps = o.label_smoothing;
    let mut ang = vec![0f32; n];
    let mut terms = vec![0f64; n];
    let work = |(blk, (ang, terms)): (usize, (&mut [f32], &mut [f64]))| {
        let mut row = vec![0f64; c];
        let mut cosr = vec![0f32; c];
        for (r, (a, t)) in ang.iter_mut().zip(terms.iter_mut()).enumerate() {
            let i = blk * ROWS + r;
            let y = labels[i] as usize;
            let z = &logits[i * c..(i + 1) * c];
            for (cv, &zv) in cosr.iter_mut().zip(z) {
                *cv = (zv as f64 / o.scale) as f32;
            }
            cosr[y] = k::dot(&pr.xh[i * d..(i + 1) * d], &pr.wh[y * d..(y + 1) * d]);
            *a = angular_margin(&cosr, y);
            let m = z.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
            let mut se = 0f64;
            for (r, &zv) in row.iter_mut().zip(z) {
                *r = (zv as f64 - m).exp();
                se += *r;
            }
            let mut acc = 0f64;
            for (j, (&r, &zv)) in row.iter().zip(z).enumerate() {
                let target = eps / c as f64 + if j == y { 1.0 - eps } else { 0.0 };
                acc += (r / se - target) * zv as f64;
            }
            *t = acc;
        }
    };
    pool::run(|| {
        ang.par_chunks_mut(ROWS)
            .zip(terms.par_chunks_mut(ROWS))
            .enumerate()
            .for_each(work)
    });
    let gs = terms.iter().sum::<f64>();
    (gs / n as f64 / o.scale, ang)
}

/// A validated margin-softmax problem: unit rows, their norms, and each row's target logit
/// z_y, dz_y/d cos θ_y, cos θ_y and tangent ŵ_y − cos θ_y·x̂ (all from float64 norms and dot
/// products of the raw rows, so they are accurate near θ_y = 0). Shared by the CPU path and
/// the GPU backend.
///
/// The target column's share of the gradient, ∂loss/∂z_y · dz_y/d cos θ_y · ∂cos θ_y/∂x, is
/// not formed through the float32 GEMMs: there dz_y/d cos θ_y (up to s·sin m / 1e-6 for
/// ArcFace near θ_y = 0) would multiply the rounding of the unit rows. [`Self::finish`] adds it
/// in float64 from the tangent, whose length is sin θ_y, so the product stays bounded and
/// goes smoothly to 0 with θ_y. The GEMMs take 0 in the target column.
#[doc(hidden)]
pub struct MarginPrepared {
    pub xh: Vec<f32>,
    pub xn: Vec<f64>,
    pub wh: Vec<f32>,
    pub wn: Vec<f64>,
    /// (z_y, dz_y/d cos θ_y) per row.
    pub target: Vec<(f64, f64)>,
    /// cos θ_y per row.
    cos_y: Vec<f64>,
    /// ŵ_y − cos θ_y·x̂ per row (n × d, orthogonal to x̂ in float64 before rounding).
    tangent: Vec<f32>,
}

impl MarginPrepared {
    /// The result from `unit`, the result with respect to the unit rows (the target column
    /// left out of the gradients; ∂loss/∂s and the angular margins as [`margin_extras`] gives
    /// them), and ∂loss/∂z_y per row (`target_grad`, mean included).
    pub fn finish(
        &self,
        unit: MarginSoftmax,
        d: usize,
        target_grad: &[f64],
        labels: &[u32],
    ) -> MarginSoftmax {
        let (mut gx, mut gw) = (unit.grad_x, unit.grad_w);
        self.finish_grads((&mut gx, &mut gw), d, target_grad, labels);
        MarginSoftmax {
            grad_x: gx,
            grad_w: gw,
            ..unit
        }
    }

    /// gradX̂ and gradŴ taken back through the normalization of the rows, plus the target's
    /// margin term: the gradients with respect to x and the prototypes, in place.
    fn finish_grads(
        &self,
        (gx, gw): (&mut [f32], &mut [f32]),
        d: usize,
        target_grad: &[f64],
        labels: &[u32],
    ) {
        self.finish_grads_scaled((gx, gw), d, target_grad, labels, 0);
    }

    /// [`Self::finish_grads`] for gradients formed from 2^-e·G (the wide-scale path): after
    /// the normalization's Jacobian they are multiplied by 2^e in float64 and the target's term
    /// is added before the one rounding to float32 (so a sum within the float32 range is not
    /// lost to a term beyond it).
    fn finish_grads_scaled(
        &self,
        (gx, gw): (&mut [f32], &mut [f32]),
        d: usize,
        target_grad: &[f64],
        labels: &[u32],
        e: i32,
    ) {
        back_norm(gx, &self.xh, &self.xn, d);
        back_norm(gw, &self.wh, &self.wn, d);
        self.add_target(gx, gw, d, target_grad, labels, e);
    }

    /// ∂loss/∂z_y per row (mean included) from the per-row losses and the logits, for a caller
    /// that did not keep the softmax (the GPU backend): lse = loss_i + (1 − ε)·z_y + ε·mean(z),
    /// p_y = e^{z_y − lse}.
    pub fn target_grads(
        &self,
        row_loss: &[f64],
        logits: &[f32],
        labels: &[u32],
        eps: f64,
    ) -> Vec<f64> {
        let n = row_loss.len();
        let c = logits.len().checked_div(n).unwrap_or(0);
        let inv_n = 1.0 / n as f64;
        let mut out = vec![0f64; n];
        let work = |(blk, o): (usize, &mut [f64])| {
            for (r, e) in o.iter_mut().enumerate() {
                let i = blk * ROWS + r;
                let row = &logits[i * c..(i + 1) * c];
                let zy = row[labels[i] as usize] as f64;
                let mean = if eps != 0.0 {
                    row.iter().map(|&v| v as f64).sum::<f64>() / c as f64
                } else {
                    0.0
                };
                let lse = row_loss[i] + (1.0 - eps) * zy + eps * mean;
                let py = (zy - lse).exp() - eps / c as f64;
                *e = (py - (1.0 - eps)) * inv_n;
            }
        };
        pool::run(|| out.par_chunks_mut(ROWS).enumerate().for_each(work));
        out
    }

    /// Adds the target column's share of the gradients (see the type's documentation):
    /// gradX_i += g_i·t_i/‖x_i‖ and gradW_y += Σ_{i: y_i = y} g_i·((1 − cos²)·x̂_i − cos·t_i)/‖w_y‖
    /// (the tangent at ŵ_y), with g_i = ∂loss/∂z_y · dz_y/d cos θ_y, in float64; the
    /// gradients in `gx` and `gw` are first multiplied by 2^e (see
    /// [`Self::finish_grads_scaled`]).
    fn add_target(
        &self,
        gx: &mut [f32],
        gw: &mut [f32],
        d: usize,
        tg: &[f64],
        labels: &[u32],
        e: i32,
    ) {
        let up = |v: f32| -> f64 {
            if e == 0 {
                v as f64
            } else {
                pow2_mul(v as f64, e)
            }
        };
        let n = self.xn.len();
        let c = self.wn.len();
        if n == 0 || d == 0 {
            return;
        }
        let g: Vec<f64> = (0..n).map(|i| tg[i] * self.target[i].1).collect();
        pool::run(|| {
            gx.par_chunks_mut(ROWS * d)
                .enumerate()
                .for_each(|(blk, gxb)| {
                    for (r, row) in gxb.chunks_mut(d).enumerate() {
                        let i = blk * ROWS + r;
                        let f = g[i] / self.xn[i];
                        let t = &self.tangent[i * d..(i + 1) * d];
                        for (v, &tk) in row.iter_mut().zip(t) {
                            *v = (up(*v) + f * tk as f64) as f32;
                        }
                    }
                })
        });
        // Rows grouped by label (counting sort, rows in index order within a class), so each
        // class sums its rows in a fixed order.
        let mut start = vec![0usize; c + 1];
        for &y in labels {
            start[y as usize + 1] += 1;
        }
        for j in 0..c {
            start[j + 1] += start[j];
        }
        let mut order = vec![0usize; n];
        let mut next = start.clone();
        for (i, &y) in labels.iter().enumerate() {
            order[next[y as usize]] = i;
            next[y as usize] += 1;
        }
        pool::run(|| {
            gw.par_chunks_mut(CLS * d)
                .enumerate()
                .for_each(|(blk, gwb)| {
                    let mut acc = vec![0f64; d];
                    for (r, row) in gwb.chunks_mut(d).enumerate() {
                        let y = blk * CLS + r;
                        let rows = &order[start[y]..start[y + 1]];
                        if rows.is_empty() {
                            if e != 0 {
                                row.iter_mut().for_each(|v| *v = up(*v) as f32);
                            }
                            continue;
                        }
                        acc.fill(0.0);
                        for &i in rows {
                            let cy = self.cos_y[i];
                            let (a, b) = (g[i] * (1.0 - cy * cy), g[i] * cy);
                            let xr = &self.xh[i * d..(i + 1) * d];
                            let t = &self.tangent[i * d..(i + 1) * d];
                            for ((s, &xk), &tk) in acc.iter_mut().zip(xr).zip(t) {
                                *s += a * xk as f64 - b * tk as f64;
                            }
                        }
                        let inv = 1.0 / self.wn[y];
                        for (v, &s) in row.iter_mut().zip(&acc) {
                            *v = (up(*v) + s * inv) as f32;
                        }
                    }
                })
        });
    }
}

/// Validates a margin-softmax call and prepares its rows (see [`margin_softmax`]; `x` n × d,
/// the prototypes `w` c × d).
#[doc(hidden)]
pub fn margin_prepare(
    x: Operand,
    w: Operand,
    d: usize,
    labels: &[u32],
    o: &MarginOpts,
) -> Result<MarginPrepared> {
    const F: &str = "marginSoftmax";
    let (n, c) = (x.rows, w.rows);
    let x = x.check(F, "x", d)?.data;
    let w = w.check(F, "prototypes", d)?.data;
    check_rows(F, "labels", labels.len(), "x", n)?;
    if !o.scale.is_finite() || o.scale <= 0.0 {
        bail!(
            Arg,
            "{F}: scale must be > 0 and finite, got {}",
            js_num(o.scale)
        );
    }
    check_margin(F, o.kind, o.margin)?;
    check_epsilon(F, "labelSmoothing", o.label_smoothing)?;
    check_labels(F, labels, c, "rows of prototypes")?;
    let (xh, xn) = normalized_rows(F, "x", x, n, d)?;
    let (wh, wn) = normalized_rows(F, "prototypes", w, c, d)?;
    check_finite(F, "x", x)?;
    check_finite(F, "prototypes", w)?;

    // cos θ_y and the tangent from float64 sums of the raw rows (the float32 norms and unit
    // rows are too coarse near θ_y = 0, where the tangent is short).
    let mut target = vec![(0f64, 0f64); n];
    let mut cos_y = vec![0f64; n];
    let mut tangent = Vec::new();
    if tangent.try_reserve_exact(n * d).is_err() {
        bail!(
            Arg,
            "{F}: cannot allocate {} bytes for the target tangents (split the batch)",
            (n * d) as u128 * 4
        );
    }
    tangent.resize(n * d, 0f32);
    let work = |(blk, ((tb, cb), ob)): (usize, PrepTask)| {
        let mut t64 = vec![0f64; d];
        for (r, ((t, cy), tr)) in tb
            .iter_mut()
            .zip(cb.iter_mut())
            .zip(ob.chunks_mut(d))
            .enumerate()
        {
            let i = blk * ROWS + r;
            let y = labels[i] as usize;
            let (xr, wr) = (&x[i * d..(i + 1) * d], &w[y * d..(y + 1) * d]);
            let (sxw, sxx, sww) = dot_norms_f64(xr, wr);
            let (nx, nw) = (sxx.sqrt(), sww.sqrt());
            let c = (sxw / (nx * nw)).clamp(-1.0, 1.0);
            *t = target_logit(o, c);
            *cy = c;
            // t = ŵ − c·x̂, then its rounding residue along x̂ removed.
            let mut along = 0f64;
            for ((tk, &a), &b) in t64.iter_mut().zip(xr).zip(wr) {
                *tk = b as f64 / nw - c * (a as f64 / nx);
                along += *tk * (a as f64 / nx);
            }
            for ((ok, &tk), &a) in tr.iter_mut().zip(&t64).zip(xr) {
                *ok = (tk - along * (a as f64 / nx)) as f32;
            }
        }
    };
    pool::run(|| {
        target
            .par_chunks_mut(ROWS)
            .zip(cos_y.par_chunks_mut(ROWS))
            .zip(tangent.par_chunks_mut(ROWS * d))
            .enumerate()
            .for_each(work)
    });
    Ok(MarginPrepared {
        xh,
        xn,
        wh,
        wn,
        target,
        cos_y,
        tangent,
    })
}

/// Margin softmax over x (n × d) and prototypes (c × d), both normalized inside.
pub fn margin_softmax(
    x: &[f32],
    n: usize,
    w: &[f32],
    c: usize,
    d: usize,
    labels: &[u32],
    o: &MarginOpts,
) -> Result<MarginSoftmax> {
    let (x, w) = (Operand::new(x, n), Operand::new(w, c));
    margin_softmax_with(x, w, d, labels, o, DEFAULT_SCRATCH_BYTES)
}

/// One row-block task of the softmax pass: logits rows, per-row lse, loss, ∂loss/∂z_y,
/// Σ (∂loss/∂z)·z and angular margin.
type SoftTask<'a> = (
    (
        (
            ((&'a mut [f32], &'a mut [f32]), &'a mut [f64]),
            &'a mut [f64],
        ),
        &'a mut [f64],
    ),
    &'a mut [f32],
);

/// The per-row outputs of [`soft_wide`]: loss, ∂loss/∂z_y, Σ (p − t)·z/s, angular margin, and
/// (μ, Σ e^{s·(ψ − μ)}).
type WideOut<'a> = (
    &'a mut [f64],
    &'a mut [f64],
    &'a mut [f64],
    &'a mut [f32],
    &'a mut [(f64, f64)],
);

/// The softmax pass of a wide scale ([`scale_is_wide`]) on the cosines in `logits` (left as
/// they are), in float64 with the scale factored out: ψ_j = cos θ_j off the label and ψ_y =
/// z_y/s (the target rule at s = 1), μ = max ψ, lse = s·μ + ln Σ e^{s·(ψ_j − μ)}, so nothing
/// overflows before the loss itself does, and ∂loss/∂s = Σ (p_j − t_j)·ψ_j keeps its digits
/// for any s.
fn soft_wide(
    pr: &MarginPrepared,
    (c, labels, o): (usize, &[u32], &MarginOpts),
    logits: &[f32],
    (lossv, tgrad, gsv, angv, wv): WideOut,
) {
    let n = lossv.len();
    let (s, eps) = (o.scale, o.label_smoothing);
    let (eps_c, inv_n) = (eps / c as f64, 1.0 / n as f64);
    let unit = MarginOpts { scale: 1.0, ..*o };
    pool::run(|| {
        logits
            .par_chunks(ROWS * c)
            .zip(lossv.par_chunks_mut(ROWS))
            .zip(tgrad.par_chunks_mut(ROWS))
            .zip(gsv.par_chunks_mut(ROWS))
            .zip(angv.par_chunks_mut(ROWS))
            .zip(wv.par_chunks_mut(ROWS))
            .enumerate()
            .for_each(|(blk, (((((lg, lv), tv), gs), an), w))| {
                for r in 0..lv.len() {
                    let i = blk * ROWS + r;
                    let y = labels[i] as usize;
                    let row = &lg[r * c..(r + 1) * c];
                    an[r] = angular_margin(row, y);
                    let psi_y = target_logit(&unit, pr.cos_y[i]).0;
                    let psi = |j: usize| if j == y { psi_y } else { row[j] as f64 };
                    let mu = (0..c).map(psi).fold(f64::NEG_INFINITY, f64::max);
                    let (mut se, mut sep, mut sum) = (0f64, 0f64, 0f64);
                    for j in 0..c {
                        let v = psi(j);
                        let e = (s * (v - mu)).exp();
                        se += e;
                        sep += e * v;
                        sum += v;
                    }
                    lv[r] = s * (mu - (1.0 - eps) * psi_y - eps_c * sum) + se.ln();
                    gs[r] = sep / se - (1.0 - eps) * psi_y - eps_c * sum;
                    let py = (s * (psi_y - mu)).exp() / se - eps_c;
                    tv[r] = (py - (1.0 - eps)) * inv_n;
                    w[r] = (mu, se);
                }
            })
    });
}

/// The gradient of the loss with respect to cos θ for logits `z` (a row, or the columns
/// c0.. of one) with the row's log-sum-exp `lse`: (e^{z − lse} − ε/C)·s/N, 0 at the target
/// column `yin` (its share is added in float64 by [`MarginPrepared::finish`]). Elementwise,
/// so a piece of a row gets the same values as the whole row.
#[inline]
fn grad_piece(z: &[f32], lse: f32, yin: Option<usize>, eps_c: f32, f: f32, out: &mut [f32]) {
    // (p_j − ε/C)·s/N in one pass (with ε = 0 the subtraction of 0 changes no bits).
    k::exp_shift_affine(z, out, lse, eps_c, f);
    if let Some(y) = yin {
        out[y] = 0.0;
    }
}

/// [`margin_softmax`] with the `scratchBytes` option of the fused losses. The gradient of the
/// logits G is formed block by block from them (see below), whose scratch is bounded whatever
/// the budget, so the budget is only validated by the callers; the results are bit-identical
/// for every budget and thread count. Three GEMMs: the logits, gradX = G·Ŵ and
/// gradŴ = Gᵀ·X̂. `x` is n × d, the prototypes `w` c × d.
pub fn margin_softmax_with(
    x: Operand,
    w: Operand,
    d: usize,
    labels: &[u32],
    o: &MarginOpts,
    _scratch_bytes: usize,
) -> Result<MarginSoftmax> {
    let (n, c) = (x.rows, w.rows);
    let pr = margin_prepare(x, w, d, labels, o)?;
    let mut logits = alloc::try_mat(MARGIN, LOGITS, n, c, SPLIT)?;
    let r = margin_softmax_in(&pr, c, d, labels, o, &mut logits)?;
    Ok(MarginSoftmax { logits, ..r })
}

/// [`margin_softmax_with`] on the arguments that [`margin_prepare`] checked, the N × C logits
/// written into `logits` (`pr`'s rows × `c` values: a buffer that the caller's runtime owns, so
/// the largest result is never copied). The returned `logits` is empty: they are in `logits`.
pub fn margin_softmax_in(
    pr: &MarginPrepared,
    c: usize,
    d: usize,
    labels: &[u32],
    o: &MarginOpts,
    logits: &mut [f32],
) -> Result<MarginSoftmax> {
    margin_softmax_all_in(pr, (c, d), labels, o, logits, (None, None))
}

/// [`margin_softmax_in`] with gradX and gradPrototypes also computed in the caller's buffers
/// (N × d and C × d, of any contents: every value is written before it is read, as are the
/// logits'): buffers that the caller returns, so that nothing is zeroed or copied into them. The same values, bit for bit; the returned `grad_x` and `grad_w` are
/// empty.
pub fn margin_softmax_into(
    pr: &MarginPrepared,
    (c, d): (usize, usize),
    labels: &[u32],
    o: &MarginOpts,
    logits: &mut [f32],
    (grad_x, grad_w): (&mut [f32], &mut [f32]),
) -> Result<MarginSoftmax> {
    let n = pr.target.len();
    if grad_x.len() != n * d || grad_w.len() != c * d {
        bail!(
            Shape,
            "{MARGIN}: gradient buffers of {} and {} values for {n} × {d} and {c} × {d}",
            grad_x.len(),
            grad_w.len()
        );
    }
    margin_softmax_all_in(pr, (c, d), labels, o, logits, (Some(grad_x), Some(grad_w)))
}

/// The native forward and backward (see [`margin_softmax_in`]); the gradients go into the
/// caller's buffers where `outs` holds them, else into fresh vectors.
fn margin_softmax_all_in<'o>(
    pr: &MarginPrepared,
    (c, d): (usize, usize),
    labels: &[u32],
    o: &MarginOpts,
    logits: &mut [f32],
    mut outs: (Option<&'o mut [f32]>, Option<&'o mut [f32]>),
) -> Result<MarginSoftmax> {
    // `similarity_matrix_into` checks that `logits` holds n × c values.
    let n = pr.target.len();
    let (xh, wh) = (&pr.xh, &pr.wh);
    // The logits (`similarity_matrix_into` reads it too) and both gradient GEMMs at this precision.
    let prec = crate::precision::current();

    // cos θ for every (row, class), then logits and ∂loss/∂cos row by row.
    const F: &str = MARGIN;
    similarity_matrix_into(xh, n, wh, c, d, Metric::Dot, logits)?;
    let mut lsev = vec![0f32; n];
    let mut lossv = vec![0f64; n];
    let mut tgrad = vec![0f64; n];
    let mut gsv = vec![0f64; n];
    let mut angv = vec![0f32; n];
    let eps = o.label_smoothing;
    let s32 = o.scale as f32;
    let inv_n = 1.0 / n as f64;
    // One pass per row: angular margin, logits, log-sum-exp, loss and the sums for ∂loss/∂s.
    let soft = |(blk, (((((lg, ls), lv), tv), gs), an)): (usize, SoftTask)| {
        for r in 0..lv.len() {
            let i = blk * ROWS + r;
            let y = labels[i] as usize;
            let zy = pr.target[i].0;
            let lrow = &mut lg[r * c..(r + 1) * c];
            let cy = lrow[y];
            lrow[y] = f32::NEG_INFINITY;
            let mx = k::max(lrow);
            lrow[y] = cy;
            an[r] = if mx == f32::NEG_INFINITY {
                f32::INFINITY
            } else {
                let a = |v: f32| (v as f64).clamp(-1.0, 1.0).acos();
                (a(mx) - a(cy)) as f32
            };
            k::scale(lrow, s32);
            lrow[y] = zy as f32;
            let sum = if eps != 0.0 {
                lrow.iter().map(|&v| v as f64).sum::<f64>()
            } else {
                0.0
            };
            // The largest logit without another pass: s > 0 and rounding is monotone, so
            // the largest scaled logit other than the target's is the scaled `mx`.
            let zyf = lrow[y];
            let m = if mx.is_nan() || zyf.is_nan() {
                f32::NAN
            } else if mx == f32::NEG_INFINITY {
                zyf
            } else {
                (mx * s32).max(zyf)
            };
            // Σ e^(z−m) and Σ e^(z−m)·z in one pass, nothing stored.
            let (se, sez) = k::exp_shift_sum_dot(lrow, m);
            let lse = m as f64 + se.ln();
            ls[r] = lse as f32;
            let zy = zyf as f64;
            lv[r] = lse - (1.0 - eps) * zy - eps / c as f64 * sum;
            // Σ_j (p_j − t_j)·z_j: all logits are linear in s, ∂z_j/∂s = z_j/s.
            gs[r] = sez / se - (1.0 - eps) * zy - eps / c as f64 * sum;
            let py = (zy - lse).exp() - eps / c as f64;
            tv[r] = (py - (1.0 - eps)) * inv_n;
        }
    };
    // A scale far from 1 (see `scale_is_wide`): the softmax in float64 on the cosines, which
    // stay in `logits` until the gradients are formed.
    let wide = scale_is_wide(o.scale);
    let mut wv: Vec<(f64, f64)> = Vec::new();
    if wide {
        wv = vec![(0.0, 0.0); n];
        soft_wide(
            pr,
            (c, labels, o),
            logits,
            (&mut lossv, &mut tgrad, &mut gsv, &mut angv, &mut wv),
        );
    } else {
        pool::run(|| {
            logits
                .par_chunks_mut(ROWS * c)
                .zip(lsev.par_chunks_mut(ROWS))
                .zip(lossv.par_chunks_mut(ROWS))
                .zip(tgrad.par_chunks_mut(ROWS))
                .zip(gsv.par_chunks_mut(ROWS))
                .zip(angv.par_chunks_mut(ROWS))
                .enumerate()
                .for_each(soft)
        });
    }
    let loss = lossv.iter().sum::<f64>() * inv_n;
    // The wide pass sums Σ_j (p_j − t_j)·z_j/s directly (z/s is the cosine or ψ_y).
    let grad_scale = if wide {
        gsv.iter().sum::<f64>() * inv_n
    } else {
        gsv.iter().sum::<f64>() * inv_n / o.scale
    };
    let eps_c = (eps / c as f64) as f32;
    let f = (o.scale * inv_n) as f32;
    let (lg, ls) = (&*logits, &lsev);
    // Wide: 2^-e·G with s/N·2^-e in [1/2, 1), so the GEMMs see values of at most 1 in
    // magnitude; `finish_grads_scaled` multiplies by 2^e.
    let e_g = if wide { grad_exponent(o.scale, n) } else { 0 };
    let sg = pow2_mul(o.scale, -e_g) * inv_n;
    let eps_c64 = eps / c as f64;
    // G for row i over the classes c0.. (`out.len()` of them), the target column `yin` at 0.
    let piece = |i: usize, c0: usize, yin: Option<usize>, out: &mut [f32]| {
        let z = &lg[i * c + c0..i * c + c0 + out.len()];
        if wide {
            let (mu, se) = wv[i];
            for (v, &cs) in out.iter_mut().zip(z) {
                *v = (((o.scale * (cs as f64 - mu)).exp() / se - eps_c64) * sg) as f32;
            }
            if let Some(y) = yin {
                out[y] = 0.0;
            }
        } else {
            grad_piece(z, ls[i], yin, eps_c, f, out);
        }
    };

    // G formed block by block from the logits, never whole: for gradX̂ = G·Ŵ per block of
    // rows, and for gradŴ = Gᵀ·X̂ per block of classes over row slabs. Holding G whole (and its
    // transpose for the product) took two fresh N × C buffers whose first touch cost more than
    // forming G twice: 4096 × 10,000 × 512 on Zen 4, one thread, 2.02 s held against 1.53 s.
    let mut gx = Grad::get(&mut outs.0, (F, "gradX", SPLIT), n, d)?;
    let (xb, cls) = (
        task_rows(n, c, pool::threads()),
        task_rows(c, SLAB.min(n), pool::threads()),
    );
    // Each thread forms its blocks of G in one buffer, reused (every value rewritten), a chunk
    // of CHUNK classes at a time: a few MiB that stay in cache between being formed and being
    // packed by the GEMM (a whole block of rows × C went to memory and back). The chunks'
    // products accumulate in class order: on the SIMD GEMMs the same chain of fused
    // multiply-adds as one product over all classes (chunks start at even classes: the same
    // pairs for bf16); the scalar GEMM rounds each chunk's float64 sum once. Chunks are fixed,
    // so the bits never depend on the thread count.
    let scratch = alloc::PerThread::new();
    let gb_len = alloc::elems(
        F,
        "a block of the logit gradient",
        &[xb.min(n), CHUNK.min(c)],
        4,
        SPLIT,
    )?;
    pool::run(|| {
        gx.par_chunks_mut(xb * d)
            .enumerate()
            .try_for_each(|(blk, gxb)| {
                let mb = gxb.len() / d;
                let what = "a block of the logit gradient";
                scratch.with(F, what, gb_len, SPLIT, |gb| {
                    for (ci, c0) in (0..c).step_by(CHUNK).enumerate() {
                        let cb = CHUNK.min(c - c0);
                        for r in 0..mb {
                            let i = blk * xb + r;
                            let y = labels[i] as usize;
                            let yin = (y >= c0 && y < c0 + cb).then(|| y - c0);
                            piece(i, c0, yin, &mut gb[r * cb..(r + 1) * cb]);
                        }
                        let (a, b) = ((&gb[..mb * cb], cb), (&wh[c0 * d..], d));
                        prec.gemm(GemmRef::nn(mb, d, cb, a, b, (&mut *gxb, d)).accumulate(ci > 0));
                    }
                })
            })
    })?;
    // gradŴ[block] (cb × d per task) = G[:, block]ᵀ·X̂, over row slabs in order (the same
    // chain of fused multiply-adds as one product over all rows), each slab of G read as a
    // transposed operand: nothing is transposed or copied.
    let mut gw = Grad::get(&mut outs.1, (F, "gradPrototypes", SPLIT), c, d)?;
    let t_len = alloc::elems(
        F,
        "a slab of the logit gradient",
        &[SLAB.min(n), cls.min(c)],
        4,
        SPLIT,
    )?;
    pool::run(|| {
        gw.par_chunks_mut(cls * d)
            .enumerate()
            .try_for_each(|(blk, gwb)| {
                let c0 = blk * cls;
                let cb = gwb.len() / d;
                // A slab of G (every value used rewritten), in this thread's buffer.
                scratch.with(F, "a slab of the logit gradient", t_len, SPLIT, |t| {
                    for (si, i0) in (0..n).step_by(SLAB).enumerate() {
                        let mb = SLAB.min(n - i0);
                        for r in 0..mb {
                            let i = i0 + r;
                            let y = labels[i] as usize;
                            let yin = (y >= c0 && y < c0 + cb).then(|| y - c0);
                            piece(i, c0, yin, &mut t[r * cb..(r + 1) * cb]);
                        }
                        prec.gemm(
                            GemmRef::tn(
                                cb,
                                d,
                                mb,
                                (&t[..mb * cb], cb),
                                (&xh[i0 * d..], d),
                                (&mut *gwb, d),
                            )
                            .accumulate(si > 0),
                        );
                    }
                })
            })
    })?;
    pr.finish_grads_scaled((&mut gx, &mut gw), d, &tgrad, labels, e_g);
    if wide {
        // The cosines become the logits: s·cos θ_j, and z_y at the target.
        pool::run(|| {
            logits
                .par_chunks_mut(ROWS * c)
                .enumerate()
                .for_each(|(blk, lg)| {
                    for (r, row) in lg.chunks_mut(c).enumerate() {
                        let i = blk * ROWS + r;
                        for v in row.iter_mut() {
                            *v = (o.scale * *v as f64) as f32;
                        }
                        row[labels[i] as usize] = pr.target[i].0 as f32;
                    }
                })
        });
    }
    Ok(MarginSoftmax {
        loss,
        grad_x: gx.into_vec(),
        grad_w: gw.into_vec(),
        logits: Vec::new(),
        grad_scale,
        angular_margins: angv,
    })
}

/// PyTorch's `cross_entropy(logits, labels, label_smoothing=ε)` with mean reduction, and its
/// gradient (softmax − target)/N.
pub fn label_smoothing_cross_entropy(
    logits: &[f32],
    n: usize,
    c: usize,
    labels: &[u32],
    eps: f64,
) -> Result<LossGrad> {
    const F: &str = "labelSmoothingCrossEntropy";
    check_matrix(F, "logits", logits, n, c)?;
    check_rows(F, "labels", labels.len(), "logits", n)?;
    check_epsilon(F, "epsilon", eps)?;
    check_labels(F, labels, c, "columns of logits")?;
    check_finite(F, "logits", logits)?;
    let mut g = alloc::try_copy(F, "the gradient", logits)?;
    let mut lossv = vec![0f64; n];
    let inv_n = 1.0 / n as f64;
    pool::run(|| {
        g.par_chunks_mut(ROWS * c)
            .zip(lossv.par_chunks_mut(ROWS))
            .enumerate()
            .for_each(|(blk, (gb, lv))| {
                for r in 0..lv.len() {
                    let y = labels[blk * ROWS + r] as usize;
                    let row = &mut gb[r * c..(r + 1) * c];
                    let (l, others) = ce_row(row, y, eps);
                    lv[r] = l;
                    k::scale(row, inv_n as f32);
                    // p_y − (1 − ε) − ε/C = ε(1 − 1/C) − Σ_{j≠y} p_j.
                    let cc = c as f64;
                    row[y] = ((eps * (1.0 - 1.0 / cc) - others) * inv_n) as f32;
                }
            })
    });
    Ok(LossGrad {
        loss: lossv.iter().sum::<f64>() * inv_n,
        grad: g,
    })
}

fn check_penalty(func: &str, m: &[f32], rows: usize, cols: usize, lambda: f64) -> Result<()> {
    check_matrix(func, "m", m, rows, cols)?;
    if !lambda.is_finite() || lambda < 0.0 {
        bail!(
            Arg,
            "{func}: lambda must be >= 0 and finite, got {}",
            js_num(lambda)
        );
    }
    check_finite(func, "m", m)
}

/// Elementwise penalty: per piece, fills the gradient and returns the piece's f64 sum; pieces
/// are summed in order.
fn penalty(
    func: &str,
    m: &[f32],
    f: impl Fn(&[f32], &mut [f32]) -> f64 + Sync,
) -> Result<(f64, Vec<f32>)> {
    let mut g = alloc::try_vec(func, "the gradient", m.len())?;
    let mut parts = vec![0f64; m.len().div_ceil(PIECE)];
    pool::run(|| {
        g.par_chunks_mut(PIECE)
            .zip(m.par_chunks(PIECE))
            .zip(parts.par_iter_mut())
            .for_each(|((gc, mc), p)| *p = f(mc, gc))
    });
    Ok((parts.iter().sum(), g))
}

/// λ Σ‖row‖² and its gradient 2λ·m.
pub fn norm_penalty(m: &[f32], rows: usize, cols: usize, lambda: f64) -> Result<LossGrad> {
    check_penalty("normPenalty", m, rows, cols, lambda)?;
    // 2λ·m formed in float64 and rounded once: a float32 2λ overflows (λ ≥ 1.7e38) or rounds
    // to 0 (λ ≤ 7e-46) where 2λ·m fits float32.
    let two_l = 2.0 * lambda;
    let (s, grad) = penalty("normPenalty", m, |mc, gc| {
        for (g, &v) in gc.iter_mut().zip(mc) {
            *g = (two_l * v as f64) as f32;
        }
        mc.iter().map(|&v| v as f64 * v as f64).sum()
    })?;
    Ok(LossGrad {
        loss: lambda * s,
        grad,
    })
}

/// λ Σ|m_ij| and its gradient λ·sign(m) (sign(0) = 0).
pub fn l1_penalty(m: &[f32], rows: usize, cols: usize, lambda: f64) -> Result<LossGrad> {
    check_penalty("l1Penalty", m, rows, cols, lambda)?;
    let l = lambda as f32;
    let (s, grad) = penalty("l1Penalty", m, |mc, gc| {
        let mut s = 0f64;
        for (o, &v) in gc.iter_mut().zip(mc) {
            *o = if v > 0.0 {
                l
            } else if v < 0.0 {
                -l
            } else {
                0.0
            };
            s += v.abs() as f64;
        }
        s
    })?;
    Ok(LossGrad {
        loss: lambda * s,
        grad,
    })
}

/// Result of [`margin_geometry`]: two C × C matrices, row-major.
#[derive(Clone, Debug)]
pub struct MarginGeometry {
    /// Δ_ij = angle between ŵ_i and ŵ_j (radians; 0 on the diagonal).
    pub angles: Vec<f32>,
    /// Realised angular gap between the decision boundaries of classes i and j along the
    /// geodesic from ŵ_i to ŵ_j: 0 (normalized), m (arcface), 2·asin(m / (2 sin(Δ_ij/2)))
    /// (cosface; NaN where m > 2 sin(Δ_ij/2), 0 when m = 0); NaN on the diagonal.
    pub gaps: Vec<f32>,
}

/// Angles between the class prototypes (c × d, normalized inside) and the angular gaps a margin
/// of `kind` and `margin` realises between each pair's decision boundaries.
pub fn margin_geometry(
    w: &[f32],
    c: usize,
    d: usize,
    kind: MarginKind,
    margin: f64,
) -> Result<MarginGeometry> {
    const F: &str = "marginGeometry";
    check_matrix(F, "prototypes", w, c, d)?;
    check_margin(F, kind, margin)?;
    normalized_rows(F, "prototypes", w, c, d)?;
    check_finite(F, "prototypes", w)?;
    // Norms in float64 (a float32 sum of squares would put near-parallel rows 1e-4 apart).
    let wn: Vec<f64> = w
        .chunks(d)
        .map(|r| r.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt())
        .collect();
    let fewer = "pass fewer prototypes";
    let mut angles: Vec<f32> = alloc::try_mat(F, "the C × C angles", c, c, fewer)?;
    let mut gaps: Vec<f32> = alloc::try_mat(F, "the C × C gaps", c, c, fewer)?;
    gaps.fill(f32::NAN);
    for i in 0..c {
        for j in 0..c {
            if i == j {
                continue;
            }
            let (wi, wj) = (&w[i * d..(i + 1) * d], &w[j * d..(j + 1) * d]);
            let dot: f64 = wi.iter().zip(wj).map(|(&a, &b)| a as f64 * b as f64).sum();
            let delta = (dot / (wn[i] * wn[j])).clamp(-1.0, 1.0).acos();
            angles[i * c + j] = delta as f32;
            gaps[i * c + j] = match kind {
                MarginKind::Normalized => 0.0,
                MarginKind::ArcFace => margin as f32,
                MarginKind::CosFace => {
                    // Directions that agree to rounding (Δ < 1e-7) coincide: chord 0.
                    let chord = if delta < 1e-7 {
                        0.0
                    } else {
                        2.0 * (delta / 2.0).sin()
                    };
                    if margin == 0.0 {
                        0.0
                    } else if margin > chord {
                        f32::NAN
                    } else {
                        (2.0 * (margin / chord).asin()) as f32
                    }
                }
            };
        }
    }
    Ok(MarginGeometry { angles, gaps })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{assert_fd, randv};

    /// Two results are the same to the bit.
    fn assert_same_bits(a: &MarginSoftmax, b: &MarginSoftmax, what: &str) {
        assert_eq!(a.loss.to_bits(), b.loss.to_bits(), "{what}");
        assert_eq!(a.grad_x, b.grad_x, "{what}");
        assert_eq!(a.grad_w, b.grad_w, "{what}");
        assert_eq!(a.logits, b.logits, "{what}");
        assert_eq!(a.grad_scale.to_bits(), b.grad_scale.to_bits(), "{what}");
        assert_eq!(a.angular_margins, b.angular_margins, "{what}");
    }

    #[test]
    fn gradients_are_bit_identical_for_every_budget_and_thread_count() {
        // Shapes across the row blocks, class blocks and slabs.
        // The largest also takes larger GEMM tasks and similarity tiles on one thread than on three.
        for &(n, c, d) in &[
            (1usize, 1usize, 3usize),
            (300, 700, 9),
            (1100, 300, 5),
            (1100, 1300, 5),
        ] {
            let x = randv(n * d, 5 + n as u64);
            let w = randv(c * d, 6 + c as u64);
            let labels: Vec<u32> = (0..n).map(|i| ((i * 37) % c) as u32).collect();
            let (xo, wo) = (Operand::new(&x, n), Operand::new(&w, c));
            for (kind, eps) in [(MarginKind::ArcFace, 0.1), (MarginKind::CosFace, 0.0)] {
                let o = MarginOpts {
                    kind,
                    scale: 20.0,
                    margin: 0.3,
                    label_smoothing: eps,
                };
                let mut all = Vec::new();
                for budget in [0usize, DEFAULT_SCRATCH_BYTES] {
                    for t in [1usize, 3] {
                        pool::set_threads(t).unwrap();
                        all.push(margin_softmax_with(xo, wo, d, &labels, &o, budget).unwrap());
                    }
                }
                for r in &all[1..] {
                    assert_same_bits(r, &all[0], &format!("{n} {c} {d}"));
                }
            }
        }
        pool::set_threads(1).unwrap();
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (n, c, d) = (5, 7, 6);
        let w = randv(c * d, 2);
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 3) % c as u32).collect();
        for kind in [
            MarginKind::Normalized,
            MarginKind::CosFace,
            MarginKind::ArcFace,
        ] {
            let o = MarginOpts {
                kind,
                scale: 4.0,
                margin: 0.4,
                label_smoothing: 0.1,
            };
            let mut x = randv(n * d, 1);
            let r = margin_softmax(&x, n, &w, c, d, &labels, &o).unwrap();
            let loss = |x: &[f32]| margin_softmax(x, n, &w, c, d, &labels, &o).unwrap().loss;
            for t in 0..x.len() {
                let x0 = x[t];
                x[t] = x0 + 1e-2;
                let up = loss(&x);
                x[t] = x0 - 1e-2;
                let dn = loss(&x);
                x[t] = x0;
                let fd = (up - dn) / 2e-2;
                assert_fd(fd, r.grad_x[t], 2e-3, &format!("{kind:?} {t}"));
            }
        }
    }

    #[test]
    fn arcface_gradient_is_finite_at_theta_zero() {
        let (n, c, d) = (2, 3, 4);
        let w = randv(c * d, 7);
        let mut x = randv(n * d, 8);
        x[..d].copy_from_slice(&w[d..2 * d]);
        let o = MarginOpts {
            kind: MarginKind::ArcFace,
            scale: 64.0,
            margin: 0.5,
            label_smoothing: 0.0,
        };
        let r = margin_softmax(&x, n, &w, c, d, &[1, 0], &o).unwrap();
        assert!(r.loss.is_finite());
        assert!(r.grad_x.iter().chain(&r.grad_w).all(|v| v.is_finite()));
    }

    /// The float64 reference of marginSoftmax (as lib/reference/margin.ts forms it): loss,
    /// gradX, gradW.
    fn reference64(
        x: &[f64],
        n: usize,
        w: &[f64],
        c: usize,
        d: usize,
        labels: &[u32],
        o: &MarginOpts,
    ) -> (f64, Vec<f64>, Vec<f64>) {
        let unit = |m: &[f64], r: usize| -> (Vec<f64>, Vec<f64>) {
            let mut h = m.to_vec();
            let mut nn = vec![0f64; r];
            for i in 0..r {
                nn[i] = m[i * d..(i + 1) * d]
                    .iter()
                    .map(|v| v * v)
                    .sum::<f64>()
                    .sqrt();
                for k in 0..d {
                    h[i * d + k] /= nn[i];
                }
            }
            (h, nn)
        };
        let (xh, xn) = unit(x, n);
        let (wh, wn) = unit(w, c);
        let mut z = vec![0f64; n * c];
        let mut dz = vec![0f64; n];
        for i in 0..n {
            for j in 0..c {
                let cs: f64 = (0..d).map(|k| xh[i * d + k] * wh[j * d + k]).sum();
                if j == labels[i] as usize {
                    let (t, dt) = target_logit(o, cs);
                    z[i * c + j] = t;
                    dz[i] = dt;
                } else {
                    z[i * c + j] = o.scale * cs;
                }
            }
        }
        let eps = o.label_smoothing;
        let mut loss = 0.0;
        for i in 0..n {
            let row = &mut z[i * c..(i + 1) * c];
            let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row.iter().sum();
            let se: f64 = row.iter().map(|v| (v - mx).exp()).sum();
            let lse = mx + se.ln();
            let y = labels[i] as usize;
            loss += lse - (1.0 - eps) * row[y] - eps / c as f64 * sum;
            for v in row.iter_mut() {
                *v = (*v - mx).exp() / se - eps / c as f64;
            }
            row[y] -= 1.0 - eps;
            for (j, v) in row.iter_mut().enumerate() {
                *v *= if j == y { dz[i] } else { o.scale } / n as f64;
            }
        }
        let mut gx = vec![0f64; n * d];
        let mut gw = vec![0f64; c * d];
        for i in 0..n {
            for j in 0..c {
                for k in 0..d {
                    gx[i * d + k] += z[i * c + j] * wh[j * d + k];
                    gw[j * d + k] += z[i * c + j] * xh[i * d + k];
                }
            }
        }
        let back = |g: &mut [f64], h: &[f64], nn: &[f64]| {
            for (i, &ni) in nn.iter().enumerate() {
                let s: f64 = (0..d).map(|k| h[i * d + k] * g[i * d + k]).sum();
                for k in 0..d {
                    g[i * d + k] = (g[i * d + k] - h[i * d + k] * s) / ni;
                }
            }
        };
        back(&mut gx, &xh, &xn);
        back(&mut gw, &wh, &wn);
        (loss / n as f64, gx, gw)
    }

    /// ArcFace with an embedding at (θ_y = 0) and next to (θ_y = 3e-4) its prototype: the
    /// gradients match the float64 reference tightly, x·gradX = 0 to rounding, and the
    /// float64 loss's central differences agree with gradX.
    #[test]
    fn arcface_gradient_near_theta_zero() {
        let w = [
            1.0f32, 2.0, 3.0, 4.0, 4.0, -1.0, 0.0, 2.0, -2.0, 1.0, 1.0, 0.0,
        ];
        let o = MarginOpts {
            kind: MarginKind::ArcFace,
            scale: 30.0,
            margin: 0.5,
            label_smoothing: 0.1,
        };
        let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
        for x in [[1.0f32, 2.0, 3.0, 4.0], [1.0014697, 1.9992652, 3.0, 4.0]] {
            let r = margin_softmax(&x, 1, &w, 3, 4, &[0], &o).unwrap();
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let (loss, gx, gw) = reference64(&x64, 1, &w64, 3, 4, &[0], &o);
            assert!((r.loss - loss).abs() < 1e-5, "loss {} vs {loss}", r.loss);
            let gmax = gx.iter().fold(0f64, |m, v| m.max(v.abs()));
            for (a, b) in r.grad_x.iter().zip(&gx) {
                assert!(
                    (*a as f64 - b).abs() < 1e-5 * gmax,
                    "gradX {:?} vs {gx:?}",
                    r.grad_x
                );
            }
            let wmax = gw.iter().fold(0f64, |m, v| m.max(v.abs()));
            for (a, b) in r.grad_w.iter().zip(&gw) {
                assert!(
                    (*a as f64 - b).abs() < 1e-5 * wmax,
                    "gradW {:?} vs {gw:?}",
                    r.grad_w
                );
            }
            let radial: f64 = x
                .iter()
                .zip(&r.grad_x)
                .map(|(&a, &g)| a as f64 * g as f64)
                .sum();
            // 0 up to float32 rounding: relative to ‖x‖·‖gradX‖ (it was 5e-3 with the target
            // share formed in float32).
            let nx = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
            let ng = r
                .grad_x
                .iter()
                .map(|&v| v as f64 * v as f64)
                .sum::<f64>()
                .sqrt();
            assert!(radial.abs() < 1e-6 * nx * ng, "x·gradX = {radial}");
            // Central differences of the float64 loss (steps well below θ‖x‖ ≈ 1.6e-3).
            let h = 1e-6;
            for t in 0..4 {
                let mut up = x64.clone();
                up[t] += h;
                let mut dn = x64.clone();
                dn[t] -= h;
                let fd = (reference64(&up, 1, &w64, 3, 4, &[0], &o).0
                    - reference64(&dn, 1, &w64, 3, 4, &[0], &o).0)
                    / (2.0 * h);
                if x[0] != 1.0 {
                    assert_fd(fd, r.grad_x[t], 1e-4 * gmax, &format!("coordinate {t}"));
                }
            }
        }
    }

    #[test]
    fn thread_count_does_not_change_bits() {
        let (n, c, d) = (300, 150, 20);
        let x = randv(n * d, 3);
        let w = randv(c * d, 4);
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7) % c as u32).collect();
        let o = MarginOpts {
            kind: MarginKind::ArcFace,
            scale: 30.0,
            margin: 0.5,
            label_smoothing: 0.1,
        };
        pool::set_threads(1).unwrap();
        let a = margin_softmax(&x, n, &w, c, d, &labels, &o).unwrap();
        pool::set_threads(3).unwrap();
        let b = margin_softmax(&x, n, &w, c, d, &labels, &o).unwrap();
        assert_same_bits(&a, &b, "1 vs 3 threads");
    }

    /// More classes than one chunk of gradX's blocks (targets on and next to the chunk
    /// boundaries), with and without label smoothing: loss, gradX, gradW against the float64
    /// reference, and gradScale against its central differences in s.
    #[test]
    fn class_chunks_and_grad_scale_match_the_reference() {
        let (n, c, d) = (23, 2 * CHUNK + 345, 32);
        let mut x = randv(n * d, 31);
        let w = randv(c * d, 32);
        let edge = [
            0,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK - 1,
            2 * CHUNK,
            c - 1,
        ];
        let labels: Vec<u32> = (0..n)
            .map(|i| edge.get(i).copied().unwrap_or((i * 389) % c) as u32)
            .collect();
        // Most rows near their prototype: p_y close to 1, so that the target's entry of G
        // (zeroed there, added by the target's own term) weighs on the gradients.
        for (i, &y) in labels.iter().enumerate().filter(|(i, _)| i % 4 != 3) {
            let y = y as usize;
            for k in 0..d {
                x[i * d + k] = w[y * d + k] + 0.1 * x[i * d + k];
            }
        }
        let (x64, w64): (Vec<f64>, Vec<f64>) = (
            x.iter().map(|&v| v as f64).collect(),
            w.iter().map(|&v| v as f64).collect(),
        );
        for eps in [0.0, 0.1] {
            let o = MarginOpts {
                kind: MarginKind::CosFace,
                scale: 20.0,
                margin: 0.3,
                label_smoothing: eps,
            };
            let r = margin_softmax(&x, n, &w, c, d, &labels, &o).unwrap();
            let (loss, gx, gw) = reference64(&x64, n, &w64, c, d, &labels, &o);
            assert!(
                (r.loss - loss).abs() < 1e-5 * loss.abs(),
                "loss {} vs {loss}",
                r.loss
            );
            for (got, want, what) in [(&r.grad_x, &gx, "gradX"), (&r.grad_w, &gw, "gradW")] {
                let gmax = want.iter().fold(0f64, |m, v| m.max(v.abs()));
                for (j, (a, b)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (*a as f64 - b).abs() < 1e-4 * gmax,
                        "{what}[{j}] {a} vs {b} (ε {eps})"
                    );
                }
            }
            let h = 1e-4;
            let at =
                |s: f64| reference64(&x64, n, &w64, c, d, &labels, &MarginOpts { scale: s, ..o }).0;
            let fd = (at(o.scale + h) - at(o.scale - h)) / (2.0 * h);
            assert!(
                (r.grad_scale - fd).abs() < 1e-5 * fd.abs().max(1e-3),
                "gradScale {} vs {fd} (ε {eps})",
                r.grad_scale
            );
        }
    }

    /// Scales far from 1 (past the float32 range, subnormal, and on both sides of the bounds
    /// of the float32 pass): loss, gradX, gradW and the logits against the float64 reference,
    /// ∂loss/∂s against its own float64 evaluation and central differences, and the angular
    /// margins equal to those of an ordinary scale.
    #[test]
    fn wide_scales_match_the_reference() {
        let (n, c, d) = (9, 13, 8);
        let mut x = randv(n * d, 51);
        let w = randv(c * d, 52);
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 5) % c as u32).collect();
        for (i, &y) in labels.iter().enumerate().filter(|(i, _)| i % 3 != 2) {
            for k in 0..d {
                x[i * d + k] = w[y as usize * d + k] + 0.2 * x[i * d + k];
            }
        }
        let (x64, w64): (Vec<f64>, Vec<f64>) = (
            x.iter().map(|&v| v as f64).collect(),
            w.iter().map(|&v| v as f64).collect(),
        );
        let unit = |m: &[f64], r: usize| -> Vec<f64> {
            let mut h = m.to_vec();
            for row in h.chunks_mut(d).take(r) {
                let nn = row.iter().map(|v| v * v).sum::<f64>().sqrt();
                row.iter_mut().for_each(|v| *v /= nn);
            }
            h
        };
        let (xh, wh) = (unit(&x64, n), unit(&w64, c));
        let cos =
            |i: usize, j: usize| -> f64 { (0..d).map(|k| xh[i * d + k] * wh[j * d + k]).sum() };
        let s_hi = 2f64.powi(120);
        // (5e-324: s/N underflows to 0; the gradients' exponent comes from log2 s − log2 N.)
        let scales = [
            5e-324,
            1e-320,
            1e-40,
            1e-20,
            2f64.powi(-60) * 0.999,
            s_hi * 1.001,
            1e38,
            3.5e38,
            1e39,
            1e300,
        ];
        for kind in [
            MarginKind::Normalized,
            MarginKind::CosFace,
            MarginKind::ArcFace,
        ] {
            for eps in [0.0, 0.1] {
                let base = MarginOpts {
                    kind,
                    scale: 30.0,
                    margin: 0.3,
                    label_smoothing: eps,
                };
                let ordinary = margin_softmax(&x, n, &w, c, d, &labels, &base).unwrap();
                for &sc in &scales {
                    let o = MarginOpts { scale: sc, ..base };
                    assert!(scale_is_wide(sc), "{sc:e}");
                    let tag = format!("{kind:?} ε {eps} s {sc:e}");
                    let r = margin_softmax(&x, n, &w, c, d, &labels, &o).unwrap();
                    let (loss, gx, gw) = reference64(&x64, n, &w64, c, d, &labels, &o);
                    assert!(
                        (r.loss - loss).abs() <= 1e-6 * loss.abs(),
                        "{tag}: loss {} vs {loss}",
                        r.loss
                    );
                    for (got, want, what) in [(&r.grad_x, &gx, "gradX"), (&r.grad_w, &gw, "gradW")]
                    {
                        let gmax = want
                            .iter()
                            .filter(|v| (**v as f32).is_finite())
                            .fold(0f64, |m, v| m.max(v.abs()));
                        for (j, (&a, &b)) in got.iter().zip(want).enumerate() {
                            if (b as f32).is_finite() {
                                // (values below the float32 range round to 0 or a subnormal)
                                assert!(
                                    (a as f64 - b).abs() <= (1e-4 * gmax).max(1e-44),
                                    "{tag}: {what}[{j}] {a} vs {b}"
                                );
                            } else {
                                assert_eq!(a, b as f32, "{tag}: {what}[{j}]");
                            }
                        }
                    }
                    // ∂loss/∂s = mean_i Σ_j (p_ij − t_ij)·ψ_ij, ψ = z/s, in float64 with the
                    // scale factored out of the softmax.
                    let one = MarginOpts { scale: 1.0, ..o };
                    let mut gs = 0f64;
                    for (i, &y) in labels.iter().enumerate() {
                        let y = y as usize;
                        let psi: Vec<f64> = (0..c)
                            .map(|j| {
                                if j == y {
                                    target_logit(&one, cos(i, j)).0
                                } else {
                                    cos(i, j)
                                }
                            })
                            .collect();
                        let mu = psi.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let e: Vec<f64> = psi.iter().map(|v| (sc * (v - mu)).exp()).collect();
                        let se: f64 = e.iter().sum();
                        for j in 0..c {
                            let t = eps / c as f64 + if j == y { 1.0 - eps } else { 0.0 };
                            gs += (e[j] / se - t) * psi[j];
                        }
                    }
                    gs /= n as f64;
                    assert!(
                        (r.grad_scale - gs).abs() <= 1e-6 * gs.abs().max(1e-3),
                        "{tag}: gradScale {} vs {gs}",
                        r.grad_scale
                    );
                    if sc > 1e30 && sc < 1e300 {
                        let h = 1e-6 * sc;
                        let at = |s: f64| {
                            reference64(&x64, n, &w64, c, d, &labels, &MarginOpts { scale: s, ..o })
                                .0
                        };
                        let fd = (at(sc + h) - at(sc - h)) / (2.0 * h);
                        assert!(
                            (r.grad_scale - fd).abs() <= 1e-5 * fd.abs().max(1e-3),
                            "{tag}: gradScale {} vs central difference {fd}",
                            r.grad_scale
                        );
                    }
                    for (i, &y) in labels.iter().enumerate() {
                        let y = y as usize;
                        for j in 0..c {
                            let a = r.logits[i * c + j];
                            let want = if j == y {
                                target_logit(&o, cos(i, j)).0
                            } else {
                                sc * cos(i, j)
                            };
                            if (want as f32).is_finite() {
                                assert!(
                                    (a as f64 - want).abs() <= (1e-5 * sc).max(1e-44),
                                    "{tag}: logits[{i}, {j}] {a} vs {want}"
                                );
                            } else {
                                assert_eq!(a, want as f32, "{tag}: logits[{i}, {j}]");
                            }
                        }
                    }
                    assert!(
                        r.angular_margins
                            .iter()
                            .zip(&ordinary.angular_margins)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{tag}: angular margins"
                    );
                }
                // Both sides of the bounds of the float32 pass agree.
                for (inside, outside) in [
                    (2f64.powi(-60), 2f64.powi(-60) * 0.999),
                    (s_hi, s_hi * 1.001),
                ] {
                    assert!(!scale_is_wide(inside) && scale_is_wide(outside));
                    let a = margin_softmax(
                        &x,
                        n,
                        &w,
                        c,
                        d,
                        &labels,
                        &MarginOpts {
                            scale: inside,
                            ..base
                        },
                    )
                    .unwrap();
                    let b = margin_softmax(
                        &x,
                        n,
                        &w,
                        c,
                        d,
                        &labels,
                        &MarginOpts {
                            scale: outside,
                            ..base
                        },
                    )
                    .unwrap();
                    let ratio = outside / inside;
                    assert!(
                        (a.grad_scale - b.grad_scale).abs() <= 1e-3 * a.grad_scale.abs().max(1e-3),
                        "{kind:?} ε {eps} at {inside:e}: gradScale {} vs {}",
                        a.grad_scale,
                        b.grad_scale
                    );
                    assert!(
                        (a.loss * ratio - b.loss).abs() <= 2e-3 * b.loss.abs() || inside < 1.0,
                        "{kind:?} ε {eps} at {inside:e}: loss {} vs {}",
                        a.loss,
                        b.loss
                    );
                }
            }
        }
    }

    /// The wide path's exponent stays finite where s/N underflows, and scaling by any
    /// exponent saturates at once (it used to loop 2^31 times for log2 0).
    #[test]
    fn grad_exponent_and_pow2_mul_take_every_scale() {
        for (s, n) in [
            (5e-324, 64usize),
            (1e-322, 4096),
            (1e-300, 1),
            (1e300, 7),
            (f64::MAX, 1),
        ] {
            let e = grad_exponent(s, n);
            assert!((-1200..=1100).contains(&e), "{s:e} / {n}: {e}");
            let sg = pow2_mul(s, -e) / n as f64;
            assert!((0.25..=1.0).contains(&sg), "{s:e} / {n}: {sg}");
        }
        assert_eq!(pow2_mul(1.0, i32::MIN), 0.0);
        assert_eq!(pow2_mul(-3.0, i32::MAX), f64::NEG_INFINITY);
        assert_eq!(pow2_mul(3.0, -1074), 3.0 * 2f64.powi(-1074));
        assert_eq!(pow2_mul(0.75, 1024), 0.75 * 2f64.powi(1023) * 2.0);
    }

    /// The in-place form writes every value of the caller's buffers: started from NaN, its
    /// logits and gradients are the bits of the vector form (f32 and bf16, several class
    /// chunks, row blocks and slabs).
    #[test]
    fn into_writes_every_value_of_buffers_of_any_contents() {
        let (n, c, d) = (1100, CHUNK + 77, 9);
        let x = randv(n * d, 41);
        let w = randv(c * d, 42);
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 13) % c as u32).collect();
        let o = MarginOpts {
            kind: MarginKind::ArcFace,
            scale: 30.0,
            margin: 0.5,
            label_smoothing: 0.1,
        };
        for prec in [
            crate::precision::Precision::F32,
            crate::precision::Precision::Bf16,
        ] {
            crate::precision::with_precision(prec, || {
                let (xo, wo) = (Operand::new(&x, n), Operand::new(&w, c));
                let want = margin_softmax_with(xo, wo, d, &labels, &o, 0).unwrap();
                let pr = margin_prepare(xo, wo, d, &labels, &o).unwrap();
                let mut lg = vec![f32::NAN; n * c];
                let (mut gx, mut gw) = (vec![f32::NAN; n * d], vec![f32::NAN; c * d]);
                let r = margin_softmax_into(&pr, (c, d), &labels, &o, &mut lg, (&mut gx, &mut gw))
                    .unwrap();
                let got = MarginSoftmax {
                    logits: lg,
                    grad_x: gx,
                    grad_w: gw,
                    ..r
                };
                assert_same_bits(&want, &got, "into from NaN");
            });
        }
    }

    #[test]
    fn penalties() {
        let m = [1.0f32, -2.0, 0.0, 3.0];
        let r = norm_penalty(&m, 2, 2, 0.5).unwrap();
        assert_eq!(r.loss, 7.0);
        assert_eq!(r.grad, vec![1.0, -2.0, 0.0, 3.0]);
        let r = l1_penalty(&m, 2, 2, 2.0).unwrap();
        assert_eq!(r.loss, 12.0);
        assert_eq!(r.grad, vec![2.0, -2.0, 0.0, 2.0]);
        assert_eq!(
            l1_penalty(&m, 2, 2, -1.0).unwrap_err().code,
            crate::Code::Arg
        );
    }
}
