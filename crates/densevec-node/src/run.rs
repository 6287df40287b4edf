//! The one runner of every operation: synchronously on the calling thread, as a task on the
//! libuv pool, or on the GPU.
//!
//! An operation is its argument struct (a `#[napi(object)]` of typed arrays, numbers and
//! string enums) implementing [`Op`]. Its entry point is one line:
//! `run(env, args, how)`. The runner
//! - `how.mode = 'async'`: copies every input buffer first ([`Op::detach`], fallibly; the caller
//!   may change its buffers as soon as the call returns), then computes on the pool;
//! - `how.mode = 'sync'`: on the GPU when the operation has a GPU form for these arguments
//!   ([`Op::gpu_work`]) and `how.device` asks for it — `'gpu'` (the `cuda` backend: GPU errors
//!   are the caller's) or `'auto'` (only when the work reaches `how.minWork`; a GPU error falls
//!   back to the CPU silently) —, else on the CPU ([`Op::sync`], borrowing the caller's memory).

use crate::common::{copy, guard, to_napi, IntoJs};
use densevec_core::Result;
use napi::bindgen_prelude::*;
use napi::ScopedTask;
use napi_derive::napi;

/// Where a call computes: now on the calling thread, or on the libuv pool (a Promise).
#[napi(string_enum = "lowercase")]
pub enum Mode {
    Sync,
    Async,
}

/// Which device a synchronous call may use (the asynchronous forms always run on the CPU).
#[napi(string_enum = "lowercase")]
pub enum Device {
    /// The CPU only.
    Cpu,
    /// The GPU whenever the operation has a GPU form for the arguments; its errors are thrown.
    Gpu,
    /// The GPU when the call's work reaches `minWork`, falling back to the CPU on any GPU error.
    Auto,
}

/// How to run a call: the second argument of every entry point.
#[napi(object)]
pub struct How {
    pub mode: Mode,
    /// 'cpu' when absent.
    pub device: Option<Device>,
    /// The work (multiply-adds) from which 'auto' uses the GPU; never when absent.
    pub min_work: Option<f64>,
}

/// The argument struct of an operation: its names, its result, and how it is detached from
/// the caller's memory. Written by [`operation!`], never by hand.
pub trait Args: Send + Sized + 'static {
    /// What it computes, turned into a JavaScript value on the main thread.
    type Out: IntoJs;
    /// The public name of the synchronous form (errors name it).
    const NAME: &'static str;
    /// The public name of the asynchronous form.
    const ASYNC: &'static str;

    /// The same arguments over owned copies of every input buffer (made fallibly, each named
    /// in a refused allocation), so that the operation can run after the call returns.
    fn detach(self, func: &str) -> napi::Result<Self>;

    /// The same arguments with their index arrays (`Uint32Array`: labels, positives, sources)
    /// copied, for a synchronous call: an index is checked and then used, and a caller's
    /// SharedArrayBuffer changed by another thread in between must not turn a checked index
    /// into an out-of-range one. Float data is read where it is.
    fn pin(self, func: &str) -> napi::Result<Self>;
}

/// One operation of the binding: what its arguments compute, on the CPU and on the GPU.
pub trait Op: Args {
    /// Computes on the CPU; `func` names the call in errors.
    fn cpu(&self, func: &str) -> Result<Self::Out>;

    /// Computes synchronously on the CPU into JavaScript values (the default: [`Op::cpu`], then
    /// its result copied into V8-owned buffers; an operation with a large result computes it
    /// in the returned buffer instead).
    fn sync<'e>(&self, env: &'e Env, func: &str) -> napi::Result<<Self::Out as IntoJs>::Js<'e>> {
        guard(func, || self.cpu(func))?.into_js(env, func)
    }

    /// The work of the GPU form for these arguments (the multiply-adds of its GEMMs), or `None`
    /// when there is no GPU form or it does not take these arguments (they then run on the CPU).
    fn gpu_work(&self) -> Option<f64> {
        None
    }

    /// Bytes the GPU form moves between host and device for these arguments, when that is
    /// large against its work (similarity and top-k: the corpus); 0 for compute-bound forms.
    /// The `'auto'` backend weighs it against the work (`densevec_cuda::auto_takes_gpu`).
    fn gpu_bytes(&self) -> f64 {
        0.0
    }

    /// Computes on the GPU (called only when [`Op::gpu_work`] is `Some`).
    fn gpu(&self, func: &str) -> Result<Self::Out> {
        Err(densevec_core::Error::new(
            densevec_core::Code::Backend,
            format!("{func}: no GPU form"),
        ))
    }
}

/// The asynchronous form of an operation, run by napi-rs's `AsyncTask`.
pub struct Task<O: Op>(O);

impl<'task, O: Op> ScopedTask<'task> for Task<O> {
    type Output = O::Out;
    type JsValue = <O::Out as IntoJs>::Js<'task>;

    fn compute(&mut self) -> napi::Result<O::Out> {
        guard(O::ASYNC, || self.0.cpu(O::ASYNC))
    }

    fn resolve(&mut self, env: &'task Env, output: O::Out) -> napi::Result<Self::JsValue> {
        crate::common::serial_copies(|| output.into_js(env, O::ASYNC))
    }
}

/// What an entry point returns: the value (mode 'sync') or a Promise of it (mode 'async').
pub type Ret<'e, O> = Either<<<O as Args>::Out as IntoJs>::Js<'e>, AsyncTask<Task<O>>>;

/// Declares an operation on its argument struct: `impl Args` (the typed-array fields listed
/// with the names their copies carry are copied by `detach`, the other fields moved) and its
/// entry point, which runs it as `how` says. The struct's `impl Op` holds the computation.
///
/// `operation!(entry = "jsName", Struct { field: "name", … } -> Out, "TsOut");`
macro_rules! operation {
    ($(#[$doc:meta])* $entry:ident = $js:tt, $args:ident { $($buf:ident: $name:tt),* } -> $out:ty, $ts:tt) => {
        impl $crate::run::Args for $args {
            type Out = $out;
            const NAME: &'static str = $js;
            const ASYNC: &'static str = concat!($js, "Async");
            // `..self` moves the fields that are not buffers (none, for some operations).
            #[allow(clippy::needless_update)]
            fn detach(self, _func: &str) -> napi::Result<Self> {
                #[allow(unused_imports)]
                use $crate::run::Own;
                Ok(Self { $($buf: self.$buf.own(_func, $name)?,)* ..self })
            }
            #[allow(clippy::needless_update)]
            fn pin(self, _func: &str) -> napi::Result<Self> {
                #[allow(unused_imports)]
                use $crate::run::Pin;
                Ok(Self { $($buf: self.$buf.pin(_func, $name)?,)* ..self })
            }
        }

        $(#[$doc])*
        #[napi(js_name = $js, ts_return_type = $ts)]
        pub fn $entry<'e>(
            env: &'e Env,
            args: $args,
            how: $crate::run::How,
        ) -> napi::Result<$crate::run::Ret<'e, $args>> {
            $crate::run::run(env, args, how)
        }
    };
}
pub(crate) use operation;

/// Runs `op` as `how` says (see the module documentation).
pub fn run<'e, O: Op>(env: &'e Env, op: O, how: How) -> napi::Result<Ret<'e, O>> {
    if let Mode::Async = how.mode {
        // The copies read the caller's buffers (a mapped corpus among them) now.
        let op = crate::mapguard::watch(O::ASYNC, || op.detach(O::ASYNC), to_napi)?;
        return Ok(Either::B(AsyncTask::new(Task(op))));
    }
    let f = O::NAME;
    let op = op.pin(f)?;
    // gpu_work may scan the inputs: asked only when a GPU is wanted.
    let gpu = match how.device {
        Some(Device::Gpu) => op.gpu_work().map(|_| true),
        Some(Device::Auto) => op
            .gpu_work()
            .filter(|&w| {
                how.min_work.is_some_and(|m| {
                    densevec_cuda::auto_takes_gpu(
                        w,
                        op.gpu_bytes(),
                        densevec_core::pool::threads(),
                        m,
                    )
                })
            })
            .map(|_| false),
        _ => None,
    };
    match gpu {
        Some(true) => return guard(f, || op.gpu(f))?.into_js(env, f).map(Either::A),
        Some(false) => {
            if let Ok(js) = guard(f, || op.gpu(f)).and_then(|v| v.into_js(env, f)) {
                return Ok(Either::A(js));
            }
        }
        None => {}
    }
    op.sync(env, f).map(Either::A)
}

/// Typed arrays (and optional ones) that an asynchronous call copies first.
pub trait Own: Sized {
    /// An owned copy (made fallibly; `name` names it in a refused allocation).
    fn own(&self, func: &str, name: &str) -> napi::Result<Self>;
}

macro_rules! own {
    ($($t:ty),*) => {$(
        impl Own for $t {
            fn own(&self, func: &str, name: &str) -> napi::Result<Self> {
                Ok(<$t>::new(copy(func, name, self).map_err(to_napi)?))
            }
        }
    )*};
}
own!(
    Float32Array,
    Float64Array,
    Uint32Array,
    Uint16Array,
    Uint8Array,
    Int8Array
);

impl<T: Own> Own for Option<T> {
    fn own(&self, func: &str, name: &str) -> napi::Result<Self> {
        self.as_ref().map(|a| a.own(func, name)).transpose()
    }
}

/// What a synchronous call copies first ([`Args::pin`]): index arrays only.
pub trait Pin: Sized {
    /// This value, or an owned copy of it (made fallibly) when it holds indices.
    fn pin(self, func: &str, name: &str) -> napi::Result<Self>;
}

macro_rules! pin_as_is {
    ($($t:ty),*) => {$(
        impl Pin for $t {
            fn pin(self, _func: &str, _name: &str) -> napi::Result<Self> {
                Ok(self)
            }
        }
    )*};
}
pin_as_is!(
    Float32Array,
    Float64Array,
    Uint16Array,
    Uint8Array,
    Int8Array,
    crate::args::Mat,
    crate::args::CorpusArg
);

impl Pin for Uint32Array {
    fn pin(self, func: &str, name: &str) -> napi::Result<Self> {
        self.own(func, name)
    }
}

impl<T: Pin> Pin for Option<T> {
    fn pin(self, func: &str, name: &str) -> napi::Result<Self> {
        self.map(|a| a.pin(func, name)).transpose()
    }
}
