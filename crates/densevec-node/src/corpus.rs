//! Bindings of the pipeline functions: top-k restricted by `skip` / `mask` over a corpus in any
//! storage type, and memory-mapped corpus files.
//!
//! The corpus arrives as one of `c32` (float32), `half` (f16 / bf16 bits) or `int8` (value =
//! v · scale, `scales` one per row when not empty), the others empty; `dtype` 0 f32, 1 f16,
//! 2 bf16, 3 i8. `sel` says which filters are present: bit 0 `skip`, bit 1 `mask`.

use crate::common::{batch_dims, copy, err, guard, to_usize, IntoJs, Job};
use crate::similarity::TopKResult;
use densevec_core::precision::{with_precision, Precision};
use densevec_core::quantized::{Corpus, I8Scale};
use densevec_core::similarity::Metric;
use densevec_core::topk::{self, Select, TopK};
use densevec_core::{Code, Error};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Bytes of the corpus file header (see `lib/pipelines.ts`, which reads and writes it).
const HEADER: u64 = 64;

#[allow(clippy::too_many_arguments)]
fn corpus<'a>(
    func: &str,
    c32: &'a [f32],
    half: &'a [u16],
    int8: &'a [i8],
    dtype: u32,
    scale: f64,
    scales: &'a [f32],
) -> densevec_core::Result<Corpus<'a>> {
    Ok(match dtype {
        0 => Corpus::F32(c32),
        1 => Corpus::F16(half),
        2 => Corpus::Bf16(half),
        3 => Corpus::I8 {
            data: int8,
            scale: if scales.is_empty() {
                I8Scale::Global(scale as f32)
            } else {
                I8Scale::Rows(scales)
            },
        },
        _ => {
            return Err(Error::new(
                Code::Arg,
                format!("{func}: unknown corpus dtype code {dtype}"),
            ))
        }
    })
}

fn select<'a>(sel: u32, skip: &'a [u32], mask: &'a [u8]) -> Select<'a> {
    Select {
        skip: (sel & 1 != 0).then_some(skip),
        mask: (sel & 2 != 0).then_some(mask),
    }
}

/// `topK` restricted by `skip` / `mask`, over a corpus in any storage type.
#[napi(js_name = "topKSelect")]
#[allow(clippy::too_many_arguments)]
pub fn top_k_select<'e>(
    env: &'e Env,
    q: &[f32],
    q_rows: f64,
    c32: &[f32],
    half: &[u16],
    int8: &[i8],
    c_rows: f64,
    cols: f64,
    dtype: u32,
    scale: f64,
    scales: &[f32],
    k: f64,
    metric: u32,
    sel: u32,
    skip: &[u32],
    mask: &[u8],
    precision: Option<u32>,
) -> napi::Result<TopKResult<'e>> {
    const F: &str = "topK";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    let kk = to_usize(F, "k", k)?;
    guard(F, || {
        let c = corpus(F, c32, half, int8, dtype, scale, scales)?;
        let p = Precision::from_code(F, precision)?;
        with_precision(p, || {
            topk::top_k_filtered(
                q,
                qr,
                &c,
                cr,
                d,
                kk,
                Metric::from_code(F, metric)?,
                select(sel, skip, mask),
            )
        })
    })?
    .into_js(env, F)
}

/// Async twin of `topKSelect` (inputs are copied first).
#[napi(js_name = "topKSelectAsync", ts_return_type = "Promise<TopKResult>")]
#[allow(clippy::too_many_arguments)]
pub fn top_k_select_async(
    q: &[f32],
    q_rows: f64,
    c32: &[f32],
    half: &[u16],
    int8: &[i8],
    c_rows: f64,
    cols: f64,
    dtype: u32,
    scale: f64,
    scales: &[f32],
    k: f64,
    metric: u32,
    sel: u32,
    skip: &[u32],
    mask: &[u8],
    precision: Option<u32>,
) -> napi::Result<AsyncTask<Job<TopK>>> {
    const F: &str = "topKAsync";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    let kk = to_usize(F, "k", k)?;
    let (q, c32, half, int8, scales) = (
        copy(F, "q", q)?,
        copy(F, "c32", c32)?,
        copy(F, "half", half)?,
        copy(F, "int8", int8)?,
        copy(F, "scales", scales)?,
    );
    let (skip, mask) = (copy(F, "skip", skip)?, copy(F, "mask", mask)?);
    Ok(Job::new(F, move || {
        let c = corpus(F, &c32, &half, &int8, dtype, scale, &scales)?;
        let p = Precision::from_code(F, precision)?;
        with_precision(p, || {
            topk::top_k_filtered(
                &q,
                qr,
                &c,
                cr,
                d,
                kk,
                Metric::from_code(F, metric)?,
                select(sel, &skip, &mask),
            )
        })
    }))
}

/// Largest file `mapCorpus` maps: one external ArrayBuffer of at most 2^32 bytes.
const MAX_MAPPED_BYTES: u64 = 1 << 32;

/// Memory-maps the file at `path` (private copy-on-write pages: writes through the returned
/// buffer never reach the file, and never fault) and returns an ArrayBuffer over the mapping,
/// without copying. The mapping lives as long as the ArrayBuffer (and every view of it); it is
/// unmapped when the garbage collector frees the buffer. Files shorter than the 64-byte header
/// are refused (E_SHAPE), files over 4 GiB with E_ARG; the header itself is read by the caller.
#[napi(js_name = "mapCorpus")]
pub fn map_corpus(env: Env, path: String) -> napi::Result<ArrayBuffer<'static>> {
    const F: &str = "openCorpus";
    let file = std::fs::File::open(&path)
        .map_err(|e| err(Code::Arg, format!("{F}: cannot open '{path}': {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| err(Code::Arg, format!("{F}: cannot read '{path}': {e}")))?
        .len();
    if len < HEADER {
        return Err(err(
            Code::Shape,
            format!("{F}: '{path}' has {len} bytes, less than the {HEADER}-byte header (truncated or not a corpus file)"),
        ));
    }
    let size = usize::try_from(len).map_err(|_| {
        err(
            Code::Arg,
            format!("{F}: '{path}' has {len} bytes, too large to map here"),
        )
    })?;
    // One ArrayBuffer holds at most 2^32 bytes on the Node versions this package supports
    // (Node refuses larger external buffers): refuse with the way out rather than fail inside.
    if len > MAX_MAPPED_BYTES {
        return Err(err(
            Code::Arg,
            format!(
                "{F}: '{path}' has {len} bytes, more than the {MAX_MAPPED_BYTES} bytes (4 GiB) one mapped buffer holds; \
                 write the corpus as shard files of at most 4 GiB (writeCorpus per shard) and combine them \
                 exactly with topKStream or mergeTopK"
            ),
        ));
    }
    // SAFETY: a private (copy-on-write) mapping: changes by other processes to the file while it
    // is mapped may or may not be seen, as documented for openCorpus; the memory stays valid
    // until the mapping is dropped by the buffer's finalizer.
    let mut map = unsafe { memmap2::MmapOptions::new().len(size).map_copy(&file) }
        .map_err(|e| err(Code::Arg, format!("{F}: cannot map '{path}': {e}")))?;
    let ptr = map.as_mut_ptr();
    // SAFETY: `ptr` points at `size` bytes owned by `map`, which the finalizer drops when the
    // ArrayBuffer is collected, so the memory outlives every view of it.
    unsafe { ArrayBuffer::from_external(&env, ptr, size, map, |_, m| drop(m)) }
}
