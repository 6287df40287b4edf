/**
 * Chapter 1 — similarity geometry: dot, cosine, L2, normalization onto the hypersphere,
 * batched query × corpus similarity and exact top-k.
 *
 * Similarity functions do not scan for NaN: a NaN in an input propagates to the outputs that
 * depend on it, as in IEEE arithmetic (in top-k, NaN scores rank last).
 */
import { nat, rethrow } from './backend';
import { refAsync } from './refasync';
import type { Matrix } from './matrix';
import * as contract from './contract/similarity';
import * as ref from './reference/similarity';
import type { SimilarityOptions, TopKOptions, TopKResult } from './contract/similarity';
import * as v from './contract/validate';
import { ASYNC, METRIC_NAMES, PRECISION_NAMES, corpusArg, now, onDevice, soon } from './cuda';
import type { Corpus, QuantizedMatrix } from './contract/quantized';
import { later } from './contract/async';

export type { SimilarityOptions } from './contract/similarity';

/** The native arguments of similarityMatrix / topK. */
function batchArgs(q: Matrix, c: Corpus, metric: number, precision = 0) {
  return { q: { data: q.data, rows: q.rows, cols: q.cols }, c: corpusArg(c), metric: METRIC_NAMES[metric], precision: PRECISION_NAMES[precision] };
}
export type { Precision } from './contract/validate';

function pair(fn: string, a: unknown, b: unknown): asserts a is Float32Array {
  // Fast accept for the common case (genuine Float32Arrays, brand-checked so that a Proxy or a
  // look-alike never reaches the addon); the reference's checks produce the error otherwise.
  if (v.isF32(a) && v.isF32(b) && a.length === b.length && a.length !== 0) return;
  contract.checkPair(fn, a, b);
}

/** Dot product Σ a_k b_k of two equal-length vectors. */
export function dot(a: Float32Array, b: Float32Array): number {
  const n = nat();
  if (n === null) return ref.dot(a, b);
  pair('dot', a, b);
  try {
    return n.dotFast(a, b);
  } catch (e) {
    rethrow(e);
  }
}

/** Cosine similarity a·b / (‖a‖‖b‖); 0 when either norm is 0. */
export function cosine(a: Float32Array, b: Float32Array): number {
  const n = nat();
  if (n === null) return ref.cosine(a, b);
  pair('cosine', a, b);
  try {
    return n.cosineFast(a, b);
  } catch (e) {
    rethrow(e);
  }
}

/** Squared Euclidean distance Σ (a_k − b_k)². */
export function l2sq(a: Float32Array, b: Float32Array): number {
  const n = nat();
  if (n === null) return ref.l2sq(a, b);
  pair('l2sq', a, b);
  try {
    return n.l2sqFast(a, b);
  } catch (e) {
    rethrow(e);
  }
}

/** Euclidean norm ‖a‖₂. */
export function norm(a: Float32Array): number {
  const n = nat();
  if (n === null) return ref.norm(a);
  v.vec('norm', 'a', a);
  try {
    return n.norm(a);
  } catch (e) {
    rethrow(e);
  }
}

/** New unit vector in the direction of `a`; a zero vector stays zero. */
export function normalize(a: Float32Array): Float32Array {
  const n = nat();
  if (n === null) return ref.normalize(a);
  v.vec('normalize', 'a', a);
  try {
    return n.normalize(a);
  } catch (e) {
    rethrow(e);
  }
}

/** Normalizes in place: a vector, or every row of a Matrix (zero rows stay zero). */
export function normalizeInPlace(x: Float32Array | Matrix): void {
  x = v.snap('normalizeInPlace', 'x', x);
  const n = nat();
  if (n === null) {
    ref.normalizeInPlace(x);
    return;
  }
  if (v.isF32(x)) {
    v.vec('normalizeInPlace', 'x', x);
    n.normalizeInPlace({ data: x, rows: 1, cols: x.length });
    return;
  }
  v.mat('normalizeInPlace', 'x', x);
  try {
    n.normalizeInPlace(x);
  } catch (e) {
    rethrow(e);
  }
}

/** New Matrix with the rows of `m` scaled to unit length. */
export function normalizeRows(m: Matrix): Matrix {
  m = v.snap('normalizeRows', 'm', m);
  const n = nat();
  if (n === null) return ref.normalizeRows(m);
  v.mat('normalizeRows', 'm', m);
  try {
    return { data: n.normalizeRows(m), rows: m.rows, cols: m.cols };
  } catch (e) {
    rethrow(e);
  }
}

/**
 * q.rows × c.rows Matrix of similarities between the rows of `q` and the rows of `c`.
 * `metric`: 'cosine' (default), 'dot' or 'l2sq'. `c` may be a compact corpus
 * ({@link QuantizedMatrix}: f16, bf16 or i8 with a scale; see {@link quantize}): the result is
 * that of its decoded float32 values, which are decoded piece by piece, never held whole.
 * `precision: 'bf16'` rounds q and c to bfloat16 and accumulates in float32: the result is the
 * metric of the rounded rows (see {@link SimilarityOptions}); such calls stay on the CPU.
 */
export function similarityMatrix(q: Matrix, c: Corpus, options?: SimilarityOptions): Matrix {
  [q, c, options] = contract.snapBatch('similarityMatrix', q, c, options);
  const n = nat();
  if (n === null) return ref.similarityMatrix(q, c, options);
  const metric = contract.checkBatch('similarityMatrix', q, c, options);
  const prec = contract.precisionOf('similarityMatrix', options);
  try {
    return { data: now(n.similarityMatrix(batchArgs(q, c, metric, prec), onDevice())), rows: q.rows, cols: c.rows };
  } catch (e) {
    rethrow(e);
  }
}

/**
 * Exact top-k per query: `{ indices, scores, corpusRows, k }`, q.rows × k row-major, best first
 * (largest dot/cosine, smallest l2sq), ties broken by the lower index. Extra memory
 * O(q.rows · k). `c` may be a compact corpus (f16, bf16, i8; see {@link similarityMatrix}) or a
 * memory-mapped one (`openCorpus`). Options: `skip` (Uint32Array, q.rows entries: a corpus row
 * query i never returns, 0xFFFFFFFF = none) and `mask` (Uint8Array, c.rows entries: 0 =
 * ineligible); fewer than k eligible rows for a query → E_ARG. Calls with `skip` or `mask`
 * run on the CPU (the GPU top-k has no filter). `precision: 'bf16'`: scores of the
 * bfloat16-rounded rows, float32 accumulation (see {@link similarityMatrix}), on the CPU.
 */
export function topK(q: Matrix, c: Corpus, k: number, options?: TopKOptions): TopKResult {
  [q, c, options] = contract.snapBatch('topK', q, c, options, contract.TOPK_KEYS);
  const n = nat();
  if (n === null) return ref.topK(q, c, k, options);
  const sel = contract.selectTypes('topK', options);
  const metric = contract.checkTopK('topK', q, c, k, options, sel);
  const prec = contract.precisionOf('topK', options);
  try {
    return tagged(now(n.topK({ ...batchArgs(q, c, metric, prec), k, ...sel }, onDevice())), c.rows, k);
  } catch (e) {
    rethrow(e);
  }
}

/** Adds `corpusRows` and `k` to a native top-k result. */
function tagged(r: TopKResult, corpusRows: number, k: number): TopKResult {
  r.corpusRows = corpusRows;
  r.k = k;
  return r;
}

/**
 * Async twin of {@link similarityMatrix}: runs off the event loop (native: the libuv pool;
 * reference backend: a worker thread). Every argument is read and its values copied when the
 * call is made, so the caller may reuse or change its buffers and matrices at once.
 */
export function similarityMatrixAsync(q: Matrix, c: Corpus, options?: SimilarityOptions): Promise<Matrix> {
  return later(() => {
    const fn = 'similarityMatrixAsync';
    [q, c, options] = contract.snapBatch(fn, q, c, options);
    const metric = contract.checkBatch(fn, q, c, options);
    const prec = contract.precisionOf(fn, options);
    const n = nat();
    if (n === null) return refAsync<Matrix>('similarityMatrix', [q, c, options]);
    const [qr, cr] = [q.rows, c.rows];
    return soon(n.similarityMatrix(batchArgs(q, c, metric, prec), ASYNC)).then((data) => ({ data, rows: qr, cols: cr }), rethrow);
  });
}

/** Async twin of {@link topK} (arguments read and copied at call time; see {@link similarityMatrixAsync}; same options). */
export function topKAsync(q: Matrix, c: Corpus, k: number, options?: TopKOptions): Promise<TopKResult> {
  return later(() => {
    const fn = 'topKAsync';
    [q, c, options] = contract.snapBatch(fn, q, c, options, contract.TOPK_KEYS);
    const sel = contract.selectTypes(fn, options);
    const metric = contract.checkTopK(fn, q, c, k, options, sel);
    const prec = contract.precisionOf(fn, options);
    const n = nat();
    if (n === null) return refAsync<TopKResult>('topK', [q, c, k, options]);
    const rows = c.rows;
    return soon(n.topK({ ...batchArgs(q, c, metric, prec), k, ...sel }, ASYNC)).then((r) => tagged(r, rows, k), rethrow);
  });
}
