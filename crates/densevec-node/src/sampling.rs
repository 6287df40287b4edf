//! Bindings of the negative-sampling tools: the alias sampler (stateless calls: the TypeScript
//! class keeps the table and the stream position), unigram weights, the negative-sampling loss
//! and the margin geometry of class prototypes.

use crate::args::Mat;
use crate::common::js_result;
use crate::common::{call_typed, copy, err, guard, typed, typed_filled, IntoJs, SPLIT};
use crate::margin::MarginKindName;
use crate::run::{operation, Op};
use densevec_core::margin as mg;
use densevec_core::sampling as s;
use densevec_core::view::dim;
use densevec_core::view::Operand;
use densevec_core::{alloc, Code};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Walker alias table: `{ prob, alias, probabilities }`.
#[napi(object, object_from_js = false)]
pub struct AliasTableResult<'e> {
    pub prob: Float64ArraySlice<'e>,
    pub alias: Uint32ArraySlice<'e>,
    pub probabilities: Float64ArraySlice<'e>,
}

/// Builds the alias table of non-negative finite weights (at least one positive).
#[napi]
pub fn alias_build<'e>(env: &'e Env, weights: &[f64]) -> napi::Result<AliasTableResult<'e>> {
    const F: &str = "AliasSampler";
    let t = guard(F, || s::AliasTable::new(weights))?;
    Ok(AliasTableResult {
        prob: typed(env, F, "the alias probabilities", &t.prob)?,
        alias: typed(env, F, "the alias table", &t.alias)?,
        probabilities: typed(env, F, "probabilities", &t.probabilities)?,
    })
}

/// The arguments of `AliasSampler.sample`: a table built by `aliasBuild`, the stream's seed,
/// the draws made from it so far and the count `n` to draw next.
#[napi(object, object_to_js = false)]
pub struct AliasSampleArgs {
    pub prob: Float64Array,
    pub alias: Uint32Array,
    pub probabilities: Float64Array,
    pub seed: f64,
    pub draws: f64,
    pub n: f64,
}

/// `n` draws from a table built by `aliasBuild`, continuing the SplitMix64 stream of `seed`
/// after `draws` outputs.
#[napi]
pub fn alias_sample<'e>(env: &'e Env, args: AliasSampleArgs) -> napi::Result<Uint32ArraySlice<'e>> {
    const F: &str = "AliasSampler.sample";
    let (t, n, draws, seed) = guard(F, || {
        let f = F;
        let n = dim(f, "n", args.n)?;
        let (draws, seed) = (dim(f, "draws", args.draws)?, dim(f, "seed", args.seed)?);
        let t = s::AliasTable {
            prob: copy(f, "the alias probabilities", &args.prob)?,
            alias: copy(f, "the alias table", &args.alias)?,
            probabilities: copy(f, "probabilities", &args.probabilities)?,
        };
        if t.prob.is_empty() || t.alias.len() != t.prob.len() {
            densevec_core::bail!(Shape, "{f}: the alias table is empty or inconsistent");
        }
        Ok((t, n, draws, seed))
    })?;
    // Drawn into the returned buffer, whose size is checked (and refused with E_ARG) first.
    typed_filled(env, F, "the draws", "draw fewer at a time", n, |out| {
        t.sample_into(seed as u64, draws as u64, out);
        Ok(())
    })
}

/// The arguments of `AliasSampler.logProb`: the table's probabilities and the indices.
#[napi(object, object_to_js = false)]
pub struct AliasLogProbArgs {
    pub probabilities: Float64Array,
    pub indices: Uint32Array,
}

/// log p(index) per index.
#[napi]
pub fn alias_log_prob<'e>(
    env: &'e Env,
    args: AliasLogProbArgs,
) -> napi::Result<Float32ArraySlice<'e>> {
    call_typed(env, "AliasSampler.logProb", "the log-probabilities", |f| {
        let t = s::AliasTable {
            prob: Vec::new(),
            alias: Vec::new(),
            probabilities: copy(f, "probabilities", &args.probabilities)?,
        };
        t.log_prob(&args.indices)
    })
}

/// The arguments of `unigramWeights`: the counts and the power.
#[napi(object, object_to_js = false)]
pub struct UnigramWeightsArgs {
    pub counts: Float64Array,
    pub power: f64,
}

/// counts^power.
#[napi]
pub fn unigram_weights<'e>(
    env: &'e Env,
    args: UnigramWeightsArgs,
) -> napi::Result<Float64ArraySlice<'e>> {
    const F: &str = "unigramWeights";
    let v = guard(F, || s::unigram_weights(&args.counts, args.power))?;
    typed(env, F, "the weights", &v)
}

js_result!(
    /// `{ loss, gradX, gradPositives, gradNegatives }` of negativeSamplingLoss.
    NegSamplingResult from s::NegSampling {
        loss;
        grad_x: Float32ArraySlice = "gradX", grad_positives: Float32ArraySlice = "gradPositives", grad_negatives: Float32ArraySlice = "gradNegatives";

    }
);

/// The arguments of `negativeSamplingLoss`: `k` 0 means inferred from the row counts, `logQ`
/// absent means plain negative sampling (present: NCE).
#[napi(object, object_to_js = false)]
pub struct NegativeSamplingArgs {
    pub x: Mat,
    pub positives: Float32Array,
    pub negatives: Mat,
    pub k: f64,
    pub log_q: Option<Float32Array>,
}

impl NegativeSamplingArgs {
    /// x and the negatives as operands, d, and k (None: inferred).
    fn operands(
        &self,
        f: &str,
    ) -> densevec_core::Result<(Operand<'_>, Operand<'_>, usize, Option<usize>)> {
        let ((n, d), (nr, _)) = (self.x.dims(f, "x")?, self.negatives.dims(f, "negatives")?);
        let kk = Some(dim(f, "k", self.k)?).filter(|&k| k > 0);
        Ok((
            Operand::new(&self.x.data, n),
            Operand::new(&self.negatives.data, nr),
            d,
            kk,
        ))
    }
}

impl Op for NegativeSamplingArgs {
    fn cpu(&self, f: &str) -> densevec_core::Result<s::NegSampling> {
        let (x, neg, d, kk) = self.operands(f)?;
        s::negative_sampling_loss(x, &self.positives, neg, d, kk, self.log_q.as_deref())
    }

    /// Argument errors first (as [`Op::cpu`] orders them), then the three gradients computed
    /// in the returned buffers (unzeroed memory, every value written): from fresh vectors they
    /// took a serial zeroing of reused memory and three copies (34 MB each way at n = 4096,
    /// k = 5, d = 300), and zeroed result buffers a serial zeroing of their own.
    fn sync<'e>(&self, env: &'e Env, func: &str) -> napi::Result<NegSamplingResult<'e>> {
        let lq = self.log_q.as_deref();
        let (x, neg, d, kk) = guard(func, || self.operands(func))?;
        let sh = guard(func, || {
            s::negative_sampling_check(x, &self.positives, neg, d, kk, lq)
        })?;
        let (lx, ln) = guard(func, || {
            Ok((
                alloc::elems(func, "gradX", &[sh.n, d], 4, SPLIT)?,
                alloc::elems(func, "gradNegatives", &[sh.neg_rows, d], 4, SPLIT)?,
            ))
        })?;
        let (mut loss, mut gp_js, mut gn_js) = (None, None, None);
        let gx_js = typed_filled(env, func, "gradX", SPLIT, lx, |gx| {
            gp_js = Some(typed_filled(env, func, "gradPositives", SPLIT, lx, |gp| {
                gn_js = Some(typed_filled(env, func, "gradNegatives", SPLIT, ln, |gn| {
                    loss = Some(guard(func, || {
                        let args = (x, &self.positives[..], neg);
                        s::negative_sampling_loss_into(args, d, kk, lq, (gx, gp, gn))
                    })?);
                    Ok(())
                })?);
                Ok(())
            })?);
            Ok(())
        })?;
        // The checks above refuse empty matrices, so every buffer was filled.
        let (loss, gp, gn) = match (loss, gp_js, gn_js) {
            (Some(l), Some(gp), Some(gn)) => (l, gp, gn),
            _ => return Err(err(Code::Shape, format!("{func}: no gradients"))),
        };
        let r = s::NegSampling {
            loss,
            grad_x: Vec::new(),
            grad_positives: Vec::new(),
            grad_negatives: Vec::new(),
        };
        let mut js = r.into_js(env, func)?;
        js.grad_x = gx_js;
        js.grad_positives = gp;
        js.grad_negatives = gn;
        Ok(js)
    }
}

operation!(
    /// Negative-sampling / NCE loss with its gradients.
    negative_sampling_loss = "negativeSamplingLoss",
    NegativeSamplingArgs { x: "x", positives: "positives", negatives: "negatives", log_q: "logQ" } -> s::NegSampling,
    "NegSamplingResult | Promise<NegSamplingResult>"
);

js_result!(
    /// `{ angles, gaps }` (C × C, row-major) of marginGeometry.
    MarginGeometryResult from mg::MarginGeometry {
        ;
        angles: Float32ArraySlice = "angles", gaps: Float32ArraySlice = "gaps";

    }
);

/// The arguments of `marginGeometry`: the prototypes (C × d), the margin kind and size.
#[napi(object, object_to_js = false)]
pub struct MarginGeometryArgs {
    pub prototypes: Mat,
    pub kind: MarginKindName,
    pub margin: f64,
}

impl Op for MarginGeometryArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<mg::MarginGeometry> {
        let (c, d) = self.prototypes.dims(func, "prototypes")?;
        if c.checked_mul(d) == Some(self.prototypes.data.len()) {
            crate::common::fits_typed(func, "the C × C angles", "pass fewer prototypes", &[c, c])?;
        }
        mg::margin_geometry(&self.prototypes.data, c, d, self.kind.into(), self.margin)
    }
}

operation!(
    /// Margin geometry of prototypes.
    margin_geometry = "marginGeometry",
    MarginGeometryArgs { prototypes: "prototypes" } -> mg::MarginGeometry,
    "MarginGeometryResult | Promise<MarginGeometryResult>"
);
