//! The GPU algorithms, written against [`Device`] only (see `dev.rs`). Each function validates
//! its arguments exactly as the CPU core does (most checks are the core's own functions), moves
//! the inputs to the device once, works there in blocks sized from [`Device::budget`], and
//! brings back only the results.
//!
//! Row-major matrices throughout; [`gemm_rm`] maps a row-major GEMM onto the column-major
//! device SGEMM.

use crate::dev::{gemm_rm, Arg, Buf, DevPtr, Device, Launch, Rm};
use crate::{InfoNceArgs, MarginArgs, NtXentArgs, SimilarityArgs, TopKArgs, WassersteinArgs};
use densevec_core::contrastive::{
    info_nce_prepare_raw, nce_extras_from_rows, nt_xent_prepare, InfoNce, NceStats, NtXent,
    Prepared,
};
use densevec_core::error::check_matrix;
use densevec_core::margin::{margin_extras, margin_prepare, MarginPrepared, MarginSoftmax};
use densevec_core::regularizers::{unit_rows, wasserstein_check, Wasserstein};
use densevec_core::similarity::{l2_recompute_threshold, Metric};
use densevec_core::topk::{check_k, TopK};
use densevec_core::view;
use densevec_core::{alloc, pool, Code, Error, Result};
use rayon::prelude::*;

/// One GPU operation: its arguments (a struct of the crate root, e.g. [`SimilarityArgs`]), the
/// host work before the device — the core's own argument checks and preparation, so that every
/// error is the CPU's — and the device part with the host work after it.
pub trait GpuOp {
    /// The result (the CPU function's).
    type Out;
    /// What the host prepares before the device is asked for.
    type Host;
    /// The public name of the function, in error messages (the CPU's).
    const NAME: &'static str;
    /// Checks the arguments and prepares the host side; needs no device.
    fn prepare(&self) -> Result<Self::Host>;
    /// Runs the operation on `dev` from what [`GpuOp::prepare`] made.
    fn run(&self, dev: &dyn Device, host: Self::Host) -> Result<Self::Out>;
}

/// Runs `op` on `dev`: [`GpuOp::prepare`], then [`GpuOp::run`].
pub fn on<O: GpuOp>(dev: &dyn Device, op: &O) -> Result<O::Out> {
    let host = op.prepare()?;
    op.run(dev, host)
}

/// Largest k the fused GPU selection supports (`DV_KMAX` in similarity.cu).
pub const KMAX: usize = 128;
const TOPK_THREADS: u32 = 256;
const CE_THREADS: u32 = 256;
const SORT_TILE: u64 = 2048;
const SORT_THREADS: u32 = 1024;
const W_THREADS: u32 = 256;

/// Maps a device failure to `E_BACKEND` naming the function.
pub(crate) fn be(func: &'static str) -> impl Fn(String) -> Error {
    move |e| Error::new(Code::Backend, format!("{func}: CUDA error: {e}"))
}

/// A device buffer copied into a new host vector, allocated fallibly (E_ARG when the host
/// cannot hold it).
fn host<T: alloc::Zeroable>(func: &'static str, what: &str, b: &Buf<T>) -> Result<Vec<T>> {
    let mut v = alloc::try_vec(func, what, b.len)?;
    b.read(0, &mut v).map_err(be(func))?;
    Ok(v)
}

/// Runs `work` (device work) while a helper thread faults in the pages of `bufs` (fresh
/// host vectors that will receive results) on the thread pool. A result copied into fresh
/// memory pays a page fault per page on the way (on an H200's host: 9 GB/s into fresh memory
/// against 29 GB/s into touched memory); here that cost overlaps the device's work.
fn while_faulting_in<T: Send>(bufs: &mut [&mut Vec<f32>], work: impl FnOnce() -> T) -> T {
    /// One write per 4 KiB page.
    const STEP: usize = 1024;
    std::thread::scope(|sc| {
        let touch = sc.spawn(move || {
            pool::run(|| {
                for v in bufs.iter_mut() {
                    v.par_chunks_mut(256 * STEP).for_each(|c| {
                        for i in (0..c.len()).step_by(STEP) {
                            // SAFETY: i < c.len(); a volatile write of the value already
                            // there (zero) only makes the page resident.
                            unsafe { std::ptr::write_volatile(c.as_mut_ptr().add(i), 0.0) }
                        }
                    })
                }
            })
        });
        let out = work();
        let _ = touch.join();
        out
    })
}

fn ci(func: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::new(
            Code::Arg,
            format!("{func}: dimension {v} too large for the CUDA backend"),
        )
    })
}

/// The kernels' metric code (0 dot, 1 cosine, 2 l2sq).
pub fn metric_code(m: Metric) -> i32 {
    match m {
        Metric::Dot => 0,
        Metric::Cosine => 1,
        Metric::L2sq => 2,
    }
}

/// Rows of a block whose rows are `row_bytes` long, within the scratch budget and the
/// device's cap on one block.
fn rows_within(dev: &dyn Device, row_bytes: usize, total: usize) -> usize {
    (dev.budget().min(dev.block_cap()) / row_bytes.max(1)).clamp(1, total.max(1))
}

/// Grid size for a block-per-row kernel over `rows` rows (the kernels stride beyond it).
fn row_grid(rows: usize) -> u32 {
    rows.clamp(1, 65_535) as u32
}

// ---------------------------------------------------------------------------------------------
// Operands of the 3xTF32 scheme

/// A device matrix, plain or split for 3xTF32: when split, `hi` holds the TF32 part and `lo`
/// the rest (hi + lo is the float32 value exactly); plain: `hi` holds the values.
pub struct Operand<'d> {
    pub hi: Buf<'d, f32>,
    pub lo: Option<Buf<'d, f32>>,
    /// Whether the values are currently split (else `lo`, if allocated, is unused).
    pub split: bool,
    /// Set by the split kernel when a value cannot be split (allocated with `lo` by `split`).
    inf_seen: Option<Buf<'d, i32>>,
}

/// An operand of [`gemm_x`]: a row-major operand and, when it is split for 3xTF32, the
/// address of its remainder (laid out as the values).
#[derive(Clone, Copy, Debug)]
pub struct X {
    pub hi: Rm,
    pub lo: Option<DevPtr>,
}

impl From<Rm> for X {
    fn from(hi: Rm) -> X {
        X { hi, lo: None }
    }
}

impl<'d> Operand<'d> {
    /// Uploads `x` plain (split it with [`Operand::split`] once plain-value work is done).
    pub fn upload(dev: &'d dyn Device, f: &'static str, x: &[f32]) -> Result<Self> {
        Ok(Operand {
            hi: Buf::from(dev, x).map_err(be(f))?,
            lo: None,
            split: false,
            inf_seen: None,
        })
    }

    /// A zeroed operand of `len` values, split (with its remainder buffer) when `split`.
    pub fn zeros(dev: &'d dyn Device, f: &'static str, len: usize, split: bool) -> Result<Self> {
        Ok(Operand {
            hi: Buf::zeros(dev, len).map_err(be(f))?,
            lo: if split {
                Some(Buf::zeros(dev, len).map_err(be(f))?)
            } else {
                None
            },
            split,
            inf_seen: None,
        })
    }

    /// Splits the first `len` values in place when the device runs 3xTF32; returns whether it
    /// did. Values that cannot be split (±∞: the cross products would turn inf · 0 into NaN)
    /// leave the operand plain: `host` (the same `len` values) is written back.
    fn split(
        &mut self,
        dev: &'d dyn Device,
        f: &'static str,
        len: usize,
        host: &[f32],
    ) -> Result<bool> {
        self.split = false;
        if !dev.tf32x3() {
            return Ok(false);
        }
        if self.lo.is_none() {
            self.lo = Some(Buf::zeros(dev, self.hi.len).map_err(be(f))?);
        }
        let lo = self.lo.as_ref().expect("allocated above");
        let flag = match &self.inf_seen {
            Some(flag) => {
                flag.clear().map_err(be(f))?;
                flag
            }
            None => self.inf_seen.insert(Buf::zeros(dev, 1).map_err(be(f))?),
        };
        dev.launch(
            "dv_split_tf32",
            Launch::elems(len.min(1 << 24)),
            &[
                self.hi.arg(0),
                Arg::I64(len as i64),
                self.hi.arg(0),
                lo.arg(0),
                flag.arg(0),
            ],
        )
        .map_err(be(f))?;
        let mut inf = [0i32];
        flag.read(0, &mut inf).map_err(be(f))?;
        if inf[0] != 0 {
            self.hi.write(0, &host[..len]).map_err(be(f))?;
            return Ok(false);
        }
        self.split = true;
        Ok(true)
    }

    /// Writes `host` back over a split operand, leaving it plain.
    fn unsplit(&mut self, f: &'static str, host: &[f32]) -> Result<()> {
        if self.split {
            self.hi.write(0, host).map_err(be(f))?;
            self.split = false;
        }
        Ok(())
    }

    /// Rows from element `i` with row stride `ld`, used as stored.
    pub fn n(&self, i: usize, ld: usize) -> X {
        let lo = self.lo.as_ref().filter(|_| self.split).map(|l| l.at(i));
        let hi = Rm::n(self.hi.at(i), ld);
        X {
            hi: if lo.is_some() { hi.tf32() } else { hi },
            lo,
        }
    }

    /// Rows from element `i` with row stride `ld`, used transposed.
    pub fn t(&self, i: usize, ld: usize) -> X {
        let x = self.n(i, ld);
        X {
            hi: Rm { t: true, ..x.hi },
            ..x
        }
    }

    /// The remainder pointer for a row kernel that stores split values (0: store plain).
    fn lo_arg(&self) -> Arg {
        Arg::Ptr(if self.split {
            self.lo.as_ref().map_or(0, |l| l.ptr)
        } else {
            0
        })
    }
}

/// Longest reduction one 3xTF32 product runs. The tensor cores' float32 accumulation loses
/// accuracy over long sums (on an H200, InfoNCE's gradQ with K = 65,536 keys came out with a
/// relative error of 1.8e-4, against 2.6e-5 at K = 4,096), so longer reductions are cut into
/// pieces of this length summed through C (β = 1), whose additions round as float32.
pub const TF32_K: usize = 4096;

/// `x` (an operand of a product whose reduction is `k` long) from reduction index `k0` on:
/// op(A) is m × k (stored k × m when transposed), op(B) is k × n (stored n × k when transposed).
fn from_k(x: X, k0: usize, a_side: bool) -> X {
    let elems = if x.hi.t == a_side { k0 * x.hi.ld } else { k0 };
    let off = (4 * elems) as u64;
    X {
        hi: Rm {
            ptr: x.hi.ptr + off,
            ..x.hi
        },
        lo: x.lo.map(|p| p + off),
    }
}

/// Row-major GEMM (see [`gemm_rm`]) on plain or split operands, `[m, n, k]` = `mnk`. Split
/// (3xTF32): C = α(A_hi·B_lo) + βC, then C += α(A_lo·B_hi), then C += α(A_hi·B_hi), each a TF32
/// tensor-core product with FP32 accumulation, over pieces of at most [`TF32_K`] of the
/// reduction; the dropped A_lo·B_lo term is about 2^-22 relative.
pub fn gemm_x(
    dev: &dyn Device,
    f: &'static str,
    [m, n, k]: [usize; 3],
    alpha: f32,
    (a, b): (X, X),
    beta: f32,
    c: Rm,
) -> Result<()> {
    let g = |kl: usize, a: Rm, b: Rm, beta: f32| gemm_rm(dev, [m, n, kl], alpha, a, b, beta, c);
    let lo = |x: X, p: DevPtr| Rm { ptr: p, ..x.hi };
    match (a.lo, b.lo) {
        (Some(_), Some(_)) => {
            let mut k0 = 0;
            loop {
                let kl = TF32_K.min(k - k0);
                let (a, b) = (from_k(a, k0, true), from_k(b, k0, false));
                let (al, bl) = (a.lo.unwrap_or(0), b.lo.unwrap_or(0));
                let beta = if k0 == 0 { beta } else { 1.0 };
                g(kl, a.hi, lo(b, bl), beta)
                    .and_then(|_| g(kl, lo(a, al), b.hi, 1.0))
                    .and_then(|_| g(kl, a.hi, b.hi, 1.0))
                    .map_err(be(f))?;
                k0 += kl;
                if k0 >= k {
                    return Ok(());
                }
            }
        }
        (None, None) => g(k, a.hi, b.hi, beta).map_err(be(f)),
        _ => Err(Error::new(
            Code::Backend,
            format!("{f}: internal error: a GEMM mixes split and plain operands"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Similarity and top-k

/// Per-row auxiliaries of rows `off .. off+rows` of a device matrix: inverse norms (metric 1,
/// computed in double, 0 for a zero row) or squared norms (metric 2).
pub fn aux_of<'d>(
    dev: &'d dyn Device,
    f: &'static str,
    x: &Buf<f32>,
    off: usize,
    [rows, cols]: [usize; 2],
    metric: i32,
) -> Result<Buf<'d, f32>> {
    let out = Buf::<f32>::zeros(dev, rows).map_err(be(f))?;
    aux_into(dev, f, (x, off), [rows, cols], metric, &out)?;
    Ok(out)
}

/// [`aux_of`] into `out` (at least `rows` long): one fused pass, one warp per row.
pub fn aux_into(
    dev: &dyn Device,
    f: &'static str,
    (x, off): (&Buf<f32>, usize),
    [rows, cols]: [usize; 2],
    metric: i32,
    out: &Buf<f32>,
) -> Result<()> {
    let (r, c) = (ci(f, rows)?, ci(f, cols)?);
    dev.launch(
        "dv_row_aux",
        Launch::warp_rows(rows),
        &[
            x.arg(off * cols),
            Arg::I32(r),
            Arg::I32(c),
            Arg::I32(metric),
            out.arg(0),
        ],
    )
    .map_err(be(f))
}

/// One side of a [`finish`]: the auxiliaries of its rows and the rows themselves (for the l2sq
/// pairs recomputed directly), each at the block's first row; `lo` is 0 for a plain operand.
#[derive(Clone, Copy, Debug)]
pub struct Side {
    pub aux: DevPtr,
    pub hi: DevPtr,
    pub lo: DevPtr,
}

impl Side {
    /// Row `row` (of `cols` values) of `x` with its auxiliary `aux`.
    pub fn of(x: &Operand, row: usize, cols: usize, aux: DevPtr) -> Side {
        let lo =
            x.lo.as_ref()
                .filter(|_| x.split)
                .map_or(0, |l| l.at(row * cols));
        Side {
            aux,
            hi: x.hi.at(row * cols),
            lo,
        }
    }

    /// Row `row` of a plain device matrix.
    pub fn plain(x: &Buf<f32>, row: usize, cols: usize, aux: DevPtr) -> Side {
        Side {
            aux,
            hi: x.at(row * cols),
            lo: 0,
        }
    }
}

/// Applies the metric to a block of raw dot products (`[m, n]`, leading dimension `ld`, rows
/// of `d` values): cosine scales, l2sq forms ‖q‖² + ‖c‖² − 2q·c and then recomputes the pairs
/// where that cancels directly from the rows (`dv_l2_direct`), by the CPU core's rule
/// (`densevec_core::similarity::l2_recompute_threshold`).
pub fn finish(
    dev: &dyn Device,
    f: &'static str,
    tile: &Buf<f32>,
    [m, n, ld, d]: [usize; 4],
    (q, c): (Side, Side),
    metric: i32,
) -> Result<()> {
    if metric == 0 || m == 0 || n == 0 {
        return Ok(());
    }
    // Both kernels start with the block of values and the auxiliaries of its rows / columns.
    let block = [
        tile.arg(0),
        Arg::I32(ci(f, m)?),
        Arg::I32(ci(f, n)?),
        Arg::I64(ld as i64),
        Arg::Ptr(q.aux),
        Arg::Ptr(c.aux),
    ];
    dev.launch(
        "dv_finish",
        Launch {
            grid: [(n as u32).div_ceil(256), (m as u32).min(65_535), 1],
            block: [256, 1, 1],
        },
        &[&block[..], &[Arg::I32(metric)]].concat(),
    )
    .map_err(be(f))?;
    if metric != 2 {
        return Ok(());
    }
    dev.launch(
        "dv_l2_direct",
        Launch {
            grid: [
                (n as u32).div_ceil(64),
                (m as u32).div_ceil(64).min(65_535),
                1,
            ],
            block: [256, 1, 1],
        },
        &[
            &block[..],
            &[
                Arg::Ptr(q.hi),
                Arg::Ptr(q.lo),
                Arg::Ptr(c.hi),
                Arg::Ptr(c.lo),
                Arg::I32(ci(f, d)?),
                Arg::F32(l2_recompute_threshold(d)),
            ],
        ]
        .concat(),
    )
    .map_err(be(f))
}

/// Whether the 3xTF32 scheme pays for an m × n product: below 256 rows on either side the three
/// tensor-core products (and the split) cost more than one FP32 SGEMM (measured on an H200:
/// 100 × 20,000 × 768 takes 0.152 ms as 3xTF32 against 0.124 ms as SGEMM; 1,024 × 100,000
/// × 768 takes 1.8 ms against 3.2 ms).
pub fn tf32x3_pays(m: usize, n: usize) -> bool {
    m.min(n) >= 256
}

/// q.rows × c.rows similarity, same contract and formulas as
/// `densevec_core::similarity::similarity_matrix`. Both inputs are uploaded once; the output is
/// produced and copied back in blocks of query rows.
impl GpuOp for SimilarityArgs<'_> {
    type Out = Vec<f32>;
    type Host = ();
    const NAME: &'static str = "similarityMatrix";

    fn prepare(&self) -> Result<()> {
        check_matrix(Self::NAME, "q", self.q, self.q_rows, self.cols)?;
        check_matrix(Self::NAME, "c", self.c, self.c_rows, self.cols)
    }

    fn run(&self, dev: &dyn Device, _: ()) -> Result<Vec<f32>> {
        const F: &str = SimilarityArgs::NAME;
        let SimilarityArgs {
            q,
            q_rows,
            c,
            c_rows,
            cols,
            metric,
        } = *self;
        let hint = "use topK for nearest neighbours, or split the batch";
        let what = "the q.rows × c.rows similarity matrix";
        let mut out = alloc::try_mat(F, what, q_rows, c_rows, hint)?;
        if out.is_empty() {
            return Ok(out);
        }
        let mc = metric_code(metric);
        let mut dq = Operand::upload(dev, F, q)?;
        let mut dc = Operand::upload(dev, F, c)?;
        let aux = if mc != 0 {
            Some((
                aux_of(dev, F, &dq.hi, 0, [q_rows, cols], mc)?,
                aux_of(dev, F, &dc.hi, 0, [c_rows, cols], mc)?,
            ))
        } else {
            None
        };
        // Both split or both plain (an infinite value keeps one side plain); small products
        // stay plain (see `tf32x3_pays`).
        if tf32x3_pays(q_rows, c_rows)
            && dq.split(dev, F, q_rows * cols, q)? != dc.split(dev, F, c_rows * cols, c)?
        {
            dq.unsplit(F, q)?;
            dc.unsplit(F, c)?;
        }
        let rows_per = rows_within(dev, 4 * c_rows, q_rows);
        let buf = Buf::<f32>::zeros(dev, rows_per * c_rows).map_err(be(F))?;
        let mut i0 = 0;
        while i0 < q_rows {
            let m = rows_per.min(q_rows - i0);
            let ab = (dq.n(i0 * cols, cols), dc.t(0, cols));
            gemm_x(
                dev,
                F,
                [m, c_rows, cols],
                1.0,
                ab,
                0.0,
                Rm::n(buf.ptr, c_rows),
            )?;
            if let Some((qa, ca)) = &aux {
                let sides = (
                    Side::of(&dq, i0, cols, qa.at(i0)),
                    Side::of(&dc, 0, cols, ca.at(0)),
                );
                finish(dev, F, &buf, [m, c_rows, c_rows, cols], sides, mc)?;
            }
            buf.read(0, &mut out[i0 * c_rows..(i0 + m) * c_rows])
                .map_err(be(F))?;
            i0 += m;
        }
        Ok(out)
    }
}

/// Slices each query's scores of a corpus block are selected in (`dv_topk_part`, then
/// `dv_topk_merge_parts`): with fewer than 64 queries, enough thread blocks in all (about 512)
/// to fill the device, each slice at least 8·k candidates long; else 1 (one block per query,
/// one step). On an H200, 8 queries × 1M rows select in 0.36 ms over 512 blocks; at 100 queries
/// × 100k rows one block per query took 0.38 ms and six slices each 0.42 ms, so from 64
/// queries on the single step stays.
pub fn topk_slices(q_rows: usize, n: usize, k: usize) -> usize {
    const BLOCKS: usize = 512;
    if q_rows >= 64 {
        return 1;
    }
    BLOCKS
        .div_ceil(q_rows.max(1))
        .min(n / (8 * k.max(1)))
        .max(1)
}

/// Exact top-k per query, same contract as `densevec_core::topk::top_k` (best first, ties by
/// lower index, NaN last). Queries are uploaded once; the corpus streams through in blocks,
/// each scored by one GEMM and merged into the running best-k lists by a fused selection
/// kernel, so only q.rows × k values come back. k > [`KMAX`] is an `E_ARG` here, after the
/// core's checks (the JavaScript layer routes such calls to the CPU).
impl GpuOp for TopKArgs<'_> {
    type Out = TopK;
    type Host = ();
    const NAME: &'static str = "topK";

    fn prepare(&self) -> Result<()> {
        const F: &str = TopKArgs::NAME;
        check_matrix(F, "q", self.q, self.q_rows, self.cols)?;
        check_matrix(F, "c", self.c, self.c_rows, self.cols)?;
        check_k(F, self.k, self.c_rows)?;
        if self.k > KMAX {
            return Err(Error::new(
                Code::Arg,
                format!("{F}: k must be at most {KMAX} on the GPU, got {}", self.k),
            ));
        }
        Ok(())
    }

    fn run(&self, dev: &dyn Device, _: ()) -> Result<TopK> {
        const F: &str = TopKArgs::NAME;
        let TopKArgs {
            q,
            q_rows,
            c,
            c_rows,
            cols,
            k: kk,
            metric,
        } = *self;
        if q_rows == 0 {
            return Ok(TopK {
                indices: vec![],
                scores: vec![],
            });
        }
        let mc = metric_code(metric);
        let mut dq = Operand::upload(dev, F, q)?;
        let qa = if mc != 0 {
            Some(aux_of(dev, F, &dq.hi, 0, [q_rows, cols], mc)?)
        } else {
            None
        };
        // A plain copy of q for corpus blocks that must stay plain (infinite values). Few
        // queries stay plain (see `tf32x3_pays`: the corpus blocks are long).
        let q_split = tf32x3_pays(q_rows, c_rows) && dq.split(dev, F, q_rows * cols, q)?;
        let dq_plain = if q_split {
            Some(Buf::from(dev, q).map_err(be(F))?)
        } else {
            None
        };
        let best_i = Buf::<u32>::zeros(dev, q_rows * kk).map_err(be(F))?;
        let best_s = Buf::<f32>::zeros(dev, q_rows * kk).map_err(be(F))?;
        // Corpus rows per block: the score block (q.rows × nb) and the corpus block (twice
        // when split) within budget, never fewer than k (a block must be able to fill the
        // lists alone).
        let per_row = 4 * (q_rows + cols * (1 + q_split as usize));
        let nb = rows_within(dev, per_row, c_rows).max(kk);
        let scores = Buf::<f32>::zeros(dev, q_rows * nb).map_err(be(F))?;
        // Few queries: each block's selection is split into slices (see `topk_slices`).
        let max_slices = topk_slices(q_rows, nb, kk);
        let parts = if max_slices > 1 {
            let len = q_rows * max_slices * kk;
            Some((
                Buf::<u32>::zeros(dev, len).map_err(be(F))?,
                Buf::<f32>::zeros(dev, len).map_err(be(F))?,
            ))
        } else {
            None
        };
        let mut dc = Operand::zeros(dev, F, nb * cols, q_split)?;
        let ki = ci(F, kk)?;
        let mut j0 = 0usize;
        while j0 < c_rows {
            let n = nb.min(c_rows - j0);
            let block = &c[j0 * cols..(j0 + n) * cols];
            dc.hi.write(0, block).map_err(be(F))?;
            let ca = if mc != 0 {
                Some(aux_of(dev, F, &dc.hi, 0, [n, cols], mc)?)
            } else {
                None
            };
            let c_split = q_split && dc.split(dev, F, n * cols, block)?;
            let q_at = if c_split {
                dq.n(0, cols)
            } else {
                Rm::n(dq_plain.as_ref().map_or(dq.hi.ptr, |b| b.ptr), cols).into()
            };
            let ab = (q_at, dc.t(0, cols));
            gemm_x(
                dev,
                F,
                [q_rows, n, cols],
                1.0,
                ab,
                0.0,
                Rm::n(scores.ptr, n),
            )?;
            if let (Some(qa), Some(ca)) = (&qa, &ca) {
                // q's rows as the GEMM took them: split with the block, else plain.
                let qs = match &dq_plain {
                    Some(p) if !c_split => Side::plain(p, 0, cols, qa.ptr),
                    _ => Side::of(&dq, 0, cols, qa.ptr),
                };
                let sides = (qs, Side::of(&dc, 0, cols, ca.ptr));
                finish(dev, F, &scores, [q_rows, n, n, cols], sides, mc)?;
            }
            let have = if j0 == 0 { 0 } else { ki };
            let qi = ci(F, q_rows)? as u32;
            let per_query = |grid_y: usize| Launch {
                grid: [qi, grid_y as u32, 1],
                block: [TOPK_THREADS, 1, 1],
            };
            let slices = topk_slices(q_rows, n, kk);
            // The block's scores as both kernels that read them take them (tile, n, ld, j0),
            // and the running best-k lists as both merges take them (k, have, metric, lists).
            let tile = [
                scores.arg(0),
                Arg::I32(ci(F, n)?),
                Arg::I64(n as i64),
                Arg::U32(j0 as u32),
            ];
            let into_best = [
                Arg::I32(ki),
                Arg::I32(have),
                Arg::I32(mc),
                best_i.arg(0),
                best_s.arg(0),
            ];
            match &parts {
                Some((pi, ps)) if slices > 1 => {
                    let into_parts = [
                        Arg::I32(ki),
                        Arg::I32(mc),
                        Arg::I32(slices as i32),
                        pi.arg(0),
                        ps.arg(0),
                    ];
                    let part = [&tile[..], &into_parts].concat();
                    dev.launch("dv_topk_part", per_query(slices), &part)
                        .map_err(be(F))?;
                    let from = [pi.arg(0), ps.arg(0), Arg::I32(ci(F, slices * kk)?)];
                    let merge = [&from[..], &into_best].concat();
                    dev.launch("dv_topk_merge_parts", per_query(1), &merge)
                        .map_err(be(F))?;
                }
                _ => {
                    let merge = [&tile[..], &into_best].concat();
                    dev.launch("dv_topk_merge", per_query(1), &merge)
                        .map_err(be(F))?;
                }
            }
            j0 += n;
        }
        Ok(TopK {
            indices: host(F, "the q.rows × k indices", &best_i)?,
            scores: host(F, "the q.rows × k scores", &best_s)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The softmax losses: InfoNCE, NT-Xent, margin softmax

/// The blocked GEMMs of a softmax loss over rows of A (`rows` × d) against B (n × d), in blocks
/// of `r` rows: G = `alpha_s` · A_blk Bᵀ into `g`; `rows_kernel(m, i0)` turns G into
/// ∂loss/∂(A Bᵀ) in place (and keeps what it needs of the logits); then
/// gradA_blk += `alpha` · G B and gradB += `alpha` · Gᵀ A_blk (`grad_b` may be `grad_a` when B
/// is A). Three rows × n × d GEMMs in all; r × n floats of scratch (twice when split). A and
/// B come each with the device pointer of its gradient.
fn softmax_blocks(
    dev: &dyn Device,
    f: &'static str,
    [(a, grad_a), (b, grad_b)]: [(&Operand, DevPtr); 2],
    [rows, n, d, r]: [usize; 4],
    g: &Operand,
    (alpha_s, alpha): (f32, f32),
    mut rows_kernel: impl FnMut(usize, usize) -> Result<()>,
) -> Result<()> {
    let mut i0 = 0;
    while i0 < rows {
        let m = r.min(rows - i0);
        let (ab, gb) = ((a.n(i0 * d, d), b.t(0, d)), (g.n(0, n), b.n(0, d)));
        gemm_x(dev, f, [m, n, d], alpha_s, ab, 0.0, Rm::n(g.hi.ptr, n))?;
        rows_kernel(m, i0)?;
        let ga = Rm::n(grad_a + (4 * i0 * d) as u64, d);
        gemm_x(dev, f, [m, d, n], alpha, gb, 1.0, ga)?;
        let ga = (g.t(0, n), a.n(i0 * d, d));
        gemm_x(dev, f, [n, d, m], alpha, ga, 1.0, Rm::n(grad_b, d))?;
        i0 += m;
    }
    Ok(())
}

/// What [`fused_ce`] returns: loss, gradQ, gradKeys, and (∂loss/∂τ, diagnostics).
type FusedCe = (f64, Vec<f32>, Vec<f32>, (f64, NceStats));

/// The device part of InfoNCE / NT-Xent on prepared rows: (loss, gradQ, gradKeys) with respect
/// to the prepared rows, and (∂loss/∂τ, diagnostics); for NT-Xent (keys are the queries) gradQ
/// holds both terms and gradKeys is empty.
///
/// Blocks of R complete logit rows ([`softmax_blocks`]): S = Q_blk Kᵀ / τ, the row kernel
/// turns S into P − 1_pos and the per-row losses, then gradQ_blk = (1/(Bτ)) P K and
/// gradK += (1/(Bτ)) Pᵀ Q_blk.
fn fused_ce(dev: &dyn Device, f: &'static str, p: &Prepared) -> Result<FusedCe> {
    let (b, n, d) = (p.b, p.n, p.d);
    let shared = p.keys.is_none();
    // Rows the device normalizes (`Prepared::normalize_pending`): their norms, for the
    // backprop through the normalization at the end.
    let norms = |x: &Operand, rows: usize| -> Result<Option<Buf<f64>>> {
        if !p.normalize_pending {
            return Ok(None);
        }
        let nb = Buf::<f64>::zeros(dev, rows).map_err(be(f))?;
        dev.launch(
            "dv_row_normalize",
            Launch::warp_rows(rows),
            &[
                x.hi.arg(0),
                Arg::I32(ci(f, rows)?),
                Arg::I32(ci(f, d)?),
                nb.arg(0),
            ],
        )
        .map_err(be(f))?;
        Ok(Some(nb))
    };
    // Inputs are finite (checked by the core), so both split or neither does; the split
    // keeps the values exactly (hi + lo), so `host` is only read for infinite values.
    let mut dq = Operand::upload(dev, f, &p.q)?;
    let q_norms = norms(&dq, b)?;
    let split = dq.split(dev, f, b * d, &p.q)?;
    let (dk, k_norms) = if shared {
        (None, None)
    } else {
        let mut k = Operand::upload(dev, f, p.keys())?;
        let kn = norms(&k, n)?;
        k.split(dev, f, n * d, p.keys())?;
        (Some(k), kn)
    };
    let kk = dk.as_ref().unwrap_or(&dq);
    let pos = Buf::from(dev, &p.positives).map_err(be(f))?;
    let lq = match p.log_q {
        Some(l) => Some(Buf::from(dev, l).map_err(be(f))?),
        None => None,
    };
    let gq = Buf::<f32>::zeros(dev, b * d).map_err(be(f))?;
    let gk = if shared {
        None
    } else {
        Some(Buf::<f32>::zeros(dev, n * d).map_err(be(f))?)
    };
    let loss = Buf::<f64>::zeros(dev, b).map_err(be(f))?;
    // Per row: the ∂loss/∂τ term and the softmax diagnostics (see dv_ce_rows).
    let extra = Buf::<f64>::zeros(dev, 5 * b).map_err(be(f))?;
    let r = rows_within(dev, 4 * n * (1 + split as usize), b);
    // The block of logits, turned in place into P − 1_pos (split for 3xTF32).
    let s = Operand::zeros(dev, f, r * n, split)?;
    // ∂loss/∂(q·k) = (P − 1_pos) / (Bτ), the same constant the CPU path uses.
    let alpha = (p.inv_tau as f64 / b as f64) as f32;
    let ni = ci(f, n)?;
    let grad_k = gk.as_ref().map_or(gq.ptr, |g| g.ptr);
    let scales = (p.inv_tau, alpha);
    // The gradients' host vectors, faulted in while the device works.
    let mut gqv = alloc::try_vec::<f32>(f, "gradQ", b * d)?;
    let mut gkv = if shared {
        Vec::new()
    } else {
        alloc::try_vec::<f32>(f, "gradKeys", n * d)?
    };
    while_faulting_in(&mut [&mut gqv, &mut gkv], || {
        softmax_blocks(
            dev,
            f,
            [(&dq, gq.ptr), (kk, grad_k)],
            [b, n, d, r],
            &s,
            scales,
            |m, i0| {
                dev.launch(
                    "dv_ce_rows",
                    Launch::blocks(row_grid(m), CE_THREADS),
                    &[
                        s.hi.arg(0),
                        Arg::I32(ci(f, m)?),
                        Arg::I32(ni),
                        Arg::I64(n as i64),
                        Arg::I32(ci(f, i0)?),
                        Arg::Ptr(lq.as_ref().map_or(0, |l| l.ptr)),
                        Arg::I32(lq.is_some() as i32),
                        pos.arg(0),
                        Arg::I32(p.exclude_self as i32),
                        loss.arg(0),
                        s.lo_arg(),
                        extra.arg(0),
                    ],
                )
                .map_err(be(f))
            },
        )
    })?;
    // Back through the device's normalization (see `dv_back_norm`).
    let back = |g: &Buf<f32>, x: &Operand, nb: &Option<Buf<f64>>, rows: usize| -> Result<()> {
        let Some(nb) = nb else { return Ok(()) };
        let args = [
            g.arg(0),
            x.hi.arg(0),
            x.lo_arg(),
            nb.arg(0),
            Arg::I32(ci(f, rows)?),
            Arg::I32(ci(f, d)?),
        ];
        dev.launch("dv_back_norm", Launch::warp_rows(rows), &args)
            .map_err(be(f))
    };
    back(&gq, &dq, &q_norms, b)?;
    if let (Some(g), Some(k)) = (&gk, &dk) {
        back(g, k, &k_norms, n)?;
    }
    let lossv = host(f, "the per-row losses", &loss)?;
    let total = lossv.iter().sum::<f64>() / b as f64;
    let ex = nce_extras_from_rows(&host(f, "the per-row diagnostics", &extra)?, p.inv_tau);
    gq.read(0, &mut gqv).map_err(be(f))?;
    if let Some(g) = &gk {
        g.read(0, &mut gkv).map_err(be(f))?;
    }
    Ok((total, gqv, gkv, ex))
}

/// InfoNCE on the device (same contract as `densevec_core::contrastive::info_nce`): the core
/// checks and prepares the rows, [`fused_ce`] runs on the device, the core finishes.
impl<'a> GpuOp for InfoNceArgs<'a> {
    type Out = InfoNce;
    type Host = Prepared<'a>;
    const NAME: &'static str = "infoNCE";

    fn prepare(&self) -> Result<Prepared<'a>> {
        info_nce_prepare_raw(self.q, self.b, self.keys, self.n, self.d, self.o)
    }

    fn run(&self, dev: &dyn Device, p: Prepared<'a>) -> Result<InfoNce> {
        let (loss, gq, gk, ex) = fused_ce(dev, Self::NAME, &p)?;
        Ok(p.finish_info_nce_with(loss, gq, gk, ex))
    }
}

/// NT-Xent on the device (same contract as `densevec_core::contrastive::nt_xent`).
impl GpuOp for NtXentArgs<'_> {
    type Out = NtXent;
    type Host = Prepared<'static>;
    const NAME: &'static str = "ntXent";

    fn prepare(&self) -> Result<Prepared<'static>> {
        nt_xent_prepare(self.a, self.b, self.rows, self.d, self.temperature)
    }

    fn run(&self, dev: &dyn Device, p: Prepared<'static>) -> Result<NtXent> {
        let (loss, g, _, ex) = fused_ce(dev, Self::NAME, &p)?;
        Ok(p.finish_nt_xent_with(loss, g, ex))
    }
}

/// Margin softmax on the device (same contract as `densevec_core::margin::margin_softmax`).
/// Rows are normalized and the target logits computed on the host (float64, by the core's
/// `margin_prepare`, shared with the CPU path); per block of rows ([`softmax_blocks`]):
/// cos = X̂_blk Ŵᵀ, the row kernel writes the logits and ∂loss/∂cos in place,
/// gradX̂_blk = G Ŵ and gradŴ += Gᵀ X̂_blk; the core adds the target column's share.
impl GpuOp for MarginArgs<'_> {
    type Out = MarginSoftmax;
    type Host = MarginPrepared;
    const NAME: &'static str = "marginSoftmax";

    fn prepare(&self) -> Result<MarginPrepared> {
        let (x, w) = (
            view::Operand::new(self.x, self.n),
            view::Operand::new(self.w, self.c),
        );
        margin_prepare(x, w, self.d, self.labels, self.o)
    }

    fn run(&self, dev: &dyn Device, pr: MarginPrepared) -> Result<MarginSoftmax> {
        const F: &str = MarginArgs::NAME;
        let MarginArgs {
            n, c, d, labels, o, ..
        } = *self;
        // Inputs are finite (checked by the core), so both split or neither does.
        let mut dx = Operand::upload(dev, F, &pr.xh)?;
        let split = dx.split(dev, F, n * d, &pr.xh)?;
        let mut dw = Operand::upload(dev, F, &pr.wh)?;
        dw.split(dev, F, c * d, &pr.wh)?;
        let dl = Buf::from(dev, labels).map_err(be(F))?;
        let zy: Vec<f32> = pr.target.iter().map(|t| t.0 as f32).collect();
        // The target column's share of the gradient is added on the host, in float64
        // (`MarginPrepared::finish`), so the device takes 0 there.
        let dzy: Vec<f64> = vec![0.0; n];
        let dzy_ = Buf::from(dev, &zy).map_err(be(F))?;
        let ddzy = Buf::from(dev, &dzy).map_err(be(F))?;
        let gx = Buf::<f32>::zeros(dev, n * d).map_err(be(F))?;
        let gw = Buf::<f32>::zeros(dev, c * d).map_err(be(F))?;
        let loss = Buf::<f64>::zeros(dev, n).map_err(be(F))?;
        // R × C blocks: the gradient being formed (twice when split) and the logits on their
        // way back.
        let r = rows_within(dev, 4 * c * (2 + split as usize), n);
        let g = Operand::zeros(dev, F, r * c, split)?;
        let lg = Buf::<f32>::zeros(dev, r * c).map_err(be(F))?;
        let mut logits = alloc::try_mat(F, "the N × C logits", n, c, "split the batch")?;
        let inv_n = 1.0 / n as f64;
        let ciw = ci(F, c)?;
        softmax_blocks(
            dev,
            F,
            [(&dx, gx.ptr), (&dw, gw.ptr)],
            [n, c, d, r],
            &g,
            (1.0, 1.0),
            |m, i0| {
                dev.launch(
                    "dv_margin_rows",
                    Launch::blocks(row_grid(m), CE_THREADS),
                    &[
                        g.hi.arg(0),
                        lg.arg(0),
                        Arg::I32(ci(F, m)?),
                        Arg::I32(ciw),
                        Arg::I32(ci(F, i0)?),
                        dl.arg(0),
                        dzy_.arg(0),
                        ddzy.arg(0),
                        Arg::F32(o.scale as f32),
                        Arg::F64(o.label_smoothing),
                        Arg::F64(inv_n),
                        loss.arg(0),
                        g.lo_arg(),
                    ],
                )
                .map_err(be(F))?;
                lg.read(0, &mut logits[i0 * c..(i0 + m) * c]).map_err(be(F))
            },
        )?;
        let row_loss = host(F, "the per-row losses", &loss)?;
        let total = row_loss.iter().sum::<f64>() * inv_n;
        let gxv = host(F, "gradX", &gx)?;
        let gwv = host(F, "gradPrototypes", &gw)?;
        let tg = pr.target_grads(&row_loss, &logits, labels, o.label_smoothing);
        let (grad_scale, angular_margins) = margin_extras(&pr, &logits, n, c, d, labels, o);
        let unit = MarginSoftmax {
            loss: total,
            grad_x: gxv,
            grad_w: gwv,
            logits,
            grad_scale,
            angular_margins,
        };
        Ok(pr.finish(unit, d, &tg, labels))
    }
}

// ---------------------------------------------------------------------------------------------
// Wasserstein regularizer

/// Device bytes the Wasserstein regularizer needs for n rows of d (inputs, the n × n matrices,
/// the two key lists).
pub fn wasserstein_bytes(n: usize, d: usize) -> usize {
    let npairs = n * n.saturating_sub(1) / 2;
    let total = (npairs.next_power_of_two() as u64).max(SORT_TILE) as usize;
    2 * n * d * 4 * 2 + 2 * n * n * 4 + 2 * total * 8
}

/// A `unsigned long long` kernel argument (same bits as i64).
fn u64_arg(v: u64) -> Arg {
    Arg::I64(v as i64)
}

/// Sorts `total` keys (a power of two ≥ 2048) ascending with the bitonic network.
fn bitonic_sort(dev: &dyn Device, f: &'static str, keys: &Buf<u64>, total: u64) -> Result<()> {
    let tiles = (total / SORT_TILE).min(65_535) as u32;
    let pairs_grid = (total / 2).div_ceil(256).min(1 << 20) as u32;
    dev.launch(
        "dv_bitonic_tile",
        Launch::blocks(tiles, SORT_THREADS),
        &[keys.arg(0), u64_arg(total), u64_arg(0)],
    )
    .map_err(be(f))?;
    let mut k = 2 * SORT_TILE;
    while k <= total {
        let mut j = k / 2;
        while j >= SORT_TILE {
            dev.launch(
                "dv_bitonic_step",
                Launch::blocks(pairs_grid, 256),
                &[keys.arg(0), u64_arg(total), u64_arg(j), u64_arg(k)],
            )
            .map_err(be(f))?;
            j /= 2;
        }
        dev.launch(
            "dv_bitonic_tile",
            Launch::blocks(tiles, SORT_THREADS),
            &[keys.arg(0), u64_arg(total), u64_arg(k)],
        )
        .map_err(be(f))?;
        k *= 2;
    }
    Ok(())
}

/// Unit rows on the device, their pair keys sorted, for one view; `s` is n × n scratch.
fn sorted_keys<'d>(
    dev: &'d dyn Device,
    f: &'static str,
    xh: &Buf<f32>,
    n: usize,
    d: usize,
    s: &Buf<f32>,
    total: u64,
) -> Result<Buf<'d, u64>> {
    let (a, b) = (Rm::n(xh.ptr, d), Rm::t(xh.ptr, d));
    gemm_rm(dev, [n, n, d], 1.0, a, b, 0.0, Rm::n(s.ptr, n)).map_err(be(f))?;
    let keys = Buf::<u64>::zeros(dev, total as usize).map_err(be(f))?;
    dev.launch(
        "dv_pair_keys",
        Launch::blocks(row_grid(n), 256),
        &[s.arg(0), Arg::I32(ci(f, n)?), keys.arg(0), u64_arg(total)],
    )
    .map_err(be(f))?;
    bitonic_sort(dev, f, &keys, total)?;
    Ok(keys)
}

/// The Wasserstein regularizer on the device (same contract as
/// `densevec_core::regularizers::wasserstein_regularizer`): unit rows on the host, then per view
/// the n × n cosines (GEMM), the upper-triangle keys and a bitonic sort on the device; the
/// slot coefficients scattered into the symmetric n × n matrices; grad x̂ = G X̂ (GEMM); the
/// host backprops through the normalization. E_BACKEND when the device lacks the
/// [`wasserstein_bytes`] it needs.
impl GpuOp for WassersteinArgs<'_> {
    type Out = Wasserstein;
    type Host = ();
    const NAME: &'static str = "wassersteinRegularizer";

    fn prepare(&self) -> Result<()> {
        wasserstein_check(self.a, self.b, self.n, self.d, self.p)
    }

    fn run(&self, dev: &dyn Device, _: ()) -> Result<Wasserstein> {
        let WassersteinArgs { a, b, n, d, p } = *self;
        const F: &str = WassersteinArgs::NAME;
        let need = wasserstein_bytes(n, d);
        if need > dev.budget() {
            return Err(Error::new(
                Code::Backend,
                format!(
                    "{F}: n = {n} needs {:.1} GiB of device memory, more than the {:.1} GiB available",
                    need as f64 / (1u64 << 30) as f64,
                    dev.budget() as f64 / (1u64 << 30) as f64
                ),
            ));
        }
        let (ah, an) = unit_rows(a, n, d)?;
        let (bh, bn) = unit_rows(b, n, d)?;
        let npairs = (n * (n - 1) / 2) as u64;
        let total = npairs.next_power_of_two().max(SORT_TILE);
        let dah = Buf::from(dev, &ah).map_err(be(F))?;
        let dbh = Buf::from(dev, &bh).map_err(be(F))?;
        let ga = Buf::<f32>::zeros(dev, n * n).map_err(be(F))?;
        let gb = Buf::<f32>::zeros(dev, n * n).map_err(be(F))?;
        // The cosine matrices are built in the buffers that later hold the coefficients.
        let ka = sorted_keys(dev, F, &dah, n, d, &ga, total)?;
        let kb = sorted_keys(dev, F, &dbh, n, d, &gb, total)?;
        ga.clear().map_err(be(F))?;
        gb.clear().map_err(be(F))?;
        let blocks = npairs.div_ceil(W_THREADS as u64).clamp(1, 4096) as u32;
        let partial = Buf::<f64>::zeros(dev, blocks as usize).map_err(be(F))?;
        dev.launch(
            "dv_w_coef",
            Launch::blocks(blocks, W_THREADS),
            &[
                ka.arg(0),
                kb.arg(0),
                u64_arg(npairs),
                Arg::I32(p as i32),
                Arg::F64(1.0 / npairs as f64),
                ga.arg(0),
                gb.arg(0),
                Arg::I32(ci(F, n)?),
                partial.arg(0),
            ],
        )
        .map_err(be(F))?;
        drop((ka, kb));
        // grad x̂ = G X̂.
        let oa = Buf::<f32>::zeros(dev, n * d).map_err(be(F))?;
        let ob = Buf::<f32>::zeros(dev, n * d).map_err(be(F))?;
        let (g, x) = (Rm::n(ga.ptr, n), Rm::n(dah.ptr, d));
        gemm_rm(dev, [n, d, n], 1.0, g, x, 0.0, Rm::n(oa.ptr, d)).map_err(be(F))?;
        let (g, x) = (Rm::n(gb.ptr, n), Rm::n(dbh.ptr, d));
        gemm_rm(dev, [n, d, n], 1.0, g, x, 0.0, Rm::n(ob.ptr, d)).map_err(be(F))?;
        let loss = host(F, "the partial losses", &partial)?.iter().sum::<f64>() / npairs as f64;
        let mut grad_a = host(F, "gradA", &oa)?;
        let mut grad_b = host(F, "gradB", &ob)?;
        densevec_core::contrastive::back_norm(&mut grad_a, &ah, &an, d);
        densevec_core::contrastive::back_norm(&mut grad_b, &bh, &bn, d);
        Ok(Wasserstein {
            loss,
            grad_a,
            grad_b,
        })
    }
}
