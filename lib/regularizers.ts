/**
 * Chapter 6 — practical mechanisms and regularizers: batch normalization with PyTorch's
 * semantics, embedding drift between two versions of the same rows, sparsity measures and the
 * Wasserstein pairwise-similarity regularizer with gradients.
 */
import { nat, rethrow } from './backend';
import { snap, snapOpts } from './contract/validate';
import { SYNC, now } from './cuda';
import { type Matrix, shapedLike } from './matrix';
import * as contract from './contract/regularizers';
import * as ref from './reference/regularizers';
import type { BatchNormForwardOptions, BatchNormGrads } from './contract/regularizers';
import { type NativeResult, op, runAsync, runSync } from './run';

const LAG = op({
  name: 'batchNormLag',
  reference: ref.batchNormLag,
  check: contract.checkLag,
  call: (n, _how, _, momentum, driftPerStep) => n.batchNormLag({ momentum, driftPerStep }),
});

const DRIFT = op({
  name: 'embeddingDrift',
  reference: ref.embeddingDrift,
  snap: (fn, a, b) => [snap(fn, 'a', a), snap(fn, 'b', b)],
  check: contract.checkDrift,
  call: (n, how, _, a, b) => n.embeddingDrift({ a, b }, how),
});

const SPARSITY = op({
  name: 'sparsity',
  reference: ref.sparsity,
  snap: (fn, m, options) => [snap(fn, 'm', m), snapOpts(fn, options, ['eps'])],
  check: contract.checkSparsity,
  call: (n, how, eps, m) => n.sparsity({ m, eps }, how),
});

const WASSERSTEIN = op({
  name: 'wassersteinRegularizer',
  reference: ref.wassersteinRegularizer,
  snap: contract.snapWasserstein,
  check: contract.checkWasserstein,
  call: (n, how, p, a, b) => n.wassersteinRegularizer({ a, b, p }, how),
  out: (r: NativeResult<'wassersteinRegularizer'>, _, a, b): contract.WassersteinResult => ({
    loss: r.loss,
    gradA: shapedLike(r.gradA, a),
    gradB: shapedLike(r.gradB, b),
  }),
  gpu: true,
});

/**
 * Batch normalization over the rows of a Matrix, equal to PyTorch's
 * `BatchNorm1d(dim, affine, momentum, eps)` (affine false by default; when true, `weight` starts
 * at 1 and `bias` at 0 and the output is x̂·weight + bias; `backward` gives the gradients). `runningMean` starts at 0 and `runningVar`
 * at 1. `forward(m)` (training, the default) normalizes each column with the batch mean and the
 * biased batch variance, needs ≥ 2 rows (E_SHAPE otherwise) and updates
 * running ← (1 − momentum)·running + momentum·batch with the unbiased variance;
 * `forward(m, { training: false })` normalizes with the running statistics.
 */
export class BatchNorm extends contract.BatchNormBase {
  /** Normalizes the rows of `m` (n × dim); returns a new Matrix (see the class comment). */
  override forward(m: Matrix, options?: BatchNormForwardOptions): Matrix {
    const n = nat();
    if (n === null) return ref.BatchNorm.prototype.forward.call(this, m, options);
    m = snap('BatchNorm.forward', 'm', m);
    const { training, state } = contract.checkForwardState(this, m, options);
    const p = this.params('BatchNorm.forward');
    try {
      const data = n.batchNormForward({
        x: m,
        runningMean: state.runningMean,
        runningVar: state.runningVar,
        momentum: state.momentum,
        eps: state.eps,
        training,
      });
      if (p) n.batchNormAffineInPlace({ y: { data, rows: m.rows, cols: m.cols }, weight: p[0], bias: p[1] });
      this.remember(m, training, p);
      return { data, rows: m.rows, cols: m.cols };
    } catch (e) {
      rethrow(e);
    }
  }

  /**
   * Gradients through the last forward pass, which must have been in training mode (E_ARG
   * otherwise): ∂loss/∂input and, when affine, ∂loss/∂weight and ∂loss/∂bias — PyTorch
   * `BatchNorm1d` autograd (see the reference class).
   */
  override backward(gradOut: Matrix): BatchNormGrads {
    const n = nat();
    if (n === null) return ref.BatchNorm.prototype.backward.call(this, gradOut);
    const s = contract.checkBackward('BatchNorm.backward', this.dim, this.saved, gradOut);
    try {
      const x = { data: s.x, rows: s.rows, cols: this.dim };
      const r = now(n.batchNormBackward({ x, gradOut: gradOut.data, weight: s.weight ?? undefined, eps: this.eps }, SYNC));
      const gradX = { data: r.gradX, rows: s.rows, cols: this.dim };
      return this.affine ? { gradX, gradWeight: r.gradWeight, gradBias: r.gradBias } : { gradX };
    } catch (e) {
      rethrow(e);
    }
  }
}

/**
 * Steady-state lag of a batch-norm running mean (PyTorch momentum μ ∈ (0, 1]) behind a batch
 * mean drifting by `driftPerStep` per step: v·(1 − μ)/μ (μ = 0.1 → 9 steps of drift).
 */
export function batchNormLag(momentum: number, driftPerStep: number): number {
  return runSync(LAG, [momentum, driftPerStep]);
}

/**
 * The proximal operator of λ‖·‖₁ (λ ≥ 0 and finite): sign(x)·max(|x| − λ, 0) of every entry, a
 * new Matrix. The proximal step of L1 regularization: it sets small entries exactly to 0.
 */
export function softThreshold(m: Matrix, lambda: number): Matrix {
  m = snap('softThreshold', 'm', m);
  const n = nat();
  if (n === null) return ref.softThreshold(m, lambda);
  contract.checkSoftThreshold('softThreshold', m, lambda);
  try {
    return { data: now(n.softThreshold({ m, lambda }, SYNC)), rows: m.rows, cols: m.cols };
  } catch (e) {
    rethrow(e);
  }
}

/** {@link softThreshold} written into `m.data` (views work; nothing is returned). */
export function softThresholdInPlace(m: Matrix, lambda: number): void {
  m = snap('softThresholdInPlace', 'm', m);
  const n = nat();
  if (n === null) {
    ref.softThresholdInPlace(m, lambda);
    return;
  }
  contract.checkSoftThreshold('softThresholdInPlace', m, lambda);
  try {
    n.softThresholdInPlace({ m, lambda });
  } catch (e) {
    rethrow(e);
  }
}

/**
 * How far two matrices of matching rows have drifted apart (e.g. a layer's train-mode vs
 * eval-mode outputs, or yesterday's vs today's embeddings of the same items): the mean cosine
 * similarity (0 for a pair with a zero row) and the mean Euclidean distance over rows.
 */
export function embeddingDrift(a: Matrix, b: Matrix): contract.EmbeddingDrift {
  return runSync(DRIFT, [a, b]);
}

/**
 * Sparsity of the rows of `m` (cols ≥ 2, E_ARG otherwise): `fractionNearZero`, the fraction of
 * entries with |x| ≤ eps (default 1e-6), and `hoyer`, the mean over rows of Hoyer's
 * (√d − ‖r‖₁/‖r‖₂)/(√d − 1): 0 for a flat row (and for a zero row), 1 for a one-hot row.
 */
export function sparsity(m: Matrix, options?: contract.SparsityOptions): contract.Sparsity {
  return runSync(SPARSITY, [m, options]);
}

/**
 * Wasserstein geometry regularizer between two views a, b of the same n items (n × d, n ≥ 2):
 * rows are L2-normalized inside; the N = n(n−1)/2 pairwise cosines (i < j) of each view are
 * sorted ascending (stable) and loss = (1/N) Σ_k |S_a,(k) − S_b,(k)|^p, p ∈ {1, 2} (default 2)
 * — the p-th power of the p-Wasserstein distance between the two similarity distributions (0
 * when the views have the same similarity profile, whatever the pairing). `gradA`, `gradB` flow
 * through the sort permutation and the normalization (p = 1: subgradient 0 at |0|). Native
 * memory is O(n²); no N × d array is formed.
 */
export function wassersteinRegularizer(a: Matrix, b: Matrix, options?: contract.WassersteinOptions): contract.WassersteinResult {
  return runSync(WASSERSTEIN, [a, b, options]);
}

/** Async twin of {@link wassersteinRegularizer} (arguments read and copied at call time). */
export function wassersteinRegularizerAsync(a: Matrix, b: Matrix, options?: contract.WassersteinOptions): Promise<contract.WassersteinResult> {
  return runAsync(WASSERSTEIN, [a, b, options]);
}
