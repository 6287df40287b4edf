//! Compute precision of the GEMM-bound functions: float32 (default) or bf16 inputs with
//! float32 accumulation (see `densevec_kernels::bf16` for the rounding and the summation
//! order).
//!
//! The precision is a call-scoped setting: [`with_precision`] runs a closure with it, and the
//! functions that honour it (similarity matrix, top-k, InfoNCE, NT-Xent, margin softmax) read
//! it once with [`current`] on the calling thread at their entry and pass the value to every
//! GEMM they run, on whichever thread. Everything else ignores it.

use crate::bail;
use crate::error::Result;
use densevec_kernels as k;
pub use k::{Gemm, GemmRef, Rows, RowsMut};
use std::cell::Cell;

/// How the products of a GEMM are formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// float32 inputs and accumulation.
    #[default]
    F32,
    /// Inputs rounded to bf16 (nearest, ties to even; float32 subnormals as zero), products
    /// accumulated in float32.
    Bf16,
}

impl Precision {
    /// 0 = f32, 1 = bf16 (the binding's wire code); absent = f32.
    pub fn from_code(func: &str, code: Option<u32>) -> Result<Precision> {
        match code {
            None | Some(0) => Ok(Precision::F32),
            Some(1) => Ok(Precision::Bf16),
            Some(c) => bail!(Arg, "{func}: unknown precision code {c}"),
        }
    }

    /// Runs a checked GEMM ([`k::gemm`]) at this precision ([`k::bf16::gemm`] for bf16).
    #[inline]
    pub fn gemm(self, g: GemmRef) {
        match self {
            Precision::F32 => k::gemm(g),
            Precision::Bf16 => k::bf16::gemm(g),
        }
    }

    /// [`Precision::gemm`] on raw pointers.
    ///
    /// # Safety
    /// As [`k::gemm_raw`].
    #[inline]
    pub unsafe fn gemm_raw(self, g: &Gemm) {
        match self {
            Precision::F32 => k::gemm_raw(g),
            Precision::Bf16 => k::bf16::gemm_raw(g),
        }
    }

    /// C = A·Bᵀ at this precision (A m × kd, B n × kd, C m × n).
    #[inline]
    pub fn gemm_nt(self, m: usize, n: usize, kd: usize, a: Rows, b: Rows, c: RowsMut) {
        self.gemm(GemmRef::nt(m, n, kd, a, b, c))
    }

    /// `x` as the GEMM sees it: itself (f32) or its bf16 value.
    #[inline]
    pub fn round(self, x: f32) -> f32 {
        match self {
            Precision::F32 => x,
            Precision::Bf16 => k::bf16::to_bf16_f32(x),
        }
    }

    /// A copy of `x` as the GEMM sees it ([`Precision::round`] elementwise), into `out`.
    pub fn round_into(self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend(x.iter().map(|&v| self.round(v)));
    }
}

thread_local! {
    static CURRENT: Cell<Precision> = const { Cell::new(Precision::F32) };
}

/// The precision set by the innermost [`with_precision`] on this thread (f32 outside any).
pub fn current() -> Precision {
    CURRENT.with(|c| c.get())
}

/// Runs `f` with `p` as this thread's [`current`] precision, restoring the previous one after
/// (also when `f` unwinds).
pub fn with_precision<R>(p: Precision, f: impl FnOnce() -> R) -> R {
    struct Restore(Precision);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(p)));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_and_restored() {
        assert_eq!(current(), Precision::F32);
        let inner = with_precision(Precision::Bf16, || {
            let nested = with_precision(Precision::F32, current);
            (current(), nested)
        });
        assert_eq!(inner, (Precision::Bf16, Precision::F32));
        assert_eq!(current(), Precision::F32);
        assert_eq!(Precision::from_code("f", None).unwrap(), Precision::F32);
        assert_eq!(Precision::from_code("f", Some(1)).unwrap(), Precision::Bf16);
        assert!(Precision::from_code("f", Some(2)).is_err());
    }
}
