//! AVX-512F primitives: 16 float32 lanes, mask registers for tails (no scalar remainder
//! loops), and a 12×32 GEMM micro-kernel (24 zmm accumulators). The kernels themselves are
//! the generic ones of [`crate::simd`].
#![allow(clippy::missing_safety_doc)]

use crate::gemm::Spec;
use crate::simd::{isa_kernels, Simd};
use std::arch::x86_64::*;

/// The AVX-512F primitives.
#[derive(Clone, Copy)]
pub(crate) struct Avx512;

/// Mask of the first `r` (≤ 16) lanes.
#[inline(always)]
fn mask(r: usize) -> __mmask16 {
    ((1u32 << r) - 1) as __mmask16
}

impl Simd for Avx512 {
    type V = __m512;
    type M = __mmask16;
    type D = (__m512d, __m512d);
    const W: usize = 16;
    const MR: usize = 12;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn prefetch_l2(p: usize) {
        _mm_prefetch::<_MM_HINT_T1>(p as *const i8);
    }
    #[inline(always)]
    unsafe fn splat_load(p: *const f32) -> __m512 {
        _mm512_set1_ps(*p)
    }
    #[inline(always)]
    unsafe fn load_part_or(p: *const f32, r: usize, fill: f32) -> __m512 {
        _mm512_mask_loadu_ps(_mm512_set1_ps(fill), mask(r), p)
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, r: usize) -> __m512 {
        _mm512_maskz_loadu_ps(mask(r), p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn store_part(p: *mut f32, r: usize, v: __m512) {
        _mm512_mask_storeu_ps(p, mask(r), v)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        _mm512_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: __m512, b: __m512) -> __m512 {
        _mm512_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        _mm512_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn fnma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fnmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn round(a: __m512) -> __m512 {
        _mm512_roundscale_ps::<0x08>(a)
    }
    #[inline(always)]
    unsafe fn pow2_halves(n: __m512) -> (__m512, __m512) {
        let ni = _mm512_cvtps_epi32(n);
        let n1 = _mm512_srai_epi32::<1>(ni);
        let n2 = _mm512_sub_epi32(ni, n1);
        let bias = _mm512_set1_epi32(127);
        (
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(n1, bias))),
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(n2, bias))),
        )
    }
    /// `vscalefps`: p·2^⌊n⌋ rounded once (subnormal results included), one instruction for
    /// the seven integer operations and two products of the default.
    #[inline(always)]
    unsafe fn mul_pow2(p: __m512, n: __m512) -> __m512 {
        _mm512_scalef_ps(p, n)
    }
    #[inline(always)]
    unsafe fn reduce_add(v: __m512) -> f32 {
        _mm512_reduce_add_ps(v)
    }
    #[inline(always)]
    unsafe fn reduce_max(v: __m512) -> f32 {
        _mm512_reduce_max_ps(v)
    }
    #[inline(always)]
    unsafe fn nan_none() -> __mmask16 {
        0
    }
    #[inline(always)]
    unsafe fn nan_or(acc: __mmask16, a: __m512, b: __m512) -> __mmask16 {
        acc | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b)
    }
    #[inline(always)]
    unsafe fn nan_any(acc: __mmask16) -> bool {
        acc != 0
    }
    #[inline(always)]
    unsafe fn d_zero() -> (__m512d, __m512d) {
        (_mm512_setzero_pd(), _mm512_setzero_pd())
    }
    #[inline(always)]
    unsafe fn d_acc(acc: (__m512d, __m512d), e: __m512) -> (__m512d, __m512d) {
        let l = _mm512_cvtps_pd(_mm512_castps512_ps256(e));
        let h = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
            _mm512_castps_pd(e),
        )));
        (_mm512_add_pd(acc.0, l), _mm512_add_pd(acc.1, h))
    }
    #[inline(always)]
    unsafe fn d_reduce(acc: (__m512d, __m512d)) -> f64 {
        _mm512_reduce_add_pd(_mm512_add_pd(acc.0, acc.1))
    }
}

isa_kernels!(Avx512, "avx512f");

/// GEMM building blocks and blocking: 12×32 micro-tiles, the shared AVX packing routines;
/// full-rate where the core executes 512-bit FMAs whole.
fn spec() -> Spec {
    let full_rate = crate::cpu::caches().full_width_512;
    super::spec(Avx512::MR, 2 * Avx512::W, full_rate, gemm_kernel)
}
