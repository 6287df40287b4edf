//! Page-locked staging of host ↔ device copies.
//!
//! A copy from or to pageable memory (a typed array, a `Vec`) makes the driver stage it through
//! its own small pinned buffers, one synchronous piece at a time; on virtual machines this ran at
//! a few GB/s. Here two page-locked buffers of [`CHUNK`] bytes are used in turn: the CPU copies
//! one chunk (in parallel on the thread pool) while the DMA engine moves the other, and events
//! say when a buffer may be reused. Copies under [`DIRECT_BELOW`] go straight through the driver.

use cudarc::driver::{result as drv, sys};
use densevec_core::pool;
use rayon::prelude::*;
use std::ffi::c_void;

/// Bytes of each of the two page-locked buffers.
pub const CHUNK: usize = 8 << 20;
/// Copies shorter than this are plain synchronous driver copies.
pub const DIRECT_BELOW: usize = 1 << 20;
/// Piece of a chunk one pool thread copies.
const PIECE: usize = 1 << 20;

/// Two page-locked buffers and the event recorded after the last DMA that used each.
pub struct Staging {
    bufs: [*mut u8; 2],
    events: [sys::CUevent; 2],
    /// Whether an event has been recorded on the buffer since it was last waited for.
    pending: [bool; 2],
}

/// `src` into `dst` (same length), in pieces on the thread pool.
fn par_copy(src: &[u8], dst: &mut [u8]) {
    if src.len() <= PIECE {
        dst.copy_from_slice(src);
        return;
    }
    pool::run(|| {
        dst.par_chunks_mut(PIECE)
            .zip(src.par_chunks(PIECE))
            .for_each(|(d, s)| d.copy_from_slice(s))
    });
}

impl Staging {
    /// Allocates the two buffers and events (the context must be bound to this thread).
    pub fn new() -> Result<Staging, String> {
        let mut s = Staging {
            bufs: [std::ptr::null_mut(); 2],
            events: [std::ptr::null_mut(); 2],
            pending: [false; 2],
        };
        for i in 0..2 {
            // SAFETY: plain allocations; freed in Drop (null entries are skipped there).
            s.bufs[i] = unsafe { drv::malloc_host(CHUNK, 0) }
                .map_err(|e| format!("page-locked staging of {CHUNK} bytes: {e:?}"))?
                as *mut u8;
            s.events[i] = drv::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)
                .map_err(|e| format!("staging event: {e:?}"))?;
        }
        Ok(s)
    }

    /// Waits until buffer `b` is no longer read or written by a copy in flight.
    fn wait(&mut self, b: usize) -> Result<(), String> {
        if self.pending[b] {
            // SAFETY: the event was created in `new` and recorded on the stream.
            unsafe { drv::event::synchronize(self.events[b]) }.map_err(|e| format!("{e:?}"))?;
            self.pending[b] = false;
        }
        Ok(())
    }

    /// Buffer `b` as a slice of `len ≤ CHUNK` bytes.
    ///
    /// SAFETY: the caller has waited for the buffer ([`Self::wait`]).
    unsafe fn buf(&mut self, b: usize, len: usize) -> &mut [u8] {
        std::slice::from_raw_parts_mut(self.bufs[b], len)
    }

    /// Copies `src` to device address `dst`, ordered on `stream` after the work already queued
    /// there. Returns once every byte of `src` has been read (the DMA of the last chunk may still
    /// be running; the next use of its buffer waits for it).
    ///
    /// # Safety
    /// `dst` holds at least `src.len()` bytes; the context is bound to this thread.
    pub unsafe fn htod(
        &mut self,
        src: &[u8],
        dst: u64,
        stream: sys::CUstream,
    ) -> Result<(), String> {
        for (i, piece) in src.chunks(CHUNK).enumerate() {
            let b = i % 2;
            self.wait(b)?;
            let buf = self.buf(b, piece.len());
            par_copy(piece, buf);
            drv::memcpy_htod_async((dst + (i * CHUNK) as u64) as sys::CUdeviceptr, buf, stream)
                .map_err(|e| format!("{e:?}"))?;
            drv::event::record(self.events[b], stream).map_err(|e| format!("{e:?}"))?;
            self.pending[b] = true;
        }
        Ok(())
    }

    /// Copies device address `src` into `dst` after the work already queued on `stream`; the
    /// next chunk's DMA runs while the CPU copies the previous one out.
    ///
    /// # Safety
    /// `src` holds at least `dst.len()` bytes; the context is bound to this thread.
    pub unsafe fn dtoh(
        &mut self,
        src: u64,
        dst: &mut [u8],
        stream: sys::CUstream,
    ) -> Result<(), String> {
        let total = dst.len();
        let n = total.div_ceil(CHUNK);
        let len = |i: usize| CHUNK.min(total - i * CHUNK);
        let issue = |s: &mut Staging, i: usize| -> Result<(), String> {
            let b = i % 2;
            s.wait(b)?;
            let buf = s.buf(b, len(i));
            drv::memcpy_dtoh_async(buf, (src + (i * CHUNK) as u64) as sys::CUdeviceptr, stream)
                .map_err(|e| format!("{e:?}"))?;
            drv::event::record(s.events[b], stream).map_err(|e| format!("{e:?}"))?;
            s.pending[b] = true;
            Ok(())
        };
        if n > 0 {
            issue(self, 0)?;
        }
        for (i, out) in dst.chunks_mut(CHUNK).enumerate() {
            if i + 1 < n {
                issue(self, i + 1)?;
            }
            let b = i % 2;
            self.wait(b)?;
            par_copy(self.buf(b, out.len()), out);
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for b in 0..2 {
            let _ = self.wait(b);
            // SAFETY: created in `new`; nothing uses them after this.
            unsafe {
                if !self.events[b].is_null() {
                    let _ = drv::event::destroy(self.events[b]);
                }
                if !self.bufs[b].is_null() {
                    let _ = drv::free_host(self.bufs[b] as *mut c_void);
                }
            }
        }
    }
}
