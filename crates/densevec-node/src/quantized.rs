//! Bindings of the compact corpus storage types (f16, bf16, i8) of `similarityMatrix` and
//! `topK`. The corpus arrives as `half` (a Uint16Array of f16 / bf16 bits) or `int8` (an
//! Int8Array, value = v · scale, `scales` one per row when not empty), the other array empty;
//! `dtype` 1 f16, 2 bf16, 3 i8.

use crate::common::{batch_dims, copy, guard, to_usize, typed_with, IntoJs, Job};
use crate::similarity::{TopKResult, SIM_HINT, SIM_WHAT};
use densevec_core::alloc;
use densevec_core::error::check_matrix;
use densevec_core::precision::{with_precision, Precision};
use densevec_core::quantized::{self as qz, Corpus, I8Scale};
use densevec_core::similarity::Metric;
use densevec_core::topk::TopK;
use densevec_core::{Code, Error};
use napi::bindgen_prelude::*;
use napi_derive::napi;

fn corpus<'a>(
    func: &str,
    half: &'a [u16],
    int8: &'a [i8],
    dtype: u32,
    scale: f64,
    scales: &'a [f32],
) -> densevec_core::Result<Corpus<'a>> {
    Ok(match dtype {
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

/// `similarityMatrix` with a compact corpus.
#[napi(js_name = "similarityMatrixQ")]
#[allow(clippy::too_many_arguments)]
pub fn similarity_matrix_q<'e>(
    env: &'e Env,
    q: &[f32],
    q_rows: f64,
    half: &[u16],
    int8: &[i8],
    c_rows: f64,
    cols: f64,
    dtype: u32,
    scale: f64,
    scales: &[f32],
    metric: u32,
    precision: Option<u32>,
) -> napi::Result<Float32ArraySlice<'e>> {
    const F: &str = "similarityMatrix";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    // Argument errors first, then the size of the result, which is computed in place.
    let (c, metric, len) = guard(F, || {
        let c = corpus(F, half, int8, dtype, scale, scales)?;
        let m = Metric::from_code(F, metric)?;
        check_matrix(F, "q", q, qr, d)?;
        qz::check_corpus(F, &c, cr, d)?;
        Ok((c, m, alloc::elems(F, SIM_WHAT, &[qr, cr], 4, SIM_HINT)?))
    })?;
    typed_with(env, F, SIM_WHAT, SIM_HINT, len, |out| {
        guard(F, || {
            with_precision(Precision::from_code(F, precision)?, || {
                qz::similarity_matrix_q_into(q, qr, &c, cr, d, metric, out)
            })
        })
    })
}

/// Async twin of `similarityMatrixQ` (inputs are copied first).
#[napi(
    js_name = "similarityMatrixQAsync",
    ts_return_type = "Promise<Float32Array>"
)]
#[allow(clippy::too_many_arguments)]
pub fn similarity_matrix_q_async(
    q: &[f32],
    q_rows: f64,
    half: &[u16],
    int8: &[i8],
    c_rows: f64,
    cols: f64,
    dtype: u32,
    scale: f64,
    scales: &[f32],
    metric: u32,
    precision: Option<u32>,
) -> napi::Result<AsyncTask<Job<Vec<f32>>>> {
    const F: &str = "similarityMatrixAsync";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    let (q, half, int8, scales) = (
        copy(F, "q", q)?,
        copy(F, "half", half)?,
        copy(F, "int8", int8)?,
        copy(F, "scales", scales)?,
    );
    Ok(Job::new(F, move || {
        let c = corpus(F, &half, &int8, dtype, scale, &scales)?;
        let m = Metric::from_code(F, metric)?;
        with_precision(Precision::from_code(F, precision)?, || {
            qz::similarity_matrix_q(&q, qr, &c, cr, d, m)
        })
    }))
}

/// `topK` with a compact corpus.
#[napi(js_name = "topKQ")]
#[allow(clippy::too_many_arguments)]
pub fn top_k_q<'e>(
    env: &'e Env,
    q: &[f32],
    q_rows: f64,
    half: &[u16],
    int8: &[i8],
    c_rows: f64,
    cols: f64,
    dtype: u32,
    scale: f64,
    scales: &[f32],
    k: f64,
    metric: u32,
    precision: Option<u32>,
) -> napi::Result<TopKResult<'e>> {
    const F: &str = "topK";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    let kk = to_usize(F, "k", k)?;
    guard(F, || {
        let c = corpus(F, half, int8, dtype, scale, scales)?;
        let m = Metric::from_code(F, metric)?;
        with_precision(Precision::from_code(F, precision)?, || {
            qz::top_k_q(q, qr, &c, cr, d, kk, m)
        })
    })?
    .into_js(env, F)
}

/// Async twin of `topKQ` (inputs are copied first).
#[napi(js_name = "topKQAsync", ts_return_type = "Promise<TopKResult>")]
#[allow(clippy::too_many_arguments)]
pub fn top_k_q_async(
    q: &[f32],
    q_rows: f64,
    half: &[u16],
    int8: &[i8],
    c_rows: f64,
    cols: f64,
    dtype: u32,
    scale: f64,
    scales: &[f32],
    k: f64,
    metric: u32,
    precision: Option<u32>,
) -> napi::Result<AsyncTask<Job<TopK>>> {
    const F: &str = "topKAsync";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    let kk = to_usize(F, "k", k)?;
    let (q, half, int8, scales) = (
        copy(F, "q", q)?,
        copy(F, "half", half)?,
        copy(F, "int8", int8)?,
        copy(F, "scales", scales)?,
    );
    Ok(Job::new(F, move || {
        let c = corpus(F, &half, &int8, dtype, scale, &scales)?;
        let m = Metric::from_code(F, metric)?;
        with_precision(Precision::from_code(F, precision)?, || {
            qz::top_k_q(&q, qr, &c, cr, d, kk, m)
        })
    }))
}
