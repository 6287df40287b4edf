//! densevec-cuda-emu: a CPU emulator of the CUDA kernels of densevec-cuda, for tests only.
//!
//! [`Emu`] implements [`densevec_cuda::dev::Device`], the interface the GPU algorithms are
//! written against, so their host orchestration (chunking, offsets, GEMM orientations, kernel
//! arguments) runs — and is checked — on machines without a GPU:
//!
//! * kernels are the real CUDA C sources of `densevec-cuda/kernels/*.cu`, compiled as C++20
//!   with `emu/cuda_emu.h` (build.rs picks up every .cu file and every
//!   `extern "C" __global__` kernel in it); a launch runs one OS thread per CUDA thread, the
//!   blocks one after the other, with real barriers for `__syncthreads` and warp exchanges;
//! * memory is host memory with guard zones; copies, kernel pointer arguments and GEMM operands
//!   are checked against the live allocations; writes past an allocation are reported;
//! * SGEMM is a plain column-major GEMM with cuBLAS semantics, accumulated in f64.
//!
//! The emulator is Linux-only: on other targets this crate is empty. See README.md for what it
//! does not model.

#[cfg(target_os = "linux")]
mod ffi;
#[cfg(target_os = "linux")]
mod gemm;
#[cfg(target_os = "linux")]
mod mem;

#[cfg(target_os = "linux")]
pub use emu::{Emu, DEFAULT_BUDGET};

#[cfg(target_os = "linux")]
mod emu {
    use crate::{ffi, gemm, mem::Memory};
    use densevec_cuda::dev::{Arg, DevPtr, Device, Launch, Sgemm};
    use std::sync::{Mutex, MutexGuard};

    /// Serialises launches of every [`Emu`] of the process: `blockDim`, `gridDim` and the
    /// statics that stand for shared memory are process-wide, and cargo runs tests in
    /// parallel.
    static LAUNCH: Mutex<()> = Mutex::new(());

    /// The default of [`Device::budget`]: 256 MiB.
    pub const DEFAULT_BUDGET: usize = 256 << 20;

    /// An emulated device. Calls run synchronously; errors that a GPU reports asynchronously
    /// (a bad free, memory corrupted by a kernel) are reported by the next [`Device::sync`] or
    /// [`Device::dtoh`], launches additionally check the guard zones right after the kernel.
    pub struct Emu {
        mem: Mutex<Memory>,
        budget: usize,
        tf32x3: bool,
        f32_sums: bool,
    }

    impl Default for Emu {
        fn default() -> Self {
            Emu::new()
        }
    }

    impl Emu {
        /// A device with the default budget ([`DEFAULT_BUDGET`]).
        pub fn new() -> Emu {
            Emu::with_budget(DEFAULT_BUDGET)
        }

        /// A device whose [`Device::budget`] is `bytes`, so that tests can force the
        /// algorithms to work in small chunks.
        pub fn with_budget(bytes: usize) -> Emu {
            Emu {
                mem: Mutex::new(Memory::default()),
                budget: bytes,
                tf32x3: false,
                f32_sums: false,
            }
        }

        /// The same device with its SGEMM summing float32 products one by one in float32 — a
        /// pessimistic model of device accumulation, to check that tolerances hold without the
        /// emulator's default float64 sums.
        pub fn with_f32_sums(mut self, on: bool) -> Emu {
            self.f32_sums = on;
            self
        }

        /// The same device answering [`Device::tf32x3`] with `on`, so that the algorithms take
        /// their 3xTF32 path (split operands, TF32 products emulated by rounding the inputs).
        pub fn with_tf32x3(mut self, on: bool) -> Emu {
            self.tf32x3 = on;
            self
        }

        fn mem(&self) -> MutexGuard<'_, Memory> {
            self.mem.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// Allocations not freed yet (0 after a call that cleans up after itself).
        pub fn live_allocations(&self) -> usize {
            self.mem().live_allocations()
        }

        /// Bytes of the allocations not freed yet.
        pub fn live_bytes(&self) -> usize {
            self.mem().live_bytes()
        }

        /// The largest `live_bytes` seen.
        pub fn peak_bytes(&self) -> usize {
            self.mem().peak_bytes()
        }

        /// Every compiled kernel: (file, kernel name), `file` being `kernels/NAME.cu` for the
        /// kernels of densevec-cuda and `tests/NAME.cu` for the emulator's own test kernels.
        pub fn kernels() -> Vec<(String, &'static str)> {
            ffi::FILES
                .iter()
                .flat_map(|f| {
                    f.kernels
                        .iter()
                        .map(|k| (format!("{}/{}", f.dir, f.file), *k))
                })
                .collect()
        }
    }

    impl Device for Emu {
        fn alloc(&self, bytes: usize) -> Result<DevPtr, String> {
            self.mem().alloc(bytes)
        }

        fn free(&self, p: DevPtr) {
            self.mem().free(p)
        }

        fn htod(&self, src: &[u8], dst: DevPtr) -> Result<(), String> {
            if src.is_empty() {
                return Ok(());
            }
            let mem = self.mem();
            mem.check_range("htod", dst, src.len())?;
            // SAFETY: the destination range lies inside a live allocation (checked, and kept
            // alive by the lock); host and device memory never overlap.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
            Ok(())
        }

        fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), String> {
            if dst.is_empty() {
                return Ok(());
            }
            let mut mem = self.mem();
            mem.check_range("dtoh", src, dst.len())?;
            mem.check_all()?;
            // SAFETY: as in htod.
            unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
            Ok(())
        }

        fn zero(&self, p: DevPtr, bytes: usize) -> Result<(), String> {
            if bytes == 0 {
                return Ok(());
            }
            let mem = self.mem();
            mem.check_range("zero", p, bytes)?;
            // SAFETY: as in htod.
            unsafe { std::ptr::write_bytes(p as *mut u8, 0, bytes) };
            Ok(())
        }

        fn launch(&self, name: &str, l: Launch, args: &[Arg]) -> Result<(), String> {
            let k = ffi::find(name).ok_or_else(|| {
                format!(
                    "unknown kernel {name}: no `extern \"C\" __global__` function of that name in \
                     densevec-cuda/kernels/*.cu"
                )
            })?;
            k.check_args(args)?;
            let _one = LAUNCH.lock().unwrap_or_else(|p| p.into_inner());
            // The memory lock is held for the whole launch: nothing can be freed under a
            // running kernel.
            let mem = self.mem();
            for (i, a) in args.iter().enumerate() {
                if let Arg::Ptr(p) = *a {
                    if p != 0 && !mem.points_into(p) {
                        return Err(format!(
                            "kernel {name}: argument {i} (0x{p:x}) does not point into any live \
                             allocation (freed, or not allocated on this device)"
                        ));
                    }
                }
            }
            ffi::launch(k, &l, args)?;
            mem.check_guards()
                .map_err(|e| format!("after kernel {name}: {e}"))
        }

        fn sgemm(&self, g: &Sgemm) -> Result<(), String> {
            gemm::validate(g)?;
            gemm::run(&self.mem(), g, self.f32_sums)
        }

        fn sync(&self) -> Result<(), String> {
            self.mem().check_all()
        }

        fn budget(&self) -> usize {
            self.budget
        }

        fn tf32x3(&self) -> bool {
            self.tf32x3
        }
    }
}
