/**
 * Chapter 1 (similarity) contract: option and result types, the checks of the pair, batch and
 * top-k arguments (types first, then shapes, then values) and the ranking order top-k and
 * mergeTopK share.
 */
import { fail } from '../errors';
import type { Matrix } from '../matrix';
import { checkQuantizedShape, checkQuantizedType, checkQuantizedValues, isQuantized } from './quantized';
import * as v from './validate';

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
  v.METRIC.type(fn, oo.metric);
  v.PRECISION.type(fn, oo.precision);
  v.matShape(fn, 'q', q);
  if (quantized) checkQuantizedShape(fn, 'c', c);
  else v.matShape(fn, 'c', c as Matrix);
  v.sameCols(fn, 'q', q, 'c', c as Matrix);
  if (sel !== undefined) selectShapes(fn, sel, (q as Matrix).rows, (c as Matrix).rows);
  if (quantized) checkQuantizedValues(fn, 'c', c);
  const metric = v.METRIC.code(fn, oo.metric);
  v.PRECISION.code(fn, oo.precision);
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

/** Validates k of topK-like functions. */
export function checkK(fn: string, k: unknown, rows: number): asserts k is number {
  v.int(fn, 'k', k);
  if (k < 1 || k > rows) fail('E_ARG', `${fn}: k must be in [1, ${rows}] (rows of the corpus), got ${k}`);
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
