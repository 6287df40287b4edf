//! The kernels, written once over a small set of per-ISA primitives.
//!
//! Each SIMD ISA (`x86::avx2`, `x86::avx512`, `aarch64::neon`) implements [`Simd`]: loads
//! (whole, and the first `r` lanes with zeros or a fill value elsewhere), stores, splat,
//! add/sub/mul/min/max, fused multiply-add, round-to-nearest, the two power-of-two factors of
//! `exp`, a fixed-order horizontal sum and maximum, and a float64 accumulator for `exp` sums.
//! The generic functions below are `#[inline(always)]`; [`isa_kernels!`] instantiates them
//! inside `#[target_feature]` functions, where the primitives (and their intrinsics) inline.
//!
//! The order of every sum is fixed by these functions (the accumulator layout, the tail, the
//! combination `(s0 + s1) + (s2 + s3)`) and by each ISA's horizontal sum, so results depend on
//! the values and the length only, never on addresses, threads or tiling. Rust 1.63: no GATs,
//! no let-else (the NEON build uses Debian's rustc 1.63).
#![allow(clippy::missing_safety_doc)]

use crate::gemm::{Ahead, Tile};

/// The primitives of one SIMD ISA. Every method is `unsafe`: it may only run on a CPU with the
/// ISA, inside a function compiled for it, on pointers valid for the lanes it touches.
pub(crate) trait Simd: Copy {
    /// `W` float32 lanes.
    type V: Copy;
    /// Accumulator of unordered-compare results (`max`).
    type M: Copy;
    /// Float64 accumulator for `exp_shift_sum`.
    type D: Copy;
    /// Lanes per vector.
    const W: usize;
    /// GEMM micro-kernel rows (the micro-kernel is MR × 2W).
    const MR: usize;

    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    /// `W` values from `p` (any alignment).
    unsafe fn load(p: *const f32) -> Self::V;
    /// `*p` in every lane.
    unsafe fn splat_load(p: *const f32) -> Self::V;
    /// The first `r ≤ W` values from `p`, `fill` in the other lanes.
    unsafe fn load_part_or(p: *const f32, r: usize, fill: f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Stores the first `r ≤ W` lanes of `v` at `p`.
    unsafe fn store_part(p: *mut f32, r: usize, v: Self::V);
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// a·b + c, one rounding.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// c − a·b, one rounding.
    unsafe fn fnma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Round to nearest, ties to even.
    unsafe fn round(a: Self::V) -> Self::V;
    /// For integral `n` in [−151, 129]: (2^⌊n/2⌋, 2^(n−⌊n/2⌋)), built from exponent bits.
    unsafe fn pow2_halves(n: Self::V) -> (Self::V, Self::V);
    /// Horizontal sum in this ISA's fixed order.
    unsafe fn reduce_add(v: Self::V) -> f32;
    unsafe fn reduce_max(v: Self::V) -> f32;
    unsafe fn nan_none() -> Self::M;
    /// `acc` plus whether any lane of `a` or `b` is NaN (ISAs whose `max` propagates NaN may
    /// return `acc`: [`max`] also checks its result).
    unsafe fn nan_or(acc: Self::M, a: Self::V, b: Self::V) -> Self::M;
    unsafe fn nan_any(acc: Self::M) -> bool;
    unsafe fn d_zero() -> Self::D;
    /// Adds the `W` lanes of `v`, widened to float64, to the accumulator.
    unsafe fn d_acc(acc: Self::D, v: Self::V) -> Self::D;
    unsafe fn d_reduce(acc: Self::D) -> f64;

    /// The first `r ≤ W` values from `p`, zero elsewhere.
    #[inline(always)]
    unsafe fn load_part(p: *const f32, r: usize) -> Self::V {
        Self::load_part_or(p, r, 0.0)
    }

    /// p·2ⁿ rounded once, for integral `n` in [−151, 129] and p in [0.7, 1.5] (the exp
    /// polynomial's range): by default p times the two exact factors of [`Simd::pow2_halves`]
    /// (the first product is exact); an ISA with a scaling instruction gives the same bits.
    #[inline(always)]
    unsafe fn mul_pow2(p: Self::V, n: Self::V) -> Self::V {
        let (s1, s2) = Self::pow2_halves(n);
        Self::mul(Self::mul(p, s1), s2)
    }

    /// A hint to bring the cache line at address `p` towards L2 (none by default).
    #[inline(always)]
    unsafe fn prefetch_l2(_p: usize) {}
}

const DOT: u8 = 0;
const L2SQ: u8 = 1;
const SUMSQ: u8 = 2;

/// Σ a_k b_k: four accumulators, the tail (zero-padded) into the second, combined as
/// (s0 + s1) + (s2 + s3), then reduced.
#[inline(always)]
pub(crate) unsafe fn dot<S: Simd>(a: &[f32], b: &[f32]) -> f32 {
    reduce4::<S, DOT>(a.as_ptr(), b.as_ptr(), a.len().min(b.len()))
}

/// Σ (a_k − b_k)²: as [`dot`] on the differences.
#[inline(always)]
pub(crate) unsafe fn l2sq<S: Simd>(a: &[f32], b: &[f32]) -> f32 {
    reduce4::<S, L2SQ>(a.as_ptr(), b.as_ptr(), a.len().min(b.len()))
}

/// Σ a_k²: as [`dot`] with b = a.
#[inline(always)]
pub(crate) unsafe fn sumsq<S: Simd>(a: &[f32]) -> f32 {
    reduce4::<S, SUMSQ>(a.as_ptr(), a.as_ptr(), a.len())
}

/// The two factors of term `OP` for the `r ≤ W` elements at offset i (zero-padded).
#[inline(always)]
unsafe fn factors<S: Simd, const OP: u8>(
    a: *const f32,
    b: *const f32,
    i: usize,
    r: usize,
) -> (S::V, S::V) {
    let (x, y) = if r == S::W {
        (S::load(a.add(i)), S::load(b.add(i)))
    } else {
        (S::load_part(a.add(i), r), S::load_part(b.add(i), r))
    };
    match OP {
        L2SQ => {
            let d = S::sub(x, y);
            (d, d)
        }
        SUMSQ => (x, x),
        _ => (x, y),
    }
}

/// Σ x_k·y_k over the factors of term `OP`: the accumulator layout shared by `dot`, `l2sq`
/// and `sumsq`.
#[inline(always)]
unsafe fn reduce4<S: Simd, const OP: u8>(a: *const f32, b: *const f32, n: usize) -> f32 {
    let w = S::W;
    let (mut s0, mut s1, mut s2, mut s3) = (S::zero(), S::zero(), S::zero(), S::zero());
    let mut i = 0;
    while i + 4 * w <= n {
        let (x0, y0) = factors::<S, OP>(a, b, i, w);
        let (x1, y1) = factors::<S, OP>(a, b, i + w, w);
        let (x2, y2) = factors::<S, OP>(a, b, i + 2 * w, w);
        let (x3, y3) = factors::<S, OP>(a, b, i + 3 * w, w);
        s0 = S::fma(x0, y0, s0);
        s1 = S::fma(x1, y1, s1);
        s2 = S::fma(x2, y2, s2);
        s3 = S::fma(x3, y3, s3);
        i += 4 * w;
    }
    while i + w <= n {
        let (x, y) = factors::<S, OP>(a, b, i, w);
        s0 = S::fma(x, y, s0);
        i += w;
    }
    if i < n {
        let (x, y) = factors::<S, OP>(a, b, i, n - i);
        s1 = S::fma(x, y, s1);
    }
    S::reduce_add(S::add(S::add(s0, s1), S::add(s2, s3)))
}

/// (a·b, a·a, b·b): two accumulators per sum, the tail into the first.
#[inline(always)]
pub(crate) unsafe fn dot_norms<S: Simd>(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
    let w = S::W;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let z = S::zero();
    let (mut ab0, mut aa0, mut bb0, mut ab1, mut aa1, mut bb1) = (z, z, z, z, z, z);
    let mut i = 0;
    while i + 2 * w <= n {
        let (x0, y0) = (S::load(pa.add(i)), S::load(pb.add(i)));
        let (x1, y1) = (S::load(pa.add(i + w)), S::load(pb.add(i + w)));
        ab0 = S::fma(x0, y0, ab0);
        aa0 = S::fma(x0, x0, aa0);
        bb0 = S::fma(y0, y0, bb0);
        ab1 = S::fma(x1, y1, ab1);
        aa1 = S::fma(x1, x1, aa1);
        bb1 = S::fma(y1, y1, bb1);
        i += 2 * w;
    }
    while i < n {
        let r = (n - i).min(w);
        let (x0, y0) = (S::load_part(pa.add(i), r), S::load_part(pb.add(i), r));
        ab0 = S::fma(x0, y0, ab0);
        aa0 = S::fma(x0, x0, aa0);
        bb0 = S::fma(y0, y0, bb0);
        i += w;
    }
    (
        S::reduce_add(S::add(ab0, ab1)),
        S::reduce_add(S::add(aa0, aa1)),
        S::reduce_add(S::add(bb0, bb1)),
    )
}

/// Row `i` of a row-major matrix with `cols` values per row.
#[inline(always)]
unsafe fn row<'a>(p: *const f32, i: usize, cols: usize) -> &'a [f32] {
    std::slice::from_raw_parts(p.add(i * cols), cols)
}

/// out_i = Σ x_k·y_k over the factors of term `OP` of row i of `a` and `b` (`cols` values per
/// row, `out.len()` rows): the per-row kernel inlined into the row loop, same bits per row.
#[inline(always)]
unsafe fn reduce_rows<S: Simd, const OP: u8>(
    a: *const f32,
    b: *const f32,
    cols: usize,
    out: &mut [f32],
) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = reduce4::<S, OP>(a.add(i * cols), b.add(i * cols), cols);
    }
}

/// out_i = [`dot`] of row i of `a` and `b` (row-major, `cols` values per row, `out.len()`
/// rows; the caller checks the lengths).
#[inline(always)]
pub(crate) unsafe fn dot_rows<S: Simd>(a: &[f32], b: &[f32], cols: usize, out: &mut [f32]) {
    reduce_rows::<S, DOT>(a.as_ptr(), b.as_ptr(), cols, out)
}

/// out_i = [`l2sq`] of row i of `a` and `b` (as [`dot_rows`]).
#[inline(always)]
pub(crate) unsafe fn l2sq_rows<S: Simd>(a: &[f32], b: &[f32], cols: usize, out: &mut [f32]) {
    reduce_rows::<S, L2SQ>(a.as_ptr(), b.as_ptr(), cols, out)
}

/// out_i = [`sumsq`] of row i of `a` (as [`dot_rows`]).
#[inline(always)]
pub(crate) unsafe fn sumsq_rows<S: Simd>(a: &[f32], cols: usize, out: &mut [f32]) {
    reduce_rows::<S, SUMSQ>(a.as_ptr(), a.as_ptr(), cols, out)
}

/// out_i = [`dot_norms`] of row i of `a` and `b` (as [`dot_rows`]).
#[inline(always)]
pub(crate) unsafe fn dot_norms_rows<S: Simd>(
    a: &[f32],
    b: &[f32],
    cols: usize,
    out: &mut [(f32, f32, f32)],
) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = dot_norms::<S>(row(a.as_ptr(), i, cols), row(b.as_ptr(), i, cols));
    }
}

const SCALE: u8 = 0;
const AXPY: u8 = 1;

/// y_k ← s·y_k (`SCALE`, x unused) or y_k + s·x_k (`AXPY`), two vectors at a time, then the
/// tail one (partial) vector at a time.
#[inline(always)]
unsafe fn update<S: Simd, const OP: u8>(y: *mut f32, x: *const f32, n: usize, s: f32) {
    let w = S::W;
    let vs = S::splat(s);
    let mut i = 0;
    while i + 2 * w <= n {
        let y0 = step::<S, OP>(vs, S::load(x.add(i)), S::load(y.add(i)));
        let y1 = step::<S, OP>(vs, S::load(x.add(i + w)), S::load(y.add(i + w)));
        S::store(y.add(i), y0);
        S::store(y.add(i + w), y1);
        i += 2 * w;
    }
    while i < n {
        let r = (n - i).min(w);
        let v = step::<S, OP>(vs, S::load_part(x.add(i), r), S::load_part(y.add(i), r));
        S::store_part(y.add(i), r, v);
        i += w;
    }
}

/// One vector of [`update`].
#[inline(always)]
unsafe fn step<S: Simd, const OP: u8>(vs: S::V, xv: S::V, yv: S::V) -> S::V {
    if OP == SCALE {
        S::mul(yv, vs)
    } else {
        S::fma(vs, xv, yv)
    }
}

/// x ← s·x.
#[inline(always)]
pub(crate) unsafe fn scale<S: Simd>(x: &mut [f32], s: f32) {
    let p = x.as_mut_ptr();
    update::<S, SCALE>(p, p, x.len(), s);
}

/// Row i of `x` (row-major, `cols` values per row, `s.len()` rows) ← s_i · row i, as
/// [`scale`] on each row.
#[inline(always)]
pub(crate) unsafe fn scale_rows<S: Simd>(x: &mut [f32], cols: usize, s: &[f32]) {
    let p = x.as_mut_ptr();
    for (i, &si) in s.iter().enumerate() {
        update::<S, SCALE>(p.add(i * cols), p.add(i * cols), cols, si);
    }
}

/// y ← y + alpha·x, one fused multiply-add per element.
#[inline(always)]
pub(crate) unsafe fn axpy<S: Simd>(y: &mut [f32], alpha: f32, x: &[f32]) {
    let n = y.len().min(x.len());
    update::<S, AXPY>(y.as_mut_ptr(), x.as_ptr(), n, alpha);
}

/// max_k x_k; if any element is NaN the scalar kernel is rerun so that the very NaN it would
/// return comes back.
#[inline(always)]
pub(crate) unsafe fn max<S: Simd>(x: &[f32]) -> f32 {
    let w = S::W;
    let n = x.len();
    let p = x.as_ptr();
    let ninf = S::splat(f32::NEG_INFINITY);
    let (mut m0, mut m1) = (ninf, ninf);
    let mut nan = S::nan_none();
    let mut i = 0;
    while i + 2 * w <= n {
        let (x0, x1) = (S::load(p.add(i)), S::load(p.add(i + w)));
        nan = S::nan_or(nan, x0, x1);
        m0 = S::max(m0, x0);
        m1 = S::max(m1, x1);
        i += 2 * w;
    }
    while i < n {
        let v = S::load_part_or(p.add(i), (n - i).min(w), f32::NEG_INFINITY);
        nan = S::nan_or(nan, v, v);
        m0 = S::max(m0, v);
        i += w;
    }
    let r = S::reduce_max(S::max(m0, m1));
    if S::nan_any(nan) || r.is_nan() {
        return crate::scalar::max(x);
    }
    r
}

/// exp of each lane; see `docs/kernels.md`.
///
/// Range reduction x = n·ln2 + r with n = round(x·log2 e), r by Cody–Waite in two steps
/// (ln2 = 0.693359375 − 2.12194440e-4), |r| ≤ ln2/2; exp(r) by its degree-7 Taylor polynomial
/// (truncation < 6e-9 relative), Horner with FMA; 2ⁿ applied as two exact power-of-two factors
/// so that results down to the subnormal range round once. x is clamped to [−104, 89] first
/// (NaN passes through): below −104 the result is 0, above 88.73 it is +∞.
#[inline(always)]
unsafe fn exp<S: Simd>(x: S::V) -> S::V {
    let x = S::min(S::splat(89.0), S::max(S::splat(-104.0), x));
    let n = S::round(S::mul(x, S::splat(std::f32::consts::LOG2_E)));
    let r = S::fnma(n, S::splat(0.693_359_4), x);
    let r = S::fnma(n, S::splat(-2.121_944_4e-4), r);
    let mut p = S::splat(1.0 / 5040.0);
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = S::fma(p, r, S::splat(c));
    }
    S::mul_pow2(p, n)
}

/// x_k ← exp(x_k − shift); returns Σ of the stored float32 values, accumulated in float64
/// (the ISA's float64 accumulator, reduced in a fixed order; tail lanes add zeros).
#[inline(always)]
pub(crate) unsafe fn exp_shift_sum<S: Simd>(x: &mut [f32], shift: f32) -> f64 {
    let w = S::W;
    let n = x.len();
    let p = x.as_mut_ptr();
    let vs = S::splat(shift);
    let mut acc = S::d_zero();
    let mut i = 0;
    while i + w <= n {
        let e = exp::<S>(S::sub(S::load(p.add(i)), vs));
        S::store(p.add(i), e);
        acc = S::d_acc(acc, e);
        i += w;
    }
    if i < n {
        let r = n - i;
        let e = exp::<S>(S::sub(S::load_part(p.add(i), r), vs));
        S::store_part(p.add(i), r, e);
        acc = S::d_acc(acc, S::load_part(p.add(i), r));
    }
    S::d_reduce(acc)
}

/// out_k = (exp(z_k − shift) − sub)·mul: the exp of [`exp_shift_sum`] (the same bits per
/// lane), then one subtraction and one multiplication, each rounded; one pass, `z` unchanged.
#[inline(always)]
pub(crate) unsafe fn exp_shift_affine<S: Simd>(
    z: &[f32],
    out: &mut [f32],
    shift: f32,
    sub: f32,
    mul: f32,
) {
    let w = S::W;
    let n = z.len().min(out.len());
    let (zp, op) = (z.as_ptr(), out.as_mut_ptr());
    let (vs, vsub, vmul) = (S::splat(shift), S::splat(sub), S::splat(mul));
    // (No closures here: they would not inherit the caller's target features, and every
    // intrinsic would become a call.)
    let mut i = 0;
    while i + w <= n {
        let e = exp::<S>(S::sub(S::load(zp.add(i)), vs));
        S::store(op.add(i), S::mul(S::sub(e, vsub), vmul));
        i += w;
    }
    if i < n {
        let r = n - i;
        let e = exp::<S>(S::sub(S::load_part(zp.add(i), r), vs));
        S::store_part(op.add(i), r, S::mul(S::sub(e, vsub), vmul));
    }
}

/// (Σ_k e_k, Σ_k e_k·z_k) with e_k = exp(z_k − shift) rounded to float32 as
/// [`exp_shift_sum`] stores it, e_k·z_k rounded once, both accumulated in float64 (the ISA's
/// float64 accumulator, reduced in a fixed order); nothing is stored. Entries whose e_k is 0
/// contribute 0 to both sums whatever z_k (an excluded −∞ logit included).
#[inline(always)]
pub(crate) unsafe fn exp_shift_sum_dot<S: Simd>(z: &[f32], shift: f32) -> (f64, f64) {
    let w = S::W;
    let n = z.len();
    let zp = z.as_ptr();
    let vs = S::splat(shift);
    let (mut se, mut sez) = (S::d_zero(), S::d_zero());
    // z clamped to the finite range: e·z is 0 where e is 0 (z = −∞ gives e = 0, never
    // 0·∞ = NaN) and unchanged for finite z; a NaN z makes e NaN, which propagates.
    let (lo, hi) = (S::splat(-f32::MAX), S::splat(f32::MAX));
    let mut i = 0;
    while i + w <= n {
        let v = S::load(zp.add(i));
        let e = exp::<S>(S::sub(v, vs));
        se = S::d_acc(se, e);
        sez = S::d_acc(sez, S::mul(e, S::min(S::max(v, lo), hi)));
        i += w;
    }
    if i < n {
        let r = n - i;
        // Lanes past the end: e = 0 and z = 0.
        let v = S::load_part(zp.add(i), r);
        let mut buf = [0f32; 16];
        debug_assert!(w <= buf.len());
        S::store_part(buf.as_mut_ptr(), r, exp::<S>(S::sub(v, vs)));
        let e = S::load_part(buf.as_ptr(), r);
        se = S::d_acc(se, e);
        sez = S::d_acc(sez, S::mul(e, S::min(S::max(v, lo), hi)));
    }
    (S::d_reduce(se), S::d_reduce(sez))
}

/// The R × 2W block of C at `c`: `acc[i] (+)= Σ_p a[p·R + i]·b[p·2W ..]`, one FMA per p, in
/// order. `cols < 2W` stores (and loads) only the first `cols` columns. Every `ahead.every`
/// steps of p it prefetches the next line of `ahead` (the source of the next B micro-panel),
/// so that those lines arrive spread over the arithmetic rather than in bursts.
#[inline(always)]
unsafe fn ukr<S: Simd, const R: usize>(t: &Tile, ahead: &mut Ahead) {
    let (kc, pa, pb, c, ldc, cols) = (t.kc, t.pa, t.pb, t.c, t.ldc, t.cols);
    let w = S::W;
    let (r0, r1) = (cols.min(w), cols.max(w).min(2 * w) - w);
    let full = cols == 2 * w;
    let mut c0 = [S::zero(); R];
    let mut c1 = [S::zero(); R];
    if t.load_c {
        for i in 0..R {
            let row = c.add(i * ldc);
            if full {
                c0[i] = S::load(row);
                c1[i] = S::load(row.add(w));
            } else {
                c0[i] = S::load_part(row, r0);
                c1[i] = S::load_part(row.add(w), r1);
            }
        }
    }
    let (mut a, mut b) = (pa, pb);
    let mut ah = *ahead;
    let mut countdown = ah.countdown();
    for _ in 0..kc {
        let b0 = S::load(b);
        let b1 = S::load(b.add(w));
        for i in 0..R {
            let ai = S::splat_load(a.add(i));
            c0[i] = S::fma(ai, b0, c0[i]);
            c1[i] = S::fma(ai, b1, c1[i]);
        }
        a = a.add(R);
        b = b.add(2 * w);
        if let Some(line) = ah.due(&mut countdown) {
            S::prefetch_l2(line);
        }
    }
    *ahead = ah;
    for i in 0..R {
        let row = c.add(i * ldc);
        if full {
            S::store(row, c0[i]);
            S::store(row.add(w), c1[i]);
        } else {
            S::store_part(row, r0, c0[i]);
            if r1 > 0 {
                S::store_part(row.add(w), r1, c1[i]);
            }
        }
    }
}

/// The GEMM micro-kernel (NR = 2W): one [`Tile`], by the instance of [`ukr`] for its rows.
#[inline(always)]
pub(crate) unsafe fn kernel<S: Simd>(t: &Tile, ahead: &mut Ahead) {
    macro_rules! by_rows {
        ($($r:literal)*) => {
            match t.rows {
                $($r if $r <= S::MR => ukr::<S, $r>(t, ahead),)*
                _ => ukr::<S, 1>(t, ahead),
            }
        };
    }
    by_rows!(14 13 12 11 10 9 8 7 6 5 4 3 2)
}

/// `iters` steps of 2·MR independent fused multiply-adds on full vectors (the micro-kernel's
/// accumulator count, enough to cover FMA latency on every supported core): the arithmetic
/// peak, free of memory traffic. Returns a sum of the accumulators so the work is kept.
#[inline(always)]
pub(crate) unsafe fn fma_loop<S: Simd>(iters: usize) -> f32 {
    let mut acc = [S::zero(); 24];
    let n = (2 * S::MR).min(24);
    let (x, y) = (S::splat(0.999_999), S::splat(1e-7));
    for _ in 0..iters {
        for a in acc.iter_mut().take(n) {
            *a = S::fma(*a, x, y);
        }
    }
    let mut s = S::zero();
    for a in acc.iter().take(n) {
        s = S::add(s, *a);
    }
    S::reduce_add(s)
}

/// Defines an ISA module's public kernels: `#[target_feature]` functions that instantiate the
/// generic kernels above for `$s`, and the GEMM entry points over its blocking.
macro_rules! isa_kernels {
    ($s:ty, $feat:literal) => {
        /// Σ a_k b_k.
        #[target_feature(enable = $feat)]
        pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
            crate::simd::dot::<$s>(a, b)
        }
        /// (a·b, a·a, b·b).
        #[target_feature(enable = $feat)]
        pub unsafe fn dot_norms(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
            crate::simd::dot_norms::<$s>(a, b)
        }
        /// Σ (a_k − b_k)².
        #[target_feature(enable = $feat)]
        pub unsafe fn l2sq(a: &[f32], b: &[f32]) -> f32 {
            crate::simd::l2sq::<$s>(a, b)
        }
        /// Σ a_k².
        #[target_feature(enable = $feat)]
        pub unsafe fn sumsq(a: &[f32]) -> f32 {
            crate::simd::sumsq::<$s>(a)
        }
        /// out_i = a_i·b_i per row.
        #[target_feature(enable = $feat)]
        pub unsafe fn dot_rows(a: &[f32], b: &[f32], cols: usize, out: &mut [f32]) {
            crate::simd::dot_rows::<$s>(a, b, cols, out)
        }
        /// out_i = (a_i·b_i, a_i·a_i, b_i·b_i) per row.
        #[target_feature(enable = $feat)]
        pub unsafe fn dot_norms_rows(
            a: &[f32],
            b: &[f32],
            cols: usize,
            out: &mut [(f32, f32, f32)],
        ) {
            crate::simd::dot_norms_rows::<$s>(a, b, cols, out)
        }
        /// out_i = ‖a_i − b_i‖² per row.
        #[target_feature(enable = $feat)]
        pub unsafe fn l2sq_rows(a: &[f32], b: &[f32], cols: usize, out: &mut [f32]) {
            crate::simd::l2sq_rows::<$s>(a, b, cols, out)
        }
        /// out_i = ‖a_i‖² per row.
        #[target_feature(enable = $feat)]
        pub unsafe fn sumsq_rows(a: &[f32], cols: usize, out: &mut [f32]) {
            crate::simd::sumsq_rows::<$s>(a, cols, out)
        }
        /// x_i ← s_i·x_i per row.
        #[target_feature(enable = $feat)]
        pub unsafe fn scale_rows(x: &mut [f32], cols: usize, s: &[f32]) {
            crate::simd::scale_rows::<$s>(x, cols, s)
        }
        /// x ← s·x.
        #[target_feature(enable = $feat)]
        pub unsafe fn scale(x: &mut [f32], s: f32) {
            crate::simd::scale::<$s>(x, s)
        }
        /// y ← y + alpha·x.
        #[target_feature(enable = $feat)]
        pub unsafe fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
            crate::simd::axpy::<$s>(y, alpha, x)
        }
        /// max_k x_k.
        #[target_feature(enable = $feat)]
        pub unsafe fn max(x: &[f32]) -> f32 {
            crate::simd::max::<$s>(x)
        }
        /// x_k ← exp(x_k − shift); Σ of the results in float64.
        #[target_feature(enable = $feat)]
        pub unsafe fn exp_shift_sum(x: &mut [f32], shift: f32) -> f64 {
            crate::simd::exp_shift_sum::<$s>(x, shift)
        }
        /// out_k = (exp(z_k − shift) − sub)·mul.
        #[target_feature(enable = $feat)]
        pub unsafe fn exp_shift_affine(z: &[f32], out: &mut [f32], shift: f32, sub: f32, mul: f32) {
            crate::simd::exp_shift_affine::<$s>(z, out, shift, sub, mul)
        }
        /// (Σ exp(z_k − shift), Σ exp(z_k − shift)·z_k) in float64.
        #[target_feature(enable = $feat)]
        pub unsafe fn exp_shift_sum_dot(z: &[f32], shift: f32) -> (f64, f64) {
            crate::simd::exp_shift_sum_dot::<$s>(z, shift)
        }
        /// `iters` steps of independent fused multiply-adds: see [`crate::fma_peak`].
        #[target_feature(enable = $feat)]
        pub unsafe fn fma_loop(iters: usize) -> f32 {
            crate::simd::fma_loop::<$s>(iters)
        }
        /// The GEMM micro-kernel, compiled for this ISA.
        #[target_feature(enable = $feat)]
        unsafe fn gemm_kernel(t: &crate::gemm::Tile, ahead: &mut crate::gemm::Ahead) {
            crate::simd::kernel::<$s>(t, ahead)
        }
        /// C (+)= A·Bᵀ or A·B over this ISA's blocking.
        pub unsafe fn gemm(g: &crate::Gemm) {
            crate::gemm::run(&spec(), g)
        }
    };
}
pub(crate) use isa_kernels;
