//! NEON (aarch64 Advanced SIMD) kernels: 4 float32 lanes, four independent accumulators,
//! tails through a 4-lane scratch copy, and an 8×8 GEMM micro-kernel.
//!
//! Written for rustc 1.63 (Debian's toolchain builds and tests this file under qemu-aarch64).
#![allow(clippy::missing_safety_doc, clippy::too_many_arguments)]

use crate::gemm::{self, Spec};
use std::arch::aarch64::*;

const W: usize = 4;

/// Loads the `r` (< 4) values at `p` into the low lanes, `fill` elsewhere.
#[inline(always)]
unsafe fn load_tail(p: *const f32, r: usize, fill: f32) -> float32x4_t {
    let mut t = [fill; W];
    std::ptr::copy_nonoverlapping(p, t.as_mut_ptr(), r);
    vld1q_f32(t.as_ptr())
}

/// Stores the low `r` (< 4) lanes of `v` at `p`.
#[inline(always)]
unsafe fn store_tail(p: *mut f32, r: usize, v: float32x4_t) {
    let mut t = [0f32; W];
    vst1q_f32(t.as_mut_ptr(), v);
    std::ptr::copy_nonoverlapping(t.as_ptr(), p, r);
}

/// Σ a_k b_k: four accumulators, combined as (s0+s1)+(s2+s3), then a pairwise lane sum.
#[target_feature(enable = "neon")]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut s0, mut s1, mut s2, mut s3) = (
        vdupq_n_f32(0.0),
        vdupq_n_f32(0.0),
        vdupq_n_f32(0.0),
        vdupq_n_f32(0.0),
    );
    let mut i = 0;
    while i + 4 * W <= n {
        s0 = vfmaq_f32(s0, vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
        s1 = vfmaq_f32(s1, vld1q_f32(pa.add(i + W)), vld1q_f32(pb.add(i + W)));
        s2 = vfmaq_f32(
            s2,
            vld1q_f32(pa.add(i + 2 * W)),
            vld1q_f32(pb.add(i + 2 * W)),
        );
        s3 = vfmaq_f32(
            s3,
            vld1q_f32(pa.add(i + 3 * W)),
            vld1q_f32(pb.add(i + 3 * W)),
        );
        i += 4 * W;
    }
    while i + W <= n {
        s0 = vfmaq_f32(s0, vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
        i += W;
    }
    if i < n {
        s1 = vfmaq_f32(
            s1,
            load_tail(pa.add(i), n - i, 0.0),
            load_tail(pb.add(i), n - i, 0.0),
        );
    }
    vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)))
}

/// (a·b, a·a, b·b): two accumulators per sum.
#[target_feature(enable = "neon")]
pub unsafe fn dot_norms(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let z = vdupq_n_f32(0.0);
    let (mut ab0, mut aa0, mut bb0, mut ab1, mut aa1, mut bb1) = (z, z, z, z, z, z);
    let mut i = 0;
    while i + 2 * W <= n {
        let (x0, y0) = (vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
        let (x1, y1) = (vld1q_f32(pa.add(i + W)), vld1q_f32(pb.add(i + W)));
        ab0 = vfmaq_f32(ab0, x0, y0);
        aa0 = vfmaq_f32(aa0, x0, x0);
        bb0 = vfmaq_f32(bb0, y0, y0);
        ab1 = vfmaq_f32(ab1, x1, y1);
        aa1 = vfmaq_f32(aa1, x1, x1);
        bb1 = vfmaq_f32(bb1, y1, y1);
        i += 2 * W;
    }
    while i < n {
        let r = (n - i).min(W);
        let (x0, y0) = (load_tail(pa.add(i), r, 0.0), load_tail(pb.add(i), r, 0.0));
        ab0 = vfmaq_f32(ab0, x0, y0);
        aa0 = vfmaq_f32(aa0, x0, x0);
        bb0 = vfmaq_f32(bb0, y0, y0);
        i += W;
    }
    (
        vaddvq_f32(vaddq_f32(ab0, ab1)),
        vaddvq_f32(vaddq_f32(aa0, aa1)),
        vaddvq_f32(vaddq_f32(bb0, bb1)),
    )
}

/// Σ (a_k − b_k)²: four accumulators.
#[target_feature(enable = "neon")]
pub unsafe fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut s0, mut s1, mut s2, mut s3) = (
        vdupq_n_f32(0.0),
        vdupq_n_f32(0.0),
        vdupq_n_f32(0.0),
        vdupq_n_f32(0.0),
    );
    let mut i = 0;
    while i + 4 * W <= n {
        let d0 = vsubq_f32(vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
        let d1 = vsubq_f32(vld1q_f32(pa.add(i + W)), vld1q_f32(pb.add(i + W)));
        let d2 = vsubq_f32(vld1q_f32(pa.add(i + 2 * W)), vld1q_f32(pb.add(i + 2 * W)));
        let d3 = vsubq_f32(vld1q_f32(pa.add(i + 3 * W)), vld1q_f32(pb.add(i + 3 * W)));
        s0 = vfmaq_f32(s0, d0, d0);
        s1 = vfmaq_f32(s1, d1, d1);
        s2 = vfmaq_f32(s2, d2, d2);
        s3 = vfmaq_f32(s3, d3, d3);
        i += 4 * W;
    }
    while i + W <= n {
        let d = vsubq_f32(vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
        s0 = vfmaq_f32(s0, d, d);
        i += W;
    }
    if i < n {
        let d = vsubq_f32(
            load_tail(pa.add(i), n - i, 0.0),
            load_tail(pb.add(i), n - i, 0.0),
        );
        s1 = vfmaq_f32(s1, d, d);
    }
    vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)))
}

/// Σ a_k²: four accumulators.
#[target_feature(enable = "neon")]
pub unsafe fn sumsq(a: &[f32]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    let (mut s0, mut s1, mut s2, mut s3) = (
        vdupq_n_f32(0.0),
        vdupq_n_f32(0.0),
        vdupq_n_f32(0.0),
        vdupq_n_f32(0.0),
    );
    let mut i = 0;
    while i + 4 * W <= n {
        let (x0, x1) = (vld1q_f32(pa.add(i)), vld1q_f32(pa.add(i + W)));
        let (x2, x3) = (vld1q_f32(pa.add(i + 2 * W)), vld1q_f32(pa.add(i + 3 * W)));
        s0 = vfmaq_f32(s0, x0, x0);
        s1 = vfmaq_f32(s1, x1, x1);
        s2 = vfmaq_f32(s2, x2, x2);
        s3 = vfmaq_f32(s3, x3, x3);
        i += 4 * W;
    }
    while i + W <= n {
        let x = vld1q_f32(pa.add(i));
        s0 = vfmaq_f32(s0, x, x);
        i += W;
    }
    if i < n {
        let x = load_tail(pa.add(i), n - i, 0.0);
        s1 = vfmaq_f32(s1, x, x);
    }
    vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)))
}

/// x ← s·x.
#[target_feature(enable = "neon")]
pub unsafe fn scale(x: &mut [f32], s: f32) {
    let n = x.len();
    let p = x.as_mut_ptr();
    let vs = vdupq_n_f32(s);
    let mut i = 0;
    while i + 2 * W <= n {
        let (x0, x1) = (vld1q_f32(p.add(i)), vld1q_f32(p.add(i + W)));
        vst1q_f32(p.add(i), vmulq_f32(x0, vs));
        vst1q_f32(p.add(i + W), vmulq_f32(x1, vs));
        i += 2 * W;
    }
    while i < n {
        let r = (n - i).min(W);
        store_tail(p.add(i), r, vmulq_f32(load_tail(p.add(i), r, 0.0), vs));
        i += W;
    }
}

/// y ← y + alpha·x, one fused multiply-add per element.
#[target_feature(enable = "neon")]
pub unsafe fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    let n = y.len().min(x.len());
    let (py, px) = (y.as_mut_ptr(), x.as_ptr());
    let va = vdupq_n_f32(alpha);
    let mut i = 0;
    while i + 2 * W <= n {
        let y0 = vfmaq_f32(vld1q_f32(py.add(i)), va, vld1q_f32(px.add(i)));
        let y1 = vfmaq_f32(vld1q_f32(py.add(i + W)), va, vld1q_f32(px.add(i + W)));
        vst1q_f32(py.add(i), y0);
        vst1q_f32(py.add(i + W), y1);
        i += 2 * W;
    }
    while i < n {
        let r = (n - i).min(W);
        let v = vfmaq_f32(
            load_tail(py.add(i), r, 0.0),
            va,
            load_tail(px.add(i), r, 0.0),
        );
        store_tail(py.add(i), r, v);
        i += W;
    }
}

/// max_k x_k. `fmax` propagates NaN; when the result is NaN the scalar kernel is rerun so
/// that the very NaN it would return comes back.
#[target_feature(enable = "neon")]
pub unsafe fn max(x: &[f32]) -> f32 {
    let n = x.len();
    let p = x.as_ptr();
    let ninf = vdupq_n_f32(f32::NEG_INFINITY);
    let (mut m0, mut m1) = (ninf, ninf);
    let mut i = 0;
    while i + 2 * W <= n {
        m0 = vmaxq_f32(m0, vld1q_f32(p.add(i)));
        m1 = vmaxq_f32(m1, vld1q_f32(p.add(i + W)));
        i += 2 * W;
    }
    while i < n {
        m0 = vmaxq_f32(m0, load_tail(p.add(i), (n - i).min(W), f32::NEG_INFINITY));
        i += W;
    }
    let r = vmaxvq_f32(vmaxq_f32(m0, m1));
    if r.is_nan() {
        return crate::scalar::max(x);
    }
    r
}

/// exp of 4 lanes: the range reduction and degree-7 polynomial of the x86 paths
/// (see `docs/kernels.md`).
#[target_feature(enable = "neon")]
#[inline]
unsafe fn exp4(x: float32x4_t) -> float32x4_t {
    let x = vminq_f32(vdupq_n_f32(89.0), vmaxq_f32(vdupq_n_f32(-104.0), x));
    let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(std::f32::consts::LOG2_E)));
    let r = vfmsq_f32(x, n, vdupq_n_f32(0.693_359_4));
    let r = vfmsq_f32(r, n, vdupq_n_f32(-2.121_944_4e-4));
    let mut p = vdupq_n_f32(1.0 / 5040.0);
    p = vfmaq_f32(vdupq_n_f32(1.0 / 720.0), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0 / 120.0), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0 / 24.0), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0 / 6.0), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0), p, r);
    let ni = vcvtq_s32_f32(n);
    let n1 = vshrq_n_s32::<1>(ni);
    let n2 = vsubq_s32(ni, n1);
    let bias = vdupq_n_s32(127);
    let s1 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n1, bias)));
    let s2 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n2, bias)));
    vmulq_f32(vmulq_f32(p, s1), s2)
}

/// x_k ← exp(x_k − shift); returns Σ of the stored float32 values, accumulated in float64
/// (two 2-lane accumulators, combined then reduced in a fixed order).
#[target_feature(enable = "neon")]
pub unsafe fn exp_shift_sum(x: &mut [f32], shift: f32) -> f64 {
    let n = x.len();
    let p = x.as_mut_ptr();
    let vs = vdupq_n_f32(shift);
    let (mut lo, mut hi) = (vdupq_n_f64(0.0), vdupq_n_f64(0.0));
    let mut i = 0;
    while i + W <= n {
        let e = exp4(vsubq_f32(vld1q_f32(p.add(i)), vs));
        vst1q_f32(p.add(i), e);
        lo = vaddq_f64(lo, vcvt_f64_f32(vget_low_f32(e)));
        hi = vaddq_f64(hi, vcvt_high_f64_f32(e));
        i += W;
    }
    if i < n {
        let r = n - i;
        let mut t = [0f32; W];
        vst1q_f32(
            t.as_mut_ptr(),
            exp4(vsubq_f32(load_tail(p.add(i), r, 0.0), vs)),
        );
        for v in t.iter_mut().skip(r) {
            *v = 0.0;
        }
        std::ptr::copy_nonoverlapping(t.as_ptr(), p.add(i), r);
        let e = vld1q_f32(t.as_ptr());
        lo = vaddq_f64(lo, vcvt_f64_f32(vget_low_f32(e)));
        hi = vaddq_f64(hi, vcvt_high_f64_f32(e));
    }
    vaddvq_f64(vaddq_f64(lo, hi))
}

// ---------------------------------------------------------------------------------------------
// GEMM: 8×8 micro-kernel (16 q-register accumulators, two B vectors, A broadcast from the
// packed panel), KC = 256 (8 KiB B micro-panel), MC = 128, portable packing.

const MR: usize = 8;
const NR: usize = 8;

static SPEC: Spec = Spec {
    mr: MR,
    nr: NR,
    kc: 256,
    mc: 128,
    nc: 512,
    prefetch: gemm::no_prefetch,
    pack_a: gemm::pack_a_generic,
    pack_b_nt,
    pack_b_nn,
    kernel,
};

unsafe fn pack_b_nt(cols: usize, kc: usize, b: *const f32, ldb: usize, dst: *mut f32) {
    gemm::pack_b_nt_generic(NR, cols, kc, b, ldb, dst)
}

unsafe fn pack_b_nn(cols: usize, kc: usize, b: *const f32, ldb: usize, dst: *mut f32) {
    gemm::pack_b_nn_generic(NR, cols, kc, b, ldb, dst)
}

/// Full-width blocks run on C directly; a block narrower than 8 columns runs on an 8×8
/// scratch copy of C (same arithmetic), and only its `cols` columns are copied back.
#[target_feature(enable = "neon")]
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

#[target_feature(enable = "neon")]
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
        8 => ukr::<8>(kc, pa, pb, c, ldc, load_c),
        7 => ukr::<7>(kc, pa, pb, c, ldc, load_c),
        6 => ukr::<6>(kc, pa, pb, c, ldc, load_c),
        5 => ukr::<5>(kc, pa, pb, c, ldc, load_c),
        4 => ukr::<4>(kc, pa, pb, c, ldc, load_c),
        3 => ukr::<3>(kc, pa, pb, c, ldc, load_c),
        2 => ukr::<2>(kc, pa, pb, c, ldc, load_c),
        _ => ukr::<1>(kc, pa, pb, c, ldc, load_c),
    }
}

/// R×8 block of C: `acc[i] (+)= Σ_p a[p·R + i]·b[p·8 ..]`, one FMA per p, in order.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn ukr<const R: usize>(
    kc: usize,
    pa: *const f32,
    pb: *const f32,
    c: *mut f32,
    ldc: usize,
    load_c: bool,
) {
    let mut c0 = [vdupq_n_f32(0.0); R];
    let mut c1 = [vdupq_n_f32(0.0); R];
    if load_c {
        for i in 0..R {
            c0[i] = vld1q_f32(c.add(i * ldc));
            c1[i] = vld1q_f32(c.add(i * ldc + W));
        }
    }
    let (mut a, mut b) = (pa, pb);
    for _ in 0..kc {
        let b0 = vld1q_f32(b);
        let b1 = vld1q_f32(b.add(W));
        for i in 0..R {
            let ai = vdupq_n_f32(*a.add(i));
            c0[i] = vfmaq_f32(c0[i], ai, b0);
            c1[i] = vfmaq_f32(c1[i], ai, b1);
        }
        a = a.add(R);
        b = b.add(NR);
    }
    for i in 0..R {
        vst1q_f32(c.add(i * ldc), c0[i]);
        vst1q_f32(c.add(i * ldc + W), c1[i]);
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
