/**
 * Reference implementation of chapter 6 (practical mechanisms and regularizers): batch
 * normalization, embedding drift, sparsity and the Wasserstein pairwise-similarity
 * regularizer. Float64 accumulation; the oracle the native backend is tested against.
 */
import { fail } from '../errors';
import type { Matrix } from '../matrix';
import * as v from '../validate';

/** Options of {@link BatchNorm}. */
export interface BatchNormOptions {
  /** Weight of the new batch statistic in the running update (default 0.1), in [0, 1]. */
  momentum?: number;
  /** Added to the variance before the square root (default 1e-5), > 0. */
  eps?: number;
  /** Learnable per-feature `weight` (starts at 1) and `bias` (starts at 0), default false. */
  affine?: boolean;
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

/** A BatchNorm layer's fields, each read once at the start of a forward call. */
export interface BatchNormState {
  dim: number;
  momentum: number;
  eps: number;
  runningMean: Float32Array;
  runningVar: Float32Array;
}

/**
 * Validates a forward call on snapshots: the layer's fields (which a caller may have replaced:
 * dim, momentum, eps, runningMean, runningVar) and the input, types first, then shapes, then
 * values, then finiteness. Returns `training` and the layer's state as read.
 */
export function checkForwardState(layer: unknown, m: unknown, options: BatchNormForwardOptions | undefined): { training: boolean; state: BatchNormState } {
  const fn = 'BatchNorm.forward';
  const l = v.snapOpts(fn, layer as Record<string, unknown>, ['dim', 'momentum', 'eps', 'runningMean', 'runningVar']) as unknown as BatchNormState;
  v.int(fn, 'dim', l.dim);
  v.num(fn, 'momentum', l.momentum);
  v.num(fn, 'eps', l.eps);
  v.vecType(fn, 'runningMean', l.runningMean);
  v.vecType(fn, 'runningVar', l.runningVar);
  v.matType(fn, 'm', m);
  const o = v.opts(fn, v.snapOpts(fn, options, ['training']));
  const training = o.training ?? true;
  if (typeof training !== 'boolean') fail('E_TYPE', `${fn}: training must be a boolean, got ${v.describe(training)}`);
  v.matShape(fn, 'm', m);
  const dim = l.dim;
  if (m.cols !== dim) fail('E_SHAPE', `${fn}: m has ${m.cols} columns but the layer has dim ${dim}`);
  if (training && m.rows < 2) fail('E_SHAPE', `${fn}: training mode needs at least 2 rows, got ${m.rows}`);
  if (l.runningMean.length !== dim) fail('E_SHAPE', `${fn}: runningMean has length ${l.runningMean.length} but the layer has dim ${dim}`);
  if (l.runningVar.length !== dim) fail('E_SHAPE', `${fn}: runningVar has length ${l.runningVar.length} but the layer has dim ${dim}`);
  if (!(l.momentum >= 0 && l.momentum <= 1)) fail('E_ARG', `${fn}: momentum must be in [0, 1], got ${l.momentum}`);
  if (!(l.eps > 0) || !Number.isFinite(l.eps)) fail('E_ARG', `${fn}: eps must be > 0 and finite, got ${l.eps}`);
  v.finite(fn, 'm', m.data);
  return { training, state: l };
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
  /** Whether the layer has the learnable `weight` and `bias`. */
  readonly affine: boolean;
  /** Per-feature scale γ (starts at 1); present when `affine`. */
  weight?: Float32Array;
  /** Per-feature shift β (starts at 0); present when `affine`. */
  bias?: Float32Array;
  /** What the last training-mode forward saved for {@link BatchNorm.backward}. */
  protected saved: SavedBatch | null = null;

  constructor(dim: number, options?: BatchNormOptions) {
    const [momentum, eps] = checkBatchNorm(dim, options);
    this.dim = dim;
    this.momentum = momentum;
    this.eps = eps;
    this.runningMean = new Float32Array(dim);
    this.runningVar = new Float32Array(dim).fill(1);
    this.affine = checkAffine(options);
    if (this.affine) {
      this.weight = new Float32Array(dim).fill(1);
      this.bias = new Float32Array(dim);
    }
  }

  /**
   * PyTorch's momentum (weight of the new batch) from Keras's (weight of the old running value):
   * 1 − m. Keras's default 0.99 is PyTorch's 0.01; both update running ← (1 − μ)·running + μ·batch
   * with μ = 1 − m_Keras.
   */
  static momentumFromKeras(m: number): number {
    const fn = 'BatchNorm.momentumFromKeras';
    v.num(fn, 'm', m);
    if (!(m >= 0 && m <= 1)) fail('E_ARG', `${fn}: m must be in [0, 1], got ${m}`);
    return 1 - m;
  }

  /** Validates and returns [weight, bias] when affine, else null (for forward). */
  protected params(fn: string): [Float32Array, Float32Array] | null {
    if (!this.affine) return null;
    const w = this.weight;
    const b = this.bias;
    v.vecType(fn, 'weight', w);
    v.vecType(fn, 'bias', b);
    if (w.length !== this.dim || b.length !== this.dim) {
      fail('E_SHAPE', `${fn}: weight and bias must have length ${this.dim}, got ${w.length} and ${b.length}`);
    }
    v.finite(fn, 'weight', w);
    v.finite(fn, 'bias', b);
    return [w, b];
  }

  /** Records (training) or forgets (inference) the batch that backward differentiates. */
  protected remember(m: Matrix, training: boolean, p: [Float32Array, Float32Array] | null): void {
    this.saved = training ? { x: m.data.slice(), rows: m.rows, weight: p ? p[0].slice() : null } : null;
  }

  /**
   * Gradients of a loss through the last forward pass, which must have been in training mode
   * (E_ARG otherwise): `gradOut` is ∂loss/∂output (same shape as that batch, E_SHAPE otherwise).
   * Returns ∂loss/∂input and, when affine, ∂loss/∂weight = Σ_rows gradOut·x̂ and
   * ∂loss/∂bias = Σ_rows gradOut — PyTorch `BatchNorm1d` autograd in training mode (the batch
   * statistics are differentiated too), using the weight as it was at that forward pass.
   */
  backward(gradOut: Matrix): BatchNormGrads {
    const fn = 'BatchNorm.backward';
    const s = checkBackward(fn, this.dim, this.saved, gradOut);
    const r = batchNormBackward64(s.x, gradOut.data, s.rows, this.dim, s.weight, this.eps);
    return this.affine ? r : { gradX: r.gradX };
  }

  /** Normalizes the rows of `m` (n × dim); see the class comment. Returns a new Matrix. */
  forward(m: Matrix, options?: BatchNormForwardOptions): Matrix {
    m = v.snap('BatchNorm.forward', 'm', m);
    const { training, state } = checkForwardState(this, m, options);
    const p = this.params('BatchNorm.forward');
    const n = m.rows;
    const d = state.dim;
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
        const mo = state.momentum;
        state.runningMean[j] = (1 - mo) * state.runningMean[j] + mo * mean[j];
        state.runningVar[j] = (1 - mo) * state.runningVar[j] + mo * (ss / (n - 1));
      }
    } else {
      for (let j = 0; j < d; j++) {
        mean[j] = state.runningMean[j];
        vr[j] = state.runningVar[j];
      }
    }
    const eps = state.eps;
    const inv = vr.map((x) => 1 / Math.sqrt(x + eps));
    const out = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) {
        const xh = (m.data[i * d + j] - mean[j]) * inv[j];
        out[i * d + j] = p ? xh * p[0][j] + p[1][j] : xh;
      }
    }
    this.remember(m, training, p);
    return { data: out, rows: n, cols: d };
  }
}

/** The input and weight of a training-mode forward, kept for backward. */
export interface SavedBatch {
  x: Float32Array;
  rows: number;
  weight: Float32Array | null;
}

/** Result of `BatchNorm.backward`. */
export interface BatchNormGrads {
  /** ∂loss/∂input, same shape as the forward batch. */
  gradX: Matrix;
  /** ∂loss/∂weight (affine layers only). */
  gradWeight?: Float32Array;
  /** ∂loss/∂bias (affine layers only). */
  gradBias?: Float32Array;
}

/** Reads the `affine` option (boolean, default false). */
export function checkAffine(options: BatchNormOptions | undefined): boolean {
  const o = v.opts('BatchNorm', options);
  const a = o.affine ?? false;
  if (typeof a !== 'boolean') fail('E_TYPE', `BatchNorm: affine must be a boolean, got ${typeof a}`);
  return a;
}

/** Validates a backward call; returns what the forward saved. */
export function checkBackward(fn: string, dim: number, saved: SavedBatch | null, g: unknown): SavedBatch {
  v.matType(fn, 'gradOut', g);
  v.matShape(fn, 'gradOut', g);
  if (saved === null) fail('E_ARG', `${fn}: backward needs a training-mode forward first (the last forward was in inference mode or there was none)`);
  if (g.rows !== saved.rows || g.cols !== dim) {
    fail('E_SHAPE', `${fn}: gradOut is ${g.rows} x ${g.cols} but the forward batch was ${saved.rows} x ${dim}`);
  }
  v.finite(fn, 'gradOut', g.data);
  return saved;
}

/**
 * Batch-norm backward in float64 from the saved input x (n × d): with the biased batch
 * statistics μ, σ², r = 1/√(σ² + ε), x̂ = (x − μ)·r and h = g·w (w = 1 without affine),
 * ∂x = r·(h − mean(h) − x̂·mean(h·x̂)) per column; ∂w = Σ g·x̂, ∂b = Σ g.
 */
export function batchNormBackward64(
  x: Float32Array,
  g: Float32Array,
  n: number,
  d: number,
  w: Float32Array | null,
  eps: number,
): { gradX: Matrix; gradWeight: Float32Array; gradBias: Float32Array } {
  const mean = new Float64Array(d);
  const vr = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) vr[j] += (x[i * d + j] - mean[j]) ** 2;
  const inv = new Float64Array(d);
  for (let j = 0; j < d; j++) inv[j] = 1 / Math.sqrt(vr[j] / n + eps);
  const sg = new Float64Array(d);
  const sgx = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const xh = (x[i * d + j] - mean[j]) * inv[j];
      sg[j] += g[i * d + j];
      sgx[j] += g[i * d + j] * xh;
    }
  }
  const gx = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const xh = (x[i * d + j] - mean[j]) * inv[j];
      const wj = w ? w[j] : 1;
      gx[i * d + j] = wj * inv[j] * (g[i * d + j] - sg[j] / n - (xh * sgx[j]) / n);
    }
  }
  return { gradX: { data: gx, rows: n, cols: d }, gradWeight: Float32Array.from(sgx), gradBias: Float32Array.from(sg) };
}

/** Validates batchNormLag; returns nothing (throws on bad input). */
export function checkLag(fn: string, momentum: unknown, drift: unknown): asserts momentum is number {
  v.num(fn, 'momentum', momentum);
  v.num(fn, 'driftPerStep', drift);
  if (!(momentum > 0 && momentum <= 1)) fail('E_ARG', `${fn}: momentum must be in (0, 1], got ${momentum}`);
  if (!Number.isFinite(drift)) fail('E_NON_FINITE', `${fn}: driftPerStep must be finite, got ${drift}`);
}

/**
 * Steady-state lag of a batch-norm running mean behind a batch mean that drifts by
 * `driftPerStep` every step, with PyTorch's `momentum` μ ∈ (0, 1]: v·(1 − μ)/μ. (From
 * e_t = (1 − μ)(e_{t−1} + v), the lag after each update.) μ = 0.1 lags 9 steps of drift.
 */
export function batchNormLag(momentum: number, driftPerStep: number): number {
  checkLag('batchNormLag', momentum, driftPerStep);
  return (driftPerStep * (1 - momentum)) / momentum;
}

// ---------------------------------------------------------------------------------------------
// Soft thresholding (the proximal step of λ‖·‖₁)

/** Validates softThreshold / softThresholdInPlace. */
export function checkSoftThreshold(fn: string, m: unknown, lambda: unknown): asserts m is Matrix {
  v.matType(fn, 'm', m);
  v.num(fn, 'lambda', lambda);
  v.matShape(fn, 'm', m);
  if (!(lambda >= 0) || !Number.isFinite(lambda)) fail('E_ARG', `${fn}: lambda must be >= 0 and finite, got ${lambda}`);
  v.finite(fn, 'm', m.data);
}

function shrink(x: number, lambda: number): number {
  const a = Math.abs(x) - lambda;
  return a > 0 ? (x < 0 ? -a : a) : 0;
}

/**
 * The proximal operator of λ‖·‖₁: sign(x)·max(|x| − λ, 0) entrywise, a new Matrix. A proximal
 * gradient step (x ← softThreshold(x − η∇f, η·λ)) leaves exact zeros where an L1 subgradient
 * step would only oscillate around them.
 */
export function softThreshold(m: Matrix, lambda: number): Matrix {
  checkSoftThreshold('softThreshold', m, lambda);
  const out = new Float32Array(m.data.length);
  for (let i = 0; i < out.length; i++) out[i] = shrink(m.data[i], lambda);
  return { data: out, rows: m.rows, cols: m.cols };
}

/** {@link softThreshold} writing into `m.data` (nothing is returned). */
export function softThresholdInPlace(m: Matrix, lambda: number): void {
  checkSoftThreshold('softThresholdInPlace', m, lambda);
  for (let i = 0; i < m.data.length; i++) m.data[i] = shrink(m.data[i], lambda);
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
  a = v.snap('embeddingDrift', 'a', a);
  b = v.snap('embeddingDrift', 'b', b);
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
  m = v.snap('sparsity', 'm', m);
  options = v.snapOpts('sparsity', options, ['eps']);
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

/** Snapshots of wassersteinRegularizer's arguments: each field read once (validate.snap). */
export function snapWasserstein<M, O>(fn: string, a: M, b: M, options: O): [M, M, O] {
  return [v.snap(fn, 'a', a), v.snap(fn, 'b', b), v.snapOpts(fn, options, ['p'])];
}

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
  // A zero row (E_ARG) is reported before a non-finite value (E_NON_FINITE).
  for (const [name, m] of [['a', a], ['b', b]] as const) {
    for (let i = 0; i < m.rows; i++) {
      let z = true;
      for (let k = 0; k < m.cols; k++) if (m.data[i * m.cols + k] !== 0) z = false;
      if (z) fail('E_ARG', `${fn}: ${name} has a zero-norm row ${i}`);
    }
  }
  v.finite(fn, 'a', a.data);
  v.finite(fn, 'b', b.data);
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
  const s = new Float64Array(N);
  let k = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let t = 0;
      for (let c = 0; c < d; c++) t += xh[i * d + c] * xh[j * d + c];
      s[k++] = t;
    }
  }
  const order = new Uint32Array(N);
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
  [a, b, options] = snapWasserstein('wassersteinRegularizer', a, b, options);
  const p = checkWasserstein('wassersteinRegularizer', a, b, options);
  const n = a.rows;
  const d = a.cols;
  const N = (n * (n - 1)) / 2;
  const A = unitRows(a);
  const B = unitRows(b);
  const sa = sortedPairs(A.xh, n, d);
  const sb = sortedPairs(B.xh, n, d);
  const ga = new Float64Array(N);
  const gb = new Float64Array(N);
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
