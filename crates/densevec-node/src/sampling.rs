//! Bindings of the negative-sampling tools: the alias sampler (stateless calls: the TypeScript
//! class keeps the table and the stream position), unigram weights, the negative-sampling loss
//! and the margin geometry of class prototypes.

use crate::common::{copy, guard, to_usize, typed};
use densevec_core::margin::{self as mg, MarginKind};
use densevec_core::sampling as s;
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

/// `n` draws from a table built by `aliasBuild`, continuing the SplitMix64 stream of `seed`
/// after `draws` outputs.
#[napi]
pub fn alias_sample<'e>(
    env: &'e Env,
    prob: &[f64],
    alias: &[u32],
    probabilities: &[f64],
    seed: f64,
    draws: f64,
    n: f64,
) -> napi::Result<Uint32ArraySlice<'e>> {
    const F: &str = "AliasSampler.sample";
    let n = to_usize(F, "n", n)?;
    let draws = to_usize(F, "draws", draws)? as u64;
    let seed = to_usize(F, "seed", seed)? as u64;
    let t = s::AliasTable {
        prob: copy(F, "the alias probabilities", prob)?,
        alias: copy(F, "the alias table", alias)?,
        probabilities: copy(F, "probabilities", probabilities)?,
    };
    let v = guard(F, || {
        if t.prob.is_empty() || t.alias.len() != t.prob.len() {
            densevec_core::bail!(Shape, "{F}: the alias table is empty or inconsistent");
        }
        Ok(t.sample(seed, draws, n))
    })?;
    typed(env, F, "the draws", &v)
}

/// log p(index) per index.
#[napi]
pub fn alias_log_prob<'e>(
    env: &'e Env,
    probabilities: &[f64],
    indices: &[u32],
) -> napi::Result<Float32ArraySlice<'e>> {
    const F: &str = "AliasSampler.logProb";
    let t = s::AliasTable {
        prob: Vec::new(),
        alias: Vec::new(),
        probabilities: copy(F, "probabilities", probabilities)?,
    };
    let v = guard(F, || t.log_prob(indices))?;
    typed(env, F, "the log-probabilities", &v)
}

/// counts^power.
#[napi]
pub fn unigram_weights<'e>(
    env: &'e Env,
    counts: &[f64],
    power: f64,
) -> napi::Result<Float64ArraySlice<'e>> {
    const F: &str = "unigramWeights";
    let v = guard(F, || s::unigram_weights(counts, power))?;
    typed(env, F, "the weights", &v)
}

/// `{ loss, gradX, gradPositives, gradNegatives }` of negativeSamplingLoss.
#[napi(object, object_from_js = false)]
pub struct NegSamplingResult<'e> {
    pub loss: f64,
    pub grad_x: Float32ArraySlice<'e>,
    pub grad_positives: Float32ArraySlice<'e>,
    pub grad_negatives: Float32ArraySlice<'e>,
}

/// Negative-sampling / NCE loss; `k` 0 means inferred; `logQ` used when `hasLogQ`.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn negative_sampling_loss<'e>(
    env: &'e Env,
    x: &[f32],
    rows: f64,
    positives: &[f32],
    negatives: &[f32],
    neg_rows: f64,
    cols: f64,
    k: f64,
    log_q: &[f32],
    has_log_q: bool,
) -> napi::Result<NegSamplingResult<'e>> {
    const F: &str = "negativeSamplingLoss";
    let (n, nr, d, k) = (
        to_usize(F, "x.rows", rows)?,
        to_usize(F, "negatives.rows", neg_rows)?,
        to_usize(F, "cols", cols)?,
        to_usize(F, "k", k)?,
    );
    let kk = if k == 0 { None } else { Some(k) };
    let lq = if has_log_q { Some(log_q) } else { None };
    let r = guard(F, || {
        s::negative_sampling_loss(x, n, positives, negatives, nr, d, kk, lq)
    })?;
    Ok(NegSamplingResult {
        loss: r.loss,
        grad_x: typed(env, F, "gradX", &r.grad_x)?,
        grad_positives: typed(env, F, "gradPositives", &r.grad_positives)?,
        grad_negatives: typed(env, F, "gradNegatives", &r.grad_negatives)?,
    })
}

/// `{ angles, gaps }` (C × C, row-major) of marginGeometry.
#[napi(object, object_from_js = false)]
pub struct MarginGeometryResult<'e> {
    pub angles: Float32ArraySlice<'e>,
    pub gaps: Float32ArraySlice<'e>,
}

/// Margin geometry of prototypes; kind 0 normalized, 1 cosface, 2 arcface.
#[napi]
pub fn margin_geometry<'e>(
    env: &'e Env,
    w: &[f32],
    rows: f64,
    cols: f64,
    kind: u32,
    margin: f64,
) -> napi::Result<MarginGeometryResult<'e>> {
    const F: &str = "marginGeometry";
    let (c, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    let r = guard(F, || {
        let k = MarginKind::from_code(F, kind)?;
        mg::margin_geometry(w, c, d, k, margin)
    })?;
    Ok(MarginGeometryResult {
        angles: typed(env, F, "angles", &r.angles)?,
        gaps: typed(env, F, "gaps", &r.gaps)?,
    })
}
