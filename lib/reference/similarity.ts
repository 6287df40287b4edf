/**
 * Reference implementation of chapter 1 (similarity geometry). Written for clarity; accumulates
 * in float64. It is the oracle the native and CUDA backends are tested against.
 */
import { alloc } from '../contract/alloc';
import { type Corpus, dequantize } from '../contract/quantized';
import {
  checkBatch,
  checkPair,
  checkTopK,
  precisionOf,
  rankKey,
  ranksBefore,
  selectTypes,
  snapBatch,
  TOPK_KEYS,
  type TopKOptions,
  type TopKResult,
  type SimilarityOptions,
} from '../contract/similarity';
import * as v from '../contract/validate';
import type { Matrix } from '../matrix';
import { bf16Matrix } from './precision';

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
  const out = alloc(
    Float32Array,
    q.rows * c.rows,
    'similarityMatrix',
    'the q.rows × c.rows similarity matrix',
    'use topK for nearest neighbours, or split the batch',
  );
  for (let i = 0; i < q.rows; i++) {
    for (let j = 0; j < c.rows; j++) out[i * c.rows + j] = score64(q, i, c, j, metric, qn, cn);
  }
  return { data: out, rows: q.rows, cols: c.rows };
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

/** The rows of `m` in float64 divided by their norms (`h`), and the norms (`n`). */
export function unitRows64(m: Matrix): { h: Float64Array; n: Float64Array } {
  const d = m.cols;
  const h = new Float64Array(m.data.length);
  const n = new Float64Array(m.rows);
  for (let i = 0; i < m.rows; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += m.data[i * d + k] * m.data[i * d + k];
    n[i] = Math.sqrt(s);
    for (let k = 0; k < d; k++) h[i * d + k] = m.data[i * d + k] / n[i];
  }
  return { h, n };
}
