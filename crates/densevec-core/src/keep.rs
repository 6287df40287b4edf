//! Large freed blocks kept for reuse: a global allocator ([`KeepLarge`]) that holds on to the
//! blocks of at least [`LARGE`] bytes that the library frees, for a while, and hands them out
//! again to allocations of the same size class.
//!
//! A loss of B = 4096 allocates about 100 MB of working memory per call (the B × B logits, the
//! normalized rows, per-thread blocks) and frees it at the end. Memory handed back to the
//! operating system comes back as fresh pages, each costing a kernel fault and zeroing at first
//! touch (on a virtual machine, often a fault in the host as well): on one cloud VM that was
//! 10–20 % of a 0.85 s InfoNCE call. Kept blocks are already mapped.
//!
//! The rules:
//! - Only blocks of at least [`LARGE`] bytes are kept; smaller ones go straight to the system
//!   allocator. Large sizes are rounded up to a size class (16 per power of two, so at most
//!   12.5 % more), so repeated calls of one shape find their blocks again.
//! - At most [`start`]'s `cap_bytes` are held, in at most [`SLOTS`] blocks; the oldest are
//!   returned first when a new block does not fit.
//! - Everything held is returned to the system allocator once no large block has been freed or
//!   taken for `keep` (a background thread waits for that), when [`release`] is called, and
//!   before any allocation the system allocator refuses is retried.
//! - Nothing is kept before [`start`] (so a program that installs the allocator without
//!   starting it gets the system allocator's behaviour, plus the size rounding).
//!
//! A kept block given to a zeroed allocation is zeroed first; other allocations get whatever
//! the block held (as with any allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Blocks from this size up are kept.
pub const LARGE: usize = 1 << 20;

/// At most this many blocks are held at once.
pub const SLOTS: usize = 32;

/// The system allocator, keeping large freed blocks for reuse once [`start`]ed (see the
/// module docs). Install it with `#[global_allocator]`.
pub struct KeepLarge;

#[derive(Clone, Copy)]
struct Block {
    ptr: usize,
    size: usize,
    align: usize,
    /// Order of insertion (the oldest goes first when the cap is reached).
    seq: u64,
}

struct Held {
    blocks: [Option<Block>; SLOTS],
    bytes: usize,
    seq: u64,
    /// When a large block was last freed or taken.
    last: Option<Instant>,
}

static HELD: Mutex<Held> = Mutex::new(Held {
    blocks: [None; SLOTS],
    bytes: 0,
    seq: 0,
    last: None,
});
static WAKE: Condvar = Condvar::new();
/// Milliseconds of idleness before everything held is returned; 0 = keep nothing.
static KEEP_MS: AtomicU64 = AtomicU64::new(0);
static CAP: AtomicUsize = AtomicUsize::new(0);
static REAPER: AtomicBool = AtomicBool::new(false);

fn held() -> MutexGuard<'static, Held> {
    // Nothing in a critical section can panic, but a poisoned lock is still usable.
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// The size class of a large allocation: `size` rounded up to a multiple of 1/16 of its power
/// of two (at least 4 KiB). `None` where the rounded layout would not be valid (then the
/// allocation is passed through unchanged).
fn class(layout: Layout) -> Option<Layout> {
    let size = layout.size();
    if size < LARGE {
        return None;
    }
    let step = (size.checked_next_power_of_two()? >> 4).max(4096);
    let rounded = size.checked_add(step - 1)? / step * step;
    Layout::from_size_align(rounded, layout.align()).ok()
}

impl Held {
    /// Takes a held block of exactly `l` (class size and alignment).
    fn take(&mut self, l: Layout) -> Option<*mut u8> {
        let slot = self
            .blocks
            .iter_mut()
            .find(|b| matches!(b, Some(b) if b.size == l.size() && b.align == l.align()))?;
        let b = slot.take()?;
        self.bytes -= b.size;
        self.last = Some(Instant::now());
        Some(b.ptr as *mut u8)
    }

    /// Removes the oldest blocks until `room(self)` holds (or none is left); they are returned
    /// for the caller to free once the lock is released.
    fn evict(&mut self, room: impl Fn(&Held) -> bool) -> [Option<Block>; SLOTS] {
        let mut out = [None; SLOTS];
        for o in out.iter_mut() {
            if room(self) {
                break;
            }
            *o = self.pop_oldest();
        }
        out
    }

    /// Removes every block, for the caller to free once the lock is released.
    fn take_all(&mut self) -> [Option<Block>; SLOTS] {
        self.bytes = 0;
        std::mem::replace(&mut self.blocks, [None; SLOTS])
    }

    /// Removes the oldest block.
    fn pop_oldest(&mut self) -> Option<Block> {
        let slot = self
            .blocks
            .iter_mut()
            .filter(|b| b.is_some())
            .min_by_key(|b| b.map_or(u64::MAX, |b| b.seq))?;
        let b = slot.take()?;
        self.bytes -= b.size;
        Some(b)
    }
}

/// Returns blocks to the system allocator.
fn free_all(blocks: &[Option<Block>]) {
    for b in blocks.iter().flatten() {
        // SAFETY: a held block was allocated by System with exactly this size and alignment
        // (a valid layout: it was one when allocated) and is owned by nobody else.
        unsafe {
            System.dealloc(
                b.ptr as *mut u8,
                Layout::from_size_align_unchecked(b.size, b.align),
            )
        };
    }
}

/// Keeps the freed block `p` of class layout `l`; false when it is not kept (nothing is kept,
/// or it is larger than the cap): the caller frees it.
fn put(p: *mut u8, l: Layout) -> bool {
    let cap = CAP.load(Ordering::Relaxed);
    if KEEP_MS.load(Ordering::Relaxed) == 0 || l.size() > cap {
        return false;
    }
    let evicted = {
        let mut h = held();
        let evicted =
            h.evict(|h| h.bytes + l.size() <= cap && h.blocks.iter().any(|b| b.is_none()));
        h.seq += 1;
        let seq = h.seq;
        if let Some(slot) = h.blocks.iter_mut().find(|b| b.is_none()) {
            *slot = Some(Block {
                ptr: p as usize,
                size: l.size(),
                align: l.align(),
                seq,
            });
            h.bytes += l.size();
        }
        h.last = Some(Instant::now());
        evicted
    };
    WAKE.notify_one();
    free_all(&evicted);
    true
}

/// Returns every held block to the system allocator now.
pub fn release() {
    let blocks = held().take_all();
    free_all(&blocks);
}

/// The number of blocks and bytes held now.
pub fn held_now() -> (usize, usize) {
    let h = held();
    (h.blocks.iter().flatten().count(), h.bytes)
}

/// Starts keeping large freed blocks: at most `cap_bytes`, returned after `keep` without a
/// large block freed or taken. A zero `keep` or `cap_bytes` stops keeping and returns what is
/// held. The first call that keeps starts the background thread that returns idle blocks; when
/// it cannot be started, nothing is kept and the error says why.
pub fn start(keep: Duration, cap_bytes: usize) -> Result<(), String> {
    let ms = keep.as_millis().min(u64::MAX as u128) as u64;
    if ms == 0 || cap_bytes == 0 {
        KEEP_MS.store(0, Ordering::Relaxed);
        release();
        return Ok(());
    }
    if !REAPER.swap(true, Ordering::AcqRel) {
        let spawned = std::thread::Builder::new()
            .name("densevec-keep".into())
            .spawn(reaper);
        if let Err(e) = spawned {
            REAPER.store(false, Ordering::Release);
            return Err(format!(
                "cannot start the thread that returns kept memory: {e}"
            ));
        }
    }
    CAP.store(cap_bytes, Ordering::Relaxed);
    KEEP_MS.store(ms, Ordering::Relaxed);
    // A smaller cap applies at once.
    let evicted = held().evict(|h| h.bytes <= cap_bytes);
    free_all(&evicted);
    WAKE.notify_one();
    Ok(())
}

/// The background thread: returns everything held once it has been idle for the keep time.
fn reaper() {
    let mut h = held();
    loop {
        let keep = Duration::from_millis(KEEP_MS.load(Ordering::Relaxed));
        let idle = h.last.map_or(Duration::MAX, |t| t.elapsed());
        if h.blocks.iter().all(|b| b.is_none()) {
            h = WAKE.wait(h).unwrap_or_else(|e| e.into_inner());
        } else if keep.is_zero() || idle >= keep {
            let blocks = h.take_all();
            drop(h);
            free_all(&blocks);
            h = held();
        } else {
            h = WAKE
                .wait_timeout(h, keep - idle)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A large allocation of class layout `cl`: a held block, else the system's; when the system
/// refuses, everything held is returned and the request tried once more.
unsafe fn alloc_large(cl: Layout, zeroed: bool, size: usize) -> *mut u8 {
    let kept = held().take(cl);
    if let Some(p) = kept {
        if zeroed {
            std::ptr::write_bytes(p, 0, size);
        }
        return p;
    }
    let get = || {
        if zeroed {
            System.alloc_zeroed(cl)
        } else {
            System.alloc(cl)
        }
    };
    retried(get)
}

/// `get()`, and when the system refuses while blocks are kept, `get()` again after they are
/// returned: memory kept for reuse never makes an allocation fail that would have succeeded
/// (under an address-space or cgroup limit), small ones included.
fn retried(get: impl Fn() -> *mut u8) -> *mut u8 {
    let p = get();
    if !p.is_null() || held_now().0 == 0 {
        return p;
    }
    release();
    get()
}

// SAFETY: every block is allocated and freed by System with one layout: the caller's, or for
// large blocks its size class ([`class`], a function of the caller's layout alone, so the
// same at allocation and at deallocation). A held block belongs to the keeper alone until it
// is handed out again or returned to System.
unsafe impl GlobalAlloc for KeepLarge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            Some(cl) => alloc_large(cl, false, layout.size()),
            None => retried(|| System.alloc(layout)),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            Some(cl) => alloc_large(cl, true, layout.size()),
            None => retried(|| System.alloc_zeroed(layout)),
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        match class(layout) {
            Some(cl) => {
                if !put(p, cl) {
                    System.dealloc(p, cl)
                }
            }
            None => System.dealloc(p, layout),
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (class(layout), class(new_layout)) {
            (None, None) => retried(|| System.realloc(p, layout, new_size)),
            (Some(a), Some(b)) if a == b => p,
            _ => {
                let q = self.alloc(new_layout);
                if !q.is_null() {
                    std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                    self.dealloc(p, layout);
                }
                q
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_round_up_by_at_most_an_eighth() {
        let l = |s| Layout::from_size_align(s, 8).unwrap();
        assert!(class(l(LARGE - 1)).is_none());
        assert_eq!(class(l(LARGE)).unwrap().size(), LARGE);
        for s in [LARGE + 1, 3 << 20, (64 << 20) + 12345, 100_000_003, 1 << 33] {
            let c = class(l(s)).unwrap();
            assert!(c.size() >= s && c.size() - s <= s / 8, "{s} → {}", c.size());
            assert_eq!(c.align(), 8);
            // The class of a class is itself.
            assert_eq!(class(c).unwrap().size(), c.size());
        }
        // Sizes whose class would not be a valid layout pass through.
        assert!(class(l(isize::MAX as usize - 7)).is_none());
    }
}
