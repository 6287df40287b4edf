/**
 * Intrinsic geometry of a point cloud and of linear maps (native backend): geodesic distances
 * on the k-nearest-neighbour graph, Gromov's four-point hyperbolicity, triangle-comparison
 * curvature, map distortion and analogies. Same results as the reference (float64 with the same
 * operation order; the same SplitMix64 quadruples and triangles for a seed).
 */
import { nat, rethrow } from './backend';
import { ASYNC, SYNC, now, soon } from './cuda';
import { refAsync } from './refasync';
import { snap, snapOpts } from './contract/validate';
import type { Matrix } from './matrix';
import * as contract from './contract/curvature';
import * as ref from './reference/curvature';
import type {
  AnalogyOptions,
  AnalogyResult,
  GraphGeodesicsOptions,
  Hyperbolicity,
  HyperbolicityOptions,
  MapDistortion,
  MapDistortionOptions,
  TriangleCurvature,
  TriangleCurvatureOptions,
} from './contract/curvature';
import { later } from './contract/async';

/** Graph metric names of the native entry points, by metric code. */
const GRAPH_METRICS = ['angular', 'euclidean'] as const;

/** The native arguments of graphGeodesics (`sources` absent: every row). */
function geoArgs(m: Matrix, k: number, code: number, s: Uint32Array | null) {
  return { m, k, metric: GRAPH_METRICS[code], sources: s ?? undefined };
}

/**
 * Geodesic distances along the data: shortest paths (Dijkstra) on the symmetrized
 * k-nearest-neighbour graph of the rows, edge lengths the angle between rows (`metric:
 * 'angular'`, default) or the Euclidean distance (`'euclidean'`). Returns a Matrix
 * sources × rows (`sources` default: every row), ∞ where a row is unreachable.
 */
export function graphGeodesics(m: Matrix, options: GraphGeodesicsOptions): Matrix {
  m = snap('graphGeodesics', 'm', m);
  options = snapOpts('graphGeodesics', options, ['k', 'metric', 'sources']);
  const n = nat();
  if (n === null) return ref.graphGeodesics(m, options);
  const [k, code, s] = contract.checkGeodesics('graphGeodesics', m, options);
  try {
    const data = now(n.graphGeodesics(geoArgs(m, k, code, s), SYNC));
    return { data, rows: s ? s.length : m.rows, cols: m.rows };
  } catch (e) {
    rethrow(e);
  }
}

/** Async twin of {@link graphGeodesics} (inputs copied at call time). */
export function graphGeodesicsAsync(m: Matrix, options: GraphGeodesicsOptions): Promise<Matrix> {
  return later(() => {
    m = snap('graphGeodesicsAsync', 'm', m);
    options = snapOpts('graphGeodesicsAsync', options, ['k', 'metric', 'sources']);
    const [k, code, s] = contract.checkGeodesics('graphGeodesicsAsync', m, options);
    const n = nat();
    if (n === null) return refAsync<ReturnType<typeof ref.graphGeodesics>>('graphGeodesics', [m, options]);
    const rows = s ? s.length : m.rows;
    const cols = m.rows;
    return soon(n.graphGeodesics(geoArgs(m, k, code, s), ASYNC)).then((data) => ({ data, rows, cols }), rethrow);
  });
}

/**
 * Gromov's four-point δ of the k-NN graph metric over `samples` (default 1000) random
 * quadruples of distinct rows drawn from the SplitMix64 stream of `seed` (default 0), with
 * `relativeDelta` = 2δ/diameter (Khrulkov et al. 2020): 0 for a tree metric, small for
 * tree-like (hyperbolic) data. See the reference for the exact definitions.
 */
export function hyperbolicity(m: Matrix, options: HyperbolicityOptions): Hyperbolicity {
  m = snap('hyperbolicity', 'm', m);
  options = snapOpts('hyperbolicity', options, ['k', 'metric', 'samples', 'seed']);
  const n = nat();
  if (n === null) return ref.hyperbolicity(m, options);
  const [k, code, samples, seed] = contract.checkSampled('hyperbolicity', m, options, 'samples', 1000, 4);
  try {
    return now(n.hyperbolicity({ m, k, metric: GRAPH_METRICS[code], samples, seed }, SYNC));
  } catch (e) {
    rethrow(e);
  }
}

/** Async twin of {@link hyperbolicity} (inputs copied at call time). */
export function hyperbolicityAsync(m: Matrix, options: HyperbolicityOptions): Promise<Hyperbolicity> {
  return later(() => {
    m = snap('hyperbolicityAsync', 'm', m);
    options = snapOpts('hyperbolicityAsync', options, ['k', 'metric', 'samples', 'seed']);
    const [k, code, samples, seed] = contract.checkSampled('hyperbolicityAsync', m, options, 'samples', 1000, 4);
    const n = nat();
    if (n === null) return refAsync<ReturnType<typeof ref.hyperbolicity>>('hyperbolicity', [m, options]);
    return soon(n.hyperbolicity({ m, k, metric: GRAPH_METRICS[code], samples, seed }, ASYNC)).then((r) => r, rethrow);
  });
}

/**
 * Triangle-comparison curvature of the k-NN graph metric over `triangles` (default 200) random
 * triangles: per triangle the graph distance from a vertex to the midpoint of the opposite
 * side's shortest path over the same distance in the flat comparison triangle (> 1 positive
 * curvature, < 1 negative); `medianRatio` and `positiveFraction` summarize them.
 */
export function triangleCurvature(m: Matrix, options: TriangleCurvatureOptions): TriangleCurvature {
  m = snap('triangleCurvature', 'm', m);
  options = snapOpts('triangleCurvature', options, ['k', 'metric', 'triangles', 'seed']);
  const n = nat();
  if (n === null) return ref.triangleCurvature(m, options);
  const [k, code, triangles, seed] = contract.checkSampled('triangleCurvature', m, options, 'triangles', 200, 3);
  try {
    return now(n.triangleCurvature({ m, k, metric: GRAPH_METRICS[code], triangles, seed }, SYNC));
  } catch (e) {
    rethrow(e);
  }
}

/** Async twin of {@link triangleCurvature} (inputs copied at call time). */
export function triangleCurvatureAsync(m: Matrix, options: TriangleCurvatureOptions): Promise<TriangleCurvature> {
  return later(() => {
    m = snap('triangleCurvatureAsync', 'm', m);
    options = snapOpts('triangleCurvatureAsync', options, ['k', 'metric', 'triangles', 'seed']);
    const [k, code, triangles, seed] = contract.checkSampled('triangleCurvatureAsync', m, options, 'triangles', 200, 3);
    const n = nat();
    if (n === null) return refAsync<ReturnType<typeof ref.triangleCurvature>>('triangleCurvature', [m, options]);
    return soon(n.triangleCurvature({ m, k, metric: GRAPH_METRICS[code], triangles, seed }, ASYNC)).then((r) => r, rethrow);
  });
}

/**
 * How the d × d linear map `a` (rows x ↦ x·a) distorts the rows of `x`: singular values,
 * condition number, the kept fraction of cosine k-nearest neighbours and the mean absolute
 * change of pairwise cosines (orthogonal maps: 1, 1, 0).
 */
export function mapDistortion(x: Matrix, a: Matrix, options?: MapDistortionOptions): MapDistortion {
  x = snap('mapDistortion', 'x', x);
  a = snap('mapDistortion', 'a', a);
  options = snapOpts('mapDistortion', options, ['k']);
  const n = nat();
  if (n === null) return ref.mapDistortion(x, a, options);
  const k = contract.checkMapDistortion('mapDistortion', x, a, options);
  try {
    return now(n.mapDistortion({ x, a, k }, SYNC));
  } catch (e) {
    rethrow(e);
  }
}

/**
 * "a is to b as c is to ?" among the rows of `corpus` (a, b, c row indices, never returned):
 * 3CosAdd (`method: 'add'`, default) or 3CosMul (`'mul'`, ε = 0.001, cosines shifted to
 * [0, 1]); the k best rows with their scores, ties by the lower index.
 */
export function analogy(corpus: Matrix, abc: [number, number, number], k: number, options?: AnalogyOptions): AnalogyResult {
  corpus = snap('analogy', 'corpus', corpus);
  options = snapOpts('analogy', options, ['method']);
  const n = nat();
  if (n === null) return ref.analogy(corpus, abc, k, options);
  const [a, b, c, mul] = contract.checkAnalogy('analogy', corpus, abc, k, options);
  try {
    return now(n.analogy({ corpus, a, b, c, k, mul }, SYNC));
  } catch (e) {
    rethrow(e);
  }
}
