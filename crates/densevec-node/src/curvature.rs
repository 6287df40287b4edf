//! Bindings of the intrinsic-geometry additions: graph geodesics, hyperbolicity, triangle
//! curvature, map distortion and analogies.

use crate::common::{copy, guard, to_usize, typed, IntoJs, Job};
use densevec_core::curvature as cv;
use densevec_core::statistics::check_seed;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// The converted shape, k and metric shared by every graph binding: (rows, cols, k, metric).
fn graph_args(
    func: &str,
    rows: f64,
    cols: f64,
    k: f64,
    metric_code: u32,
) -> napi::Result<(usize, usize, usize, cv::GraphMetric)> {
    Ok((
        to_usize(func, "rows", rows)?,
        to_usize(func, "cols", cols)?,
        to_usize(func, "k", k)?,
        guard(func, || cv::GraphMetric::from_code(func, metric_code))?,
    ))
}

/// The sample count (named `what`) and seed of the sampled graph bindings.
fn sample_args(func: &str, what: &str, count: f64, seed: f64) -> napi::Result<(usize, u64)> {
    Ok((
        to_usize(func, what, count)?,
        guard(func, || check_seed(func, "seed", seed))?,
    ))
}

/// Geodesic distances on the symmetrized k-NN graph (sources × rows, row-major); an empty
/// `sources` means every row.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn graph_geodesics<'e>(
    env: &'e Env,
    m: &[f32],
    rows: f64,
    cols: f64,
    k: f64,
    metric_code: u32,
    sources: &[u32],
    all_sources: bool,
) -> napi::Result<Float32ArraySlice<'e>> {
    const F: &str = "graphGeodesics";
    let (n, d, kk, mt) = graph_args(F, rows, cols, k, metric_code)?;
    let src = if all_sources { None } else { Some(sources) };
    guard(F, || cv::graph_geodesics(m, n, d, kk, mt, src))
        .and_then(|v| typed(env, F, "the result", &v))
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
    let (n, d, kk, mt) = graph_args(F, rows, cols, k, metric_code)?;
    let (m, s) = (copy(F, "m", m)?, copy(F, "sources", sources)?);
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
    type Js<'e> = HyperbolicityResult;
    fn into_js(self, _env: &Env, _func: &str) -> napi::Result<HyperbolicityResult> {
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
    let (n, d, kk, mt) = graph_args(F, rows, cols, k, metric_code)?;
    let (s, sd) = sample_args(F, "samples", samples, seed)?;
    guard(F, || cv::hyperbolicity(m, n, d, kk, mt, s, sd))?.into_js(&env, F)
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
    let (n, d, kk, mt) = graph_args(F, rows, cols, k, metric_code)?;
    let (s, sd) = sample_args(F, "samples", samples, seed)?;
    let m = copy(F, "m", m)?;
    Ok(Job::new(F, move || {
        cv::hyperbolicity(&m, n, d, kk, mt, s, sd)
    }))
}

/// `{ ratios, medianRatio, positiveFraction, skipped }`.
#[napi(object, object_from_js = false)]
pub struct TriangleCurvatureResult<'e> {
    pub ratios: Float32ArraySlice<'e>,
    pub median_ratio: f64,
    pub positive_fraction: f64,
    pub skipped: f64,
}

impl IntoJs for cv::TriangleCurvature {
    type Js<'e> = TriangleCurvatureResult<'e>;
    fn into_js<'e>(self, env: &'e Env, func: &str) -> napi::Result<TriangleCurvatureResult<'e>> {
        Ok(TriangleCurvatureResult {
            ratios: typed(env, func, "ratios", &self.ratios)?,
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
    let (n, d, kk, mt) = graph_args(F, rows, cols, k, metric_code)?;
    let (t, sd) = sample_args(F, "triangles", triangles, seed)?;
    let m = copy(F, "m", m)?;
    Ok(Job::new(F, move || {
        cv::triangle_curvature(&m, n, d, kk, mt, t, sd)
    }))
}

/// Triangle-comparison curvature ratios of the k-NN graph metric over sampled triangles.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn triangle_curvature<'e>(
    env: &'e Env,
    m: &[f32],
    rows: f64,
    cols: f64,
    k: f64,
    metric_code: u32,
    triangles: f64,
    seed: f64,
) -> napi::Result<TriangleCurvatureResult<'e>> {
    const F: &str = "triangleCurvature";
    let (n, d, kk, mt) = graph_args(F, rows, cols, k, metric_code)?;
    let (t, sd) = sample_args(F, "triangles", triangles, seed)?;
    guard(F, || cv::triangle_curvature(m, n, d, kk, mt, t, sd))?.into_js(env, F)
}

/// `{ singularValues, conditionNumber, neighborOverlap, meanCosineChange }`.
#[napi(object, object_from_js = false)]
pub struct MapDistortionResult<'e> {
    pub singular_values: Float64ArraySlice<'e>,
    pub condition_number: f64,
    pub neighbor_overlap: f64,
    pub mean_cosine_change: f64,
}

/// Distortion of the rows of x by the linear map a.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn map_distortion<'e>(
    env: &'e Env,
    x: &[f32],
    rows: f64,
    cols: f64,
    a: &[f32],
    a_rows: f64,
    a_cols: f64,
    k: f64,
) -> napi::Result<MapDistortionResult<'e>> {
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
        singular_values: typed(env, F, "singularValues", &r.singular_values)?,
        condition_number: r.condition_number,
        neighbor_overlap: r.neighbor_overlap,
        mean_cosine_change: r.mean_cosine_change,
    })
}

/// `{ indices, scores }` of an analogy query.
#[napi(object, object_from_js = false)]
pub struct AnalogyResult<'e> {
    pub indices: Uint32ArraySlice<'e>,
    pub scores: Float32ArraySlice<'e>,
}

/// The k best answers to "a : b :: c : ?" (3CosAdd, or 3CosMul when `mul`).
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn analogy<'e>(
    env: &'e Env,
    corpus: &[f32],
    rows: f64,
    cols: f64,
    a: f64,
    b: f64,
    c: f64,
    k: f64,
    mul: bool,
) -> napi::Result<AnalogyResult<'e>> {
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
        indices: typed(env, F, "the indices", &i)?,
        scores: typed(env, F, "the scores", &s)?,
    })
}
