//! Bindings of chapter 2: statistics of high-dimensional embeddings.

use crate::common::{copy, guard, to_usize, typed, IntoJs, Job};
use densevec_core::statistics as st;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// n × d row-major buffer of rows uniform on the unit sphere (documented PRNG).
#[napi]
pub fn random_unit_vectors<'e>(
    env: &'e Env,
    n: f64,
    d: f64,
    seed: f64,
) -> napi::Result<Float32ArraySlice<'e>> {
    const F: &str = "randomUnitVectors";
    let (n, d) = (to_usize(F, "n", n)?, to_usize(F, "d", d)?);
    guard(F, || {
        let seed = st::check_seed(F, "seed", seed)?;
        st::random_unit_vectors(n, d, seed)
    })
    .and_then(|v| typed(env, F, "the result", &v))
}

/// Exact null p-value of the cosine `s` in dimension `d`.
#[napi]
pub fn cosine_p_value(s: f64, d: f64, two_sided: bool) -> napi::Result<f64> {
    const F: &str = "cosinePValue";
    let d = to_usize(F, "d", d)?;
    guard(F, || st::cosine_p_value(s, d, two_sided))
}

/// `{ mean, variance, nullVariance, zScore, pairs }` of the pairwise cosines.
#[napi(object)]
pub struct SimilarityStats {
    pub mean: f64,
    pub variance: f64,
    pub null_variance: f64,
    pub z_score: f64,
    pub pairs: f64,
}

impl IntoJs for st::SimilarityStats {
    type Js<'e> = SimilarityStats;
    fn into_js(self, _env: &Env, _func: &str) -> napi::Result<SimilarityStats> {
        Ok(SimilarityStats {
            mean: self.mean,
            variance: self.variance,
            null_variance: self.null_variance,
            z_score: self.z_score,
            pairs: self.pairs,
        })
    }
}

fn sample_arg(f: &str, pairs: Option<f64>, seed: Option<f64>) -> napi::Result<Option<(u64, u64)>> {
    match (pairs, seed) {
        (Some(p), Some(s)) => {
            let p = to_usize(f, "sample.pairs", p)? as u64;
            let s = guard(f, || st::check_seed(f, "sample.seed", s))?;
            Ok(Some((p, s)))
        }
        _ => Ok(None),
    }
}

/// Pairwise cosine statistics of the rows (all pairs i < j, or a seeded sample of pairs).
#[napi]
pub fn similarity_stats(
    env: Env,
    data: &[f32],
    rows: f64,
    cols: f64,
    sample_pairs: Option<f64>,
    sample_seed: Option<f64>,
) -> napi::Result<SimilarityStats> {
    const F: &str = "similarityStats";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    let sample = sample_arg(F, sample_pairs, sample_seed)?;
    guard(F, || st::similarity_stats(data, n, d, sample))?.into_js(&env, F)
}

/// Async twin of `similarityStats` (the input is copied first).
#[napi(ts_return_type = "Promise<SimilarityStats>")]
pub fn similarity_stats_async(
    data: &[f32],
    rows: f64,
    cols: f64,
    sample_pairs: Option<f64>,
    sample_seed: Option<f64>,
) -> napi::Result<AsyncTask<Job<st::SimilarityStats>>> {
    const F: &str = "similarityStatsAsync";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    let sample = sample_arg(F, sample_pairs, sample_seed)?;
    let data = copy(F, "data", data)?;
    Ok(Job::new(F, move || {
        st::similarity_stats(&data, n, d, sample)
    }))
}
