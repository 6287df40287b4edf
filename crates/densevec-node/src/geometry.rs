//! Bindings of chapter 5: symmetry and geometry.

use crate::common::{guard, to_usize, IntoJs, Job};
use densevec_core::geometry as geo;
use densevec_core::similarity::Metric;
use napi::bindgen_prelude::*;
use napi_derive::napi;

pub struct Labels(Vec<u32>);

impl IntoJs for Labels {
    type Js = Uint32Array;
    fn into_js(self, _env: &Env) -> napi::Result<Uint32Array> {
        Ok(Uint32Array::new(self.0))
    }
}

/// Predicted labels by majority vote among the k nearest training rows; metric 0 dot, 1 cosine,
/// 2 l2sq.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn knn_classify(
    train: &[f32],
    train_rows: f64,
    labels: &[u32],
    queries: &[f32],
    query_rows: f64,
    cols: f64,
    k: f64,
    metric: u32,
) -> napi::Result<Uint32Array> {
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
    .map(Uint32Array::new)
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
    let (train, labels, queries) = (train.to_vec(), labels.to_vec(), queries.to_vec());
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
pub fn random_orthogonal(d: f64, seed: f64) -> napi::Result<Float32Array> {
    const F: &str = "randomOrthogonal";
    let d = to_usize(F, "d", d)?;
    let seed = to_usize(F, "seed", seed)? as u64;
    guard(F, || geo::random_orthogonal(d, seed)).map(Float32Array::new)
}

/// a (m × kd) · b (kd × n), row-major.
#[napi]
pub fn matmul(a: &[f32], m: f64, kd: f64, b: &[f32], n: f64) -> napi::Result<Float32Array> {
    const F: &str = "matmul";
    let (m, kd, n) = (
        to_usize(F, "a.rows", m)?,
        to_usize(F, "a.cols", kd)?,
        to_usize(F, "b.cols", n)?,
    );
    guard(F, || geo::matmul(a, m, kd, b, n)).map(Float32Array::new)
}

/// `{ rotation, residual }` of orthogonal Procrustes.
#[napi(object)]
pub struct ProcrustesResult {
    pub rotation: Float32Array,
    pub residual: f64,
}

impl IntoJs for geo::Procrustes {
    type Js = ProcrustesResult;
    fn into_js(self, _env: &Env) -> napi::Result<ProcrustesResult> {
        Ok(ProcrustesResult {
            rotation: Float32Array::new(self.rotation),
            residual: self.residual,
        })
    }
}

/// Orthogonal Procrustes of two n × d matrices.
#[napi]
pub fn procrustes(
    env: Env,
    x: &[f32],
    y: &[f32],
    rows: f64,
    cols: f64,
) -> napi::Result<ProcrustesResult> {
    const F: &str = "procrustes";
    let (n, d) = (to_usize(F, "rows", rows)?, to_usize(F, "cols", cols)?);
    guard(F, || geo::procrustes(x, y, n, d))?.into_js(&env)
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
    let (x, y) = (x.to_vec(), y.to_vec());
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
