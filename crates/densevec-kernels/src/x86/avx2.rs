//! AVX2+FMA primitives: 8 float32 lanes, `vmaskmov` loads/stores for tails, and a 6×16 GEMM
//! micro-kernel (12 ymm accumulators). The kernels themselves are the generic ones of
//! [`crate::simd`].
#![allow(clippy::missing_safety_doc)]

use crate::gemm::Spec;
use crate::simd::{isa_kernels, Simd};
use std::arch::x86_64::*;

/// The AVX2+FMA primitives.
#[derive(Clone, Copy)]
pub(crate) struct Avx2;

static MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// Lane mask selecting the first `r` (≤ 8) lanes.
#[inline(always)]
unsafe fn mask(r: usize) -> __m256i {
    _mm256_loadu_si256(MASKS.as_ptr().add(8 - r) as *const __m256i)
}

impl Simd for Avx2 {
    type V = __m256;
    type M = __m256;
    type D = (__m256d, __m256d);
    const W: usize = 8;
    const MR: usize = 6;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn prefetch_l2(p: usize) {
        _mm_prefetch::<_MM_HINT_T1>(p as *const i8);
    }
    #[inline(always)]
    unsafe fn splat_load(p: *const f32) -> __m256 {
        _mm256_broadcast_ss(&*p)
    }
    #[inline(always)]
    unsafe fn load_part_or(p: *const f32, r: usize, fill: f32) -> __m256 {
        let m = mask(r);
        _mm256_blendv_ps(
            _mm256_set1_ps(fill),
            _mm256_maskload_ps(p, m),
            _mm256_castsi256_ps(m),
        )
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, r: usize) -> __m256 {
        _mm256_maskload_ps(p, mask(r))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn store_part(p: *mut f32, r: usize, v: __m256) {
        _mm256_maskstore_ps(p, mask(r), v)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        _mm256_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        _mm256_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: __m256, b: __m256) -> __m256 {
        _mm256_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        _mm256_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn fnma(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fnmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn round(a: __m256) -> __m256 {
        _mm256_round_ps::<0x08>(a)
    }
    #[inline(always)]
    unsafe fn pow2_halves(n: __m256) -> (__m256, __m256) {
        let ni = _mm256_cvtps_epi32(n);
        let n1 = _mm256_srai_epi32::<1>(ni);
        let n2 = _mm256_sub_epi32(ni, n1);
        let bias = _mm256_set1_epi32(127);
        (
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias))),
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n2, bias))),
        )
    }
    /// (lo128 + hi128), then pairs.
    #[inline(always)]
    unsafe fn reduce_add(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
    #[inline(always)]
    unsafe fn reduce_max(v: __m256) -> f32 {
        let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_max_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
    #[inline(always)]
    unsafe fn nan_none() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn nan_or(acc: __m256, a: __m256, b: __m256) -> __m256 {
        _mm256_or_ps(acc, _mm256_cmp_ps::<_CMP_UNORD_Q>(a, b))
    }
    #[inline(always)]
    unsafe fn nan_any(acc: __m256) -> bool {
        _mm256_movemask_ps(acc) != 0
    }
    #[inline(always)]
    unsafe fn d_zero() -> (__m256d, __m256d) {
        (_mm256_setzero_pd(), _mm256_setzero_pd())
    }
    #[inline(always)]
    unsafe fn d_acc(acc: (__m256d, __m256d), e: __m256) -> (__m256d, __m256d) {
        (
            _mm256_add_pd(acc.0, _mm256_cvtps_pd(_mm256_castps256_ps128(e))),
            _mm256_add_pd(acc.1, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e))),
        )
    }
    /// (lo + hi), then (lo128 + hi128), then the pair.
    #[inline(always)]
    unsafe fn d_reduce(acc: (__m256d, __m256d)) -> f64 {
        let v = _mm256_add_pd(acc.0, acc.1);
        let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
        let s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
        _mm_cvtsd_f64(s)
    }
}

isa_kernels!(Avx2, "avx2,fma");

/// GEMM building blocks and blocking: 6×16 micro-tiles, the shared AVX packing routines.
fn spec() -> Spec {
    super::spec(Avx2::MR, 2 * Avx2::W, false, gemm_kernel)
}
