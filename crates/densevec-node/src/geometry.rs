//! Bindings of chapter 5: symmetry and geometry.

use crate::common::{copy, guard, to_usize, typed, IntoJs, Job};
use densevec_core::geometry as geo;
use densevec_core::similarity::Metric;
use napi::bindgen_prelude::*;
use napi_derive::napi;

pub struct Labels(Vec<u32>);

impl IntoJs for Labels {
    type Js<'e> = Uint32ArraySlice<'e>;
    fn into_js<'e>(self, env: &'e Env, func: &str) -> napi::Result<Uint32ArraySlice<'e>> {
        typed(env, func, "the labels", &self.0)
    }
}

/// Predicted labels by majority vote among the k nearest training rows; metric 0 dot, 1 cosine,
/// 2 l2sq.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn knn_classify<'e>(
    env: &'e Env,
    train: &[f32],
    train_rows: f64,
    labels: &[u32],
    queries: &[f32],
    query_rows: f64,
    cols: f64,
    k: f64,
    metric: u32,
) -> napi::Result<Uint32ArraySlice<'e>> {
    const F: &str = "knnClassify";
    let (tr, qr, d, kk) = (
        to_usize(F, "train.rows", train_rows)?,
        to_usize(F, "queries.rows", query_rows)?,
        to_usize(F, "cols", cols)?,
        to_usize(F, "k", k)?,
    );
    guard(F, || {
        geo::knn_classify(
            train,
            tr,
            labels,
            queries,
            qr,
            d,
            kk,
            Metric::from_code(F, metric)?,
        )
    })
    .and_then(|v| typed(env, F, "the result", &v))
}

/// Async twin of `knnClassify` (inputs are copied first).
#[napi(ts_return_type = "Promise<Uint32Array>")]
#[allow(clippy::too_many_arguments)]
pub fn knn_classify_async(
    train: &[f32],
    train_rows: f64,
    labels: &[u32],
    queries: &[f32],
    query_rows: f64,
    cols: f64,
    k: f64,
    metric: u32,
) -> napi::Result<AsyncTask<Job<Labels>>> {
    const F: &str = "knnClassifyAsync";
    let (tr, qr, d, kk) = (
        to_usize(F, "train.rows", train_rows)?,
        to_usize(F, "queries.rows", query_rows)?,
        to_usize(F, "cols", cols)?,
        to_usize(F, "k", k)?,
    );
    let (train, labels, queries) = (
        copy(F, "train", train)?,
        copy(F, "labels", labels)?,
        copy(F, "queries", queries)?,
    );
    Ok(Job::new(F, move || {
        geo::knn_classify(
            &train,
            tr,
            &labels,
            &queries,
            qr,
            d,
            kk,
            Metric::from_code(F, metric)?,
        )
        .map(Labels)
    }))
}

/// d × d Haar orthogonal matrix (row-major) from the documented Gaussian stream.
#[napi]
pub fn random_orthogonal<'e>(
    env: &'e Env,
    d: f64,
    seed: f64,
) -> napi::Result<Float32ArraySlice<'e>> {
    const F: &str = "randomOrthogonal";
    let d = to_usize(F, "d", d)?;
    let seed = to_usize(F, "seed", seed)? as u64;
    guard(F, || geo::random_orthogonal(d, seed)).and_then(|v| typed(env, F, "the result", &v))
}

/// a (m × kd) · b (kd × n), row-major.
#[napi]
pub fn matmul<'e>(
    env: &'e Env,
    a: &[f32],
    m: f64,
    kd: f64,
    b: &[f32],
    n: f64,
) -> napi::Result<Float32ArraySlice<'e>> {
    const F: &str = "matmul";
    let (m, kd, n) = (
        to_usize(F, "a.rows", m)?,
        to_usize(F, "a.cols", kd)?,
        to_usize(F, "b.cols", n)?,
    );
    guard(F, || geo::matmul(a, m, kd, b, n)).and_then(|v| typed(env, F, "the result", &v))
}

/// `{ rotation, residual }` of orthogonal Procrustes.
#[napi(object, object_from_js = false)]
pub struct ProcrustesResult<'e> {
    pub rotation: Float32ArraySlice<'e>,
    pub residual: f64,
}

impl IntoJs for geo::Procrustes {
    type Js<'e> = ProcrustesResult<'e>;
    fn into_js<'e>(self, env: &'e Env, func: &str) -> napi::Result<ProcrustesResult<'e>> {
        Ok(ProcrustesResult {
            rotation: typed(env, func, "rotation", &self.rotation)?,
            residual: self.residual,
        })
    }
}

/// Orthogonal Procrustes of two n × d matrices.
#[napi]
pub fn procrustes<'e>(
    env: &'e Env,
    x: &[f32],
    y: &[f32],
    rows: f64,
    cols: f64,
) -> napi::Result<ProcrustesResult<'e>> {
    const F: &str = "procrustes";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    guard(F, || geo::procrustes(x, y, n, d))?.into_js(env, F)
}

/// Async twin of `procrustes` (inputs are copied first).
#[napi(ts_return_type = "Promise<ProcrustesResult>")]
pub fn procrustes_async(
    x: &[f32],
    y: &[f32],
    rows: f64,
    cols: f64,
) -> napi::Result<AsyncTask<Job<geo::Procrustes>>> {
    const F: &str = "procrustesAsync";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    let (x, y) = (copy(F, "x", x)?, copy(F, "y", y)?);
    Ok(Job::new(F, move || geo::procrustes(&x, &y, n, d)))
}

/// Spherical triangle of three vectors (normalized inside).
#[napi(object)]
pub struct SphericalTriangleResult {
    pub sides: Vec<f64>,
    pub angles: Vec<f64>,
    pub excess: f64,
    pub area: f64,
    pub chord_area: f64,
    pub curvature: f64,
}

/// Sides, angles, excess, area, chord area and curvature of a spherical triangle.
#[napi]
pub fn spherical_triangle(
    x: &[f32],
    y: &[f32],
    z: &[f32],
) -> napi::Result<SphericalTriangleResult> {
    let t = guard("sphericalTriangle", || geo::spherical_triangle(x, y, z))?;
    Ok(SphericalTriangleResult {
        sides: t.sides.to_vec(),
        angles: t.angles.to_vec(),
        excess: t.excess,
        area: t.area,
        chord_area: t.chord_area,
        curvature: t.curvature,
    })
}
