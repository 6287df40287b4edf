//! AVX512-BF16 GEMM: inputs converted with `vcvtne2ps2bf16` (round to nearest even, DAZ) and
//! packed as k pairs, a 12×32 micro-kernel of `vdpbf16ps` (float32 accumulators). The
//! instructions are written with `asm!` so that the crate keeps building on toolchains that do
//! not know the `avx512bf16` target feature; every function here is only called after
//! [`detected`] said yes.
//!
//! Packed layout: one 32-bit word per (k pair q, row or column), low half the bf16 of k = 2q,
//! high half that of k = 2q + 1 (what `vdpbf16ps` multiplies pairwise: high halves first, then
//! low halves, see [`crate::bf16`]). A micro-panel holds the words of MR rows of A (or NR
//! columns of C for B) for each q in turn: `dst[q·W + r]`. For an odd k the last pair's high
//! half is +0 in A and −0 in B, a product of −0 that leaves every sum, −0 included, unchanged.
#![allow(clippy::missing_safety_doc)]

use crate::gemm::Ahead;
use crate::Gemm;
use std::arch::asm;
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};

const MR: usize = 12;
const NR: usize = 32;
/// Cache blocking of one product: pairs of k per block, rows of A per block, columns of C per
/// block.
#[derive(Clone, Copy)]
struct Blocks {
    kcp: usize,
    mc: usize,
    nc: usize,
    /// Largest A (in packed words) that the short-A order packs whole.
    a_whole: usize,
}

impl Blocks {
    /// Whether an m-row A over `kp` pairs takes the short-A order (packed whole, padded to
    /// whole micro-panels): at most one block of rows, at most [`A_WHOLE_PAIRS`] pairs, and at
    /// most the blocking's whole-A size (60 % of L2, as in the float32 GEMM).
    #[allow(clippy::manual_div_ceil)]
    fn short_a(&self, m: usize, kp: usize) -> bool {
        m <= self.mc && kp <= A_WHOLE_PAIRS && (m + MR - 1) / MR * MR * kp <= self.a_whole
    }
}

/// The blocking for `kp` pairs of k: the float32 GEMM's rule from this CPU's caches and vector
/// width ([`crate::gemm::blocking`]; a packed word holds one pair, so a step of pairs takes the
/// bytes of a float32 step), with the k blocks evened out. On a core that executes 512-bit FMAs
/// in two halves (Zen 4), the B micro-panel streams from L2 and k = 768 is one block: 6–11 %
/// faster than blocks of 192 pairs on 4096 × 4096 × 768 and 4096 × 768 × 4096. Blocking never
/// changes a result: each element of C is the same chain of pair products over k, stored and
/// reloaded exactly between blocks.
fn blocks(kp: usize) -> Blocks {
    let (kc_max, mc, nc, a_whole) =
        crate::gemm::blocking(MR, NR, crate::cpu::caches().full_width_512);
    Blocks {
        kcp: crate::gemm::balanced_kc(kc_max, kp),
        mc,
        nc,
        a_whole,
    }
}

/// Largest k (in pairs) for which a short A is packed whole ([`Blocks::short_a`]).
const A_WHOLE_PAIRS: usize = 1024;

static DETECTED: AtomicU8 = AtomicU8::new(0);

/// AVX-512F with OS support (the standard detection) and the AVX512_BF16 CPUID bit
/// (leaf 7, sub-leaf 1, EAX bit 5). Cached.
pub fn detected() -> bool {
    match DETECTED.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let yes = std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && __cpuid(0).eax >= 7
                && (__cpuid_count(7, 1).eax >> 5) & 1 == 1;
            DETECTED.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
    }
}

/// acc + Σ over the pair (hi·hi, then lo·lo) per lane.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn dp(acc: __m512, a: __m512, b: __m512) -> __m512 {
    let mut r = acc;
    asm!(
        "vdpbf16ps {r}, {a}, {b}",
        r = inout(zmm_reg) r,
        a = in(zmm_reg) a,
        b = in(zmm_reg) b,
        options(pure, nomem, nostack, preserves_flags)
    );
    r
}

/// 32 float32 → 32 bf16 (RNE, DAZ): `lo` into words 0..16, `hi` into words 16..32.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn cvt2(lo: __m512, hi: __m512) -> __m512i {
    let r: __m512i;
    asm!(
        "vcvtne2ps2bf16 {r}, {hi}, {lo}",
        r = lateout(zmm_reg) r,
        hi = in(zmm_reg) hi,
        lo = in(zmm_reg) lo,
        options(pure, nomem, nostack, preserves_flags)
    );
    r
}

/// The pair words q..q+16 (local to a block starting at k0, `kcp` pairs long) of one row: a
/// lane past the block is 0; the high half of the pair holding k = kd − 1 alone (odd kd) is
/// `pad`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn chunk(src: *const f32, k0: usize, kd: usize, q: usize, kcp: usize, pad: u32) -> __m512i {
    let k = k0 + 2 * q;
    let end = kd.min(k0 + 2 * kcp);
    let len = end.saturating_sub(k).min(32); // floats available in this chunk
    let (lo, hi) = if len == 32 {
        (
            _mm512_loadu_ps(src.add(k)),
            _mm512_loadu_ps(src.add(k + 16)),
        )
    } else {
        let m0 = if len >= 16 {
            0xFFFFu16
        } else {
            ((1u32 << len) - 1) as u16
        };
        let m1 = if len > 16 {
            ((1u32 << (len - 16)) - 1) as u16
        } else {
            0
        };
        (
            _mm512_maskz_loadu_ps(m0, src.add(k)),
            _mm512_maskz_loadu_ps(m1, src.add(k + 16)),
        )
    };
    let v = cvt2(lo, hi);
    if pad != 0 && kd % 2 == 1 && end == kd {
        let last = (kd - 1 - k0) / 2; // local index of the odd tail's pair
        if last >= q && last < q + 16 {
            return _mm512_mask_or_epi32(
                v,
                1u16 << (last - q),
                v,
                _mm512_set1_epi32((pad << 16) as i32),
            );
        }
    }
    v
}

/// Transposes sixteen rows of sixteen 32-bit words in place (row r, word t → row t, word r).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(r: &mut [__m512i; 16]) {
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // u[4i + j], 128-bit lane L: rows 4i..4i+3 of word 4L + j.
    for j in 0..4 {
        let v0 = _mm512_shuffle_i32x4::<0x88>(u[j], u[4 + j]);
        let v1 = _mm512_shuffle_i32x4::<0xDD>(u[j], u[4 + j]);
        let v2 = _mm512_shuffle_i32x4::<0x88>(u[8 + j], u[12 + j]);
        let v3 = _mm512_shuffle_i32x4::<0xDD>(u[8 + j], u[12 + j]);
        r[j] = _mm512_shuffle_i32x4::<0x88>(v0, v2);
        r[8 + j] = _mm512_shuffle_i32x4::<0xDD>(v0, v2);
        r[4 + j] = _mm512_shuffle_i32x4::<0x88>(v1, v3);
        r[12 + j] = _mm512_shuffle_i32x4::<0xDD>(v1, v3);
    }
}

/// Packs `cols ≤ NR` rows of B given as n × kd row-major (the NT product) into an NR-wide
/// micro-panel, zero for rows ≥ `cols`, through 16×16 word transposes.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack_b_nt(
    cols: usize,
    b: *const f32,
    ldb: usize,
    k0: usize,
    kd: usize,
    kcp: usize,
    dst: *mut u32,
) {
    const PAD_B: u32 = 0x8000;
    let mut r0 = 0;
    while r0 < NR {
        let mut q = 0;
        while q < kcp {
            let mut v = [_mm512_setzero_si512(); 16];
            for (i, x) in v.iter_mut().enumerate() {
                if r0 + i < cols {
                    *x = chunk(b.add((r0 + i) * ldb), k0, kd, q, kcp, PAD_B);
                }
            }
            transpose16(&mut v);
            for (t, x) in v.iter().enumerate().take((kcp - q).min(16)) {
                _mm512_store_si512(dst.add((q + t) * NR + r0) as *mut _, *x);
            }
            q += 16;
        }
        r0 += 16;
    }
}

thread_local! {
    static PACK_A: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static PACK_B: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

fn grow(v: &mut Vec<u32>, len: usize) {
    if v.len() < len + 16 {
        v.resize(len + 16, 0);
    }
}

/// A 64-byte aligned pointer into `v` (which holds at least 16 spare words).
fn aligned(v: &mut [u32]) -> *mut u32 {
    let p = v.as_mut_ptr();
    let off = (64 - (p as usize & 63)) % 64 / 4;
    unsafe { p.add(off) }
}

/// Packs `rows ≤ MR` rows of A (`a`: first row, leading dimension; k pairs from k0) into an
/// MR-wide micro-panel, zero for rows ≥ `rows`: sixteen pairs of every row at a time, through
/// one 16×16 word transpose (the MR rows and zero rows under them), stored MR words per pair.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack_a_rows(
    rows: usize,
    a: (*const f32, usize),
    k0: usize,
    kd: usize,
    kcp: usize,
    dst: *mut u32,
) {
    const PAD_A: u32 = 0x0000;
    const ROWS: u16 = (1u16 << MR) - 1;
    let mut q = 0;
    while q < kcp {
        let mut v = [_mm512_setzero_si512(); 16];
        for (r, x) in v.iter_mut().enumerate().take(rows) {
            *x = chunk(a.0.add(r * a.1), k0, kd, q, kcp, PAD_A);
        }
        transpose16(&mut v);
        for (t, x) in v.iter().enumerate().take((kcp - q).min(16)) {
            _mm512_mask_storeu_epi32(dst.add((q + t) * MR) as *mut i32, ROWS, *x);
        }
        q += 16;
    }
}

/// Packs `rows ≤ MR` rows of a transposed A (stored kd × m: `a` is the first row's column,
/// `lda` apart along k; k pairs from k0) into an MR-wide micro-panel, zero for rows ≥ `rows`:
/// per pair, the two steps' values of the rows side by side are converted with the same
/// instruction as [`pack_a_rows`] (so the words are identical) and interleaved into words.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack_a_cols(
    rows: usize,
    (a, lda): (*const f32, usize),
    k0: usize,
    kd: usize,
    kcp: usize,
    dst: *mut u32,
) {
    const ROWS: u16 = (1u16 << MR) - 1;
    let live = ((1u32 << rows) - 1) as u16;
    // Word r of the result: 16-bit lane r (the even step) low, lane 16 + r (the odd one) high.
    let mut idx = [0u16; 32];
    for (r, pair) in idx.chunks_exact_mut(2).enumerate() {
        pair[0] = r as u16;
        pair[1] = 16 + r as u16;
    }
    let idx = _mm512_loadu_si512(idx.as_ptr() as *const _);
    let end = kd.min(k0 + 2 * kcp);
    for q in 0..kcp {
        let k = k0 + 2 * q;
        let lo = if k < end {
            _mm512_maskz_loadu_ps(live, a.add(k * lda))
        } else {
            _mm512_setzero_ps()
        };
        // The odd tail's missing step is +0 (PAD_A), as in the row form.
        let hi = if k + 1 < end {
            _mm512_maskz_loadu_ps(live, a.add((k + 1) * lda))
        } else {
            _mm512_setzero_ps()
        };
        let w = _mm512_permutexvar_epi16(idx, cvt2(lo, hi));
        _mm512_mask_storeu_epi32(dst.add(q * MR) as *mut i32, ROWS, w);
    }
}

/// Packs `rows ≤ MR` rows of A from row-major storage or, when `ta`, from a transposed A
/// (`a.0` then points at the first row's column).
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack_a(
    rows: usize,
    a: (*const f32, usize),
    ta: bool,
    (k0, kd, kcp): (usize, usize, usize),
    dst: *mut u32,
) {
    if ta {
        pack_a_cols(rows, a, k0, kd, kcp, dst)
    } else {
        pack_a_rows(rows, a, k0, kd, kcp, dst)
    }
}

/// Packs B given as kd × n row-major (the NN product): columns j0..j0+cols (≤ NR) of rows
/// 2q, 2q+1 from k0, into an NR-wide micro-panel, zero for columns ≥ `cols`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack_b_nn(
    cols: usize,
    b: *const f32,
    ldb: usize,
    k0: usize,
    kd: usize,
    kcp: usize,
    dst: *mut u32,
) {
    // Interleave words: result word 2t = even row's t, word 2t + 1 = odd row's t.
    let mut idx = [0u16; 32];
    for t in 0..16 {
        idx[2 * t] = t as u16;
        idx[2 * t + 1] = (t + 16) as u16;
    }
    let idx = _mm512_loadu_si512(idx.as_ptr() as *const _);
    let neg0 = _mm512_set1_ps(-0.0);
    for q in 0..kcp {
        let k = k0 + 2 * q;
        let have_odd = k + 1 < kd;
        let (re, ro) = (b.add(k * ldb), b.add((k + 1) * ldb));
        let mut j = 0;
        while j < NR {
            let len = if cols > j { (cols - j).min(16) } else { 0 };
            let m = if len == 16 {
                0xFFFFu16
            } else {
                ((1u32 << len) - 1) as u16
            };
            let e = _mm512_maskz_loadu_ps(m, re.add(j));
            let o = if have_odd {
                _mm512_maskz_loadu_ps(m, ro.add(j))
            } else {
                neg0
            };
            let v = _mm512_permutexvar_epi16(idx, cvt2(e, o));
            _mm512_storeu_si512(dst.add(q * NR + j) as *mut _, v);
            j += 16;
        }
    }
}

/// The 12×32 micro-kernel over `kcp` pairs; `acc` holds the C tile (row-major, 32 wide).
/// Every `ahead.every` pairs it prefetches the next line of `ahead` (the source of the next B
/// micro-panel), as the float32 micro-kernel does.
#[target_feature(enable = "avx512f")]
unsafe fn kernel(
    kcp: usize,
    pa: *const u32,
    pb: *const u32,
    (c, ldc): (*mut f32, usize),
    load: bool,
    ahead: &mut Ahead,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    if load {
        for (i, r) in acc.iter_mut().enumerate() {
            r[0] = _mm512_loadu_ps(c.add(i * ldc));
            r[1] = _mm512_loadu_ps(c.add(i * ldc + 16));
        }
    }
    let mut ah = *ahead;
    let mut countdown = ah.countdown();
    for q in 0..kcp {
        let b0 = _mm512_load_ps(pb.add(q * NR) as *const f32);
        let b1 = _mm512_load_ps(pb.add(q * NR + 16) as *const f32);
        let ap = pa.add(q * MR);
        for (i, r) in acc.iter_mut().enumerate() {
            let a = _mm512_castsi512_ps(_mm512_set1_epi32(*ap.add(i) as i32));
            r[0] = dp(r[0], a, b0);
            r[1] = dp(r[1], a, b1);
        }
        if let Some(line) = ah.due(&mut countdown) {
            _mm_prefetch::<_MM_HINT_T1>(line as *const i8);
        }
    }
    *ahead = ah;
    for (i, r) in acc.iter().enumerate() {
        _mm512_storeu_ps(c.add(i * ldc), r[0]);
        _mm512_storeu_ps(c.add(i * ldc + 16), r[1]);
    }
}

/// The micro-kernel on a partial tile (rows ≤ MR, cols ≤ NR), through a full local tile.
#[target_feature(enable = "avx512f")]
unsafe fn kernel_edge(
    (rows, cols): (usize, usize),
    kcp: usize,
    pa: *const u32,
    pb: *const u32,
    (c, ldc): (*mut f32, usize),
    load: bool,
    ahead: &mut Ahead,
) {
    let mut t = [0f32; MR * NR];
    if load {
        for i in 0..rows {
            std::ptr::copy_nonoverlapping(c.add(i * ldc), t.as_mut_ptr().add(i * NR), cols);
        }
    }
    kernel(kcp, pa, pb, (t.as_mut_ptr(), NR), load, ahead);
    for i in 0..rows {
        std::ptr::copy_nonoverlapping(t.as_ptr().add(i * NR), c.add(i * ldc), cols);
    }
}

/// C (+)= A·Bᵀ (`nt`) or A·B with bf16 inputs; see [`crate::bf16`].
///
/// # Safety
/// As [`crate::gemm_raw`]; the CPU has AVX512-BF16 ([`detected`]).
#[allow(clippy::manual_div_ceil)]
pub unsafe fn gemm(g: &Gemm) {
    let Gemm {
        m,
        n,
        k: kd,
        c,
        ldc,
        accumulate,
        ..
    } = *g;
    if m == 0 || n == 0 {
        return;
    }
    if kd == 0 {
        if !accumulate {
            for i in 0..m {
                std::ptr::write_bytes(c.add(i * ldc), 0, n);
            }
        }
        return;
    }
    let kp = (kd + 1) / 2;
    let bl = blocks(kp);
    let kcp_max = bl.kcp.min(kp);
    let mc_max = bl.mc.min((m + MR - 1) / MR * MR);
    let nc_max = bl.nc.min((n + NR - 1) / NR * NR);
    // The short-A order packs all of A (padded to whole micro-panels) at once.
    let la = if bl.short_a(m, kp) {
        mc_max * kp
    } else {
        mc_max * kcp_max
    };
    PACK_A.with(|pa_cell| {
        PACK_B.with(|pb_cell| {
            let (mut va, mut vb) = (pa_cell.borrow_mut(), pb_cell.borrow_mut());
            grow(&mut va, la);
            grow(&mut vb, nc_max * kcp_max);
            let pa = aligned(&mut va);
            let pb = aligned(&mut vb);
            body(g, kp, bl, pa, pb);
        })
    })
}

#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::manual_div_ceil)]
unsafe fn body(g: &Gemm, kp: usize, bl: Blocks, pa: *mut u32, pb: *mut u32) {
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
    // Row i of A: its row, or for a transposed A its column.
    let a_row = |i: usize| if ta { a.add(i) } else { a.add(i * lda) };
    if bl.short_a(m, kp) {
        // Short A (similarity tiles, top-k query blocks): A packed whole once, then for each
        // NR-wide panel of C all k blocks in turn, so the C strip stays in L1 and B streams.
        let panels_a = (m + MR - 1) / MR;
        let mut pc = 0;
        while pc < kp {
            let kcp = bl.kcp.min(kp - pc);
            for r in 0..panels_a {
                let i = r * MR;
                pack_a(
                    MR.min(m - i),
                    (a_row(i), lda),
                    ta,
                    (2 * pc, kd, kcp),
                    pa.add(pc * panels_a * MR + r * MR * kcp),
                );
            }
            pc += kcp;
        }
        let mut j = 0;
        while j < n {
            let cols = NR.min(n - j);
            let mut pc = 0;
            while pc < kp {
                let kcp = bl.kcp.min(kp - pc);
                if nt {
                    pack_b_nt(cols, b.add(j * ldb), ldb, 2 * pc, kd, kcp, pb);
                } else {
                    pack_b_nn(cols, b.add(j), ldb, 2 * pc, kd, kcp, pb);
                }
                // The next micro-panel's source (the next k block of this panel, or the first
                // of the next panel), prefetched by the micro-kernels over this one.
                let (nj, np) = if pc + kcp < kp {
                    (j, pc + kcp)
                } else {
                    (j + NR, 0)
                };
                let mut ahead = if nj < n {
                    b_ahead(g, (nj, np), kp, bl.kcp, panels_a * kcp)
                } else {
                    Ahead::NONE
                };
                let load = accumulate || pc > 0;
                for r in 0..panels_a {
                    let i = r * MR;
                    let rows = MR.min(m - i);
                    let ap = pa.add(pc * panels_a * MR + r * MR * kcp);
                    let cp = c.add(i * ldc + j);
                    if rows == MR && cols == NR {
                        kernel(kcp, ap, pb, (cp, ldc), load, &mut ahead);
                    } else {
                        kernel_edge((rows, cols), kcp, ap, pb, (cp, ldc), load, &mut ahead);
                    }
                }
                pc += kcp;
            }
            j += NR;
        }
        return;
    }
    let mut jc = 0;
    while jc < n {
        let nb = bl.nc.min(n - jc);
        let panels_b = (nb + NR - 1) / NR;
        let mut pc = 0;
        while pc < kp {
            let kcp = bl.kcp.min(kp - pc);
            let k0 = 2 * pc;
            let load = accumulate || pc > 0;
            let mut ic = 0;
            while ic < m {
                let mb = bl.mc.min(m - ic);
                let panels_a = (mb + MR - 1) / MR;
                for r in 0..panels_a {
                    let i = ic + r * MR;
                    let rows = MR.min(m - i);
                    pack_a(
                        rows,
                        (a_row(i), lda),
                        ta,
                        (k0, kd, kcp),
                        pa.add(r * MR * kcp),
                    );
                }
                for t in 0..panels_b {
                    let j = jc + t * NR;
                    let cols = NR.min(n - j);
                    let bp = pb.add(t * NR * kcp);
                    // B micro-panels are packed during the first A block's pass, each just
                    // before its use while the micro-kernels prefetch the next one's source,
                    // and kept for the other A blocks.
                    let mut ahead = Ahead::NONE;
                    if ic == 0 {
                        if nt {
                            pack_b_nt(cols, b.add(j * ldb), ldb, k0, kd, kcp, bp);
                        } else {
                            pack_b_nn(cols, b.add(j), ldb, k0, kd, kcp, bp);
                        }
                        if t + 1 < panels_b {
                            ahead = b_ahead(g, (j + NR, pc), kp, bl.kcp, panels_a * kcp);
                        }
                    }
                    let bp = bp as *const u32;
                    for r in 0..panels_a {
                        let i = ic + r * MR;
                        let rows = MR.min(m - i);
                        let ap = pa.add(r * MR * kcp);
                        let cp = c.add(i * ldc + j);
                        if rows == MR && cols == NR {
                            kernel(kcp, ap, bp, (cp, ldc), load, &mut ahead);
                        } else {
                            kernel_edge((rows, cols), kcp, ap, bp, (cp, ldc), load, &mut ahead);
                        }
                    }
                }
                ic += mb;
            }
            pc += kcp;
        }
        jc += nb;
    }
}

/// The source of the B micro-panel at columns `j..` (at most NR) and pairs `pc..` (one block),
/// as an [`Ahead`] cursor spread over `steps` micro-kernel pairs.
#[allow(clippy::manual_div_ceil)]
fn b_ahead(g: &Gemm, (j, pc): (usize, usize), kp: usize, kcp: usize, steps: usize) -> Ahead {
    let cols = NR.min(g.n - j);
    let k0 = 2 * pc;
    let ks = (2 * kcp.min(kp - pc)).min(g.k - k0);
    if g.nt {
        Ahead::new(g.b.wrapping_add(j * g.ldb + k0), cols, g.ldb, ks, steps)
    } else {
        Ahead::new(g.b.wrapping_add(k0 * g.ldb + j), ks, g.ldb, cols, steps)
    }
}
