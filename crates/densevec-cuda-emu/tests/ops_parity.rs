//! The parity suite of densevec-cuda-check (every GPU algorithm of densevec-cuda against the
//! CPU core, the same cases the GPU check runs) on the CPU emulator of the CUDA kernels: the
//! host orchestration (block sizes, offsets, GEMM orientations, kernel arguments) and the
//! kernels themselves. Each case runs plain (FP32 SGEMM) in one block and in many (a small
//! scratch budget), with the GEMMs as 3xTF32 (split operands, TF32-rounded products, float32
//! sums) in many blocks, and with densevec's own SGEMM kernel in many blocks; after every call
//! nothing may be leaked or written out of bounds.
#![cfg(target_os = "linux")]

use densevec_core::Code;
use densevec_cuda::dev::{Arg, Device, Launch};
use densevec_cuda::{ops, WassersteinArgs};
use densevec_cuda_check::parity::{self, Job, Rig, Row, Runs};
use densevec_cuda_check::{Gemm, GemmMode, Rng};
use densevec_cuda_emu::Emu;

/// The emulator: small shapes; a fresh device per configuration, its books checked after the
/// call.
struct Emulator;

impl Rig for Emulator {
    fn large(&self) -> bool {
        false
    }

    fn each(&self, scratch: usize, f32_sums: bool, f: Job) -> Runs {
        let configs = [
            (
                Emu::with_budget(64 << 20),
                GemmMode::AsIs,
                "one block".to_string(),
            ),
            (
                Emu::with_budget(scratch),
                GemmMode::AsIs,
                format!("budget {scratch}"),
            ),
            (
                Emu::with_budget(scratch)
                    .with_tf32x3(true)
                    .with_f32_sums(f32_sums),
                GemmMode::AsIs,
                format!("budget {scratch}, 3xTF32, f32 sums {f32_sums}"),
            ),
            (
                Emu::with_budget(scratch),
                GemmMode::OwnKernel,
                format!("budget {scratch}, own SGEMM kernel"),
            ),
        ];
        configs
            .into_iter()
            .map(|(emu, mode, name)| {
                let outcome = f(&Gemm { inner: &emu, mode }).and_then(|parts| {
                    emu.sync()
                        .map_err(|e| format!("device memory corrupted: {e}"))?;
                    match emu.live_allocations() {
                        0 => Ok(parts),
                        n => Err(format!("{n} device allocations leaked")),
                    }
                });
                (name, outcome)
            })
            .collect()
    }
}

/// Fails with every row that is not within tolerance.
fn pass(rows: Vec<Row>) {
    assert!(!rows.is_empty());
    let bad: Vec<String> = rows.iter().filter(|r| !r.ok()).map(|r| r.line()).collect();
    assert!(
        bad.is_empty(),
        "{} of {} rows failed:\n{}",
        bad.len(),
        rows.len(),
        bad.join("\n")
    );
}

/// One test per group of cases of the suite (they run in parallel).
macro_rules! suite {
    ($($test:ident: $cases:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                pass(parity::$cases(&Emulator));
            }
        )*
    };
}

suite! {
    argument_errors_are_the_cpu_errors: errors,
    similarity_matrix_matches_the_cpu_in_one_and_many_blocks: similarity,
    top_k_streams_the_corpus_and_keeps_the_cpu_order: top_k_cases,
    infinite_inputs_give_the_cpu_results_in_every_gemm_mode: infinite_inputs,
    info_nce_matches_the_cpu_with_every_option_and_block_size: info_nce_cases,
    nt_xent_matches_the_cpu: nt_xent_cases,
    margin_softmax_matches_the_cpu_for_every_kind: margin_cases,
    wasserstein_matches_the_cpu_through_the_device_sort: wasserstein_cases,
}

/// A failing comparison is reported as a failure (the suite can fail).
#[test]
fn a_wrong_result_fails_its_row() {
    struct Broken;
    impl Rig for Broken {
        fn large(&self) -> bool {
            false
        }
        fn each(&self, _: usize, _: bool, f: Job) -> Runs {
            // A device whose SGEMM does nothing: every result is wrong, so no row is ok.
            struct NoGemm(Emu);
            impl Device for NoGemm {
                fn alloc(&self, b: usize) -> Result<u64, String> {
                    self.0.alloc(b)
                }
                fn free(&self, p: u64) {
                    self.0.free(p)
                }
                fn htod(&self, s: &[u8], d: u64) -> Result<(), String> {
                    self.0.htod(s, d)
                }
                fn dtoh(&self, s: u64, d: &mut [u8]) -> Result<(), String> {
                    self.0.dtoh(s, d)
                }
                fn zero(&self, p: u64, b: usize) -> Result<(), String> {
                    self.0.zero(p, b)
                }
                fn launch(&self, k: &str, l: Launch, a: &[Arg]) -> Result<(), String> {
                    self.0.launch(k, l, a)
                }
                fn sgemm(&self, _: &densevec_cuda::dev::Sgemm) -> Result<(), String> {
                    Ok(())
                }
                fn sync(&self) -> Result<(), String> {
                    self.0.sync()
                }
                fn budget(&self) -> usize {
                    self.0.budget()
                }
            }
            vec![("no GEMM".into(), f(&NoGemm(Emu::new())))]
        }
    }
    let rows = parity::similarity(&Broken);
    assert!(rows.iter().all(|r| !r.ok()), "{rows:?}");
}

#[test]
fn wasserstein_beyond_the_device_budget_is_e_backend() {
    let mut rng = Rng(13);
    let (n, d) = (12, 3);
    let (a, b) = (rng.mat(n, d), rng.mat(n, d));
    let emu = Emu::with_budget(1 << 10);
    let e = ops::on(
        &emu,
        &WassersteinArgs {
            a: &a,
            b: &b,
            n,
            d,
            p: 2,
        },
    )
    .err()
    .expect("an error");
    assert_eq!(e.code, Code::Backend);
    assert!(e.msg.contains("device memory"), "{}", e.msg);
    emu.sync().expect("device memory intact");
    assert_eq!(emu.live_allocations(), 0);
}

#[test]
fn tf32_products_lose_precision_and_the_split_restores_it() {
    use densevec_cuda::dev::{gemm_rm, Buf, Rm};
    // A single TF32 product of float32 data is off by ~1e-3 relative; the 3xTF32 scheme of the
    // algorithms (dv_split_tf32, then A_h·B_l + A_l·B_h + A_h·B_h) is as good as FP32 SGEMM.
    let emu = Emu::new();
    let mut rng = Rng(17);
    let (m, n, k) = (9usize, 11usize, 64usize);
    let (a, b) = (rng.mat(m, k), rng.mat(n, k));
    let want: Vec<f64> = (0..m * n)
        .map(|t| {
            let (i, j) = (t / n, t % n);
            (0..k)
                .map(|l| a[i * k + l] as f64 * b[j * k + l] as f64)
                .sum()
        })
        .collect();
    let err = |got: &[f32]| {
        got.iter()
            .zip(&want)
            .map(|(&g, &w)| (g as f64 - w).abs())
            .fold(0f64, f64::max)
    };
    let (da, db) = (Buf::from(&emu, &a).unwrap(), Buf::from(&emu, &b).unwrap());
    let out = Buf::<f32>::zeros(&emu, m * n).unwrap();
    let c = Rm::n(out.ptr, n);
    let (ra, rb) = (Rm::n(da.ptr, k), Rm::t(db.ptr, k));
    gemm_rm(&emu, [m, n, k], 1.0, ra, rb, 0.0, c).unwrap();
    let fp32 = err(&out.to_vec().unwrap());
    gemm_rm(&emu, [m, n, k], 1.0, ra.tf32(), rb.tf32(), 0.0, c).unwrap();
    let one_tf32 = err(&out.to_vec().unwrap());
    let split = |x: &Buf<f32>, len: usize| {
        let (hi, lo) = (
            Buf::<f32>::zeros(&emu, len).unwrap(),
            Buf::<f32>::zeros(&emu, len).unwrap(),
        );
        let flag = Buf::<i32>::zeros(&emu, 1).unwrap();
        emu.launch(
            "dv_split_tf32",
            Launch::elems(len),
            &[
                x.arg(0),
                Arg::I64(len as i64),
                hi.arg(0),
                lo.arg(0),
                flag.arg(0),
            ],
        )
        .unwrap();
        assert_eq!(
            flag.to_vec().unwrap(),
            vec![0],
            "finite data raises no flag"
        );
        (hi, lo)
    };
    let ((ah, al), (bh, bl)) = (split(&da, m * k), split(&db, n * k));
    for (x, y, beta) in [(&ah, &bl, 0.0), (&al, &bh, 1.0), (&ah, &bh, 1.0)] {
        let (rx, ry) = (Rm::n(x.ptr, k).tf32(), Rm::t(y.ptr, k).tf32());
        gemm_rm(&emu, [m, n, k], 1.0, rx, ry, beta, c).unwrap();
    }
    let three = err(&out.to_vec().unwrap());
    assert!(
        one_tf32 > 1e-4,
        "one TF32 product should be visibly inexact: {one_tf32:e}"
    );
    assert!(
        three < 4e-6,
        "3xTF32 error {three:e} (FP32 SGEMM {fp32:e}, one TF32 {one_tf32:e})"
    );
    assert!(three < one_tf32 / 100.0);
    // hi + lo is the value exactly, and hi has at most 10 explicit mantissa bits
    let (h, l) = (ah.to_vec().unwrap(), al.to_vec().unwrap());
    for ((&x, &hh), &ll) in a.iter().zip(&h).zip(&l) {
        assert_eq!(hh + ll, x);
        assert_eq!(hh.to_bits() & 0x1fff, 0);
    }
    drop((ah, al, bh, bl, da, db, out));
    emu.sync().expect("device memory intact");
    assert_eq!(emu.live_allocations(), 0);
}
