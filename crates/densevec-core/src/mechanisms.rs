//! Chapter 6 additions: the proximal L1 step (soft thresholding), the affine part and the
//! backward pass of batch normalization (PyTorch `BatchNorm1d` autograd), and the steady-state
//! lag of a running mean behind a drifting batch mean.

use crate::bail;
use crate::error::{check_finite, check_matrix, Result};

// ---------------------------------------------------------------------------------------------
// Soft thresholding

fn check_lambda(func: &str, lambda: f64) -> Result<()> {
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(lambda >= 0.0) || !lambda.is_finite() {
        bail!(Arg, "{func}: lambda must be >= 0 and finite, got {lambda}");
    }
    Ok(())
}

/// sign(x)·max(|x| − λ, 0) of one value, computed in f64 and rounded once.
#[inline]
fn shrink(x: f32, lambda: f64) -> f32 {
    let a = (x as f64).abs() - lambda;
    if a > 0.0 {
        (a as f32).copysign(x)
    } else {
        0.0
    }
}

/// The proximal operator of λ‖·‖₁ applied to every entry of `m` (rows × cols), in place.
pub fn soft_threshold_in_place(m: &mut [f32], rows: usize, cols: usize, lambda: f64) -> Result<()> {
    const F: &str = "softThresholdInPlace";
    check_matrix(F, "m", m, rows, cols)?;
    check_lambda(F, lambda)?;
    check_finite(F, "m", m)?;
    for v in m.iter_mut() {
        *v = shrink(*v, lambda);
    }
    Ok(())
}

/// The proximal operator of λ‖·‖₁ of every entry of `m`, as a new buffer.
pub fn soft_threshold(m: &[f32], rows: usize, cols: usize, lambda: f64) -> Result<Vec<f32>> {
    const F: &str = "softThreshold";
    check_matrix(F, "m", m, rows, cols)?;
    check_lambda(F, lambda)?;
    check_finite(F, "m", m)?;
    Ok(m.iter().map(|&v| shrink(v, lambda)).collect())
}

// ---------------------------------------------------------------------------------------------
// Batch normalization: affine map and backward pass

fn check_params(func: &str, cols: usize, weight: &[f32], bias: &[f32]) -> Result<()> {
    if weight.len() != cols || bias.len() != cols {
        bail!(
            Shape,
            "{func}: weight and bias must have length {cols}, got {} and {}",
            weight.len(),
            bias.len()
        );
    }
    Ok(())
}

/// y ← y·weight + bias per column (rows × cols), in place: the affine part of `BatchNorm1d`.
pub fn batch_norm_affine_in_place(
    y: &mut [f32],
    rows: usize,
    cols: usize,
    weight: &[f32],
    bias: &[f32],
) -> Result<()> {
    const F: &str = "BatchNorm.forward";
    check_matrix(F, "m", y, rows, cols)?;
    check_params(F, cols, weight, bias)?;
    check_finite(F, "weight", weight)?;
    check_finite(F, "bias", bias)?;
    for r in y.chunks_exact_mut(cols) {
        for ((v, &w), &b) in r.iter_mut().zip(weight).zip(bias) {
            *v = (*v as f64 * w as f64 + b as f64) as f32;
        }
    }
    Ok(())
}

/// Gradients of a training-mode batch-norm forward pass.
pub struct BatchNormGrads {
    /// ∂loss/∂x, rows × cols.
    pub grad_x: Vec<f32>,
    /// ∂loss/∂weight (cols), Σ_i g_ij·x̂_ij.
    pub grad_weight: Vec<f32>,
    /// ∂loss/∂bias (cols), Σ_i g_ij.
    pub grad_bias: Vec<f32>,
}

/// Backward pass of a training-mode batch norm whose input was `x` (rows × cols, rows ≥ 2),
/// with `eps` and the weight used by that forward pass (`None`: no affine map, weight 1).
/// Batch statistics are recomputed from `x` in f64 (biased variance); with x̂ = (x − μ)·r,
/// r = 1/√(σ² + ε) and h = g·w: ∂x = (r/n)·(n·h − Σh − x̂·Σ(h·x̂)) per column.
pub fn batch_norm_backward(
    x: &[f32],
    grad_out: &[f32],
    rows: usize,
    cols: usize,
    weight: Option<&[f32]>,
    eps: f64,
) -> Result<BatchNormGrads> {
    const F: &str = "BatchNorm.backward";
    check_matrix(F, "gradOut", grad_out, rows, cols)?;
    check_matrix(F, "input", x, rows, cols)?;
    if rows < 2 {
        bail!(
            Shape,
            "{F}: the forward batch had {rows} row(s), at least 2 are needed"
        );
    }
    if let Some(w) = weight.filter(|w| w.len() != cols) {
        bail!(
            Shape,
            "{F}: weight must have length {cols}, got {}",
            w.len()
        );
    }
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(eps > 0.0) {
        bail!(Arg, "{F}: eps must be > 0, got {eps}");
    }
    check_finite(F, "gradOut", grad_out)?;
    let n = rows as f64;
    let (mean, var) = crate::regularizers::column_stats(x, rows, cols);
    let inv: Vec<f64> = var.iter().map(|s| 1.0 / (s / n + eps).sqrt()).collect();
    let w = |j: usize| weight.map_or(1.0, |w| w[j] as f64);
    // Column sums Σg, Σ g·x̂.
    let mut sg = vec![0f64; cols];
    let mut sgx = vec![0f64; cols];
    for (rx, rg) in x.chunks_exact(cols).zip(grad_out.chunks_exact(cols)) {
        for j in 0..cols {
            let xh = (rx[j] as f64 - mean[j]) * inv[j];
            let g = rg[j] as f64;
            sg[j] += g;
            sgx[j] += g * xh;
        }
    }
    let mut grad_x = crate::alloc::try_mat(F, "gradX", rows, cols, "")?;
    for ((o, rx), rg) in grad_x
        .chunks_exact_mut(cols)
        .zip(x.chunks_exact(cols))
        .zip(grad_out.chunks_exact(cols))
    {
        for j in 0..cols {
            let xh = (rx[j] as f64 - mean[j]) * inv[j];
            let g = rg[j] as f64;
            o[j] = (w(j) * inv[j] * (g - sg[j] / n - xh * sgx[j] / n)) as f32;
        }
    }
    Ok(BatchNormGrads {
        grad_x,
        grad_weight: sgx.iter().map(|&v| v as f32).collect(),
        grad_bias: sg.iter().map(|&v| v as f32).collect(),
    })
}

/// Steady-state lag of a running mean (PyTorch momentum μ ∈ (0, 1]) behind a batch mean that
/// drifts by `drift` per step: v·(1 − μ)/μ.
pub fn batch_norm_lag(momentum: f64, drift: f64) -> Result<f64> {
    const F: &str = "batchNormLag";
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(momentum > 0.0 && momentum <= 1.0) {
        bail!(Arg, "{F}: momentum must be in (0, 1], got {momentum}");
    }
    if !drift.is_finite() {
        bail!(NonFinite, "{F}: driftPerStep must be finite, got {drift}");
    }
    Ok(drift * (1.0 - momentum) / momentum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::assert_fd;

    #[test]
    fn soft_threshold_values() {
        let m = [1.5f32, -0.2, 0.3, -2.0];
        let r = soft_threshold(&m, 2, 2, 0.5).unwrap();
        assert_eq!(r, vec![1.0, 0.0, 0.0, -1.5]);
        assert!(soft_threshold(&m, 2, 2, -1.0).is_err());
        let mut c = m;
        soft_threshold_in_place(&mut c, 2, 2, 0.25).unwrap();
        let want = [1.25f64, 0.0, 0.3f32 as f64 - 0.25, -1.75];
        for (x, w) in c.iter().zip(want) {
            assert_eq!(*x, w as f32);
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let (n, d) = (5usize, 3usize);
        let x: Vec<f32> = (0..n * d)
            .map(|i| ((i * 7 % 11) as f32) * 0.3 - 1.0)
            .collect();
        let g: Vec<f32> = (0..n * d)
            .map(|i| ((i * 5 % 7) as f32) * 0.2 - 0.5)
            .collect();
        let w = [1.5f32, -0.5, 2.0];
        let eps = 1e-5;
        let r = batch_norm_backward(&x, &g, n, d, Some(&w), eps).unwrap();
        // loss = Σ g · (x̂·w) in f64.
        let loss = |x: &[f64]| {
            let mut l = 0.0;
            for j in 0..d {
                let m: f64 = (0..n).map(|i| x[i * d + j]).sum::<f64>() / n as f64;
                let v: f64 = (0..n).map(|i| (x[i * d + j] - m).powi(2)).sum::<f64>() / n as f64;
                for i in 0..n {
                    l += g[i * d + j] as f64 * w[j] as f64 * (x[i * d + j] - m) / (v + eps).sqrt();
                }
            }
            l
        };
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        for t in 0..n * d {
            let mut p = x64.clone();
            let mut q = x64.clone();
            p[t] += 1e-6;
            q[t] -= 1e-6;
            let fd = (loss(&p) - loss(&q)) / 2e-6;
            assert_fd(fd, r.grad_x[t], 1e-4, &t.to_string());
        }
    }

    #[test]
    fn lag() {
        assert!((batch_norm_lag(0.1, 0.5).unwrap() - 4.5).abs() < 1e-12);
        assert!(batch_norm_lag(0.0, 1.0).is_err());
    }
}
