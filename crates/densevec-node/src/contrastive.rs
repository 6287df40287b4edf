//! Bindings of chapter 3: contrastive learning.

use crate::common::{copy, guard, to_usize, typed, IntoJs, Job};
use densevec_core::contrastive::{self as c, InfoNceOpts};
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

/// `{ loss, gradQ, gradKeys, gradTemperature, stats }` of infoNCE (gradients row-major,
/// shapes of q and keys).
#[napi(object, object_from_js = false)]
pub struct InfoNceResult<'e> {
    pub loss: f64,
    pub grad_q: Float32ArraySlice<'e>,
    pub grad_keys: Float32ArraySlice<'e>,
    pub grad_temperature: f64,
    pub stats: ContrastiveStats,
}

impl IntoJs for c::InfoNce {
    type Js<'e> = InfoNceResult<'e>;
    fn into_js<'e>(self, env: &'e Env, func: &str) -> napi::Result<InfoNceResult<'e>> {
        Ok(InfoNceResult {
            loss: self.loss,
            grad_q: typed(env, func, "gradQ", &self.grad_q)?,
            grad_keys: typed(env, func, "gradKeys", &self.grad_keys)?,
            grad_temperature: self.grad_temperature,
            stats: stats(self.stats),
        })
    }
}

/// `{ loss, gradA, gradB, gradTemperature, stats }` of ntXent.
#[napi(object, object_from_js = false)]
pub struct NtXentResult<'e> {
    pub loss: f64,
    pub grad_a: Float32ArraySlice<'e>,
    pub grad_b: Float32ArraySlice<'e>,
    pub grad_temperature: f64,
    pub stats: ContrastiveStats,
}

impl IntoJs for c::NtXent {
    type Js<'e> = NtXentResult<'e>;
    fn into_js<'e>(self, env: &'e Env, func: &str) -> napi::Result<NtXentResult<'e>> {
        Ok(NtXentResult {
            loss: self.loss,
            grad_a: typed(env, func, "gradA", &self.grad_a)?,
            grad_b: typed(env, func, "gradB", &self.grad_b)?,
            grad_temperature: self.grad_temperature,
            stats: stats(self.stats),
        })
    }
}

fn ids(key_ids: &[u32]) -> Option<&[u32]> {
    if key_ids.is_empty() {
        None
    } else {
        Some(key_ids)
    }
}

/// `{ muP, muQ, M }` of mismatchScore.
#[napi(object)]
pub struct MismatchResult {
    pub mu_p: f64,
    pub mu_q: f64,
    #[napi(js_name = "M")]
    pub m: f64,
}

pub(crate) fn nce_opts<'a>(
    temperature: f64,
    positives: &'a [u32],
    log_q: &'a [f32],
    has_log_q: bool,
    normalize: bool,
) -> InfoNceOpts<'a> {
    InfoNceOpts {
        temperature,
        positives: if positives.is_empty() {
            None
        } else {
            Some(positives)
        },
        log_q: if has_log_q { Some(log_q) } else { None },
        normalize,
    }
}

/// InfoNCE; an empty `positives` means query i ↔ key i; `logQ` is used when `hasLogQ`; an
/// empty `keyIds` means no removal of accidental hits.
#[napi(js_name = "infoNCE")]
#[allow(clippy::too_many_arguments)]
pub fn info_nce<'e>(
    env: &'e Env,
    q: &[f32],
    q_rows: f64,
    keys: &[f32],
    k_rows: f64,
    cols: f64,
    temperature: f64,
    positives: &[u32],
    log_q: &[f32],
    has_log_q: bool,
    normalize: bool,
    key_ids: &[u32],
    scratch_bytes: f64,
) -> napi::Result<InfoNceResult<'e>> {
    const F: &str = "infoNCE";
    let (b, n, d) = (
        to_usize(F, "q.rows", q_rows)?,
        to_usize(F, "keys.rows", k_rows)?,
        to_usize(F, "cols", cols)?,
    );
    let scratch = to_usize(F, "scratchBytes", scratch_bytes)?;
    let o = nce_opts(temperature, positives, log_q, has_log_q, normalize);
    guard(F, || {
        c::info_nce_with(q, b, keys, n, d, &o, ids(key_ids), scratch)
    })?
    .into_js(env, F)
}

/// Async twin of `infoNCE` (inputs are copied first).
#[napi(js_name = "infoNCEAsync", ts_return_type = "Promise<InfoNceResult>")]
#[allow(clippy::too_many_arguments)]
pub fn info_nce_async(
    q: &[f32],
    q_rows: f64,
    keys: &[f32],
    k_rows: f64,
    cols: f64,
    temperature: f64,
    positives: &[u32],
    log_q: &[f32],
    has_log_q: bool,
    normalize: bool,
    key_ids: &[u32],
    scratch_bytes: f64,
) -> napi::Result<AsyncTask<Job<c::InfoNce>>> {
    const F: &str = "infoNCEAsync";
    let (b, n, d) = (
        to_usize(F, "q.rows", q_rows)?,
        to_usize(F, "keys.rows", k_rows)?,
        to_usize(F, "cols", cols)?,
    );
    let scratch = to_usize(F, "scratchBytes", scratch_bytes)?;
    let (q, keys, positives, log_q, key_ids) = (
        copy(F, "q", q)?,
        copy(F, "keys", keys)?,
        copy(F, "positives", positives)?,
        copy(F, "log_q", log_q)?,
        copy(F, "keyIds", key_ids)?,
    );
    Ok(Job::new(F, move || {
        let o = nce_opts(temperature, &positives, &log_q, has_log_q, normalize);
        c::info_nce_with(&q, b, &keys, n, d, &o, ids(&key_ids), scratch)
    }))
}

/// SimCLR NT-Xent over two views of `rows × cols`.
#[napi]
pub fn nt_xent<'e>(
    env: &'e Env,
    a: &[f32],
    b: &[f32],
    rows: f64,
    cols: f64,
    temperature: f64,
    scratch_bytes: f64,
) -> napi::Result<NtXentResult<'e>> {
    const F: &str = "ntXent";
    let (r, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    let scratch = to_usize(F, "scratchBytes", scratch_bytes)?;
    guard(F, || c::nt_xent_with(a, b, r, d, temperature, scratch))?.into_js(env, F)
}

/// Async twin of `ntXent` (inputs are copied first).
#[napi(ts_return_type = "Promise<NtXentResult>")]
pub fn nt_xent_async(
    a: &[f32],
    b: &[f32],
    rows: f64,
    cols: f64,
    temperature: f64,
    scratch_bytes: f64,
) -> napi::Result<AsyncTask<Job<c::NtXent>>> {
    const F: &str = "ntXentAsync";
    let (r, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    let scratch = to_usize(F, "scratchBytes", scratch_bytes)?;
    let (a, b) = (copy(F, "a", a)?, copy(F, "b", b)?);
    Ok(Job::new(F, move || {
        c::nt_xent_with(&a, &b, r, d, temperature, scratch)
    }))
}

/// Mean matching and non-matching cosines of two views (`withinView`: muQ also over the
/// within-view pairs).
#[napi]
pub fn mismatch_score(
    a: &[f32],
    b: &[f32],
    rows: f64,
    cols: f64,
    within_view: bool,
) -> napi::Result<MismatchResult> {
    const F: &str = "mismatchScore";
    let (r, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    let m = guard(F, || c::mismatch_score_opts(a, b, r, d, within_view))?;
    Ok(MismatchResult {
        mu_p: m.mu_p,
        mu_q: m.mu_q,
        m: m.m,
    })
}

/// softmax_j(x·y_j/τ) over the rows of ys.
#[napi]
pub fn softmax_probabilities<'e>(
    env: &'e Env,
    x: &[f32],
    ys: &[f32],
    rows: f64,
    cols: f64,
    temperature: f64,
) -> napi::Result<Float32ArraySlice<'e>> {
    const F: &str = "softmaxProbabilities";
    let (r, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    guard(F, || c::softmax_probabilities(x, ys, r, d, temperature))
        .and_then(|v| typed(env, F, "the result", &v))
}
