/**
 * Reference implementation of chapter 1 (similarity geometry). Written for clarity; accumulates
 * in float64. It is the oracle the native and CUDA backends are tested against.
 */
import { fail } from '../errors';
import { alloc } from './alloc';
import type { Matrix } from '../matrix';
import * as v from '../validate';
import { checkQuantizedShape, checkQuantizedType, checkQuantizedValues, dequantize, isQuantized, type Corpus } from './quantized';
import { bf16Matrix } from './precision';

/** Options of the batched similarity functions. */
export interface MetricOptions {
  /** 'dot', 'cosine' (default) or 'l2sq'. */
  metric?: v.Metric;
}

/** Options of {@link similarityMatrix}: the metric and the compute precision. */
export interface SimilarityOptions extends MetricOptions {
  /**
   * 'f32' (default) or 'bf16': the products use q and c rounded to bfloat16 (nearest even,
   * float32 subnormals as zero) and accumulate in float32; the result is the metric of the
   * rounded rows (norms included). About 2× the float32 GEMM speed on CPUs with AVX512-BF16;
   * relative error of a score about 2^-9·‖q‖‖c‖/|score| (README, "bf16 precision"). Calls with
   * 'bf16' run on the CPU.
   */
  precision?: v.Precision;
}

/**
 * `{ indices, scores }` of {@link topK}: q.rows × k, row-major, best first per query.
 * `topK`, `mergeTopK` and `topKStream` also set `corpusRows` (rows of the corpus searched, what
 * `mergeTopK` needs to place a shard without `offsets`) and `k` (entries per query).
 */
export interface TopKResult {
  indices: Uint32Array;
  scores: Float32Array;
  /** Rows of the corpus the result was computed over (set by topK, mergeTopK, topKStream). */
  corpusRows?: number;
  /** Entries per query (set by topK, mergeTopK, topKStream). */
  k?: number;
}

/** Options of {@link topK}: the metric and the eligibility filters. */
export interface TopKOptions extends SimilarityOptions {
  /** q.rows entries: `skip[i]` is a corpus row query i never returns (0xFFFFFFFF = none; self-search, dedup). */
  skip?: Uint32Array;
  /** c.rows entries: `mask[j] = 0` makes corpus row j ineligible for every query. */
  mask?: Uint8Array;
}

/** The `skip` value meaning "none". */
export const SKIP_NONE = 0xffffffff;

/** The eligibility filters of a topK call, read once from its options. */
export interface TopKSelect {
  skip?: Uint32Array;
  mask?: Uint8Array;
}

/** Reads and type-checks `skip` / `mask` (E_TYPE); call before the shape checks. */
export function selectTypes(fn: string, o: TopKOptions | undefined): TopKSelect {
  if (o === undefined || o === null || typeof o !== 'object') return {};
  const skip = o.skip;
  const mask = o.mask;
  if (skip !== undefined && !(skip instanceof Uint32Array)) fail('E_TYPE', `${fn}: skip must be a Uint32Array (one corpus row per query, 0xFFFFFFFF = none)`);
  if (mask !== undefined && !(mask instanceof Uint8Array)) fail('E_TYPE', `${fn}: mask must be a Uint8Array (one entry per corpus row, 0 = ineligible)`);
  return { skip, mask };
}

/** Checks the lengths of `skip` / `mask` (E_SHAPE); call with the other shape checks. */
export function selectShapes(fn: string, sel: TopKSelect, qRows: number, cRows: number): void {
  const { skip, mask } = sel;
  if (skip !== undefined && skip.length !== qRows) fail('E_SHAPE', `${fn}: skip has length ${skip.length} but q has ${qRows} rows`);
  if (mask !== undefined && mask.length !== cRows) fail('E_SHAPE', `${fn}: mask has length ${mask.length} but c has ${cRows} rows`);
}

/**
 * Checks the skip values and that every query keeps at least k eligible rows (E_ARG). Call
 * after {@link selectShapes} and the k check.
 */
export function checkSelect(fn: string, sel: TopKSelect, qRows: number, cRows: number, k: number): void {
  const { skip, mask } = sel;
  if (skip !== undefined) {
    for (let i = 0; i < skip.length; i++) {
      if (skip[i] !== SKIP_NONE && skip[i] >= cRows) fail('E_ARG', `${fn}: skip[${i}] = ${skip[i]} is not a row of c (rows ${cRows}) nor 0xFFFFFFFF (none)`);
    }
  }
  if (skip === undefined && mask === undefined) return;
  let eligible = cRows;
  if (mask !== undefined) {
    eligible = 0;
    for (let j = 0; j < mask.length; j++) if (mask[j] !== 0) eligible++;
  }
  for (let i = 0; i < qRows; i++) {
    let n = eligible;
    if (skip !== undefined && skip[i] !== SKIP_NONE && (mask === undefined || mask[skip[i]] !== 0)) n--;
    if (n < k) fail('E_ARG', `${fn}: query ${i} has ${n} eligible corpus row(s) after skip/mask, fewer than k = ${k}`);
  }
}

/**
 * The ranking key of a top-k score under metric code 0/1/2: larger ranks first. The score is
 * taken at the float32 precision it is returned in (so equal returned scores are ties, broken
 * by the lower index); the orientation makes l2sq smallest-first; a NaN score gives a NaN key,
 * which {@link ranksBefore} puts after every number (−∞ included). Shared by
 * {@link topK} and `mergeTopK`, so merged shard results order exactly like one search.
 */
export function rankKey(score: number, metric: number): number {
  const s = Math.fround(score);
  return Number.isNaN(s) ? NaN : metric === 2 ? -s : s;
}

/**
 * Whether (keyA, a) ranks strictly before (keyB, b): larger key, then lower index; a NaN key
 * (a NaN score) ranks after every number, −∞ included.
 */
export function ranksBefore(keyA: number, a: number, keyB: number, b: number): boolean {
  const an = Number.isNaN(keyA);
  const bn = Number.isNaN(keyB);
  if (an || bn) return an ? bn && a < b : true;
  return keyA > keyB || (keyA === keyB && a < b);
}

/** Checks two non-empty Float32Arrays of equal length (shared by every backend). */
export function checkPair(fn: string, a: unknown, b: unknown): asserts a is Float32Array {
  v.vecType(fn, 'a', a);
  v.vecType(fn, 'b', b);
  if (a.length !== (b as Float32Array).length) fail('E_SHAPE', `${fn}: a has length ${a.length} but b has length ${(b as Float32Array).length}`);
  if (a.length === 0) fail('E_SHAPE', `${fn}: a and b are empty`);
}

/** Float64 dot product of two equal-length ranges. */
export function dot64(a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, n: number): number {
  let s = 0;
  for (let k = 0; k < n; k++) s += a[ao + k] * b[bo + k];
  return s;
}

/** Float64 squared norm of a range. */
export function sumsq64(a: ArrayLike<number>, ao: number, n: number): number {
  let s = 0;
  for (let k = 0; k < n; k++) s += a[ao + k] * a[ao + k];
  return s;
}

function cos64(ab: number, aa: number, bb: number): number {
  const den = Math.sqrt(aa) * Math.sqrt(bb);
  return den === 0 ? 0 : ab / den;
}

/** Σ a_k b_k. */
export function dot(a: Float32Array, b: Float32Array): number {
  checkPair('dot', a, b);
  return dot64(a, 0, b, 0, a.length);
}

/** a·b / (‖a‖‖b‖); 0 when either norm is 0. */
export function cosine(a: Float32Array, b: Float32Array): number {
  checkPair('cosine', a, b);
  return cos64(dot64(a, 0, b, 0, a.length), sumsq64(a, 0, a.length), sumsq64(b, 0, b.length));
}

/** Σ (a_k − b_k)². */
export function l2sq(a: Float32Array, b: Float32Array): number {
  checkPair('l2sq', a, b);
  let s = 0;
  for (let k = 0; k < a.length; k++) {
    const d = a[k] - b[k];
    s += d * d;
  }
  return s;
}

/** ‖a‖₂. */
export function norm(a: Float32Array): number {
  v.vec('norm', 'a', a);
  return Math.sqrt(sumsq64(a, 0, a.length));
}

function normalizeRange(src: Float32Array, dst: Float32Array, off: number, n: number): void {
  let s = sumsq64(src, off, n);
  let pre = 1;
  if (!Number.isFinite(s) && !Number.isNaN(s)) {
    // Overflowed in float64 only for absurd inputs; rescale by the largest magnitude first.
    let m = 0;
    for (let k = 0; k < n; k++) m = Math.max(m, Math.abs(src[off + k]));
    pre = m > 0 && Number.isFinite(m) ? 1 / m : NaN;
    s = 0;
    for (let k = 0; k < n; k++) s += (src[off + k] * pre) ** 2;
  }
  const nrm = Math.sqrt(s);
  const inv = nrm === 0 ? 0 : pre / nrm;
  for (let k = 0; k < n; k++) dst[off + k] = nrm === 0 ? src[off + k] : src[off + k] * inv;
}

/** New unit vector in the direction of `a`; a zero vector stays zero. */
export function normalize(a: Float32Array): Float32Array {
  v.vec('normalize', 'a', a);
  const out = new Float32Array(a.length);
  normalizeRange(a, out, 0, a.length);
  return out;
}

/** Normalizes `x` in place: a vector, or every row of a Matrix. */
export function normalizeInPlace(x: Float32Array | Matrix): void {
  x = v.snap('normalizeInPlace', 'x', x);
  if (v.isF32(x)) {
    v.vec('normalizeInPlace', 'x', x);
    normalizeRange(x, x, 0, x.length);
    return;
  }
  v.mat('normalizeInPlace', 'x', x);
  for (let i = 0; i < x.rows; i++) normalizeRange(x.data, x.data, i * x.cols, x.cols);
}

/** New Matrix whose rows are the rows of `m` scaled to unit length (zero rows stay zero). */
export function normalizeRows(m: Matrix): Matrix {
  m = v.snap('normalizeRows', 'm', m);
  v.mat('normalizeRows', 'm', m);
  const out = new Float32Array(m.data.length);
  for (let i = 0; i < m.rows; i++) normalizeRange(m.data, out, i * m.cols, m.cols);
  return { data: out, rows: m.rows, cols: m.cols };
}

/**
 * Validates (q, c, [k,] metric) of the batched functions on snapshots (see validate.snap):
 * every type first (q, c, k, options, metric), then shapes, then values. Returns the metric code.
 */
function batch(fn: string, q: unknown, c: unknown, o: MetricOptions | undefined, withK: boolean, k: unknown, sel?: TopKSelect): number {
  v.matType(fn, 'q', q);
  const quantized = isQuantized(c);
  if (quantized) checkQuantizedType(fn, 'c', c);
  else v.matType(fn, 'c', c);
  if (withK) v.int(fn, 'k', k);
  const oo = v.opts(fn, o) as SimilarityOptions;
  v.metricType(fn, oo.metric);
  v.precisionType(fn, oo.precision);
  v.matShape(fn, 'q', q);
  if (quantized) checkQuantizedShape(fn, 'c', c);
  else v.matShape(fn, 'c', c as Matrix);
  v.sameCols(fn, 'q', q, 'c', c as Matrix);
  if (sel !== undefined) selectShapes(fn, sel, (q as Matrix).rows, (c as Matrix).rows);
  if (quantized) checkQuantizedValues(fn, 'c', c);
  const metric = v.metricCode(fn, oo.metric);
  v.precisionCode(fn, oo.precision);
  if (withK) checkK(fn, k, (c as Matrix).rows);
  if (sel !== undefined) checkSelect(fn, sel, (q as Matrix).rows, (c as Matrix).rows, k as number);
  return metric;
}

/** Validates (q, c, metric) of similarityMatrix; returns the metric code. */
export function checkBatch(fn: string, q: unknown, c: unknown, o: MetricOptions | undefined): number {
  return batch(fn, q, c, o, false, undefined);
}

/**
 * Validates (q, c, k, metric) of topK and, when given, the `skip` / `mask` filters already
 * read by {@link selectTypes} (their lengths with the shapes, their values after k); returns
 * the metric code.
 */
export function checkTopK(fn: string, q: unknown, c: unknown, k: unknown, o: MetricOptions | undefined, sel?: TopKSelect): number {
  return batch(fn, q, c, o, true, k, sel);
}

/** The option names topK reads. */
export const TOPK_KEYS: readonly string[] = ['metric', 'precision', 'skip', 'mask'];

/** The option names similarityMatrix reads. */
export const SIM_KEYS: readonly string[] = ['metric', 'precision'];

/** The precision code (0 f32, 1 bf16) of validated, snapshotted options. */
export function precisionOf(fn: string, o: SimilarityOptions | undefined): number {
  return v.precisionOf(fn, o);
}

/** Snapshots of (q, c, options) of a batched call: each field read once (validate.snap). */
export function snapBatch<Q, C, O>(fn: string, q: Q, c: C, o: O, keys: readonly string[] = SIM_KEYS): [Q, C, O] {
  return [v.snap(fn, 'q', q), v.snapCorpus(fn, 'c', c), v.snapOpts(fn, o, keys)];
}

/** Score of query row i against corpus row j in float64 for metric code 0/1/2. */
export function score64(q: Matrix, i: number, c: Matrix, j: number, metric: number, qn?: Float64Array, cn?: Float64Array): number {
  const d = q.cols;
  if (metric === 0) return dot64(q.data, i * d, c.data, j * d, d);
  if (metric === 1) {
    const ab = dot64(q.data, i * d, c.data, j * d, d);
    return cos64(ab, qn ? qn[i] : sumsq64(q.data, i * d, d), cn ? cn[j] : sumsq64(c.data, j * d, d));
  }
  let s = 0;
  for (let k = 0; k < d; k++) {
    const t = q.data[i * d + k] - c.data[j * d + k];
    s += t * t;
  }
  return s;
}

function rowSumsq(m: Matrix): Float64Array {
  const out = new Float64Array(m.rows);
  for (let i = 0; i < m.rows; i++) out[i] = sumsq64(m.data, i * m.cols, m.cols);
  return out;
}

/** q.rows × c.rows Matrix of similarities ('cosine' by default). */
export function similarityMatrix(q: Matrix, corpus: Corpus, options?: SimilarityOptions): Matrix {
  [q, corpus, options] = snapBatch('similarityMatrix', q, corpus, options);
  const metric = checkBatch('similarityMatrix', q, corpus, options);
  let c = dequantize(corpus);
  if (precisionOf('similarityMatrix', options) === 1) [q, c] = [bf16Matrix(q), bf16Matrix(c)];
  const qn = rowSumsq(q);
  const cn = rowSumsq(c);
  const out = alloc(Float32Array, q.rows * c.rows, 'similarityMatrix', 'the q.rows × c.rows similarity matrix', 'use topK for nearest neighbours, or split the batch');
  for (let i = 0; i < q.rows; i++) {
    for (let j = 0; j < c.rows; j++) out[i * c.rows + j] = score64(q, i, c, j, metric, qn, cn);
  }
  return { data: out, rows: q.rows, cols: c.rows };
}

/** Validates k of topK-like functions. */
export function checkK(fn: string, k: unknown, rows: number): asserts k is number {
  v.int(fn, 'k', k);
  if (k < 1 || k > rows) fail('E_ARG', `${fn}: k must be in [1, ${rows}] (rows of the corpus), got ${k}`);
}

/**
 * Exact top-k of every query: indices and scores, q.rows × k, best first (largest dot/cosine,
 * smallest l2sq), ties broken by the lower index; NaN scores rank last. `skip` / `mask`
 * ({@link TopKOptions}) exclude rows; fewer than k eligible rows for a query → E_ARG.
 */
export function topK(q: Matrix, corpus: Corpus, k: number, options?: TopKOptions): TopKResult {
  [q, corpus, options] = snapBatch('topK', q, corpus, options, TOPK_KEYS);
  const sel = selectTypes('topK', options);
  const metric = checkTopK('topK', q, corpus, k, options, sel);
  let c = dequantize(corpus);
  if (precisionOf('topK', options) === 1) [q, c] = [bf16Matrix(q), bf16Matrix(c)];
  const qn = rowSumsq(q);
  const cn = rowSumsq(c);
  const indices = alloc(Uint32Array, q.rows * k, 'topK', 'the q.rows × k indices', 'split the queries into batches');
  const scores = alloc(Float32Array, q.rows * k, 'topK', 'the q.rows × k scores', 'split the queries into batches');
  const s = new Float64Array(c.rows);
  const key = new Float64Array(c.rows);
  const order = new Uint32Array(c.rows);
  const { skip, mask } = sel;
  for (let i = 0; i < q.rows; i++) {
    let n = 0;
    for (let j = 0; j < c.rows; j++) {
      if ((mask !== undefined && mask[j] === 0) || (skip !== undefined && skip[i] === j)) continue;
      s[j] = score64(q, i, c, j, metric, qn, cn);
      key[j] = rankKey(s[j], metric);
      order[n++] = j;
    }
    order.subarray(0, n).sort((x, y) => (ranksBefore(key[x], x, key[y], y) ? -1 : ranksBefore(key[y], y, key[x], x) ? 1 : 0));
    for (let t = 0; t < k; t++) {
      indices[i * k + t] = order[t];
      scores[i * k + t] = s[order[t]];
    }
  }
  return { indices, scores, corpusRows: c.rows, k };
}
