/**
 * Reference implementation of chapter 6 (practical mechanisms and regularizers): batch
 * normalization, embedding drift, sparsity and the Wasserstein pairwise-similarity
 * regularizer. Float64 accumulation; the oracle the native backend is tested against.
 */
import { alloc } from '../contract/alloc';
import {
  BatchNormBase,
  type BatchNormForwardOptions,
  type BatchNormGrads,
  checkBackward,
  checkDrift,
  checkForwardState,
  checkLag,
  checkSoftThreshold,
  checkSparsity,
  checkWasserstein,
  type EmbeddingDrift,
  snapWasserstein,
  type Sparsity,
  type SparsityOptions,
  type WassersteinOptions,
  type WassersteinResult,
} from '../contract/regularizers';
import * as v from '../contract/validate';
import type { Matrix } from '../matrix';
import { unitRows64 } from './similarity';

/**
 * Batch normalization over the rows of a Matrix, without affine parameters: PyTorch's
 * `BatchNorm1d(dim, affine=False, momentum, eps)`. Training mode normalizes each column with
 * the batch mean and the biased batch variance and updates the running statistics
 * running ← (1 − momentum)·running + momentum·batch with the unbiased variance; inference mode
 * normalizes with the running statistics.
 */
export class BatchNorm extends BatchNormBase {
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

/**
 * Steady-state lag of a batch-norm running mean behind a batch mean that drifts by
 * `driftPerStep` every step, with PyTorch's `momentum` μ ∈ (0, 1]: v·(1 − μ)/μ. (From
 * e_t = (1 − μ)(e_{t−1} + v), the lag after each update.) μ = 0.1 lags 9 steps of drift.
 */
export function batchNormLag(momentum: number, driftPerStep: number): number {
  checkLag('batchNormLag', momentum, driftPerStep);
  return (driftPerStep * (1 - momentum)) / momentum;
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
  [a, b, options] = snapWasserstein('wassersteinRegularizer', a, b, options);
  const p = checkWasserstein('wassersteinRegularizer', a, b, options);
  const n = a.rows;
  const d = a.cols;
  const N = (n * (n - 1)) / 2;
  const A = unitRows64(a);
  const B = unitRows64(b);
  const sa = sortedPairs(A.h, n, d);
  const sb = sortedPairs(B.h, n, d);
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
    gradA: { data: backprop(ga, A.h, A.n, n, d), rows: n, cols: d },
    gradB: { data: backprop(gb, B.h, B.n, n, d), rows: n, cols: d },
  };
}
