/**
 * Reference implementation of chapter 6 (practical mechanisms and regularizers): batch
 * normalization, embedding drift, sparsity and the Wasserstein pairwise-similarity
 * regularizer. Float64 accumulation; the oracle the native backend is tested against.
 */
import { fail } from '../errors';
import { alloc } from './alloc';
import type { Matrix } from '../matrix';
import * as v from '../validate';

/** Options of {@link BatchNorm}. */
export interface BatchNormOptions {
  /** Weight of the new batch statistic in the running update (default 0.1), in [0, 1]. */
  momentum?: number;
  /** Added to the variance before the square root (default 1e-5), > 0. */
  eps?: number;
}

/** Options of `BatchNorm.forward`. */
export interface BatchNormForwardOptions {
  /** Batch statistics + running update (true, default) or running statistics (false). */
  training?: boolean;
}

/** Result of {@link embeddingDrift}. */
export interface EmbeddingDrift {
  /** Mean cosine similarity of matching rows (0 for a pair with a zero row). */
  meanCosine: number;
  /** Mean Euclidean (not squared) distance of matching rows. */
  meanL2: number;
}

/** Options of {@link sparsity}. */
export interface SparsityOptions {
  /** Entries with |x| ≤ eps count as near zero (default 1e-6), ≥ 0. */
  eps?: number;
}

/** Result of {@link sparsity}. */
export interface Sparsity {
  /** Fraction of entries with |x| ≤ eps. */
  fractionNearZero: number;
  /** Mean over rows of Hoyer's (√d − ‖r‖₁/‖r‖₂)/(√d − 1), 0 for a zero row; in [0, 1]. */
  hoyer: number;
}

/** Options of {@link wassersteinRegularizer}. */
export interface WassersteinOptions {
  /** Exponent p ∈ {1, 2} (default 2). */
  p?: number;
}

/** Result of {@link wassersteinRegularizer}. */
export interface WassersteinResult {
  /** (1/N) Σ_k |S_a,(k) − S_b,(k)|^p. */
  loss: number;
  /** ∂loss/∂a, n × d. */
  gradA: Matrix;
  /** ∂loss/∂b, n × d. */
  gradB: Matrix;
}

// ---------------------------------------------------------------------------------------------
// Batch normalization

/** Validates the constructor arguments of BatchNorm; returns [momentum, eps]. */
export function checkBatchNorm(dim: unknown, options: BatchNormOptions | undefined): [number, number] {
  const fn = 'BatchNorm';
  v.int(fn, 'dim', dim);
  const o = v.opts(fn, options);
  const momentum = o.momentum ?? 0.1;
  const eps = o.eps ?? 1e-5;
  v.num(fn, 'momentum', momentum);
  v.num(fn, 'eps', eps);
  if (dim < 1) fail('E_ARG', `${fn}: dim must be >= 1, got ${dim}`);
  if (!(momentum >= 0 && momentum <= 1)) fail('E_ARG', `${fn}: momentum must be in [0, 1], got ${momentum}`);
  if (!(eps > 0) || !Number.isFinite(eps)) fail('E_ARG', `${fn}: eps must be > 0 and finite, got ${eps}`);
  return [momentum, eps];
}

/** Validates a forward call; returns `training`. */
export function checkForward(dim: number, m: unknown, options: BatchNormForwardOptions | undefined): boolean {
  const fn = 'BatchNorm.forward';
  v.matType(fn, 'm', m);
  const o = v.opts(fn, options);
  const training = o.training ?? true;
  if (typeof training !== 'boolean') fail('E_TYPE', `${fn}: training must be a boolean, got ${typeof training}`);
  v.matShape(fn, 'm', m);
  if (m.cols !== dim) fail('E_SHAPE', `${fn}: m has ${m.cols} columns but the layer has dim ${dim}`);
  if (training && m.rows < 2) fail('E_SHAPE', `${fn}: training mode needs at least 2 rows, got ${m.rows}`);
  v.finite(fn, 'm', m.data);
  return training;
}

/**
 * Batch normalization over the rows of a Matrix, without affine parameters: PyTorch's
 * `BatchNorm1d(dim, affine=False, momentum, eps)`. Training mode normalizes each column with
 * the batch mean and the biased batch variance and updates the running statistics
 * running ← (1 − momentum)·running + momentum·batch with the unbiased variance; inference mode
 * normalizes with the running statistics.
 */
export class BatchNorm {
  /** Number of features (columns). */
  readonly dim: number;
  /** Weight of the new batch statistic in the running update. */
  readonly momentum: number;
  /** Added to the variance before the square root. */
  readonly eps: number;
  /** Running mean per feature (starts at 0). */
  runningMean: Float32Array;
  /** Running unbiased variance per feature (starts at 1). */
  runningVar: Float32Array;

  constructor(dim: number, options?: BatchNormOptions) {
    const [momentum, eps] = checkBatchNorm(dim, options);
    this.dim = dim;
    this.momentum = momentum;
    this.eps = eps;
    this.runningMean = new Float32Array(dim);
    this.runningVar = new Float32Array(dim).fill(1);
  }

  /** Normalizes the rows of `m` (n × dim); see the class comment. Returns a new Matrix. */
  forward(m: Matrix, options?: BatchNormForwardOptions): Matrix {
    const training = checkForward(this.dim, m, options);
    const n = m.rows;
    const d = this.dim;
    const mean = new Float64Array(d);
    const vr = new Float64Array(d);
    if (training) {
      for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += m.data[i * d + j];
      for (let j = 0; j < d; j++) mean[j] /= n;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < d; j++) vr[j] += (m.data[i * d + j] - mean[j]) ** 2;
      }
      for (let j = 0; j < d; j++) {
        const ss = vr[j];
        vr[j] = ss / n;
        const mo = this.momentum;
        this.runningMean[j] = (1 - mo) * this.runningMean[j] + mo * mean[j];
        this.runningVar[j] = (1 - mo) * this.runningVar[j] + mo * (ss / (n - 1));
      }
    } else {
      for (let j = 0; j < d; j++) {
        mean[j] = this.runningMean[j];
        vr[j] = this.runningVar[j];
      }
    }
    const inv = vr.map((x) => 1 / Math.sqrt(x + this.eps));
    const out = new Float32Array(n * d);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) out[i * d + j] = (m.data[i * d + j] - mean[j]) * inv[j];
    return { data: out, rows: n, cols: d };
  }
}

// ---------------------------------------------------------------------------------------------
// Embedding drift

/** Validates embeddingDrift. */
export function checkDrift(fn: string, a: unknown, b: unknown): void {
  v.matType(fn, 'a', a);
  v.matType(fn, 'b', b);
  v.matShape(fn, 'a', a);
  v.matShape(fn, 'b', b);
  v.sameShape(fn, 'a', a, 'b', b);
  v.finite(fn, 'a', a.data);
  v.finite(fn, 'b', b.data);
}

/**
 * How far two matrices of matching rows have drifted apart: the mean cosine similarity and the
 * mean Euclidean distance over rows (e.g. train-mode vs eval-mode outputs of a layer).
 */
export function embeddingDrift(a: Matrix, b: Matrix): EmbeddingDrift {
  checkDrift('embeddingDrift', a, b);
  const d = a.cols;
  let cs = 0;
  let ls = 0;
  for (let i = 0; i < a.rows; i++) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    let dd = 0;
    for (let k = 0; k < d; k++) {
      const x = a.data[i * d + k];
      const y = b.data[i * d + k];
      ab += x * y;
      aa += x * x;
      bb += y * y;
      dd += (x - y) ** 2;
    }
    const den = Math.sqrt(aa) * Math.sqrt(bb);
    cs += den === 0 ? 0 : ab / den;
    ls += Math.sqrt(dd);
  }
  return { meanCosine: cs / a.rows, meanL2: ls / a.rows };
}

// ---------------------------------------------------------------------------------------------
// Sparsity

/** Validates sparsity; returns eps. */
export function checkSparsity(fn: string, m: unknown, options: SparsityOptions | undefined): number {
  v.matType(fn, 'm', m);
  const o = v.opts(fn, options);
  const eps = o.eps ?? 1e-6;
  v.num(fn, 'eps', eps);
  v.matShape(fn, 'm', m);
  if (m.cols < 2) fail('E_ARG', `${fn}: m needs at least 2 columns, got ${m.cols}`);
  if (!(eps >= 0)) fail('E_ARG', `${fn}: eps must be >= 0, got ${eps}`);
  v.finite(fn, 'm', m.data);
  return eps;
}

/**
 * Sparsity of the rows of `m` (cols ≥ 2): the fraction of entries with |x| ≤ eps and the mean
 * Hoyer sparsity (√d − ‖r‖₁/‖r‖₂)/(√d − 1) over rows (0 for a zero row, 1 for a one-hot row).
 */
export function sparsity(m: Matrix, options?: SparsityOptions): Sparsity {
  const eps = checkSparsity('sparsity', m, options);
  const d = m.cols;
  const sd = Math.sqrt(d);
  let near = 0;
  let h = 0;
  for (let i = 0; i < m.rows; i++) {
    let l1 = 0;
    let l2 = 0;
    for (let k = 0; k < d; k++) {
      const x = m.data[i * d + k];
      if (Math.abs(x) <= eps) near++;
      l1 += Math.abs(x);
      l2 += x * x;
    }
    if (l2 > 0) h += (sd - l1 / Math.sqrt(l2)) / (sd - 1);
  }
  return { fractionNearZero: near / m.data.length, hoyer: h / m.rows };
}

// ---------------------------------------------------------------------------------------------
// Wasserstein pairwise-similarity regularizer

/** Validates wassersteinRegularizer; returns p. */
export function checkWasserstein(fn: string, a: unknown, b: unknown, options: WassersteinOptions | undefined): number {
  v.matType(fn, 'a', a);
  v.matType(fn, 'b', b);
  const o = v.opts(fn, options);
  const p = o.p ?? 2;
  v.num(fn, 'p', p);
  v.matShape(fn, 'a', a, 2);
  v.matShape(fn, 'b', b, 2);
  v.sameShape(fn, 'a', a, 'b', b);
  if (p !== 1 && p !== 2) fail('E_ARG', `${fn}: p must be 1 or 2, got ${p}`);
  if (a.rows > 65536) fail('E_ARG', `${fn}: at most 65536 rows are supported, got ${a.rows}`);
  v.finite(fn, 'a', a.data);
  v.finite(fn, 'b', b.data);
  for (const [name, m] of [['a', a], ['b', b]] as const) {
    for (let i = 0; i < m.rows; i++) {
      let z = true;
      for (let k = 0; k < m.cols; k++) if (m.data[i * m.cols + k] !== 0) z = false;
      if (z) fail('E_ARG', `${fn}: ${name} has a zero-norm row ${i}`);
    }
  }
  return p;
}

function unitRows(m: Matrix): { xh: Float64Array; norms: Float64Array } {
  const d = m.cols;
  const xh = new Float64Array(m.data.length);
  const norms = new Float64Array(m.rows);
  for (let i = 0; i < m.rows; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += m.data[i * d + k] ** 2;
    const nr = Math.sqrt(s);
    norms[i] = nr;
    for (let k = 0; k < d; k++) xh[i * d + k] = m.data[i * d + k] / nr;
  }
  return { xh, norms };
}

/** Sorted upper-triangle cosines: values in pair order and the stable ascending permutation. */
function sortedPairs(xh: Float64Array, n: number, d: number): { s: Float64Array; order: Uint32Array } {
  const N = (n * (n - 1)) / 2;
  const s = alloc(Float64Array, N, 'wassersteinRegularizer', 'the N(N−1)/2 pair similarities');
  let k = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let t = 0;
      for (let c = 0; c < d; c++) t += xh[i * d + c] * xh[j * d + c];
      s[k++] = t;
    }
  }
  const order = alloc(Uint32Array, N, 'wassersteinRegularizer', 'the pair order');
  for (let t = 0; t < N; t++) order[t] = t;
  // Stable: equal values keep their pair order.
  order.sort((x, y) => (s[x] < s[y] ? -1 : s[x] > s[y] ? 1 : x - y));
  return { s, order };
}

/** Backprop ∂loss/∂S (pair order) through S = X̂X̂ᵀ (i<j) and the row normalization. */
function backprop(gs: Float64Array, xh: Float64Array, norms: Float64Array, n: number, d: number): Float32Array {
  const gx = new Float64Array(n * d);
  let k = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const g = gs[k++];
      if (g === 0) continue;
      for (let c = 0; c < d; c++) {
        gx[i * d + c] += g * xh[j * d + c];
        gx[j * d + c] += g * xh[i * d + c];
      }
    }
  }
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let t = 0;
    for (let c = 0; c < d; c++) t += gx[i * d + c] * xh[i * d + c];
    for (let c = 0; c < d; c++) out[i * d + c] = (gx[i * d + c] - t * xh[i * d + c]) / norms[i];
  }
  return out;
}

/**
 * Wasserstein geometry regularizer between two views a, b (n × d, n ≥ 2): rows are normalized
 * inside; S_a, S_b are the upper-triangle pairwise cosines (i < j, N = n(n−1)/2 values), each
 * sorted ascending (stable: equal values keep their pair order), and
 * loss = (1/N) Σ_k |S_a,(k) − S_b,(k)|^p — the p-th power of the p-Wasserstein distance between
 * the two empirical distributions of similarities. Gradients flow through the sort permutation
 * and the normalization; for p = 1 the subgradient of |0| is 0.
 */
export function wassersteinRegularizer(a: Matrix, b: Matrix, options?: WassersteinOptions): WassersteinResult {
  const p = checkWasserstein('wassersteinRegularizer', a, b, options);
  const n = a.rows;
  const d = a.cols;
  const N = (n * (n - 1)) / 2;
  const A = unitRows(a);
  const B = unitRows(b);
  const sa = sortedPairs(A.xh, n, d);
  const sb = sortedPairs(B.xh, n, d);
  const ga = alloc(Float64Array, N, 'wassersteinRegularizer', 'the pair coefficients');
  const gb = alloc(Float64Array, N, 'wassersteinRegularizer', 'the pair coefficients');
  let loss = 0;
  for (let k = 0; k < N; k++) {
    const ia = sa.order[k];
    const ib = sb.order[k];
    const diff = sa.s[ia] - sb.s[ib];
    let g: number;
    if (p === 2) {
      loss += diff * diff;
      g = (2 * diff) / N;
    } else {
      loss += Math.abs(diff);
      g = diff > 0 ? 1 / N : diff < 0 ? -1 / N : 0;
    }
    ga[ia] = g;
    gb[ib] = -g;
  }
  return {
    loss: loss / N,
    gradA: { data: backprop(ga, A.xh, A.norms, n, d), rows: n, cols: d },
    gradB: { data: backprop(gb, B.xh, B.norms, n, d), rows: n, cols: d },
  };
}
