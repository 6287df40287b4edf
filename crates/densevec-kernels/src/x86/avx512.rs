//! Placeholder forwarding to the scalar kernels until the SIMD kernels land.
#![allow(clippy::missing_safety_doc, clippy::too_many_arguments)]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 { crate::scalar::dot(a, b) }
pub unsafe fn dot_norms(a: &[f32], b: &[f32]) -> (f32, f32, f32) { crate::scalar::dot_norms(a, b) }
pub unsafe fn l2sq(a: &[f32], b: &[f32]) -> f32 { crate::scalar::l2sq(a, b) }
pub unsafe fn sumsq(a: &[f32]) -> f32 { crate::scalar::sumsq(a) }
pub unsafe fn scale(x: &mut [f32], s: f32) { crate::scalar::scale(x, s) }
pub unsafe fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) { crate::scalar::axpy(y, alpha, x) }
pub unsafe fn max(x: &[f32]) -> f32 { crate::scalar::max(x) }
pub unsafe fn exp_shift_sum(x: &mut [f32], shift: f32) -> f64 { crate::scalar::exp_shift_sum(x, shift) }
pub unsafe fn gemm_nt(m: usize, n: usize, k: usize, a: *const f32, lda: usize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize) { crate::scalar::gemm_nt(m, n, k, a, lda, b, ldb, c, ldc) }
pub unsafe fn gemm_nn(m: usize, n: usize, k: usize, a: *const f32, lda: usize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, accumulate: bool) { crate::scalar::gemm_nn(m, n, k, a, lda, b, ldb, c, ldc, accumulate) }
