/**
 * Chapter 4 — margin losses for classification: normalized softmax, CosFace and ArcFace over
 * L2-normalized embeddings and class prototypes, with label smoothing. Also the
 * classification-side regularizers of chapter 6: {@link labelSmoothingCrossEntropy},
 * {@link normPenalty} and {@link l1Penalty}.
 *
 * Conventions: the ArcFace margin is in radians; `scale` is s (logits are s·cos θ, so s plays
 * the role of 1/τ); every loss is a mean over rows, as PyTorch's default reduction.
 */
import type { NativeBinding } from './backend';
import { snap, snapOpts } from './contract/validate';
import { PRECISION_NAMES } from './cuda';
import { type Matrix, shapedLike } from './matrix';
import * as contract from './contract/margin';
import * as ref from './reference/margin';
import { type NativeResult, op, runAsync, runSync } from './run';

/** Margin kind names of the native entry point, by kind code. */
const KIND_NAMES = ['normalized', 'cosface', 'arcface'] as const;

const MARGIN = op({
  name: 'marginSoftmax',
  reference: ref.marginSoftmax,
  snap: (fn, x, prototypes, labels, options) => {
    [x, prototypes, options] = contract.snapMargin(fn, x, prototypes, options);
    return [x, prototypes, labels, options];
  },
  check: contract.checkMargin,
  call: (n, how, p, x, prototypes, labels) => {
    const { scale, margin, labelSmoothing, scratchBytes } = p;
    return n.marginSoftmax(
      { x, prototypes, labels, kind: KIND_NAMES[p.kind], scale, margin, labelSmoothing, gemm: { precision: PRECISION_NAMES[p.precision], scratchBytes } },
      how,
    );
  },
  out: (r: NativeResult<'marginSoftmax'>, _, x, w): contract.MarginResult => {
    const logits = { data: r.logits, rows: x.rows, cols: w.rows };
    return { loss: r.loss, gradX: shapedLike(r.gradX, x), gradW: shapedLike(r.gradW, w), logits, gradScale: r.gradScale, angularMargins: r.angularMargins };
  },
  gpu: true,
});

/** A loss and its gradient in the shape of `m` (cross-entropy, the penalties). */
function lossAndGrad(r: { loss: number; grad: Float32Array }, _: unknown, m: Matrix): contract.PenaltyResult {
  return { loss: r.loss, grad: shapedLike(r.grad, m) };
}

const CROSS_ENTROPY = op({
  name: 'labelSmoothingCrossEntropy',
  reference: ref.labelSmoothingCrossEntropy,
  snap: (fn, logits, labels, epsilon) => [snap(fn, 'logits', logits), labels, epsilon],
  check: contract.checkCrossEntropy,
  call: (n, how, _, logits, labels, epsilon) => n.labelSmoothingCrossEntropy({ logits, labels, epsilon }, how),
  out: lossAndGrad,
});

/** normPenalty and l1Penalty: λ times a sum over the entries of `m`, with its gradient. */
function penalty(
  name: 'normPenalty' | 'l1Penalty',
  reference: (m: Matrix, lambda: number) => contract.PenaltyResult,
  call: (n: NativeBinding, m: Matrix, lambda: number) => NativeResult<'normPenalty'>,
) {
  return op({
    name,
    reference,
    snap: (fn, m, lambda) => [snap(fn, 'm', m), lambda],
    check: contract.checkPenalty,
    call: (n, _how, _, m, lambda) => call(n, m, lambda),
    out: lossAndGrad,
  });
}

const NORM_PENALTY = penalty('normPenalty', ref.normPenalty, (n, m, lambda) => n.normPenalty({ m, lambda }));
const L1_PENALTY = penalty('l1Penalty', ref.l1Penalty, (n, m, lambda) => n.l1Penalty({ m, lambda }));

const MARGIN_GEOMETRY = op({
  name: 'marginGeometry',
  reference: ref.marginGeometry,
  snap: (fn, prototypes, options) => [snap(fn, 'prototypes', prototypes), snapOpts(fn, options, ['kind', 'margin'])],
  check: contract.checkMarginGeometry,
  call: (n, how, p, prototypes) => n.marginGeometry({ prototypes, kind: KIND_NAMES[p.kind], margin: p.margin }, how),
  out: (r: NativeResult<'marginGeometry'>, _, prototypes): contract.MarginGeometryResult => {
    const C = prototypes.rows;
    return { angles: { data: r.angles, rows: C, cols: C }, gaps: { data: r.gaps, rows: C, cols: C } };
  },
});

/**
 * Margin softmax loss. x (N × d) and prototypes (C × d) are L2-normalized inside (gradients flow
 * through it); logits are s·cos θ_j, with the target entry replaced by s·cos θ_y
 * ('normalized'), s·(cos θ_y − m) ('cosface') or s·cos(θ_y + m) ('arcface', with the
 * continuation s·(cos θ_y − m·sin m) beyond θ_y > π − m). loss = mean label-smoothed
 * cross-entropy. Returns `{ loss, gradX, gradW, logits, gradScale, angularMargins }`:
 * gradScale = ∂loss/∂s, angularMargins[i] = min over j ≠ y of θ_j − θ_y (radians, before the
 * margin; negative when row i is misclassified by the plain cosine).
 *
 * ArcFace's derivative divides by sin θ_y; it is clamped below at {@link ARCFACE_SIN_EPS} so
 * the gradient stays finite at θ_y = 0.
 */
export function marginSoftmax(x: Matrix, prototypes: Matrix, labels: Uint32Array, options: contract.MarginOptions): contract.MarginResult {
  return runSync(MARGIN, [x, prototypes, labels, options]);
}

/** Async twin of {@link marginSoftmax}: runs off the event loop (arguments read and copied at call time). */
export function marginSoftmaxAsync(x: Matrix, prototypes: Matrix, labels: Uint32Array, options: contract.MarginOptions): Promise<contract.MarginResult> {
  return runAsync(MARGIN, [x, prototypes, labels, options]);
}

/**
 * Cross-entropy with label smoothing, equal to PyTorch's
 * `cross_entropy(logits, labels, label_smoothing=ε)` (mean over rows): the target is
 * (1 − ε)·onehot + ε/C. Returns `{ loss, grad }` with grad = ∂loss/∂logits.
 */
export function labelSmoothingCrossEntropy(logits: Matrix, labels: Uint32Array, epsilon: number): contract.CrossEntropyResult {
  return runSync(CROSS_ENTROPY, [logits, labels, epsilon]);
}

/** Squared-norm penalty: `{ loss: λ Σ‖row‖², grad: 2λ·m }` (λ ≥ 0). */
export function normPenalty(m: Matrix, lambda: number): contract.PenaltyResult {
  return runSync(NORM_PENALTY, [m, lambda]);
}

/** L1 penalty: `{ loss: λ Σ|m_ij|, grad: λ·sign(m) }` with sign(0) = 0 (λ ≥ 0). */
export function l1Penalty(m: Matrix, lambda: number): contract.PenaltyResult {
  return runSync(L1_PENALTY, [m, lambda]);
}

/**
 * Geometry of class prototypes under a margin: `angles` (C × C) Δ_ij between the normalized
 * prototypes, and `gaps` (C × C), the realised angular gap between classes i and j's decision
 * boundaries along the geodesic from ŵ_i to ŵ_j: 0 ('normalized'), m ('arcface'),
 * 2·asin(m / (2 sin(Δ_ij/2))) ('cosface', NaN where m > 2 sin(Δ_ij/2)); NaN on the diagonal.
 * `margin` has marginSoftmax's defaults and ranges.
 *
 * @example
 * const { angles, gaps } = marginGeometry(prototypes, { kind: 'cosface', margin: 0.35 });
 */
export function marginGeometry(prototypes: Matrix, options: contract.MarginGeometryOptions): contract.MarginGeometryResult {
  return runSync(MARGIN_GEOMETRY, [prototypes, options]);
}
