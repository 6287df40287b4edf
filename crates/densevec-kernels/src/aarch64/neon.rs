//! NEON (aarch64 Advanced SIMD) primitives: 4 float32 lanes, tails through a 4-lane scratch
//! copy, and an 8×8 GEMM micro-kernel (16 q-register accumulators). The kernels themselves
//! are the generic ones of [`crate::simd`].
//!
//! Written for rustc 1.63 (Debian's toolchain builds and tests this file under qemu-aarch64).
#![allow(clippy::missing_safety_doc)]

use crate::gemm::{self, Spec};
use crate::simd::{isa_kernels, Simd};
use std::arch::aarch64::*;

/// The NEON primitives.
#[derive(Clone, Copy)]
pub(crate) struct Neon;

impl Simd for Neon {
    type V = float32x4_t;
    /// `fmax` propagates NaN, so [`crate::simd::max`]'s check of its result suffices.
    type M = ();
    type D = (float64x2_t, float64x2_t);
    const W: usize = 4;
    const MR: usize = 8;

    #[inline(always)]
    unsafe fn zero() -> float32x4_t {
        vdupq_n_f32(0.0)
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> float32x4_t {
        vdupq_n_f32(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> float32x4_t {
        vld1q_f32(p)
    }
    #[inline(always)]
    unsafe fn splat_load(p: *const f32) -> float32x4_t {
        vld1q_dup_f32(p)
    }
    #[inline(always)]
    unsafe fn load_part_or(p: *const f32, r: usize, fill: f32) -> float32x4_t {
        let mut t = [fill; 4];
        std::ptr::copy_nonoverlapping(p, t.as_mut_ptr(), r);
        vld1q_f32(t.as_ptr())
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: float32x4_t) {
        vst1q_f32(p, v)
    }
    #[inline(always)]
    unsafe fn store_part(p: *mut f32, r: usize, v: float32x4_t) {
        let mut t = [0f32; 4];
        vst1q_f32(t.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(t.as_ptr(), p, r);
    }
    #[inline(always)]
    unsafe fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vaddq_f32(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vsubq_f32(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vmulq_f32(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vminq_f32(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vmaxq_f32(a, b)
    }
    #[inline(always)]
    unsafe fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        vfmaq_f32(c, a, b)
    }
    #[inline(always)]
    unsafe fn fnma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        vfmsq_f32(c, a, b)
    }
    #[inline(always)]
    unsafe fn round(a: float32x4_t) -> float32x4_t {
        vrndnq_f32(a)
    }
    #[inline(always)]
    unsafe fn pow2_halves(n: float32x4_t) -> (float32x4_t, float32x4_t) {
        let ni = vcvtq_s32_f32(n);
        let n1 = vshrq_n_s32::<1>(ni);
        let n2 = vsubq_s32(ni, n1);
        let bias = vdupq_n_s32(127);
        (
            vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n1, bias))),
            vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n2, bias))),
        )
    }
    /// Pairwise lane sum.
    #[inline(always)]
    unsafe fn reduce_add(v: float32x4_t) -> f32 {
        vaddvq_f32(v)
    }
    #[inline(always)]
    unsafe fn reduce_max(v: float32x4_t) -> f32 {
        vmaxvq_f32(v)
    }
    #[inline(always)]
    unsafe fn nan_none() {}
    #[inline(always)]
    unsafe fn nan_or(_acc: (), _a: float32x4_t, _b: float32x4_t) {}
    #[inline(always)]
    unsafe fn nan_any(_acc: ()) -> bool {
        false
    }
    #[inline(always)]
    unsafe fn d_zero() -> (float64x2_t, float64x2_t) {
        (vdupq_n_f64(0.0), vdupq_n_f64(0.0))
    }
    #[inline(always)]
    unsafe fn d_acc(acc: (float64x2_t, float64x2_t), e: float32x4_t) -> (float64x2_t, float64x2_t) {
        (
            vaddq_f64(acc.0, vcvt_f64_f32(vget_low_f32(e))),
            vaddq_f64(acc.1, vcvt_high_f64_f32(e)),
        )
    }
    #[inline(always)]
    unsafe fn d_reduce(acc: (float64x2_t, float64x2_t)) -> f64 {
        vaddvq_f64(vaddq_f64(acc.0, acc.1))
    }
}

isa_kernels!(Neon, "neon");

/// GEMM building blocks and blocking: 8×8 micro-tiles, portable packing, no prefetch.
fn spec() -> Spec {
    let packs = (
        gemm::pack_a_generic as gemm::PackA,
        gemm::pack_b_nt_generic as gemm::PackB,
        gemm::pack_b_nn_generic as gemm::PackB,
    );
    Spec::new(
        Neon::MR,
        2 * Neon::W,
        false,
        packs,
        gemm::no_prefetch as gemm::Prefetch,
        gemm_kernel,
    )
}
