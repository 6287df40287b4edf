//! Shared plumbing of the bindings: error mapping, panic containment, async tasks.
//!
//! Every error crosses into JavaScript as a plain `Error` whose message is `CODE|text`; the
//! TypeScript layer turns it into a `DensevecError` with `code = CODE`. Panics are caught and
//! reported as errors, never unwound into Node.

use densevec_core::{Code, Error as CoreError};
use napi::bindgen_prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Maps a core error to a napi error carrying `CODE|message`.
pub fn to_napi(e: CoreError) -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        format!("{}|{}", e.code.as_str(), e.msg),
    )
}

/// A napi error with a code.
pub fn err(code: Code, msg: impl Into<String>) -> napi::Error {
    to_napi(CoreError::new(code, msg))
}

/// Runs `f`, converting a core error or a panic into a napi error.
pub fn guard<T>(func: &str, f: impl FnOnce() -> densevec_core::Result<T>) -> napi::Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_napi(e)),
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(napi::Error::new(
                Status::GenericFailure,
                format!("E_INTERNAL|{func}: internal error: {what}"),
            ))
        }
    }
}

/// Converts a JS number that must be a non-negative integer into usize.
pub fn to_usize(func: &str, name: &str, v: f64) -> napi::Result<usize> {
    if v.is_nan() || v < 0.0 || v.fract() != 0.0 || v > 9.007_199_254_740_991e15 {
        return Err(err(
            Code::Type,
            format!("{func}: {name} must be a non-negative integer, got {v}"),
        ));
    }
    Ok(v as usize)
}

/// Converts the `(q.rows, c.rows, cols)` numbers of a batched query × corpus call.
pub fn batch_dims(
    func: &str,
    q_rows: f64,
    c_rows: f64,
    cols: f64,
) -> napi::Result<(usize, usize, usize)> {
    Ok((
        to_usize(func, "q.rows", q_rows)?,
        to_usize(func, "c.rows", c_rows)?,
        to_usize(func, "cols", cols)?,
    ))
}

/// A value computed off the event loop and turned into a JS value on it.
pub trait IntoJs: Send + 'static {
    type Js: ToNapiValue + TypeName;
    fn into_js(self, env: &Env) -> napi::Result<Self::Js>;
}

impl IntoJs for Vec<f32> {
    type Js = Float32Array;
    fn into_js(self, _env: &Env) -> napi::Result<Float32Array> {
        Ok(Float32Array::new(self))
    }
}

/// A boxed computation run on the libuv pool by `AsyncTask`. Inputs are owned copies taken on
/// the calling thread, so a caller may mutate or detach its buffers while the task runs.
pub struct Job<T: IntoJs> {
    name: &'static str,
    f: Option<Box<dyn FnOnce() -> densevec_core::Result<T> + Send>>,
}

impl<T: IntoJs> Job<T> {
    pub fn new(
        name: &'static str,
        f: impl FnOnce() -> densevec_core::Result<T> + Send + 'static,
    ) -> AsyncTask<Job<T>> {
        AsyncTask::new(Job {
            name,
            f: Some(Box::new(f)),
        })
    }
}

impl<T: IntoJs> Task for Job<T> {
    type Output = T;
    type JsValue = T::Js;

    fn compute(&mut self) -> napi::Result<T> {
        let f = self.f.take().ok_or_else(|| {
            napi::Error::new(
                Status::GenericFailure,
                format!("E_INTERNAL|{}: task ran twice", self.name),
            )
        })?;
        guard(self.name, f)
    }

    fn resolve(&mut self, env: Env, output: T) -> napi::Result<T::Js> {
        output.into_js(&env)
    }
}
