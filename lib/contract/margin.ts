/**
 * Chapter 4 (margin losses) contract: option and result types, the argument checks and scans.
 */
import { fail } from '../errors';
import type { Matrix } from '../matrix';
import { checkScratchType, scanIndices, scanZeroRows, scratchValue } from './contrastive';
import * as v from './validate';

/** The target-logit rule of {@link marginSoftmax}. */
export type MarginKind = 'normalized' | 'cosface' | 'arcface';

/** Options of {@link marginSoftmax}. */
export interface MarginOptions {
  /** 'normalized' (s·cos θ_y), 'cosface' (s·(cos θ_y − m)) or 'arcface' (s·cos(θ_y + m)). Required. */
  kind: MarginKind;
  /** s > 0 (default 30). */
  scale?: number;
  /** m: default 0.35 (cosface, m ∈ [0, 1]) or 0.5 radians (arcface, m ∈ [0, π/2)); ignored for 'normalized'. */
  margin?: number;
  /** ε ∈ [0, 1) (default 0), as PyTorch's `cross_entropy(label_smoothing=ε)`. */
  labelSmoothing?: number;
  /**
   * 'f32' (default) or 'bf16': the cosines of the non-target classes and both gradient GEMMs
   * take bfloat16 inputs (the normalized rows of x and prototypes, and ∂loss/∂cos, nearest even)
   * and accumulate in float32. The target class's cosine, its margin and its share of the
   * gradients stay in float64 from the unrounded rows. Calls with 'bf16' run on the CPU.
   */
  precision?: v.Precision;
  /**
   * Scratch budget of the fused losses (default 268435456 = 256 MiB; a non-negative integer),
   * accepted for symmetry with `infoNCE` / `ntXent`. `marginSoftmax` forms the N × C gradient
   * of the logits block by block from the logits, in bounded memory, whatever the budget, so
   * results are bit-identical for every budget and thread count. Every backend validates it.
   */
  scratchBytes?: number;
}

/** Result of {@link marginSoftmax}. */
export interface MarginResult {
  /** Mean label-smoothed cross-entropy over the N rows. */
  loss: number;
  /** ∂loss/∂x (N × d). */
  gradX: Matrix;
  /** ∂loss/∂prototypes (C × d). */
  gradW: Matrix;
  /** The N × C logits fed to the softmax (s·cos θ, with the target entries replaced). */
  logits: Matrix;
  /** ∂loss/∂s (for a learnable scale; every logit is linear in s). */
  gradScale: number;
  /**
   * Per row, min over j ≠ y of θ_j − θ_y in radians (θ_j = angle between x̂ and ŵ_j), before
   * any margin: negative when the row is misclassified by the plain cosine; +∞ when C = 1.
   */
  angularMargins: Float32Array;
}

/** Result of {@link labelSmoothingCrossEntropy}. */
export interface CrossEntropyResult {
  loss: number;
  /** ∂loss/∂logits (N × C). */
  grad: Matrix;
}

/** Result of {@link normPenalty} and {@link l1Penalty}. */
export interface PenaltyResult {
  loss: number;
  /** ∂loss/∂m, same shape as m. */
  grad: Matrix;
}

/**
 * Lower clamp of sin θ_y in the arcface derivative d cos(θ+m)/d cos θ = cos m + sin m·cos θ/sin θ.
 * The loss itself uses sin θ_y = √(max(1 − cos²θ_y, 0)); only the derivative divides by
 * max(sin θ_y, ARCFACE_SIN_EPS), so at θ_y = 0 the gradient is finite (and tends to 0 there, as
 * the tangent direction it multiplies vanishes with sin θ).
 */
export const ARCFACE_SIN_EPS = 1e-6;

/** Parsed margin options (numeric kind: 0 normalized, 1 cosface, 2 arcface). */
export interface MarginParsed {
  kind: number;
  scale: number;
  margin: number;
  labelSmoothing: number;
  /** 0 f32, 1 bf16. */
  precision: number;
  scratchBytes: number;
}

const KINDS: ReadonlyMap<string, number> = new Map([
  ['normalized', 0],
  ['cosface', 1],
  ['arcface', 2],
]);

/** Snapshots of marginSoftmax's matrices and options: each field read once (validate.snap). */
export function snapMargin<M, O>(fn: string, x: M, w: M, options: O): [M, M, O] {
  return [v.snap(fn, 'x', x), v.snap(fn, 'prototypes', w), v.snapOpts(fn, options, ['kind', 'scale', 'margin', 'labelSmoothing', 'precision', 'scratchBytes'])];
}

/** Checks label smoothing ε: a number (E_TYPE) in [0, 1) (E_ARG). */
export function checkEpsilon(fn: string, name: string, e: unknown): asserts e is number {
  v.num(fn, name, e);
  if (!(e >= 0 && e < 1)) fail('E_ARG', `${fn}: ${name} must be in [0, 1), got ${e}`);
}

/** The options object of the margin functions and its `kind` (a string), read as given: E_TYPE otherwise. */
function kindOptions<O extends { kind: unknown }>(fn: string, options: unknown): O {
  if (options === undefined || options === null || typeof options !== 'object') {
    fail('E_TYPE', `${fn}: options must be an object with a kind, got ${options === null ? 'null' : typeof options}`);
  }
  const o = options as O;
  if (typeof o.kind !== 'string') fail('E_TYPE', `${fn}: kind must be a string ('normalized', 'cosface' or 'arcface'), got ${typeof o.kind}`);
  return o;
}

/** The margin of a kind (1 cosface, 2 arcface; 0 for normalized): as given or the default, range-checked (E_ARG). */
function marginOf(fn: string, kind: number, given: number | undefined): number {
  if (kind === 1) {
    const margin = given ?? 0.35;
    if (!(margin >= 0 && margin <= 1)) fail('E_ARG', `${fn}: margin must be in [0, 1] for cosface, got ${margin}`);
    return margin;
  }
  if (kind === 2) {
    const margin = given ?? 0.5;
    if (!(margin >= 0 && margin < Math.PI / 2)) fail('E_ARG', `${fn}: margin must be in [0, π/2) radians for arcface, got ${margin}`);
    return margin;
  }
  return 0;
}

/** Types, shapes and scalar values of marginSoftmax. */
export function checkMargin(fn: string, x: unknown, w: unknown, labels: unknown, options: unknown): MarginParsed {
  v.matType(fn, 'x', x);
  v.matType(fn, 'prototypes', w);
  v.u32(fn, 'labels', labels);
  const o = kindOptions<MarginOptions>(fn, options);
  if (o.scale !== undefined) v.num(fn, 'scale', o.scale);
  if (o.margin !== undefined) v.num(fn, 'margin', o.margin);
  if (o.labelSmoothing !== undefined) v.num(fn, 'labelSmoothing', o.labelSmoothing);
  v.PRECISION.type(fn, o.precision);
  checkScratchType(fn, o.scratchBytes);
  v.matShape(fn, 'x', x);
  v.matShape(fn, 'prototypes', w);
  v.sameCols(fn, 'x', x, 'prototypes', w);
  if (labels.length !== x.rows) fail('E_SHAPE', `${fn}: labels has length ${labels.length} but x has ${x.rows} rows`);
  const kind = v.lookup(KINDS, o.kind);
  if (kind === undefined) {
    fail('E_ARG', `${fn}: unknown kind '${o.kind}' (expected 'normalized', 'cosface' or 'arcface')`);
  }
  const scale = o.scale ?? 30;
  if (!(scale > 0) || !Number.isFinite(scale)) fail('E_ARG', `${fn}: scale must be > 0 and finite, got ${scale}`);
  const margin = marginOf(fn, kind, o.margin);
  const eps = o.labelSmoothing ?? 0;
  checkEpsilon(fn, 'labelSmoothing', eps);
  const precision = v.PRECISION.code(fn, o.precision);
  return { kind, scale, margin, labelSmoothing: eps, precision, scratchBytes: scratchValue(fn, o.scratchBytes) };
}

/** Per-element scans of marginSoftmax (labels, zero rows, finiteness). */
export function scanMargin(fn: string, x: Matrix, w: Matrix, labels: Uint32Array): void {
  scanIndices(fn, 'labels', labels, w.rows, 'rows of prototypes');
  scanZeroRows(fn, 'x', x);
  scanZeroRows(fn, 'prototypes', w);
  v.finite(fn, 'x', x.data);
  v.finite(fn, 'prototypes', w.data);
}

/** Types, shapes and ε of labelSmoothingCrossEntropy. */
export function checkCrossEntropy(fn: string, logits: unknown, labels: unknown, epsilon: unknown): void {
  v.matType(fn, 'logits', logits);
  v.u32(fn, 'labels', labels);
  v.num(fn, 'epsilon', epsilon);
  v.matShape(fn, 'logits', logits);
  if (labels.length !== logits.rows) fail('E_SHAPE', `${fn}: labels has length ${labels.length} but logits has ${logits.rows} rows`);
  checkEpsilon(fn, 'epsilon', epsilon);
}

/** Types and value of a penalty's (m, λ): λ ≥ 0 and finite. */
export function checkPenalty(fn: string, m: unknown, lambda: unknown): void {
  v.matType(fn, 'm', m);
  v.num(fn, 'lambda', lambda);
  v.matShape(fn, 'm', m);
  if (!(lambda >= 0) || !Number.isFinite(lambda)) fail('E_ARG', `${fn}: lambda must be >= 0 and finite, got ${lambda}`);
}

/** Options of {@link marginGeometry}. */
export interface MarginGeometryOptions {
  /** 'normalized', 'cosface' or 'arcface' (required). */
  kind: MarginKind;
  /** m, with the defaults and ranges of {@link marginSoftmax}; ignored for 'normalized'. */
  margin?: number;
}

/** Result of {@link marginGeometry}: two C × C matrices. */
export interface MarginGeometryResult {
  /** Δ_ij, the angle between ŵ_i and ŵ_j in radians (0 on the diagonal). */
  angles: Matrix;
  /**
   * Realised angular gap between the decision boundaries of classes i and j along the geodesic
   * from ŵ_i to ŵ_j: 0 ('normalized'), m ('arcface'), 2·asin(m / (2 sin(Δ_ij/2))) ('cosface';
   * NaN where m > 2 sin(Δ_ij/2), i.e. the two prototypes are too close for the margin; 0 when
   * m = 0); NaN on the diagonal.
   */
  gaps: Matrix;
}

/** Types, shapes and values of marginGeometry; returns (kind code, margin). */
export function checkMarginGeometry(fn: string, prototypes: unknown, options: unknown): { kind: number; margin: number } {
  v.matType(fn, 'prototypes', prototypes);
  const o = kindOptions<MarginGeometryOptions>(fn, options);
  if (o.margin !== undefined) v.num(fn, 'margin', o.margin);
  v.matShape(fn, 'prototypes', prototypes);
  if (!KINDS.has(o.kind)) {
    fail('E_ARG', `${fn}: unknown kind '${o.kind}' (expected 'normalized', 'cosface' or 'arcface')`);
  }
  const kind = KINDS.get(o.kind) as number;
  const margin = marginOf(fn, kind, o.margin);
  return { kind, margin };
}
