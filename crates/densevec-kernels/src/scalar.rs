//! Portable kernels. They accumulate in float64: this path is the exactness baseline that every
//! SIMD path is tested against.

/// Σ a_k b_k.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_f64(a, b) as f32
}

/// Σ a_k b_k in float64, not rounded.
fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    let mut s = 0f64;
    for (x, y) in a.iter().zip(b) {
        s += *x as f64 * *y as f64;
    }
    s
}

/// (a·b, a·a, b·b) in one pass.
pub fn dot_norms(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x as f64, *y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    (ab as f32, aa as f32, bb as f32)
}

/// Σ (a_k − b_k)².
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    let mut s = 0f64;
    for (x, y) in a.iter().zip(b) {
        let d = *x as f64 - *y as f64;
        s += d * d;
    }
    s as f32
}

/// Σ a_k².
pub fn sumsq(a: &[f32]) -> f32 {
    let mut s = 0f64;
    for x in a {
        s += *x as f64 * *x as f64;
    }
    s as f32
}

/// out_i = f(row i of `a`, row i of `b`) for the `out.len()` rows of `cols` values.
fn each_row<T>(a: &[f32], b: &[f32], cols: usize, out: &mut [T], f: fn(&[f32], &[f32]) -> T) {
    for (i, o) in out.iter_mut().enumerate() {
        let r = i * cols..(i + 1) * cols;
        *o = f(&a[r.clone()], &b[r]);
    }
}

/// out_i = a_i·b_i per row ([`dot`]).
pub fn dot_rows(a: &[f32], b: &[f32], cols: usize, out: &mut [f32]) {
    each_row(a, b, cols, out, dot)
}

/// out_i = (a_i·b_i, a_i·a_i, b_i·b_i) per row ([`dot_norms`]).
pub fn dot_norms_rows(a: &[f32], b: &[f32], cols: usize, out: &mut [(f32, f32, f32)]) {
    each_row(a, b, cols, out, dot_norms)
}

/// out_i = ‖a_i − b_i‖² per row ([`l2sq`]).
pub fn l2sq_rows(a: &[f32], b: &[f32], cols: usize, out: &mut [f32]) {
    each_row(a, b, cols, out, l2sq)
}

/// out_i = ‖a_i‖² per row ([`sumsq`]).
pub fn sumsq_rows(a: &[f32], cols: usize, out: &mut [f32]) {
    each_row(a, a, cols, out, |x, _| sumsq(x))
}

/// x_i ← s_i·x_i per row ([`scale`]).
pub fn scale_rows(x: &mut [f32], cols: usize, s: &[f32]) {
    for (i, &si) in s.iter().enumerate() {
        scale(&mut x[i * cols..(i + 1) * cols], si);
    }
}

/// x ← s·x.
pub fn scale(x: &mut [f32], s: f32) {
    for v in x {
        *v *= s;
    }
}

/// y ← y + alpha·x.
pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (v, u) in y.iter_mut().zip(x) {
        *v += alpha * *u;
    }
}

/// max_k x_k (−∞ for an empty slice; NaN propagates).
pub fn max(x: &[f32]) -> f32 {
    let mut m = f32::NEG_INFINITY;
    for &v in x {
        if v > m || v.is_nan() {
            m = v;
            if v.is_nan() {
                return v;
            }
        }
    }
    m
}

/// x_k ← exp(x_k − shift); returns Σ of the new values (float64 accumulation).
pub fn exp_shift_sum(x: &mut [f32], shift: f32) -> f64 {
    let mut s = 0f64;
    for v in x {
        let e = ((*v - shift) as f64).exp();
        *v = e as f32;
        s += e;
    }
    s
}

/// out_k = (exp(z_k − shift) − sub)·mul, the exp in float64 rounded to float32 as
/// [`exp_shift_sum`] stores it.
pub fn exp_shift_affine(z: &[f32], out: &mut [f32], shift: f32, sub: f32, mul: f32) {
    for (o, &v) in out.iter_mut().zip(z) {
        let e = ((v - shift) as f64).exp() as f32;
        *o = (e - sub) * mul;
    }
}

/// (Σ_k e_k, Σ_k e_k·z_k) with e_k = exp(z_k − shift), all in float64; terms with e_k = 0 are 0.
pub fn exp_shift_sum_dot(z: &[f32], shift: f32) -> (f64, f64) {
    let (mut s, mut sz) = (0f64, 0f64);
    for &v in z {
        let e = ((v - shift) as f64).exp();
        s += e;
        if e != 0.0 {
            sz += e * v as f64;
        }
    }
    (s, sz)
}

/// C (+)= A·Bᵀ or A·B: every element is a float64 sum over k, rounded once (added to C in
/// float64 when accumulating).
///
/// # Safety
/// See [`crate::gemm_raw`].
pub unsafe fn gemm(g: &crate::Gemm) {
    debug_assert!(!(g.nt && g.ta), "no constructor makes Aᵀ·Bᵀ");
    if g.nt {
        for i in 0..g.m {
            let ar = std::slice::from_raw_parts(g.a.add(i * g.lda), g.k);
            for j in 0..g.n {
                let br = std::slice::from_raw_parts(g.b.add(j * g.ldb), g.k);
                let cij = g.c.add(i * g.ldc + j);
                *cij = if g.accumulate {
                    (*cij as f64 + dot_f64(ar, br)) as f32
                } else {
                    dot(ar, br)
                };
            }
        }
        return;
    }
    let mut acc = vec![0f64; g.n];
    for i in 0..g.m {
        for v in acc.iter_mut() {
            *v = 0.0;
        }
        for p in 0..g.k {
            let aip = if g.ta {
                *g.a.add(p * g.lda + i)
            } else {
                *g.a.add(i * g.lda + p)
            } as f64;
            let br = std::slice::from_raw_parts(g.b.add(p * g.ldb), g.n);
            for (v, bv) in acc.iter_mut().zip(br) {
                *v += aip * *bv as f64;
            }
        }
        for (j, v) in acc.iter().enumerate() {
            let cij = g.c.add(i * g.ldc + j);
            *cij = if g.accumulate {
                (*cij as f64 + *v) as f32
            } else {
                *v as f32
            };
        }
    }
}

/// `iters` steps of four independent float32 multiply-adds (see [`crate::fma_peak`]).
pub fn fma_loop(iters: usize) -> f32 {
    let mut a = [0f32; 4];
    for _ in 0..iters {
        for v in a.iter_mut() {
            *v = v.mul_add(0.999_999, 1e-7);
        }
    }
    a.iter().sum()
}
