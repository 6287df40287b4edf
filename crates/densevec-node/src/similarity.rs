//! Bindings of chapter 1: similarity geometry.

use crate::common::{guard, to_usize, IntoJs, Job};
use densevec_core::similarity::{self as sim, Metric};
use densevec_core::topk;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Σ a_k b_k.
#[napi]
pub fn dot(a: &[f32], b: &[f32]) -> napi::Result<f64> {
    guard("dot", || sim::dot(a, b)).map(|v| v as f64)
}

/// Cosine similarity; 0 when either norm is 0.
#[napi]
pub fn cosine(a: &[f32], b: &[f32]) -> napi::Result<f64> {
    guard("cosine", || sim::cosine(a, b)).map(|v| v as f64)
}

/// Squared Euclidean distance.
#[napi(js_name = "l2sq")]
pub fn l2sq(a: &[f32], b: &[f32]) -> napi::Result<f64> {
    guard("l2sq", || sim::l2sq(a, b)).map(|v| v as f64)
}

/// Euclidean norm.
#[napi]
pub fn norm(a: &[f32]) -> f64 {
    sim::norm(a) as f64
}

/// New unit vector (zero stays zero).
#[napi]
pub fn normalize(a: &[f32]) -> Float32Array {
    let mut v = a.to_vec();
    sim::normalize_inplace(&mut v);
    Float32Array::new(v)
}

/// Normalizes each `cols`-wide row of `x` in place.
#[napi]
pub fn normalize_in_place(mut x: Float32ArraySlice, cols: f64) -> napi::Result<()> {
    // SAFETY: the JS typed array is alive for this synchronous call and nothing else touches it.
    normalize_rows_checked(unsafe { x.as_mut() }, cols)
}

fn normalize_rows_checked(x: &mut [f32], cols: f64) -> napi::Result<()> {
    let cols = to_usize("normalizeInPlace", "cols", cols)?;
    if cols == 0 || x.len() % cols != 0 {
        return Err(crate::common::err(
            densevec_core::Code::Shape,
            format!("normalizeInPlace: data.length {} is not a multiple of cols {cols}", x.len()),
        ));
    }
    sim::normalize_rows_inplace(x, cols);
    Ok(())
}

/// New buffer with unit rows.
#[napi]
pub fn normalize_rows(data: &[f32], cols: f64) -> napi::Result<Float32Array> {
    let mut v = data.to_vec();
    normalize_rows_checked(&mut v, cols)?;
    Ok(Float32Array::new(v))
}

/// Row-major q.rows × c.rows similarity; metric 0 dot, 1 cosine, 2 l2sq.
#[napi]
pub fn similarity_matrix(q: &[f32], q_rows: f64, c: &[f32], c_rows: f64, cols: f64, metric: u32) -> napi::Result<Float32Array> {
    const F: &str = "similarityMatrix";
    let (qr, cr, d) = (to_usize(F, "q.rows", q_rows)?, to_usize(F, "c.rows", c_rows)?, to_usize(F, "cols", cols)?);
    guard(F, || sim::similarity_matrix(q, qr, c, cr, d, Metric::from_code(F, metric)?)).map(Float32Array::new)
}

/// Async twin of `similarityMatrix` (inputs are copied first).
#[napi(ts_return_type = "Promise<Float32Array>")]
pub fn similarity_matrix_async(q: &[f32], q_rows: f64, c: &[f32], c_rows: f64, cols: f64, metric: u32) -> napi::Result<AsyncTask<Job<Vec<f32>>>> {
    const F: &str = "similarityMatrixAsync";
    let (qr, cr, d) = (to_usize(F, "q.rows", q_rows)?, to_usize(F, "c.rows", c_rows)?, to_usize(F, "cols", cols)?);
    let (q, c) = (q.to_vec(), c.to_vec());
    Ok(Job::new(F, move || sim::similarity_matrix(&q, qr, &c, cr, d, Metric::from_code(F, metric)?)))
}

/// Top-k result: `q.rows × k` row-major, best first per query.
#[napi(object)]
pub struct TopKResult {
    pub indices: Uint32Array,
    pub scores: Float32Array,
}

impl IntoJs for topk::TopK {
    type Js = TopKResult;
    fn into_js(self, _env: &Env) -> napi::Result<TopKResult> {
        Ok(TopKResult { indices: Uint32Array::new(self.indices), scores: Float32Array::new(self.scores) })
    }
}

/// Exact top-k per query row; metric 0 dot, 1 cosine, 2 l2sq.
#[napi]
pub fn top_k(env: Env, q: &[f32], q_rows: f64, c: &[f32], c_rows: f64, cols: f64, k: f64, metric: u32) -> napi::Result<TopKResult> {
    const F: &str = "topK";
    let (qr, cr, d, kk) = (to_usize(F, "q.rows", q_rows)?, to_usize(F, "c.rows", c_rows)?, to_usize(F, "cols", cols)?, to_usize(F, "k", k)?);
    guard(F, || topk::top_k(q, qr, c, cr, d, kk, Metric::from_code(F, metric)?))?.into_js(&env)
}

/// Async twin of `topK` (inputs are copied first).
#[napi(ts_return_type = "Promise<TopKResult>")]
pub fn top_k_async(q: &[f32], q_rows: f64, c: &[f32], c_rows: f64, cols: f64, k: f64, metric: u32) -> napi::Result<AsyncTask<Job<topk::TopK>>> {
    const F: &str = "topKAsync";
    let (qr, cr, d, kk) = (to_usize(F, "q.rows", q_rows)?, to_usize(F, "c.rows", c_rows)?, to_usize(F, "cols", cols)?, to_usize(F, "k", k)?);
    let (q, c) = (q.to_vec(), c.to_vec());
    Ok(Job::new(F, move || topk::top_k(&q, qr, &c, cr, d, kk, Metric::from_code(F, metric)?)))
}
