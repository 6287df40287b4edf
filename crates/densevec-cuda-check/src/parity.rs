//! The parity suite: every GPU function of densevec-cuda against the CPU core, at the tolerances
//! of the reference parity tests (test/similarity.test.ts and the learning tests): similarity
//! |Δ| ≤ 1e-4·|x| + 1e-4·d; top-k scores within 1e-4 relative + 1e-4, indices identical except
//! where two different rows score within that tolerance (GPU and CPU rounding may order a
//! near-tie differently; identical rows must keep the lower index first); losses within 1e-5
//! relative + 1e-5; gradients within 1e-4 relative plus 1e-5 × the largest entry; ∂loss/∂τ,
//! ∂loss/∂s and the diagnostics within 1e-4·(1 + |x|).
//!
//! The cases are written once, against a [`Rig`]: a device in each of its configurations. The
//! emulator's rig (densevec-cuda-emu's tests) runs small shapes under budgets that force the
//! multi-block paths and checks that a call leaks and corrupts nothing; the GPU's (the
//! `gpu-check` binary) runs large shapes in each GEMM mode. Each function returns its [`Row`]s;
//! a row that is not [`Row::ok`] is a failure.

use crate::{esc, Rng};
use densevec_core::contrastive::{info_nce, nt_xent, InfoNce, InfoNceOpts, NceStats, NtXent};
use densevec_core::margin::{margin_softmax, MarginKind, MarginOpts, MarginSoftmax};
use densevec_core::regularizers::{wasserstein_regularizer, Wasserstein};
use densevec_core::similarity::{similarity_matrix, Metric};
use densevec_core::topk::{top_k, TopK};
use densevec_core::{Code, Result};
use densevec_cuda::dev::Device;
use densevec_cuda::ops::{self, GpuOp};
use densevec_cuda::{
    InfoNceArgs, MarginArgs, NtXentArgs, SimilarityArgs, TopKArgs, WassersteinArgs, KMAX,
};

/// What one configuration of a case gave: the compared parts, or why there is no result.
pub type Outcome = std::result::Result<Vec<Part>, String>;

/// A case's work on one device configuration (see [`Rig::each`]).
pub type Job<'a> = &'a mut dyn FnMut(&dyn Device) -> Outcome;

/// What [`Rig::each`] returns: the outcome on each configuration, named.
pub type Runs = Vec<(String, Outcome)>;

/// A device to check, in each of its configurations.
pub trait Rig {
    /// The GPU's shapes (large) or the emulator's (small: every barrier of a 256-thread block
    /// costs about 0.6 ms there).
    fn large(&self) -> bool;
    /// Runs `f` on each configuration of the device, named. `scratch` is a device budget (bytes)
    /// small enough that the case runs in several blocks, for a rig that can limit its budget;
    /// `f32_sums` says whether the case's tolerances hold under a model of the GEMMs that sums
    /// products one by one in float32 (the emulator's pessimistic model; false where long sums
    /// of near-cancelling terms exceed it, as cuBLAS's blocked sums do not). A rig may turn an
    /// outcome into a failure after the call (the emulator: memory leaked or written out of
    /// bounds).
    fn each(&self, scratch: usize, f32_sums: bool, f: Job) -> Runs;
}

/// One compared quantity of a result.
#[derive(Clone, Debug)]
pub struct Part {
    pub name: &'static str,
    pub ok: bool,
    /// The worst error (absolute; for gradients relative to the largest wanted entry).
    pub err: f64,
}

/// One case on one configuration.
#[derive(Debug)]
pub struct Row {
    pub func: &'static str,
    pub case: String,
    pub config: String,
    pub outcome: Outcome,
}

impl Row {
    /// Whether every part is within tolerance.
    pub fn ok(&self) -> bool {
        matches!(&self.outcome, Ok(parts) if parts.iter().all(|p| p.ok))
    }

    /// One line for a log.
    pub fn line(&self) -> String {
        let detail = match &self.outcome {
            Ok(parts) => parts
                .iter()
                .map(|p| {
                    format!(
                        "{} {}{:.2e}",
                        p.name,
                        if p.ok { "" } else { "FAIL " },
                        p.err
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => format!("ERROR {e}"),
        };
        let status = if self.ok() { "ok" } else { "FAIL" };
        format!(
            "{} {} [{}]: {status} ({detail})",
            self.func, self.case, self.config
        )
    }

    /// The row as a JSON object.
    pub fn json(&self) -> String {
        let head = format!(
            "{{\"fn\": \"{}\", \"case\": \"{}\", \"config\": \"{}\", \"ok\": {}",
            self.func,
            esc(&self.case),
            esc(&self.config),
            self.ok()
        );
        match &self.outcome {
            Ok(parts) => {
                let js: Vec<String> = parts
                    .iter()
                    .map(|p| {
                        let e = if p.err.is_finite() { p.err } else { -1.0 };
                        format!("\"{}\": {{\"ok\": {}, \"err\": {e}}}", p.name, p.ok)
                    })
                    .collect();
                format!("{head}, {}}}", js.join(", "))
            }
            Err(e) => format!("{head}, \"error\": \"{}\"}}", esc(e)),
        }
    }
}

/// Every case of every function.
pub fn all(rig: &dyn Rig) -> Vec<Row> {
    let mut rows = errors(rig);
    for f in [
        similarity,
        top_k_cases,
        infinite_inputs,
        info_nce_cases,
        nt_xent_cases,
        margin_cases,
        wasserstein_cases,
    ] {
        rows.extend(f(rig));
    }
    rows
}

/// Runs one case on every configuration of `rig`.
fn case(
    rig: &dyn Rig,
    rows: &mut Vec<Row>,
    func: &'static str,
    case: String,
    scratch: usize,
    mut f: impl FnMut(&dyn Device) -> Outcome,
) {
    // The Wasserstein gradients sum n near-cancelling terms per entry: one-by-one float32 sums
    // exceed the tolerance at n = 100 (see `wasserstein_cases`).
    let f32_sums = func != "wassersteinRegularizer";
    for (config, outcome) in rig.each(scratch, f32_sums, &mut f) {
        rows.push(Row {
            func,
            case: case.clone(),
            config,
            outcome,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Comparisons

/// A quantity of a result, with the tolerance it is compared at.
enum Val<'a> {
    /// 1e-5 relative + 1e-5.
    Loss(f64),
    /// 1e-4 · (1 + |x|).
    Scalar(f64),
    /// 1e-4 relative + 1e-5 × the largest wanted entry.
    Grad(&'a [f32]),
    /// 1e-4 relative + the given absolute tolerance.
    Near(&'a [f32], f32),
}

/// Elementwise: (entries within `rtol`·|want| + `atol` (NaN matches NaN), worst error).
fn within(got: &[f32], want: &[f32], rtol: f32, atol: f32) -> (usize, f32) {
    let mut good = 0;
    let mut worst = 0f32;
    for (g, w) in got.iter().zip(want) {
        let e = (g - w).abs();
        if (g.is_nan() && w.is_nan()) || g == w || e <= atol + rtol * w.abs() {
            good += 1;
        }
        if e > worst || e.is_nan() {
            worst = if e.is_nan() { f32::INFINITY } else { e };
        }
    }
    (good, worst)
}

/// Compares the parts of a result with the CPU's; a gradient passes when at least `frac` of its
/// entries are within tolerance (1.0: all).
fn compare_vals(
    got: Vec<(&'static str, Val)>,
    want: Vec<(&'static str, Val)>,
    frac: f64,
) -> Vec<Part> {
    let mut out = Vec::new();
    for ((name, g), (_, w)) in got.into_iter().zip(want) {
        let (ok, err) = match (g, w) {
            (Val::Loss(g), Val::Loss(w)) => ((g - w).abs() <= 1e-5 + 1e-5 * w.abs(), (g - w).abs()),
            (Val::Scalar(g), Val::Scalar(w)) => {
                ((g - w).abs() <= 1e-4 * (1.0 + w.abs()), (g - w).abs())
            }
            (Val::Grad(g), Val::Grad(w)) => {
                let m = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
                let (good, worst) = within(g, w, 1e-4, 1e-5 * m);
                let need = (frac * w.len() as f64).ceil() as usize;
                (g.len() == w.len() && good >= need, (worst / m) as f64)
            }
            (Val::Near(g, atol), Val::Near(w, _)) => {
                let (good, worst) = within(g, w, 1e-4, atol);
                (g.len() == w.len() && good == w.len(), worst as f64)
            }
            _ => (false, f64::NAN),
        };
        out.push(Part { name, ok, err });
    }
    out
}

/// The compared parts of a result.
trait Parts {
    fn parts(&self) -> Vec<(&'static str, Val<'_>)>;
}

/// The loss and the gradients of a result.
fn loss_grads<'a>(loss: f64, grads: &[(&'static str, &'a [f32])]) -> Vec<(&'static str, Val<'a>)> {
    let mut v = vec![("loss", Val::Loss(loss))];
    v.extend(grads.iter().map(|&(name, g)| (name, Val::Grad(g))));
    v
}

/// InfoNCE's and NT-Xent's parts: the loss, the two gradients, ∂loss/∂τ and the diagnostics.
fn nce_parts<'a>(
    loss: f64,
    grads: [(&'static str, &'a [f32]); 2],
    grad_temperature: f64,
    s: &NceStats,
) -> Vec<(&'static str, Val<'a>)> {
    let mut v = loss_grads(loss, &grads);
    v.push(("gradTemperature", Val::Scalar(grad_temperature)));
    v.push(("entropy", Val::Scalar(s.mean_entropy)));
    v.push(("pPositive", Val::Scalar(s.mean_positive_probability)));
    v.push(("maxPNegative", Val::Scalar(s.mean_max_negative_probability)));
    v.push(("effectiveNegatives", Val::Scalar(s.effective_negatives)));
    v
}

impl Parts for InfoNce {
    fn parts(&self) -> Vec<(&'static str, Val<'_>)> {
        let grads = [
            ("gradQ", &self.grad_q[..]),
            ("gradKeys", &self.grad_keys[..]),
        ];
        nce_parts(self.loss, grads, self.grad_temperature, &self.stats)
    }
}

impl Parts for NtXent {
    fn parts(&self) -> Vec<(&'static str, Val<'_>)> {
        let grads = [("gradA", &self.grad_a[..]), ("gradB", &self.grad_b[..])];
        nce_parts(self.loss, grads, self.grad_temperature, &self.stats)
    }
}

impl Parts for MarginSoftmax {
    fn parts(&self) -> Vec<(&'static str, Val<'_>)> {
        let grads = [
            ("logits", &self.logits[..]),
            ("gradX", &self.grad_x),
            ("gradW", &self.grad_w),
        ];
        let mut v = loss_grads(self.loss, &grads);
        v.push(("gradScale", Val::Scalar(self.grad_scale)));
        v.push(("angularMargins", Val::Near(&self.angular_margins, 1e-3)));
        v
    }
}

impl Parts for Wasserstein {
    fn parts(&self) -> Vec<(&'static str, Val<'_>)> {
        loss_grads(
            self.loss,
            &[("gradA", &self.grad_a), ("gradB", &self.grad_b)],
        )
    }
}

/// `op` on `dev` against the CPU's result `want` (gradients: at least `frac` of the entries).
fn against<O>(dev: &dyn Device, op: &O, want: &O::Out, frac: f64) -> Outcome
where
    O: GpuOp,
    O::Out: Parts,
{
    let got = ops::on(dev, op).map_err(|e| e.msg)?;
    Ok(compare_vals(got.parts(), want.parts(), frac))
}

// ---------------------------------------------------------------------------------------------
// Argument errors

/// Wrong calls, each checked on every configuration of a rig and through [`densevec_cuda::run`]
/// (what the public functions call; it answers before asking for a GPU).
struct Errors<'r> {
    rig: &'r dyn Rig,
    rows: Vec<Row>,
}

impl Errors<'_> {
    /// `op` fails as the CPU's call did (`want`): same code, same message.
    fn check<O: GpuOp, T>(&mut self, what: &str, op: &O, want: Result<T>) {
        let want = want.err();
        let same = |got: std::result::Result<(), densevec_core::Error>| -> Outcome {
            let want = want.as_ref().ok_or("the CPU accepts this call")?;
            let got = got.err().ok_or("the GPU path accepts this call")?;
            if (got.code, &got.msg) != (want.code, &want.msg) {
                let (g, w) = ((got.code, &got.msg), (want.code, &want.msg));
                return Err(format!("{g:?}, want {w:?}"));
            }
            Ok(vec![Part {
                name: "error",
                ok: true,
                err: 0.0,
            }])
        };
        let f = |dev: &dyn Device| same(ops::on(dev, op).map(drop));
        case(self.rig, &mut self.rows, "errors", what.into(), 1 << 20, f);
        let outcome = same(densevec_cuda::run(op).map(drop));
        let (case, config) = (what.to_string(), "densevec_cuda::run".to_string());
        self.rows.push(Row {
            func: "errors",
            case,
            config,
            outcome,
        });
    }
}

/// A sample of wrong calls: the CUDA path gives the CPU's error, code and message.
pub fn errors(rig: &dyn Rig) -> Vec<Row> {
    let x = [1f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let nan = [1f32, 2.0, 3.0, f32::NAN, 5.0, 6.0];
    let o1 = InfoNceOpts {
        temperature: 0.1,
        positives: None,
        log_q: None,
        normalize: false,
    };
    let o0 = InfoNceOpts {
        temperature: 0.0,
        ..o1
    };
    let bad_pos = [0u32, 5];
    let o2 = InfoNceOpts {
        positives: Some(&bad_pos),
        ..o1
    };
    let m0 = MarginOpts {
        kind: MarginKind::ArcFace,
        scale: 30.0,
        margin: 0.5,
        label_smoothing: 0.0,
    };
    let m1 = MarginOpts { margin: 3.5, ..m0 };
    let dot = Metric::Dot;
    let sim = SimilarityArgs {
        q: &x,
        q_rows: 2,
        c: &x,
        c_rows: 4,
        cols: 3,
        metric: dot,
    };
    let ntx = NtXentArgs {
        a: &x,
        b: &x[..3],
        rows: 2,
        d: 3,
        temperature: 0.1,
    };
    let was = WassersteinArgs {
        a: &x,
        b: &x,
        n: 2,
        d: 3,
        p: 3,
    };
    let mut e = Errors {
        rig,
        rows: Vec::new(),
    };
    e.check(
        "similarityMatrix c shape",
        &sim,
        similarity_matrix(&x, 2, &x, 4, 3, dot),
    );
    e.check(
        "topK k > c.rows",
        &tk(&x, 2, &x, 2, 3, 3),
        top_k(&x, 2, &x, 2, 3, 3, dot),
    );
    e.check(
        "topK k = 0",
        &tk(&x, 2, &x, 2, 3, 0),
        top_k(&x, 2, &x, 2, 3, 0, dot),
    );
    e.check(
        "infoNCE temperature",
        &nce(&x, &x, &o0),
        info_nce(&x, 2, &x, 2, 3, &o0),
    );
    e.check(
        "infoNCE positives",
        &nce(&x, &x, &o2),
        info_nce(&x, 2, &x, 2, 3, &o2),
    );
    e.check(
        "infoNCE non-finite",
        &nce(&nan, &x, &o1),
        info_nce(&nan, 2, &x, 2, 3, &o1),
    );
    // The device normalizes InfoNCE's rows: a zero row is still refused first, before a
    // non-finite value, with the CPU's message.
    let zero = [0f32, 0.0, 0.0, 4.0, 5.0, 6.0];
    let on = InfoNceOpts {
        normalize: true,
        ..o1
    };
    e.check(
        "infoNCE q zero row before keys non-finite",
        &nce(&zero, &nan, &on),
        info_nce(&zero, 2, &nan, 2, 3, &on),
    );
    e.check(
        "infoNCE keys zero row",
        &nce(&x, &zero, &on),
        info_nce(&x, 2, &zero, 2, 3, &on),
    );
    e.check("ntXent b shape", &ntx, nt_xent(&x, &x[..3], 2, 3, 0.1));
    let lm = margin_softmax(&x, 2, &x, 2, 3, &[0, 2], &m0);
    e.check("marginSoftmax labels", &mg(&x, &[0, 2], &m0), lm);
    let mm = margin_softmax(&x, 2, &x, 2, 3, &[0, 1], &m1);
    e.check("marginSoftmax margin", &mg(&x, &[0, 1], &m1), mm);
    e.check(
        "wassersteinRegularizer p",
        &was,
        wasserstein_regularizer(&x, &x, 2, 3, 3),
    );
    e.rows
}

/// topK arguments, dot product (also the bench's).
pub(crate) fn tk<'a>(
    q: &'a [f32],
    qr: usize,
    c: &'a [f32],
    cr: usize,
    d: usize,
    k: usize,
) -> TopKArgs<'a> {
    TopKArgs {
        q,
        q_rows: qr,
        c,
        c_rows: cr,
        cols: d,
        k,
        metric: Metric::Dot,
    }
}

fn nce<'a>(q: &'a [f32], keys: &'a [f32], o: &'a InfoNceOpts<'a>) -> InfoNceArgs<'a> {
    InfoNceArgs {
        q,
        b: 2,
        keys,
        n: 2,
        d: 3,
        o,
    }
}

fn mg<'a>(x: &'a [f32], labels: &'a [u32], o: &'a MarginOpts) -> MarginArgs<'a> {
    MarginArgs {
        x,
        n: 2,
        w: x,
        c: 2,
        d: 3,
        labels,
        o,
    }
}

// ---------------------------------------------------------------------------------------------
// Similarity and top-k

const METRICS: [Metric; 3] = [Metric::Dot, Metric::Cosine, Metric::L2sq];

/// similarityMatrix: the reference parity test's shapes plus larger odd ones (on the emulator,
/// 3 query rows per block).
pub fn similarity(rig: &dyn Rig) -> Vec<Row> {
    let shapes: &[(usize, usize, usize)] = if rig.large() {
        &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 65),
            (200, 401, 97),
            (129, 3001, 768),
            (1000, 1000, 1536),
        ]
    } else {
        &[(1, 1, 1), (3, 5, 7), (17, 33, 65), (40, 70, 33)]
    };
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut rows = Vec::new();
    for &(m, n, d) in shapes {
        let (q, c) = (rng.mat(m, d), rng.mat(n, d));
        for metric in METRICS {
            let want = similarity_matrix(&q, m, &c, n, d, metric).expect("cpu");
            let args = SimilarityArgs {
                q: &q,
                q_rows: m,
                c: &c,
                c_rows: n,
                cols: d,
                metric,
            };
            let what = format!("{m}x{n}x{d} {metric:?}");
            case(rig, &mut rows, "similarityMatrix", what, 3 * 4 * n, |dev| {
                let got = ops::on(dev, &args).map_err(|e| e.msg)?;
                let tol = 1e-4 * d as f32;
                Ok(compare_vals(
                    vec![("values", Val::Near(&got, tol))],
                    vec![("values", Val::Near(&want, tol))],
                    1.0,
                ))
            });
        }
    }
    rows
}

/// Top-k against the CPU's: scores within tolerance; an index may differ from the CPU's only
/// where the CPU scores the GPU's pick within tolerance of the wanted score and the two rows
/// differ (identical rows tie exactly and must keep the lower index first).
fn compare_top_k(got: &TopK, want: &TopK, args: &TopKArgs) -> Vec<Part> {
    let (good, worst) = within(&got.scores, &want.scores, 1e-4, 1e-4);
    let scores_ok = got.scores.len() == want.scores.len() && good == want.scores.len();
    let (d, k) = (args.cols, args.k);
    let row = |m: &[f32], i: usize| m[i * d..(i + 1) * d].to_vec();
    let mut swaps = 0;
    let mut indices_ok = got.indices.len() == want.indices.len();
    for (i, (&g, &w)) in got.indices.iter().zip(&want.indices).enumerate() {
        if g == w {
            continue;
        }
        let (gi, wi) = (g as usize, w as usize);
        let s = similarity_matrix(&row(args.q, i / k), 1, &row(args.c, gi), 1, d, args.metric)
            .expect("cpu")[0];
        let near = (s - want.scores[i]).abs() <= 1e-4 + 1e-4 * want.scores[i].abs();
        if near && gi < args.c_rows && row(args.c, gi) != row(args.c, wi) {
            swaps += 1;
        } else {
            indices_ok = false;
        }
    }
    vec![
        Part {
            name: "scores",
            ok: scores_ok,
            err: worst as f64,
        },
        Part {
            name: "indices (near-tie swaps in err)",
            ok: indices_ok,
            err: swaps as f64,
        },
    ]
}

/// topK: k across the selection's range, a corpus larger than one streamed block, duplicate
/// rows (ties by lower index; the first query is one of them) and a NaN row (ranks last); then
/// k larger than a block, k = c.rows with the NaN, and k > KMAX (E_ARG on the GPU).
pub fn top_k_cases(rig: &dyn Rig) -> Vec<Row> {
    let cases: &[(usize, usize, usize, &[usize])] = if rig.large() {
        &[
            (7, 5000, 33, &[1, 5, 64]),
            (33, 20011, 97, &[1, 10, 128]),
            (100, 300_007, 768, &[10]),
        ]
    } else {
        &[(3, 200, 33, &[1, 4])]
    };
    let mut rng = Rng(7);
    let mut rows = Vec::new();
    for &(m, n, d, ks) in cases {
        let mut q = rng.mat(m, d);
        let mut c = rng.mat(n, d);
        let r3: Vec<f32> = c[3 * d..4 * d].to_vec();
        c[11 * d..12 * d].copy_from_slice(&r3);
        c[12 * d..13 * d].copy_from_slice(&r3);
        c[20 * d] = f32::NAN;
        q[..d].copy_from_slice(&r3);
        let mut run = |qr: usize, cr: usize, k: usize, metric: Metric, rows_per_block: usize| {
            let args = TopKArgs {
                q: &q[..qr * d],
                q_rows: qr,
                c: &c[..cr * d],
                c_rows: cr,
                cols: d,
                k,
                metric,
            };
            let want = top_k(args.q, qr, args.c, cr, d, k, metric).expect("cpu");
            let what = format!("{qr}x{cr}x{d} k={k} {metric:?}");
            let scratch = rows_per_block * 4 * (qr + 2 * d);
            case(rig, &mut rows, "topK", what, scratch, |dev| {
                let got = ops::on(dev, &args).map_err(|e| e.msg)?;
                Ok(compare_top_k(&got, &want, &args))
            });
        };
        for &k in ks {
            for metric in METRICS {
                run(m, n, k, metric, 37);
            }
        }
        // k larger than a streamed block (blocks grow to k rows); every row with the NaN last
        run(2, n, 40, Metric::Cosine, 8);
        run(1, 25, 25, Metric::Dot, 8);
        let args = tk(&q, m, &c, n, d, KMAX + 1);
        case(
            rig,
            &mut rows,
            "topK",
            format!("k = {} (more than KMAX)", KMAX + 1),
            1 << 20,
            |dev| match ops::on(dev, &args) {
                Err(e) if e.code == Code::Arg && e.msg.contains("at most") => Ok(vec![Part {
                    name: "E_ARG",
                    ok: true,
                    err: 0.0,
                }]),
                Err(e) => Err(format!("{:?} {}", e.code, e.msg)),
                Ok(_) => Err("accepted".into()),
            },
        );
    }
    rows
}

/// ±∞ cannot be split for 3xTF32 (∞ · 0 in a cross product is NaN where float32 gives ∞): such
/// GEMMs fall back to plain FP32, so ∞ and NaN land where the CPU puts them.
pub fn infinite_inputs(rig: &dyn Rig) -> Vec<Row> {
    let mut rng = Rng(23);
    let (m, n, d) = (4, 90, 6);
    let mut q = rng.mat(m, d);
    let mut c = rng.mat(n, d);
    c[5 * d + 3] = f32::INFINITY;
    q[d + 2] = f32::NEG_INFINITY;
    let (q2, c2) = (rng.mat(m, d), rng.mat(n, d));
    let mut rows = Vec::new();
    for (qq, cc, what) in [(&q, &c, "both"), (&q2, &c, "corpus"), (&q, &c2, "queries")] {
        let want = similarity_matrix(qq, m, cc, n, d, Metric::Dot).expect("cpu");
        let args = SimilarityArgs {
            q: qq,
            q_rows: m,
            c: cc,
            c_rows: n,
            cols: d,
            metric: Metric::Dot,
        };
        case(
            rig,
            &mut rows,
            "similarityMatrix",
            format!("infinite {what}"),
            40 * 4 * n,
            |dev| {
                let got = ops::on(dev, &args).map_err(|e| e.msg)?;
                Ok(compare_vals(
                    vec![("values", Val::Near(&got, 1e-3))],
                    vec![("values", Val::Near(&want, 1e-3))],
                    1.0,
                ))
            },
        );
        let args = tk(qq, m, cc, n, d, 3);
        let want = top_k(qq, m, cc, n, d, 3, Metric::Dot).expect("cpu");
        case(
            rig,
            &mut rows,
            "topK",
            format!("infinite {what}"),
            30 * 4 * (m + 2 * d),
            |dev| {
                let got = ops::on(dev, &args).map_err(|e| e.msg)?;
                Ok(compare_top_k(&got, &want, &args))
            },
        );
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// The learning functions

/// InfoNCE with every option (temperature, positives, logQ, normalize) on the emulator, one
/// variant per shape on the GPU; K = 3000 with B = 6 makes gradQ's inner sums long.
pub fn info_nce_cases(rig: &dyn Rig) -> Vec<Row> {
    let shapes: &[(usize, usize, usize, &[usize])] = if rig.large() {
        &[
            (1, 1, 1, &[0]),
            (7, 13, 5, &[1]),
            (33, 33, 64, &[2]),
            (129, 300, 65, &[3]),
            (1000, 1000, 128, &[2]),
            (4096, 4096, 768, &[1]),
            // K = 65,536 keys: the gradQ product reduces over 65,536 logits per row (the
            // 3xTF32 accuracy of the longest reduction the anchor shape has).
            (2048, 65_536, 768, &[1, 2]),
        ]
    } else {
        &[
            (1, 1, 1, &[0, 1, 2, 3]),
            (7, 13, 5, &[0, 1, 2, 3]),
            (20, 31, 16, &[0, 1, 2, 3]),
            (6, 3000, 8, &[0, 1, 2, 3]),
        ]
    };
    let mut rng = Rng(3);
    let mut rows = Vec::new();
    for &(b, n, d, variants) in shapes {
        let (q, k) = (rng.mat(b, d), rng.mat(n, d));
        let pos: Vec<u32> = (0..b).map(|i| ((i * 7 + 3) % n) as u32).collect();
        let lq: Vec<f32> = (0..n).map(|j| -((j % 5) as f32 + 1.0).ln()).collect();
        for &v in variants {
            let o = InfoNceOpts {
                temperature: [0.07, 0.5, 0.1, 1.0][v],
                positives: if v % 2 == 1 { Some(&pos) } else { None },
                log_q: if v >= 2 { Some(&lq) } else { None },
                normalize: v >= 1,
            };
            let want = info_nce(&q, b, &k, n, d, &o).expect("cpu");
            let args = InfoNceArgs {
                q: &q,
                b,
                keys: &k,
                n,
                d,
                o: &o,
            };
            let what = format!(
                "B={b} K={n} d={d} tau={} positives={} logQ={} normalize={}",
                o.temperature,
                v % 2 == 1,
                v >= 2,
                v >= 1
            );
            case(rig, &mut rows, "infoNCE", what, 3 * 8 * n, |dev| {
                against(dev, &args, &want, 1.0)
            });
        }
    }
    rows
}

/// NT-Xent at two temperatures.
pub fn nt_xent_cases(rig: &dyn Rig) -> Vec<Row> {
    let shapes: &[(usize, usize)] = if rig.large() {
        &[(1, 1), (9, 17), (300, 128), (2048, 512)]
    } else {
        &[(1, 1), (6, 9), (17, 12)]
    };
    let mut rng = Rng(5);
    let mut rows = Vec::new();
    for &(n, d) in shapes {
        let (a, b) = (rng.mat(n, d), rng.mat(n, d));
        for t in [0.1, 0.5] {
            let want = nt_xent(&a, &b, n, d, t).expect("cpu");
            let args = NtXentArgs {
                a: &a,
                b: &b,
                rows: n,
                d,
                temperature: t,
            };
            let what = format!("N={n} d={d} tau={t}");
            case(rig, &mut rows, "ntXent", what, 5 * 8 * 2 * n, |dev| {
                against(dev, &args, &want, 1.0)
            });
        }
    }
    rows
}

/// marginSoftmax of every kind, with label smoothing and an ArcFace margin past π − θ.
pub fn margin_cases(rig: &dyn Rig) -> Vec<Row> {
    let shapes: &[(usize, usize, usize)] = if rig.large() {
        &[(1, 1, 1), (5, 3, 7), (200, 37, 64), (2048, 1000, 256)]
    } else {
        &[(1, 1, 1), (5, 3, 7), (23, 11, 16)]
    };
    let mut rng = Rng(11);
    let mut rows = Vec::new();
    for &(n, c, d) in shapes {
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
            let want = margin_softmax(&x, n, &w, c, d, &labels, &o).expect("cpu");
            let args = MarginArgs {
                x: &x,
                n,
                w: &w,
                c,
                d,
                labels: &labels,
                o: &o,
            };
            let what = format!("N={n} C={c} d={d} {kind:?} m={margin} eps={eps}");
            case(rig, &mut rows, "marginSoftmax", what, 4 * 12 * c, |dev| {
                against(dev, &args, &want, 1.0)
            });
        }
    }
    rows
}

/// The Wasserstein regularizer through the device sort (n = 100: 4950 pairs padded to 8192
/// keys, so the sort runs its global strides), and rows with equal cosines (the stable order
/// must match the CPU's). p = 1 on larger n: GPU and CPU round near-equal cosines differently,
/// so two sorted slots can swap where sign(S_a − S_b) changes and move ±2/N between pairs; 1 %
/// of the gradient entries may then differ (the loss may not). Not run under the emulator's
/// one-by-one float32 GEMM sums: at n = 100 they put gradB 1.6e-4 × its largest entry off.
pub fn wasserstein_cases(rig: &dyn Rig) -> Vec<Row> {
    let shapes: &[(usize, usize)] = if rig.large() {
        &[(2, 1), (3, 4), (100, 16), (257, 33), (2048, 128)]
    } else {
        &[(2, 1), (3, 4), (40, 8), (100, 6)]
    };
    let mut rng = Rng(13);
    let mut rows = Vec::new();
    let (tn, td) = (12, 3);
    let mut ties = rng.mat(tn, td);
    for i in 1..4 {
        let r: Vec<f32> = ties[..td].to_vec();
        ties[i * td..(i + 1) * td].copy_from_slice(&r);
    }
    let tb = rng.mat(tn, td);
    let mut one = |a: &[f32], b: &[f32], n: usize, d: usize, note: &str| {
        for p in [1u32, 2] {
            let want = wasserstein_regularizer(a, b, n, d, p).expect("cpu");
            let args = WassersteinArgs { a, b, n, d, p };
            let frac = if p == 1 && n > 200 { 0.99 } else { 1.0 };
            let what = format!("n={n} d={d} p={p}{note}");
            let scratch = ops::wasserstein_bytes(n, d);
            case(
                rig,
                &mut rows,
                "wassersteinRegularizer",
                what,
                scratch,
                |dev| against(dev, &args, &want, frac),
            );
        }
    };
    for &(n, d) in shapes {
        let (a, b) = (rng.mat(n, d), rng.mat(n, d));
        one(&a, &b, n, d, "");
    }
    one(&ties, &tb, tn, td, " equal cosines");
    rows
}
