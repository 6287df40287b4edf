//! Negative sampling: Walker's alias sampler on the documented SplitMix64 stream, unigram
//! weights, and the binary negative-sampling (word2vec) / NCE loss.
//!
//! The alias table is built in float64 with Vose's stable variant in a fixed order, so the
//! TypeScript reference builds the same table and, from the same seed, draws the same indices:
//! draw t uses the stream's outputs 2t and 2t + 1 as uniforms u, u' ∈ (0, 1): column
//! i = min(⌊u·K⌋, K − 1), then i when u' < prob[i], else alias[i].

use crate::bail;
use crate::error::{check_finite, check_matrix, js_num, Result};
use crate::pool;
use crate::statistics::SplitMix64;
use crate::view::Operand;
use densevec_kernels as k;
use rayon::prelude::*;

/// Walker's alias table over K categories.
#[derive(Clone, Debug)]
pub struct AliasTable {
    /// Acceptance probability of each column.
    pub prob: Vec<f64>,
    /// The other category of each column.
    pub alias: Vec<u32>,
    /// The normalized target distribution.
    pub probabilities: Vec<f64>,
}

/// Checks sampler weights: non-empty (E_SHAPE), none negative (E_ARG), finite (E_NON_FINITE),
/// at least one positive (E_ARG).
fn check_weights(func: &str, name: &str, w: &[f64]) -> Result<()> {
    if w.is_empty() {
        bail!(Shape, "{func}: {name} is empty");
    }
    if w.len() > u32::MAX as usize {
        bail!(
            Shape,
            "{func}: {name} has {} entries, more than 2^32 − 1",
            w.len()
        );
    }
    if let Some(i) = w.iter().position(|&v| v < 0.0) {
        bail!(Arg, "{func}: {name}[{i}] = {} is negative", js_num(w[i]));
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        bail!(
            NonFinite,
            "{func}: {name} has a non-finite value {} at index {i}",
            js_num(w[i])
        );
    }
    Ok(())
}

impl AliasTable {
    /// Builds the table of `weights` (non-negative, finite, at least one positive).
    pub fn new(weights: &[f64]) -> Result<AliasTable> {
        const F: &str = "AliasSampler";
        check_weights(F, "weights", weights)?;
        let total: f64 = weights.iter().sum();
        if total == 0.0 {
            bail!(
                Arg,
                "{F}: weights are all zero (at least one must be positive)"
            );
        }
        if !total.is_finite() {
            bail!(
                Arg,
                "{F}: the sum of weights overflows (got {})",
                js_num(total)
            );
        }
        let kk = weights.len();
        let probabilities: Vec<f64> = weights.iter().map(|&w| w / total).collect();
        let mut q: Vec<f64> = probabilities.iter().map(|&p| p * kk as f64).collect();
        let mut prob = vec![0f64; kk];
        let mut alias = vec![0u32; kk];
        let mut small = Vec::with_capacity(kk);
        let mut large = Vec::with_capacity(kk);
        for (i, &v) in q.iter().enumerate() {
            if v < 1.0 {
                small.push(i);
            } else {
                large.push(i);
            }
        }
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            large.pop();
            prob[s] = q[s];
            alias[s] = l as u32;
            q[l] = (q[l] + q[s]) - 1.0;
            if q[l] < 1.0 {
                small.push(l);
            } else {
                large.push(l);
            }
        }
        for i in large.into_iter().chain(small) {
            prob[i] = 1.0;
            alias[i] = i as u32;
        }
        Ok(AliasTable {
            prob,
            alias,
            probabilities,
        })
    }

    /// `n` draws continuing the stream of `seed` after `draws` outputs (two per sample).
    pub fn sample(&self, seed: u64, draws: u64, n: usize) -> Result<Vec<u32>> {
        let mut out = crate::alloc::try_vec("AliasSampler.sample", "the draws", n)?;
        self.sample_into(seed, draws, &mut out);
        Ok(out)
    }

    /// [`AliasTable::sample`] into `out` (one draw per value, every value written).
    pub fn sample_into(&self, seed: u64, draws: u64, out: &mut [u32]) {
        let mut rng = SplitMix64::at(seed, draws);
        let kk = self.prob.len();
        for o in out {
            let u = rng.uniform();
            let i = ((u * kk as f64) as usize).min(kk - 1);
            let u2 = rng.uniform();
            *o = if u2 < self.prob[i] {
                i as u32
            } else {
                self.alias[i]
            };
        }
    }

    /// log p(index) of each index (−∞ for a zero-weight category); E_ARG when out of range.
    pub fn log_prob(&self, indices: &[u32]) -> Result<Vec<f32>> {
        let kk = self.probabilities.len();
        if let Some(i) = indices.iter().position(|&v| v as usize >= kk) {
            bail!(
                Arg,
                "AliasSampler.logProb: indices[{i}] = {} is out of range [0, {kk})",
                indices[i]
            );
        }
        Ok(indices
            .iter()
            .map(|&v| self.probabilities[v as usize].ln() as f32)
            .collect())
    }
}

/// counts^power, elementwise (word2vec's unigram^0.75 noise distribution, unnormalized).
pub fn unigram_weights(counts: &[f64], power: f64) -> Result<Vec<f64>> {
    const F: &str = "unigramWeights";
    if counts.is_empty() {
        bail!(Shape, "{F}: counts is empty");
    }
    if !power.is_finite() || power < 0.0 {
        bail!(
            Arg,
            "{F}: power must be >= 0 and finite, got {}",
            js_num(power)
        );
    }
    check_weights(F, "counts", counts)?;
    Ok(counts.iter().map(|&c| c.powf(power)).collect())
}

/// Result of [`negative_sampling_loss`].
#[derive(Clone, Debug)]
pub struct NegSampling {
    pub loss: f64,
    pub grad_x: Vec<f32>,
    pub grad_positives: Vec<f32>,
    pub grad_negatives: Vec<f32>,
}

/// log(1 + e^t) without overflow.
#[inline]
pub fn softplus(t: f64) -> f64 {
    t.max(0.0) + (-t.abs()).exp().ln_1p()
}

/// σ(t) without overflow.
#[inline]
pub fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// Anchors per task.
const ANCHORS: usize = 64;

/// One task's rows of gradX, gradPositives, gradNegatives and its loss sum.
type NsTask<'a> = (((&'a mut [f32], &'a mut [f32]), &'a mut [f32]), &'a mut f64);

/// The checked shape of a negative-sampling call.
#[derive(Clone, Copy, Debug)]
pub struct NsShape {
    /// Anchors (rows of x and of the positives).
    pub n: usize,
    /// Negatives per anchor.
    pub k: usize,
    /// Rows of the negatives (n·k).
    pub neg_rows: usize,
}

/// Every argument check of [`negative_sampling_loss`], in its order (shapes, k, logQ, finite
/// values); the shape of the call.
pub fn negative_sampling_check(
    x: Operand,
    pos: &[f32],
    neg: Operand,
    d: usize,
    kk: Option<usize>,
    log_q: Option<&[f32]>,
) -> Result<NsShape> {
    const F: &str = "negativeSamplingLoss";
    let n = x.rows;
    let x = x.check(F, "x", d)?.data;
    check_matrix(F, "positives", pos, n, d)?;
    let (neg, neg_rows) = (neg.check(F, "negatives", d)?.data, neg.rows);
    let k_ = match kk {
        Some(v) => {
            if v.checked_mul(n) != Some(neg_rows) && v >= 1 {
                bail!(
                    Shape,
                    "{F}: negatives has {neg_rows} rows but x has {n} rows and k = {v} (needs n·k)"
                );
            }
            v
        }
        None => {
            if !neg_rows.is_multiple_of(n) {
                bail!(
                    Shape,
                    "{F}: negatives has {neg_rows} rows, not a multiple of x's {n} rows"
                );
            }
            neg_rows / n
        }
    };
    if let Some(lq) = log_q {
        if lq.len() != n + neg_rows {
            bail!(
                Shape,
                "{F}: logQ has length {} but there are n + n·k = {} scored rows",
                lq.len(),
                n + neg_rows
            );
        }
    }
    if k_ < 1 {
        bail!(Arg, "{F}: k must be >= 1, got {k_}");
    }
    check_finite(F, "x", x)?;
    check_finite(F, "positives", pos)?;
    check_finite(F, "negatives", neg)?;
    if let Some(lq) = log_q {
        check_finite(F, "logQ", lq)?;
    }
    Ok(NsShape { n, k: k_, neg_rows })
}

/// Binary negative-sampling loss over anchors x (n × d), their positives (n × d) and k
/// negatives each (n·k × d, k consecutive rows per anchor):
/// mean_i [softplus(−o⁺_i) + Σ_r softplus(o⁻_ir)] with o = s − log(k·Q) when `log_q` (the
/// n + n·k log sampling probabilities, positives first: NCE), else o = s (word2vec).
pub fn negative_sampling_loss(
    x: Operand,
    pos: &[f32],
    neg: Operand,
    d: usize,
    kk: Option<usize>,
    log_q: Option<&[f32]>,
) -> Result<NegSampling> {
    const F: &str = "negativeSamplingLoss";
    let sh = negative_sampling_check(x, pos, neg, d, kk, log_q)?;
    let mut gx: Vec<f32> = crate::alloc::try_mat(F, "gradX", sh.n, d, "")?;
    let mut gp: Vec<f32> = crate::alloc::try_mat(F, "gradPositives", sh.n, d, "")?;
    let mut gn: Vec<f32> = crate::alloc::try_mat(F, "gradNegatives", sh.neg_rows, d, "")?;
    let loss = ns_compute(
        (x.data, pos, neg.data),
        d,
        sh,
        log_q,
        (&mut gx, &mut gp, &mut gn),
    );
    Ok(NegSampling {
        loss,
        grad_x: gx,
        grad_positives: gp,
        grad_negatives: gn,
    })
}

/// [`negative_sampling_loss`] with the gradients computed in the caller's buffers (n × d,
/// n × d and n·k × d values of any contents, every value written: buffers that the caller
/// returns, so that nothing is zeroed first or copied); returns the loss. The same values, bit
/// for bit.
pub fn negative_sampling_loss_into(
    (x, pos, neg): (Operand, &[f32], Operand),
    d: usize,
    kk: Option<usize>,
    log_q: Option<&[f32]>,
    (gx, gp, gn): (&mut [f32], &mut [f32], &mut [f32]),
) -> Result<f64> {
    let sh = negative_sampling_check(x, pos, neg, d, kk, log_q)?;
    if gx.len() != sh.n * d || gp.len() != sh.n * d || gn.len() != sh.neg_rows * d {
        bail!(
            Shape,
            "negativeSamplingLoss: gradient buffers of {}, {} and {} values for {} and {} rows of {d}",
            gx.len(),
            gp.len(),
            gn.len(),
            sh.n,
            sh.neg_rows
        );
    }
    Ok(ns_compute(
        (x.data, pos, neg.data),
        d,
        sh,
        log_q,
        (gx, gp, gn),
    ))
}

/// The loss, with its gradients written into buffers of any contents (checked arguments): each
/// row is zeroed by its task just before it accumulates into it (in cache, in parallel), the
/// same bits as accumulating into zeroed memory.
fn ns_compute(
    (x, pos, neg): (&[f32], &[f32], &[f32]),
    d: usize,
    sh: NsShape,
    log_q: Option<&[f32]>,
    (gx, gp, gn): (&mut [f32], &mut [f32], &mut [f32]),
) -> f64 {
    let (n, k_) = (sh.n, sh.k);
    let lnk = (k_ as f64).ln();
    let shift = |idx: usize| log_q.map_or(0.0, |lq| lnk + lq[idx] as f64);
    let inv_n = 1.0 / n as f64;
    let mut lossv = vec![0f64; n.div_ceil(ANCHORS)];
    let work = |(blk, (((gxb, gpb), gnb), lv)): (usize, NsTask)| {
        let a0 = blk * ANCHORS;
        let mut l = 0f64;
        for r in 0..gxb.len() / d {
            let i = a0 + r;
            let xi = &x[i * d..(i + 1) * d];
            let gxi = &mut gxb[r * d..(r + 1) * d];
            let yp = &pos[i * d..(i + 1) * d];
            let o = crate::similarity::dot_pair(xi, yp) - shift(i);
            l += softplus(-o);
            let c = (-sigmoid(-o) * inv_n) as f32;
            gxi.fill(0.0);
            k::axpy(gxi, c, yp);
            let gpi = &mut gpb[r * d..(r + 1) * d];
            gpi.fill(0.0);
            k::axpy(gpi, c, xi);
            for t in 0..k_ {
                let j = i * k_ + t;
                let yn = &neg[j * d..(j + 1) * d];
                let o = crate::similarity::dot_pair(xi, yn) - shift(n + j);
                l += softplus(o);
                let c = (sigmoid(o) * inv_n) as f32;
                k::axpy(gxi, c, yn);
                let gr = (r * k_ + t) * d;
                let gnj = &mut gnb[gr..gr + d];
                gnj.fill(0.0);
                k::axpy(gnj, c, xi);
            }
        }
        *lv = l;
    };
    pool::run(|| {
        gx.par_chunks_mut(ANCHORS * d)
            .zip(gp.par_chunks_mut(ANCHORS * d))
            .zip(gn.par_chunks_mut(ANCHORS * k_ * d))
            .zip(lossv.par_iter_mut())
            .enumerate()
            .for_each(work)
    });
    lossv.iter().sum::<f64>() * inv_n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::assert_fd;

    /// The in-place form writes every value of the caller's buffers: started from NaN, the
    /// gradients and loss are the bits of the vector form (word2vec and NCE, several tasks).
    #[test]
    fn into_writes_every_value_of_buffers_of_any_contents() {
        use crate::testdata::randv;
        let (n, k, d) = (150, 3, 13);
        let (x, p, ng) = (randv(n * d, 1), randv(n * d, 2), randv(n * k * d, 3));
        let lq: Vec<f32> = (0..n + n * k).map(|i| -((i + 5) as f32).ln()).collect();
        for log_q in [None, Some(&lq[..])] {
            let (xo, no) = (Operand::new(&x, n), Operand::new(&ng, n * k));
            let want = negative_sampling_loss(xo, &p, no, d, Some(k), log_q).unwrap();
            let (mut gx, mut gp, mut gn) = (
                vec![f32::NAN; n * d],
                vec![f32::NAN; n * d],
                vec![f32::NAN; n * k * d],
            );
            let loss = negative_sampling_loss_into(
                (xo, &p, no),
                d,
                None,
                log_q,
                (&mut gx, &mut gp, &mut gn),
            )
            .unwrap();
            assert_eq!(loss.to_bits(), want.loss.to_bits());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&gx), bits(&want.grad_x));
            assert_eq!(bits(&gp), bits(&want.grad_positives));
            assert_eq!(bits(&gn), bits(&want.grad_negatives));
            // Buffers of the wrong length: E_SHAPE, nothing computed.
            let e = negative_sampling_loss_into(
                (xo, &p, no),
                d,
                None,
                log_q,
                (&mut gx[1..], &mut gp, &mut gn),
            )
            .unwrap_err();
            assert_eq!(e.code, crate::Code::Shape);
        }
    }

    #[test]
    fn alias_matches_distribution_and_is_deterministic() {
        let w = [1.0, 0.0, 3.0, 6.0];
        let t = AliasTable::new(&w).unwrap();
        let s = t.sample(7, 0, 40000).unwrap();
        let mut c = [0usize; 4];
        for &v in &s {
            c[v as usize] += 1;
        }
        assert_eq!(c[1], 0);
        for (i, &cnt) in c.iter().enumerate() {
            let e = t.probabilities[i] * 40000.0;
            assert!(
                (cnt as f64 - e).abs() < 5.0 * e.sqrt().max(1.0),
                "{i}: {cnt} vs {e}"
            );
        }
        // Continuing the stream equals one longer draw.
        let a = t.sample(7, 0, 10).unwrap();
        let b = t.sample(7, 20, 5).unwrap();
        assert_eq!(&s[10..15], &b[..]);
        assert_eq!(&s[..10], &a[..]);
    }

    #[test]
    fn bad_weights() {
        use crate::Code;
        assert_eq!(AliasTable::new(&[1.0, -1.0]).unwrap_err().code, Code::Arg);
        assert_eq!(AliasTable::new(&[0.0, 0.0]).unwrap_err().code, Code::Arg);
        assert_eq!(
            AliasTable::new(&[1.0, f64::NAN]).unwrap_err().code,
            Code::NonFinite
        );
        assert_eq!(AliasTable::new(&[]).unwrap_err().code, Code::Shape);
    }

    #[test]
    fn ns_gradients_match_finite_differences() {
        let (n, kk, d) = (3, 2, 4);
        let mut x: Vec<f32> = (0..n * d)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 6.0)
            .collect();
        let p: Vec<f32> = (0..n * d)
            .map(|i| ((i * 5 % 13) as f32 - 6.0) / 7.0)
            .collect();
        let ng: Vec<f32> = (0..n * kk * d)
            .map(|i| ((i * 3 % 7) as f32 - 3.0) / 4.0)
            .collect();
        let lq: Vec<f32> = (0..n + n * kk).map(|i| -1.0 - i as f32 * 0.1).collect();
        let ngo = Operand::new(&ng, n * kk);
        let loss = |x: &[f32], kk: Option<usize>| {
            negative_sampling_loss(Operand::new(x, n), &p, ngo, d, kk, Some(&lq)).unwrap()
        };
        let r = loss(&x, None);
        for t in 0..x.len() {
            let x0 = x[t];
            x[t] = x0 + 1e-2;
            let up = loss(&x, Some(kk)).loss;
            x[t] = x0 - 1e-2;
            let dn = loss(&x, Some(kk)).loss;
            x[t] = x0;
            let fd = (up - dn) / 2e-2;
            assert_fd(fd, r.grad_x[t], 1e-3, &t.to_string());
        }
        assert!(softplus(1000.0).is_finite() && softplus(-1000.0) == 0.0);
    }

    /// Scores past the float32 range (entries of 3e38, 1e20) are formed in float64: the loss is
    /// the float64 one (finite), not +∞, and the gradients are those of the float64 scores.
    #[test]
    fn scores_past_the_float32_range_are_formed_in_float64() {
        let (n, kk, d) = (2, 2, 3);
        for big in [3e38f32, 1e20, -2e25] {
            let x = vec![big; n * d];
            let p: Vec<f32> = (0..n * d).map(|i| (i as f32 - 2.5) / 4.0).collect();
            let ng: Vec<f32> = (0..n * kk * d).map(|i| (i as f32 - 5.5) / 6.0).collect();
            let r = negative_sampling_loss(
                Operand::new(&x, n),
                &p,
                Operand::new(&ng, n * kk),
                d,
                None,
                None,
            )
            .unwrap();
            let dot = |a: &[f32], b: &[f32]| -> f64 {
                a.iter().zip(b).map(|(&u, &v)| u as f64 * v as f64).sum()
            };
            let mut want = 0f64;
            let mut gx = vec![0f64; n * d];
            for i in 0..n {
                let xi = &x[i * d..(i + 1) * d];
                let o = dot(xi, &p[i * d..(i + 1) * d]);
                want += softplus(-o);
                for (g, &v) in gx[i * d..(i + 1) * d]
                    .iter_mut()
                    .zip(&p[i * d..(i + 1) * d])
                {
                    *g += -sigmoid(-o) / n as f64 * v as f64;
                }
                for t in 0..kk {
                    let yn = &ng[(i * kk + t) * d..(i * kk + t + 1) * d];
                    let o = dot(xi, yn);
                    want += softplus(o);
                    for (g, &v) in gx[i * d..(i + 1) * d].iter_mut().zip(yn) {
                        *g += sigmoid(o) / n as f64 * v as f64;
                    }
                }
            }
            want /= n as f64;
            assert!(r.loss.is_finite(), "{big}: loss {}", r.loss);
            assert!(
                (r.loss - want).abs() <= 1e-6 * want.abs(),
                "{big}: {} vs {want}",
                r.loss
            );
            for (t, (&g, &w)) in r.grad_x.iter().zip(&gx).enumerate() {
                assert!(
                    (g as f64 - w).abs() <= 1e-6 * (1.0 + w.abs()),
                    "{big} gradX[{t}]: {g} vs {w}"
                );
            }
        }
    }
}
