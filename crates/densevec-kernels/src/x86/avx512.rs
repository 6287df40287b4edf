//! AVX-512F kernels: 16 float32 lanes, masked loads/stores for tails (no scalar remainder
//! loops), several independent accumulators, and a 12×32 GEMM micro-kernel.
#![allow(clippy::missing_safety_doc, clippy::too_many_arguments)]

use crate::gemm::{self, Spec};
use std::arch::x86_64::*;

const W: usize = 16;

/// Mask of the first `r` (< 16) lanes.
#[inline(always)]
fn tail_mask(r: usize) -> __mmask16 {
    ((1u32 << r) - 1) as __mmask16
}

/// Σ a_k b_k: four accumulators of 16 lanes, combined as (s0+s1)+(s2+s3), then reduced.
#[target_feature(enable = "avx512f")]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut s0, mut s1, mut s2, mut s3) = (
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
    );
    let mut i = 0;
    while i + 4 * W <= n {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
        s1 = _mm512_fmadd_ps(
            _mm512_loadu_ps(pa.add(i + W)),
            _mm512_loadu_ps(pb.add(i + W)),
            s1,
        );
        s2 = _mm512_fmadd_ps(
            _mm512_loadu_ps(pa.add(i + 2 * W)),
            _mm512_loadu_ps(pb.add(i + 2 * W)),
            s2,
        );
        s3 = _mm512_fmadd_ps(
            _mm512_loadu_ps(pa.add(i + 3 * W)),
            _mm512_loadu_ps(pb.add(i + 3 * W)),
            s3,
        );
        i += 4 * W;
    }
    while i + W <= n {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
        i += W;
    }
    if i < n {
        let m = tail_mask(n - i);
        s1 = _mm512_fmadd_ps(
            _mm512_maskz_loadu_ps(m, pa.add(i)),
            _mm512_maskz_loadu_ps(m, pb.add(i)),
            s1,
        );
    }
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))
}

/// (a·b, a·a, b·b): two accumulators per sum.
#[target_feature(enable = "avx512f")]
pub unsafe fn dot_norms(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let z = _mm512_setzero_ps();
    let (mut ab0, mut aa0, mut bb0, mut ab1, mut aa1, mut bb1) = (z, z, z, z, z, z);
    let mut i = 0;
    while i + 2 * W <= n {
        let (x0, y0) = (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
        let (x1, y1) = (
            _mm512_loadu_ps(pa.add(i + W)),
            _mm512_loadu_ps(pb.add(i + W)),
        );
        ab0 = _mm512_fmadd_ps(x0, y0, ab0);
        aa0 = _mm512_fmadd_ps(x0, x0, aa0);
        bb0 = _mm512_fmadd_ps(y0, y0, bb0);
        ab1 = _mm512_fmadd_ps(x1, y1, ab1);
        aa1 = _mm512_fmadd_ps(x1, x1, aa1);
        bb1 = _mm512_fmadd_ps(y1, y1, bb1);
        i += 2 * W;
    }
    while i < n {
        let m = if n - i >= W { 0xFFFF } else { tail_mask(n - i) };
        let (x0, y0) = (
            _mm512_maskz_loadu_ps(m, pa.add(i)),
            _mm512_maskz_loadu_ps(m, pb.add(i)),
        );
        ab0 = _mm512_fmadd_ps(x0, y0, ab0);
        aa0 = _mm512_fmadd_ps(x0, x0, aa0);
        bb0 = _mm512_fmadd_ps(y0, y0, bb0);
        i += W;
    }
    (
        _mm512_reduce_add_ps(_mm512_add_ps(ab0, ab1)),
        _mm512_reduce_add_ps(_mm512_add_ps(aa0, aa1)),
        _mm512_reduce_add_ps(_mm512_add_ps(bb0, bb1)),
    )
}

/// Σ (a_k − b_k)²: four accumulators.
#[target_feature(enable = "avx512f")]
pub unsafe fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut s0, mut s1, mut s2, mut s3) = (
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
    );
    let mut i = 0;
    while i + 4 * W <= n {
        let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
        let d1 = _mm512_sub_ps(
            _mm512_loadu_ps(pa.add(i + W)),
            _mm512_loadu_ps(pb.add(i + W)),
        );
        let d2 = _mm512_sub_ps(
            _mm512_loadu_ps(pa.add(i + 2 * W)),
            _mm512_loadu_ps(pb.add(i + 2 * W)),
        );
        let d3 = _mm512_sub_ps(
            _mm512_loadu_ps(pa.add(i + 3 * W)),
            _mm512_loadu_ps(pb.add(i + 3 * W)),
        );
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
        s2 = _mm512_fmadd_ps(d2, d2, s2);
        s3 = _mm512_fmadd_ps(d3, d3, s3);
        i += 4 * W;
    }
    while i + W <= n {
        let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
        s0 = _mm512_fmadd_ps(d, d, s0);
        i += W;
    }
    if i < n {
        let m = tail_mask(n - i);
        let d = _mm512_sub_ps(
            _mm512_maskz_loadu_ps(m, pa.add(i)),
            _mm512_maskz_loadu_ps(m, pb.add(i)),
        );
        s1 = _mm512_fmadd_ps(d, d, s1);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))
}

/// Σ a_k²: four accumulators.
#[target_feature(enable = "avx512f")]
pub unsafe fn sumsq(a: &[f32]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    let (mut s0, mut s1, mut s2, mut s3) = (
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
    );
    let mut i = 0;
    while i + 4 * W <= n {
        let (x0, x1) = (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pa.add(i + W)));
        let (x2, x3) = (
            _mm512_loadu_ps(pa.add(i + 2 * W)),
            _mm512_loadu_ps(pa.add(i + 3 * W)),
        );
        s0 = _mm512_fmadd_ps(x0, x0, s0);
        s1 = _mm512_fmadd_ps(x1, x1, s1);
        s2 = _mm512_fmadd_ps(x2, x2, s2);
        s3 = _mm512_fmadd_ps(x3, x3, s3);
        i += 4 * W;
    }
    while i + W <= n {
        let x = _mm512_loadu_ps(pa.add(i));
        s0 = _mm512_fmadd_ps(x, x, s0);
        i += W;
    }
    if i < n {
        let x = _mm512_maskz_loadu_ps(tail_mask(n - i), pa.add(i));
        s1 = _mm512_fmadd_ps(x, x, s1);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))
}

/// x ← s·x.
#[target_feature(enable = "avx512f")]
pub unsafe fn scale(x: &mut [f32], s: f32) {
    let n = x.len();
    let p = x.as_mut_ptr();
    let vs = _mm512_set1_ps(s);
    let mut i = 0;
    while i + 2 * W <= n {
        let (x0, x1) = (_mm512_loadu_ps(p.add(i)), _mm512_loadu_ps(p.add(i + W)));
        _mm512_storeu_ps(p.add(i), _mm512_mul_ps(x0, vs));
        _mm512_storeu_ps(p.add(i + W), _mm512_mul_ps(x1, vs));
        i += 2 * W;
    }
    while i < n {
        let m = if n - i >= W { 0xFFFF } else { tail_mask(n - i) };
        _mm512_mask_storeu_ps(
            p.add(i),
            m,
            _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p.add(i)), vs),
        );
        i += W;
    }
}

/// y ← y + alpha·x, one fused multiply-add per element.
#[target_feature(enable = "avx512f")]
pub unsafe fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    let n = y.len().min(x.len());
    let (py, px) = (y.as_mut_ptr(), x.as_ptr());
    let va = _mm512_set1_ps(alpha);
    let mut i = 0;
    while i + 2 * W <= n {
        let y0 = _mm512_fmadd_ps(va, _mm512_loadu_ps(px.add(i)), _mm512_loadu_ps(py.add(i)));
        let y1 = _mm512_fmadd_ps(
            va,
            _mm512_loadu_ps(px.add(i + W)),
            _mm512_loadu_ps(py.add(i + W)),
        );
        _mm512_storeu_ps(py.add(i), y0);
        _mm512_storeu_ps(py.add(i + W), y1);
        i += 2 * W;
    }
    while i < n {
        let m = if n - i >= W { 0xFFFF } else { tail_mask(n - i) };
        let v = _mm512_fmadd_ps(
            va,
            _mm512_maskz_loadu_ps(m, px.add(i)),
            _mm512_maskz_loadu_ps(m, py.add(i)),
        );
        _mm512_mask_storeu_ps(py.add(i), m, v);
        i += W;
    }
}

/// max_k x_k. Unordered compares are collected alongside; if any NaN is seen the scalar
/// kernel is rerun so that the very NaN it would return comes back.
#[target_feature(enable = "avx512f")]
pub unsafe fn max(x: &[f32]) -> f32 {
    let n = x.len();
    let p = x.as_ptr();
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let (mut m0, mut m1) = (ninf, ninf);
    let mut nan: __mmask16 = 0;
    let mut i = 0;
    while i + 2 * W <= n {
        let (x0, x1) = (_mm512_loadu_ps(p.add(i)), _mm512_loadu_ps(p.add(i + W)));
        nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x0, x1);
        m0 = _mm512_max_ps(m0, x0);
        m1 = _mm512_max_ps(m1, x1);
        i += 2 * W;
    }
    while i < n {
        let m = if n - i >= W { 0xFFFF } else { tail_mask(n - i) };
        let v = _mm512_mask_loadu_ps(ninf, m, p.add(i));
        nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        m0 = _mm512_max_ps(m0, v);
        i += W;
    }
    if nan != 0 {
        return crate::scalar::max(x);
    }
    _mm512_reduce_max_ps(_mm512_max_ps(m0, m1))
}

/// exp of 16 lanes; see `exp_shift_sum` in `lib.rs` docs and `docs/kernels.md`.
///
/// Range reduction x = n·ln2 + r with n = round(x·log2 e), r by Cody–Waite in two steps
/// (ln2 = 0.693359375 − 2.12194440e-4), |r| ≤ ln2/2; exp(r) by its degree-7 Taylor polynomial
/// (truncation < 6e-9 relative), Horner with FMA; 2ⁿ applied as two exact power-of-two factors
/// so that results down to the subnormal range round once. x is clamped to [−104, 89] first
/// (NaN passes through): below −104 the result is 0, above 88.73 it is +∞.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn exp16(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_set1_ps(89.0),
        _mm512_max_ps(_mm512_set1_ps(-104.0), x),
    );
    let n =
        _mm512_roundscale_ps::<0x08>(_mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)));
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.0 / 5040.0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0 / 720.0));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0 / 120.0));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0 / 24.0));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0 / 6.0));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0));
    let ni = _mm512_cvtps_epi32(n);
    let n1 = _mm512_srai_epi32::<1>(ni);
    let n2 = _mm512_sub_epi32(ni, n1);
    let bias = _mm512_set1_epi32(127);
    let s1 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(n1, bias)));
    let s2 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(n2, bias)));
    _mm512_mul_ps(_mm512_mul_ps(p, s1), s2)
}

/// Adds the 16 lanes of `e` to two float64 accumulators (low and high halves).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn acc_f64(e: __m512, lo: &mut __m512d, hi: &mut __m512d) {
    let l = _mm512_cvtps_pd(_mm512_castps512_ps256(e));
    let h = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
        _mm512_castps_pd(e),
    )));
    *lo = _mm512_add_pd(*lo, l);
    *hi = _mm512_add_pd(*hi, h);
}

/// x_k ← exp(x_k − shift); returns Σ of the stored float32 values, accumulated in float64
/// (two 8-lane accumulators, combined then reduced in a fixed order).
#[target_feature(enable = "avx512f")]
pub unsafe fn exp_shift_sum(x: &mut [f32], shift: f32) -> f64 {
    let n = x.len();
    let p = x.as_mut_ptr();
    let vs = _mm512_set1_ps(shift);
    let (mut lo, mut hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
    let mut i = 0;
    while i < n {
        let m = if n - i >= W { 0xFFFF } else { tail_mask(n - i) };
        let e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p.add(i)), vs));
        _mm512_mask_storeu_ps(p.add(i), m, e);
        acc_f64(_mm512_maskz_mov_ps(m, e), &mut lo, &mut hi);
        i += W;
    }
    _mm512_reduce_add_pd(_mm512_add_pd(lo, hi))
}

// ---------------------------------------------------------------------------------------------
// GEMM: 12×32 micro-kernel (24 zmm accumulators, two B vectors, A broadcast from the packed
// panel), KC = 256 (a 32 KiB B micro-panel stays in L1d), MC = 240 (A block ≤ 240 KiB in L2).

const MR: usize = 12;
const NR: usize = 32;

static SPEC: Spec = Spec {
    mr: MR,
    nr: NR,
    kc: 256,
    mc: 240,
    nc: 768,
    prefetch: super::prefetch,
    pack_a: super::pack_a,
    pack_b_nt,
    pack_b_nn,
    kernel,
};

unsafe fn pack_b_nt(cols: usize, kc: usize, b: *const f32, ldb: usize, dst: *mut f32) {
    super::pack_b_nt(NR, cols, kc, b, ldb, dst)
}

unsafe fn pack_b_nn(cols: usize, kc: usize, b: *const f32, ldb: usize, dst: *mut f32) {
    super::pack_b_nn(NR, cols, kc, b, ldb, dst)
}

#[target_feature(enable = "avx512f")]
unsafe fn kernel(
    rows: usize,
    cols: usize,
    kc: usize,
    pa: *const f32,
    pb: *const f32,
    c: *mut f32,
    ldc: usize,
    load_c: bool,
) {
    let m0: __mmask16 = if cols >= W { 0xFFFF } else { tail_mask(cols) };
    let m1: __mmask16 = if cols >= NR {
        0xFFFF
    } else if cols > W {
        tail_mask(cols - W)
    } else {
        0
    };
    match rows {
        12 => ukr::<12>(kc, pa, pb, c, ldc, load_c, m0, m1),
        11 => ukr::<11>(kc, pa, pb, c, ldc, load_c, m0, m1),
        10 => ukr::<10>(kc, pa, pb, c, ldc, load_c, m0, m1),
        9 => ukr::<9>(kc, pa, pb, c, ldc, load_c, m0, m1),
        8 => ukr::<8>(kc, pa, pb, c, ldc, load_c, m0, m1),
        7 => ukr::<7>(kc, pa, pb, c, ldc, load_c, m0, m1),
        6 => ukr::<6>(kc, pa, pb, c, ldc, load_c, m0, m1),
        5 => ukr::<5>(kc, pa, pb, c, ldc, load_c, m0, m1),
        4 => ukr::<4>(kc, pa, pb, c, ldc, load_c, m0, m1),
        3 => ukr::<3>(kc, pa, pb, c, ldc, load_c, m0, m1),
        2 => ukr::<2>(kc, pa, pb, c, ldc, load_c, m0, m1),
        _ => ukr::<1>(kc, pa, pb, c, ldc, load_c, m0, m1),
    }
}

/// R×32 block of C: `acc[i] (+)= Σ_p a[p·R + i]·b[p·32 ..]`, one FMA per p, in order.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn ukr<const R: usize>(
    kc: usize,
    pa: *const f32,
    pb: *const f32,
    c: *mut f32,
    ldc: usize,
    load_c: bool,
    m0: __mmask16,
    m1: __mmask16,
) {
    let mut c0 = [_mm512_setzero_ps(); R];
    let mut c1 = [_mm512_setzero_ps(); R];
    if load_c {
        for i in 0..R {
            c0[i] = _mm512_maskz_loadu_ps(m0, c.add(i * ldc));
            c1[i] = _mm512_maskz_loadu_ps(m1, c.add(i * ldc + W));
        }
    }
    let (mut a, mut b) = (pa, pb);
    for _ in 0..kc {
        let b0 = _mm512_loadu_ps(b);
        let b1 = _mm512_loadu_ps(b.add(W));
        for i in 0..R {
            let ai = _mm512_set1_ps(*a.add(i));
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
        a = a.add(R);
        b = b.add(NR);
    }
    for i in 0..R {
        _mm512_mask_storeu_ps(c.add(i * ldc), m0, c0[i]);
        _mm512_mask_storeu_ps(c.add(i * ldc + W), m1, c1[i]);
    }
}

/// C = A·Bᵀ.
pub unsafe fn gemm_nt(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    gemm::run(&SPEC, true, m, n, k, a, lda, b, ldb, c, ldc, false)
}

/// C (+)= A·B.
pub unsafe fn gemm_nn(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    gemm::run(&SPEC, false, m, n, k, a, lda, b, ldb, c, ldc, accumulate)
}
