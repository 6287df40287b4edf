//! Shared plumbing of the bindings: error mapping, panic containment, returned buffers (the
//! runner of every operation is `run.rs`).
//!
//! Every error crosses into JavaScript as a plain `Error` whose message is `CODE|text`; the
//! TypeScript layer turns it into a `DensevecError` with `code = CODE`. Panics are caught and
//! reported as errors, never unwound into Node.
//!
//! Every typed array returned to JavaScript is created here, in memory that V8 owns
//! (`napi_create_arraybuffer`), never as an external buffer over Rust memory: the finalizers of
//! external buffers run only when the event loop turns, so a synchronous loop of calls would
//! keep every result alive until it ends. V8-owned buffers are freed by the garbage collector
//! like any other, and their size counts toward its heuristics.

use densevec_core::{alloc, Code, Error as CoreError};
use napi::bindgen_prelude::*;
use napi::sys;
use rayon::prelude::*;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

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

/// Runs `f`, converting a core error or a panic into a napi error; a result computed while a
/// mapped corpus file was found shrunk is refused ([`crate::mapguard::watch`]).
pub fn guard<T>(func: &str, f: impl FnOnce() -> densevec_core::Result<T>) -> napi::Result<T> {
    crate::mapguard::watch(func, || contain(func, f), to_napi)
}

/// [`guard`] without the mapping watch.
fn contain<T>(func: &str, f: impl FnOnce() -> densevec_core::Result<T>) -> napi::Result<T> {
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

/// A fallible copy of an input (asynchronous calls copy theirs before queuing the work).
pub fn copy<T: Copy>(func: &str, name: &str, src: &[T]) -> densevec_core::Result<Vec<T>> {
    alloc::try_copy(func, &format!("a copy of {name}"), src)
}

/// Largest element count of a typed array that every supported Node accepts (V8 before
/// Node 22 caps typed arrays at 2^32 elements, and aborts the process beyond it).
pub const MAX_TYPED_LEN: usize = 1 << 32;

/// E_ARG (naming `what`, its bytes and `hint`) when a result of `dims` values (float32 or
/// uint32) would exceed [`MAX_TYPED_LEN`]: asked before the result is computed, so that an
/// asynchronous call refuses it at once rather than after computing what cannot be returned.
pub fn fits_typed(func: &str, what: &str, hint: &str, dims: &[usize]) -> densevec_core::Result<()> {
    match dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
        Some(len) if len <= MAX_TYPED_LEN => Ok(()),
        _ => {
            let bytes = dims.iter().fold(4u128, |a, &d| a.saturating_mul(d as u128));
            let what = format!("{what}: more values than a typed array holds (2^32)");
            Err(alloc::alloc_error(func, &what, bytes, hint))
        }
    }
}

/// Element types of the returned typed arrays.
pub trait Elem: Copy + Send + Sync + 'static {
    const TYPE: sys::napi_typedarray_type;
    /// napi-rs's typed view of the created array (its TypeScript type is the typed array).
    type View<'e>: FromNapiValue;
}

impl Elem for f32 {
    const TYPE: sys::napi_typedarray_type = sys::TypedarrayType::float32_array;
    type View<'e> = Float32ArraySlice<'e>;
}

impl Elem for f64 {
    const TYPE: sys::napi_typedarray_type = sys::TypedarrayType::float64_array;
    type View<'e> = Float64ArraySlice<'e>;
}

impl Elem for u32 {
    const TYPE: sys::napi_typedarray_type = sys::TypedarrayType::uint32_array;
    type View<'e> = Uint32ArraySlice<'e>;
}

/// The way out of a refused result buffer, unless the caller names a better one.
pub const SPLIT: &str = "split the batch";

/// A new typed array of `len` values in V8-owned memory, filled by `fill` (which sees the
/// whole, zeroed buffer), so a result can be computed in place. Sizes are checked first and
/// refused with `E_ARG` naming `hint` (V8 aborts the process when it cannot allocate an
/// ArrayBuffer, so the allocation is probed before).
pub fn typed_with<'e, T: Elem>(
    env: &'e Env,
    func: &str,
    what: &str,
    hint: &str,
    len: usize,
    fill: impl FnOnce(&mut [T]) -> napi::Result<()>,
) -> napi::Result<T::View<'e>> {
    if len > MAX_TYPED_LEN {
        let bytes = len as u128 * std::mem::size_of::<T>() as u128;
        let what = format!("{what}: {len} values, more than a typed array holds (2^32)");
        return Err(to_napi(alloc::alloc_error(func, &what, bytes, hint)));
    }
    let bytes = alloc::bytes_of::<T>(func, what, len, hint).map_err(to_napi)?;
    alloc::probe(func, what, bytes, hint).map_err(to_napi)?;
    let raw = env.raw();
    let mut data: *mut c_void = ptr::null_mut();
    let mut ab: sys::napi_value = ptr::null_mut();
    // SAFETY: plain N-API calls on the calling thread's env.
    let st = unsafe { sys::napi_create_arraybuffer(raw, bytes, &mut data, &mut ab) };
    if st != sys::Status::napi_ok {
        return Err(to_napi(alloc::alloc_error(func, what, bytes as u128, hint)));
    }
    if len > 0 {
        // A large result buffer is usually fresh, untouched memory: ask for huge pages before
        // `fill` first touches it (one fault per 2 MiB instead of per 4 KiB; a hint that
        // changes no contents).
        alloc::huge_pages(data as *mut u8, bytes);
        // SAFETY: V8 gave `bytes` = len · size_of::<T>() writable, zeroed, suitably aligned
        // bytes (ArrayBuffer memory is at least 8-aligned); nothing else refers to them yet.
        let s = unsafe { std::slice::from_raw_parts_mut(data as *mut T, len) };
        crate::mapguard::watch(func, || fill(s), to_napi)?;
    }
    // SAFETY: as above; `len` values fit in the buffer just created.
    unsafe { view::<T>(raw, ab, len, (func, what)) }
}

/// The typed array of `len` values of T over the whole ArrayBuffer `ab` (offset 0).
///
/// # Safety
/// `ab` must be an ArrayBuffer of `env` holding at least `len` values of T.
unsafe fn view<'e, T: Elem>(
    raw: sys::napi_env,
    ab: sys::napi_value,
    len: usize,
    (func, what): (&str, &str),
) -> napi::Result<T::View<'e>> {
    let mut ta: sys::napi_value = ptr::null_mut();
    let st = sys::napi_create_typedarray(raw, T::TYPE, len, ab, 0, &mut ta);
    if st != sys::Status::napi_ok {
        return Err(napi::Error::new(
            Status::GenericFailure,
            format!("E_INTERNAL|{func}: could not create the typed array for {what}"),
        ));
    }
    // SAFETY: `ta` is a typed array of the requested element type.
    <T::View<'e> as FromNapiValue>::from_napi_value(raw, ta)
}

thread_local! {
    /// Set while an async call's result is converted on the JS thread ([`serial_copies`]).
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with [`typed`]'s copies on the calling thread only: for the results of async calls,
/// converted on the JS thread while the pool may be busy with another async call (waiting for
/// it would stall the event loop).
pub fn serial_copies<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            SERIAL.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(SERIAL.with(|c| c.replace(true)));
    f()
}

/// A new V8-owned typed array holding a copy of `v` (the one way every binding returns a
/// computed buffer): [`typed_filled`] with the copy as its fill, so from 64 KiB up to 2 GiB the
/// buffer is a Node Buffer's memory, not zeroed first, and the copy runs in pieces on the pool
/// ([`copy_par`]). Zeroing the buffer first, on the calling thread, was 17 % of a two-thread
/// negativeSamplingLoss (34 MB of gradients).
pub fn typed<'e, T: Elem>(
    env: &'e Env,
    func: &str,
    what: &str,
    v: &[T],
) -> napi::Result<T::View<'e>> {
    typed_filled(env, func, what, SPLIT, v.len(), |s| {
        copy_par(s, v);
        Ok(())
    })
}

/// A new typed array of `len` values computed in place by `fill`, which must write every value
/// (it sees memory of unspecified contents): [`typed`]'s unzeroed Buffer memory from 64 KiB to
/// 2 GiB, else [`typed_with`]'s zeroed buffer. For results that a call writes whole, so that
/// they are neither zeroed first on the calling thread nor copied.
pub fn typed_filled<'e, T: Elem>(
    env: &'e Env,
    func: &str,
    what: &str,
    hint: &str,
    len: usize,
    fill: impl FnOnce(&mut [T]) -> napi::Result<()>,
) -> napi::Result<T::View<'e>> {
    match unzeroed::<T>(env, func, what, hint, len)? {
        Some((data, ab)) => {
            // SAFETY: `data` holds room for `len` values of T, aligned, that nothing else
            // refers to; any bit pattern is a valid f32/f64/u32. The view is made only after
            // `fill` succeeded, and `fill` writes every value.
            let s = unsafe { std::slice::from_raw_parts_mut(data, len) };
            crate::mapguard::watch(func, || fill(s), to_napi)?;
            // SAFETY: `ab` is exactly the `len` values just written (offset 0).
            unsafe { view::<T>(env.raw(), ab, len, (func, what)) }
        }
        None => typed_with(env, func, what, hint, len, fill),
    }
}

/// Room for `len` values of T in a new Node Buffer's memory (not zeroed), with the ArrayBuffer
/// that is exactly that memory (offset 0, `len` values, aligned for T), asking for huge pages:
/// `None` below 64 KiB or from 2 GiB (Node 20's Buffers hold at most 4 GiB), when Node refuses
/// the Buffer (its pending exception cleared) or when the layout is not that one (the Buffer is
/// then left to the collector, never shown to JavaScript). Sizes are probed first, refused with
/// `E_ARG` naming `hint`.
fn unzeroed<T: Elem>(
    env: &Env,
    func: &str,
    what: &str,
    hint: &str,
    len: usize,
) -> napi::Result<Option<(*mut T, sys::napi_value)>> {
    let Some(bytes) = len.checked_mul(std::mem::size_of::<T>()) else {
        return Ok(None);
    };
    if !(64 << 10..1 << 31).contains(&bytes) {
        return Ok(None);
    }
    alloc::probe(func, what, bytes, hint).map_err(to_napi)?;
    let raw = env.raw();
    let mut data: *mut c_void = ptr::null_mut();
    let mut buf: sys::napi_value = ptr::null_mut();
    // SAFETY: plain N-API calls on the calling thread's env.
    let st = unsafe { sys::napi_create_buffer(raw, bytes, &mut data, &mut buf) };
    if st != sys::Status::napi_ok || data.is_null() {
        // Refused (a JS exception may be pending): cleared, and the zeroed path decides.
        let mut pending = false;
        // SAFETY: plain N-API calls on the calling thread's env.
        unsafe {
            if sys::napi_is_exception_pending(raw, &mut pending) == sys::Status::napi_ok && pending
            {
                let mut e: sys::napi_value = ptr::null_mut();
                sys::napi_get_and_clear_last_exception(raw, &mut e);
            }
        }
        return Ok(None);
    }
    // The Buffer's own ArrayBuffer: it must start at the Buffer and hold exactly its bytes, so
    // that the typed array's `.buffer` shows nothing but the values written.
    let (mut ab, mut offset, mut kind, mut n) = (ptr::null_mut(), 0usize, 0, 0usize);
    let (mut at, mut ab_data): (*mut c_void, *mut c_void) = (ptr::null_mut(), ptr::null_mut());
    let mut ab_len = 0usize;
    // SAFETY: `buf` is the Uint8Array just created; every out-pointer is valid.
    let ok = unsafe {
        sys::napi_get_typedarray_info(raw, buf, &mut kind, &mut n, &mut at, &mut ab, &mut offset)
            == sys::Status::napi_ok
            && sys::napi_get_arraybuffer_info(raw, ab, &mut ab_data, &mut ab_len)
                == sys::Status::napi_ok
    };
    if !ok
        || at != data
        || ab_data != data
        || n != bytes
        || ab_len != bytes
        || offset != 0
        || !(data as usize).is_multiple_of(std::mem::align_of::<T>())
    {
        return Ok(None);
    }
    alloc::huge_pages(data as *mut u8, bytes);
    Ok(Some((data as *mut T, ab)))
}

/// Copies `src` to `dst` (of the same length), in 1 MiB pieces on the pool's threads when
/// there are several, the copy is 4 MiB or more and it is not the result of an async call
/// ([`serial_copies`]): the copy into a fresh result buffer also takes its first-touch page
/// faults, and on the calling thread alone it was the serial tail of calls that return large
/// buffers.
fn copy_par<T: Elem>(dst: &mut [T], src: &[T]) {
    let piece = (1 << 20) / std::mem::size_of::<T>().max(1);
    if std::mem::size_of_val(src) < 4 << 20
        || densevec_core::pool::threads() < 2
        || SERIAL.with(|c| c.get())
    {
        dst.copy_from_slice(src);
        return;
    }
    densevec_core::pool::run(|| {
        dst.par_chunks_mut(piece)
            .zip(src.par_chunks(piece))
            .for_each(|(d, s)| d.copy_from_slice(s))
    });
}

/// A value computed off the event loop and turned into a JS value on it.
pub trait IntoJs: Send + 'static {
    type Js<'e>: ToNapiValue + TypeName;
    /// The JS value, its buffers created by [`typed`] (errors name `func`).
    fn into_js<'e>(self, env: &'e Env, func: &str) -> napi::Result<Self::Js<'e>>;
}

impl<T: Elem> IntoJs for Vec<T>
where
    for<'e> T::View<'e>: ToNapiValue + TypeName,
{
    type Js<'e> = T::View<'e>;
    fn into_js<'e>(self, env: &'e Env, func: &str) -> napi::Result<T::View<'e>> {
        typed(env, func, "the result", &self)
    }
}

/// Runs a synchronous core call `f(func)` and turns its result into JavaScript values (errors
/// name `func`): the body of every entry point that has no asynchronous or GPU form.
pub fn call<'e, T: IntoJs>(
    env: &'e Env,
    func: &str,
    f: impl FnOnce(&str) -> densevec_core::Result<T>,
) -> napi::Result<T::Js<'e>> {
    guard(func, || f(func))?.into_js(env, func)
}

/// [`call`] for a result that is one typed array, named `what` in a refused allocation.
pub fn call_typed<'e, T: Elem>(
    env: &'e Env,
    func: &str,
    what: &str,
    f: impl FnOnce(&str) -> densevec_core::Result<Vec<T>>,
) -> napi::Result<T::View<'e>> {
    typed(env, func, what, &guard(func, || f(func))?)
}

/// `IntoJs` for plain `#[napi(object)]` results (numbers only): the value itself.
macro_rules! plain_js {
    ($($t:ty),*) => {$(
        impl $crate::common::IntoJs for $t {
            type Js<'e> = $t;
            fn into_js(self, _env: &Env, _func: &str) -> napi::Result<$t> {
                Ok(self)
            }
        }
    )*};
}
pub(crate) use plain_js;

/// Numbers of a core result as JavaScript numbers.
pub trait ToF64 {
    fn to_f64(self) -> f64;
}

impl ToF64 for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

impl ToF64 for usize {
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// A result object of numbers, typed arrays (each made by [`typed`] and named in a refused
/// allocation) and nested objects, and its [`IntoJs`] from the core's result type:
/// `js_result!(Name from core::T { num, …; buf: Float32ArraySlice = "what", …; obj: Ty => conv, … });`,
/// or `js_result!(Name from core::T { num, … })` for a result of numbers only.
macro_rules! js_result {
    ($(#[$m:meta])* $name:ident from $src:ty { $($num:ident),* }) => {
        $(#[$m])*
        #[napi(object, object_from_js = false)]
        pub struct $name {
            $(pub $num: f64,)*
        }

        impl $crate::common::IntoJs for $src {
            type Js<'e> = $name;
            fn into_js(self, _env: &Env, _func: &str) -> napi::Result<$name> {
                Ok($name { $($num: $crate::common::ToF64::to_f64(self.$num),)* })
            }
        }
    };
    ($(#[$m:meta])* $name:ident from $src:ty {
        $($num:ident),*;
        $($buf:ident: $bt:ident = $what:literal),*;
        $($obj:ident: $ot:ty => $conv:path),*
    }) => {
        $(#[$m])*
        #[napi(object, object_from_js = false)]
        pub struct $name<'e> {
            $(pub $num: f64,)*
            $(pub $buf: $bt<'e>,)*
            $(pub $obj: $ot,)*
        }

        impl $crate::common::IntoJs for $src {
            type Js<'e> = $name<'e>;
            fn into_js<'e>(self, env: &'e Env, func: &str) -> napi::Result<$name<'e>> {
                let _ = (env, func);
                Ok($name {
                    $($num: $crate::common::ToF64::to_f64(self.$num),)*
                    $($buf: $crate::common::typed(env, func, $what, &self.$buf)?,)*
                    $($obj: $conv(self.$obj),)*
                })
            }
        }
    };
}
pub(crate) use js_result;
