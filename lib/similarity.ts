/**
 * Chapter 1 — similarity geometry: dot, cosine, L2, normalization onto the hypersphere,
 * batched query × corpus similarity and exact top-k.
 *
 * Similarity functions do not scan for NaN: a NaN in an input propagates to the outputs that
 * depend on it, as in IEEE arithmetic (in top-k, NaN scores rank last).
 */
import { nat, rethrow } from './backend';
import { fromNative } from './errors';
import { refAsync } from './refasync';
import type { Matrix } from './matrix';
import * as ref from './reference/similarity';
import type { SimilarityOptions, TopKOptions, TopKResult, TopKSelect } from './reference/similarity';
import * as v from './validate';
import { viaCuda, CUDA_TOPK_MAX_K, CUDA_WORK } from './cuda';
import { isQuantized, type Corpus, type QuantizedMatrix } from './reference/quantized';

export type { MetricOptions, SimilarityOptions, TopKOptions, TopKResult } from './reference/similarity';
export { SKIP_NONE } from './reference/similarity';
export type { Corpus, HalfMatrix, Int8Matrix, QuantizedMatrix, QuantizeOptions } from './reference/quantized';
export { quantize, dequantize, f16ToNumber, numberToF16, bf16ToNumber, numberToBf16 } from './reference/quantized';

const NO_HALF = new Uint16Array(0);
const NO_INT8 = new Int8Array(0);
const NO_SCALES = new Float32Array(0);

/** The compact-corpus arguments of the native entry points: half, int8, rows, cols, dtype code, scale, scales. */
function qSplit(c: QuantizedMatrix, rows: number, cols: number): [Uint16Array, Int8Array, number, number, number, number, Float32Array] {
  if (c.dtype === 'i8') {
    return typeof c.scale === 'number' ? [NO_HALF, c.data, rows, cols, 3, c.scale, NO_SCALES] : [NO_HALF, c.data, rows, cols, 3, 0, c.scale];
  }
  return [c.data, NO_INT8, rows, cols, c.dtype === 'f16' ? 1 : 2, 0, NO_SCALES];
}
export type { Metric, Precision } from './validate';

function pair(fn: string, a: unknown, b: unknown): asserts a is Float32Array {
  // Fast accept for the common case (genuine Float32Arrays, brand-checked so that a Proxy or a
  // look-alike never reaches the addon); the reference's checks produce the error otherwise.
  if (v.isF32(a) && v.isF32(b) && a.length === b.length && a.length !== 0) return;
  ref.checkPair(fn, a, b);
}

/** Dot product Σ a_k b_k of two equal-length vectors. */
export function dot(a: Float32Array, b: Float32Array): number {
  const n = nat();
  if (n === null) return ref.dot(a, b);
  pair('dot', a, b);
  return n.dotFast(a, b);
}

/** Cosine similarity a·b / (‖a‖‖b‖); 0 when either norm is 0. */
export function cosine(a: Float32Array, b: Float32Array): number {
  const n = nat();
  if (n === null) return ref.cosine(a, b);
  pair('cosine', a, b);
  return n.cosineFast(a, b);
}

/** Squared Euclidean distance Σ (a_k − b_k)². */
export function l2sq(a: Float32Array, b: Float32Array): number {
  const n = nat();
  if (n === null) return ref.l2sq(a, b);
  pair('l2sq', a, b);
  return n.l2sqFast(a, b);
}

/** Euclidean norm ‖a‖₂. */
export function norm(a: Float32Array): number {
  const n = nat();
  if (n === null) return ref.norm(a);
  v.vec('norm', 'a', a);
  return n.norm(a);
}

/** New unit vector in the direction of `a`; a zero vector stays zero. */
export function normalize(a: Float32Array): Float32Array {
  const n = nat();
  if (n === null) return ref.normalize(a);
  v.vec('normalize', 'a', a);
  return n.normalize(a);
}

/** Normalizes in place: a vector, or every row of a Matrix (zero rows stay zero). */
export function normalizeInPlace(x: Float32Array | Matrix): void {
  x = v.snap('normalizeInPlace', 'x', x);
  const n = nat();
  if (n === null) return ref.normalizeInPlace(x);
  if (v.isF32(x)) {
    v.vec('normalizeInPlace', 'x', x);
    n.normalizeInPlace(x, x.length);
    return;
  }
  v.mat('normalizeInPlace', 'x', x);
  try {
    n.normalizeInPlace(x.data, x.cols);
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
    return { data: n.normalizeRows(m.data, m.cols), rows: m.rows, cols: m.cols };
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
  [q, c, options] = ref.snapBatch('similarityMatrix', q, c, options);
  const n = nat();
  if (n === null) return ref.similarityMatrix(q, c, options);
  const metric = ref.checkBatch('similarityMatrix', q, c, options);
  const prec = ref.precisionOf('similarityMatrix', options);
  try {
    if (isQuantized(c)) {
      return { data: n.similarityMatrixQ(q.data, q.rows, ...qSplit(c, c.rows, q.cols), metric, prec), rows: q.rows, cols: c.rows };
    }
    const data = viaCuda(
      CUDA_WORK.similarity(q.rows, c.rows, q.cols),
      prec === 0,
      (g) => g.cudaSimilarityMatrix(q.data, q.rows, c.data, c.rows, q.cols, metric),
      () => n.similarityMatrix(q.data, q.rows, c.data, c.rows, q.cols, metric, prec),
      n,
    );
    return { data, rows: q.rows, cols: c.rows };
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
  [q, c, options] = ref.snapBatch('topK', q, c, options, ref.TOPK_KEYS);
  const n = nat();
  if (n === null) return ref.topK(q, c, k, options);
  const sel = ref.selectTypes('topK', options);
  const metric = ref.checkTopK('topK', q, c, k, options, sel);
  const prec = ref.precisionOf('topK', options);
  const rows = c.rows;
  try {
    let r: TopKResult;
    if (sel.skip !== undefined || sel.mask !== undefined) r = n.topKSelect(...selArgs(q, c, k, metric, sel), prec);
    else if (isQuantized(c)) r = n.topKQ(q.data, q.rows, ...qSplit(c, c.rows, q.cols), k, metric, prec);
    else {
      r = viaCuda(
        CUDA_WORK.similarity(q.rows, c.rows, q.cols),
        k <= CUDA_TOPK_MAX_K && prec === 0,
        (g) => g.cudaTopK(q.data, q.rows, c.data, c.rows, q.cols, k, metric),
        () => n.topK(q.data, q.rows, c.data, c.rows, q.cols, k, metric, prec),
        n,
      );
    }
    return tagged(r, rows, k);
  } catch (e) {
    rethrow(e);
  }
}

const NO_F32 = new Float32Array(0);
const NO_U32 = new Uint32Array(0);
const NO_U8 = new Uint8Array(0);

/** Adds `corpusRows` and `k` to a native top-k result. */
function tagged(r: TopKResult, corpusRows: number, k: number): TopKResult {
  r.corpusRows = corpusRows;
  r.k = k;
  return r;
}

/** The arguments of the native `topKSelect` (any corpus storage, skip / mask). */
function selArgs(
  q: Matrix,
  c: Corpus,
  k: number,
  metric: number,
  sel: TopKSelect,
): [Float32Array, number, Float32Array, Uint16Array, Int8Array, number, number, number, number, Float32Array, number, number, number, Uint32Array, Uint8Array] {
  const flags = (sel.skip !== undefined ? 1 : 0) | (sel.mask !== undefined ? 2 : 0);
  const skip = sel.skip ?? NO_U32;
  const mask = sel.mask ?? NO_U8;
  if (isQuantized(c)) {
    const [half, int8, rows, cols, dtype, scale, scales] = qSplit(c, c.rows, q.cols);
    return [q.data, q.rows, NO_F32, half, int8, rows, cols, dtype, scale, scales, k, metric, flags, skip, mask];
  }
  return [q.data, q.rows, c.data, NO_HALF, NO_INT8, c.rows, q.cols, 0, 0, NO_SCALES, k, metric, flags, skip, mask];
}

/** Runs `f` and turns a thrown error into a rejected promise (always a DensevecError). */
function later<T>(f: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(f());
  } catch (e) {
    return Promise.reject(fromNative(e));
  }
}

/**
 * Async twin of {@link similarityMatrix}: runs off the event loop (native: the libuv pool;
 * reference backend: a worker thread). Every argument is read and its values copied when the
 * call is made, so the caller may reuse or change its buffers and matrices at once.
 */
export function similarityMatrixAsync(q: Matrix, c: Corpus, options?: SimilarityOptions): Promise<Matrix> {
  return later(() => {
    const fn = 'similarityMatrixAsync';
    [q, c, options] = ref.snapBatch(fn, q, c, options);
    const metric = ref.checkBatch(fn, q, c, options);
    const prec = ref.precisionOf(fn, options);
    const n = nat();
    if (n === null) return refAsync<Matrix>('similarityMatrix', [q, c, options]);
    const qr = q.rows;
    const cr = c.rows;
    if (isQuantized(c)) {
      return n.similarityMatrixQAsync(q.data, qr, ...qSplit(c, cr, q.cols), metric, prec).then((data) => ({ data, rows: qr, cols: cr }), rethrow);
    }
    return n.similarityMatrixAsync(q.data, qr, c.data, cr, q.cols, metric, prec).then((data) => ({ data, rows: qr, cols: cr }), rethrow);
  });
}

/** Async twin of {@link topK} (arguments read and copied at call time; see {@link similarityMatrixAsync}; same options). */
export function topKAsync(q: Matrix, c: Corpus, k: number, options?: TopKOptions): Promise<TopKResult> {
  return later(() => {
    const fn = 'topKAsync';
    [q, c, options] = ref.snapBatch(fn, q, c, options, ref.TOPK_KEYS);
    const sel = ref.selectTypes(fn, options);
    const metric = ref.checkTopK(fn, q, c, k, options, sel);
    const prec = ref.precisionOf(fn, options);
    const n = nat();
    if (n === null) return refAsync<TopKResult>('topK', [q, c, k, options]);
    const rows = c.rows;
    const done = (r: TopKResult) => tagged(r, rows, k);
    if (sel.skip !== undefined || sel.mask !== undefined) return n.topKSelectAsync(...selArgs(q, c, k, metric, sel), prec).then(done, rethrow);
    if (isQuantized(c)) return n.topKQAsync(q.data, q.rows, ...qSplit(c, c.rows, q.cols), k, metric, prec).then(done, rethrow);
    return n.topKAsync(q.data, q.rows, c.data, c.rows, q.cols, k, metric, prec).then(done, rethrow);
  });
}
