//! Blocked GEMM driver shared by the SIMD paths (the BLIS loop nest around a register-blocked
//! micro-kernel).
//!
//! Loop nest, outermost first:
//!
//! ```text
//! jc: n in steps of NC                (C block MC×NC stays in L2 across the KC blocks)
//!   pc: k in steps of KC              (one pass over the C block per KC block)
//!     ic: m in steps of MC            pack A[ic.., pc..] into MR-row micro-panels, k-major (L2)
//!       jr: NC in steps of NR         [first MC block: pack B[jr.., pc..] into a micro-panel;
//!                                      kept for the other MC blocks when m > MC (L3)]
//!         ir: MC in steps of MR       micro-kernel: MR×NR block of C in registers
//! ```
//!
//! While the micro-kernels of the first MC block run on one B micro-panel, the rows of the
//! next one are prefetched (one line every few steps of k, from inside the micro-kernel: see
//! [`Ahead`]), so that packing it does not wait on memory; the other MC blocks read the kept
//! panels.
//!
//! A short A (m ≤ MC and m·k ≤ `a_whole_max`, e.g. the similarity tiles) takes another order,
//! [`run_panel_stationary`]: A packed whole once, then for each NR-wide panel of C all KC blocks
//! in turn, so B rows stream sequentially. Both orders run the same micro-kernel.
//!
//! Order of summation: the micro-kernel keeps one float32 accumulator per element of C, starts
//! it at 0 (or at the current C value when accumulating or after the first KC block) and adds
//! the products a_ip·b_pj for p = 0, 1, 2, … one fused multiply-add at a time. Every element is
//! therefore the same sequential FMA chain over k whatever m, n, the tile sizes, the position
//! of the element in the tile or the ISA (AVX2, AVX-512 and NEON all use fused multiply-add):
//! results never depend on how callers split work. Edge rows use the same micro-kernel
//! instantiated for fewer rows; edge columns use a zero-padded B micro-panel and masked stores.
//!
//! The packing buffers are per thread and reused (grown once), so steady-state calls allocate
//! nothing.

use std::cell::RefCell;

/// Packs `rows` rows × `kc` columns of row-major A (leading dimension `lda`) into
/// `dst[p·rows + i]`.
pub(crate) type PackA = unsafe fn(usize, usize, *const f32, usize, *mut f32);
/// Packs a B micro-panel of `cols ≤ NR` columns of C and `kc` steps of k into
/// `dst[p·NR + j]`, zero for `j ≥ cols`. Arguments: NR, cols, kc, b, ldb, dst.
pub(crate) type PackB = unsafe fn(usize, usize, usize, *const f32, usize, *mut f32);
/// Micro-kernel: see [`Tile`]; it prefetches from the [`Ahead`] cursor as it goes.
pub(crate) type Kernel = unsafe fn(&Tile, &mut Ahead);

/// One micro-kernel call: a `rows ≤ MR` × `cols ≤ NR` block of C at `c` (leading dimension
/// `ldc`) from `kc` steps of packed A (`rows` values per step) and of a packed, zero-padded B
/// micro-panel (NR values per step); C is loaded first when `load_c`, else overwritten.
/// [`sweep`] takes a strip of such tiles (any number of rows) in the same form.
#[derive(Clone, Copy)]
pub(crate) struct Tile {
    pub rows: usize,
    pub cols: usize,
    pub kc: usize,
    pub pa: *const f32,
    pub pb: *const f32,
    pub c: *mut f32,
    pub ldc: usize,
    pub load_c: bool,
}

/// Prefetches `rows` rows of `len` floats, `ld` apart, towards the caches (a hint only).
pub(crate) type Prefetch = unsafe fn(*const f32, usize, usize, usize);

/// The source rows of the next B micro-panel, as a cursor over their cache lines that the
/// micro-kernel advances: one line every `every` steps of k. Spread this way, the lines arrive
/// while the arithmetic runs; issued in bursts between micro-kernel calls, the prefetches
/// waited on the core's miss buffers, and left alone, the packing waited on memory. Addresses
/// are plain numbers: a prefetch is a hint and never dereferences them.
#[derive(Clone, Copy)]
pub(crate) struct Ahead {
    /// The next line.
    p: usize,
    /// End (exclusive) of the current row.
    end: usize,
    /// Bytes between row starts, and per row.
    ld: usize,
    len: usize,
    /// Rows after the current one.
    rows: usize,
    /// Steps of k between two prefetches; 0 when nothing is left.
    every: usize,
}

impl Ahead {
    /// Nothing to prefetch.
    pub(crate) const NONE: Ahead = Ahead {
        p: 0,
        end: 0,
        ld: 0,
        len: 0,
        rows: 0,
        every: 0,
    };

    /// `rows` rows of `len` floats from `base`, `ld` floats apart, spread over `steps` steps of
    /// k (the micro-kernel calls that will carry it), finishing within the first three
    /// quarters of them.
    #[allow(clippy::manual_div_ceil)] // div_ceil is newer than rustc 1.63
    pub(crate) fn new(base: *const f32, rows: usize, ld: usize, len: usize, steps: usize) -> Ahead {
        if rows == 0 || len == 0 {
            return Ahead::NONE;
        }
        let start = base as usize;
        let first = start & !63;
        let end = start.wrapping_add(len * 4);
        let lines = rows * ((end - first + 63) / 64);
        Ahead {
            p: first,
            end,
            ld: ld * 4,
            len: len * 4,
            rows: rows - 1,
            every: (steps * 3 / 4 / lines).max(1),
        }
    }

    /// Steps of k until the next prefetch (never reached when nothing is left).
    #[inline(always)]
    pub(crate) fn countdown(&self) -> usize {
        if self.every == 0 {
            usize::MAX
        } else {
            self.every
        }
    }

    /// One step of k: counts `countdown` down and, when it reaches 0, returns the line to
    /// prefetch now, moves to the next one and restarts the count.
    #[inline(always)]
    pub(crate) fn due(&mut self, countdown: &mut usize) -> Option<usize> {
        *countdown -= 1;
        if *countdown != 0 {
            return None;
        }
        let line = self.p;
        self.advance();
        *countdown = self.countdown();
        Some(line)
    }

    /// Moves to the following line, or to the next row's first.
    #[inline(always)]
    fn advance(&mut self) {
        self.p = self.p.wrapping_add(64);
        if self.p >= self.end {
            if self.rows == 0 {
                self.every = 0;
                return;
            }
            self.rows -= 1;
            let start = self.end.wrapping_sub(self.len).wrapping_add(self.ld);
            self.p = start & !63;
            self.end = start.wrapping_add(self.len);
        }
    }
}

/// One ISA's blocking parameters and building blocks.
#[derive(Clone, Copy)]
pub(crate) struct Spec {
    pub mr: usize,
    pub nr: usize,
    pub kc: usize,
    pub mc: usize,
    pub nc: usize,
    /// Largest A (m·k floats) packed whole for the panel-stationary order.
    pub a_whole_max: usize,
    /// Brings the C tile of the next micro-kernel call into L1 (with intent to write).
    pub prefetch_c: Prefetch,
    pub pack_a: PackA,
    /// B given as n×k row-major (the `NT` product): a transposing pack.
    pub pack_b_nt: PackB,
    /// B given as k×n row-major (the `NN` product): a copying pack.
    pub pack_b_nn: PackB,
    pub kernel: Kernel,
}

impl Spec {
    /// An ISA's GEMM: `mr × nr` micro-tiles, its packing routines (A, B for `NT`, B for
    /// `NN`), prefetch of C tiles into L1, micro-kernel, and the blocking of [`blocking`] for
    /// this CPU.
    pub(crate) fn new(
        mr: usize,
        nr: usize,
        full_rate: bool,
        packs: (PackA, PackB, PackB),
        prefetch_c: Prefetch,
        kernel: Kernel,
    ) -> Spec {
        let (kc, mc, nc, a_whole_max) = blocking(mr, nr, full_rate);
        Spec {
            mr,
            nr,
            kc,
            mc,
            nc,
            a_whole_max,
            prefetch_c,
            pack_a: packs.0,
            pack_b_nt: packs.1,
            pack_b_nn: packs.2,
            kernel,
        }
    }
}

/// Cache blocking for an `mr × nr` micro-kernel on this CPU: (KC, MC, NC, largest A packed
/// whole), from the cache sizes of [`crate::cpu::caches`]. `full_rate` says whether the
/// micro-kernel issues two full-width vector FMAs per cycle (AVX-512 on cores that execute
/// 512 bits at once); it then needs its B micro-panel in L1, otherwise L2 keeps up.
///
/// - KC (the most; [`balanced_kc`] evens the blocks out for a given k): the packed B
///   micro-panel (KC × NR floats) fills at most half of L1d when `full_rate`, else an eighth
///   of L2 (fewer passes over C); a multiple of 8 in [128, 768];
/// - MC: the packed A block (MC × KC) fills at most half of L2; a multiple of MR;
/// - NC: the B block (KC × NC) fills at most half of this core's share of L3 (or of L2 without
///   L3); a multiple of NR in [4·NR, 3072];
/// - the panel-stationary order takes A whole up to 60 % of L2.
///
/// None of these changes a result: every element of C is the same FMA chain over k whatever
/// the blocking (see the module docs).
pub(crate) fn blocking(mr: usize, nr: usize, full_rate: bool) -> (usize, usize, usize, usize) {
    let c = crate::cpu::caches();
    let f = 4; // bytes per float
    let panel_bytes = if full_rate { c.l1d / 2 } else { c.l2 / 8 };
    let kc = (panel_bytes / (nr * f)).clamp(128, 768) & !7;
    let mc = ((c.l2 / 2 / (kc * f)) / mr).max(1) * mr;
    let l3 = if c.l3_per_core > 0 {
        c.l3_per_core
    } else {
        c.l2
    };
    let nc = ((l3 / 2 / (kc * f)).clamp(4 * nr, 3072) / nr) * nr;
    let a_whole = c.l2 * 6 / 10 / f;
    (kc, mc, nc, a_whole)
}

/// The KC block size for a product over `k`: as few blocks as `kc_max` allows, of equal size
/// (rounded up to a multiple of 8, so at most `kc_max + 7`).
#[allow(clippy::manual_div_ceil)] // div_ceil is newer than rustc 1.63
pub(crate) fn balanced_kc(kc_max: usize, k: usize) -> usize {
    let blocks = ((k + kc_max - 1) / kc_max).max(1);
    ((k + blocks - 1) / blocks + 7) & !7
}

thread_local! {
    static BUF_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static BUF_B: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A 64-byte aligned pointer to at least `len` floats inside `v` (grown if needed).
fn aligned(v: &mut Vec<f32>, len: usize) -> *mut f32 {
    if v.len() < len + 16 {
        v.resize(len + 16, 0.0);
    }
    let p = v.as_mut_ptr();
    let off = (64 - (p as usize & 63)) % 64 / 4;
    // SAFETY: off < 16 and the vector holds len + 16 values.
    unsafe { p.add(off) }
}

/// Runs `f` with this thread's packing buffers for A (`la` floats) and B (`lb` floats).
fn with_buffers<R>(la: usize, lb: usize, f: impl FnOnce(*mut f32, *mut f32) -> R) -> R {
    BUF_A.with(|ba| {
        BUF_B.with(|bb| match (ba.try_borrow_mut(), bb.try_borrow_mut()) {
            (Ok(mut va), Ok(mut vb)) => {
                let pa = aligned(&mut va, la);
                let pb = aligned(&mut vb, lb);
                f(pa, pb)
            }
            _ => {
                let (mut va, mut vb) = (Vec::new(), Vec::new());
                let pa = aligned(&mut va, la);
                let pb = aligned(&mut vb, lb);
                f(pa, pb)
            }
        })
    })
}

/// The operands of one GEMM call on raw row-major blocks: C (+)= A·Bᵀ (`nt`, B is n × k) or
/// A·B (B is k × n), A m × k, or Aᵀ·B with A stored k × m (`ta`, with B k × n); see
/// [`crate::gemm_raw`].
#[derive(Clone, Copy)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: *const f32,
    pub lda: usize,
    pub b: *const f32,
    pub ldb: usize,
    pub c: *mut f32,
    pub ldc: usize,
    /// B given as n × k (the product A·Bᵀ) rather than k × n.
    pub nt: bool,
    /// A given as k × m (the product Aᵀ·B, element (i, p) at `a[p·lda + i]`) rather than
    /// m × k.
    pub ta: bool,
    /// C += A·B(ᵀ) rather than C = A·B(ᵀ).
    pub accumulate: bool,
}

impl Gemm {
    /// Where A's element for row `i` of C and step `p` of k lives.
    fn a_at(&self, i: usize, p: usize) -> *const f32 {
        if self.ta {
            self.a.wrapping_add(p * self.lda + i)
        } else {
            self.a.wrapping_add(i * self.lda + p)
        }
    }

    /// Where B's element for column `j` of C and step `p` of k lives.
    fn b_at(&self, j: usize, p: usize) -> *const f32 {
        if self.nt {
            self.b.wrapping_add(j * self.ldb + p)
        } else {
            self.b.wrapping_add(p * self.ldb + j)
        }
    }

    /// The source of the B micro-panel for columns `j..j + cols`, steps `p..p + kc`, as
    /// (first row, rows, floats per row) of B's storage.
    fn b_rows(&self, j: usize, p: usize, cols: usize, kc: usize) -> (*const f32, usize, usize) {
        if self.nt {
            (self.b_at(j, p), cols, kc)
        } else {
            (self.b_at(j, p), kc, cols)
        }
    }

    /// Packs that B micro-panel into `dst`.
    unsafe fn pack_b(
        &self,
        spec: &Spec,
        j: usize,
        p: usize,
        cols: usize,
        kc: usize,
        dst: *mut f32,
    ) {
        let pack = if self.nt {
            spec.pack_b_nt
        } else {
            spec.pack_b_nn
        };
        pack(spec.nr, cols, kc, self.b_at(j, p), self.ldb, dst)
    }
}

/// C (+)= A·Bᵀ or A·B, with the blocking of `spec`. See the module docs.
///
/// # Safety
/// As [`crate::gemm_raw`].
#[allow(clippy::manual_div_ceil)] // div_ceil is newer than rustc 1.63
pub(crate) unsafe fn run(spec: &Spec, g: &Gemm) {
    let (m, n, k) = (g.m, g.n, g.k);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !g.accumulate {
            for i in 0..m {
                std::ptr::write_bytes(g.c.add(i * g.ldc), 0, n);
            }
        }
        return;
    }
    if m <= spec.mc && m * k <= spec.a_whole_max {
        return run_panel_stationary(spec, g);
    }
    let nr = spec.nr;
    let kcb = balanced_kc(spec.kc, k);
    let kc_max = kcb.min(k);
    let mc_max = spec.mc.min(m);
    // Each B micro-panel is packed just before the first MC block's sweep over it, while the
    // micro-kernels prefetch the next one's source. With more than one MC block of A, the
    // packed panels of the KC × NC block are kept for the others, not packed again for each
    // (a transposing pack of B for each of 26 MC blocks was about 7 % of a 4096-row product);
    // with one, a single panel buffer serves.
    let whole_b = m > spec.mc;
    let lb = if whole_b {
        spec.nc.min((n + nr - 1) / nr * nr) * kc_max
    } else {
        nr * kc_max
    };
    with_buffers(mc_max * kc_max, lb, |pa, pb| {
        let mut jc = 0;
        while jc < n {
            let nb = spec.nc.min(n - jc);
            let mut pc = 0;
            while pc < k {
                let kc = kcb.min(k - pc);
                let mut ic = 0;
                while ic < m {
                    let mb = spec.mc.min(m - ic);
                    pack_a_block(spec, g, (ic, pc), mb, kc, pa);
                    let mut jr = jc;
                    while jr < jc + nb {
                        let cols = nr.min(jc + nb - jr);
                        // Micro-panel jr at pb + (jr − jc)·kc when kept (each holds NR·kc
                        // values), else at pb.
                        let panel = if whole_b { pb.add((jr - jc) * kc) } else { pb };
                        let pf = if ic == 0 {
                            g.pack_b(spec, jr, pc, cols, kc, panel);
                            // The next micro-panel of this block, prefetched during the sweep.
                            let next = jr + nr;
                            if next < jc + nb {
                                g.b_rows(next, pc, nr.min(jc + nb - next), kc)
                            } else {
                                (g.b, 0, 0)
                            }
                        } else {
                            (g.b, 0, 0)
                        };
                        let panel = panel as *const f32;
                        let strip = Tile {
                            rows: mb,
                            cols,
                            kc,
                            pa,
                            pb: panel,
                            c: g.c.add(ic * g.ldc + jr),
                            ldc: g.ldc,
                            load_c: g.accumulate || pc > 0,
                        };
                        sweep(spec, g, &strip, pf);
                        jr += nr;
                    }
                    ic += mb;
                }
                pc += kc;
            }
            jc += nb;
        }
    })
}

/// Packs `rows` rows × `kc` steps of A from row `i0`, step `p0` into consecutive MR-row
/// micro-panels at `dst` (micro-panel i at `dst + i·MR·kc`): the ISA's transposing pack, or
/// for a transposed A (`ta`, already k-major) plain copies of each step's values.
unsafe fn pack_a_block(
    spec: &Spec,
    g: &Gemm,
    (i0, p0): (usize, usize),
    rows: usize,
    kc: usize,
    dst: *mut f32,
) {
    if g.ta {
        // Step by step: each step's `rows` values are consecutive in A, read once in order and
        // dealt out to the micro-panels (panel ir holds r values per step).
        for p in 0..kc {
            let src = g.a_at(i0, p0 + p);
            let mut ir = 0;
            while ir < rows {
                let r = spec.mr.min(rows - ir);
                copy_short(src.add(ir), dst.add(ir * kc + p * r), r);
                ir += spec.mr;
            }
        }
        return;
    }
    let mut ir = 0;
    while ir < rows {
        let r = spec.mr.min(rows - ir);
        (spec.pack_a)(r, kc, g.a_at(i0 + ir, p0), g.lda, dst.add(ir * kc));
        ir += spec.mr;
    }
}

/// Runs the micro-kernel down the `strip` (its `rows` rows of packed A, as [`pack_a_block`]
/// lays them out, against one packed B micro-panel of `cols` columns, into the `rows × cols`
/// strip of C). After each call it prefetches the C tile of the next one; the micro-kernels
/// prefetch the rows `pf` (first row, rows, floats per row) of the next B micro-panel's
/// source as they go (see [`Ahead`]).
#[allow(clippy::manual_div_ceil)]
unsafe fn sweep(spec: &Spec, g: &Gemm, strip: &Tile, pf: (*const f32, usize, usize)) {
    let Tile {
        rows,
        cols,
        kc,
        pa,
        c,
        ldc,
        ..
    } = *strip;
    let mr = spec.mr;
    let (pf_base, pf_rows, pf_len) = pf;
    let mut ahead = Ahead::new(pf_base, pf_rows, g.ldb, pf_len, (rows + mr - 1) / mr * kc);
    let mut ir = 0;
    while ir < rows {
        let r = mr.min(rows - ir);
        let tile = Tile {
            rows: r,
            pa: pa.add(ir * kc),
            c: c.add(ir * ldc),
            ..*strip
        };
        (spec.kernel)(&tile, &mut ahead);
        if ir + mr < rows {
            let next = mr.min(rows - ir - mr);
            (spec.prefetch_c)(c.add((ir + mr) * ldc), next, ldc, cols);
        }
        ir += mr;
    }
}

/// The loop order for a short A (m ≤ MC, all of it packed at once, in L2): for each NR-wide
/// panel of C, all KC blocks in turn. Each B row is then read from memory in one sequential
/// sweep (the rows of a panel are adjacent when B is a row-major matrix), and the m×NR strip
/// of C stays in L1/L2 across the KC blocks. Same micro-kernel, same per-element FMA chain as
/// [`run`]'s general order, so the results are identical bit for bit.
///
/// # Safety
/// As [`run`].
unsafe fn run_panel_stationary(spec: &Spec, g: &Gemm) {
    let (m, n, k) = (g.m, g.n, g.k);
    let (nr, kcb) = (spec.nr, balanced_kc(spec.kc, k));
    with_buffers(m * k, nr * kcb.min(k), |pa, pb| {
        // A, block by block: block pc holds m×kc values from offset pc·m.
        let mut pc = 0;
        while pc < k {
            let kc = kcb.min(k - pc);
            pack_a_block(spec, g, (0, pc), m, kc, pa.add(pc * m));
            pc += kc;
        }
        let mut jr = 0;
        while jr < n {
            let cols = nr.min(n - jr);
            let mut pc = 0;
            while pc < k {
                let kc = kcb.min(k - pc);
                g.pack_b(spec, jr, pc, cols, kc, pb);
                // Prefetch the source of the next micro-panel: the next KC block of this panel,
                // or the first of the next panel.
                let (nj, np) = if pc + kc < k {
                    (jr, pc + kc)
                } else {
                    (jr + nr, 0)
                };
                let pf = if nj >= n {
                    (g.b, 0, 0)
                } else {
                    g.b_rows(nj, np, nr.min(n - nj), kcb.min(k - np))
                };
                let strip = Tile {
                    rows: m,
                    cols,
                    kc,
                    pa: pa.add(pc * m),
                    pb,
                    c: g.c.add(jr),
                    ldc: g.ldc,
                    load_c: g.accumulate || pc > 0,
                };
                sweep(spec, g, &strip, pf);
                pc += kc;
            }
            jr += nr;
        }
    })
}

/// Copies `n ≤ 16` floats: inline moves for the micro-panel heights (a call to `memmove` per
/// step of a transposed A's packing was 4.5 % of a marginSoftmax call).
#[inline(always)]
unsafe fn copy_short(src: *const f32, dst: *mut f32, n: usize) {
    use std::ptr::copy_nonoverlapping as copy;
    match n {
        12 => copy(src, dst, 12),
        8 => copy(src, dst, 8),
        6 => copy(src, dst, 6),
        _ => {
            for q in 0..n {
                *dst.add(q) = *src.add(q);
            }
        }
    }
}

/// Portable packing of A: `dst[p·rows + i] = a[i·lda + p]`.
///
/// # Safety
/// `a` valid for `rows` rows of `kc` values `lda` apart; `dst` for `rows·kc` values.
#[allow(dead_code)]
pub(crate) unsafe fn pack_a_generic(
    rows: usize,
    kc: usize,
    a: *const f32,
    lda: usize,
    dst: *mut f32,
) {
    for i in 0..rows {
        let src = a.add(i * lda);
        for p in 0..kc {
            *dst.add(p * rows + i) = *src.add(p);
        }
    }
}

/// A [`Prefetch`] that does nothing.
#[allow(dead_code)]
pub(crate) unsafe fn no_prefetch(_p: *const f32, _rows: usize, _ld: usize, _len: usize) {}

/// Portable NT packing of a B micro-panel: `dst[p·nr + j] = b[j·ldb + p]`, 0 for j ≥ cols.
///
/// # Safety
/// `b` valid for `cols` rows of `kc` values `ldb` apart; `dst` for `nr·kc` values.
#[allow(dead_code)]
pub(crate) unsafe fn pack_b_nt_generic(
    nr: usize,
    cols: usize,
    kc: usize,
    b: *const f32,
    ldb: usize,
    dst: *mut f32,
) {
    for j in 0..nr {
        if j < cols {
            let src = b.add(j * ldb);
            for p in 0..kc {
                *dst.add(p * nr + j) = *src.add(p);
            }
        } else {
            for p in 0..kc {
                *dst.add(p * nr + j) = 0.0;
            }
        }
    }
}

/// Portable NN packing of a B micro-panel: `dst[p·nr + j] = b[p·ldb + j]`, 0 for j ≥ cols.
///
/// # Safety
/// `b` valid for `kc` rows of `cols` values `ldb` apart; `dst` for `nr·kc` values.
#[allow(dead_code)]
pub(crate) unsafe fn pack_b_nn_generic(
    nr: usize,
    cols: usize,
    kc: usize,
    b: *const f32,
    ldb: usize,
    dst: *mut f32,
) {
    for p in 0..kc {
        let (s, d) = (b.add(p * ldb), dst.add(p * nr));
        std::ptr::copy_nonoverlapping(s, d, cols);
        for j in cols..nr {
            *d.add(j) = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Ahead;

    /// The lines an [`Ahead`] cursor visits, stepping once per k step for `steps` steps.
    fn visited(base: usize, rows: usize, ld: usize, len: usize, steps: usize) -> Vec<usize> {
        let mut ah = Ahead::new(base as *const f32, rows, ld, len, steps);
        let mut out = Vec::new();
        let mut countdown = ah.countdown();
        for _ in 0..steps {
            if let Some(line) = ah.due(&mut countdown) {
                out.push(line);
            }
        }
        out
    }

    /// Every line of every row, once, in order, and within the first three quarters of the
    /// steps when there are enough of them; unaligned rows include their partial first and
    /// last lines.
    #[test]
    fn ahead_visits_every_line_of_the_rows_once() {
        for &(base, rows, ld, len, steps) in &[
            (4096usize, 32usize, 768usize, 768usize, 9 * 768usize),
            (4100, 5, 1000, 37, 10_000),
            (4092, 3, 17, 17, 5_000),
            (64, 1, 1, 1, 100),
            (128, 32, 768, 768, 100), // fewer steps than lines: the first ones only
            (128, 0, 768, 768, 100),
        ] {
            let mut want = Vec::new();
            for r in 0..rows {
                let start = base + r * ld * 4;
                let mut line = start & !63;
                while line < start + len * 4 {
                    want.push(line);
                    line += 64;
                }
            }
            let got = visited(base, rows, ld, len, steps);
            if want.len() * 4 <= steps * 3 {
                assert_eq!(got, want, "{:?}", (base, rows, ld, len, steps));
                let every = Ahead::new(base as *const f32, rows, ld, len, steps).every;
                assert!(want.is_empty() || every * want.len() <= steps * 3 / 4);
            } else {
                assert_eq!(got[..], want[..got.len()]);
                assert_eq!(got.len(), steps);
            }
        }
    }
}
