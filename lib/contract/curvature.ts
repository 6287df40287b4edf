/**
 * Curvature contract: option and result types and the checks of the graph functions,
 * mapDistortion and analogy.
 */
import { fail } from '../errors';
import type { Matrix } from '../matrix';
import { checkSeed } from './statistics';
import * as v from './validate';

/** Edge lengths of the neighbour graph: angle between rows (default) or Euclidean distance. */
export type GraphMetric = 'angular' | 'euclidean';

/** Options shared by the graph functions. */
export interface GraphOptions {
  /** Neighbours per row, 1 ≤ k ≤ rows − 1 (required). */
  k: number;
  /** Edge length: `'angular'` (default; rows are normalized, zero rows → E_ARG) or `'euclidean'`. */
  metric?: GraphMetric;
}

/** Options of {@link graphGeodesics}. */
export interface GraphGeodesicsOptions extends GraphOptions {
  /** Rows to measure from (default: every row). */
  sources?: Uint32Array;
}

/** Options of {@link hyperbolicity}. */
export interface HyperbolicityOptions extends GraphOptions {
  /** Random quadruples of distinct rows, in [1, 2^20] (default 1000). */
  samples?: number;
  /** Seed of the SplitMix64 stream, an integer in [0, 2^53) (default 0). */
  seed?: number;
}

/** Result of {@link hyperbolicity}. */
export interface Hyperbolicity {
  /** Gromov's four-point δ: the largest over the sampled quadruples. 0 for a tree metric. */
  delta: number;
  /** 2δ / diameter, in [0, 1] (0 when the diameter is 0). */
  relativeDelta: number;
  /** Largest geodesic distance from any row that served as a shortest-path source. */
  diameter: number;
  /** Quadruples skipped because a pair lies in different components of the graph. */
  skipped: number;
}

/** Options of {@link triangleCurvature}. */
export interface TriangleCurvatureOptions extends GraphOptions {
  /** Random triangles of distinct rows, in [1, 2^20] (default 200). */
  triangles?: number;
  /** Seed of the SplitMix64 stream, an integer in [0, 2^53) (default 0). */
  seed?: number;
}

/** Result of {@link triangleCurvature}. */
export interface TriangleCurvature {
  /** Per kept triangle: graph distance vertex → midpoint over the flat comparison distance. */
  ratios: Float32Array;
  /** Median of the ratios (> 1: positively curved, < 1: negatively curved). */
  medianRatio: number;
  /** Fraction of the (float32) `ratios` above 1: a flat triangle's ratio of 1 + 2⁻⁵² is not counted. */
  positiveFraction: number;
  /**
   * Triangles skipped: disconnected, or degenerate (zero side yz, the vertex at that side's
   * midpoint, or a comparison distance below 1e-6 of the perimeter).
   */
  skipped: number;
}

/** Options of {@link mapDistortion}. */
export interface MapDistortionOptions {
  /** Cosine neighbours compared per row, 1 ≤ k ≤ rows − 1 (default min(10, rows − 1)). */
  k?: number;
}

/** Result of {@link mapDistortion}. */
export interface MapDistortion {
  /** Singular values of the map, largest first. */
  singularValues: Float64Array;
  /** σ_max / σ_min (∞ for a singular map); 1 for an orthogonal map (or a multiple of one). */
  conditionNumber: number;
  /** Mean over rows of |N_k(x_i) ∩ N_k((xa)_i)| / k, cosine neighbours; 1 when all are kept. */
  neighborOverlap: number;
  /** Mean over pairs i < j of |cos((xa)_i, (xa)_j) − cos(x_i, x_j)|; 0 for an orthogonal map. */
  meanCosineChange: number;
}

/** Options of {@link analogy}. */
export interface AnalogyOptions {
  /** `'add'` (3CosAdd, default) or `'mul'` (3CosMul). */
  method?: 'add' | 'mul';
}

/** Result of {@link analogy}: k answers, best first. */
export interface AnalogyResult {
  /** Corpus rows, never a, b or c. */
  indices: Uint32Array;
  /** Their scores (cosine for 'add', the 3CosMul ratio for 'mul'). */
  scores: Float32Array;
}

// ---------------------------------------------------------------------------------------------
// Validation

const GRAPH_METRICS: ReadonlyMap<string, number> = new Map([
  ['angular', 0],
  ['euclidean', 1],
]);

/** Largest number of sampled quadruples or triangles. */
export const MAX_SAMPLES = 2 ** 20;

/** Validates the shared graph arguments; returns [k, metric code]. */
export function checkGraph(fn: string, m: unknown, options: GraphOptions | undefined, minRows: number): [number, number] {
  v.matType(fn, 'm', m);
  const o = v.opts(fn, options);
  const k = o.k;
  v.int(fn, 'k', k);
  const metric = o.metric ?? 'angular';
  if (typeof metric !== 'string') fail('E_TYPE', `${fn}: metric must be a string, got ${typeof metric}`);
  v.matShape(fn, 'm', m, minRows);
  const code = v.lookup(GRAPH_METRICS, metric);
  if (code === undefined) fail('E_ARG', `${fn}: unknown metric '${metric}' (expected 'angular' or 'euclidean')`);
  if (k < 1 || k >= m.rows) fail('E_ARG', `${fn}: k must be in [1, ${m.rows - 1}], got ${k}`);
  return [k, code];
}

/** Validates graphGeodesics; returns [k, metric code, sources or null]. */
export function checkGeodesics(fn: string, m: unknown, options: GraphGeodesicsOptions | undefined): [number, number, Uint32Array | null] {
  const o = v.opts(fn, options);
  if (o.sources !== undefined) v.u32(fn, 'sources', o.sources);
  const [k, code] = checkGraph(fn, m, options, 2);
  const mm = m as Matrix;
  const s = o.sources ?? null;
  if (s) {
    if (s.length === 0) fail('E_SHAPE', `${fn}: sources is empty`);
    for (let i = 0; i < s.length; i++) if (s[i] >= mm.rows) fail('E_ARG', `${fn}: source ${s[i]} is out of range for ${mm.rows} rows`);
  }
  if ((s ? s.length : mm.rows) * mm.rows > 2 ** 31) fail('E_ARG', `${fn}: the result of ${s ? s.length : mm.rows} x ${mm.rows} is too large`);
  zeroRows(fn, mm, code);
  v.finite(fn, 'm', mm.data);
  return [k, code, s];
}

/**
 * E_ARG for a zero-norm row under the angular metric (code 0), checked before the values'
 * finiteness (E_ARG comes before E_NON_FINITE); a row holding NaN or ±∞ is not a zero row.
 */
function zeroRows(fn: string, m: Matrix, code: number): void {
  if (code !== 0) return;
  const d = m.cols;
  for (let i = 0; i < m.rows; i++) {
    let s = 0;
    for (let t = 0; t < d; t++) s += m.data[i * d + t] * m.data[i * d + t];
    if (s === 0) fail('E_ARG', `${fn}: m has a zero-norm row ${i} (the angular metric needs directions)`);
  }
}

/** Validates hyperbolicity / triangleCurvature; returns [k, metric code, count, seed]. */
export function checkSampled(
  fn: string,
  m: unknown,
  options: (GraphOptions & { samples?: number; triangles?: number; seed?: number }) | undefined,
  countName: 'samples' | 'triangles',
  dflt: number,
  minRows: number,
): [number, number, number, number] {
  const o = v.opts(fn, options);
  const count = o[countName] ?? dflt;
  v.int(fn, countName, count);
  const seed = o.seed ?? 0;
  v.int(fn, 'seed', seed);
  const [k, code] = checkGraph(fn, m, options, minRows);
  if (count < 1 || count > MAX_SAMPLES) fail('E_ARG', `${fn}: ${countName} must be in [1, 2^20], got ${count}`);
  checkSeed(fn, 'seed', seed);
  zeroRows(fn, m as Matrix, code);
  v.finite(fn, 'm', (m as Matrix).data);
  return [k, code, count, seed];
}

// ---------------------------------------------------------------------------------------------
// The neighbour graph and shortest paths

/** A symmetric weighted graph in CSR form (neighbours of each vertex in ascending order). */
export interface Graph {
  n: number;
  start: Int32Array;
  adj: Uint32Array;
  w: Float64Array;
}

/** Validates mapDistortion; returns k. */
export function checkMapDistortion(fn: string, x: unknown, a: unknown, options: MapDistortionOptions | undefined): number {
  v.matType(fn, 'x', x);
  v.matType(fn, 'a', a);
  const o = v.opts(fn, options);
  if (o.k !== undefined) v.int(fn, 'k', o.k);
  v.matShape(fn, 'x', x, 2);
  v.matShape(fn, 'a', a);
  if (a.rows !== x.cols || a.cols !== x.cols) fail('E_SHAPE', `${fn}: a must be ${x.cols} x ${x.cols} (x has ${x.cols} columns), got ${a.rows} x ${a.cols}`);
  const k = o.k ?? Math.min(10, x.rows - 1);
  if (k < 1 || k >= x.rows) fail('E_ARG', `${fn}: k must be in [1, ${x.rows - 1}], got ${k}`);
  v.finite(fn, 'x', x.data);
  v.finite(fn, 'a', a.data);
  return k;
}

/** Validates analogy; returns [a, b, c, mul]. */
export function checkAnalogy(fn: string, corpus: unknown, abc: unknown, k: unknown, options: AnalogyOptions | undefined): [number, number, number, boolean] {
  v.matType(fn, 'corpus', corpus);
  if (!Array.isArray(abc)) fail('E_TYPE', `${fn}: [a, b, c] must be an array of three row indices, got ${abc === null ? 'null' : typeof abc}`);
  abc.forEach((x, i) => {
    v.int(fn, ['a', 'b', 'c'][i] ?? `index ${i}`, x);
  });
  v.int(fn, 'k', k);
  const o = v.opts(fn, options);
  const method = o.method ?? 'add';
  if (typeof method !== 'string') fail('E_TYPE', `${fn}: method must be a string, got ${typeof method}`);
  v.matShape(fn, 'corpus', corpus);
  if (abc.length !== 3) fail('E_SHAPE', `${fn}: [a, b, c] must have 3 entries, got ${abc.length}`);
  if (method !== 'add' && method !== 'mul') fail('E_ARG', `${fn}: unknown method '${method}' (expected 'add' or 'mul')`);
  for (const x of abc as number[]) if (x < 0 || x >= corpus.rows) fail('E_ARG', `${fn}: index ${x} is out of range for ${corpus.rows} rows`);
  const eligible = corpus.rows - new Set(abc as number[]).size;
  if (k < 1 || k > eligible) fail('E_ARG', `${fn}: k must be in [1, ${eligible}] (rows other than a, b, c), got ${k}`);
  v.finite(fn, 'corpus', corpus.data);
  return [abc[0] as number, abc[1] as number, abc[2] as number, method === 'mul'];
}
