//! x86-64 kernels: AVX2+FMA, AVX-512F and the AVX512-BF16 GEMM, plus the GEMM packing routines they share.
pub mod avx2;
pub mod avx512;
pub mod bf16;

use crate::gemm::{Kernel, PackA, PackB, Spec};
use std::arch::x86_64::*;

/// The GEMM blocking and building blocks of an x86 ISA with `mr × nr` micro-tiles.
fn spec(mr: usize, nr: usize, full_rate: bool, kernel: Kernel) -> Spec {
    let packs = (pack_a as PackA, pack_b_nt as PackB, pack_b_nn as PackB);
    Spec::new(mr, nr, full_rate, packs, prefetch_c, kernel)
}

/// Transposes eight `__m256` rows in place (row r, lane q → row q, lane r).
macro_rules! transpose8x8 {
    ($r:ident) => {{
        let t0 = _mm256_unpacklo_ps($r[0], $r[1]);
        let t1 = _mm256_unpackhi_ps($r[0], $r[1]);
        let t2 = _mm256_unpacklo_ps($r[2], $r[3]);
        let t3 = _mm256_unpackhi_ps($r[2], $r[3]);
        let t4 = _mm256_unpacklo_ps($r[4], $r[5]);
        let t5 = _mm256_unpackhi_ps($r[4], $r[5]);
        let t6 = _mm256_unpacklo_ps($r[6], $r[7]);
        let t7 = _mm256_unpackhi_ps($r[6], $r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        $r[0] = _mm256_permute2f128_ps::<0x20>(u0, u4);
        $r[1] = _mm256_permute2f128_ps::<0x20>(u1, u5);
        $r[2] = _mm256_permute2f128_ps::<0x20>(u2, u6);
        $r[3] = _mm256_permute2f128_ps::<0x20>(u3, u7);
        $r[4] = _mm256_permute2f128_ps::<0x31>(u0, u4);
        $r[5] = _mm256_permute2f128_ps::<0x31>(u1, u5);
        $r[6] = _mm256_permute2f128_ps::<0x31>(u2, u6);
        $r[7] = _mm256_permute2f128_ps::<0x31>(u3, u7);
    }};
}

/// Transposes four `__m128` rows in place.
macro_rules! transpose4x4 {
    ($r:ident) => {{
        let t0 = _mm_unpacklo_ps($r[0], $r[1]);
        let t1 = _mm_unpacklo_ps($r[2], $r[3]);
        let t2 = _mm_unpackhi_ps($r[0], $r[1]);
        let t3 = _mm_unpackhi_ps($r[2], $r[3]);
        $r[0] = _mm_movelh_ps(t0, t1);
        $r[1] = _mm_movehl_ps(t1, t0);
        $r[2] = _mm_movelh_ps(t2, t3);
        $r[3] = _mm_movehl_ps(t3, t2);
    }};
}

/// A packing: `dst[p·rows + i] = a[i·lda + p]` for i < rows, p < kc. Groups of eight rows go
/// through 8×8 register transposes, then groups of four through 4×4 ones, the rest is scalar.
///
/// # Safety
/// `a` valid for `rows` rows of `kc` values `lda` apart; `dst` for `rows·kc` values; AVX.
#[target_feature(enable = "avx")]
pub(crate) unsafe fn pack_a(rows: usize, kc: usize, a: *const f32, lda: usize, dst: *mut f32) {
    let mut i = 0;
    // Groups of G rows: G×G register transposes along k, the last kc % G steps one by one.
    macro_rules! groups {
        ($g:expr, $zero:ident, $load:ident, $store:ident, $transpose:ident) => {
            while i + $g <= rows {
                let src = a.add(i * lda);
                let kcg = kc - kc % $g;
                let mut p = 0;
                while p < kcg {
                    let mut r = [$zero(); $g];
                    for (q, v) in r.iter_mut().enumerate() {
                        *v = $load(src.add(q * lda + p));
                    }
                    $transpose!(r);
                    for (q, v) in r.iter().enumerate() {
                        $store(dst.add((p + q) * rows + i), *v);
                    }
                    p += $g;
                }
                for p in kcg..kc {
                    for q in 0..$g {
                        *dst.add(p * rows + i + q) = *src.add(q * lda + p);
                    }
                }
                i += $g;
            }
        };
    }
    groups!(
        8,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        transpose8x8
    );
    groups!(4, _mm_setzero_ps, _mm_loadu_ps, _mm_storeu_ps, transpose4x4);
    while i < rows {
        let src = a.add(i * lda);
        for p in 0..kc {
            *dst.add(p * rows + i) = *src.add(p);
        }
        i += 1;
    }
}

/// NT packing of one B micro-panel, NR = `nr` (a multiple of 8): `dst[p·nr + j] = b[j·ldb + p]`
/// for j < cols, 0 for cols ≤ j < nr.
///
/// # Safety
/// `b` valid for `cols` rows of `kc` values `ldb` apart; `dst` for `nr·kc` values; AVX.
#[target_feature(enable = "avx")]
pub(crate) unsafe fn pack_b_nt(
    nr: usize,
    cols: usize,
    kc: usize,
    b: *const f32,
    ldb: usize,
    dst: *mut f32,
) {
    let kc8 = kc & !7;
    let mut g = 0;
    while g < nr {
        let valid = if cols > g { (cols - g).min(8) } else { 0 };
        let src = b.add(g * ldb);
        if valid == 0 {
            for p in 0..kc {
                _mm256_storeu_ps(dst.add(p * nr + g), _mm256_setzero_ps());
            }
            g += 8;
            continue;
        }
        let mut p = 0;
        while p < kc8 {
            let mut r = [_mm256_setzero_ps(); 8];
            for (q, v) in r.iter_mut().enumerate().take(valid) {
                *v = _mm256_loadu_ps(src.add(q * ldb + p));
            }
            transpose8x8!(r);
            for (q, v) in r.iter().enumerate() {
                _mm256_storeu_ps(dst.add((p + q) * nr + g), *v);
            }
            p += 8;
        }
        for p in kc8..kc {
            for q in 0..8 {
                *dst.add(p * nr + g + q) = if q < valid {
                    *src.add(q * ldb + p)
                } else {
                    0.0
                };
            }
        }
        g += 8;
    }
}

/// NN packing of one B micro-panel: `dst[p·nr + j] = b[p·ldb + j]` for j < cols, else 0.
///
/// # Safety
/// `b` valid for `kc` rows of `cols` values `ldb` apart; `dst` for `nr·kc` values; AVX.
#[target_feature(enable = "avx")]
pub(crate) unsafe fn pack_b_nn(
    nr: usize,
    cols: usize,
    kc: usize,
    b: *const f32,
    ldb: usize,
    dst: *mut f32,
) {
    if cols == nr {
        for p in 0..kc {
            let (s, d) = (b.add(p * ldb), dst.add(p * nr));
            let mut j = 0;
            while j < nr {
                _mm256_storeu_ps(d.add(j), _mm256_loadu_ps(s.add(j)));
                j += 8;
            }
        }
    } else {
        for p in 0..kc {
            let (s, d) = (b.add(p * ldb), dst.add(p * nr));
            for j in 0..nr {
                *d.add(j) = if j < cols { *s.add(j) } else { 0.0 };
            }
        }
    }
}

/// Prefetches `rows` rows of `len` floats, `ld` apart, into L1 for writing (a hint only).
///
/// # Safety
/// A hint only; the addresses need not be valid.
pub(crate) unsafe fn prefetch_c(p: *const f32, rows: usize, ld: usize, len: usize) {
    prefetch_rows::<_MM_HINT_ET0>(p, rows, ld, len)
}

/// One `HINT` prefetch per 64 bytes of each row, and one for the row's last byte (rows need
/// not start on a line boundary).
#[inline(always)]
unsafe fn prefetch_rows<const HINT: i32>(p: *const f32, rows: usize, ld: usize, len: usize) {
    if len == 0 {
        return;
    }
    for r in 0..rows {
        let row = p.wrapping_add(r * ld) as *const i8;
        let mut off = 0;
        while off < len * 4 {
            _mm_prefetch::<HINT>(row.wrapping_add(off));
            off += 64;
        }
        _mm_prefetch::<HINT>(row.wrapping_add(len * 4 - 1));
    }
}
