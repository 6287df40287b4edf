//! Bindings of the intrinsic-geometry additions: graph geodesics, hyperbolicity, triangle
//! curvature, map distortion and analogies.

use crate::args::Mat;
use crate::common::js_result;
use crate::run::{operation, Op};
use densevec_core::curvature as cv;
use densevec_core::statistics::check_seed;
use densevec_core::topk::TopK;
use densevec_core::view::dim;
use densevec_core::Result;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// The metric of a k-NN graph's edge lengths.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy)]
pub enum GraphMetricName {
    Angular,
    Euclidean,
}

/// The converted shape, k and metric shared by every graph operation: (rows, cols, k, metric).
fn graph(
    func: &str,
    m: &Mat,
    k: f64,
    metric: GraphMetricName,
) -> Result<(usize, usize, usize, cv::GraphMetric)> {
    let (n, d) = m.dims(func, "m")?;
    let mt = match metric {
        GraphMetricName::Angular => cv::GraphMetric::Angular,
        GraphMetricName::Euclidean => cv::GraphMetric::Euclidean,
    };
    Ok((n, d, dim(func, "k", k)?, mt))
}

/// A statistic of the k-NN graph over random samples: (m, rows, cols, k, metric, count, seed).
type SampledFn<T> = fn(&[f32], usize, usize, usize, cv::GraphMetric, usize, u64) -> Result<T>;

/// Converts the graph arguments, the sample count (named `what`) and the seed, then runs `f`.
fn sampled<T>(
    func: &str,
    m: &Mat,
    (k, metric): (f64, GraphMetricName),
    (what, count): (&str, f64),
    seed: f64,
    f: SampledFn<T>,
) -> Result<T> {
    let (n, d, kk, mt) = graph(func, m, k, metric)?;
    let count = dim(func, what, count)?;
    f(
        &m.data,
        n,
        d,
        kk,
        mt,
        count,
        check_seed(func, "seed", seed)?,
    )
}

/// The arguments of `graphGeodesics`: `sources` absent means every row.
#[napi(object, object_to_js = false)]
pub struct GraphGeodesicsArgs {
    pub m: Mat,
    pub k: f64,
    pub metric: GraphMetricName,
    pub sources: Option<Uint32Array>,
}

impl Op for GraphGeodesicsArgs {
    fn cpu(&self, func: &str) -> Result<Vec<f32>> {
        let (n, d, kk, mt) = graph(func, &self.m, self.k, self.metric)?;
        cv::graph_geodesics(&self.m.data, n, d, kk, mt, self.sources.as_deref())
    }
}

operation!(
    /// Geodesic distances on the k-NN graph (sources × rows), now or as a Promise (`how`).
    graph_geodesics = "graphGeodesics",
    GraphGeodesicsArgs { m: "m", sources: "sources" } -> Vec<f32>,
    "Float32Array | Promise<Float32Array>"
);

js_result!(
    /// `{ delta, relativeDelta, diameter, skipped }`.
    HyperbolicityResult from cv::Hyperbolicity { delta, relative_delta, diameter, skipped }
);

/// The arguments of `hyperbolicity`: `samples` quadruples from the stream of `seed`.
#[napi(object, object_to_js = false)]
pub struct HyperbolicityArgs {
    pub m: Mat,
    pub k: f64,
    pub metric: GraphMetricName,
    pub samples: f64,
    pub seed: f64,
}

impl Op for HyperbolicityArgs {
    fn cpu(&self, func: &str) -> Result<cv::Hyperbolicity> {
        let count = ("samples", self.samples);
        sampled(
            func,
            &self.m,
            (self.k, self.metric),
            count,
            self.seed,
            cv::hyperbolicity,
        )
    }
}

operation!(
    /// Gromov's four-point δ of the k-NN graph metric, now or as a Promise (`how`).
    hyperbolicity = "hyperbolicity",
    HyperbolicityArgs { m: "m" } -> cv::Hyperbolicity,
    "HyperbolicityResult | Promise<HyperbolicityResult>"
);

js_result!(
    /// `{ ratios, medianRatio, positiveFraction, skipped }`.
    TriangleCurvatureResult from cv::TriangleCurvature {
        median_ratio, positive_fraction, skipped;
        ratios: Float32ArraySlice = "ratios";

    }
);

/// The arguments of `triangleCurvature`: `triangles` triangles from the stream of `seed`.
#[napi(object, object_to_js = false)]
pub struct TriangleCurvatureArgs {
    pub m: Mat,
    pub k: f64,
    pub metric: GraphMetricName,
    pub triangles: f64,
    pub seed: f64,
}

impl Op for TriangleCurvatureArgs {
    fn cpu(&self, func: &str) -> Result<cv::TriangleCurvature> {
        let count = ("triangles", self.triangles);
        let f = cv::triangle_curvature;
        sampled(func, &self.m, (self.k, self.metric), count, self.seed, f)
    }
}

operation!(
    /// Triangle-comparison curvature of the k-NN graph metric, now or as a Promise (`how`).
    triangle_curvature = "triangleCurvature",
    TriangleCurvatureArgs { m: "m" } -> cv::TriangleCurvature,
    "TriangleCurvatureResult | Promise<TriangleCurvatureResult>"
);

js_result!(
    /// `{ singularValues, conditionNumber, neighborOverlap, meanCosineChange }`.
    MapDistortionResult from cv::MapDistortion {
        condition_number, neighbor_overlap, mean_cosine_change;
        singular_values: Float64ArraySlice = "singularValues";

    }
);

/// The arguments of `mapDistortion`: the rows of `x` and the d × d map `a`.
#[napi(object, object_to_js = false)]
pub struct MapDistortionArgs {
    pub x: Mat,
    pub a: Mat,
    pub k: f64,
}

impl Op for MapDistortionArgs {
    fn cpu(&self, func: &str) -> Result<cv::MapDistortion> {
        let ((n, d), (ar, ac)) = (self.x.dims(func, "x")?, self.a.dims(func, "a")?);
        let kk = dim(func, "k", self.k)?;
        cv::map_distortion(&self.x.data, n, d, &self.a.data, ar, ac, kk)
    }
}

operation!(
    /// Distortion of the rows of x by the linear map a.
    map_distortion = "mapDistortion",
    MapDistortionArgs { x: "x", a: "a" } -> cv::MapDistortion,
    "MapDistortionResult | Promise<MapDistortionResult>"
);

/// The arguments of `analogy`: "a : b :: c : ?" among the rows of `corpus` (3CosAdd, or
/// 3CosMul when `mul`); the answers come as a top-k result (`{ indices, scores }`).
#[napi(object, object_to_js = false)]
pub struct AnalogyArgs {
    pub corpus: Mat,
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub k: f64,
    pub mul: bool,
}

impl Op for AnalogyArgs {
    fn cpu(&self, func: &str) -> Result<TopK> {
        let (n, d) = self.corpus.dims(func, "corpus")?;
        let kk = dim(func, "k", self.k)?;
        let abc = [
            dim(func, "a", self.a)?,
            dim(func, "b", self.b)?,
            dim(func, "c", self.c)?,
        ];
        let (indices, scores) = cv::analogy(&self.corpus.data, n, d, abc, kk, self.mul)?;
        Ok(TopK { indices, scores })
    }
}

operation!(
    /// The k best answers to "a : b :: c : ?".
    analogy = "analogy",
    AnalogyArgs { corpus: "corpus" } -> TopK,
    "TopKResult | Promise<TopKResult>"
);
