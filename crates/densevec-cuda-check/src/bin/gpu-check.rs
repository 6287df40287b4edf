//! GPU check: the parity suite ([`densevec_cuda_check::parity`]) on the GPU in each GEMM mode,
//! then timings ([`densevec_cuda_check::bench`]).
//!
//!     gpu-check [OUTPUT.json]      (default: $OUT/gpu-check.json, else ./gpu-check.json)
//!
//! Exit status 0 when the device is present and every parity check passes; 2 when no usable
//! device (the JSON says why); 1 when a parity check fails.

use densevec_cuda as cu;
use densevec_cuda_check::parity::{self, Job, Rig, Runs};
use densevec_cuda_check::{bench, esc, Gemm, GemmMode, Rng};
use std::fmt::Write as _;

/// The GPU, in each GEMM mode: as it runs (3xTF32 on A100/H100/H200/B200 with cuBLAS), plain
/// FP32 SGEMM, and densevec's own SGEMM kernel (a machine without libcublas).
struct Gpu;

impl Rig for Gpu {
    fn large(&self) -> bool {
        true
    }

    fn each(&self, _scratch: usize, _f32_sums: bool, f: Job) -> Runs {
        let mut out = Vec::new();
        let r = cu::with_gpu("gpu-check", |g| {
            for mode in [GemmMode::AsIs, GemmMode::Fp32, GemmMode::OwnKernel] {
                out.push((mode.name().to_string(), f(&Gemm { inner: g, mode })));
            }
            Ok(())
        });
        if let Err(e) = r {
            out.push(("device".into(), Err(e.msg)));
        }
        out
    }
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| match std::env::var("OUT") {
            Ok(o) if !o.is_empty() => format!("{o}/gpu-check.json"),
            _ => "gpu-check.json".into(),
        });
    let mut json = String::from("{\n");
    let code = match cu::available() {
        Err(r) => {
            let (drv, nv, blas) = cu::libraries_present();
            println!("no GPU: {r} (libraries: driver {drv}, NVRTC {nv}, cuBLAS {blas})");
            let _ = write!(
                json,
                "  \"available\": false,\n  \"reason\": \"{}\",\n  \"libraries\": {{\"driver\": {drv}, \"nvrtc\": {nv}, \"cublas\": {blas}}}\n}}\n",
                esc(&r)
            );
            2
        }
        Ok(d) => {
            let (nvm, nvn) = d.nvrtc_version;
            let (dvm, dvn) = d.driver_cuda;
            println!(
                "device: {} ({:.1} GiB, sm_{}{}), driver CUDA {dvm}.{dvn}, cuBLAS: {}, GEMM: {}, NVRTC {nvm}.{nvn}: {}",
                d.name,
                d.total_memory as f64 / (1u64 << 30) as f64,
                d.compute_capability.0,
                d.compute_capability.1,
                d.cublas,
                d.gemm,
                d.nvrtc
            );
            let _ = write!(
                json,
                "  \"available\": true,\n  \"device\": \"{}\",\n  \"memory\": {},\n  \"computeCapability\": \"{}.{}\",\n  \"driverCuda\": \"{dvm}.{dvn}\",\n  \"nvrtc\": \"{nvm}.{nvn}\",\n  \"nvrtcPath\": \"{}\",\n  \"cublas\": {},\n  \"gemm\": \"{}\",\n",
                esc(&d.name),
                d.total_memory,
                d.compute_capability.0,
                d.compute_capability.1,
                esc(&d.nvrtc),
                d.cublas,
                esc(&d.gemm)
            );
            let rows = parity::all(&Gpu);
            let failures = rows.iter().filter(|r| !r.ok()).count();
            for r in &rows {
                println!("{}", r.line());
            }
            let parity: Vec<String> = rows.iter().map(|r| format!("    {}", r.json())).collect();
            let bench = bench::run(&mut Rng(0x9e37_79b9_7f4a_7c15));
            let _ = write!(
                json,
                "  \"parity\": [\n{}\n  ],\n  \"bench\": [\n{}\n  ],\n  \"failures\": {failures}\n}}\n",
                parity.join(",\n"),
                bench.join(",\n")
            );
            println!("{failures} parity failure(s)");
            i32::from(failures != 0)
        }
    };
    if let Err(e) = std::fs::write(&path, &json) {
        eprintln!("cannot write {path}: {e}");
    } else {
        println!("wrote {path}");
    }
    std::process::exit(code);
}
