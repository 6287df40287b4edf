//! The device interface the GPU algorithms are written against.
//!
//! Every algorithm of this crate (similarity, top-k, the contrastive and margin losses, the
//! Wasserstein regularizer) is host code that allocates device buffers, copies, launches the
//! kernels of `kernels/*.cu` by name and calls a column-major SGEMM with cuBLAS semantics. It
//! does so only through [`Device`], which has two implementations:
//!
//! * [`crate::Cuda`]: the real thing (cudarc driver calls, NVRTC-compiled kernels, cuBLAS or our
//!   own GEMM kernel);
//! * `densevec-cuda-emu` (a test-only crate): the same CUDA C sources compiled as C++ for the CPU,
//!   one OS thread per CUDA thread, real barriers for `__syncthreads` and warp exchanges, and a
//!   plain column-major SGEMM. It runs the whole host orchestration — chunking, offsets, GEMM
//!   orientations, kernel arguments — on machines without a GPU.

use std::ffi::c_void;

/// A device address (a `CUdeviceptr` on the GPU, a host address in the emulator).
pub type DevPtr = u64;

/// One kernel argument, passed by value as the kernel's C signature declares it.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    /// Any pointer parameter (`float*`, `const unsigned*`, …).
    Ptr(DevPtr),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F64(f64),
}

impl Arg {
    /// Address of the value, for a `void**` parameter array (cuLaunchKernel's convention).
    pub fn as_param(&self) -> *mut c_void {
        match self {
            Arg::Ptr(p) => p as *const u64 as *mut c_void,
            Arg::I32(v) => v as *const i32 as *mut c_void,
            Arg::U32(v) => v as *const u32 as *mut c_void,
            Arg::I64(v) => v as *const i64 as *mut c_void,
            Arg::F32(v) => v as *const f32 as *mut c_void,
            Arg::F64(v) => v as *const f64 as *mut c_void,
        }
    }
}

/// A column-major single-precision GEMM with cuBLAS semantics:
/// C (m × n, ldc) = alpha · op(A) · op(B) + beta · C, op(X) = X or Xᵀ, op(A) m × k, op(B) k × n.
#[derive(Clone, Copy, Debug)]
pub struct Sgemm {
    pub transa: bool,
    pub transb: bool,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub alpha: f32,
    pub a: DevPtr,
    pub lda: i32,
    pub b: DevPtr,
    pub ldb: i32,
    pub beta: f32,
    pub c: DevPtr,
    pub ldc: i32,
    /// The products may use TF32 inputs (10 explicit mantissa bits, FP32 accumulation): set by
    /// the 3xTF32 scheme, whose operands are split so that this loses nothing (see
    /// `ops::gemm_x`).
    pub tf32: bool,
}

/// Launch geometry.
#[derive(Clone, Copy, Debug)]
pub struct Launch {
    pub grid: [u32; 3],
    pub block: [u32; 3],
}

impl Launch {
    /// A 1-D launch of `blocks` blocks of `threads` threads.
    pub fn blocks(blocks: u32, threads: u32) -> Launch {
        Launch {
            grid: [blocks.max(1), 1, 1],
            block: [threads, 1, 1],
        }
    }
    /// One thread per element, 256 per block.
    pub fn elems(n: usize) -> Launch {
        Launch::blocks(
            (n.max(1) as u64).div_ceil(256).min(u32::MAX as u64) as u32,
            256,
        )
    }
    /// One warp per row, 8 rows per block of 256 threads (the row kernels: `dv_row_aux`,
    /// `dv_row_normalize`, `dv_back_norm`).
    pub fn warp_rows(rows: usize) -> Launch {
        Launch::blocks((rows as u64).div_ceil(8).min(u32::MAX as u64) as u32, 256)
    }
}

/// What the algorithms need from a device. Calls are ordered (one stream); `dtoh` waits for
/// everything issued before it. Errors are messages; the callers map them to `E_BACKEND`.
pub trait Device {
    /// Zero-filled allocation of `bytes` (at least 1).
    fn alloc(&self, bytes: usize) -> Result<DevPtr, String>;
    /// Frees an allocation of [`Device::alloc`].
    fn free(&self, p: DevPtr);
    /// Copies host bytes to device address `dst`.
    fn htod(&self, src: &[u8], dst: DevPtr) -> Result<(), String>;
    /// Copies device bytes at `src` to the host (waits for earlier work).
    fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), String>;
    /// Sets `bytes` bytes at `p` to zero.
    fn zero(&self, p: DevPtr, bytes: usize) -> Result<(), String>;
    /// Launches kernel `name` of `kernels/*.cu` with the given arguments.
    fn launch(&self, name: &str, l: Launch, args: &[Arg]) -> Result<(), String>;
    /// Column-major SGEMM (cuBLAS semantics).
    fn sgemm(&self, g: &Sgemm) -> Result<(), String>;
    /// Waits for all issued work.
    fn sync(&self) -> Result<(), String>;
    /// Bytes of device memory a call may plan to use for scratch.
    fn budget(&self) -> usize;
    /// Most scratch one block of a blocked computation holds (within [`Device::budget`]): big
    /// enough for GEMMs that fill the device, small enough to leave memory to others.
    fn block_cap(&self) -> usize {
        1 << 30
    }
    /// Whether GEMMs should run as 3xTF32 (split operands, three TF32 tensor-core products,
    /// float32 accuracy): true where TF32 tensor cores are much faster than FP32 SGEMM.
    fn tf32x3(&self) -> bool {
        false
    }
}

/// A typed device allocation, freed on drop.
pub struct Buf<'d, T: Copy> {
    dev: &'d dyn Device,
    pub ptr: DevPtr,
    pub len: usize,
    _t: std::marker::PhantomData<T>,
}

impl<'d, T: Copy> Buf<'d, T> {
    /// `len` zeroed elements.
    pub fn zeros(dev: &'d dyn Device, len: usize) -> Result<Self, String> {
        let ptr = dev.alloc((len * std::mem::size_of::<T>()).max(1))?;
        Ok(Buf {
            dev,
            ptr,
            len,
            _t: std::marker::PhantomData,
        })
    }
    /// A copy of `src`.
    pub fn from(dev: &'d dyn Device, src: &[T]) -> Result<Self, String> {
        let b = Self::zeros(dev, src.len())?;
        b.write(0, src)?;
        Ok(b)
    }
    /// Address of element `i`.
    pub fn at(&self, i: usize) -> DevPtr {
        debug_assert!(i <= self.len);
        self.ptr + (i * std::mem::size_of::<T>()) as u64
    }
    /// The argument for element `i`'s address.
    pub fn arg(&self, i: usize) -> Arg {
        Arg::Ptr(self.at(i))
    }
    /// Writes `src` at element offset `off`.
    pub fn write(&self, off: usize, src: &[T]) -> Result<(), String> {
        assert!(off + src.len() <= self.len, "device write out of range");
        // SAFETY: T is Copy plain data (f32, u32, u64, f64); reading its bytes is sound.
        let bytes = unsafe {
            std::slice::from_raw_parts(src.as_ptr() as *const u8, std::mem::size_of_val(src))
        };
        self.dev.htod(bytes, self.at(off))
    }
    /// Reads `dst.len()` elements from element offset `off`.
    pub fn read(&self, off: usize, dst: &mut [T]) -> Result<(), String> {
        assert!(off + dst.len() <= self.len, "device read out of range");
        // SAFETY: as above; every bit pattern is a valid f32/u32/u64/f64.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(dst.as_mut_ptr() as *mut u8, std::mem::size_of_val(dst))
        };
        self.dev.dtoh(self.at(off), bytes)
    }
    /// The whole buffer on the host.
    pub fn to_vec(&self) -> Result<Vec<T>, String>
    where
        T: Default,
    {
        let mut v = vec![T::default(); self.len];
        self.read(0, &mut v)?;
        Ok(v)
    }
    /// Zeroes the whole buffer.
    pub fn clear(&self) -> Result<(), String> {
        self.dev.zero(self.ptr, self.len * std::mem::size_of::<T>())
    }
}

impl<T: Copy> Drop for Buf<'_, T> {
    fn drop(&mut self) {
        self.dev.free(self.ptr);
    }
}

/// A row-major operand of [`gemm_rm`]: the address of its first element, its row stride, and
/// whether it is used transposed (A stored k × m, B stored n × k).
#[derive(Clone, Copy, Debug)]
pub struct Rm {
    pub ptr: DevPtr,
    pub ld: usize,
    pub t: bool,
    /// The values are exact in TF32 (split operands of the 3xTF32 scheme), so the products may
    /// run on TF32 tensor cores ([`Sgemm::tf32`] when both operands are).
    pub tf32: bool,
}

impl Rm {
    /// Used as stored.
    pub fn n(ptr: DevPtr, ld: usize) -> Rm {
        Rm {
            ptr,
            ld,
            t: false,
            tf32: false,
        }
    }
    /// Used transposed.
    pub fn t(ptr: DevPtr, ld: usize) -> Rm {
        Rm {
            t: true,
            ..Rm::n(ptr, ld)
        }
    }
    /// The same operand, its values exact in TF32.
    pub fn tf32(self) -> Rm {
        Rm { tf32: true, ..self }
    }
}

/// Row-major GEMM on a column-major device: C (m × n) = alpha · op(A) · op(B) + beta · C with
/// A, B and C row-major (`c.t` must be false), `[m, n, k]` = `mnk`.
///
/// A row-major matrix with row stride ld is, read column-major, its transpose; so
/// Cᵀ = op(B)ᵀ · op(A)ᵀ is one column-major GEMM with the operands swapped and the same
/// transpose flags.
pub fn gemm_rm(
    dev: &dyn Device,
    [m, n, k]: [usize; 3],
    alpha: f32,
    a: Rm,
    b: Rm,
    beta: f32,
    c: Rm,
) -> Result<(), String> {
    debug_assert!(!c.t, "the output of gemm_rm is never transposed");
    if m == 0 || n == 0 {
        return Ok(());
    }
    let i = |v: usize| i32::try_from(v).map_err(|_| format!("GEMM dimension {v} exceeds 2^31"));
    dev.sgemm(&Sgemm {
        transa: b.t,
        transb: a.t,
        m: i(n)?,
        n: i(m)?,
        k: i(k)?,
        alpha,
        a: b.ptr,
        lda: i(b.ld)?,
        b: a.ptr,
        ldb: i(a.ld)?,
        beta,
        c: c.ptr,
        ldc: i(c.ld)?,
        tf32: a.tf32 && b.tf32,
    })
}

/// [`Device::sgemm`] through densevec's own kernel `dv_sgemm` (similarity.cu): what the CUDA
/// device does when cuBLAS is absent, and what the emulator tests use to check that kernel.
pub fn sgemm_by_kernel(dev: &dyn Device, g: &Sgemm) -> Result<(), String> {
    if g.m <= 0 || g.n <= 0 {
        return Ok(());
    }
    let gy = (g.n as u32).div_ceil(64).clamp(1, 65_535);
    dev.launch(
        "dv_sgemm",
        Launch {
            grid: [(g.m as u32).div_ceil(64), gy, 1],
            block: [256, 1, 1],
        },
        &[
            Arg::I32(g.transa as i32),
            Arg::I32(g.transb as i32),
            Arg::I32(g.m),
            Arg::I32(g.n),
            Arg::I32(g.k),
            Arg::F32(g.alpha),
            Arg::Ptr(g.a),
            Arg::I32(g.lda),
            Arg::Ptr(g.b),
            Arg::I32(g.ldb),
            Arg::F32(g.beta),
            Arg::Ptr(g.c),
            Arg::I32(g.ldc),
        ],
    )
}
