//! What the kernel test files share: the lock around the process-global ISA setting, a
//! deterministic generator, and GEMM cases with their float64 reference.
#![allow(dead_code)] // each test file uses its own part

use densevec_kernels::{GemmRef, RowsMut};
use std::sync::{Mutex, MutexGuard};

static LOCK: Mutex<()> = Mutex::new(());

/// `isa::set` is process-global and the harness runs tests on several threads: every test that
/// forces an ISA holds this.
pub fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deterministic xorshift64* generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn f(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f()).collect()
    }
}

/// The A and B of one GEMM test: A m × kd, B n × kd (`nt`, the product A·Bᵀ) or kd × n (A·B),
/// both row-major with leading dimensions `lda`, `ldb`.
pub struct Case {
    pub nt: bool,
    pub m: usize,
    pub n: usize,
    pub kd: usize,
    pub a: Vec<f32>,
    pub lda: usize,
    pub b: Vec<f32>,
    pub ldb: usize,
}

impl Case {
    /// Random operands whose rows are `pad` = (A's, B's) floats longer than they need be.
    pub fn random(
        rng: &mut Rng,
        nt: bool,
        (m, n, kd): (usize, usize, usize),
        pad: (usize, usize),
    ) -> Case {
        let lda = kd + pad.0;
        let ldb = if nt { kd } else { n } + pad.1;
        let a = rng.vec(m.max(1) * lda);
        let b = rng.vec(if nt { n.max(1) } else { kd.max(1) } * ldb);
        Case {
            nt,
            m,
            n,
            kd,
            a,
            lda,
            b,
            ldb,
        }
    }

    pub fn a_at(&self, i: usize, p: usize) -> f32 {
        self.a[i * self.lda + p]
    }

    /// B's factor for column `j` of C at step `p`.
    pub fn b_at(&self, j: usize, p: usize) -> f32 {
        if self.nt {
            self.b[j * self.ldb + p]
        } else {
            self.b[p * self.ldb + j]
        }
    }

    /// The product into `c` (leading dimension `c.1`), written over it.
    pub fn op<'a>(&'a self, c: RowsMut<'a>) -> GemmRef<'a> {
        self.tile((0, 0), (self.m, self.n), c)
    }

    /// Rows `i0..i0 + mb`, columns `j0..j0 + nb` of the product, into `c` (whose first element
    /// is C's element (i0, j0)).
    pub fn tile<'a>(
        &'a self,
        (i0, j0): (usize, usize),
        (mb, nb): (usize, usize),
        c: RowsMut<'a>,
    ) -> GemmRef<'a> {
        let a = (&self.a[i0 * self.lda..], self.lda);
        if self.nt {
            GemmRef::nt(mb, nb, self.kd, a, (&self.b[j0 * self.ldb..], self.ldb), c)
        } else {
            GemmRef::nn(mb, nb, self.kd, a, (&self.b[j0..], self.ldb), c)
        }
    }

    /// C (m × n, dense) computed by `run` in one call, and tile by tile with the tile edges at
    /// `rows` and `cols` (each list runs from 0 to m or n).
    pub fn whole_and_tiled(
        &self,
        run: fn(GemmRef),
        rows: &[usize],
        cols: &[usize],
    ) -> (Vec<f32>, Vec<f32>) {
        let n = self.n;
        let mut whole = vec![0f32; self.m * n];
        run(self.op((&mut whole, n)));
        let mut tiled = vec![0f32; self.m * n];
        for r in rows.windows(2) {
            for c in cols.windows(2) {
                let out = (&mut tiled[r[0] * n + c[0]..], n);
                run(self.tile((r[0], c[0]), (r[1] - r[0], c[1] - c[0]), out));
            }
        }
        (whole, tiled)
    }

    /// Σ_p round(a)·round(b) per element of C (m × n, dense) in float64, and Σ_p |a·b|.
    pub fn f64_ref(&self, round: fn(f32) -> f32) -> (Vec<f64>, Vec<f64>) {
        let (mut c, mut abs) = (vec![0f64; self.m * self.n], vec![0f64; self.m * self.n]);
        for i in 0..self.m {
            for j in 0..self.n {
                let (mut s, mut t) = (0f64, 0f64);
                for p in 0..self.kd {
                    let v = round(self.a_at(i, p)) as f64 * round(self.b_at(j, p)) as f64;
                    s += v;
                    t += v.abs();
                }
                c[i * self.n + j] = s;
                abs[i * self.n + j] = t;
            }
        }
        (c, abs)
    }
}

/// Tile edges 0, step, 2·step, …, len.
pub fn edges(len: usize, step: usize) -> Vec<usize> {
    let mut e: Vec<usize> = (0..len).step_by(step).collect();
    e.push(len);
    e
}

/// Whether two results are equal bit for bit.
pub fn same_bits(x: &[f32], y: &[f32]) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits())
}

impl Case {
    /// A (m × kd, row-major) stored transposed: kd × m with leading dimension `m + pad`.
    pub fn a_transposed(&self, pad: usize) -> (Vec<f32>, usize) {
        let ld = self.m + pad;
        let mut at = vec![f32::NAN; self.kd * ld];
        for i in 0..self.m {
            for p in 0..self.kd {
                at[p * ld + i] = self.a[i * self.lda + p];
            }
        }
        (at, ld)
    }
}

/// The shapes on which the transposed-A product is compared with the plain one: edge rows and
/// columns, odd k, several KC / MC / NC blocks, and the short-A order.
pub fn tn_shapes() -> Vec<(usize, usize, usize)> {
    vec![
        (1, 1, 1),
        (3, 5, 7),
        (13, 33, 9),
        (25, 70, 385),
        (100, 64, 768),
        (170, 45, 1001),
        (251, 97, 300),
        (400, 50, 2000),
    ]
}
