//! IEEE half precision (f16) to float32: one value, and whole slices with F16C where the
//! active ISA is an x86 SIMD one and the CPU has F16C. Both are exact, so every path gives the
//! same bits (up to the payload of NaNs); forcing `scalar` with [`crate::isa::set`] forces the
//! portable decode.

/// f16 bits → f32 (exact; subnormals, infinities and NaN included).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            // subnormal: man · 2^-24, exact in f32
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
    } else if exp == 31 {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 112) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

/// out_k ← f16 value of src_k, for k < min(src.len(), out.len()).
pub fn f16_decode(src: &[u16], out: &mut [f32]) {
    let n = src.len().min(out.len());
    let (src, out) = (&src[..n], &mut out[..n]);
    #[cfg(target_arch = "x86_64")]
    {
        use crate::isa::{self, Isa};
        if matches!(isa::active(), Isa::Avx2 | Isa::Avx512) && std::is_x86_feature_detected!("f16c")
        {
            // SAFETY: AVX (implied by the active ISA) and F16C were detected.
            unsafe { f16_decode_f16c(src, out) };
            return;
        }
    }
    for (o, &h) in out.iter_mut().zip(src) {
        *o = f16_to_f32(h);
    }
}

/// Eight values per `vcvtph2ps`, the tail one at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "f16c,avx")]
unsafe fn f16_decode_f16c(src: &[u16], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = src.len();
    let mut i = 0;
    while i + 8 <= n {
        let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
        _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        i += 8;
    }
    for j in i..n {
        out[j] = f16_to_f32(src[j]);
    }
}
