//! Fallible allocation with the public error contract.
//!
//! Every buffer whose size depends on the input is sized by checked arithmetic and allocated
//! fallibly; when the size overflows or the allocator refuses, the caller gets `E_ARG` naming
//! the function, the bytes asked for, what they were for and, where one exists, the way out
//! ("use topK for nearest neighbours", "split the batch"). The process never aborts.

use crate::error::{Code, Error, Result};
use std::alloc::{alloc_zeroed, Layout};

/// Element types whose all-zero bit pattern is a valid value (so a zeroed allocation is an
/// initialized buffer).
///
/// # Safety
/// Implementors must accept the all-zero bit pattern as a valid value.
pub unsafe trait Zeroable: Copy {}
unsafe impl Zeroable for f32 {}
unsafe impl Zeroable for f64 {}
unsafe impl Zeroable for u8 {}
unsafe impl Zeroable for i8 {}
unsafe impl Zeroable for u16 {}
unsafe impl Zeroable for u32 {}
unsafe impl Zeroable for u64 {}
unsafe impl Zeroable for usize {}

/// Human-readable size: "80.0 GB", "1.5 MB", "12 bytes".
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [(&str, f64); 4] = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    for (u, s) in UNITS {
        if bytes as f64 >= s {
            return format!("{:.1} {u}", bytes as f64 / s);
        }
    }
    format!("{bytes} bytes")
}

/// The E_ARG error of a refused allocation of `bytes` (as a u128 so an overflowed size is still
/// reported exactly).
pub fn alloc_error(func: &str, what: &str, bytes: u128, hint: &str) -> Error {
    let tail = if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    };
    Error::new(
        Code::Arg,
        format!(
            "{func}: cannot allocate {bytes} bytes ({}) for {what}{tail}",
            human_bytes(bytes)
        ),
    )
}

/// The product of `dims` (element counts), or E_ARG when it does not fit in `usize`.
pub fn elems(
    func: &str,
    what: &str,
    dims: &[usize],
    elem_size: usize,
    hint: &str,
) -> Result<usize> {
    let mut n = 1usize;
    for &d in dims {
        n = match n.checked_mul(d) {
            Some(v) => v,
            None => {
                let exact = dims
                    .iter()
                    .fold(elem_size as u128, |a, &d| a.saturating_mul(d as u128));
                return Err(alloc_error(func, what, exact, hint));
            }
        };
    }
    Ok(n)
}

/// Bytes of `n` values of `T`, or E_ARG when they exceed what an allocation may hold.
pub fn bytes_of<T>(func: &str, what: &str, n: usize, hint: &str) -> Result<usize> {
    let size = std::mem::size_of::<T>();
    match n.checked_mul(size) {
        Some(b) if b <= isize::MAX as usize => Ok(b),
        _ => Err(alloc_error(func, what, n as u128 * size as u128, hint)),
    }
}

/// A zeroed `Vec<T>` of length `n`, or E_ARG (never an abort) when it cannot be allocated.
/// The memory comes from the allocator's zeroed path, so untouched pages cost nothing.
pub fn try_vec_hint<T: Zeroable>(func: &str, what: &str, n: usize, hint: &str) -> Result<Vec<T>> {
    let bytes = bytes_of::<T>(func, what, n, hint)?;
    if n == 0 || bytes == 0 {
        return Ok(Vec::new());
    }
    let layout = Layout::array::<T>(n).map_err(|_| alloc_error(func, what, bytes as u128, hint))?;
    // SAFETY: the layout has a non-zero size; a non-null result is `n` zeroed values of T,
    // which `Zeroable` makes valid; the Vec takes ownership with the same layout.
    unsafe {
        let p = alloc_zeroed(layout) as *mut T;
        if p.is_null() {
            return Err(alloc_error(func, what, bytes as u128, hint));
        }
        huge_pages(p as *mut u8, bytes);
        Ok(Vec::from_raw_parts(p, n, n))
    }
}

/// Scratch buffers for one parallel phase of a call, one per pool thread, each allocated
/// (fallibly) the first time its thread needs it and reused by that thread's later tasks of
/// the phase, then freed with the phase. A task's block of a large intermediate (a block of the
/// logit gradient) would otherwise be a fresh allocation per task: fresh pages cost a kernel
/// fault and zeroing at first touch, which on a 4096 × 10,000 marginSoftmax was more memory
/// than the returned logits. The contents a task sees are unspecified: it overwrites them.
pub struct PerThread {
    bufs: Vec<std::sync::Mutex<Vec<f32>>>,
}

impl PerThread {
    /// Buffers for the current pool's threads (none allocated yet).
    pub fn new() -> PerThread {
        let n = crate::pool::threads().max(1);
        PerThread {
            bufs: (0..n).map(|_| std::sync::Mutex::new(Vec::new())).collect(),
        }
    }

    /// Runs `f` on `len` floats of this thread's buffer (grown by a fallible allocation when
    /// short, E_ARG naming `what` and `hint` when refused; a fresh buffer when the thread's is
    /// busy, which a nested task on the same thread would find).
    pub fn with<R>(
        &self,
        func: &str,
        what: &str,
        len: usize,
        hint: &str,
        f: impl FnOnce(&mut [f32]) -> R,
    ) -> crate::Result<R> {
        let i = rayon::current_thread_index().unwrap_or(0) % self.bufs.len();
        match self.bufs[i].try_lock() {
            Ok(mut v) => {
                if v.len() < len {
                    // Replaced, not grown: the old contents need not be kept.
                    *v = Vec::new();
                    *v = try_vec_hint(func, what, len, hint)?;
                }
                Ok(f(&mut v[..len]))
            }
            Err(_) => {
                let mut v = try_vec_hint(func, what, len, hint)?;
                Ok(f(&mut v))
            }
        }
    }
}

impl Default for PerThread {
    fn default() -> Self {
        PerThread::new()
    }
}

/// Buffers from this size up ask for transparent huge pages.
const HUGE_FROM: usize = 4 << 20;

/// Asks the kernel to back the whole 2 MiB pages inside a large, not yet touched buffer with
/// transparent huge pages (`madvise(MADV_HUGEPAGE)`, for systems where THP is opt-in): a
/// buffer's first touch then costs one fault per 2 MiB instead of one per 4 KiB. A hint: any
/// failure is ignored, and the contents are unchanged.
#[cfg(target_os = "linux")]
pub fn huge_pages(p: *mut u8, bytes: usize) {
    const HUGE: usize = 2 << 20;
    const MADV_HUGEPAGE: i32 = 14;
    extern "C" {
        fn madvise(addr: *mut u8, len: usize, advice: i32) -> i32;
    }
    if bytes < HUGE_FROM {
        return;
    }
    let start = (p as usize).div_ceil(HUGE) * HUGE;
    let end = (p as usize + bytes) / HUGE * HUGE;
    if end > start {
        // SAFETY: [start, end) lies inside the allocation just made; MADV_HUGEPAGE changes
        // neither its contents nor its validity.
        unsafe { madvise(start as *mut u8, end - start, MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
pub fn huge_pages(_p: *mut u8, _bytes: usize) {}

/// [`try_vec_hint`] without a way out.
pub fn try_vec<T: Zeroable>(func: &str, what: &str, n: usize) -> Result<Vec<T>> {
    try_vec_hint(func, what, n, "")
}

/// A zeroed `rows × cols` buffer (checked product), or E_ARG.
pub fn try_mat<T: Zeroable>(
    func: &str,
    what: &str,
    rows: usize,
    cols: usize,
    hint: &str,
) -> Result<Vec<T>> {
    let n = elems(func, what, &[rows, cols], std::mem::size_of::<T>(), hint)?;
    try_vec_hint(func, what, n, hint)
}

/// A copy of `src` (the fallible `to_vec`), or E_ARG.
pub fn try_copy<T: Copy>(func: &str, what: &str, src: &[T]) -> Result<Vec<T>> {
    let mut v = Vec::new();
    if v.try_reserve_exact(src.len()).is_err() {
        let bytes = src.len() as u128 * std::mem::size_of::<T>() as u128;
        return Err(alloc_error(func, what, bytes, ""));
    }
    v.extend_from_slice(src);
    Ok(v)
}

/// Grows `v` by `extra` values fallibly (before an `extend`), or E_ARG.
pub fn try_reserve<T>(func: &str, what: &str, v: &mut Vec<T>, extra: usize) -> Result<()> {
    v.try_reserve_exact(extra).map_err(|_| {
        let n = v.len() as u128 + extra as u128;
        alloc_error(func, what, n * std::mem::size_of::<T>() as u128, "")
    })
}

/// `e` reported by `to` when it came from `from`, which `to` called (`from: …` → `to: …`).
pub fn renamed(e: Error, from: &str, to: &str) -> Error {
    match e.msg.strip_prefix(from).and_then(|r| r.strip_prefix(':')) {
        Some(rest) => Error::new(e.code, format!("{to}:{rest}")),
        None => e,
    }
}

/// Checks that `bytes` can be allocated right now by allocating and releasing them, for memory
/// that code outside densevec allocates infallibly (faer's factorizations, V8's ArrayBuffers):
/// a refusal becomes E_ARG here instead of an abort there. The probe goes to the system
/// allocator directly (its block is never kept for reuse, [`crate::keep`]), and when refused
/// is tried again after the kept blocks are returned.
pub fn probe(func: &str, what: &str, bytes: usize, hint: &str) -> Result<()> {
    use std::alloc::{GlobalAlloc, System};
    if bytes == 0 {
        return Ok(());
    }
    let layout = Layout::from_size_align(bytes, 1)
        .map_err(|_| alloc_error(func, what, bytes as u128, hint))?;
    // SAFETY: a valid layout of non-zero size; a non-null block is freed with it below.
    let try_once = || unsafe { System.alloc(layout) };
    let mut p = try_once();
    if p.is_null() {
        crate::keep::release();
        p = try_once();
    }
    if p.is_null() {
        return Err(alloc_error(func, what, bytes as u128, hint));
    }
    // An allocation nobody reads may be elided by the optimiser, which then assumes it
    // succeeded: keep it observable so that the allocator is really asked.
    let p = std::hint::black_box(p);
    // SAFETY: allocated above by System with this layout.
    unsafe { System.dealloc(p, layout) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_thread_scratch_is_reused_grown_and_refused_cleanly() {
        let s = PerThread::new();
        let p1 = s.with("f", "a block", 100, "", |b| {
            b.fill(1.0);
            b.as_ptr() as usize
        });
        // The same thread gets the same buffer back (its old contents included).
        let (p2, first) = s
            .with("f", "a block", 50, "", |b| (b.as_ptr() as usize, b[0]))
            .unwrap();
        assert_eq!((p1.unwrap(), first), (p2, 1.0));
        // A longer request replaces it; a nested one gets a fresh buffer of its own.
        let nested = s
            .with("f", "a block", 1000, "", |b| {
                assert_eq!(b.len(), 1000);
                let outer = b.as_ptr() as usize;
                s.with("f", "a block", 10, "", |c| c.as_ptr() as usize != outer)
                    .unwrap()
            })
            .unwrap();
        assert!(nested);
        let e = s
            .with("f", "a block", usize::MAX / 8, "split", |_| ())
            .unwrap_err();
        assert_eq!(e.code, Code::Arg);
        assert!(
            e.msg.contains("a block") && e.msg.contains("split"),
            "{}",
            e.msg
        );
        // Inside the pool, tasks on every thread see their own buffers.
        let sums: Vec<f32> = crate::pool::run(|| {
            use rayon::prelude::*;
            (0..64)
                .into_par_iter()
                .map(|i| {
                    s.with("f", "a block", 256, "", |b| {
                        b.fill(i as f32);
                        b.iter().sum::<f32>()
                    })
                    .unwrap()
                })
                .collect()
        });
        assert!(sums.iter().enumerate().all(|(i, &v)| v == 256.0 * i as f32));
    }

    #[test]
    fn refuses_with_e_arg_instead_of_aborting() {
        let e = try_vec::<f32>("f", "the output", usize::MAX / 2).unwrap_err();
        assert_eq!(e.code, Code::Arg);
        assert!(e.msg.starts_with("f: cannot allocate "), "{}", e.msg);
        let e = try_mat::<f32>("f", "x", 1 << 40, 1 << 40, "split the batch").unwrap_err();
        assert_eq!(e.code, Code::Arg);
        assert!(
            e.msg.contains("4835703278458516698824704 bytes"),
            "{}",
            e.msg
        );
        assert!(e.msg.ends_with("; split the batch"), "{}", e.msg);
        // Larger than any address space but below isize::MAX: the allocator refuses.
        let e = try_vec::<u8>("f", "y", (isize::MAX as usize) - 4096).unwrap_err();
        assert_eq!(e.code, Code::Arg);
        assert!(probe("f", "z", usize::MAX, "").is_err());
        assert!(probe("f", "z", (isize::MAX as usize) - 4096, "").is_err());
    }

    #[test]
    fn large_buffers_asking_for_huge_pages_are_zeroed_and_usable() {
        let n = (HUGE_FROM + (3 << 20) + 12) / 4;
        let mut v = try_vec::<f32>("f", "x", n).unwrap();
        assert!(v.iter().all(|&x| x == 0.0));
        for (i, x) in v.iter_mut().enumerate() {
            *x = i as f32;
        }
        assert_eq!(v[n - 1], (n - 1) as f32);
    }

    #[test]
    fn allocates_zeroed_buffers() {
        let v = try_mat::<f64>("f", "x", 3, 5, "").unwrap();
        assert_eq!(v.len(), 15);
        assert!(v.iter().all(|&x| x == 0.0));
        assert!(try_vec::<u32>("f", "x", 0).unwrap().is_empty());
        assert_eq!(try_copy("f", "x", &[1u16, 2]).unwrap(), vec![1, 2]);
        probe("f", "x", 1 << 20, "").unwrap();
        assert_eq!(human_bytes(80_000_000_000), "80.0 GB");
    }
}
