//! Chapter 6: practical mechanisms and regularizers — batch normalization (PyTorch
//! `BatchNorm1d(affine=False)` semantics), embedding drift, sparsity and the Wasserstein
//! pairwise-similarity regularizer with its gradients.

use crate::alloc;
use crate::bail;
use crate::error::{check_finite, check_matrix, Result};
use crate::pool;
use densevec_kernels as k;
use rayon::prelude::*;

// ---------------------------------------------------------------------------------------------
// Batch normalization

/// Column statistics in f64: (mean, Σ(x − mean)²) by two passes over the rows.
pub(crate) fn column_stats(x: &[f32], rows: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0f64; cols];
    for r in x.chunks_exact(cols) {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v as f64;
        }
    }
    for m in mean.iter_mut() {
        *m /= rows as f64;
    }
    let mut ss = vec![0f64; cols];
    for r in x.chunks_exact(cols) {
        for ((s, &m), &v) in ss.iter_mut().zip(&mean).zip(r) {
            let t = v as f64 - m;
            *s += t * t;
        }
    }
    (mean, ss)
}

/// A batch-normalization layer's state for one forward pass: the running statistics (updated
/// in place in training mode) and its hyper-parameters.
#[derive(Debug)]
pub struct BatchNormLayer<'a> {
    pub running_mean: &'a mut [f32],
    pub running_var: &'a mut [f32],
    pub momentum: f64,
    pub eps: f64,
}

/// One forward pass of batch normalization over the rows of `x` (rows × cols). In training
/// mode (rows ≥ 2) it normalizes with the batch mean and biased variance and updates
/// the layer's `running_mean`/`running_var` in place (unbiased variance, PyTorch's momentum
/// convention); otherwise it normalizes with the running statistics.
pub fn batch_norm_forward(
    x: &[f32],
    rows: usize,
    cols: usize,
    layer: BatchNormLayer,
    training: bool,
) -> Result<Vec<f32>> {
    const F: &str = "BatchNorm.forward";
    let BatchNormLayer {
        running_mean,
        running_var,
        momentum,
        eps,
    } = layer;
    check_matrix(F, "m", x, rows, cols)?;
    if running_mean.len() != cols || running_var.len() != cols {
        bail!(
            Shape,
            "{F}: m has {cols} columns but the layer has dim {}",
            running_mean.len()
        );
    }
    if training && rows < 2 {
        bail!(
            Shape,
            "{F}: training mode needs at least 2 rows, got {rows}"
        );
    }
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(0.0..=1.0).contains(&momentum) || !(eps > 0.0) {
        bail!(
            Arg,
            "{F}: momentum must be in [0, 1] and eps > 0, got {momentum} and {eps}"
        );
    }
    check_finite(F, "m", x)?;
    let (mean, var): (Vec<f64>, Vec<f64>) = if training {
        let (mean, ss) = column_stats(x, rows, cols);
        let n = rows as f64;
        for j in 0..cols {
            running_mean[j] =
                ((1.0 - momentum) * running_mean[j] as f64 + momentum * mean[j]) as f32;
            running_var[j] =
                ((1.0 - momentum) * running_var[j] as f64 + momentum * (ss[j] / (n - 1.0))) as f32;
        }
        (mean, ss.iter().map(|s| s / n).collect())
    } else {
        (
            running_mean.iter().map(|&v| v as f64).collect(),
            running_var.iter().map(|&v| v as f64).collect(),
        )
    };
    let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let mut out = alloc::try_mat(F, "the output", rows, cols, "")?;
    for (o, r) in out.chunks_exact_mut(cols).zip(x.chunks_exact(cols)) {
        for j in 0..cols {
            o[j] = ((r[j] as f64 - mean[j]) * inv[j]) as f32;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Embedding drift and sparsity

fn same_shape(func: &str, a: &[f32], b: &[f32], rows: usize, cols: usize) -> Result<()> {
    check_matrix(func, "a", a, rows, cols)?;
    check_matrix(func, "b", b, rows, cols)?;
    Ok(())
}

/// (mean cosine, mean Euclidean distance) over matching rows of a and b.
pub fn embedding_drift(a: &[f32], b: &[f32], rows: usize, cols: usize) -> Result<(f64, f64)> {
    const F: &str = "embeddingDrift";
    same_shape(F, a, b, rows, cols)?;
    check_finite(F, "a", a)?;
    check_finite(F, "b", b)?;
    let (mut cs, mut ls) = (0f64, 0f64);
    for (ra, rb) in a.chunks_exact(cols).zip(b.chunks_exact(cols)) {
        // Both over the whole float32 range (float64 where float32 sums would over- or
        // underflow).
        cs += crate::similarity::cosine_pair(ra, rb);
        ls += crate::similarity::l2sq_pair(ra, rb).sqrt();
    }
    Ok((cs / rows as f64, ls / rows as f64))
}

/// (fraction of entries with |x| ≤ eps, mean Hoyer sparsity of the rows); cols ≥ 2.
pub fn sparsity(m: &[f32], rows: usize, cols: usize, eps: f64) -> Result<(f64, f64)> {
    const F: &str = "sparsity";
    check_matrix(F, "m", m, rows, cols)?;
    if cols < 2 {
        bail!(Arg, "{F}: m needs at least 2 columns, got {cols}");
    }
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(eps >= 0.0) {
        bail!(Arg, "{F}: eps must be >= 0, got {eps}");
    }
    check_finite(F, "m", m)?;
    let sd = (cols as f64).sqrt();
    let (mut near, mut h) = (0usize, 0f64);
    for r in m.chunks_exact(cols) {
        let (mut l1, mut l2) = (0f64, 0f64);
        for &v in r {
            let a = (v as f64).abs();
            if a <= eps {
                near += 1;
            }
            l1 += a;
            l2 += a * a;
        }
        if l2 > 0.0 {
            h += (sd - l1 / l2.sqrt()) / (sd - 1.0);
        }
    }
    Ok((near as f64 / m.len() as f64, h / rows as f64))
}

// ---------------------------------------------------------------------------------------------
// Wasserstein pairwise-similarity regularizer

/// Result of [`wasserstein_regularizer`].
pub struct Wasserstein {
    pub loss: f64,
    pub grad_a: Vec<f32>,
    pub grad_b: Vec<f32>,
}

/// Largest n accepted (pair codes i·n + j must fit in 32 bits).
pub const MAX_WASSERSTEIN_ROWS: usize = 65536;
/// Rows per block of the pairwise-similarity GEMM and of the gradient GEMM.
const W_ROWS: usize = 64;
/// Sorted slots per piece of the loss and coefficient pass.
const W_SLOTS: usize = 1 << 16;
const WF: &str = "wassersteinRegularizer";

/// Order-preserving map of a finite f32 to u32 (−0 and +0 map alike).
#[inline(always)]
pub fn order_bits(s: f32) -> u32 {
    let b = (s + 0.0).to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

#[inline(always)]
pub fn from_order_bits(u: u32) -> f32 {
    f32::from_bits(if u & 0x8000_0000 != 0 {
        u & 0x7FFF_FFFF
    } else {
        !u
    })
}

/// Stable LSD radix sort of `keys` by their upper 32 bits: four 8-bit passes (histograms from
/// one read), skipping a pass whose digit is the same for every key.
fn radix_sort_hi(keys: &mut Vec<u64>) -> Result<()> {
    let mut hist = vec![[0usize; 256]; 4];
    for &x in keys.iter() {
        for (p, h) in hist.iter_mut().enumerate() {
            h[((x >> (32 + 8 * p)) & 0xFF) as usize] += 1;
        }
    }
    let mut tmp = alloc::try_vec(WF, "the sorted pair keys", keys.len())?;
    for (p, h) in hist.iter_mut().enumerate() {
        if h.contains(&keys.len()) {
            continue;
        }
        let mut sum = 0;
        for c in h.iter_mut() {
            let t = *c;
            *c = sum;
            sum += t;
        }
        let shift = 32 + 8 * p;
        for &x in keys.iter() {
            let b = ((x >> shift) & 0xFF) as usize;
            tmp[h[b]] = x;
            h[b] += 1;
        }
        std::mem::swap(keys, &mut tmp);
    }
    Ok(())
}

/// Writes the coefficients of the sorted slots into the upper triangle of the n × n matrix
/// `g` at each slot's pair, then mirrors it (blocked) into the lower triangle.
fn scatter_symmetric(g: &mut [f32], keys: &[u64], coef: &[f32], sign: f32, n: usize) {
    for (&k, &c) in keys.iter().zip(coef) {
        let i = ((k >> 16) & 0xFFFF) as usize;
        let j = (k & 0xFFFF) as usize;
        g[i * n + j] = sign * c;
    }
    const B: usize = 64;
    for i0 in (0..n).step_by(B) {
        for j0 in (i0..n).step_by(B) {
            for i in i0..(i0 + B).min(n) {
                for j in j0.max(i + 1)..(j0 + B).min(n) {
                    g[j * n + i] = g[i * n + j];
                }
            }
        }
    }
}

/// One view: unit rows (f32), row norms, and the sorted keys (order bits of S_ij << 32 | i << 16 | j)
/// of the upper-triangle cosines, ascending, equal values in pair order.
struct View {
    xh: Vec<f32>,
    norms: Vec<f64>,
    keys: Vec<u64>,
}

/// Unit rows of x (n × d) and their norms, the norm computed with a max-scaling so it neither
/// overflows nor underflows (rows are known to be finite and non-zero).
#[doc(hidden)]
pub fn unit_rows(x: &[f32], n: usize, d: usize) -> Result<(Vec<f32>, Vec<f64>)> {
    let mut xh = alloc::try_mat(WF, "the unit rows", n, d, "")?;
    let mut norms = vec![0f64; n];
    for ((o, r), nr) in xh
        .chunks_exact_mut(d)
        .zip(x.chunks_exact(d))
        .zip(norms.iter_mut())
    {
        let m = r.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
        let s: f64 = r.iter().map(|&v| (v as f64 / m).powi(2)).sum();
        *nr = m * s.sqrt();
        let inv = 1.0 / *nr;
        for (oo, &v) in o.iter_mut().zip(r) {
            *oo = (v as f64 * inv) as f32;
        }
    }
    Ok((xh, norms))
}

fn view(x: &[f32], n: usize, d: usize) -> Result<View> {
    let npairs = alloc::elems(WF, "the pair keys", &[n, n - 1], 8, "")? / 2;
    let mut keys = alloc::try_vec(WF, "the N(N−1)/2 pair keys", npairs)?;
    let (xh, norms) = unit_rows(x, n, d)?;
    // Split the output into the contiguous pair ranges of fixed row blocks.
    let mut parts: Vec<(usize, &mut [u64])> = Vec::new();
    let mut rest: &mut [u64] = &mut keys;
    for i0 in (0..n).step_by(W_ROWS) {
        let i1 = (i0 + W_ROWS).min(n);
        let cnt: usize = (i0..i1).map(|i| n - 1 - i).sum();
        let (head, tail) = rest.split_at_mut(cnt);
        parts.push((i0, head));
        rest = tail;
    }
    let xr = &xh;
    pool::run(|| {
        parts.into_par_iter().for_each(|(i0, out)| {
            let i1 = (i0 + W_ROWS).min(n);
            let mb = i1 - i0;
            let w = n - i0;
            let mut tile = vec![0f32; mb * w];
            k::gemm_nt(
                mb,
                w,
                d,
                (&xr[i0 * d..i1 * d], d),
                (&xr[i0 * d..], d),
                (&mut tile, w),
            );
            let mut o = 0;
            for i in i0..i1 {
                let row = &tile[(i - i0) * w..(i - i0 + 1) * w];
                for j in i + 1..n {
                    out[o] =
                        ((order_bits(row[j - i0]) as u64) << 32) | ((i as u64) << 16) | j as u64;
                    o += 1;
                }
            }
        })
    });
    radix_sort_hi(&mut keys)?;
    Ok(View { xh, norms, keys })
}

/// Gradient wrt the raw rows from the symmetric coefficient matrix `g` (n × n, zero diagonal):
/// ∂/∂x̂ = G·X̂ (blocked GEMM), then through the normalization x̂ = x/‖x‖.
fn backprop(g: &[f32], v: &View, n: usize, d: usize) -> Result<Vec<f32>> {
    let mut out = alloc::try_mat(WF, "the N × d gradient", n, d, "")?;
    pool::par_row_blocks(&mut out, d, W_ROWS, |i0, o| {
        let mb = o.len() / d;
        k::gemm_nn(
            mb,
            d,
            n,
            (&g[i0 * n..(i0 + mb) * n], n),
            (&v.xh, d),
            (o, d),
            false,
        );
        for (r, orow) in o.chunks_exact_mut(d).enumerate() {
            let i = i0 + r;
            let xr = &v.xh[i * d..(i + 1) * d];
            let t = k::dot(orow, xr);
            let inv = (1.0 / v.norms[i]) as f32;
            for (oo, &xv) in orow.iter_mut().zip(xr) {
                *oo = (*oo - t * xv) * inv;
            }
        }
    });
    Ok(out)
}

/// The argument checks of [`wasserstein_regularizer`] (shared with the GPU backend).
#[doc(hidden)]
pub fn wasserstein_check(a: &[f32], b: &[f32], n: usize, d: usize, p: u32) -> Result<()> {
    const F: &str = "wassersteinRegularizer";
    check_matrix(F, "a", a, n, d)?;
    check_matrix(F, "b", b, n, d)?;
    if n < 2 {
        bail!(Shape, "{F}: a has {n} row(s) but at least 2 are needed");
    }
    if p != 1 && p != 2 {
        bail!(Arg, "{F}: p must be 1 or 2, got {p}");
    }
    if n > MAX_WASSERSTEIN_ROWS {
        bail!(
            Arg,
            "{F}: at most {MAX_WASSERSTEIN_ROWS} rows are supported, got {n}"
        );
    }
    check_finite(F, "a", a)?;
    check_finite(F, "b", b)?;
    for (name, m) in [("a", a), ("b", b)] {
        if let Some(i) = m.chunks_exact(d).position(|r| r.iter().all(|&v| v == 0.0)) {
            bail!(Arg, "{F}: {name} has a zero-norm row {i}");
        }
    }
    Ok(())
}

/// Wasserstein geometry regularizer (API.md §6): loss = (1/N) Σ_k |S_a,(k) − S_b,(k)|^p over the
/// sorted upper-triangle cosines of the unit rows of a and b, with gradients through the sort
/// permutation (stable) and the normalization. Memory O(n²) = O(N): the sorted keys and the
/// n × n coefficient matrix; no N × d array is formed.
pub fn wasserstein_regularizer(
    a: &[f32],
    b: &[f32],
    n: usize,
    d: usize,
    p: u32,
) -> Result<Wasserstein> {
    wasserstein_check(a, b, n, d, p)?;
    let (va, vb) = pool::run(|| rayon::join(|| view(a, n, d), || view(b, n, d)));
    let (mut va, mut vb) = (va?, vb?);
    let (keys_a, keys_b) = (std::mem::take(&mut va.keys), std::mem::take(&mut vb.keys));
    let npairs = keys_a.len();
    let nf = npairs as f64;
    // Per-slot coefficient g_k = ∂loss/∂S_a,(k) = −∂loss/∂S_b,(k); the loss sums in slot order
    // within fixed pieces of slots, and the pieces in order.
    let mut coef = alloc::try_vec(WF, "the pair coefficients", npairs)?;
    let parts: Vec<f64> = pool::run(|| {
        coef.par_chunks_mut(W_SLOTS)
            .zip(keys_a.par_chunks(W_SLOTS).zip(keys_b.par_chunks(W_SLOTS)))
            .map(|(cs, (ka, kb))| {
                let mut loss = 0f64;
                for ((&ka, &kb), c) in ka.iter().zip(kb).zip(cs.iter_mut()) {
                    let sa = from_order_bits((ka >> 32) as u32) as f64;
                    let sb = from_order_bits((kb >> 32) as u32) as f64;
                    let diff = sa - sb;
                    let g = if p == 2 {
                        loss += diff * diff;
                        2.0 * diff / nf
                    } else {
                        loss += diff.abs();
                        if diff > 0.0 {
                            1.0 / nf
                        } else if diff < 0.0 {
                            -1.0 / nf
                        } else {
                            0.0
                        }
                    };
                    *c = g as f32;
                }
                loss
            })
            .collect()
    });
    let loss: f64 = parts.iter().sum();
    let mut ga = alloc::try_mat(WF, "the N × N coefficient matrix", n, n, "")?;
    let mut gb = alloc::try_mat(WF, "the N × N coefficient matrix", n, n, "")?;
    pool::run(|| {
        rayon::join(
            || scatter_symmetric(&mut ga, &keys_a, &coef, 1.0, n),
            || scatter_symmetric(&mut gb, &keys_b, &coef, -1.0, n),
        )
    });
    drop((keys_a, keys_b, coef));
    let (grad_a, grad_b) =
        pool::run(|| rayon::join(|| backprop(&ga, &va, n, d), || backprop(&gb, &vb, n, d)));
    let (grad_a, grad_b) = (grad_a?, grad_b?);
    Ok(Wasserstein {
        loss: loss / nf,
        grad_a,
        grad_b,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_bits_round_trip_and_order() {
        let vals = [-1.0f32, -0.5, -1e-30, -0.0, 0.0, 1e-30, 0.25, 1.0];
        for w in vals.windows(2) {
            assert!(order_bits(w[0]) <= order_bits(w[1]));
        }
        assert_eq!(order_bits(-0.0), order_bits(0.0));
        for &v in &vals {
            assert_eq!(from_order_bits(order_bits(v)), v + 0.0);
        }
    }

    #[test]
    fn radix_sort_is_stable() {
        let mut keys: Vec<u64> = [
            (5u64, 0u64),
            (3, 1),
            (5, 2),
            (3, 3),
            (0, 4),
            (u32::MAX as u64, 5),
        ]
        .iter()
        .map(|&(hi, lo)| (hi << 32) | lo)
        .collect();
        radix_sort_hi(&mut keys).unwrap();
        let lo: Vec<u64> = keys.iter().map(|k| k & 0xFFFF_FFFF).collect();
        assert_eq!(lo, vec![4, 1, 3, 0, 2, 5]);
    }

    #[test]
    fn identical_views_have_zero_loss_and_gradient() {
        let (n, d) = (9, 5);
        let a: Vec<f32> = (0..n * d)
            .map(|i| ((i * 7919) % 13) as f32 - 6.0 + 0.5)
            .collect();
        let w = wasserstein_regularizer(&a, &a, n, d, 2).unwrap();
        assert_eq!(w.loss, 0.0);
        assert!(w.grad_a.iter().all(|&g| g == 0.0));
    }

    #[test]
    fn batch_norm_updates_running_stats() {
        let x = [1.0f32, 2.0, 3.0, 6.0];
        let (mut m, mut v) = (vec![0f32; 2], vec![1f32; 2]);
        fn layer<'a>(
            running_mean: &'a mut [f32],
            running_var: &'a mut [f32],
        ) -> BatchNormLayer<'a> {
            BatchNormLayer {
                running_mean,
                running_var,
                momentum: 0.1,
                eps: 1e-5,
            }
        }
        let y = batch_norm_forward(&x, 2, 2, layer(&mut m, &mut v), true).unwrap();
        assert!((m[0] - 0.2).abs() < 1e-6 && (m[1] - 0.4).abs() < 1e-6);
        // Unbiased variances 2 and 8.
        assert!((v[0] - 1.1).abs() < 1e-6 && (v[1] - 1.7).abs() < 1e-6);
        assert!((y[0] + 1.0).abs() < 1e-4 && (y[2] - 1.0).abs() < 1e-4);
        assert!(batch_norm_forward(&x[..2], 1, 2, layer(&mut m, &mut v), true).is_err());
    }
}
