//! Checks of the densevec-cuda backend, kept out of the shipped library:
//!
//! * [`parity`]: every GPU function against the CPU core at the reference parity tolerances,
//!   the cases written once and run on any [`parity::Rig`] — the CPU emulator of the kernels
//!   (`cargo test -p densevec-cuda-emu`, small shapes, budgets that force the multi-block
//!   paths) and a real GPU (the `gpu-check` binary, large shapes);
//! * [`bench`]: the GPU check's timings;
//! * [`Gemm`]: a device with its GEMMs run another way (plain FP32, 3xTF32, densevec's own
//!   SGEMM kernel), for both.

pub mod bench;
pub mod parity;

use densevec_cuda::dev::{sgemm_by_kernel, Arg, DevPtr, Device, Launch, Sgemm};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

/// How a [`Gemm`] device runs its GEMMs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmMode {
    /// As the device chooses (3xTF32 on A100/H100/H200/B200 with cuBLAS, else FP32).
    AsIs,
    /// Plain FP32 SGEMM (cuBLAS, or the device's own SGEMM).
    Fp32,
    /// Split operands and three TF32 products (where the device has no TF32 tensor cores, the
    /// products run in FP32 on the same split operands).
    Tf32x3,
    /// densevec's own SGEMM kernel (`dv_sgemm`) instead of cuBLAS: what a machine without
    /// libcublas runs.
    OwnKernel,
}

impl GemmMode {
    /// The mode's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            GemmMode::AsIs => "as the device runs",
            GemmMode::Fp32 => "FP32 SGEMM",
            GemmMode::Tf32x3 => "3xTF32",
            GemmMode::OwnKernel => "own SGEMM kernel",
        }
    }
}

/// `inner` with its GEMMs run in `mode`; everything else is `inner`'s.
pub struct Gemm<'a> {
    pub inner: &'a dyn Device,
    pub mode: GemmMode,
}

impl Device for Gemm<'_> {
    fn alloc(&self, bytes: usize) -> Result<DevPtr, String> {
        self.inner.alloc(bytes)
    }
    fn free(&self, p: DevPtr) {
        self.inner.free(p)
    }
    fn htod(&self, src: &[u8], dst: DevPtr) -> Result<(), String> {
        self.inner.htod(src, dst)
    }
    fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), String> {
        self.inner.dtoh(src, dst)
    }
    fn zero(&self, p: DevPtr, bytes: usize) -> Result<(), String> {
        self.inner.zero(p, bytes)
    }
    fn launch(&self, name: &str, l: Launch, args: &[Arg]) -> Result<(), String> {
        self.inner.launch(name, l, args)
    }
    fn sgemm(&self, g: &Sgemm) -> Result<(), String> {
        match self.mode {
            GemmMode::OwnKernel => sgemm_by_kernel(self, g),
            _ => self.inner.sgemm(g),
        }
    }
    fn sync(&self) -> Result<(), String> {
        self.inner.sync()
    }
    fn budget(&self) -> usize {
        self.inner.budget()
    }
    fn block_cap(&self) -> usize {
        self.inner.block_cap()
    }
    fn tf32x3(&self) -> bool {
        match self.mode {
            GemmMode::AsIs => self.inner.tf32x3(),
            GemmMode::Tf32x3 => true,
            GemmMode::Fp32 | GemmMode::OwnKernel => false,
        }
    }
}

/// `inner` with every call synchronized and timed, by kind (alloc, free, htod, dtoh, zero,
/// each kernel by name, sgemm): where the time of a GPU call goes. Synchronizing after each
/// call removes the overlap of copies and kernels, so the parts add up to a little more than
/// an unmeasured call.
pub struct Timed<'a> {
    pub inner: &'a dyn Device,
    /// Kind → (milliseconds, calls, bytes moved).
    pub parts: RefCell<BTreeMap<String, (f64, usize, usize)>>,
}

impl<'a> Timed<'a> {
    pub fn new(inner: &'a dyn Device) -> Self {
        Timed {
            inner,
            parts: RefCell::new(BTreeMap::new()),
        }
    }

    fn time<T>(
        &self,
        kind: &str,
        bytes: usize,
        f: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, String> {
        let t0 = Instant::now();
        let r = f();
        let r = r.and_then(|v| self.inner.sync().map(|_| v));
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut p = self.parts.borrow_mut();
        let e = p.entry(kind.to_string()).or_insert((0.0, 0, 0));
        e.0 += ms;
        e.1 += 1;
        e.2 += bytes;
        r
    }

    /// The parts as a JSON object and a printed table line each, largest first.
    pub fn report(&self, label: &str, total_ms: f64) -> String {
        let p = self.parts.borrow();
        let mut v: Vec<_> = p.iter().collect();
        v.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
        let device: f64 = v.iter().map(|(_, x)| x.0).sum();
        println!("{label}: {total_ms:.2} ms in all, {device:.2} ms in device calls, {:.2} ms on the host", total_ms - device);
        let mut parts = Vec::new();
        for (k, (ms, n, bytes)) in v {
            let rate = if *bytes > 0 && *ms > 0.0 {
                format!(", {:.1} GB/s", *bytes as f64 / (ms * 1e-3) / 1e9)
            } else {
                String::new()
            };
            println!("  {k:<28} {ms:9.3} ms  {n:6} calls{rate}");
            parts.push(format!(
                "{{\"part\": \"{}\", \"ms\": {ms:.4}, \"calls\": {n}, \"bytes\": {bytes}}}",
                esc(k)
            ));
        }
        format!(
            "    {{\"row\": \"breakdown\", \"what\": \"{}\", \"totalMs\": {total_ms:.3}, \"hostMs\": {:.3}, \"parts\": [{}]}}",
            esc(label),
            total_ms - device,
            parts.join(", ")
        )
    }
}

impl Device for Timed<'_> {
    fn alloc(&self, bytes: usize) -> Result<DevPtr, String> {
        self.time("alloc", 0, || self.inner.alloc(bytes))
    }
    fn free(&self, p: DevPtr) {
        let _ = self.time("free", 0, || {
            self.inner.free(p);
            Ok(())
        });
    }
    fn htod(&self, src: &[u8], dst: DevPtr) -> Result<(), String> {
        self.time("htod", src.len(), || self.inner.htod(src, dst))
    }
    fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), String> {
        let n = dst.len();
        self.time("dtoh", n, || self.inner.dtoh(src, dst))
    }
    fn zero(&self, p: DevPtr, bytes: usize) -> Result<(), String> {
        self.time("zero", 0, || self.inner.zero(p, bytes))
    }
    fn launch(&self, name: &str, l: Launch, args: &[Arg]) -> Result<(), String> {
        self.time(name, 0, || self.inner.launch(name, l, args))
    }
    fn sgemm(&self, g: &Sgemm) -> Result<(), String> {
        let kind = if g.tf32 { "GEMM (TF32)" } else { "GEMM (FP32)" };
        self.time(kind, 0, || self.inner.sgemm(g))
    }
    fn sync(&self) -> Result<(), String> {
        self.inner.sync()
    }
    fn budget(&self) -> usize {
        self.inner.budget()
    }
    fn block_cap(&self) -> usize {
        self.inner.block_cap()
    }
    fn tf32x3(&self) -> bool {
        self.inner.tf32x3()
    }
}

/// Deterministic data: xorshift64, uniform in [-1, 1).
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn value(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    /// An r × c matrix.
    pub fn mat(&mut self, r: usize, c: usize) -> Vec<f32> {
        (0..r * c).map(|_| self.value()).collect()
    }
}

/// `s` as the inside of a JSON string.
pub fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
