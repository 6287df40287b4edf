//! Bindings of chapter 1: similarity geometry.

use crate::args::{is_bf16, precision, CorpusArg, Mat, MetricName, PrecisionName};
use crate::common::js_result;
use crate::common::{fits_typed, guard, to_napi, typed_filled, SPLIT};
use crate::run::{operation, Op};
use densevec_core::alloc;
use densevec_core::error::check_matrix;
use densevec_core::precision::with_precision;
use densevec_core::quantized::{self as qz, Corpus};
use densevec_core::similarity as sim;
use densevec_core::topk::{self, Select};
use densevec_core::view::dim;
use napi::bindgen_prelude::*;
use napi_derive::napi;

js_result!(
    /// Top-k result: `q.rows × k` row-major, best first per query (also the answers of `analogy`).
    TopKResult from topk::TopK {
        ;
        indices: Uint32ArraySlice = "the indices", scores: Float32ArraySlice = "the scores";

    }
);

/// Euclidean norm.
#[napi]
pub fn norm(a: &[f32]) -> napi::Result<f64> {
    crate::mapguard::watch("norm", || Ok(sim::norm64(a)), to_napi)
}

/// New unit vector (zero stays zero), computed in the returned buffer.
#[napi]
pub fn normalize<'e>(env: &'e Env, a: &[f32]) -> napi::Result<Float32ArraySlice<'e>> {
    typed_filled(env, "normalize", "the result", SPLIT, a.len(), |s| {
        s.copy_from_slice(a);
        sim::normalize_inplace(s);
        Ok(())
    })
}

/// Normalizes each row of `x` in place (a vector is one row).
#[napi]
pub fn normalize_in_place(mut x: Mat) -> napi::Result<()> {
    const F: &str = "normalizeInPlace";
    let cols = guard(F, || x.view(F, "x").map(|v| v.cols))?;
    // SAFETY: the JS typed array is alive for this synchronous call and nothing else touches it.
    let x = unsafe { x.data.as_mut() };
    crate::mapguard::watch(
        F,
        || {
            sim::normalize_rows_inplace(x, cols);
            Ok(())
        },
        to_napi,
    )
}

/// New buffer with the rows of `m` scaled to unit length, computed in the returned buffer.
#[napi]
pub fn normalize_rows<'e>(env: &'e Env, m: Mat) -> napi::Result<Float32ArraySlice<'e>> {
    const F: &str = "normalizeRows";
    let v = guard(F, || m.view(F, "m"))?;
    typed_filled(env, F, "the result", SPLIT, v.data.len(), |s| {
        s.copy_from_slice(v.data);
        sim::normalize_rows_inplace(s, v.cols);
        Ok(())
    })
}

/// What the similarity matrix is called in a refused allocation, and the way out.
pub(crate) const SIM_WHAT: &str = "the q.rows × c.rows similarity matrix";
pub(crate) const SIM_HINT: &str = "use topK for nearest neighbours, or split the batch";

/// The arguments of `similarityMatrix`: q.rows × c.rows similarities of the rows of `q` and
/// the rows of `c` (a corpus in any storage type).
#[napi(object, object_to_js = false)]
pub struct SimilarityMatrixArgs {
    pub q: Mat,
    pub c: CorpusArg,
    pub metric: MetricName,
    /// GEMM precision: 'f32' (default) or 'bf16'.
    pub precision: Option<PrecisionName>,
}

impl Op for SimilarityMatrixArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<Vec<f32>> {
        with_precision(precision(self.precision), || {
            let ((qr, d), cr, m) = (
                self.q.dims(func, "q")?,
                self.c.rows(func)?,
                self.metric.into(),
            );
            if qr.checked_mul(d) == Some(self.q.data.len()) {
                fits_typed(func, SIM_WHAT, SIM_HINT, &[qr, cr])?;
            }
            match self.c.dense() {
                Some(c) => sim::similarity_matrix(&self.q.data, qr, c, cr, d, m),
                None => qz::similarity_matrix_q(&self.q.data, qr, &self.c.corpus(func)?, cr, d, m),
            }
        })
    }

    /// Argument errors first, then the size of the result, which is computed in place.
    fn sync<'e>(&self, env: &'e Env, func: &str) -> napi::Result<Float32ArraySlice<'e>> {
        let ((qr, d), cr, m) = guard(func, || {
            Ok((
                self.q.dims(func, "q")?,
                self.c.rows(func)?,
                self.metric.into(),
            ))
        })?;
        let (q, c) = (&self.q.data[..], guard(func, || self.c.corpus(func))?);
        let len = guard(func, || {
            check_matrix(func, "q", q, qr, d)?;
            match c {
                Corpus::F32(c) => check_matrix(func, "c", c, cr, d)?,
                _ => qz::check_corpus(func, &c, cr, d)?,
            }
            alloc::elems(func, SIM_WHAT, &[qr, cr], 4, SIM_HINT)
        })?;
        typed_filled(env, func, SIM_WHAT, SIM_HINT, len, |out| {
            guard(func, || {
                with_precision(precision(self.precision), || match c {
                    Corpus::F32(c) => sim::similarity_matrix_into(q, qr, c, cr, d, m, out),
                    _ => qz::similarity_matrix_q_into(q, qr, &c, cr, d, m, out),
                })
            })
        })
    }

    fn gpu_work(&self) -> Option<f64> {
        if is_bf16(self.precision) {
            return None;
        }
        self.c.dense()?;
        Some(self.q.rows * self.c.rows * self.q.cols)
    }

    /// Both inputs up, the q.rows × c.rows matrix back.
    fn gpu_bytes(&self) -> f64 {
        4.0 * ((self.q.rows + self.c.rows) * self.q.cols + self.q.rows * self.c.rows)
    }

    fn gpu(&self, func: &str) -> densevec_core::Result<Vec<f32>> {
        let ((qr, d), cr) = (self.q.dims(func, "q")?, self.c.rows(func)?);
        let c = self.c.dense().unwrap_or_default();
        densevec_cuda::similarity_matrix(&self.q.data, qr, c, cr, d, self.metric.into())
    }
}

operation!(
    /// q.rows × c.rows similarity matrix (row-major), now or as a Promise (`how`).
    similarity_matrix = "similarityMatrix",
    SimilarityMatrixArgs { q: "q", c: "c" } -> Vec<f32>,
    "Float32Array | Promise<Float32Array>"
);

/// The arguments of `topK`: the `k` best corpus rows per query, over a corpus in any storage
/// type, optionally restricted by `skip` (one corpus row per query, 0xFFFFFFFF = none) and
/// `mask` (one entry per corpus row, 0 = ineligible).
#[napi(object, object_to_js = false)]
pub struct TopKArgs {
    pub q: Mat,
    pub c: CorpusArg,
    pub k: f64,
    pub metric: MetricName,
    pub skip: Option<Uint32Array>,
    pub mask: Option<Uint8Array>,
    /// GEMM precision: 'f32' (default) or 'bf16'.
    pub precision: Option<PrecisionName>,
}

impl Op for TopKArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<topk::TopK> {
        with_precision(precision(self.precision), || {
            let ((qr, d), cr) = (self.q.dims(func, "q")?, self.c.rows(func)?);
            let (kk, m, q) = (
                dim(func, "k", self.k)?,
                self.metric.into(),
                &self.q.data[..],
            );
            if self.skip.is_some() || self.mask.is_some() {
                let sel = Select {
                    skip: self.skip.as_deref(),
                    mask: self.mask.as_deref(),
                };
                let c = self.c.corpus(func)?;
                return topk::top_k_filtered(sim::Batch::new(q, qr, c, cr, d, m), kk, sel);
            }
            match self.c.dense() {
                Some(c) => topk::top_k(q, qr, c, cr, d, kk, m),
                None => qz::top_k_q(q, qr, &self.c.corpus(func)?, cr, d, kk, m),
            }
        })
    }

    /// The GPU top-k takes float32 corpora without filters and k ≤ 128.
    fn gpu_work(&self) -> Option<f64> {
        if is_bf16(self.precision) {
            return None;
        }
        self.c.dense()?;
        let small_k = self.k <= densevec_cuda::KMAX as f64;
        (self.skip.is_none() && self.mask.is_none() && small_k)
            .then_some(self.q.rows * self.c.rows * self.q.cols)
    }

    /// Both inputs up (the corpus dominates: top-k does q.rows multiply-adds per corpus value).
    fn gpu_bytes(&self) -> f64 {
        4.0 * (self.q.rows + self.c.rows) * self.q.cols
    }

    fn gpu(&self, func: &str) -> densevec_core::Result<topk::TopK> {
        let ((qr, d), cr) = (self.q.dims(func, "q")?, self.c.rows(func)?);
        let c = self.c.dense().unwrap_or_default();
        let (kk, m) = (dim(func, "k", self.k)?, self.metric.into());
        densevec_cuda::top_k(&self.q.data, qr, c, cr, d, kk, m)
    }
}

operation!(
    /// Exact top-k per query row, now or as a Promise (`how`).
    top_k = "topK",
    TopKArgs { q: "q", c: "c", skip: "skip", mask: "mask" } -> topk::TopK,
    "TopKResult | Promise<TopKResult>"
);

/// Largest k that the GPU top-k takes (larger k run on the CPU).
#[napi]
pub fn cuda_top_k_max() -> u32 {
    densevec_cuda::KMAX as u32
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
    let st = sys::napi_get_cb_info(
        env,
        info,
        &mut argc,
        argv.as_mut_ptr(),
        ptr::null_mut(),
        &mut data,
    );
    let name = match data as usize {
        OP_DOT => "dot",
        OP_COSINE => "cosine",
        _ => "l2sq",
    };
    if st != sys::Status::napi_ok || argc < 2 {
        let msg = format!("E_TYPE|{name}: expected two Float32Arrays");
        return throw(env, &msg);
    }
    let (a, b) = match (f32_view(env, argv[0]), f32_view(env, argv[1])) {
        (Some(a), Some(b)) if a.len() == b.len() => (a, b),
        _ => {
            let msg = format!("E_TYPE|{name}: expected two Float32Arrays of equal length");
            return throw(env, &msg);
        }
    };
    // Over the whole float32 range: float64 where float32 sums would over- or underflow.
    let v = crate::mapguard::watch(
        name,
        || {
            Ok(match data as usize {
                OP_DOT => sim::dot_pair(a, b),
                OP_COSINE => sim::cosine_pair(a, b),
                _ => sim::l2sq_pair(a, b),
            })
        },
        |e| format!("{}|{}", e.code.as_str(), e.msg),
    );
    let v = match v {
        Ok(v) => v,
        Err(msg) => return throw(env, &msg),
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
