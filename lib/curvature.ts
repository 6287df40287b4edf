/**
 * Intrinsic geometry of a point cloud and of linear maps (native backend): geodesic distances
 * on the k-nearest-neighbour graph, Gromov's four-point hyperbolicity, triangle-comparison
 * curvature, map distortion and analogies. Same results as the reference (float64 with the same
 * operation order; the same SplitMix64 quadruples and triangles for a seed).
 */
import type { NativeBinding } from './backend';
import type { How } from './cuda';
import { snap, snapOpts } from './contract/validate';
import type { Matrix } from './matrix';
import * as contract from './contract/curvature';
import * as ref from './reference/curvature';
import { type NativeResult, op, runAsync, runSync } from './run';

/** Graph metric names of the native entry points, by metric code. */
const GRAPH_METRICS = ['angular', 'euclidean'] as const;

const GEODESICS = op({
  name: 'graphGeodesics',
  reference: ref.graphGeodesics,
  snap: (fn, m, options) => [snap(fn, 'm', m), snapOpts(fn, options, ['k', 'metric', 'sources'])],
  check: contract.checkGeodesics,
  call: (n, how, [k, code, s], m) => n.graphGeodesics({ m, k, metric: GRAPH_METRICS[code], sources: s ?? undefined }, how),
  // Rows from the result itself: the sources array may have changed since the call (async).
  out: (data: NativeResult<'graphGeodesics'>, _p, m) => ({ data, rows: m.rows === 0 ? 0 : data.length / m.rows, cols: m.rows }),
});

/** The graph arguments of a sampled native entry point. */
type Sampled = { m: Matrix; k: number; metric: (typeof GRAPH_METRICS)[number]; seed: number };

/**
 * hyperbolicity and triangleCurvature: `count` random samples (default `def`) of rows of the
 * k-NN graph (at least `minRows` rows), drawn from the stream of `seed`.
 */
function sampled<O extends contract.GraphOptions & { seed?: number }, N>(
  name: 'hyperbolicity' | 'triangleCurvature',
  reference: (m: Matrix, options: O) => N,
  count: 'samples' | 'triangles',
  def: number,
  minRows: number,
  call: (n: NativeBinding, g: Sampled, count: number, how: How) => N | Promise<N>,
) {
  return op<[Matrix, O], [number, number, number, number], N, N, typeof name>({
    name,
    reference,
    snap: (fn, m, options) => [snap(fn, 'm', m), snapOpts(fn, options, ['k', 'metric', count, 'seed'])],
    check: (fn, m, options) => contract.checkSampled(fn, m, options, count, def, minRows),
    call: (n, how, [k, code, c, seed], m) => call(n, { m, k, metric: GRAPH_METRICS[code], seed }, c, how),
  });
}

const HYPERBOLICITY = sampled('hyperbolicity', ref.hyperbolicity, 'samples', 1000, 4, (n, g, samples, how) => n.hyperbolicity({ ...g, samples }, how));
const TRIANGLES = sampled('triangleCurvature', ref.triangleCurvature, 'triangles', 200, 3, (n, g, triangles, how) =>
  n.triangleCurvature({ ...g, triangles }, how),
);

const MAP_DISTORTION = op({
  name: 'mapDistortion',
  reference: ref.mapDistortion,
  snap: (fn, x, a, options) => [snap(fn, 'x', x), snap(fn, 'a', a), snapOpts(fn, options, ['k'])],
  check: contract.checkMapDistortion,
  call: (n, how, k, x, a) => n.mapDistortion({ x, a, k }, how),
});

const ANALOGY = op({
  name: 'analogy',
  reference: ref.analogy,
  snap: (fn, corpus, abc, k, options) => [snap(fn, 'corpus', corpus), abc, k, snapOpts(fn, options, ['method'])],
  check: contract.checkAnalogy,
  call: (n, how, [a, b, c, mul], corpus, _abc, k) => n.analogy({ corpus, a, b, c, k, mul }, how),
});

/**
 * Geodesic distances along the data: shortest paths (Dijkstra) on the symmetrized
 * k-nearest-neighbour graph of the rows, edge lengths the angle between rows (`metric:
 * 'angular'`, default) or the Euclidean distance (`'euclidean'`). Returns a Matrix
 * sources × rows (`sources` default: every row), ∞ where a row is unreachable.
 */
export function graphGeodesics(m: Matrix, options: contract.GraphGeodesicsOptions): Matrix {
  return runSync(GEODESICS, [m, options]);
}

/** Async twin of {@link graphGeodesics} (inputs copied at call time). */
export function graphGeodesicsAsync(m: Matrix, options: contract.GraphGeodesicsOptions): Promise<Matrix> {
  return runAsync(GEODESICS, [m, options]);
}

/**
 * Gromov's four-point δ of the k-NN graph metric over `samples` (default 1000) random
 * quadruples of distinct rows drawn from the SplitMix64 stream of `seed` (default 0), with
 * `relativeDelta` = 2δ/diameter (Khrulkov et al. 2020): 0 for a tree metric, small for
 * tree-like (hyperbolic) data. See the reference for the exact definitions.
 */
export function hyperbolicity(m: Matrix, options: contract.HyperbolicityOptions): contract.Hyperbolicity {
  return runSync(HYPERBOLICITY, [m, options]);
}

/** Async twin of {@link hyperbolicity} (inputs copied at call time). */
export function hyperbolicityAsync(m: Matrix, options: contract.HyperbolicityOptions): Promise<contract.Hyperbolicity> {
  return runAsync(HYPERBOLICITY, [m, options]);
}

/**
 * Triangle-comparison curvature of the k-NN graph metric over `triangles` (default 200) random
 * triangles: per triangle the graph distance from a vertex to the midpoint of the opposite
 * side's shortest path over the same distance in the flat comparison triangle (> 1 positive
 * curvature, < 1 negative); `medianRatio` and `positiveFraction` summarize them.
 */
export function triangleCurvature(m: Matrix, options: contract.TriangleCurvatureOptions): contract.TriangleCurvature {
  return runSync(TRIANGLES, [m, options]);
}

/** Async twin of {@link triangleCurvature} (inputs copied at call time). */
export function triangleCurvatureAsync(m: Matrix, options: contract.TriangleCurvatureOptions): Promise<contract.TriangleCurvature> {
  return runAsync(TRIANGLES, [m, options]);
}

/**
 * How the d × d linear map `a` (rows x ↦ x·a) distorts the rows of `x`: singular values,
 * condition number, the kept fraction of cosine k-nearest neighbours and the mean absolute
 * change of pairwise cosines (orthogonal maps: 1, 1, 0).
 */
export function mapDistortion(x: Matrix, a: Matrix, options?: contract.MapDistortionOptions): contract.MapDistortion {
  return runSync(MAP_DISTORTION, [x, a, options]);
}

/**
 * "a is to b as c is to ?" among the rows of `corpus` (a, b, c row indices, never returned):
 * 3CosAdd (`method: 'add'`, default) or 3CosMul (`'mul'`, ε = 0.001, cosines shifted to
 * [0, 1]); the k best rows with their scores, ties by the lower index.
 */
export function analogy(corpus: Matrix, abc: [number, number, number], k: number, options?: contract.AnalogyOptions): contract.AnalogyResult {
  return runSync(ANALOGY, [corpus, abc, k, options]);
}
