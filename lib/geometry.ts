/**
 * Chapter 5 — symmetry and geometry: k-NN classification (invariant under orthogonal maps of
 * the embedding space), Haar random orthogonal matrices, matrix product, orthogonal Procrustes
 * alignment and spherical triangles on the unit hypersphere.
 */
import { nat, rethrow } from './backend';
import { METRIC_NAMES } from './cuda';
import { snap } from './contract/validate';
import type { Matrix } from './matrix';
import * as contract from './contract/geometry';
import type { SphericalTriangle } from './contract/geometry';
import * as ref from './reference/geometry';
import type { MetricOptions } from './contract/similarity';
import { type NativeResult, op, runAsync, runSync } from './run';

const KNN = op({
  name: 'knnClassify',
  reference: ref.knnClassify,
  snap: (fn, train, labels, queries, k, options) => {
    [train, queries, options] = contract.snapKnn(fn, train, queries, options);
    return [train, labels, queries, k, options];
  },
  check: contract.checkKnn,
  call: (n, how, metric, train, labels, queries, k) => n.knnClassify({ train, labels, queries, k, metric: METRIC_NAMES[metric] }, how),
});

const MATMUL = op({
  name: 'matmul',
  reference: ref.matmul,
  snap: (fn, a, b) => [snap(fn, 'a', a), snap(fn, 'b', b)],
  check: contract.checkMatmul,
  call: (n, how, _, a, b) => n.matmul({ a, b }, how),
  out: (data: NativeResult<'matmul'>, _, a, b) => ({ data, rows: a.rows, cols: b.cols }),
});

const PROCRUSTES = op({
  name: 'procrustes',
  reference: ref.procrustes,
  snap: (fn, x, y) => [snap(fn, 'x', x), snap(fn, 'y', y)],
  check: contract.checkProcrustesShapes,
  call: (n, how, _, x, y) => n.procrustes({ x, y }, how),
  out: (r: NativeResult<'procrustes'>, _, x): contract.ProcrustesResult => ({
    rotation: { data: r.rotation, rows: x.cols, cols: x.cols },
    residual: r.residual,
  }),
});

/**
 * Predicted label of every query row (Uint32Array of queries.rows): majority vote among its k
 * nearest training rows under `metric` ('cosine' by default, 'dot', 'l2sq'), found on the fused
 * exact top-k path (ties between neighbours by the lower index). When several labels tie on
 * votes, the label whose closest member among the k is nearest wins.
 */
export function knnClassify(train: Matrix, labels: Uint32Array, queries: Matrix, k: number, options?: MetricOptions): Uint32Array {
  return runSync(KNN, [train, labels, queries, k, options]);
}

/** Async twin of {@link knnClassify}: runs off the event loop (arguments read and copied at call time). */
export function knnClassifyAsync(train: Matrix, labels: Uint32Array, queries: Matrix, k: number, options?: MetricOptions): Promise<Uint32Array> {
  return runAsync(KNN, [train, labels, queries, k, options]);
}

/**
 * A d × d orthogonal Matrix drawn from the Haar measure: Q of the QR decomposition (sign fix
 * Q·diag(sign Rᵢᵢ)) of a standard normal matrix filled row by row from the documented
 * SplitMix64 → uniform → Box–Muller stream ({@link GaussianStream}) seeded with `seed` (an
 * integer in [0, 2^53)). The same seed gives the same matrix on every backend (within 1e-5).
 */
export function randomOrthogonal(d: number, seed: number): Matrix {
  const n = nat();
  if (n === null) return ref.randomOrthogonal(d, seed);
  contract.checkRandomOrthogonal('randomOrthogonal', d, seed);
  try {
    return { data: n.randomOrthogonal({ d, seed }), rows: d, cols: d };
  } catch (e) {
    rethrow(e);
  }
}

/** Matrix product a·b (a.rows × b.cols); a.cols must equal b.rows (E_SHAPE otherwise). */
export function matmul(a: Matrix, b: Matrix): Matrix {
  return runSync(MATMUL, [a, b]);
}

/**
 * Orthogonal Procrustes alignment of two n × d matrices of matching rows (e.g. the same words
 * embedded in two languages): `rotation` is the d × d orthogonal Q (reflections allowed)
 * minimizing ‖x·Q − y‖_F, Q = U·Vᵀ from the SVD of xᵀy (float64), and `residual` is
 * ‖x·Q − y‖_F. NaN/∞ → E_NON_FINITE.
 */
export function procrustes(x: Matrix, y: Matrix): contract.ProcrustesResult {
  return runSync(PROCRUSTES, [x, y]);
}

/** Async twin of {@link procrustes} (arguments read and copied at call time). */
export function procrustesAsync(x: Matrix, y: Matrix): Promise<contract.ProcrustesResult> {
  return runAsync(PROCRUSTES, [x, y]);
}

/**
 * The spherical triangle with vertices x, y, z (any non-zero vectors of one length d ≥ 2,
 * normalized inside): geodesic `sides` [a, b, c] (a opposite x), interior `angles` [A, B, C]
 * (A at x), spherical `excess` A + B + C − π (= `area` on the unit sphere), the flat
 * `chordArea` of the chord triangle and `curvature` = excess / chordArea (→ 1 for small
 * triangles). Numerically careful (atan2 forms, Van Oosterom–Strackee excess), so tiny
 * triangles keep their relative precision. Two equal or antipodal vertices, or three on one
 * great circle → E_ARG.
 */
export function sphericalTriangle(x: Float32Array, y: Float32Array, z: Float32Array): SphericalTriangle {
  const n = nat();
  if (n === null) return ref.sphericalTriangle(x, y, z);
  contract.checkTriangle('sphericalTriangle', x, y, z);
  try {
    const t = n.sphericalTriangle({ x, y, z });
    return {
      sides: [t.sides[0], t.sides[1], t.sides[2]],
      angles: [t.angles[0], t.angles[1], t.angles[2]],
      excess: t.excess,
      area: t.area,
      chordArea: t.chordArea,
      curvature: t.curvature,
    };
  } catch (e) {
    rethrow(e);
  }
}
export * from './curvature';
