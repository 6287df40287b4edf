//! bfloat16 compute mode: GEMMs whose inputs are rounded to bf16 and whose products accumulate
//! in float32.
//!
//! # Rounding
//! [`round_bf16`] rounds a float32 to the nearest bf16, ties to even; NaN stays NaN (quiet, sign
//! kept), ±∞ stay ±∞, values whose rounded magnitude exceeds the largest bf16 become ±∞. The
//! GEMMs first treat a float32 subnormal input (|x| < 2⁻¹²⁶) as ±0, as the AVX512-BF16
//! conversion does (DAZ); [`to_bf16_f32`] applies both steps and is the value every product
//! uses.
//!
//! # Summation order
//! k is taken in pairs (0,1), (2,3), …: each element of C is one float32 accumulator, started at
//! 0 (or at C when accumulating) and, for every pair, first adds a_{2q+1}·b_{2q+1}, then
//! a_{2q}·b_{2q}, each product exact in float32 (two 8-bit significands) and each addition
//! rounded to nearest. An odd k ends with the last product alone. This is exactly the step of
//! `vdpbf16ps`; the fallback (used where the CPU lacks AVX512-BF16, or when a lower ISA is forced
//! with [`crate::isa::set`]) copies the rounded inputs with each k pair swapped into float32 and
//! runs the float32 GEMM, whose fused multiply-add chain over k gives the same sums.
//!
//! Results are identical between the `vdpbf16ps` path and the AVX2, AVX-512 and NEON fallbacks
//! whenever no product and no partial sum falls below 2⁻¹²⁶ in magnitude (the instruction
//! flushes those to zero, FTZ; the fallbacks keep float32 subnormals). The scalar fallback
//! accumulates in float64 like every scalar GEMM and may differ from them in the last bits.
//! Every element's sum is formed in the same order whatever the tiling, so splitting the work
//! across threads never changes a result.

use crate::isa::{self, Isa};
use crate::{Gemm, GemmRef};
use std::cell::RefCell;

/// The bf16 nearest to `x` (round to nearest, ties to even), as its 16 bits. NaN gives a quiet
/// NaN with the sign of `x`; ±∞ stay ±∞; subnormals round like any other value.
#[inline]
pub fn round_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if x.is_nan() {
        return ((u >> 16) as u16) | 0x0040;
    }
    let lsb = (u >> 16) & 1;
    (u.wrapping_add(0x7FFF + lsb) >> 16) as u16
}

/// The float32 holding bf16 bits `h` exactly.
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// The bf16 bits the GEMMs use for `x`: a float32 subnormal becomes a zero of the same sign
/// (DAZ), anything else goes through [`round_bf16`]. This is the conversion of the AVX512-BF16
/// instructions (`vcvtne2ps2bf16`); a normal float32 never rounds to a bf16 subnormal, so no
/// bf16 input of a product is subnormal.
#[inline]
pub fn round_bf16_daz(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7F80_0000 == 0 {
        ((u >> 16) & 0x8000) as u16
    } else {
        round_bf16(x)
    }
}

/// The float32 value a bf16-mode product uses for the input `x`: `bf16_to_f32(round_bf16_daz(x))`,
/// written without branches so that loops over slices vectorize.
#[inline]
pub fn to_bf16_f32(x: f32) -> f32 {
    let u = x.to_bits();
    let rounded = u.wrapping_add(0x7FFF + ((u >> 16) & 1)) & 0xFFFF_0000;
    let nan = (u & 0x7FFF_FFFF) > 0x7F80_0000;
    let sub = u & 0x7F80_0000 == 0;
    let r = if nan {
        (u & 0xFFFF_0000) | 0x0040_0000
    } else {
        rounded
    };
    f32::from_bits(if sub { u & 0x8000_0000 } else { r })
}

/// Whether this CPU has AVX512-BF16 (and the OS saves the AVX-512 state).
pub fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::x86::bf16::detected()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the bf16 GEMMs run the `vdpbf16ps` kernel now: the CPU has AVX512-BF16 and the
/// active ISA (see [`crate::isa::set`]) is AVX-512.
#[inline]
pub fn native_active() -> bool {
    isa::active() == Isa::Avx512 && has_avx512_bf16()
}

/// The name of the bf16 path in use: `"avx512bf16"` or `"fallback"`.
pub fn path_name() -> &'static str {
    if native_active() {
        "avx512bf16"
    } else {
        "fallback"
    }
}

/// Runs a checked GEMM (shapes and layouts as [`crate::gemm`]) with bf16 inputs and float32
/// accumulation; see the module docs.
pub fn gemm(g: GemmRef) {
    // SAFETY: GemmRef's constructors checked the slices against the shapes and borrow them.
    unsafe { gemm_raw(g.get()) }
}

/// [`gemm`] on raw pointers.
///
/// # Safety
/// As [`crate::gemm_raw`].
pub unsafe fn gemm_raw(g: &Gemm) {
    if g.m == 0 || g.n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if native_active() {
            return crate::x86::bf16::gemm(g);
        }
    }
    fallback(g)
}

thread_local! {
    static FB_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static FB_B: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Rows of A converted per fallback block.
const FB_ROWS_A: usize = 256;
/// Rows of B (NT) or columns of B (NN) converted per fallback block.
const FB_COLS_B: usize = 512;

/// `src[p ^ 1]` rounded (with DAZ) for p < kd, pairs swapped; an odd last element stays last.
#[inline]
fn swapped_index(p: usize, kd: usize) -> usize {
    if kd % 2 == 1 && p == kd - 1 {
        p
    } else {
        p ^ 1
    }
}

/// Runs `f` with this thread's two conversion buffers, at least `la` and `lb` floats.
fn with_fb_buffers<R>(la: usize, lb: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    FB_A.with(|ba| {
        FB_B.with(|bb| match (ba.try_borrow_mut(), bb.try_borrow_mut()) {
            (Ok(mut va), Ok(mut vb)) => {
                if va.len() < la {
                    va.resize(la, 0.0);
                }
                if vb.len() < lb {
                    vb.resize(lb, 0.0);
                }
                f(&mut va[..la], &mut vb[..lb])
            }
            _ => f(&mut vec![0.0; la], &mut vec![0.0; lb]),
        })
    })
}

/// The fallback GEMM: the explicit form of the summation order, exposed for tests (it runs
/// whatever the CPU has).
///
/// # Safety
/// As [`crate::gemm_raw`].
pub unsafe fn fallback(g: &Gemm) {
    let Gemm {
        m,
        n,
        k: kd,
        a,
        lda,
        b,
        ldb,
        c,
        ldc,
        nt,
        ta,
        accumulate,
    } = *g;
    if m == 0 || n == 0 {
        return;
    }
    if kd == 0 {
        crate::gemm_raw(g);
        return;
    }
    // A's element (i, p): row-major m × kd, or kd × m when transposed.
    let a_at = |i: usize, p: usize| {
        if ta {
            a.add(p * lda + i)
        } else {
            a.add(i * lda + p)
        }
    };
    let ra = FB_ROWS_A.min(m);
    let cb = FB_COLS_B.min(n);
    with_fb_buffers(ra * kd, cb * kd, |pa, tb| {
        let mut j0 = 0;
        while j0 < n {
            let nb = cb.min(n - j0);
            // B block, converted with pairs swapped along k.
            if nt {
                // Rows j0..j0+nb of B (n × kd): tb[j·kd + p].
                for j in 0..nb {
                    let src = b.add((j0 + j) * ldb);
                    let dst = &mut tb[j * kd..(j + 1) * kd];
                    for (p, d) in dst.iter_mut().enumerate() {
                        *d = to_bf16_f32(*src.add(swapped_index(p, kd)));
                    }
                }
            } else {
                // Columns j0..j0+nb of B (kd × n): tb[p·nb + j].
                for p in 0..kd {
                    let src = b.add(swapped_index(p, kd) * ldb + j0);
                    let dst = &mut tb[p * nb..(p + 1) * nb];
                    for (j, d) in dst.iter_mut().enumerate() {
                        *d = to_bf16_f32(*src.add(j));
                    }
                }
            }
            let mut i0 = 0;
            while i0 < m {
                let mb = ra.min(m - i0);
                for i in 0..mb {
                    let dst = &mut pa[i * kd..(i + 1) * kd];
                    for (p, d) in dst.iter_mut().enumerate() {
                        *d = to_bf16_f32(*a_at(i0 + i, swapped_index(p, kd)));
                    }
                }
                let cp = c.add(i0 * ldc + j0);
                let (pa, tb) = ((pa.as_ptr(), kd), (tb.as_ptr(), if nt { kd } else { nb }));
                let piece = if nt {
                    Gemm::nt(mb, nb, kd, pa, tb, (cp, ldc))
                } else {
                    Gemm::nn(mb, nb, kd, pa, tb, (cp, ldc))
                };
                crate::gemm_raw(&piece.accumulate(accumulate));
                i0 += mb;
            }
            j0 += nb;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_edge_cases() {
        // Exact bf16 values stay.
        for x in [
            0.0f32,
            -0.0,
            1.0,
            -2.5,
            1.7014118e38,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ] {
            assert_eq!(bf16_to_f32(round_bf16(x)).to_bits(), x.to_bits(), "{x}");
        }
        // Ties to even: 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷ → 1 (even);
        // 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ and 1 + 2⁻⁶ → 1 + 2⁻⁶ (even).
        assert_eq!(bf16_to_f32(round_bf16(1.0 + 1.0 / 256.0)), 1.0);
        assert_eq!(bf16_to_f32(round_bf16(1.0 + 3.0 / 256.0)), 1.0 + 1.0 / 64.0);
        assert_eq!(
            bf16_to_f32(round_bf16(-(1.0 + 3.0 / 256.0))),
            -(1.0 + 1.0 / 64.0)
        );
        // Just above / below the tie.
        let above = f32::from_bits((1.0f32 + 1.0 / 256.0).to_bits() + 1);
        assert_eq!(bf16_to_f32(round_bf16(above)), 1.0 + 1.0 / 128.0);
        let below = f32::from_bits((1.0f32 + 1.0 / 256.0).to_bits() - 1);
        assert_eq!(bf16_to_f32(round_bf16(below)), 1.0);
        // NaN stays NaN (also a NaN whose payload lies only in the low 16 bits), sign kept.
        for bits in [0x7FC0_0000u32, 0x7F80_0001, 0xFF80_0001, 0x7FBF_FFFF] {
            let h = round_bf16(f32::from_bits(bits));
            assert!(bf16_to_f32(h).is_nan(), "{bits:#x}");
            assert_eq!(h >> 15, (bits >> 31) as u16);
        }
        // Overflow to infinity: the largest float32 rounds up past the largest bf16.
        assert_eq!(bf16_to_f32(round_bf16(f32::MAX)), f32::INFINITY);
        assert_eq!(bf16_to_f32(round_bf16(-f32::MAX)), f32::NEG_INFINITY);
        // Largest finite bf16 stays finite.
        assert_eq!(round_bf16(f32::from_bits(0x7F7F_0000)), 0x7F7F);
        // Subnormals round to bf16 subnormals; the GEMM form flushes them.
        let sub = f32::from_bits(0x0001_8000); // halfway between bf16 0x0001 and 0x0002
        assert_eq!(round_bf16(sub), 0x0002);
        assert_eq!(round_bf16(-sub), 0x8002);
        assert_eq!(round_bf16_daz(sub), 0x0000);
        assert_eq!(round_bf16_daz(-sub), 0x8000);
        // The largest float32 subnormal rounds up to the smallest normal; the GEMM form treats
        // every float32 subnormal input as zero first.
        assert_eq!(round_bf16(f32::from_bits(0x007F_FFFF)), 0x0080);
        assert_eq!(round_bf16_daz(f32::from_bits(0x007F_FFFF)), 0x0000);
        assert_eq!(round_bf16_daz(f32::from_bits(0x807F_FFFF)), 0x8000);
        assert_eq!(to_bf16_f32(f32::MIN_POSITIVE), f32::MIN_POSITIVE);
    }

    #[test]
    fn branch_free_form_matches() {
        let mut s = 0x9E37_79B9u32;
        let check = |bits: u32| {
            let x = f32::from_bits(bits);
            let want = bf16_to_f32(round_bf16_daz(x));
            let got = to_bf16_f32(x);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{bits:#x}"
            );
        };
        for bits in [
            0u32,
            0x8000_0000,
            0x0000_0001,
            0x807F_FFFF,
            0x0080_0000,
            0x7F7F_FFFF,
            0xFF7F_FFFF,
            0x7F80_0000,
            0xFF80_0000,
            0x7F80_0001,
            0xFFC0_0000,
            0x3F80_8000,
            0x3F81_8000,
        ] {
            check(bits);
        }
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            check(s);
        }
    }

    #[test]
    fn rounding_matches_nearest_by_search() {
        // Every bf16 neighbour pair around a sample of float32 values: the result is one of the
        // two neighbours, the nearer one, and the even one on a tie.
        let mut s = 0x1234_5678u32;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let x = f32::from_bits(s);
            if !x.is_finite() {
                continue;
            }
            let lo = f32::from_bits(s & 0xFFFF_0000);
            let hi_bits = (s & 0xFFFF_0000).wrapping_add(0x1_0000);
            let hi = f32::from_bits(hi_bits);
            let got = bf16_to_f32(round_bf16(x));
            let (dl, dh) = (
                (x as f64 - lo as f64).abs(),
                if hi.is_finite() {
                    (hi as f64 - x as f64).abs()
                } else {
                    // Past the largest finite: the "next" value is 2^128 in magnitude.
                    (2f64.powi(128) - (x as f64).abs()).abs()
                },
            );
            let want = if dl < dh || (dl == dh && (s >> 16) & 1 == 0) {
                lo
            } else {
                hi
            };
            assert_eq!(got.to_bits(), want.to_bits(), "x = {x:e} ({s:#x})");
        }
    }
}
