/**
 * Reference implementation of chapter 4 (margin losses for classification) and of the
 * classification-side regularizers of chapter 6: label-smoothed cross-entropy, the squared-norm
 * penalty and the L1 penalty. Float64 accumulation; the oracle the native backend is tested
 * against.
 */
import { fail } from '../errors';
import { alloc } from './alloc';
import type { Matrix } from '../matrix';
import * as v from '../validate';
import { checkScratchType, scanIndices, scanZeroRows, scratchValue } from './contrastive';

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
   * Bytes of scratch memory the native CPU backend may use for the N × C gradient of the
   * logits (default 268435456 = 256 MiB; a non-negative integer). When it fits (4·N·C bytes)
   * it is held whole; otherwise it is formed block by block from the logits, in bounded memory.
   * Results are bit-identical either way and for every thread count. The reference and GPU
   * backends validate and ignore it.
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
  scratchBytes: number;
}

const KINDS: ReadonlyMap<string, number> = new Map([
  ['normalized', 0],
  ['cosface', 1],
  ['arcface', 2],
]);

/** Snapshots of marginSoftmax's matrices and options: each field read once (validate.snap). */
export function snapMargin<M, O>(fn: string, x: M, w: M, options: O): [M, M, O] {
  return [v.snap(fn, 'x', x), v.snap(fn, 'prototypes', w), v.snapOpts(fn, options, ['kind', 'scale', 'margin', 'labelSmoothing', 'scratchBytes'])];
}

/** Checks label smoothing ε: a number (E_TYPE) in [0, 1) (E_ARG). */
export function checkEpsilon(fn: string, name: string, e: unknown): asserts e is number {
  v.num(fn, name, e);
  if (!(e >= 0 && e < 1)) fail('E_ARG', `${fn}: ${name} must be in [0, 1), got ${e}`);
}

/** Types, shapes and scalar values of marginSoftmax. */
export function checkMargin(fn: string, x: unknown, w: unknown, labels: unknown, options: unknown): MarginParsed {
  v.matType(fn, 'x', x);
  v.matType(fn, 'prototypes', w);
  v.u32(fn, 'labels', labels);
  if (options === undefined || options === null || typeof options !== 'object') {
    fail('E_TYPE', `${fn}: options must be an object with a kind, got ${options === null ? 'null' : typeof options}`);
  }
  const o = options as MarginOptions;
  if (typeof o.kind !== 'string') fail('E_TYPE', `${fn}: kind must be a string ('normalized', 'cosface' or 'arcface'), got ${typeof o.kind}`);
  if (o.scale !== undefined) v.num(fn, 'scale', o.scale);
  if (o.margin !== undefined) v.num(fn, 'margin', o.margin);
  if (o.labelSmoothing !== undefined) v.num(fn, 'labelSmoothing', o.labelSmoothing);
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
  let margin = 0;
  if (kind === 1) {
    margin = o.margin ?? 0.35;
    if (!(margin >= 0 && margin <= 1)) fail('E_ARG', `${fn}: margin must be in [0, 1] for cosface, got ${margin}`);
  } else if (kind === 2) {
    margin = o.margin ?? 0.5;
    if (!(margin >= 0 && margin < Math.PI / 2)) fail('E_ARG', `${fn}: margin must be in [0, π/2) radians for arcface, got ${margin}`);
  }
  const eps = o.labelSmoothing ?? 0;
  checkEpsilon(fn, 'labelSmoothing', eps);
  return { kind, scale, margin, labelSmoothing: eps, scratchBytes: scratchValue(fn, o.scratchBytes) };
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

/**
 * Target logit z = s·f(cos θ) and dz/d cos θ for a kind (0 normalized, 1 cosface, 2 arcface).
 */
export function targetLogit(p: MarginParsed, c: number): { z: number; dz: number } {
  const s = p.scale;
  const m = p.margin;
  if (p.kind === 0) return { z: s * c, dz: s };
  if (p.kind === 1) return { z: s * (c - m), dz: s };
  if (c > Math.cos(Math.PI - m)) {
    const sin = Math.sqrt(Math.max(1 - c * c, 0));
    return {
      z: s * (c * Math.cos(m) - sin * Math.sin(m)),
      dz: s * (Math.cos(m) + (Math.sin(m) * c) / Math.max(sin, ARCFACE_SIN_EPS)),
    };
  }
  return { z: s * (c - m * Math.sin(m)), dz: s };
}

/**
 * Label-smoothed cross-entropy of one row of logits in place: returns the row's loss and leaves
 * ∂loss_row/∂z in `z` (p − (1 − ε)·onehot − ε/C).
 */
function ceRow(z: Float64Array, off: number, C: number, y: number, eps: number): number {
  let mx = -Infinity;
  let sum = 0;
  for (let j = 0; j < C; j++) {
    mx = Math.max(mx, z[off + j]);
    sum += z[off + j];
  }
  let se = 0;
  for (let j = 0; j < C; j++) se += Math.exp(z[off + j] - mx);
  const lse = mx + Math.log(se);
  const loss = lse - (1 - eps) * z[off + y] - (eps / C) * sum;
  for (let j = 0; j < C; j++) z[off + j] = Math.exp(z[off + j] - mx) / se - eps / C;
  z[off + y] -= 1 - eps;
  return loss;
}

function unit(m: Matrix): { h: Float64Array; n: Float64Array } {
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

function backNorm(g: Float64Array, h: Float64Array, n: Float64Array, d: number): void {
  for (let i = 0; i < n.length; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += h[i * d + k] * g[i * d + k];
    for (let k = 0; k < d; k++) g[i * d + k] = (g[i * d + k] - h[i * d + k] * s) / n[i];
  }
}

/**
 * Margin softmax (normalized softmax, CosFace, ArcFace): x (N × d) and prototypes (C × d) are
 * L2-normalized inside, logits are s·cos θ_j with the target entry replaced by the kind's rule,
 * loss = mean label-smoothed cross-entropy. Returns `{ loss, gradX, gradW, logits }`.
 */
export function marginSoftmax(x: Matrix, prototypes: Matrix, labels: Uint32Array, options: MarginOptions): MarginResult {
  const fn = 'marginSoftmax';
  [x, prototypes, options] = snapMargin(fn, x, prototypes, options);
  const p = checkMargin(fn, x, prototypes, labels, options);
  scanMargin(fn, x, prototypes, labels);
  const N = x.rows;
  const C = prototypes.rows;
  const d = x.cols;
  const xu = unit(x);
  const wu = unit(prototypes);
  const z = alloc(Float64Array, N * C, fn, 'the N × C logits', 'split the batch');
  const dzy = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < C; j++) {
      let c = 0;
      for (let k = 0; k < d; k++) c += xu.h[i * d + k] * wu.h[j * d + k];
      if (j === labels[i]) {
        const t = targetLogit(p, c);
        z[i * C + j] = t.z;
        dzy[i] = t.dz;
      } else {
        z[i * C + j] = p.scale * c;
      }
    }
  }
  const logits = Float32Array.from(z);
  // Angular margins from the cosines (z_j/s off the label; the label's cosine recomputed).
  const angularMargins = new Float32Array(N);
  for (let i = 0; i < N; i++) {
    const y = labels[i];
    let cy = 0;
    for (let k = 0; k < d; k++) cy += xu.h[i * d + k] * wu.h[y * d + k];
    let best = Infinity;
    for (let j = 0; j < C; j++) {
      if (j === y) continue;
      const t = Math.acos(Math.min(1, Math.max(-1, z[i * C + j] / p.scale))) - Math.acos(Math.min(1, Math.max(-1, cy)));
      if (t < best) best = t;
    }
    angularMargins[i] = best;
  }
  const zs = Float64Array.from(z);
  let loss = 0;
  for (let i = 0; i < N; i++) loss += ceRow(z, i * C, C, labels[i], p.labelSmoothing);
  loss /= N;
  // Every logit is s·(a function of the cosines), so ∂loss/∂s = Σ (∂loss/∂z)·z / s.
  let gs = 0;
  for (let i = 0; i < N * C; i++) gs += z[i] * zs[i];
  const gradScale = gs / N / p.scale;
  // z now holds ∂loss_i/∂logit; chain to ∂loss/∂cos and divide by N for the mean.
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < C; j++) z[i * C + j] *= (j === labels[i] ? dzy[i] : p.scale) / N;
  }
  const gx = alloc(Float64Array, N * d, fn, 'gradX', 'split the batch');
  const gw = alloc(Float64Array, C * d, fn, 'gradPrototypes', 'split the batch');
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < C; j++) {
      const g = z[i * C + j];
      for (let k = 0; k < d; k++) {
        gx[i * d + k] += g * wu.h[j * d + k];
        gw[j * d + k] += g * xu.h[i * d + k];
      }
    }
  }
  backNorm(gx, xu.h, xu.n, d);
  backNorm(gw, wu.h, wu.n, d);
  return {
    loss,
    gradX: { data: Float32Array.from(gx), rows: N, cols: d },
    gradW: { data: Float32Array.from(gw), rows: C, cols: d },
    logits: { data: logits, rows: N, cols: C },
    gradScale,
    angularMargins,
  };
}

/**
 * Cross-entropy with label smoothing, equal to PyTorch's
 * `cross_entropy(logits, labels, label_smoothing=ε)` (mean over rows): the target distribution
 * is (1 − ε)·onehot + ε/C. Returns `{ loss, grad }` with grad = (softmax − target)/N.
 */
export function labelSmoothingCrossEntropy(logits: Matrix, labels: Uint32Array, epsilon: number): CrossEntropyResult {
  const fn = 'labelSmoothingCrossEntropy';
  logits = v.snap(fn, 'logits', logits);
  checkCrossEntropy(fn, logits, labels, epsilon);
  scanIndices(fn, 'labels', labels, logits.cols, 'columns of logits');
  v.finite(fn, 'logits', logits.data);
  const N = logits.rows;
  const C = logits.cols;
  const z = Float64Array.from(logits.data);
  let loss = 0;
  for (let i = 0; i < N; i++) loss += ceRow(z, i * C, C, labels[i], epsilon);
  for (let i = 0; i < z.length; i++) z[i] /= N;
  return { loss: loss / N, grad: { data: Float32Array.from(z), rows: N, cols: C } };
}

/** Squared-norm penalty: loss = λ Σ_i ‖m_i‖², grad = 2λ·m. λ ≥ 0. */
export function normPenalty(m: Matrix, lambda: number): PenaltyResult {
  const fn = 'normPenalty';
  m = v.snap(fn, 'm', m);
  checkPenalty(fn, m, lambda);
  v.finite(fn, 'm', m.data);
  let s = 0;
  const g = new Float32Array(m.data.length);
  for (let i = 0; i < m.data.length; i++) {
    s += m.data[i] * m.data[i];
    g[i] = 2 * lambda * m.data[i];
  }
  return { loss: lambda * s, grad: { data: g, rows: m.rows, cols: m.cols } };
}

/** L1 penalty: loss = λ Σ |m_ij|, grad = λ·sign(m) with sign(0) = 0. λ ≥ 0. */
export function l1Penalty(m: Matrix, lambda: number): PenaltyResult {
  const fn = 'l1Penalty';
  m = v.snap(fn, 'm', m);
  checkPenalty(fn, m, lambda);
  v.finite(fn, 'm', m.data);
  let s = 0;
  const g = new Float32Array(m.data.length);
  for (let i = 0; i < m.data.length; i++) {
    s += Math.abs(m.data[i]);
    g[i] = m.data[i] > 0 ? lambda : m.data[i] < 0 ? -lambda : 0;
  }
  return { loss: lambda * s, grad: { data: g, rows: m.rows, cols: m.cols } };
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
  if (options === undefined || options === null || typeof options !== 'object') {
    fail('E_TYPE', `${fn}: options must be an object with a kind, got ${options === null ? 'null' : typeof options}`);
  }
  const o = options as MarginGeometryOptions;
  if (typeof o.kind !== 'string') fail('E_TYPE', `${fn}: kind must be a string ('normalized', 'cosface' or 'arcface'), got ${typeof o.kind}`);
  if (o.margin !== undefined) v.num(fn, 'margin', o.margin);
  v.matShape(fn, 'prototypes', prototypes);
  if (!KINDS.has(o.kind)) {
    fail('E_ARG', `${fn}: unknown kind '${o.kind}' (expected 'normalized', 'cosface' or 'arcface')`);
  }
  const kind = KINDS.get(o.kind) as number;
  let margin = 0;
  if (kind === 1) {
    margin = o.margin ?? 0.35;
    if (!(margin >= 0 && margin <= 1)) fail('E_ARG', `${fn}: margin must be in [0, 1] for cosface, got ${margin}`);
  } else if (kind === 2) {
    margin = o.margin ?? 0.5;
    if (!(margin >= 0 && margin < Math.PI / 2)) fail('E_ARG', `${fn}: margin must be in [0, π/2) radians for arcface, got ${margin}`);
  }
  return { kind, margin };
}

/**
 * Geometry of class prototypes under a margin: `angles` Δ_ij between the normalized prototypes
 * and the angular `gaps` the margin realises between each pair's decision boundaries (CosFace's
 * constant cosine margin is wide in angle between close prototypes and narrow between far
 * ones; ArcFace's is m everywhere). Rows are normalized inside (a zero row → E_ARG).
 */
export function marginGeometry(prototypes: Matrix, options: MarginGeometryOptions): MarginGeometryResult {
  const fn = 'marginGeometry';
  const p = checkMarginGeometry(fn, prototypes, options);
  scanZeroRows(fn, 'prototypes', prototypes);
  v.finite(fn, 'prototypes', prototypes.data);
  const C = prototypes.rows;
  const wu = unit(prototypes);
  const d = prototypes.cols;
  const angles = new Float32Array(C * C);
  const gaps = new Float32Array(C * C).fill(NaN);
  for (let i = 0; i < C; i++) {
    for (let j = 0; j < C; j++) {
      if (i === j) continue;
      let c = 0;
      for (let k = 0; k < d; k++) c += wu.h[i * d + k] * wu.h[j * d + k];
      const delta = Math.acos(Math.min(1, Math.max(-1, c)));
      angles[i * C + j] = delta;
      if (p.kind === 0) gaps[i * C + j] = 0;
      else if (p.kind === 2) gaps[i * C + j] = p.margin;
      else {
        // Directions that agree to rounding (Δ < 1e-7) coincide: chord 0.
        const chord = delta < 1e-7 ? 0 : 2 * Math.sin(delta / 2);
        gaps[i * C + j] = p.margin === 0 ? 0 : p.margin > chord ? NaN : 2 * Math.asin(p.margin / chord);
      }
    }
  }
  return { angles: { data: angles, rows: C, cols: C }, gaps: { data: gaps, rows: C, cols: C } };
}
