//! Bindings of the negative-sampling tools: the alias sampler (stateless calls: the TypeScript
//! class keeps the table and the stream position), unigram weights, the negative-sampling loss
//! and the margin geometry of class prototypes.

use crate::common::{guard, to_usize};
use densevec_core::margin::{self as mg, MarginKind};
use densevec_core::sampling as s;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Walker alias table: `{ prob, alias, probabilities }`.
#[napi(object)]
pub struct AliasTableResult {
    pub prob: Float64Array,
    pub alias: Uint32Array,
    pub probabilities: Float64Array,
}

/// Builds the alias table of non-negative finite weights (at least one positive).
#[napi]
pub fn alias_build(weights: &[f64]) -> napi::Result<AliasTableResult> {
    let t = guard("AliasSampler", || s::AliasTable::new(weights))?;
    Ok(AliasTableResult {
        prob: Float64Array::new(t.prob),
        alias: Uint32Array::new(t.alias),
        probabilities: Float64Array::new(t.probabilities),
    })
}

/// `n` draws from a table built by `aliasBuild`, continuing the SplitMix64 stream of `seed`
/// after `draws` outputs.
#[napi]
pub fn alias_sample(
    prob: &[f64],
    alias: &[u32],
    probabilities: &[f64],
    seed: f64,
    draws: f64,
    n: f64,
) -> napi::Result<Uint32Array> {
    const F: &str = "AliasSampler.sample";
    let n = to_usize(F, "n", n)?;
    let draws = to_usize(F, "draws", draws)? as u64;
    let seed = to_usize(F, "seed", seed)? as u64;
    let t = s::AliasTable {
        prob: prob.to_vec(),
        alias: alias.to_vec(),
        probabilities: probabilities.to_vec(),
    };
    guard(F, || {
        if t.prob.is_empty() || t.alias.len() != t.prob.len() {
            densevec_core::bail!(Shape, "{F}: the alias table is empty or inconsistent");
        }
        Ok(t.sample(seed, draws, n))
    })
    .map(Uint32Array::new)
}

/// log p(index) per index.
#[napi]
pub fn alias_log_prob(probabilities: &[f64], indices: &[u32]) -> napi::Result<Float32Array> {
    let t = s::AliasTable {
        prob: Vec::new(),
        alias: Vec::new(),
        probabilities: probabilities.to_vec(),
    };
    guard("AliasSampler.logProb", || t.log_prob(indices)).map(Float32Array::new)
}

/// counts^power.
#[napi]
pub fn unigram_weights(counts: &[f64], power: f64) -> napi::Result<Float64Array> {
    guard("unigramWeights", || s::unigram_weights(counts, power)).map(Float64Array::new)
}

/// `{ loss, gradX, gradPositives, gradNegatives }` of negativeSamplingLoss.
#[napi(object)]
pub struct NegSamplingResult {
    pub loss: f64,
    pub grad_x: Float32Array,
    pub grad_positives: Float32Array,
    pub grad_negatives: Float32Array,
}

/// Negative-sampling / NCE loss; `k` 0 means inferred; `logQ` used when `hasLogQ`.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn negative_sampling_loss(
    x: &[f32],
    rows: f64,
    positives: &[f32],
    negatives: &[f32],
    neg_rows: f64,
    cols: f64,
    k: f64,
    log_q: &[f32],
    has_log_q: bool,
) -> napi::Result<NegSamplingResult> {
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
        grad_x: Float32Array::new(r.grad_x),
        grad_positives: Float32Array::new(r.grad_positives),
        grad_negatives: Float32Array::new(r.grad_negatives),
    })
}

/// `{ angles, gaps }` (C × C, row-major) of marginGeometry.
#[napi(object)]
pub struct MarginGeometryResult {
    pub angles: Float32Array,
    pub gaps: Float32Array,
}

/// Margin geometry of prototypes; kind 0 normalized, 1 cosface, 2 arcface.
#[napi]
pub fn margin_geometry(
    w: &[f32],
    rows: f64,
    cols: f64,
    kind: u32,
    margin: f64,
) -> napi::Result<MarginGeometryResult> {
    const F: &str = "marginGeometry";
    let (c, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    let r = guard(F, || {
        let k = MarginKind::from_code(F, kind)?;
        mg::margin_geometry(w, c, d, k, margin)
    })?;
    Ok(MarginGeometryResult {
        angles: Float32Array::new(r.angles),
        gaps: Float32Array::new(r.gaps),
    })
}
