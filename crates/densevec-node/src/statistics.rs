//! Bindings of chapter 2: statistics of high-dimensional embeddings.

use crate::args::Mat;
use crate::common::guard;
use crate::common::js_result;
use crate::run::{operation, Op};
use densevec_core::statistics as st;
use densevec_core::view::dim;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// The arguments of `randomUnitVectors`: n rows of d values from the stream of `seed`.
#[napi(object, object_to_js = false)]
pub struct RandomUnitArgs {
    pub n: f64,
    pub d: f64,
    pub seed: f64,
}

impl Op for RandomUnitArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<Vec<f32>> {
        let (n, d) = (dim(func, "n", self.n)?, dim(func, "d", self.d)?);
        st::random_unit_vectors(n, d, st::check_seed(func, "seed", self.seed)?)
    }
}

operation!(
    /// n × d row-major buffer of rows uniform on the unit sphere (documented PRNG).
    random_unit_vectors = "randomUnitVectors",
    RandomUnitArgs {  } -> Vec<f32>,
    "Float32Array | Promise<Float32Array>"
);

/// The tail of a p-value.
#[napi(string_enum)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// P(cos ≥ s).
    #[napi(value = "greater")]
    Greater,
    /// P(|cos| ≥ |s|).
    #[napi(value = "two-sided")]
    TwoSided,
}

/// The arguments of `cosinePValue`: the cosine `s`, the dimension `d` and the tail.
#[napi(object, object_to_js = false)]
pub struct CosinePValueArgs {
    pub s: f64,
    pub d: f64,
    pub tail: Tail,
}

/// Exact null p-value of the cosine `s` in dimension `d`.
#[napi]
pub fn cosine_p_value(args: CosinePValueArgs) -> napi::Result<f64> {
    const F: &str = "cosinePValue";
    guard(F, || {
        let d = dim(F, "d", args.d)?;
        st::cosine_p_value(args.s, d, args.tail == Tail::TwoSided)
    })
}

js_result!(
    /// `{ mean, variance, nullVariance, zScore, pairs }` of the pairwise cosines.
    SimilarityStats from st::SimilarityStats { mean, variance, null_variance, z_score, pairs }
);

/// The arguments of `similarityStats`: all pairs of rows, or `samplePairs` pairs drawn from
/// the stream of `sampleSeed` when both are given.
#[napi(object, object_to_js = false)]
pub struct SimilarityStatsArgs {
    pub m: Mat,
    pub sample_pairs: Option<f64>,
    pub sample_seed: Option<f64>,
}

impl Op for SimilarityStatsArgs {
    fn cpu(&self, f: &str) -> densevec_core::Result<st::SimilarityStats> {
        let (n, d) = self.m.dims(f, "m")?;
        let sample = match (self.sample_pairs, self.sample_seed) {
            (Some(p), Some(s)) => Some((
                dim(f, "sample.pairs", p)? as u64,
                st::check_seed(f, "sample.seed", s)?,
            )),
            _ => None,
        };
        st::similarity_stats(&self.m.data, n, d, sample)
    }
}

operation!(
    /// Statistics of the pairwise cosines, now or as a Promise (`how`).
    similarity_stats = "similarityStats",
    SimilarityStatsArgs { m: "data" } -> st::SimilarityStats,
    "SimilarityStats | Promise<SimilarityStats>"
);
