/**
 * Chapter 4 — margin losses for classification: normalized softmax, CosFace and ArcFace over
 * L2-normalized embeddings and class prototypes, with label smoothing. Also the
 * classification-side regularizers of chapter 6: {@link labelSmoothingCrossEntropy},
 * {@link normPenalty} and {@link l1Penalty}.
 *
 * Conventions: the ArcFace margin is in radians; `scale` is s (logits are s·cos θ, so s plays
 * the role of 1/τ); every loss is a mean over rows, as PyTorch's default reduction.
 */
import { nat, rethrow } from './backend';
import { refAsync } from './refasync';
import { snap } from './contract/validate';
import { ASYNC, PRECISION_NAMES, SYNC, now, onDevice, soon } from './cuda';
import type { Matrix } from './matrix';
import * as contract from './contract/margin';
import * as ref from './reference/margin';
import type { CrossEntropyResult, MarginGeometryOptions, MarginGeometryResult, MarginOptions, MarginResult, PenaltyResult } from './contract/margin';
import { later } from './contract/async';

export type {
  CrossEntropyResult,
  MarginGeometryOptions,
  MarginGeometryResult,
  MarginKind,
  MarginOptions,
  MarginResult,
  PenaltyResult,
} from './contract/margin';
export { ARCFACE_SIN_EPS } from './contract/margin';

function wrap(
  r: { loss: number; gradX: Float32Array; gradW: Float32Array; logits: Float32Array; gradScale: number; angularMargins: Float32Array },
  x: Matrix,
  w: Matrix,
): MarginResult {
  return {
    loss: r.loss,
    gradX: { data: r.gradX, rows: x.rows, cols: x.cols },
    gradW: { data: r.gradW, rows: w.rows, cols: w.cols },
    logits: { data: r.logits, rows: x.rows, cols: w.rows },
    gradScale: r.gradScale,
    angularMargins: r.angularMargins,
  };
}

/** Margin kind names of the native entry point, by kind code. */
const KIND_NAMES = ['normalized', 'cosface', 'arcface'] as const;

/** The native arguments of marginSoftmax. */
function marginArgs(x: Matrix, prototypes: Matrix, labels: Uint32Array, p: contract.MarginParsed) {
  return {
    x,
    prototypes,
    labels,
    kind: KIND_NAMES[p.kind],
    scale: p.scale,
    margin: p.margin,
    labelSmoothing: p.labelSmoothing,
    gemm: { precision: PRECISION_NAMES[p.precision], scratchBytes: p.scratchBytes },
  };
}

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
export function marginSoftmax(x: Matrix, prototypes: Matrix, labels: Uint32Array, options: MarginOptions): MarginResult {
  [x, prototypes, options] = contract.snapMargin('marginSoftmax', x, prototypes, options);
  const n = nat();
  if (n === null) return ref.marginSoftmax(x, prototypes, labels, options);
  const p = contract.checkMargin('marginSoftmax', x, prototypes, labels, options);
  try {
    const r = now(n.marginSoftmax(marginArgs(x, prototypes, labels, p), onDevice()));
    return wrap(r, x, prototypes);
  } catch (e) {
    rethrow(e);
  }
}

/** Async twin of {@link marginSoftmax}: runs off the event loop (arguments read and copied at call time). */
export function marginSoftmaxAsync(x: Matrix, prototypes: Matrix, labels: Uint32Array, options: MarginOptions): Promise<MarginResult> {
  return later(() => {
    const fn = 'marginSoftmaxAsync';
    [x, prototypes, options] = contract.snapMargin(fn, x, prototypes, options);
    const p = contract.checkMargin(fn, x, prototypes, labels, options);
    const n = nat();
    if (n === null) return refAsync<MarginResult>('marginSoftmax', [x, prototypes, labels, options]);
    const [xs, ws] = [x, prototypes];
    return soon(n.marginSoftmax(marginArgs(x, prototypes, labels, p), ASYNC)).then((r) => wrap(r, xs, ws), rethrow);
  });
}

/**
 * Cross-entropy with label smoothing, equal to PyTorch's
 * `cross_entropy(logits, labels, label_smoothing=ε)` (mean over rows): the target is
 * (1 − ε)·onehot + ε/C. Returns `{ loss, grad }` with grad = ∂loss/∂logits.
 */
export function labelSmoothingCrossEntropy(logits: Matrix, labels: Uint32Array, epsilon: number): CrossEntropyResult {
  logits = snap('labelSmoothingCrossEntropy', 'logits', logits);
  const n = nat();
  if (n === null) return ref.labelSmoothingCrossEntropy(logits, labels, epsilon);
  contract.checkCrossEntropy('labelSmoothingCrossEntropy', logits, labels, epsilon);
  try {
    const r = now(n.labelSmoothingCrossEntropy({ logits, labels, epsilon }, SYNC));
    return { loss: r.loss, grad: { data: r.grad, rows: logits.rows, cols: logits.cols } };
  } catch (e) {
    rethrow(e);
  }
}

/** Squared-norm penalty: `{ loss: λ Σ‖row‖², grad: 2λ·m }` (λ ≥ 0). */
export function normPenalty(m: Matrix, lambda: number): PenaltyResult {
  m = snap('normPenalty', 'm', m);
  const n = nat();
  if (n === null) return ref.normPenalty(m, lambda);
  contract.checkPenalty('normPenalty', m, lambda);
  try {
    const r = n.normPenalty({ m, lambda });
    return { loss: r.loss, grad: { data: r.grad, rows: m.rows, cols: m.cols } };
  } catch (e) {
    rethrow(e);
  }
}

/** L1 penalty: `{ loss: λ Σ|m_ij|, grad: λ·sign(m) }` with sign(0) = 0 (λ ≥ 0). */
export function l1Penalty(m: Matrix, lambda: number): PenaltyResult {
  m = snap('l1Penalty', 'm', m);
  const n = nat();
  if (n === null) return ref.l1Penalty(m, lambda);
  contract.checkPenalty('l1Penalty', m, lambda);
  try {
    const r = n.l1Penalty({ m, lambda });
    return { loss: r.loss, grad: { data: r.grad, rows: m.rows, cols: m.cols } };
  } catch (e) {
    rethrow(e);
  }
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
export function marginGeometry(prototypes: Matrix, options: MarginGeometryOptions): MarginGeometryResult {
  prototypes = snap('marginGeometry', 'prototypes', prototypes);
  const n = nat();
  if (n === null) return ref.marginGeometry(prototypes, options);
  const p = contract.checkMarginGeometry('marginGeometry', prototypes, options);
  try {
    const r = now(n.marginGeometry({ prototypes, kind: KIND_NAMES[p.kind], margin: p.margin }, SYNC));
    const C = prototypes.rows;
    return { angles: { data: r.angles, rows: C, cols: C }, gaps: { data: r.gaps, rows: C, cols: C } };
  } catch (e) {
    rethrow(e);
  }
}
