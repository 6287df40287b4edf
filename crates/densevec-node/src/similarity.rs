//! Bindings of chapter 1: similarity geometry.

use crate::common::{batch_dims, copy, guard, to_usize, typed, typed_with, IntoJs, Job, SPLIT};
use densevec_core::error::check_matrix;
use densevec_core::precision::{with_precision, Precision};
use densevec_core::similarity::{self as sim, Metric};
use densevec_core::{alloc, topk};
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
    sim::norm64(a)
}

/// New unit vector (zero stays zero), computed in the returned buffer.
#[napi]
pub fn normalize<'e>(env: &'e Env, a: &[f32]) -> napi::Result<Float32ArraySlice<'e>> {
    typed_with(env, "normalize", "the result", SPLIT, a.len(), |s| {
        s.copy_from_slice(a);
        sim::normalize_inplace(s);
        Ok(())
    })
}

/// Normalizes each `cols`-wide row of `x` in place.
#[napi]
pub fn normalize_in_place(mut x: Float32ArraySlice, cols: f64) -> napi::Result<()> {
    // SAFETY: the JS typed array is alive for this synchronous call and nothing else touches it.
    normalize_rows_checked(unsafe { x.as_mut() }, cols)
}

fn normalize_rows_checked(x: &mut [f32], cols: f64) -> napi::Result<()> {
    let cols = check_cols("normalizeInPlace", x.len(), cols)?;
    sim::normalize_rows_inplace(x, cols);
    Ok(())
}

fn check_cols(func: &str, len: usize, cols: f64) -> napi::Result<usize> {
    let cols = to_usize(func, "cols", cols)?;
    if cols == 0 || !len.is_multiple_of(cols) {
        return Err(crate::common::err(
            densevec_core::Code::Shape,
            format!("{func}: data.length {len} is not a multiple of cols {cols}"),
        ));
    }
    Ok(cols)
}

/// New buffer with unit rows, computed in the returned buffer.
#[napi]
pub fn normalize_rows<'e>(
    env: &'e Env,
    data: &[f32],
    cols: f64,
) -> napi::Result<Float32ArraySlice<'e>> {
    const F: &str = "normalizeRows";
    let cols = check_cols(F, data.len(), cols)?;
    typed_with(env, F, "the result", SPLIT, data.len(), |s| {
        s.copy_from_slice(data);
        sim::normalize_rows_inplace(s, cols);
        Ok(())
    })
}

/// Row-major q.rows × c.rows similarity; metric 0 dot, 1 cosine, 2 l2sq; precision 0 f32
/// (default), 1 bf16.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn similarity_matrix<'e>(
    env: &'e Env,
    q: &[f32],
    q_rows: f64,
    c: &[f32],
    c_rows: f64,
    cols: f64,
    metric: u32,
    precision: Option<u32>,
) -> napi::Result<Float32ArraySlice<'e>> {
    const F: &str = "similarityMatrix";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    // Argument errors first, then the size of the result, which is computed in place.
    let (metric, len) = guard(F, || {
        let m = Metric::from_code(F, metric)?;
        check_matrix(F, "q", q, qr, d)?;
        check_matrix(F, "c", c, cr, d)?;
        Ok((m, alloc::elems(F, SIM_WHAT, &[qr, cr], 4, SIM_HINT)?))
    })?;
    typed_with(env, F, SIM_WHAT, SIM_HINT, len, |out| {
        guard(F, || {
            with_precision(Precision::from_code(F, precision)?, || {
                sim::similarity_matrix_into(q, qr, c, cr, d, metric, out)
            })
        })
    })
}

/// What the similarity matrix is called in a refused allocation, and the way out.
pub(crate) const SIM_WHAT: &str = "the q.rows × c.rows similarity matrix";
pub(crate) const SIM_HINT: &str = "use topK for nearest neighbours, or split the batch";

/// Async twin of `similarityMatrix` (inputs are copied first).
#[napi(ts_return_type = "Promise<Float32Array>")]
pub fn similarity_matrix_async(
    q: &[f32],
    q_rows: f64,
    c: &[f32],
    c_rows: f64,
    cols: f64,
    metric: u32,
    precision: Option<u32>,
) -> napi::Result<AsyncTask<Job<Vec<f32>>>> {
    const F: &str = "similarityMatrixAsync";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    let (q, c) = (copy(F, "q", q)?, copy(F, "c", c)?);
    Ok(Job::new(F, move || {
        let m = Metric::from_code(F, metric)?;
        with_precision(Precision::from_code(F, precision)?, || {
            sim::similarity_matrix(&q, qr, &c, cr, d, m)
        })
    }))
}

/// Top-k result: `q.rows × k` row-major, best first per query.
#[napi(object, object_from_js = false)]
pub struct TopKResult<'e> {
    pub indices: Uint32ArraySlice<'e>,
    pub scores: Float32ArraySlice<'e>,
}

impl IntoJs for topk::TopK {
    type Js<'e> = TopKResult<'e>;
    fn into_js<'e>(self, env: &'e Env, func: &str) -> napi::Result<TopKResult<'e>> {
        Ok(TopKResult {
            indices: typed(env, func, "the indices", &self.indices)?,
            scores: typed(env, func, "the scores", &self.scores)?,
        })
    }
}

/// Exact top-k per query row; metric 0 dot, 1 cosine, 2 l2sq.
#[allow(clippy::too_many_arguments)]
#[napi]
pub fn top_k<'e>(
    env: &'e Env,
    q: &[f32],
    q_rows: f64,
    c: &[f32],
    c_rows: f64,
    cols: f64,
    k: f64,
    metric: u32,
    precision: Option<u32>,
) -> napi::Result<TopKResult<'e>> {
    const F: &str = "topK";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    let kk = to_usize(F, "k", k)?;
    guard(F, || {
        let m = Metric::from_code(F, metric)?;
        with_precision(Precision::from_code(F, precision)?, || {
            topk::top_k(q, qr, c, cr, d, kk, m)
        })
    })?
    .into_js(env, F)
}

/// Async twin of `topK` (inputs are copied first).
#[napi(ts_return_type = "Promise<TopKResult>")]
#[allow(clippy::too_many_arguments)]
pub fn top_k_async(
    q: &[f32],
    q_rows: f64,
    c: &[f32],
    c_rows: f64,
    cols: f64,
    k: f64,
    metric: u32,
    precision: Option<u32>,
) -> napi::Result<AsyncTask<Job<topk::TopK>>> {
    const F: &str = "topKAsync";
    let (qr, cr, d) = batch_dims(F, q_rows, c_rows, cols)?;
    let kk = to_usize(F, "k", k)?;
    let (q, c) = (copy(F, "q", q)?, copy(F, "c", c)?);
    Ok(Job::new(F, move || {
        let m = Metric::from_code(F, metric)?;
        with_precision(Precision::from_code(F, precision)?, || {
            topk::top_k(&q, qr, &c, cr, d, kk, m)
        })
    }))
}

// ---------------------------------------------------------------------------------------------
// Low-overhead single-pair entry points.
//
// A single-pair call at embedding sizes costs more in argument handling than in arithmetic.
// These raw callbacks skip napi-rs's generic conversions (references, per-argument validation,
// panic scaffolding for code that cannot panic): one `napi_get_cb_info`, one
// `napi_get_typedarray_info` per vector (data pointer and length only), the kernel, one
// `napi_create_double`. They are registered directly on the exports object as `dotFast`,
// `cosineFast`, `l2sqFast`; the TypeScript layer has validated types and lengths first.
// (Passing (ArrayBuffer, byteOffset) instead was measured no faster: reading `.buffer` in
// JavaScript costs what `napi_get_typedarray_info` saves.)

use napi::sys;
use std::ffi::c_void;
use std::ptr;

const OP_DOT: usize = 0;
const OP_COSINE: usize = 1;
const OP_L2SQ: usize = 2;

unsafe fn throw(env: sys::napi_env, msg: &str) -> sys::napi_value {
    let mut m = msg.as_bytes().to_vec();
    m.push(0);
    sys::napi_throw_error(env, ptr::null(), m.as_ptr() as *const _);
    ptr::null_mut()
}

/// Reads a Float32Array argument's data pointer and length (None if it is not one).
unsafe fn f32_view<'a>(env: sys::napi_env, v: sys::napi_value) -> Option<&'a [f32]> {
    let mut ty: sys::napi_typedarray_type = 0;
    let mut len: usize = 0;
    let mut data: *mut c_void = ptr::null_mut();
    if sys::napi_get_typedarray_info(
        env,
        v,
        &mut ty,
        &mut len,
        &mut data,
        ptr::null_mut(),
        ptr::null_mut(),
    ) != sys::Status::napi_ok
        || ty != sys::TypedarrayType::float32_array
    {
        return None;
    }
    if len == 0 || data.is_null() {
        return Some(&[]);
    }
    Some(std::slice::from_raw_parts(data as *const f32, len))
}

unsafe extern "C" fn pair_typed(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let mut argc: usize = 2;
    let mut argv: [sys::napi_value; 2] = [ptr::null_mut(); 2];
    let mut data: *mut c_void = ptr::null_mut();
    if sys::napi_get_cb_info(
        env,
        info,
        &mut argc,
        argv.as_mut_ptr(),
        ptr::null_mut(),
        &mut data,
    ) != sys::Status::napi_ok
        || argc < 2
    {
        return throw(env, "E_TYPE|pair: expected two Float32Arrays");
    }
    let (a, b) = match (f32_view(env, argv[0]), f32_view(env, argv[1])) {
        (Some(a), Some(b)) if a.len() == b.len() => (a, b),
        _ => {
            return throw(
                env,
                "E_TYPE|pair: expected two Float32Arrays of equal length",
            )
        }
    };
    // Over the whole float32 range: float64 where float32 sums would over- or underflow.
    let v = match data as usize {
        OP_DOT => sim::dot_pair(a, b),
        OP_COSINE => sim::cosine_pair(a, b),
        _ => sim::l2sq_pair(a, b),
    };
    let mut out: sys::napi_value = ptr::null_mut();
    sys::napi_create_double(env, v, &mut out);
    out
}

/// Registers the raw pair functions on the exports object.
#[napi(module_exports)]
pub fn register_fast_pairs(exports: Object) -> napi::Result<()> {
    let env = exports.value().env;
    let obj = exports.raw();
    type Cb = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;
    let fns: [(&str, usize, Cb); 3] = [
        ("dotFast", OP_DOT, pair_typed),
        ("cosineFast", OP_COSINE, pair_typed),
        ("l2sqFast", OP_L2SQ, pair_typed),
    ];
    for (name, op, cb) in fns {
        let mut f: sys::napi_value = ptr::null_mut();
        // SAFETY: plain N-API calls on the module's env during registration.
        let st = unsafe {
            sys::napi_create_function(
                env,
                name.as_ptr() as *const _,
                name.len() as isize,
                Some(cb),
                op as *mut c_void,
                &mut f,
            )
        };
        if st != sys::Status::napi_ok {
            return Err(napi::Error::new(
                Status::GenericFailure,
                format!("could not create {name}"),
            ));
        }
        let cname = std::ffi::CString::new(name)
            .map_err(|e| napi::Error::new(Status::GenericFailure, e.to_string()))?;
        let st = unsafe { sys::napi_set_named_property(env, obj, cname.as_ptr(), f) };
        if st != sys::Status::napi_ok {
            return Err(napi::Error::new(
                Status::GenericFailure,
                format!("could not export {name}"),
            ));
        }
    }
    Ok(())
}
