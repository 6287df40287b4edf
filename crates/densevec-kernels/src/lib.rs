//! densevec-kernels: the SIMD inner loops of densevec, one module per ISA, chosen at run time.
//!
//! Every public function here dispatches on [`isa::active`]. The scalar path accumulates in
//! float64 and is the baseline for the SIMD paths, which accumulate in float32 with several
//! independent accumulators. No dependencies; kept buildable by rustc 1.63 so that the NEON
//! path can be built and tested with Debian's toolchain under qemu-aarch64.
//!
//! Preconditions (checked by callers, `debug_assert`ed here): paired slices have equal length,
//! GEMM operands are large enough for their leading dimensions.

pub mod bf16;
pub mod cpu;
pub mod f16;
pub mod isa;
pub mod scalar;

mod simd;

mod gemm;

#[cfg(target_arch = "x86_64")]
pub mod x86;

#[cfg(target_arch = "aarch64")]
pub mod aarch64;

pub use gemm::Gemm;
pub use isa::Isa;

macro_rules! dispatch {
    ($name:ident ( $($arg:expr),* )) => {{
        #[allow(unused_unsafe)]
        match isa::active() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::avx512::$name($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::avx2::$name($($arg),*) },
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => unsafe { aarch64::neon::$name($($arg),*) },
            _ => unsafe { scalar::$name($($arg),*) },
        }
    }};
}

/// The kernels of one ISA, chosen once per operation by [`kernels`] and then called without
/// looking the ISA up again: a row loop takes the table before it starts. Same functions as
/// the free ones (same bits); the ISA stays the one active when the table was taken.
///
/// The row kernels (`dot_rows`, `dot_norms_rows`, `l2sq_rows`, `sumsq_rows`, `scale_rows`)
/// run a whole block of rows in one call: the per-row kernel is inlined into the row loop, and
/// each row's value is bit-identical to the per-row kernel on that row.
#[derive(Clone, Copy)]
pub struct Kernels {
    isa: Isa,
    dot: unsafe fn(&[f32], &[f32]) -> f32,
    dot_norms: DotNorms,
    l2sq: unsafe fn(&[f32], &[f32]) -> f32,
    sumsq: unsafe fn(&[f32]) -> f32,
    scale: unsafe fn(&mut [f32], f32),
    axpy: unsafe fn(&mut [f32], f32, &[f32]),
    max: unsafe fn(&[f32]) -> f32,
    exp_shift_sum: unsafe fn(&mut [f32], f32) -> f64,
    dot_rows: PairRows<f32>,
    dot_norms_rows: PairRows<(f32, f32, f32)>,
    l2sq_rows: PairRows<f32>,
    sumsq_rows: unsafe fn(&[f32], usize, &mut [f32]),
    scale_rows: unsafe fn(&mut [f32], usize, &[f32]),
}

type DotNorms = unsafe fn(&[f32], &[f32]) -> (f32, f32, f32);
/// A row kernel over two row-major matrices: (a, b, cols, one output per row).
type PairRows<T> = unsafe fn(&[f32], &[f32], usize, &mut [T]);

/// Whether a row-major matrix of `len` values holds exactly `rows` rows of `cols` values.
fn holds_rows(len: usize, rows: usize, cols: usize) -> bool {
    rows.checked_mul(cols) == Some(len)
}

/// The kernel table of the active ISA ([`isa::active`]).
pub fn kernels() -> Kernels {
    macro_rules! table {
        ($isa:expr, $($m:ident)::+) => {
            Kernels {
                isa: $isa,
                dot: $($m)::+::dot,
                dot_norms: $($m)::+::dot_norms,
                l2sq: $($m)::+::l2sq,
                sumsq: $($m)::+::sumsq,
                scale: $($m)::+::scale,
                axpy: $($m)::+::axpy,
                max: $($m)::+::max,
                exp_shift_sum: $($m)::+::exp_shift_sum,
                dot_rows: $($m)::+::dot_rows,
                dot_norms_rows: $($m)::+::dot_norms_rows,
                l2sq_rows: $($m)::+::l2sq_rows,
                sumsq_rows: $($m)::+::sumsq_rows,
                scale_rows: $($m)::+::scale_rows,
            }
        };
    }
    match isa::active() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => table!(Isa::Avx512, x86::avx512),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => table!(Isa::Avx2, x86::avx2),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => table!(Isa::Neon, aarch64::neon),
        _ => table!(Isa::Scalar, scalar),
    }
}

// SAFETY (every method): the function pointers come from `kernels()`, which only installs an
// ISA's functions when that ISA is active, i.e. supported by this CPU (`isa::set` refuses
// others); the functions accept any lengths, the row kernels any lengths that `holds_rows`
// (asserted before the call).
impl Kernels {
    /// The ISA these kernels run.
    pub fn isa(&self) -> Isa {
        self.isa
    }
    /// Σ a_k b_k ([`dot`]).
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        unsafe { (self.dot)(a, b) }
    }
    /// (a·b, ‖a‖², ‖b‖²) ([`dot_norms`]).
    #[inline]
    pub fn dot_norms(&self, a: &[f32], b: &[f32]) -> (f32, f32, f32) {
        debug_assert_eq!(a.len(), b.len());
        unsafe { (self.dot_norms)(a, b) }
    }
    /// Σ (a_k − b_k)² ([`l2sq`]).
    #[inline]
    pub fn l2sq(&self, a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        unsafe { (self.l2sq)(a, b) }
    }
    /// ‖a‖² ([`sumsq`]).
    #[inline]
    pub fn sumsq(&self, a: &[f32]) -> f32 {
        unsafe { (self.sumsq)(a) }
    }
    /// x ← s·x ([`scale`]).
    #[inline]
    pub fn scale(&self, x: &mut [f32], s: f32) {
        unsafe { (self.scale)(x, s) }
    }
    /// y ← y + alpha·x ([`axpy`]).
    #[inline]
    pub fn axpy(&self, y: &mut [f32], alpha: f32, x: &[f32]) {
        debug_assert_eq!(y.len(), x.len());
        unsafe { (self.axpy)(y, alpha, x) }
    }
    /// max_k x_k ([`max`]).
    #[inline]
    pub fn max(&self, x: &[f32]) -> f32 {
        unsafe { (self.max)(x) }
    }
    /// x_k ← exp(x_k − shift), Σ in float64 ([`exp_shift_sum`]).
    #[inline]
    pub fn exp_shift_sum(&self, x: &mut [f32], shift: f32) -> f64 {
        unsafe { (self.exp_shift_sum)(x, shift) }
    }
    /// out_i = a_i·b_i for the `out.len()` rows of the row-major `a` and `b` (`cols` values
    /// per row): [`Kernels::dot`] on each row, same bits. Panics unless `a` and `b` hold
    /// exactly `out.len()` rows.
    #[inline]
    pub fn dot_rows(&self, a: &[f32], b: &[f32], cols: usize, out: &mut [f32]) {
        self.pair_rows(self.dot_rows, a, b, cols, out)
    }
    /// out_i = (a_i·b_i, ‖a_i‖², ‖b_i‖²) per row: [`Kernels::dot_norms`] on each row (as
    /// [`Kernels::dot_rows`]).
    #[inline]
    pub fn dot_norms_rows(&self, a: &[f32], b: &[f32], cols: usize, out: &mut [(f32, f32, f32)]) {
        self.pair_rows(self.dot_norms_rows, a, b, cols, out)
    }
    /// out_i = ‖a_i − b_i‖² per row: [`Kernels::l2sq`] on each row (as [`Kernels::dot_rows`]).
    #[inline]
    pub fn l2sq_rows(&self, a: &[f32], b: &[f32], cols: usize, out: &mut [f32]) {
        self.pair_rows(self.l2sq_rows, a, b, cols, out)
    }
    /// out_i = ‖a_i‖² per row: [`Kernels::sumsq`] on each row. Panics unless `a` holds exactly
    /// `out.len()` rows of `cols` values.
    #[inline]
    pub fn sumsq_rows(&self, a: &[f32], cols: usize, out: &mut [f32]) {
        assert!(holds_rows(a.len(), out.len(), cols), "sumsq_rows: shape");
        unsafe { (self.sumsq_rows)(a, cols, out) }
    }
    /// Row i of `x` ← s_i · row i: [`Kernels::scale`] on each row. Panics unless `x` holds
    /// exactly `s.len()` rows of `cols` values.
    #[inline]
    pub fn scale_rows(&self, x: &mut [f32], cols: usize, s: &[f32]) {
        assert!(holds_rows(x.len(), s.len(), cols), "scale_rows: shape");
        unsafe { (self.scale_rows)(x, cols, s) }
    }
    /// Runs a pair row kernel after checking the shapes.
    #[inline]
    fn pair_rows<T>(&self, f: PairRows<T>, a: &[f32], b: &[f32], cols: usize, out: &mut [T]) {
        let n = out.len();
        assert!(
            holds_rows(a.len(), n, cols) && holds_rows(b.len(), n, cols),
            "row kernel: shape"
        );
        unsafe { f(a, b, cols, out) }
    }
}

/// Σ a_k b_k.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    dispatch!(dot(a, b))
}

/// (a·b, ‖a‖², ‖b‖²) in one pass over both vectors.
#[inline]
pub fn dot_norms(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
    debug_assert_eq!(a.len(), b.len());
    dispatch!(dot_norms(a, b))
}

/// Σ (a_k − b_k)².
#[inline]
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    dispatch!(l2sq(a, b))
}

/// ‖a‖².
#[inline]
pub fn sumsq(a: &[f32]) -> f32 {
    dispatch!(sumsq(a))
}

/// x ← s·x.
#[inline]
pub fn scale(x: &mut [f32], s: f32) {
    dispatch!(scale(x, s))
}

/// y ← y + alpha·x.
#[inline]
pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    debug_assert_eq!(y.len(), x.len());
    dispatch!(axpy(y, alpha, x))
}

/// max_k x_k; −∞ for an empty slice; NaN if any element is NaN.
#[inline]
pub fn max(x: &[f32]) -> f32 {
    dispatch!(max(x))
}

/// x_k ← exp(x_k − shift) and returns Σ_k of the new values in float64. With
/// shift = max(x) this is the stable log-sum-exp step: lse = shift + ln(returned sum).
#[inline]
pub fn exp_shift_sum(x: &mut [f32], shift: f32) -> f64 {
    dispatch!(exp_shift_sum(x, shift))
}

/// out_k ← (exp(z_k − shift) − sub)·mul in one pass (`z` unchanged): each exp the bits that
/// [`exp_shift_sum`] stores, then one rounded subtraction and one rounded multiplication.
/// Panics unless `z` and `out` have the same length.
#[inline]
pub fn exp_shift_affine(z: &[f32], out: &mut [f32], shift: f32, sub: f32, mul: f32) {
    assert_eq!(z.len(), out.len(), "exp_shift_affine: lengths");
    dispatch!(exp_shift_affine(z, out, shift, sub, mul))
}

/// (Σ_k e_k, Σ_k e_k·z_k) with e_k = exp(z_k − shift), in float64, storing nothing: the
/// sums of [`exp_shift_sum`] and of its results dotted with `z`, in one pass. Terms whose e_k
/// is 0 add 0 to both (a −∞ logit included).
#[inline]
pub fn exp_shift_sum_dot(z: &[f32], shift: f32) -> (f64, f64) {
    dispatch!(exp_shift_sum_dot(z, shift))
}

/// A row-major GEMM operand: its values, and the distance between the starts of consecutive
/// rows (the leading dimension).
pub type Rows<'a> = (&'a [f32], usize);
/// A row-major GEMM output: its values and leading dimension.
pub type RowsMut<'a> = (&'a mut [f32], usize);
/// [`Rows`] on a raw pointer.
pub type RawRows = (*const f32, usize);
/// [`RowsMut`] on a raw pointer.
pub type RawRowsMut = (*mut f32, usize);

impl Gemm {
    /// C = A·Bᵀ: A is m × kd (`a`), B is n × kd (`b`), C is m × n (`c`).
    pub fn nt(m: usize, n: usize, kd: usize, a: RawRows, b: RawRows, c: RawRowsMut) -> Gemm {
        Gemm {
            m,
            n,
            k: kd,
            a: a.0,
            lda: a.1,
            b: b.0,
            ldb: b.1,
            c: c.0,
            ldc: c.1,
            nt: true,
            ta: false,
            accumulate: false,
        }
    }

    /// C = A·B: A is m × kd, B is kd × n, C is m × n.
    pub fn nn(m: usize, n: usize, kd: usize, a: RawRows, b: RawRows, c: RawRowsMut) -> Gemm {
        Gemm {
            nt: false,
            ..Gemm::nt(m, n, kd, a, b, c)
        }
    }

    /// C = Aᵀ·B: A is kd × m (`a`, so C's row i is column i of A), B is kd × n, C is m × n.
    /// Each element is the same chain of fused multiply-adds over k as [`Gemm::nn`] on an
    /// explicitly transposed A: the product without the copy.
    pub fn tn(m: usize, n: usize, kd: usize, a: RawRows, b: RawRows, c: RawRowsMut) -> Gemm {
        Gemm {
            ta: true,
            ..Gemm::nn(m, n, kd, a, b, c)
        }
    }

    /// The same product added to C (`on`) or written over it.
    pub fn accumulate(self, on: bool) -> Gemm {
        Gemm {
            accumulate: on,
            ..self
        }
    }
}

/// A [`Gemm`] on slices whose lengths have been checked against the shapes, borrowing them for
/// `'a`: what the safe entry points ([`gemm`], [`bf16::gemm`]) run.
#[derive(Clone, Copy)]
pub struct GemmRef<'a> {
    g: Gemm,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

impl<'a> GemmRef<'a> {
    /// C = A·Bᵀ (A m × kd, B n × kd). Panics when a slice is shorter than its shape asks.
    pub fn nt(m: usize, n: usize, kd: usize, a: Rows<'a>, b: Rows<'a>, c: RowsMut<'a>) -> Self {
        if m > 0 && n > 0 {
            assert!(a.0.len() >= (m - 1) * a.1 + kd && a.1 >= kd);
            assert!(b.0.len() >= (n - 1) * b.1 + kd && b.1 >= kd);
        }
        Self::wrap(Gemm::nt(m, n, kd, raw(a), raw(b), raw_mut(c, m, n)))
    }

    /// C = A·B (A m × kd, B kd × n). Panics when a slice is shorter than its shape asks.
    pub fn nn(m: usize, n: usize, kd: usize, a: Rows<'a>, b: Rows<'a>, c: RowsMut<'a>) -> Self {
        if m > 0 && n > 0 && kd > 0 {
            assert!(a.0.len() >= (m - 1) * a.1 + kd && a.1 >= kd);
            assert!(b.0.len() >= (kd - 1) * b.1 + n && b.1 >= n);
        }
        Self::wrap(Gemm::nn(m, n, kd, raw(a), raw(b), raw_mut(c, m, n)))
    }

    /// C = Aᵀ·B (A kd × m, B kd × n). Panics when a slice is shorter than its shape asks.
    pub fn tn(m: usize, n: usize, kd: usize, a: Rows<'a>, b: Rows<'a>, c: RowsMut<'a>) -> Self {
        if m > 0 && n > 0 && kd > 0 {
            assert!(a.0.len() >= (kd - 1) * a.1 + m && a.1 >= m);
            assert!(b.0.len() >= (kd - 1) * b.1 + n && b.1 >= n);
        }
        Self::wrap(Gemm::tn(m, n, kd, raw(a), raw(b), raw_mut(c, m, n)))
    }

    /// The same product added to C (`on`) or written over it.
    pub fn accumulate(self, on: bool) -> Self {
        Self::wrap(self.g.accumulate(on))
    }

    /// The checked operands.
    pub fn get(&self) -> &Gemm {
        &self.g
    }

    fn wrap(g: Gemm) -> Self {
        GemmRef {
            g,
            _borrow: std::marker::PhantomData,
        }
    }
}

fn raw(a: Rows) -> RawRows {
    (a.0.as_ptr(), a.1)
}

fn raw_mut(c: RowsMut, m: usize, n: usize) -> RawRowsMut {
    if m > 0 && n > 0 {
        assert!(c.0.len() >= (m - 1) * c.1 + n && c.1 >= n);
    }
    (c.0.as_mut_ptr(), c.1)
}

/// Runs a checked GEMM: C = A·Bᵀ or A·B (or C += …), single-threaded; callers split work across
/// threads. C[i·ldc + j] (+)= Σ_{p<kd} A[i·lda + p]·B(j, p) with B(j, p) = B[j·ldb + p] (NT) or
/// B[p·ldb + j] (NN). Every element's sum is formed in the same order whatever m, n and the
/// position of the element, so results do not depend on how a caller tiles the problem.
#[inline]
pub fn gemm(g: GemmRef) {
    // SAFETY: GemmRef's constructors checked the slices against the shapes and borrow them.
    unsafe { gemm_raw(g.get()) }
}

/// [`gemm`] on raw pointers, for callers that write disjoint tiles of one output from several
/// threads.
///
/// # Safety
/// `a` must be valid for reads of rows `0..m` (`lda` apart, `k` each; transposed A: `k` rows
/// of `m`), `b` likewise for its shape (NN: `k` rows of `n`), and `c` valid for writes of the `m × n` tile with leading
/// dimension `ldc`; no other thread may access that tile meanwhile.
#[inline]
pub unsafe fn gemm_raw(g: &Gemm) {
    dispatch!(gemm(g))
}

/// C = A·Bᵀ on slices ([`gemm`] of [`GemmRef::nt`]).
#[inline]
pub fn gemm_nt(m: usize, n: usize, kd: usize, a: Rows, b: Rows, c: RowsMut) {
    gemm(GemmRef::nt(m, n, kd, a, b, c))
}

/// C (+)= A·B on slices ([`gemm`] of [`GemmRef::nn`]).
#[inline]
pub fn gemm_nn(m: usize, n: usize, kd: usize, a: Rows, b: Rows, c: RowsMut, accumulate: bool) {
    gemm(GemmRef::nn(m, n, kd, a, b, c).accumulate(accumulate))
}

/// Floating-point operations per second of one thread running independent fused multiply-adds
/// on the active ISA's full vectors (register operands only) for about `seconds`: the per-core
/// arithmetic peak that the GEMM figures are compared with. Runs on the calling thread.
pub fn fma_peak(seconds: f64) -> f64 {
    let lanes = match isa::active() {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
        Isa::Neon => 4,
        Isa::Scalar => 1,
    };
    let accs = match isa::active() {
        Isa::Avx512 => 24,
        Isa::Avx2 => 12,
        Isa::Neon => 16,
        Isa::Scalar => 4,
    };
    let run = |iters: usize| {
        let t = std::time::Instant::now();
        let s = dispatch!(fma_loop(iters));
        // SAFETY: reads a local; volatile so that the loop's result counts as used.
        unsafe { std::ptr::read_volatile(&s) };
        t.elapsed().as_secs_f64()
    };
    let mut iters = 1usize << 14;
    let mut best = 0f64;
    let start = std::time::Instant::now();
    loop {
        let t = run(iters);
        if t > 0.0 {
            best = best.max((iters * accs * lanes * 2) as f64 / t);
        }
        if start.elapsed().as_secs_f64() >= seconds {
            return best;
        }
        if t < 0.01 {
            iters *= 2;
        }
    }
}
