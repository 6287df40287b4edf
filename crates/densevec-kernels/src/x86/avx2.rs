//! AVX2+FMA kernels: 8 float32 lanes, `vmaskmov` loads/stores for tails, several independent
//! accumulators, and a 6×16 GEMM micro-kernel.
#![allow(clippy::missing_safety_doc, clippy::too_many_arguments)]

use crate::gemm::{self, Spec};
use std::arch::x86_64::*;

const W: usize = 8;

static MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// Lane mask selecting the first `r` (≤ 8) lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tail_mask(r: usize) -> __m256i {
    _mm256_loadu_si256(MASKS.as_ptr().add(8 - r) as *const __m256i)
}

/// Fixed-order horizontal sum: (lo128 + hi128), then pairs.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn hsum_pd(v: __m256d) -> f64 {
    let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
    let s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    _mm_cvtsd_f64(s)
}

/// Σ a_k b_k: four accumulators of 8 lanes, combined as (s0+s1)+(s2+s3), then reduced.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut s0, mut s1, mut s2, mut s3) = (
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
    );
    let mut i = 0;
    while i + 4 * W <= n {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
        s1 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i + W)),
            _mm256_loadu_ps(pb.add(i + W)),
            s1,
        );
        s2 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i + 2 * W)),
            _mm256_loadu_ps(pb.add(i + 2 * W)),
            s2,
        );
        s3 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i + 3 * W)),
            _mm256_loadu_ps(pb.add(i + 3 * W)),
            s3,
        );
        i += 4 * W;
    }
    while i + W <= n {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
        i += W;
    }
    if i < n {
        let m = tail_mask(n - i);
        s1 = _mm256_fmadd_ps(
            _mm256_maskload_ps(pa.add(i), m),
            _mm256_maskload_ps(pb.add(i), m),
            s1,
        );
    }
    hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)))
}

/// (a·b, a·a, b·b): two accumulators per sum.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_norms(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let z = _mm256_setzero_ps();
    let (mut ab0, mut aa0, mut bb0, mut ab1, mut aa1, mut bb1) = (z, z, z, z, z, z);
    let mut i = 0;
    while i + 2 * W <= n {
        let (x0, y0) = (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
        let (x1, y1) = (
            _mm256_loadu_ps(pa.add(i + W)),
            _mm256_loadu_ps(pb.add(i + W)),
        );
        ab0 = _mm256_fmadd_ps(x0, y0, ab0);
        aa0 = _mm256_fmadd_ps(x0, x0, aa0);
        bb0 = _mm256_fmadd_ps(y0, y0, bb0);
        ab1 = _mm256_fmadd_ps(x1, y1, ab1);
        aa1 = _mm256_fmadd_ps(x1, x1, aa1);
        bb1 = _mm256_fmadd_ps(y1, y1, bb1);
        i += 2 * W;
    }
    while i < n {
        let m = tail_mask((n - i).min(W));
        let (x0, y0) = (
            _mm256_maskload_ps(pa.add(i), m),
            _mm256_maskload_ps(pb.add(i), m),
        );
        ab0 = _mm256_fmadd_ps(x0, y0, ab0);
        aa0 = _mm256_fmadd_ps(x0, x0, aa0);
        bb0 = _mm256_fmadd_ps(y0, y0, bb0);
        i += W;
    }
    (
        hsum(_mm256_add_ps(ab0, ab1)),
        hsum(_mm256_add_ps(aa0, aa1)),
        hsum(_mm256_add_ps(bb0, bb1)),
    )
}

/// Σ (a_k − b_k)²: four accumulators.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut s0, mut s1, mut s2, mut s3) = (
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
    );
    let mut i = 0;
    while i + 4 * W <= n {
        let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
        let d1 = _mm256_sub_ps(
            _mm256_loadu_ps(pa.add(i + W)),
            _mm256_loadu_ps(pb.add(i + W)),
        );
        let d2 = _mm256_sub_ps(
            _mm256_loadu_ps(pa.add(i + 2 * W)),
            _mm256_loadu_ps(pb.add(i + 2 * W)),
        );
        let d3 = _mm256_sub_ps(
            _mm256_loadu_ps(pa.add(i + 3 * W)),
            _mm256_loadu_ps(pb.add(i + 3 * W)),
        );
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
        i += 4 * W;
    }
    while i + W <= n {
        let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
        s0 = _mm256_fmadd_ps(d, d, s0);
        i += W;
    }
    if i < n {
        let m = tail_mask(n - i);
        let d = _mm256_sub_ps(
            _mm256_maskload_ps(pa.add(i), m),
            _mm256_maskload_ps(pb.add(i), m),
        );
        s1 = _mm256_fmadd_ps(d, d, s1);
    }
    hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)))
}

/// Σ a_k²: four accumulators.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sumsq(a: &[f32]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    let (mut s0, mut s1, mut s2, mut s3) = (
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
    );
    let mut i = 0;
    while i + 4 * W <= n {
        let (x0, x1) = (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pa.add(i + W)));
        let (x2, x3) = (
            _mm256_loadu_ps(pa.add(i + 2 * W)),
            _mm256_loadu_ps(pa.add(i + 3 * W)),
        );
        s0 = _mm256_fmadd_ps(x0, x0, s0);
        s1 = _mm256_fmadd_ps(x1, x1, s1);
        s2 = _mm256_fmadd_ps(x2, x2, s2);
        s3 = _mm256_fmadd_ps(x3, x3, s3);
        i += 4 * W;
    }
    while i + W <= n {
        let x = _mm256_loadu_ps(pa.add(i));
        s0 = _mm256_fmadd_ps(x, x, s0);
        i += W;
    }
    if i < n {
        let x = _mm256_maskload_ps(pa.add(i), tail_mask(n - i));
        s1 = _mm256_fmadd_ps(x, x, s1);
    }
    hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)))
}

/// x ← s·x.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn scale(x: &mut [f32], s: f32) {
    let n = x.len();
    let p = x.as_mut_ptr();
    let vs = _mm256_set1_ps(s);
    let mut i = 0;
    while i + 2 * W <= n {
        let (x0, x1) = (_mm256_loadu_ps(p.add(i)), _mm256_loadu_ps(p.add(i + W)));
        _mm256_storeu_ps(p.add(i), _mm256_mul_ps(x0, vs));
        _mm256_storeu_ps(p.add(i + W), _mm256_mul_ps(x1, vs));
        i += 2 * W;
    }
    while i < n {
        let m = tail_mask((n - i).min(W));
        _mm256_maskstore_ps(
            p.add(i),
            m,
            _mm256_mul_ps(_mm256_maskload_ps(p.add(i), m), vs),
        );
        i += W;
    }
}

/// y ← y + alpha·x, one fused multiply-add per element.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    let n = y.len().min(x.len());
    let (py, px) = (y.as_mut_ptr(), x.as_ptr());
    let va = _mm256_set1_ps(alpha);
    let mut i = 0;
    while i + 2 * W <= n {
        let y0 = _mm256_fmadd_ps(va, _mm256_loadu_ps(px.add(i)), _mm256_loadu_ps(py.add(i)));
        let y1 = _mm256_fmadd_ps(
            va,
            _mm256_loadu_ps(px.add(i + W)),
            _mm256_loadu_ps(py.add(i + W)),
        );
        _mm256_storeu_ps(py.add(i), y0);
        _mm256_storeu_ps(py.add(i + W), y1);
        i += 2 * W;
    }
    while i < n {
        let m = tail_mask((n - i).min(W));
        let v = _mm256_fmadd_ps(
            va,
            _mm256_maskload_ps(px.add(i), m),
            _mm256_maskload_ps(py.add(i), m),
        );
        _mm256_maskstore_ps(py.add(i), m, v);
        i += W;
    }
}

/// max_k x_k. Unordered compares are collected alongside; if any NaN is seen the scalar
/// kernel is rerun so that the very NaN it would return comes back.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn max(x: &[f32]) -> f32 {
    let n = x.len();
    let p = x.as_ptr();
    let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
    let (mut m0, mut m1) = (ninf, ninf);
    let mut nan = _mm256_setzero_ps();
    let mut i = 0;
    while i + 2 * W <= n {
        let (x0, x1) = (_mm256_loadu_ps(p.add(i)), _mm256_loadu_ps(p.add(i + W)));
        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(x0, x1));
        m0 = _mm256_max_ps(m0, x0);
        m1 = _mm256_max_ps(m1, x1);
        i += 2 * W;
    }
    while i < n {
        let m = tail_mask((n - i).min(W));
        let v = _mm256_blendv_ps(
            ninf,
            _mm256_maskload_ps(p.add(i), m),
            _mm256_castsi256_ps(m),
        );
        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        m0 = _mm256_max_ps(m0, v);
        i += W;
    }
    if _mm256_movemask_ps(nan) != 0 {
        return crate::scalar::max(x);
    }
    let v = _mm256_max_ps(m0, m1);
    let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_max_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// exp of 8 lanes: the same range reduction and degree-7 polynomial as the AVX-512 path
/// (see `x86::avx512::exp16`).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn exp8(x: __m256) -> __m256 {
    let x = _mm256_min_ps(
        _mm256_set1_ps(89.0),
        _mm256_max_ps(_mm256_set1_ps(-104.0), x),
    );
    let n = _mm256_round_ps::<0x08>(_mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.0 / 5040.0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0 / 720.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0 / 120.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0 / 24.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0 / 6.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0));
    let ni = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(ni);
    let n2 = _mm256_sub_epi32(ni, n1);
    let bias = _mm256_set1_epi32(127);
    let s1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias)));
    let s2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n2, bias)));
    _mm256_mul_ps(_mm256_mul_ps(p, s1), s2)
}

/// x_k ← exp(x_k − shift); returns Σ of the stored float32 values, accumulated in float64
/// (two 4-lane accumulators, combined then reduced in a fixed order).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp_shift_sum(x: &mut [f32], shift: f32) -> f64 {
    let n = x.len();
    let p = x.as_mut_ptr();
    let vs = _mm256_set1_ps(shift);
    let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let mut i = 0;
    while i < n {
        let full = n - i >= W;
        let m = tail_mask((n - i).min(W));
        let v = if full {
            _mm256_loadu_ps(p.add(i))
        } else {
            _mm256_maskload_ps(p.add(i), m)
        };
        let mut e = exp8(_mm256_sub_ps(v, vs));
        if full {
            _mm256_storeu_ps(p.add(i), e);
        } else {
            _mm256_maskstore_ps(p.add(i), m, e);
            e = _mm256_and_ps(e, _mm256_castsi256_ps(m));
        }
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e)));
        i += W;
    }
    hsum_pd(_mm256_add_pd(lo, hi))
}

// ---------------------------------------------------------------------------------------------
// GEMM: 6×16 micro-kernel (12 ymm accumulators, two B vectors, A broadcast from the packed
// panel), KC = 256 (a 16 KiB B micro-panel in L1d), MC = 240.

const MR: usize = 6;
const NR: usize = 16;

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

/// Full-width blocks run on C directly; a block narrower than 16 columns runs on a 6×16
/// scratch copy of C (same arithmetic), and only its `cols` columns are copied back.
#[target_feature(enable = "avx2,fma")]
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
    if cols == NR {
        return ukr_rows(rows, kc, pa, pb, c, ldc, load_c);
    }
    let mut t = [0f32; MR * NR];
    if load_c {
        for i in 0..rows {
            std::ptr::copy_nonoverlapping(c.add(i * ldc), t.as_mut_ptr().add(i * NR), cols);
        }
    }
    ukr_rows(rows, kc, pa, pb, t.as_mut_ptr(), NR, load_c);
    for i in 0..rows {
        std::ptr::copy_nonoverlapping(t.as_ptr().add(i * NR), c.add(i * ldc), cols);
    }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn ukr_rows(
    rows: usize,
    kc: usize,
    pa: *const f32,
    pb: *const f32,
    c: *mut f32,
    ldc: usize,
    load_c: bool,
) {
    match rows {
        6 => ukr::<6>(kc, pa, pb, c, ldc, load_c),
        5 => ukr::<5>(kc, pa, pb, c, ldc, load_c),
        4 => ukr::<4>(kc, pa, pb, c, ldc, load_c),
        3 => ukr::<3>(kc, pa, pb, c, ldc, load_c),
        2 => ukr::<2>(kc, pa, pb, c, ldc, load_c),
        _ => ukr::<1>(kc, pa, pb, c, ldc, load_c),
    }
}

/// R×16 block of C: `acc[i] (+)= Σ_p a[p·R + i]·b[p·16 ..]`, one FMA per p, in order.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn ukr<const R: usize>(
    kc: usize,
    pa: *const f32,
    pb: *const f32,
    c: *mut f32,
    ldc: usize,
    load_c: bool,
) {
    let mut c0 = [_mm256_setzero_ps(); R];
    let mut c1 = [_mm256_setzero_ps(); R];
    if load_c {
        for i in 0..R {
            c0[i] = _mm256_loadu_ps(c.add(i * ldc));
            c1[i] = _mm256_loadu_ps(c.add(i * ldc + W));
        }
    }
    let (mut a, mut b) = (pa, pb);
    for _ in 0..kc {
        let b0 = _mm256_loadu_ps(b);
        let b1 = _mm256_loadu_ps(b.add(W));
        for i in 0..R {
            let ai = _mm256_broadcast_ss(&*a.add(i));
            c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
        }
        a = a.add(R);
        b = b.add(NR);
    }
    for i in 0..R {
        _mm256_storeu_ps(c.add(i * ldc), c0[i]);
        _mm256_storeu_ps(c.add(i * ldc + W), c1[i]);
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
