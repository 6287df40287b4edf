//! Bindings of chapter 5: symmetry and geometry.

use crate::args::{Mat, MetricName};
use crate::common::js_result;
use crate::common::{call, guard, typed, IntoJs};
use crate::run::{operation, Op};
use densevec_core::geometry as geo;
use densevec_core::view::dim;
use densevec_core::view::Operand;
use napi::bindgen_prelude::*;
use napi_derive::napi;

pub struct Labels(Vec<u32>);

impl IntoJs for Labels {
    type Js<'e> = Uint32ArraySlice<'e>;
    fn into_js<'e>(self, env: &'e Env, func: &str) -> napi::Result<Uint32ArraySlice<'e>> {
        typed(env, func, "the labels", &self.0)
    }
}

/// The arguments of `knnClassify`: majority label of the k nearest training rows per query.
#[napi(object, object_to_js = false)]
pub struct KnnClassifyArgs {
    pub train: Mat,
    pub labels: Uint32Array,
    pub queries: Mat,
    pub k: f64,
    pub metric: MetricName,
}

impl Op for KnnClassifyArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<Labels> {
        let ((tr, d), (qr, _)) = (
            self.train.dims(func, "train")?,
            self.queries.dims(func, "queries")?,
        );
        let (kk, m) = (dim(func, "k", self.k)?, self.metric.into());
        let (train, queries) = (
            Operand::new(&self.train.data, tr),
            Operand::new(&self.queries.data, qr),
        );
        geo::knn_classify(train, &self.labels, queries, d, kk, m).map(Labels)
    }
}

operation!(
    /// k-NN classification of the query rows, now or as a Promise (`how`).
    knn_classify = "knnClassify",
    KnnClassifyArgs { train: "train", labels: "labels", queries: "queries" } -> Labels,
    "Uint32Array | Promise<Uint32Array>"
);

/// The arguments of `randomOrthogonal`: the size d and the seed of the Gaussian stream.
#[napi(object, object_to_js = false)]
pub struct RandomOrthogonalArgs {
    pub d: f64,
    pub seed: f64,
}

/// d × d Haar orthogonal matrix (row-major) from the documented Gaussian stream.
#[napi]
pub fn random_orthogonal<'e>(
    env: &'e Env,
    args: RandomOrthogonalArgs,
) -> napi::Result<Float32ArraySlice<'e>> {
    call(env, "randomOrthogonal", |f| {
        let d = dim(f, "d", args.d)?;
        geo::random_orthogonal(d, dim(f, "seed", args.seed)? as u64)
    })
}

/// The arguments of `matmul`: a (m × k) and b (k × n).
#[napi(object, object_to_js = false)]
pub struct MatmulArgs {
    pub a: Mat,
    pub b: Mat,
}

impl Op for MatmulArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<Vec<f32>> {
        let ((m, kd), n) = (self.a.dims(func, "a")?, dim(func, "b.cols", self.b.cols)?);
        if m.checked_mul(kd) == Some(self.a.data.len())
            && kd.checked_mul(n) == Some(self.b.data.len())
        {
            crate::common::fits_typed(
                func,
                "the a.rows × b.cols product",
                "split the rows of a",
                &[m, n],
            )?;
        }
        geo::matmul(&self.a.data, m, kd, &self.b.data, n)
    }
}

operation!(
    /// a · b, row-major.
    matmul = "matmul",
    MatmulArgs { a: "a", b: "b" } -> Vec<f32>,
    "Float32Array | Promise<Float32Array>"
);

js_result!(
    /// `{ rotation, residual }` of orthogonal Procrustes.
    ProcrustesResult from geo::Procrustes {
        residual;
        rotation: Float32ArraySlice = "rotation";

    }
);

/// The arguments of `procrustes`: two matrices of the same shape.
#[napi(object, object_to_js = false)]
pub struct ProcrustesArgs {
    pub x: Mat,
    pub y: Mat,
}

impl Op for ProcrustesArgs {
    fn cpu(&self, func: &str) -> densevec_core::Result<geo::Procrustes> {
        let (x, y, n, d) = self.x.views(func, "x", &self.y)?;
        geo::procrustes(x, y, n, d)
    }
}

operation!(
    /// The orthogonal Procrustes rotation of x onto y, now or as a Promise (`how`).
    procrustes = "procrustes",
    ProcrustesArgs { x: "x", y: "y" } -> geo::Procrustes,
    "ProcrustesResult | Promise<ProcrustesResult>"
);

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

/// The arguments of `sphericalTriangle`: its three vertices.
#[napi(object, object_to_js = false)]
pub struct SphericalTriangleArgs {
    pub x: Float32Array,
    pub y: Float32Array,
    pub z: Float32Array,
}

/// Sides, angles, excess, area, chord area and curvature of a spherical triangle.
#[napi]
pub fn spherical_triangle(args: SphericalTriangleArgs) -> napi::Result<SphericalTriangleResult> {
    let (x, y, z) = (&args.x, &args.y, &args.z);
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
