//! Instruction-set detection, done once, and a switch to force a lower ISA.
//!
//! The active ISA starts as the best one the CPU supports. [`set`] lowers it (for tests and
//! benchmarks); it refuses an ISA the CPU lacks. `DENSEVEC_ISA=scalar|avx2|avx512|neon` in the
//! environment is read by [`init_from_env`], which the bindings call once at load.

use std::sync::atomic::{AtomicU8, Ordering};

/// A kernel family. Ordered from least to most capable on each architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust, float64 accumulation: the exactness baseline.
    Scalar = 1,
    /// aarch64 Advanced SIMD.
    Neon = 2,
    /// x86-64 AVX2 with FMA.
    Avx2 = 3,
    /// x86-64 AVX-512F.
    Avx512 = 4,
}

impl Isa {
    /// Lower-case name as used by `backendInfo().isa` and `DENSEVEC_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Neon => "neon",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a name produced by [`Isa::name`].
    pub fn parse(s: &str) -> Option<Isa> {
        match s {
            "scalar" => Some(Isa::Scalar),
            "neon" => Some(Isa::Neon),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            _ => None,
        }
    }

    fn from_u8(v: u8) -> Isa {
        match v {
            2 => Isa::Neon,
            3 => Isa::Avx2,
            4 => Isa::Avx512,
            _ => Isa::Scalar,
        }
    }
}

static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// The best ISA this CPU supports.
pub fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
        Isa::Scalar
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            return Isa::Neon;
        }
        Isa::Scalar
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Isa::Scalar
    }
}

/// Every ISA this CPU can run, scalar first.
pub fn available() -> Vec<Isa> {
    let best = detected();
    let mut out = vec![Isa::Scalar];
    #[cfg(target_arch = "x86_64")]
    {
        if best >= Isa::Avx2 {
            out.push(Isa::Avx2);
        }
        if best >= Isa::Avx512 {
            out.push(Isa::Avx512);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if best >= Isa::Neon {
            out.push(Isa::Neon);
        }
    }
    let _ = best;
    out
}

/// The ISA the kernels dispatch to now.
#[inline(always)]
pub fn active() -> Isa {
    let v = ACTIVE.load(Ordering::Relaxed);
    if v == 0 {
        let d = detected();
        ACTIVE.store(d as u8, Ordering::Relaxed);
        return d;
    }
    Isa::from_u8(v)
}

/// Forces `isa` (it must be one of [`available`]); returns an error message otherwise.
pub fn set(isa: Isa) -> Result<(), String> {
    if !available().contains(&isa) {
        return Err(format!(
            "ISA '{}' is not supported by this CPU (best: '{}')",
            isa.name(),
            detected().name()
        ));
    }
    ACTIVE.store(isa as u8, Ordering::Relaxed);
    Ok(())
}

/// Applies `DENSEVEC_ISA` from the environment if set and valid; returns the error otherwise.
pub fn init_from_env() -> Result<(), String> {
    match std::env::var("DENSEVEC_ISA") {
        Ok(v) if !v.is_empty() => match Isa::parse(&v) {
            Some(isa) => set(isa),
            None => Err(format!(
                "DENSEVEC_ISA='{}' is not one of scalar, neon, avx2, avx512",
                v
            )),
        },
        _ => Ok(()),
    }
}
