//! Every GPU algorithm of densevec-cuda, run through the CPU emulator of the CUDA kernels,
//! against the CPU core: the host orchestration (block sizes, offsets, GEMM orientations,
//! kernel arguments) and the kernels themselves, at the reference parity tolerances. Small
//! scratch budgets force the multi-block paths; every call must free what it allocates and
//! write nothing out of bounds. Each case runs plain (FP32 SGEMM) in one block and in many, and
//! with the GEMMs as 3xTF32 (split operands, TF32-rounded products) in many blocks.
#![cfg(target_os = "linux")]

use densevec_core::contrastive::{info_nce, nt_xent, InfoNceOpts, NceStats};
use densevec_core::margin::{margin_softmax, MarginKind, MarginOpts};
use densevec_core::regularizers::wasserstein_regularizer;
use densevec_core::similarity::{similarity_matrix, Metric};
use densevec_core::topk::top_k;
use densevec_core::Code;
use densevec_cuda::dev::{sgemm_by_kernel, Arg, DevPtr, Device, Launch, Sgemm};
use densevec_cuda::ops;
use densevec_cuda_emu::Emu;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn mat(&mut self, r: usize, c: usize) -> Vec<f32> {
        (0..r * c).map(|_| self.next()).collect()
    }
}

/// The emulator with densevec's own SGEMM kernel in place of the emulated cuBLAS: what a GPU
/// without libcublas runs.
struct KernelGemm<'a>(&'a Emu);
impl Device for KernelGemm<'_> {
    fn alloc(&self, bytes: usize) -> Result<DevPtr, String> {
        self.0.alloc(bytes)
    }
    fn free(&self, p: DevPtr) {
        self.0.free(p)
    }
    fn htod(&self, src: &[u8], dst: DevPtr) -> Result<(), String> {
        self.0.htod(src, dst)
    }
    fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), String> {
        self.0.dtoh(src, dst)
    }
    fn zero(&self, p: DevPtr, bytes: usize) -> Result<(), String> {
        self.0.zero(p, bytes)
    }
    fn launch(&self, name: &str, l: Launch, args: &[Arg]) -> Result<(), String> {
        self.0.launch(name, l, args)
    }
    fn sgemm(&self, g: &Sgemm) -> Result<(), String> {
        sgemm_by_kernel(self, g)
    }
    fn sync(&self) -> Result<(), String> {
        self.0.sync()
    }
    fn budget(&self) -> usize {
        self.0.budget()
    }
}

fn close(got: &[f32], want: &[f32], rtol: f32, atol: f32) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("length {} vs {}", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if (g.is_nan() && w.is_nan()) || g == w {
            continue;
        }
        // NaN against a number fails too
        let within = (g - w).abs() <= atol + rtol * w.abs();
        if !within {
            return Err(format!("index {i}: got {g}, want {w}"));
        }
    }
    Ok(())
}

/// Gradients: 1e-4 relative plus 1e-5 × the largest wanted entry (the reference parity tests').
fn close_grad(what: &str, got: &[f32], want: &[f32]) {
    let m = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    if let Err(e) = close(got, want, 1e-4, 1e-5 * m) {
        panic!("{what}: {e}");
    }
}

/// ∂loss/∂τ or ∂loss/∂s and the softmax diagnostics (host-side on the device path).
fn close_scalar(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
        "{what}: {got} vs {want}"
    );
}

fn close_stats(what: &str, got: &NceStats, want: &NceStats) {
    close_scalar(
        &format!("{what} entropy"),
        got.mean_entropy,
        want.mean_entropy,
    );
    close_scalar(
        &format!("{what} p(pos)"),
        got.mean_positive_probability,
        want.mean_positive_probability,
    );
    close_scalar(
        &format!("{what} max p(neg)"),
        got.mean_max_negative_probability,
        want.mean_max_negative_probability,
    );
    close_scalar(
        &format!("{what} effective negatives"),
        got.effective_negatives,
        want.effective_negatives,
    );
}

fn close_loss(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-5 + 1e-5 * want.abs(),
        "{what}: loss {got} vs {want}"
    );
}

/// The devices a case runs on: plain with a large budget, plain with `small` bytes of scratch
/// (many blocks), and 3xTF32 with `small` and float32 sums in the GEMMs (the pessimistic
/// accumulation model).
fn devices(small: usize) -> Vec<(Emu, String)> {
    vec![
        (Emu::with_budget(64 << 20), "one block".to_string()),
        (Emu::with_budget(small), format!("budget {small}")),
        (
            Emu::with_budget(small)
                .with_tf32x3(true)
                .with_f32_sums(true),
            format!("budget {small}, 3xTF32, f32 sums"),
        ),
    ]
}

/// Checks the emulator's books after a call: nothing leaked, nothing corrupted.
fn clean(emu: &Emu) {
    emu.sync().expect("device memory intact");
    assert_eq!(emu.live_allocations(), 0, "device memory leaked");
}

const METRICS: [Metric; 3] = [Metric::Dot, Metric::Cosine, Metric::L2sq];

#[test]
fn similarity_matrix_matches_the_cpu_in_one_and_many_blocks() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for &(m, n, d) in &[(1, 1, 1), (3, 5, 7), (17, 33, 65), (40, 70, 33)] {
        let (q, c) = (rng.mat(m, d), rng.mat(n, d));
        for metric in METRICS {
            let want = similarity_matrix(&q, m, &c, n, d, metric).unwrap();
            // whole output in one block; then 3 query rows per block
            for (emu, how) in devices(3 * 4 * n) {
                let got = ops::similarity_matrix(&emu, &q, m, &c, n, d, metric).unwrap();
                close(&got, &want, 1e-4, 1e-4 * d as f32)
                    .unwrap_or_else(|e| panic!("{m}x{n}x{d} {metric:?} {how}: {e}"));
                clean(&emu);
            }
        }
    }
}

#[test]
fn own_sgemm_kernel_gives_the_same_similarities() {
    let mut rng = Rng(99);
    for &(m, n, d) in &[(1, 1, 1), (5, 3, 17), (70, 65, 130)] {
        let (q, c) = (rng.mat(m, d), rng.mat(n, d));
        for metric in METRICS {
            let want = similarity_matrix(&q, m, &c, n, d, metric).unwrap();
            let emu = Emu::with_budget(7 * 4 * n);
            let got = ops::similarity_matrix(&KernelGemm(&emu), &q, m, &c, n, d, metric).unwrap();
            close(&got, &want, 1e-4, 1e-4 * d as f32)
                .unwrap_or_else(|e| panic!("{m}x{n}x{d} {metric:?}: {e}"));
            clean(&emu);
        }
    }
}

#[test]
fn top_k_streams_the_corpus_and_keeps_the_cpu_order() {
    let mut rng = Rng(7);
    let (m, n, d) = (3, 200, 33);
    let q = rng.mat(m, d);
    let mut c = rng.mat(n, d);
    // duplicates of row 3 at rows 11 and 12 (ties by lower index); a NaN row at 20 (ranks last)
    let r3: Vec<f32> = c[3 * d..4 * d].to_vec();
    c[11 * d..12 * d].copy_from_slice(&r3);
    c[12 * d..13 * d].copy_from_slice(&r3);
    c[20 * d] = f32::NAN;
    // the query equal to row 3, so the duplicates tie at the top
    let mut q = q;
    q[..d].copy_from_slice(&r3);
    // (the selection kernel costs k block-wide rounds per query: k stays small under emulation)
    for metric in METRICS {
        for k in [1, 4] {
            let want = top_k(&q, m, &c, n, d, k, metric).unwrap();
            // one block for the whole corpus; then blocks of 37 rows; then 3xTF32
            for (emu, how) in devices(37 * 4 * (m + 2 * d)) {
                let got = ops::top_k(&emu, &q, m, &c, n, d, k, metric).unwrap();
                assert_eq!(got.indices, want.indices, "{metric:?} k={k} {how}");
                close(&got.scores, &want.scores, 1e-4, 1e-4).unwrap();
                clean(&emu);
            }
        }
    }
    // a k larger than a streamed block (blocks grow to k rows)
    let k = 40;
    let want = top_k(&q[..2 * d], 2, &c, n, d, k, Metric::Cosine).unwrap();
    let emu = Emu::with_budget(8 * 4 * (2 + d));
    let got = ops::top_k(&emu, &q[..2 * d], 2, &c, n, d, k, Metric::Cosine).unwrap();
    assert_eq!(got.indices, want.indices);
    close(&got.scores, &want.scores, 1e-4, 1e-4).unwrap();
    clean(&emu);
    // k = n with NaN: every row, NaN last
    let emu = Emu::new();
    let got = ops::top_k(&emu, &q[..d], 1, &c[..25 * d], 25, d, 25, Metric::Dot).unwrap();
    assert_eq!(got.indices[24], 20);
    assert!(got.scores[24].is_nan());
    assert_eq!(
        ops::top_k(&emu, &q, m, &c, n, d, 129, Metric::Dot)
            .err()
            .map(|e| e.code),
        Some(Code::Arg)
    );
    clean(&emu);
}

#[test]
fn info_nce_matches_the_cpu_with_every_option_and_block_size() {
    let mut rng = Rng(3);
    // (6 × 3000: gradQ's inner dimension is K = 3000, long sums in float32)
    for &(b, n, d) in &[
        (1usize, 1usize, 1usize),
        (7, 13, 5),
        (20, 31, 16),
        (6, 3000, 8),
    ] {
        let (q, k) = (rng.mat(b, d), rng.mat(n, d));
        let pos: Vec<u32> = (0..b).map(|i| ((i * 7 + 3) % n) as u32).collect();
        let lq: Vec<f32> = (0..n).map(|j| -((j % 5) as f32 + 1.0).ln()).collect();
        for variant in 0..4 {
            let o = InfoNceOpts {
                temperature: [0.07, 0.5, 0.1, 1.0][variant],
                positives: if variant % 2 == 1 { Some(&pos) } else { None },
                log_q: if variant >= 2 { Some(&lq) } else { None },
                normalize: variant >= 1,
            };
            let want = info_nce(&q, b, &k, n, d, &o).unwrap();
            for (emu, how) in devices(3 * 8 * n) {
                let got = ops::info_nce(&emu, &q, b, &k, n, d, &o).unwrap();
                let what = format!("B={b} K={n} d={d} variant {variant} {how}");
                close_loss(&what, got.loss, want.loss);
                close_grad(&format!("{what} gradQ"), &got.grad_q, &want.grad_q);
                close_grad(&format!("{what} gradKeys"), &got.grad_keys, &want.grad_keys);
                close_scalar(
                    &format!("{what} gradTemperature"),
                    got.grad_temperature,
                    want.grad_temperature,
                );
                close_stats(&what, &got.stats, &want.stats);
                clean(&emu);
            }
        }
    }
}

#[test]
fn nt_xent_matches_the_cpu() {
    let mut rng = Rng(5);
    for &(n, d) in &[(1usize, 1usize), (6, 9), (17, 12)] {
        let (a, b) = (rng.mat(n, d), rng.mat(n, d));
        for t in [0.1, 0.5] {
            let want = nt_xent(&a, &b, n, d, t).unwrap();
            for (emu, how) in devices(5 * 8 * 2 * n) {
                let got = ops::nt_xent(&emu, &a, &b, n, d, t).unwrap();
                let what = format!("N={n} d={d} tau={t} {how}");
                close_loss(&what, got.loss, want.loss);
                close_grad(&format!("{what} gradA"), &got.grad_a, &want.grad_a);
                close_grad(&format!("{what} gradB"), &got.grad_b, &want.grad_b);
                close_scalar(
                    &format!("{what} gradTemperature"),
                    got.grad_temperature,
                    want.grad_temperature,
                );
                close_stats(&what, &got.stats, &want.stats);
                clean(&emu);
            }
        }
    }
}

#[test]
fn margin_softmax_matches_the_cpu_for_every_kind() {
    let mut rng = Rng(11);
    for &(n, c, d) in &[(1usize, 1usize, 1usize), (5, 3, 7), (23, 11, 16)] {
        let (x, w) = (rng.mat(n, d), rng.mat(c, d));
        let labels: Vec<u32> = (0..n).map(|i| ((i * 13 + 1) % c) as u32).collect();
        for (kind, margin, eps) in [
            (MarginKind::Normalized, 0.0, 0.0),
            (MarginKind::CosFace, 0.35, 0.1),
            (MarginKind::ArcFace, 0.5, 0.0),
            (MarginKind::ArcFace, 1.2, 0.2),
        ] {
            let o = MarginOpts {
                kind,
                scale: 30.0,
                margin,
                label_smoothing: eps,
            };
            let want = margin_softmax(&x, n, &w, c, d, &labels, &o).unwrap();
            for (emu, how) in devices(4 * 12 * c) {
                let got = ops::margin_softmax(&emu, &x, n, &w, c, d, &labels, &o).unwrap();
                let what = format!("N={n} C={c} d={d} {kind:?} m={margin} eps={eps} {how}");
                close_loss(&what, got.loss, want.loss);
                close_grad(&format!("{what} logits"), &got.logits, &want.logits);
                close_grad(&format!("{what} gradX"), &got.grad_x, &want.grad_x);
                close_grad(&format!("{what} gradW"), &got.grad_w, &want.grad_w);
                close_scalar(
                    &format!("{what} gradScale"),
                    got.grad_scale,
                    want.grad_scale,
                );
                assert_eq!(got.angular_margins.len(), n);
                for (i, (g, w)) in got
                    .angular_margins
                    .iter()
                    .zip(&want.angular_margins)
                    .enumerate()
                {
                    assert!(
                        g == w || (g - w).abs() <= 1e-3,
                        "{what} angularMargins[{i}]: {g} vs {w}"
                    );
                }
                clean(&emu);
            }
        }
    }
}

#[test]
fn wasserstein_matches_the_cpu_through_the_device_sort() {
    let mut rng = Rng(13);
    // n = 100: 4950 pairs padded to 8192 keys, so the sort runs its global strides too
    for &(n, d) in &[(2usize, 1usize), (3, 4), (40, 8), (100, 6)] {
        let (a, b) = (rng.mat(n, d), rng.mat(n, d));
        for p in [1u32, 2] {
            let want = wasserstein_regularizer(&a, &b, n, d, p).unwrap();
            let emu = Emu::new();
            let got = ops::wasserstein_regularizer(&emu, &a, &b, n, d, p).unwrap();
            let what = format!("n={n} d={d} p={p}");
            close_loss(&what, got.loss, want.loss);
            close_grad(&format!("{what} gradA"), &got.grad_a, &want.grad_a);
            close_grad(&format!("{what} gradB"), &got.grad_b, &want.grad_b);
            clean(&emu);
        }
    }
    // ties: identical rows make equal cosines; the stable order must match the CPU's
    let (n, d) = (12, 3);
    let mut a = rng.mat(n, d);
    for i in 1..4 {
        let r: Vec<f32> = a[..d].to_vec();
        a[i * d..(i + 1) * d].copy_from_slice(&r);
    }
    let b = rng.mat(n, d);
    for p in [1u32, 2] {
        let want = wasserstein_regularizer(&a, &b, n, d, p).unwrap();
        let emu = Emu::new();
        let got = ops::wasserstein_regularizer(&emu, &a, &b, n, d, p).unwrap();
        close_loss("ties", got.loss, want.loss);
        close_grad("ties gradA", &got.grad_a, &want.grad_a);
        close_grad("ties gradB", &got.grad_b, &want.grad_b);
        clean(&emu);
    }
    // too large for the device budget: E_BACKEND, nothing allocated
    let emu = Emu::with_budget(1 << 10);
    let e = ops::wasserstein_regularizer(&emu, &a, &b, n, d, 2)
        .err()
        .expect("an error");
    assert_eq!(e.code, Code::Backend);
    assert!(e.msg.contains("device memory"), "{}", e.msg);
    clean(&emu);
}

#[test]
fn argument_errors_are_the_cpu_errors() {
    let emu = Emu::new();
    let x = [1f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let o = InfoNceOpts {
        temperature: 0.0,
        positives: None,
        log_q: None,
        normalize: false,
    };
    let want = info_nce(&x, 2, &x, 2, 3, &o).unwrap_err();
    let got = ops::info_nce(&emu, &x, 2, &x, 2, 3, &o).unwrap_err();
    assert_eq!((got.code, got.msg), (want.code, want.msg));
    let want = nt_xent(&x, &x[..3], 2, 3, 0.1).unwrap_err();
    let got = ops::nt_xent(&emu, &x, &x[..3], 2, 3, 0.1).unwrap_err();
    assert_eq!((got.code, got.msg), (want.code, want.msg));
    assert_eq!(emu.live_allocations(), 0);
}

#[test]
fn tf32_products_lose_precision_and_the_split_restores_it() {
    use densevec_cuda::dev::{gemm_rm, gemm_rm_p, Buf};
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
    gemm_rm(
        &emu, false, true, m, n, k, 1.0, da.ptr, k, db.ptr, k, 0.0, out.ptr, n,
    )
    .unwrap();
    let fp32 = err(&out.to_vec().unwrap());
    gemm_rm_p(
        &emu, true, false, true, m, n, k, 1.0, da.ptr, k, db.ptr, k, 0.0, out.ptr, n,
    )
    .unwrap();
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
        gemm_rm_p(
            &emu, true, false, true, m, n, k, 1.0, x.ptr, k, y.ptr, k, beta, out.ptr, n,
        )
        .unwrap();
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
    clean(&emu);
}

#[test]
fn infinite_inputs_give_the_cpu_results_in_both_gemm_modes() {
    // ±∞ cannot be split for 3xTF32 (∞ · 0 in a cross product is NaN where float32 gives ∞):
    // such GEMMs fall back to plain FP32, so ∞ and NaN land where the CPU puts them.
    let mut rng = Rng(23);
    let (m, n, d) = (4, 90, 6);
    let mut q = rng.mat(m, d);
    let mut c = rng.mat(n, d);
    c[5 * d + 3] = f32::INFINITY;
    q[d + 2] = f32::NEG_INFINITY;
    for (qq, cc, what) in [
        (&q, &c, "both"),
        (&rng.mat(m, d), &c, "corpus"),
        (&q, &rng.mat(n, d), "queries"),
    ] {
        let want = similarity_matrix(qq, m, cc, n, d, Metric::Dot).unwrap();
        let wk = top_k(qq, m, cc, n, d, 3, Metric::Dot).unwrap();
        for (emu, how) in devices(40 * 4 * n) {
            let got = ops::similarity_matrix(&emu, qq, m, cc, n, d, Metric::Dot).unwrap();
            close(&got, &want, 1e-4, 1e-3).unwrap_or_else(|e| panic!("{what} {how}: {e}"));
            clean(&emu);
            let emu = Emu::with_budget(30 * 4 * (m + 2 * d))
                .with_tf32x3(how.contains("TF32"))
                .with_f32_sums(how.contains("f32 sums"));
            let gk = ops::top_k(&emu, qq, m, cc, n, d, 3, Metric::Dot).unwrap();
            assert_eq!(gk.indices, wk.indices, "{what} {how}");
            close(&gk.scores, &wk.scores, 1e-4, 1e-4).unwrap();
            clean(&emu);
        }
    }
}
