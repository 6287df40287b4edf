//! Bindings of chapter 4 (margin losses) and of the cross-entropy and penalties of chapter 6.

use crate::args::{Gemm, Mat};
use crate::common::js_result;
use crate::common::{call, err, guard, typed_filled, IntoJs};
use crate::run::{operation, Op};
use densevec_core::margin::{self as mg, MarginKind, MarginOpts};
use densevec_core::view::Operand;
use densevec_core::{alloc, Code};
use napi::bindgen_prelude::*;
use napi_derive::napi;

js_result!(
    /// `{ loss, gradX, gradW, logits, gradScale, angularMargins }` of marginSoftmax (row-major buffers).
    MarginSoftmaxResult from mg::MarginSoftmax {
        loss, grad_scale;
        grad_x: Float32ArraySlice = "gradX", grad_w: Float32ArraySlice = "gradW", logits: Float32ArraySlice = "logits", angular_margins: Float32ArraySlice = "angularMargins";

    }
);

js_result!(
    /// `{ loss, grad }` of the cross-entropy and the penalties.
    LossGradResult from mg::LossGrad {
        loss;
        grad: Float32ArraySlice = "the gradient";

    }
);

/// A margin kind.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy)]
pub enum MarginKindName {
    Normalized,
    Cosface,
    Arcface,
}

impl From<MarginKindName> for MarginKind {
    fn from(k: MarginKindName) -> MarginKind {
        match k {
            MarginKindName::Normalized => MarginKind::Normalized,
            MarginKindName::Cosface => MarginKind::CosFace,
            MarginKindName::Arcface => MarginKind::ArcFace,
        }
    }
}

/// The arguments of `marginSoftmax`: x (N × d), prototypes (C × d), one label per row.
#[napi(object, object_to_js = false)]
pub struct MarginSoftmaxArgs {
    pub x: Mat,
    pub prototypes: Mat,
    pub labels: Uint32Array,
    pub kind: MarginKindName,
    pub scale: f64,
    pub margin: f64,
    pub label_smoothing: f64,
    pub gemm: Option<Gemm>,
}

impl MarginSoftmaxArgs {
    fn opts(&self) -> MarginOpts {
        MarginOpts {
            kind: self.kind.into(),
            scale: self.scale,
            margin: self.margin,
            label_smoothing: self.label_smoothing,
        }
    }

    fn dims(&self, func: &str) -> densevec_core::Result<(usize, usize, usize)> {
        let ((n, d), (c, _)) = (
            self.x.dims(func, "x")?,
            self.prototypes.dims(func, "prototypes")?,
        );
        Ok((n, c, d))
    }
}

impl Op for MarginSoftmaxArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<mg::MarginSoftmax> {
        let (n, c, d) = self.dims(func)?;
        if n.checked_mul(d) == Some(self.x.data.len())
            && c.checked_mul(d) == Some(self.prototypes.data.len())
        {
            crate::common::fits_typed(func, "the N × C logits", "split the batch", &[n, c])?;
        }
        let (x, w) = (
            Operand::new(&self.x.data, n),
            Operand::new(&self.prototypes.data, c),
        );
        Gemm::run(&self.gemm, func, |s| {
            mg::margin_softmax_with(x, w, d, &self.labels, &self.opts(), s)
        })
    }

    /// Argument errors first (as [`Op::cpu`] orders them), then the N × C logits, computed in
    /// the returned buffer: at 4096 × 10,000 a copy of them cost 164 MB of reads and writes.
    fn sync<'e>(&self, env: &'e Env, func: &str) -> napi::Result<MarginSoftmaxResult<'e>> {
        let (n, c, d) = guard(func, || self.dims(func))?;
        let (x, w) = (
            Operand::new(&self.x.data, n),
            Operand::new(&self.prototypes.data, c),
        );
        let o = self.opts();
        let pr = guard(func, || {
            Gemm::run(&self.gemm, func, |_| {
                mg::margin_prepare(x, w, d, &self.labels, &o)
            })
        })?;
        let (len, lx, lw) = guard(func, || {
            Ok((
                alloc::elems(func, mg::LOGITS, &[n, c], 4, mg::SPLIT)?,
                alloc::elems(func, "gradX", &[n, d], 4, mg::SPLIT)?,
                alloc::elems(func, "gradPrototypes", &[c, d], 4, mg::SPLIT)?,
            ))
        })?;
        // gradX and gradPrototypes are computed in their returned buffers too: copied from
        // fresh vectors, they took two more allocations and a serial copy after the parallel
        // work. All three are unzeroed memory: the GEMMs write every value before anything
        // reads it (a zeroed buffer was zeroed again on this thread when the allocator reused
        // memory).
        let (mut rest, mut gx_js, mut gw_js) = (None, None, None);
        let logits = typed_filled(env, func, mg::LOGITS, mg::SPLIT, len, |out| {
            gx_js = Some(typed_filled(env, func, "gradX", mg::SPLIT, lx, |gx| {
                gw_js = Some(typed_filled(
                    env,
                    func,
                    "gradPrototypes",
                    mg::SPLIT,
                    lw,
                    |gw| {
                        rest = Some(guard(func, || {
                            Gemm::run(&self.gemm, func, |_| {
                                mg::margin_softmax_into(
                                    &pr,
                                    (c, d),
                                    &self.labels,
                                    &o,
                                    out,
                                    (gx, gw),
                                )
                            })
                        })?);
                        Ok(())
                    },
                )?);
                Ok(())
            })?);
            Ok(())
        })?;
        // The checks above refuse empty matrices, so every buffer was filled.
        let (r, gx, gw) = match (rest, gx_js, gw_js) {
            (Some(r), Some(gx), Some(gw)) => (r, gx, gw),
            _ => return Err(err(Code::Shape, format!("{func}: no logits"))),
        };
        // The other buffers as every result makes them (the empty logits and gradients become
        // empty arrays), then the ones computed in place.
        let mut js = r.into_js(env, func)?;
        js.logits = logits;
        js.grad_x = gx;
        js.grad_w = gw;
        Ok(js)
    }

    /// Three N × C × d GEMMs: cosines, gradX, gradW. A scale far from 1 (whose float32
    /// logits would overflow, see `scale_is_wide`) stays on the CPU.
    fn gpu_work(&self) -> Option<f64> {
        if !Gemm::gpu(&self.gemm) || mg::scale_is_wide(self.scale) {
            return None;
        }
        Some(3.0 * self.x.rows * self.prototypes.rows * self.x.cols)
    }

    fn gpu(&self, func: &str) -> densevec_core::Result<mg::MarginSoftmax> {
        let (n, c, d) = self.dims(func)?;
        let (x, w) = (&self.x.data, &self.prototypes.data);
        densevec_cuda::margin_softmax(x, n, w, c, d, &self.labels, &self.opts())
    }
}

operation!(
    /// Margin softmax loss with its gradients, now or as a Promise (`how`).
    margin_softmax = "marginSoftmax",
    MarginSoftmaxArgs { x: "x", prototypes: "w", labels: "labels" } -> mg::MarginSoftmax,
    "MarginSoftmaxResult | Promise<MarginSoftmaxResult>"
);

/// The arguments of `labelSmoothingCrossEntropy`: logits (N × C), one label per row.
#[napi(object, object_to_js = false)]
pub struct CrossEntropyArgs {
    pub logits: Mat,
    pub labels: Uint32Array,
    pub epsilon: f64,
}

impl Op for CrossEntropyArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<mg::LossGrad> {
        let (n, c) = self.logits.dims(func, "logits")?;
        mg::label_smoothing_cross_entropy(&self.logits.data, n, c, &self.labels, self.epsilon)
    }
}

operation!(
    /// Cross-entropy with label smoothing (PyTorch's convention, mean over rows).
    label_smoothing_cross_entropy = "labelSmoothingCrossEntropy",
    CrossEntropyArgs { logits: "logits", labels: "labels" } -> mg::LossGrad,
    "LossGradResult | Promise<LossGradResult>"
);

/// The arguments of `normPenalty` and `l1Penalty`.
#[napi(object, object_to_js = false)]
pub struct PenaltyArgs {
    pub m: Mat,
    pub lambda: f64,
}

type Penalty = fn(&[f32], usize, usize, f64) -> densevec_core::Result<mg::LossGrad>;

fn penalty<'e>(
    env: &'e Env,
    func: &str,
    a: &PenaltyArgs,
    f: Penalty,
) -> napi::Result<LossGradResult<'e>> {
    call(env, func, |func| {
        let (r, c) = a.m.dims(func, "m")?;
        f(&a.m.data, r, c, a.lambda)
    })
}

/// λ Σ‖row‖² and 2λ·m.
#[napi]
pub fn norm_penalty<'e>(env: &'e Env, args: PenaltyArgs) -> napi::Result<LossGradResult<'e>> {
    penalty(env, "normPenalty", &args, mg::norm_penalty)
}

/// λ Σ|m_ij| and λ·sign(m).
#[napi]
pub fn l1_penalty<'e>(env: &'e Env, args: PenaltyArgs) -> napi::Result<LossGradResult<'e>> {
    penalty(env, "l1Penalty", &args, mg::l1_penalty)
}
