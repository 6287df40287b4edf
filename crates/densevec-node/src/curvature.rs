//! Bindings of the intrinsic-geometry additions: graph geodesics, hyperbolicity, triangle
//! curvature, map distortion and analogies.

use crate::common::{guard, to_usize, IntoJs, Job};
use densevec_core::curvature as cv;
use densevec_core::statistics::check_seed;
use napi::bindgen_prelude::*;
use napi_derive::napi;

fn metric(func: &str, code: u32) -> napi::Result<cv::GraphMetric> {
    guard(func, || cv::GraphMetric::from_code(func, code))
}

/// Geodesic distances on the symmetrized k-NN graph (sources × rows, row-major); an empty
/// `sources` means every row.
#[napi]
pub fn graph_geodesics(
    m: &[f32],
    rows: f64,
    cols: f64,
    k: f64,
    metric_code: u32,
    sources: &[u32],
    all_sources: bool,
) -> napi::Result<Float32Array> {
    const F: &str = "graphGeodesics";
    let (n, d, kk) = (
        to_usize(F, "rows", rows)?,
        to_usize(F, "cols", cols)?,
        to_usize(F, "k", k)?,
    );
    let mt = metric(F, metric_code)?;
    let src = if all_sources { None } else { Some(sources) };
    guard(F, || cv::graph_geodesics(m, n, d, kk, mt, src)).map(Float32Array::new)
}

/// Async twin of `graphGeodesics` (inputs are copied first).
#[napi(ts_return_type = "Promise<Float32Array>")]
#[allow(clippy::too_many_arguments)]
pub fn graph_geodesics_async(
    m: &[f32],
    rows: f64,
    cols: f64,
    k: f64,
    metric_code: u32,
    sources: &[u32],
    all_sources: bool,
) -> napi::Result<AsyncTask<Job<Vec<f32>>>> {
    const F: &str = "graphGeodesicsAsync";
    let (n, d, kk) = (
        to_usize(F, "rows", rows)?,
        to_usize(F, "cols", cols)?,
        to_usize(F, "k", k)?,
    );
    let mt = metric(F, metric_code)?;
    let (m, s) = (m.to_vec(), sources.to_vec());
    Ok(Job::new(F, move || {
        let src = if all_sources { None } else { Some(&s[..]) };
        cv::graph_geodesics(&m, n, d, kk, mt, src)
    }))
}

/// `{ delta, relativeDelta, diameter, skipped }`.
#[napi(object)]
pub struct HyperbolicityResult {
    pub delta: f64,
    pub relative_delta: f64,
    pub diameter: f64,
    pub skipped: f64,
}

impl IntoJs for cv::Hyperbolicity {
    type Js = HyperbolicityResult;
    fn into_js(self, _env: &Env) -> napi::Result<HyperbolicityResult> {
        Ok(HyperbolicityResult {
            delta: self.delta,
            relative_delta: self.relative_delta,
            diameter: self.diameter,
            skipped: self.skipped as f64,
        })
    }
}

/// Gromov four-point δ of the k-NN graph metric over sampled quadruples.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn hyperbolicity(
    env: Env,
    m: &[f32],
    rows: f64,
    cols: f64,
    k: f64,
    metric_code: u32,
    samples: f64,
    seed: f64,
) -> napi::Result<HyperbolicityResult> {
    const F: &str = "hyperbolicity";
    let (n, d, kk, s) = (
        to_usize(F, "rows", rows)?,
        to_usize(F, "cols", cols)?,
        to_usize(F, "k", k)?,
        to_usize(F, "samples", samples)?,
    );
    let mt = metric(F, metric_code)?;
    let sd = guard(F, || check_seed(F, "seed", seed))?;
    guard(F, || cv::hyperbolicity(m, n, d, kk, mt, s, sd))?.into_js(&env)
}

/// Async twin of `hyperbolicity` (inputs are copied first).
#[napi(ts_return_type = "Promise<HyperbolicityResult>")]
#[allow(clippy::too_many_arguments)]
pub fn hyperbolicity_async(
    m: &[f32],
    rows: f64,
    cols: f64,
    k: f64,
    metric_code: u32,
    samples: f64,
    seed: f64,
) -> napi::Result<AsyncTask<Job<cv::Hyperbolicity>>> {
    const F: &str = "hyperbolicityAsync";
    let (n, d, kk, s) = (
        to_usize(F, "rows", rows)?,
        to_usize(F, "cols", cols)?,
        to_usize(F, "k", k)?,
        to_usize(F, "samples", samples)?,
    );
    let mt = metric(F, metric_code)?;
    let sd = guard(F, || check_seed(F, "seed", seed))?;
    let m = m.to_vec();
    Ok(Job::new(F, move || {
        cv::hyperbolicity(&m, n, d, kk, mt, s, sd)
    }))
}

/// `{ ratios, medianRatio, positiveFraction, skipped }`.
#[napi(object)]
pub struct TriangleCurvatureResult {
    pub ratios: Float32Array,
    pub median_ratio: f64,
    pub positive_fraction: f64,
    pub skipped: f64,
}

impl IntoJs for cv::TriangleCurvature {
    type Js = TriangleCurvatureResult;
    fn into_js(self, _env: &Env) -> napi::Result<TriangleCurvatureResult> {
        Ok(TriangleCurvatureResult {
            ratios: Float32Array::new(self.ratios),
            median_ratio: self.median_ratio,
            positive_fraction: self.positive_fraction,
            skipped: self.skipped as f64,
        })
    }
}

/// Async twin of `triangleCurvature` (inputs are copied first).
#[napi(ts_return_type = "Promise<TriangleCurvatureResult>")]
#[allow(clippy::too_many_arguments)]
pub fn triangle_curvature_async(
    m: &[f32],
    rows: f64,
    cols: f64,
    k: f64,
    metric_code: u32,
    triangles: f64,
    seed: f64,
) -> napi::Result<AsyncTask<Job<cv::TriangleCurvature>>> {
    const F: &str = "triangleCurvatureAsync";
    let (n, d, kk, t) = (
        to_usize(F, "rows", rows)?,
        to_usize(F, "cols", cols)?,
        to_usize(F, "k", k)?,
        to_usize(F, "triangles", triangles)?,
    );
    let mt = metric(F, metric_code)?;
    let sd = guard(F, || check_seed(F, "seed", seed))?;
    let m = m.to_vec();
    Ok(Job::new(F, move || {
        cv::triangle_curvature(&m, n, d, kk, mt, t, sd)
    }))
}

/// Triangle-comparison curvature ratios of the k-NN graph metric over sampled triangles.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn triangle_curvature(
    env: Env,
    m: &[f32],
    rows: f64,
    cols: f64,
    k: f64,
    metric_code: u32,
    triangles: f64,
    seed: f64,
) -> napi::Result<TriangleCurvatureResult> {
    const F: &str = "triangleCurvature";
    let (n, d, kk, t) = (
        to_usize(F, "rows", rows)?,
        to_usize(F, "cols", cols)?,
        to_usize(F, "k", k)?,
        to_usize(F, "triangles", triangles)?,
    );
    let mt = metric(F, metric_code)?;
    let sd = guard(F, || check_seed(F, "seed", seed))?;
    guard(F, || cv::triangle_curvature(m, n, d, kk, mt, t, sd))?.into_js(&env)
}

/// `{ singularValues, conditionNumber, neighborOverlap, meanCosineChange }`.
#[napi(object)]
pub struct MapDistortionResult {
    pub singular_values: Float64Array,
    pub condition_number: f64,
    pub neighbor_overlap: f64,
    pub mean_cosine_change: f64,
}

/// Distortion of the rows of x by the linear map a.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn map_distortion(
    x: &[f32],
    rows: f64,
    cols: f64,
    a: &[f32],
    a_rows: f64,
    a_cols: f64,
    k: f64,
) -> napi::Result<MapDistortionResult> {
    const F: &str = "mapDistortion";
    let (n, d, ar, ac, kk) = (
        to_usize(F, "x.rows", rows)?,
        to_usize(F, "x.cols", cols)?,
        to_usize(F, "a.rows", a_rows)?,
        to_usize(F, "a.cols", a_cols)?,
        to_usize(F, "k", k)?,
    );
    let r = guard(F, || cv::map_distortion(x, n, d, a, ar, ac, kk))?;
    Ok(MapDistortionResult {
        singular_values: Float64Array::new(r.singular_values),
        condition_number: r.condition_number,
        neighbor_overlap: r.neighbor_overlap,
        mean_cosine_change: r.mean_cosine_change,
    })
}

/// `{ indices, scores }` of an analogy query.
#[napi(object)]
pub struct AnalogyResult {
    pub indices: Uint32Array,
    pub scores: Float32Array,
}

/// The k best answers to "a : b :: c : ?" (3CosAdd, or 3CosMul when `mul`).
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn analogy(
    corpus: &[f32],
    rows: f64,
    cols: f64,
    a: f64,
    b: f64,
    c: f64,
    k: f64,
    mul: bool,
) -> napi::Result<AnalogyResult> {
    const F: &str = "analogy";
    let (n, d, kk) = (
        to_usize(F, "rows", rows)?,
        to_usize(F, "cols", cols)?,
        to_usize(F, "k", k)?,
    );
    let abc = [
        to_usize(F, "a", a)?,
        to_usize(F, "b", b)?,
        to_usize(F, "c", c)?,
    ];
    let (i, s) = guard(F, || cv::analogy(corpus, n, d, abc, kk, mul))?;
    Ok(AnalogyResult {
        indices: Uint32Array::new(i),
        scores: Float32Array::new(s),
    })
}
