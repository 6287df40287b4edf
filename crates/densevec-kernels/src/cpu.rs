//! What the GEMM blocking needs to know about the CPU, read once: the data cache sizes (L1d,
//! L2 and this core's share of L3) and whether 512-bit vectors execute at full width or as two
//! 256-bit halves (AMD Zen 4).
//!
//! x86-64: `cpuid` leaf 4 (Intel) or 0x8000001D (AMD), and the family from leaf 1. Elsewhere:
//! `/sys/devices/system/cpu/cpu0/cache/index*/{level,type,size,shared_cpu_list}`. Whatever
//! cannot be read falls back to 32 KiB / 512 KiB / 2 MiB.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Data cache sizes in bytes, as the GEMM sees them (one core's view).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caches {
    /// Level-1 data cache.
    pub l1d: usize,
    /// Level-2 cache (unified or data).
    pub l2: usize,
    /// Level-3 cache divided by the number of logical CPUs sharing it (0 if there is none).
    pub l3_per_core: usize,
    /// Whether 512-bit instructions run at full width (false on CPUs that split them into two
    /// 256-bit halves, e.g. AMD Zen 4, and on CPUs without AVX-512).
    pub full_width_512: bool,
}

const UNKNOWN: Caches = Caches {
    l1d: 0,
    l2: 0,
    l3_per_core: 0,
    full_width_512: false,
};

const DEFAULT: Caches = Caches {
    l1d: 32 * 1024,
    l2: 512 * 1024,
    l3_per_core: 2 * 1024 * 1024,
    full_width_512: false,
};

static L1D: AtomicUsize = AtomicUsize::new(0);
static L2: AtomicUsize = AtomicUsize::new(0);
static L3: AtomicUsize = AtomicUsize::new(0);
/// 0: not read yet; 1: split 512-bit; 2: full width.
static WIDE: AtomicUsize = AtomicUsize::new(0);

/// The caches of this CPU (read on the first call, then cached).
pub fn caches() -> Caches {
    let wide = WIDE.load(Ordering::Acquire);
    if wide != 0 {
        return Caches {
            l1d: L1D.load(Ordering::Relaxed),
            l2: L2.load(Ordering::Relaxed),
            l3_per_core: L3.load(Ordering::Relaxed),
            full_width_512: wide == 2,
        };
    }
    let c = detect();
    L1D.store(c.l1d, Ordering::Relaxed);
    L2.store(c.l2, Ordering::Relaxed);
    L3.store(c.l3_per_core, Ordering::Relaxed);
    WIDE.store(if c.full_width_512 { 2 } else { 1 }, Ordering::Release);
    c
}

/// Keeps sizes that make sense (a cache of 4 KiB to 1 GiB), otherwise the default.
fn sane(v: usize, default: usize) -> usize {
    if (4096..=1 << 30).contains(&v) {
        v
    } else {
        default
    }
}

fn detect() -> Caches {
    let mut c = read_caches().unwrap_or(DEFAULT);
    c.l1d = sane(c.l1d, DEFAULT.l1d);
    c.l2 = sane(c.l2, DEFAULT.l2);
    c.l3_per_core = if c.l3_per_core == 0 {
        0
    } else {
        sane(c.l3_per_core, DEFAULT.l3_per_core)
    };
    c
}

#[cfg(target_arch = "x86_64")]
fn read_caches() -> Option<Caches> {
    use std::arch::x86_64::__cpuid_count;
    // SAFETY: cpuid exists on every x86-64 CPU; leaves above the maximum are not queried.
    #[allow(unused_unsafe)] // `__cpuid_count` is a safe function in newer Rust
    unsafe {
        let l0 = __cpuid_count(0, 0);
        let amd = l0.ebx == 0x6874_7541; // "Auth"
        let max_ext = __cpuid_count(0x8000_0000, 0).eax;
        let leaf = if amd && max_ext >= 0x8000_001D {
            0x8000_001D
        } else if !amd && l0.eax >= 4 {
            4
        } else {
            return None;
        };
        let mut c = UNKNOWN;
        for sub in 0..16 {
            let r = __cpuid_count(leaf, sub);
            let kind = r.eax & 0x1f;
            if kind == 0 {
                break;
            }
            if kind == 2 {
                continue; // instruction cache
            }
            let level = (r.eax >> 5) & 7;
            let sharing = (((r.eax >> 14) & 0xfff) + 1) as usize;
            let size = (((r.ebx >> 22) & 0x3ff) + 1) as usize
                * (((r.ebx >> 12) & 0x3ff) + 1) as usize
                * ((r.ebx & 0xfff) + 1) as usize
                * (r.ecx as usize + 1);
            match level {
                1 => c.l1d = size,
                2 => c.l2 = size,
                // cpuid counts logical CPUs (SMT siblings too): the share per core is
                // twice the share per logical CPU when SMT is on; take the per-core figure.
                3 => c.l3_per_core = size / (sharing / 2).max(1),
                _ => {}
            }
        }
        let f = __cpuid_count(1, 0).eax;
        let family = ((f >> 8) & 0xf)
            + if (f >> 8) & 0xf == 0xf {
                (f >> 20) & 0xff
            } else {
                0
            };
        let avx512 = std::is_x86_feature_detected!("avx512f");
        // AMD family 19h (Zen 3 / Zen 4) splits 512-bit operations; Zen 5 (1Ah) and Intel's
        // AVX-512 cores run them whole.
        c.full_width_512 = avx512 && !(amd && family == 0x19);
        Some(c)
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn read_caches() -> Option<Caches> {
    let mut c = UNKNOWN;
    for i in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{}", i);
        let read = |f: &str| std::fs::read_to_string(format!("{}/{}", dir, f)).ok();
        let level = match read("level") {
            Some(v) => v.trim().to_string(),
            None => break,
        };
        let kind = read("type").unwrap_or_default();
        if kind.trim() == "Instruction" {
            continue;
        }
        let size = read("size").map(|s| parse_size(s.trim())).unwrap_or(0);
        let sharing = read("shared_cpu_list")
            .map(|s| count_cpus(s.trim()))
            .unwrap_or(1)
            .max(1);
        match level.as_str() {
            "1" => c.l1d = size,
            "2" => c.l2 = size,
            "3" => c.l3_per_core = size / sharing,
            _ => {}
        }
    }
    if c.l1d == 0 && c.l2 == 0 {
        None
    } else {
        Some(c)
    }
}

/// "32K", "1024K", "32M" or a plain number of bytes.
#[cfg(not(target_arch = "x86_64"))]
fn parse_size(s: &str) -> usize {
    let (num, mul) = match s.chars().last() {
        Some('K') => (&s[..s.len() - 1], 1024),
        Some('M') => (&s[..s.len() - 1], 1024 * 1024),
        Some('G') => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<usize>().unwrap_or(0) * mul
}

/// Number of CPUs in a list such as "0-7,16-23".
#[cfg(not(target_arch = "x86_64"))]
fn count_cpus(s: &str) -> usize {
    s.split(',')
        .map(|r| match r.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => usize::from(!r.is_empty()),
        })
        .sum()
}
