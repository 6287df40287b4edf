//! Device memory of the emulator: host allocations with guard zones, and the checks a real
//! device would only fail on (or not at all): copies outside an allocation, writes past its
//! end, frees of unknown pointers.

use densevec_cuda::dev::DevPtr;
use std::alloc::Layout;
use std::collections::BTreeMap;

/// Bytes of canary before and after every allocation.
pub(crate) const GUARD: usize = 1024;
/// Alignment of every allocation (cudaMalloc gives at least 256).
pub(crate) const ALIGN: usize = 256;

/// The canary byte at offset `i` of a guard zone: a pattern that a stray float, integer, 0 or
/// NaN write is very unlikely to reproduce.
fn canary(i: usize) -> u8 {
    0xA5 ^ (i as u8).wrapping_mul(0x3B)
}

/// One live allocation: `GUARD` canary bytes, `bytes` user bytes, `GUARD` canary bytes.
struct Block {
    base: usize, // address of the host allocation (user address - GUARD)
    layout: Layout,
    bytes: usize,
}

impl Block {
    fn user(&self) -> usize {
        self.base + GUARD
    }

    fn zones(&self) -> [(&'static str, usize); 2] {
        [("before", self.base), ("past", self.user() + self.bytes)]
    }

    fn fill_guards(&self) {
        for (_, z) in self.zones() {
            // SAFETY: both zones lie inside the host allocation (layout size ≥ 2·GUARD + bytes).
            let s = unsafe { std::slice::from_raw_parts_mut(z as *mut u8, GUARD) };
            for (i, b) in s.iter_mut().enumerate() {
                *b = canary(i);
            }
        }
    }

    /// The damage to the guard zones, in words, if any.
    fn check(&self) -> Option<String> {
        for (side, z) in self.zones() {
            // SAFETY: as in fill_guards.
            let s = unsafe { std::slice::from_raw_parts(z as *const u8, GUARD) };
            let bad: Vec<usize> = (0..GUARD).filter(|&i| s[i] != canary(i)).collect();
            if let (Some(&first), Some(&last)) = (bad.first(), bad.last()) {
                let at = if side == "past" {
                    format!("bytes +{first}..+{} after its end", last + 1)
                } else {
                    format!(
                        "bytes -{}..-{} before its start",
                        GUARD - first,
                        GUARD - last - 1
                    )
                };
                return Some(format!(
                    "device memory corrupted: write {side} allocation of {} bytes at 0x{:x} \
                     ({} guard bytes changed, {at})",
                    self.bytes,
                    self.user(),
                    bad.len()
                ));
            }
        }
        None
    }
}

/// The allocation table.
#[derive(Default)]
pub(crate) struct Memory {
    live: BTreeMap<usize, Block>, // by user address
    live_bytes: usize,
    peak_bytes: usize,
    /// Errors found outside a call that returns a Result (a bad free, a corrupted allocation
    /// being freed), reported by the next `sync` or `dtoh`.
    pending: Vec<String>,
}

impl Memory {
    pub fn alloc(&mut self, bytes: usize) -> Result<DevPtr, String> {
        if bytes == 0 {
            return Err("alloc: 0 bytes (the device interface allocates at least 1)".into());
        }
        let total = bytes
            .checked_add(2 * GUARD)
            .and_then(|t| Layout::from_size_align(t, ALIGN).ok())
            .ok_or_else(|| format!("alloc: out of memory ({bytes} bytes)"))?;
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { std::alloc::alloc_zeroed(total) };
        if base.is_null() {
            return Err(format!("alloc: out of memory ({bytes} bytes)"));
        }
        let b = Block {
            base: base as usize,
            layout: total,
            bytes,
        };
        b.fill_guards();
        let user = b.user();
        self.live.insert(user, b);
        self.live_bytes += bytes;
        self.peak_bytes = self.peak_bytes.max(self.live_bytes);
        Ok(user as DevPtr)
    }

    pub fn free(&mut self, p: DevPtr) {
        match self.live.remove(&(p as usize)) {
            Some(b) => {
                if let Some(e) = b.check() {
                    self.pending.push(format!("{e} (found when it was freed)"));
                }
                self.live_bytes -= b.bytes;
                // SAFETY: allocated in `alloc` with this layout, freed once (removed above).
                unsafe { std::alloc::dealloc(b.base as *mut u8, b.layout) };
            }
            None => self.pending.push(format!(
                "free of 0x{p:x}, which is not a live allocation (freed twice, or not the start \
                 of an allocation)"
            )),
        }
    }

    /// The first damaged guard zone of the live allocations.
    pub fn check_guards(&self) -> Result<(), String> {
        match self.live.values().find_map(Block::check) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// What a synchronising call reports: the recorded errors (once), then the guards.
    pub fn check_all(&mut self) -> Result<(), String> {
        if !self.pending.is_empty() {
            return Err(std::mem::take(&mut self.pending).join("; "));
        }
        self.check_guards()
    }

    /// Checks that `len` bytes at `p` lie inside one live allocation. `what` names the
    /// operation or operand for the message.
    pub fn check_range(&self, what: &str, p: DevPtr, len: usize) -> Result<(), String> {
        let p = p as usize;
        let Some((&start, b)) = self.live.range(..=p).next_back() else {
            return Err(format!(
                "{what}: 0x{p:x} is not inside any live allocation ({len} bytes)"
            ));
        };
        let end = start + b.bytes;
        match p.checked_add(len) {
            Some(e) if e <= end => Ok(()),
            _ if p >= end => Err(format!(
                "{what}: 0x{p:x} is not inside any live allocation ({len} bytes; the nearest \
                 allocation below, 0x{start:x}, holds {} bytes)",
                b.bytes
            )),
            _ => Err(format!(
                "{what}: {len} bytes at 0x{p:x} run past the allocation at 0x{start:x} of {} \
                 bytes (by {} bytes)",
                b.bytes,
                (p + len).saturating_sub(end)
            )),
        }
    }

    /// Whether `p` points into a live allocation or just past its end (a pointer a kernel may
    /// be given, e.g. the end of an empty range).
    pub fn points_into(&self, p: DevPtr) -> bool {
        let p = p as usize;
        self.live
            .range(..=p)
            .next_back()
            .is_some_and(|(&start, b)| p <= start + b.bytes)
    }

    pub fn live_allocations(&self) -> usize {
        self.live.len()
    }

    pub fn live_bytes(&self) -> usize {
        self.live_bytes
    }

    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        for (_, b) in std::mem::take(&mut self.live) {
            // SAFETY: allocated in `alloc` with this layout and not freed yet.
            unsafe { std::alloc::dealloc(b.base as *mut u8, b.layout) };
        }
    }
}
