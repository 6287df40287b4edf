//! The GPU algorithms, written against [`Device`] only (see `dev.rs`). Each function validates
//! its arguments exactly as the CPU core does (most checks are the core's own functions), moves
//! the inputs to the device once, works there in blocks sized from [`Device::budget`], and
//! brings back only the results.
//!
//! Row-major matrices throughout; [`gemm_rm`] maps a row-major GEMM onto the column-major
//! device SGEMM.

use crate::dev::{gemm_rm, gemm_rm_p, Arg, Buf, DevPtr, Device, Launch};
use densevec_core::contrastive::{
    info_nce_prepare, nce_extras_from_rows, nt_xent_prepare, InfoNce, InfoNceOpts, NceStats,
    NtXent, Prepared,
};
use densevec_core::error::check_matrix;
use densevec_core::margin::{
    margin_extras, margin_prepare, MarginOpts, MarginPrepared, MarginSoftmax,
};
use densevec_core::regularizers::{unit_rows, wasserstein_check, Wasserstein};
use densevec_core::similarity::Metric;
use densevec_core::topk::TopK;
use densevec_core::{alloc, Code, Error, Result};

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

fn ci(func: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::new(
            Code::Arg,
            format!("{func}: dimension {v} too large for the CUDA backend"),
        )
    })
}

fn metric_code(m: Metric) -> i32 {
    match m {
        Metric::Dot => 0,
        Metric::Cosine => 1,
        Metric::L2sq => 2,
    }
}

/// Most scratch one block of work holds: big enough for GEMMs that fill the device, small
/// enough to leave memory to others.
const SCRATCH_CAP: usize = 1 << 30;

/// Rows of a block whose rows are `row_bytes` long, within the scratch budget.
fn rows_within(dev: &dyn Device, row_bytes: usize, total: usize) -> usize {
    (dev.budget().min(SCRATCH_CAP) / row_bytes.max(1)).clamp(1, total.max(1))
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

/// Address of element `i` of an operand: (hi, lo).
pub(crate) type At = (DevPtr, Option<DevPtr>);

impl<'d> Operand<'d> {
    /// Uploads `x` plain (split it with [`Operand::split`] once plain-value work is done).
    fn upload(dev: &'d dyn Device, f: &'static str, x: &[f32]) -> Result<Self> {
        Ok(Operand {
            hi: Buf::from(dev, x).map_err(be(f))?,
            lo: None,
            split: false,
            inf_seen: None,
        })
    }

    /// A zeroed operand of `len` values, split (with its remainder buffer) when `split`.
    pub(crate) fn zeros(
        dev: &'d dyn Device,
        f: &'static str,
        len: usize,
        split: bool,
    ) -> Result<Self> {
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

    pub(crate) fn at(&self, i: usize) -> At {
        (
            self.hi.at(i),
            if self.split {
                self.lo.as_ref().map(|l| l.at(i))
            } else {
                None
            },
        )
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

/// Row-major GEMM (see [`gemm_rm`]) on plain or split operands. Split (3xTF32):
/// C = α(A_hi·B_lo) + βC, then C += α(A_lo·B_hi), then C += α(A_hi·B_hi), each a TF32
/// tensor-core product with FP32 accumulation; the dropped A_lo·B_lo term is about 2^-22
/// relative.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_x(
    dev: &dyn Device,
    f: &'static str,
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: At,
    lda: usize,
    b: At,
    ldb: usize,
    beta: f32,
    c: DevPtr,
    ldc: usize,
) -> Result<()> {
    match (a.1, b.1) {
        (Some(al), Some(bl)) => gemm_rm_p(
            dev, true, ta, tb, m, n, k, alpha, a.0, lda, bl, ldb, beta, c, ldc,
        )
        .and_then(|_| {
            gemm_rm_p(
                dev, true, ta, tb, m, n, k, alpha, al, lda, b.0, ldb, 1.0, c, ldc,
            )
        })
        .and_then(|_| {
            gemm_rm_p(
                dev, true, ta, tb, m, n, k, alpha, a.0, lda, b.0, ldb, 1.0, c, ldc,
            )
        })
        .map_err(be(f)),
        (None, None) => gemm_rm(
            dev, ta, tb, m, n, k, alpha, a.0, lda, b.0, ldb, beta, c, ldc,
        )
        .map_err(be(f)),
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
pub(crate) fn aux_of<'d>(
    dev: &'d dyn Device,
    f: &'static str,
    x: &Buf<f32>,
    off: usize,
    rows: usize,
    cols: usize,
    metric: i32,
) -> Result<Buf<'d, f32>> {
    let out = Buf::<f32>::zeros(dev, rows).map_err(be(f))?;
    let (r, c) = (ci(f, rows)?, ci(f, cols)?);
    let warps_per_block = 8u64;
    let blocks = (rows as u64).div_ceil(warps_per_block).min(u32::MAX as u64) as u32;
    dev.launch(
        "dv_row_sumsq",
        Launch::blocks(blocks, 256),
        &[x.arg(off * cols), Arg::I32(r), Arg::I32(c), out.arg(0)],
    )
    .map_err(be(f))?;
    dev.launch(
        "dv_aux",
        Launch::elems(rows),
        &[out.arg(0), Arg::I32(r), Arg::I32(metric)],
    )
    .map_err(be(f))?;
    Ok(out)
}

/// Applies the metric to a block of raw dot products (m × n, leading dimension ld).
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish(
    dev: &dyn Device,
    f: &'static str,
    tile: &Buf<f32>,
    m: usize,
    n: usize,
    ld: usize,
    qa: &Buf<f32>,
    qa_off: usize,
    ca: &Buf<f32>,
    metric: i32,
) -> Result<()> {
    if metric == 0 || m == 0 || n == 0 {
        return Ok(());
    }
    dev.launch(
        "dv_finish",
        Launch {
            grid: [(n as u32).div_ceil(256), (m as u32).min(65_535), 1],
            block: [256, 1, 1],
        },
        &[
            tile.arg(0),
            Arg::I32(ci(f, m)?),
            Arg::I32(ci(f, n)?),
            Arg::I64(ld as i64),
            qa.arg(qa_off),
            ca.arg(0),
            Arg::I32(metric),
        ],
    )
    .map_err(be(f))
}

/// q.rows × c.rows similarity, same contract and formulas as
/// `densevec_core::similarity::similarity_matrix`. Both inputs are uploaded once; the output is
/// produced and copied back in blocks of query rows.
pub fn similarity_matrix(
    dev: &dyn Device,
    q: &[f32],
    q_rows: usize,
    c: &[f32],
    c_rows: usize,
    cols: usize,
    metric: Metric,
) -> Result<Vec<f32>> {
    const F: &str = "cudaSimilarityMatrix";
    check_matrix(F, "q", q, q_rows, cols)?;
    check_matrix(F, "c", c, c_rows, cols)?;
    let hint = "use topK for nearest neighbours, or split the batch";
    let mut out = alloc::try_mat(
        F,
        "the q.rows × c.rows similarity matrix",
        q_rows,
        c_rows,
        hint,
    )?;
    if out.is_empty() {
        return Ok(out);
    }
    let mc = metric_code(metric);
    let mut dq = Operand::upload(dev, F, q)?;
    let mut dc = Operand::upload(dev, F, c)?;
    let aux = if mc != 0 {
        Some((
            aux_of(dev, F, &dq.hi, 0, q_rows, cols, mc)?,
            aux_of(dev, F, &dc.hi, 0, c_rows, cols, mc)?,
        ))
    } else {
        None
    };
    // Both split or both plain (an infinite value keeps one side plain).
    if dq.split(dev, F, q_rows * cols, q)? != dc.split(dev, F, c_rows * cols, c)? {
        dq.unsplit(F, q)?;
        dc.unsplit(F, c)?;
    }
    let rows_per = rows_within(dev, 4 * c_rows, q_rows);
    let buf = Buf::<f32>::zeros(dev, rows_per * c_rows).map_err(be(F))?;
    let mut i0 = 0;
    while i0 < q_rows {
        let m = rows_per.min(q_rows - i0);
        gemm_x(
            dev,
            F,
            false,
            true,
            m,
            c_rows,
            cols,
            1.0,
            dq.at(i0 * cols),
            cols,
            dc.at(0),
            cols,
            0.0,
            buf.ptr,
            c_rows,
        )?;
        if let Some((qa, ca)) = &aux {
            finish(dev, F, &buf, m, c_rows, c_rows, qa, i0, ca, mc)?;
        }
        buf.read(0, &mut out[i0 * c_rows..(i0 + m) * c_rows])
            .map_err(be(F))?;
        i0 += m;
    }
    Ok(out)
}

/// Checks of top-k that do not depend on the device.
pub fn check_top_k(
    f: &str,
    q: &[f32],
    q_rows: usize,
    c: &[f32],
    c_rows: usize,
    cols: usize,
    kk: usize,
) -> Result<()> {
    check_matrix(f, "q", q, q_rows, cols)?;
    check_matrix(f, "c", c, c_rows, cols)?;
    if kk < 1 || kk > c_rows {
        return Err(Error::new(
            Code::Arg,
            format!("{f}: k must be in [1, {c_rows}], got {kk}"),
        ));
    }
    if kk > KMAX {
        return Err(Error::new(
            Code::Arg,
            format!("{f}: k must be at most {KMAX} on the GPU, got {kk}"),
        ));
    }
    if c_rows > u32::MAX as usize {
        return Err(Error::new(Code::Arg, format!("{f}: corpus too large")));
    }
    Ok(())
}

/// Exact top-k per query, same contract as `densevec_core::topk::top_k` (best first, ties by
/// lower index, NaN last). Queries are uploaded once; the corpus streams through in blocks,
/// each scored by one GEMM and merged into the running best-k lists by a fused selection
/// kernel, so only q.rows × k values come back. k > [`KMAX`] is an `E_ARG` here (the
/// JavaScript layer routes such calls to the CPU).
#[allow(clippy::too_many_arguments)]
pub fn top_k(
    dev: &dyn Device,
    q: &[f32],
    q_rows: usize,
    c: &[f32],
    c_rows: usize,
    cols: usize,
    kk: usize,
    metric: Metric,
) -> Result<TopK> {
    const F: &str = "cudaTopK";
    check_top_k(F, q, q_rows, c, c_rows, cols, kk)?;
    if q_rows == 0 {
        return Ok(TopK {
            indices: vec![],
            scores: vec![],
        });
    }
    let mc = metric_code(metric);
    let mut dq = Operand::upload(dev, F, q)?;
    let qa = if mc != 0 {
        Some(aux_of(dev, F, &dq.hi, 0, q_rows, cols, mc)?)
    } else {
        None
    };
    // A plain copy of q for corpus blocks that must stay plain (infinite values).
    let q_split = dq.split(dev, F, q_rows * cols, q)?;
    let dq_plain = if q_split {
        Some(Buf::from(dev, q).map_err(be(F))?)
    } else {
        None
    };
    let best_i = Buf::<u32>::zeros(dev, q_rows * kk).map_err(be(F))?;
    let best_s = Buf::<f32>::zeros(dev, q_rows * kk).map_err(be(F))?;
    // Corpus rows per block: the score block (q.rows × nb) and the corpus block (twice when
    // split) within budget, never fewer than k (a block must be able to fill the lists alone).
    let split = q_split;
    let per_row = 4 * (q_rows + cols * (1 + split as usize));
    let nb = rows_within(dev, per_row, c_rows).max(kk);
    let scores = Buf::<f32>::zeros(dev, q_rows * nb).map_err(be(F))?;
    let mut dc = Operand::zeros(dev, F, nb * cols, split)?;
    let ki = ci(F, kk)?;
    let mut j0 = 0usize;
    while j0 < c_rows {
        let n = nb.min(c_rows - j0);
        dc.hi
            .write(0, &c[j0 * cols..(j0 + n) * cols])
            .map_err(be(F))?;
        let ca = if mc != 0 {
            Some(aux_of(dev, F, &dc.hi, 0, n, cols, mc)?)
        } else {
            None
        };
        let block = &c[j0 * cols..(j0 + n) * cols];
        let q_at = if q_split && dc.split(dev, F, n * cols, block)? {
            dq.at(0)
        } else {
            (dq_plain.as_ref().map_or(dq.hi.ptr, |b| b.ptr), None)
        };
        gemm_x(
            dev,
            F,
            false,
            true,
            q_rows,
            n,
            cols,
            1.0,
            q_at,
            cols,
            dc.at(0),
            cols,
            0.0,
            scores.ptr,
            n,
        )?;
        if let (Some(qa), Some(ca)) = (&qa, &ca) {
            finish(dev, F, &scores, q_rows, n, n, qa, 0, ca, mc)?;
        }
        let have = if j0 == 0 { 0 } else { ki };
        dev.launch(
            "dv_topk_merge",
            Launch {
                grid: [ci(F, q_rows)? as u32, 1, 1],
                block: [TOPK_THREADS, 1, 1],
            },
            &[
                scores.arg(0),
                Arg::I32(ci(F, n)?),
                Arg::I64(n as i64),
                Arg::U32(j0 as u32),
                Arg::I32(ki),
                Arg::I32(have),
                Arg::I32(mc),
                best_i.arg(0),
                best_s.arg(0),
            ],
        )
        .map_err(be(F))?;
        j0 += n;
    }
    Ok(TopK {
        indices: host(F, "the q.rows × k indices", &best_i)?,
        scores: host(F, "the q.rows × k scores", &best_s)?,
    })
}

// ---------------------------------------------------------------------------------------------
// InfoNCE and NT-Xent

/// What [`fused_ce`] returns: loss, gradQ, gradKeys, and (∂loss/∂τ, diagnostics).
pub type FusedCe = (f64, Vec<f32>, Vec<f32>, (f64, NceStats));

/// The device part of InfoNCE / NT-Xent on prepared rows: (loss, gradQ, gradKeys) with respect
/// to the prepared rows; for NT-Xent (keys are the queries) gradQ already holds both terms and
/// gradKeys is empty.
///
/// Blocks of R complete logit rows: S = Q_blk Kᵀ / τ (GEMM), the row kernel turns S into
/// P − 1_pos and the per-row losses, then gradQ_blk = (1/(Bτ)) P K and
/// gradK += (1/(Bτ)) Pᵀ Q_blk (two GEMMs). Three B·K·d GEMMs in all; R × K floats of scratch.
pub fn fused_ce(dev: &dyn Device, f: &'static str, p: &Prepared) -> Result<FusedCe> {
    let (b, n, d) = (p.b, p.n, p.d);
    let shared = p.keys.is_none();
    // Inputs are finite (checked by the core), so both split or neither does.
    let mut dq = Operand::upload(dev, f, &p.q)?;
    let split = dq.split(dev, f, b * d, &p.q)?;
    let dk = if shared {
        None
    } else {
        let mut k = Operand::upload(dev, f, p.keys())?;
        k.split(dev, f, n * d, p.keys())?;
        Some(k)
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
    let gkptr = gk.as_ref().map_or(gq.ptr, |g| g.ptr);
    let loss = Buf::<f64>::zeros(dev, b).map_err(be(f))?;
    // Per row: the ∂loss/∂τ term and the softmax diagnostics (see dv_ce_rows).
    let extra = Buf::<f64>::zeros(dev, 5 * b).map_err(be(f))?;
    let r = rows_within(dev, 4 * n * (1 + split as usize), b);
    // The block of logits, turned in place into P − 1_pos (split for 3xTF32).
    let s = Operand::zeros(dev, f, r * n, split)?;
    // ∂loss/∂(q·k) = (P − 1_pos) / (Bτ), the same constant the CPU path uses.
    let alpha = (p.inv_tau as f64 / b as f64) as f32;
    let ni = ci(f, n)?;
    let mut i0 = 0;
    while i0 < b {
        let m = r.min(b - i0);
        gemm_x(
            dev,
            f,
            false,
            true,
            m,
            n,
            d,
            p.inv_tau,
            dq.at(i0 * d),
            d,
            kk.at(0),
            d,
            0.0,
            s.hi.ptr,
            n,
        )?;
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
        .map_err(be(f))?;
        // gradQ rows of this block (accumulating: for NT-Xent earlier blocks' gradK terms are
        // already in these rows).
        gemm_x(
            dev,
            f,
            false,
            false,
            m,
            d,
            n,
            alpha,
            s.at(0),
            n,
            kk.at(0),
            d,
            1.0,
            gq.at(i0 * d),
            d,
        )?;
        // gradK += Pᵀ Q_blk.
        gemm_x(
            dev,
            f,
            true,
            false,
            n,
            d,
            m,
            alpha,
            s.at(0),
            n,
            dq.at(i0 * d),
            d,
            1.0,
            gkptr,
            d,
        )?;
        i0 += m;
    }
    let lossv = host(f, "the per-row losses", &loss)?;
    let total = lossv.iter().sum::<f64>() / b as f64;
    let ex = nce_extras_from_rows(&host(f, "the per-row diagnostics", &extra)?, p.inv_tau);
    let gqv = host(f, "gradQ", &gq)?;
    let gkv = match &gk {
        Some(g) => host(f, "gradKeys", g)?,
        None => Vec::new(),
    };
    Ok((total, gqv, gkv, ex))
}

/// InfoNCE on the device (same contract as `densevec_core::contrastive::info_nce`).
pub fn info_nce(
    dev: &dyn Device,
    q: &[f32],
    b: usize,
    keys: &[f32],
    n: usize,
    d: usize,
    o: &InfoNceOpts,
) -> Result<InfoNce> {
    let p = info_nce_prepare(q, b, keys, n, d, o)?;
    let (loss, gq, gk, ex) = fused_ce(dev, "cudaInfoNCE", &p)?;
    Ok(p.finish_info_nce_with(loss, gq, gk, ex))
}

/// NT-Xent on the device (same contract as `densevec_core::contrastive::nt_xent`).
pub fn nt_xent(
    dev: &dyn Device,
    a: &[f32],
    b: &[f32],
    rows: usize,
    d: usize,
    temperature: f64,
) -> Result<NtXent> {
    let p = nt_xent_prepare(a, b, rows, d, temperature)?;
    let (loss, g, _, ex) = fused_ce(dev, "cudaNtXent", &p)?;
    Ok(p.finish_nt_xent_with(loss, g, ex))
}

// ---------------------------------------------------------------------------------------------
// Margin softmax

/// Margin softmax on the device (same contract as `densevec_core::margin::margin_softmax`).
/// Rows are normalized and the target logits computed on the host (float64, shared with the
/// CPU path); per block of rows: cos = X̂_blk Ŵᵀ (GEMM), the row kernel writes the logits and
/// ∂loss/∂cos in place, gradX̂_blk = G Ŵ and gradŴ += Gᵀ X̂_blk (GEMMs).
#[allow(clippy::too_many_arguments)]
pub fn margin_softmax(
    dev: &dyn Device,
    x: &[f32],
    n: usize,
    w: &[f32],
    c: usize,
    d: usize,
    labels: &[u32],
    o: &MarginOpts,
) -> Result<MarginSoftmax> {
    let pr = margin_prepare(x, n, w, c, d, labels, o)?;
    margin_run(dev, &pr, n, c, d, labels, o)
}

/// The device part of [`margin_softmax`] on prepared rows.
pub fn margin_run(
    dev: &dyn Device,
    pr: &MarginPrepared,
    n: usize,
    c: usize,
    d: usize,
    labels: &[u32],
    o: &MarginOpts,
) -> Result<MarginSoftmax> {
    const F: &str = "cudaMarginSoftmax";
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
    // R × C blocks: the gradient being formed (twice when split) and the logits on their way
    // back.
    let r = rows_within(dev, 4 * c * (2 + split as usize), n);
    let g = Operand::zeros(dev, F, r * c, split)?;
    let lg = Buf::<f32>::zeros(dev, r * c).map_err(be(F))?;
    let mut logits = alloc::try_mat(F, "the N × C logits", n, c, "split the batch")?;
    let inv_n = 1.0 / n as f64;
    let ciw = ci(F, c)?;
    let mut i0 = 0;
    while i0 < n {
        let m = r.min(n - i0);
        gemm_x(
            dev,
            F,
            false,
            true,
            m,
            c,
            d,
            1.0,
            dx.at(i0 * d),
            d,
            dw.at(0),
            d,
            0.0,
            g.hi.ptr,
            c,
        )?;
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
        gemm_x(
            dev,
            F,
            false,
            false,
            m,
            d,
            c,
            1.0,
            g.at(0),
            c,
            dw.at(0),
            d,
            0.0,
            gx.at(i0 * d),
            d,
        )?;
        gemm_x(
            dev,
            F,
            true,
            false,
            c,
            d,
            m,
            1.0,
            g.at(0),
            c,
            dx.at(i0 * d),
            d,
            1.0,
            gw.ptr,
            d,
        )?;
        lg.read(0, &mut logits[i0 * c..(i0 + m) * c])
            .map_err(be(F))?;
        i0 += m;
    }
    let row_loss = host(F, "the per-row losses", &loss)?;
    let total = row_loss.iter().sum::<f64>() * inv_n;
    let gxv = host(F, "gradX", &gx)?;
    let gwv = host(F, "gradPrototypes", &gw)?;
    let tg = pr.target_grads(&row_loss, &logits, labels, o.label_smoothing);
    let ex = margin_extras(pr, &logits, n, c, d, labels, o);
    Ok(pr.finish(total, gxv, gwv, logits, d, ex, &tg, labels))
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
    gemm_rm(
        dev, false, true, n, n, d, 1.0, xh.ptr, d, xh.ptr, d, 0.0, s.ptr, n,
    )
    .map_err(be(f))?;
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
pub fn wasserstein_regularizer(
    dev: &dyn Device,
    a: &[f32],
    b: &[f32],
    n: usize,
    d: usize,
    p: u32,
) -> Result<Wasserstein> {
    wasserstein_check(a, b, n, d, p)?;
    wasserstein_run(dev, a, b, n, d, p)
}

/// The device part of [`wasserstein_regularizer`] on checked inputs.
pub fn wasserstein_run(
    dev: &dyn Device,
    a: &[f32],
    b: &[f32],
    n: usize,
    d: usize,
    p: u32,
) -> Result<Wasserstein> {
    const F: &str = "cudaWassersteinRegularizer";
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
    gemm_rm(
        dev, false, false, n, d, n, 1.0, ga.ptr, n, dah.ptr, d, 0.0, oa.ptr, d,
    )
    .map_err(be(F))?;
    gemm_rm(
        dev, false, false, n, d, n, 1.0, gb.ptr, n, dbh.ptr, d, 0.0, ob.ptr, d,
    )
    .map_err(be(F))?;
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

/// Splits `len` values of `x` into the operand `to` (hi, lo), or does nothing for a plain
/// operand: the benchmark's way of redoing a call's conversions on resident data.
pub(crate) fn split_from(
    dev: &dyn Device,
    f: &'static str,
    x: &Buf<f32>,
    to: &Operand,
    flag: &Buf<i32>,
    len: usize,
) -> Result<()> {
    match &to.lo {
        Some(lo) => dev.launch(
            "dv_split_tf32",
            Launch::elems(len.min(1 << 24)),
            &[
                x.arg(0),
                Arg::I64(len as i64),
                to.hi.arg(0),
                lo.arg(0),
                flag.arg(0),
            ],
        ),
        None => Ok(()),
    }
    .map_err(be(f))
}
