//! Bindings of chapter 3: contrastive learning.

use crate::args::{Gemm, Mat};
use crate::common::js_result;
use crate::common::plain_js;
use crate::common::{guard, to_napi, typed_with, IntoJs};
use crate::run::{operation, Op};
use densevec_core::alloc;
use densevec_core::contrastive::{self as c, InfoNceOpts};
use densevec_core::view::Operand;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// `stats` of infoNCE / ntXent: diagnostics of p(·|q), averaged over queries.
#[napi(object)]
pub struct ContrastiveStats {
    pub mean_entropy: f64,
    pub mean_positive_probability: f64,
    pub mean_max_negative_probability: f64,
    pub effective_negatives: f64,
}

fn stats(s: c::NceStats) -> ContrastiveStats {
    ContrastiveStats {
        mean_entropy: s.mean_entropy,
        mean_positive_probability: s.mean_positive_probability,
        mean_max_negative_probability: s.mean_max_negative_probability,
        effective_negatives: s.effective_negatives,
    }
}

js_result!(
    /// `{ loss, gradQ, gradKeys, gradTemperature, stats }` of infoNCE (gradients row-major,
    /// shapes of q and keys).
    InfoNceResult from c::InfoNce {
        loss, grad_temperature;
        grad_q: Float32ArraySlice = "gradQ", grad_keys: Float32ArraySlice = "gradKeys";
        stats: ContrastiveStats => stats
    }
);

js_result!(
    /// `{ loss, gradA, gradB, gradTemperature, stats }` of ntXent.
    NtXentResult from c::NtXent {
        loss, grad_temperature;
        grad_a: Float32ArraySlice = "gradA", grad_b: Float32ArraySlice = "gradB";
        stats: ContrastiveStats => stats
    }
);

/// The arguments of `infoNCE`: `positives` absent means query i ↔ key i, `logQ` absent means
/// no sampled-softmax correction, `keyIds` absent means no removal of accidental hits.
#[napi(object, object_to_js = false)]
pub struct InfoNceArgs {
    pub q: Mat,
    pub keys: Mat,
    pub temperature: f64,
    pub positives: Option<Uint32Array>,
    pub log_q: Option<Float32Array>,
    pub normalize: bool,
    pub key_ids: Option<Uint32Array>,
    pub gemm: Option<Gemm>,
}

impl InfoNceArgs {
    fn opts(&self) -> InfoNceOpts<'_> {
        InfoNceOpts {
            temperature: self.temperature,
            positives: self.positives.as_deref(),
            log_q: self.log_q.as_deref(),
            normalize: self.normalize,
        }
    }

    /// Whether float32 logits could go wrong (a subnormal τ, rows of 1e20, tiny rows, a huge
    /// logQ: `float32_logits_unsafe`): the CPU handles those in float64.
    fn logits_may_overflow(&self) -> bool {
        let log_q = self.log_q.as_deref().map_or(0.0, max_abs);
        c::float32_logits_unsafe(
            max_abs(&self.q.data),
            max_abs(&self.keys.data),
            self.q.cols as usize,
            self.temperature,
            log_q,
        )
    }
}

/// The way out of a refused gradient buffer.
const HINT: &str = "split the batch";

/// A result that the in-place form did not produce (the buffers above are never empty).
fn internal(func: &str) -> densevec_core::Error {
    densevec_core::Error::new(
        densevec_core::Code::Backend,
        format!("{func}: the gradients were not computed"),
    )
}

/// max |x_i| (NaN when any value is NaN).
fn max_abs(x: &[f32]) -> f64 {
    x.iter().fold(0.0f64, |m, &v| {
        let a = (v as f64).abs();
        if m.is_nan() || a.is_nan() {
            f64::NAN
        } else {
            m.max(a)
        }
    })
}

impl Op for InfoNceArgs {
    /// Argument errors first (as [`Op::cpu`] orders them), then gradQ and gradKeys computed in
    /// the returned buffers: copying them (B × d and K × d) from fresh vectors cost two more
    /// allocations, their first-touch page faults and the copy.
    fn sync<'e>(&self, env: &'e Env, func: &str) -> napi::Result<InfoNceResult<'e>> {
        let ((b, d), (n, _)) = guard(func, || {
            Ok((self.q.dims(func, "q")?, self.keys.dims(func, "keys")?))
        })?;
        let (q, keys) = (
            Operand::new(&self.q.data, b),
            Operand::new(&self.keys.data, n),
        );
        let (o, ids) = (self.opts(), self.key_ids.as_deref());
        let p = guard(func, || {
            Gemm::run(&self.gemm, func, |_| {
                c::info_nce_prepare_ids(q, keys, d, &o, ids)
            })
        })?;
        let lens = guard(func, || {
            Ok((
                alloc::elems(func, "gradQ", &[b, d], 4, HINT)?,
                alloc::elems(func, "gradKeys", &[n, d], 4, HINT)?,
            ))
        })?;
        if lens.0 == 0 || lens.1 == 0 {
            return guard(func, || self.cpu(func))?.into_js(env, func);
        }
        let (mut rest, mut gk_js) = (None, None);
        let gq_js = typed_with(env, func, "gradQ", HINT, lens.0, |gq| {
            gk_js = Some(typed_with(env, func, "gradKeys", HINT, lens.1, |gk| {
                rest = Some(guard(func, || {
                    Gemm::run(&self.gemm, func, |s| {
                        c::info_nce_prepared_into(&p, o.temperature, s, gq, gk)
                    })
                })?);
                Ok(())
            })?);
            Ok(())
        })?;
        let (r, gk_js) = match (rest, gk_js) {
            (Some(r), Some(g)) => (r, g),
            _ => return Err(to_napi(internal(func))),
        };
        let mut js = r.into_js(env, func)?;
        js.grad_q = gq_js;
        js.grad_keys = gk_js;
        Ok(js)
    }

    fn cpu(&self, func: &str) -> densevec_core::Result<c::InfoNce> {
        let ((b, d), (n, _)) = (self.q.dims(func, "q")?, self.keys.dims(func, "keys")?);
        let (q, keys) = (
            Operand::new(&self.q.data, b),
            Operand::new(&self.keys.data, n),
        );
        let ids = self.key_ids.as_deref();
        Gemm::run(&self.gemm, func, |s| {
            c::info_nce_with(q, keys, d, &self.opts(), ids, s)
        })
    }

    /// Three B × K × d GEMMs (logits, gradQ, gradKeys); calls with `keyIds` (no accidental-hit
    /// mask on the GPU) or logits that may overflow float32 stay on the CPU.
    fn gpu_work(&self) -> Option<f64> {
        if !Gemm::gpu(&self.gemm) {
            return None;
        }
        (self.key_ids.is_none() && !self.logits_may_overflow())
            .then_some(3.0 * self.q.rows * self.keys.rows * self.q.cols)
    }

    fn gpu(&self, func: &str) -> densevec_core::Result<c::InfoNce> {
        let ((b, d), (n, _)) = (self.q.dims(func, "q")?, self.keys.dims(func, "keys")?);
        densevec_cuda::info_nce(&self.q.data, b, &self.keys.data, n, d, &self.opts())
    }
}

operation!(
    /// InfoNCE with its gradients and diagnostics, now or as a Promise (`how`).
    info_nce = "infoNCE",
    InfoNceArgs { q: "q", keys: "keys", positives: "positives", log_q: "logQ", key_ids: "keyIds" } -> c::InfoNce,
    "InfoNceResult | Promise<InfoNceResult>"
);

/// The arguments of `ntXent`: two views `a`, `b` of the same shape.
#[napi(object, object_to_js = false)]
pub struct NtXentArgs {
    pub a: Mat,
    pub b: Mat,
    pub temperature: f64,
    pub gemm: Option<Gemm>,
}

impl Op for NtXentArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<c::NtXent> {
        let (a, b, r, d) = self.a.views(func, "a", &self.b)?;
        Gemm::run(&self.gemm, func, |s| {
            c::nt_xent_with(a, b, r, d, self.temperature, s)
        })
    }

    /// The same GEMMs over the 2N rows of both views; cosine logits 1/τ beyond float32 (a
    /// subnormal τ) stay on the CPU.
    fn gpu_work(&self) -> Option<f64> {
        if !Gemm::gpu(&self.gemm) {
            return None;
        }
        let n2 = 2.0 * self.a.rows;
        (1.0 / self.temperature < 1e36).then_some(3.0 * n2 * n2 * self.a.cols)
    }

    fn gpu(&self, func: &str) -> densevec_core::Result<c::NtXent> {
        let (a, b, r, d) = self.a.views(func, "a", &self.b)?;
        densevec_cuda::nt_xent(a, b, r, d, self.temperature)
    }
}

operation!(
    /// SimCLR NT-Xent over two views, now or as a Promise (`how`).
    nt_xent = "ntXent",
    NtXentArgs { a: "a", b: "b" } -> c::NtXent,
    "NtXentResult | Promise<NtXentResult>"
);

/// `{ muP, muQ, M }` of mismatchScore.
#[napi(object)]
pub struct MismatchResult {
    pub mu_p: f64,
    pub mu_q: f64,
    #[napi(js_name = "M")]
    pub m: f64,
}

plain_js!(MismatchResult);

/// The arguments of `mismatchScore`: two views of the same shape.
#[napi(object, object_to_js = false)]
pub struct MismatchArgs {
    pub a: Mat,
    pub b: Mat,
    pub within_view: bool,
}

impl Op for MismatchArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<MismatchResult> {
        let (a, b, r, d) = self.a.views(func, "a", &self.b)?;
        let m = c::mismatch_score_opts(a, b, r, d, self.within_view)?;
        Ok(MismatchResult {
            mu_p: m.mu_p,
            mu_q: m.mu_q,
            m: m.m,
        })
    }
}

operation!(
    /// Mean matching and non-matching cosines of two views (`withinView`: muQ also over the
    /// within-view pairs).
    mismatch_score = "mismatchScore",
    MismatchArgs { a: "a", b: "b" } -> MismatchResult,
    "MismatchResult | Promise<MismatchResult>"
);

/// The arguments of `softmaxProbabilities`: the query `x` and the rows `ys`.
#[napi(object, object_to_js = false)]
pub struct SoftmaxArgs {
    pub x: Float32Array,
    pub ys: Mat,
    pub temperature: f64,
}

impl Op for SoftmaxArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<Vec<f32>> {
        let (r, d) = self.ys.dims(func, "ys")?;
        c::softmax_probabilities(&self.x, &self.ys.data, r, d, self.temperature)
    }
}

operation!(
    /// softmax_j(x·y_j/τ) over the rows of ys.
    softmax_probabilities = "softmaxProbabilities",
    SoftmaxArgs { x: "x", ys: "ys" } -> Vec<f32>,
    "Float32Array | Promise<Float32Array>"
);
