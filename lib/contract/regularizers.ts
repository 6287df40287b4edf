/**
 * Chapter 6 (regularizers) contract: option and result types, the argument checks and the
 * BatchNorm layer's state and checks (the backends implement forward and backward).
 */
import { fail } from '../errors';
import { alloc } from './alloc';
import type { Matrix } from '../matrix';
import * as v from './validate';

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

/** Validates batchNormLag; returns nothing (throws on bad input). */
export function checkLag(fn: string, momentum: unknown, drift: unknown): asserts momentum is number {
  v.num(fn, 'momentum', momentum);
  v.num(fn, 'driftPerStep', drift);
  if (!(momentum > 0 && momentum <= 1)) fail('E_ARG', `${fn}: momentum must be in (0, 1], got ${momentum}`);
  if (!Number.isFinite(drift)) fail('E_NON_FINITE', `${fn}: driftPerStep must be finite, got ${drift}`);
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

// ---------------------------------------------------------------------------------------------
// Embedding drift

/** Validates embeddingDrift. */
export function checkDrift(fn: string, a: unknown, b: unknown): void {
  v.matPair(fn, 'a', a, 'b', b, true);
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
  for (const [name, m] of [
    ['a', a],
    ['b', b],
  ] as const) {
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

/**
 * The state and argument handling of a batch-normalization layer that both backends share
 * (constructor checks, fields, affine parameters, what backward needs); the backends implement
 * `forward` and `backward`. Batch normalization over the rows of a Matrix, without affine parameters: PyTorch's
 * `BatchNorm1d(dim, affine=False, momentum, eps)`. Training mode normalizes each column with
 * the batch mean and the biased batch variance and updates the running statistics
 * running ← (1 − momentum)·running + momentum·batch with the unbiased variance; inference mode
 * normalizes with the running statistics.
 */
export abstract class BatchNormBase {
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
    const F = 'BatchNorm';
    this.runningMean = alloc(Float32Array, dim, F, 'runningMean');
    this.runningVar = alloc(Float32Array, dim, F, 'runningVar').fill(1);
    this.affine = checkAffine(options);
    if (this.affine) {
      this.weight = alloc(Float32Array, dim, F, 'weight').fill(1);
      this.bias = alloc(Float32Array, dim, F, 'bias');
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

  /** Gradients through the last training-mode forward pass (see the backends' classes). */
  abstract backward(gradOut: Matrix): BatchNormGrads;

  /** Normalizes the rows of `m` (n × dim); returns a new Matrix. */
  abstract forward(m: Matrix, options?: BatchNormForwardOptions): Matrix;
}
