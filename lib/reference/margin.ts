/**
 * Reference implementation of chapter 4 (margin losses for classification) and of the
 * classification-side regularizers of chapter 6: label-smoothed cross-entropy, the squared-norm
 * penalty and the L1 penalty. Float64 accumulation; the oracle the native backend is tested
 * against.
 */
import { alloc } from '../contract/alloc';
import { scanIndices, scanZeroRows } from '../contract/contrastive';
import {
  ARCFACE_SIN_EPS,
  checkCrossEntropy,
  checkMargin,
  checkMarginGeometry,
  checkPenalty,
  type CrossEntropyResult,
  type MarginGeometryOptions,
  type MarginGeometryResult,
  type MarginOptions,
  type MarginParsed,
  type MarginResult,
  type PenaltyResult,
  scanMargin,
  snapMargin,
} from '../contract/margin';
import * as v from '../contract/validate';
import type { Matrix } from '../matrix';
import { bf16F64 } from './precision';
import { unitRows64 } from './similarity';

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
function ceRow(z: Float64Array, off: number, C: number, y: number, eps: number, targetFromOthers = false): number {
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
  let others = 0;
  for (let j = 0; j < C; j++) {
    const p = Math.exp(z[off + j] - mx) / se;
    if (j !== y) others += p;
    z[off + j] = p - eps / C;
  }
  // p_y − (1 − ε) − ε/C; with targetFromOthers as ε(1 − 1/C) − Σ_{j≠y} p_j, which keeps the
  // digits that p_y − 1 cancels when p_y rounds near 1.
  if (targetFromOthers) z[off + y] = eps * (1 - 1 / C) - others;
  else z[off + y] -= 1 - eps;
  return loss;
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
  const xu = unitRows64(x);
  const wu = unitRows64(prototypes);
  // bf16 precision: the non-target products use the bf16 values of the unit rows.
  const xb = p.precision === 1 ? bf16F64(xu.h) : xu.h;
  const wb = p.precision === 1 ? bf16F64(wu.h) : wu.h;
  const z = alloc(Float64Array, N * C, fn, 'the N × C logits', 'split the batch');
  // ψ = z/s, formed without the scale (cos θ_j off the label, the rule at s = 1 on it), so
  // that ∂loss/∂s and the angular margins keep their digits for any s (a subnormal one too).
  const psi = alloc(Float64Array, N * C, fn, 'the N × C logits', 'split the batch');
  const unit = { ...p, scale: 1 };
  const dzy = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < C; j++) {
      let c = 0;
      if (j === labels[i]) for (let k = 0; k < d; k++) c += xu.h[i * d + k] * wu.h[j * d + k];
      else for (let k = 0; k < d; k++) c += xb[i * d + k] * wb[j * d + k];
      if (j === labels[i]) {
        const t = targetLogit(p, c);
        z[i * C + j] = t.z;
        dzy[i] = t.dz;
        psi[i * C + j] = targetLogit(unit, c).z;
      } else {
        z[i * C + j] = p.scale * c;
        psi[i * C + j] = c;
      }
    }
  }
  const logits = Float32Array.from(z);
  // Angular margins from the cosines (ψ_j off the label; the label's cosine recomputed).
  const angularMargins = new Float32Array(N);
  for (let i = 0; i < N; i++) {
    const y = labels[i];
    let cy = 0;
    for (let k = 0; k < d; k++) cy += xu.h[i * d + k] * wu.h[y * d + k];
    let best = Infinity;
    for (let j = 0; j < C; j++) {
      if (j === y) continue;
      const t = Math.acos(Math.min(1, Math.max(-1, psi[i * C + j]))) - Math.acos(Math.min(1, Math.max(-1, cy)));
      if (t < best) best = t;
    }
    angularMargins[i] = best;
  }
  let loss = 0;
  for (let i = 0; i < N; i++) loss += ceRow(z, i * C, C, labels[i], p.labelSmoothing);
  loss /= N;
  // Every logit is s·ψ (ψ a function of the cosines), so ∂loss/∂s = Σ (∂loss/∂z)·ψ.
  let gs = 0;
  for (let i = 0; i < N * C; i++) gs += z[i] * psi[i];
  const gradScale = gs / N;
  // z now holds ∂loss_i/∂logit; chain to ∂loss/∂cos and divide by N for the mean.
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < C; j++) z[i * C + j] *= (j === labels[i] ? dzy[i] : p.scale) / N;
  }
  const gx = alloc(Float64Array, N * d, fn, 'gradX', 'split the batch');
  const gw = alloc(Float64Array, C * d, fn, 'gradPrototypes', 'split the batch');
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < C; j++) {
      const g = z[i * C + j];
      const [xr, wr] = j === labels[i] ? [xu.h, wu.h] : [xb, wb];
      for (let k = 0; k < d; k++) {
        gx[i * d + k] += g * wr[j * d + k];
        gw[j * d + k] += g * xr[i * d + k];
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
  for (let i = 0; i < N; i++) loss += ceRow(z, i * C, C, labels[i], epsilon, true);
  for (let i = 0; i < z.length; i++) z[i] /= N;
  return { loss: loss / N, grad: { data: Float32Array.from(z), rows: N, cols: C } };
}

/** λ Σ f(m_ij) with the gradient λ·f'(m_ij), after the checks of `fn` (λ ≥ 0). */
function penalty(fn: string, m: Matrix, lambda: number, f: (x: number) => number, df: (x: number) => number): PenaltyResult {
  m = v.snap(fn, 'm', m);
  checkPenalty(fn, m, lambda);
  v.finite(fn, 'm', m.data);
  let s = 0;
  const g = new Float32Array(m.data.length);
  for (let i = 0; i < m.data.length; i++) {
    s += f(m.data[i]);
    g[i] = lambda * df(m.data[i]);
  }
  return { loss: lambda * s, grad: { data: g, rows: m.rows, cols: m.cols } };
}

/** Squared-norm penalty: loss = λ Σ_i ‖m_i‖², grad = 2λ·m. λ ≥ 0. */
export function normPenalty(m: Matrix, lambda: number): PenaltyResult {
  return penalty(
    'normPenalty',
    m,
    lambda,
    (x) => x * x,
    (x) => 2 * x,
  );
}

/** L1 penalty: loss = λ Σ |m_ij|, grad = λ·sign(m) with sign(0) = 0. λ ≥ 0. */
export function l1Penalty(m: Matrix, lambda: number): PenaltyResult {
  return penalty('l1Penalty', m, lambda, Math.abs, (x) => (x > 0 ? 1 : x < 0 ? -1 : 0));
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
  const wu = unitRows64(prototypes);
  const d = prototypes.cols;
  const angles = alloc(Float32Array, C * C, fn, 'the C × C angles', 'pass fewer prototypes');
  const gaps = alloc(Float32Array, C * C, fn, 'the C × C gaps', 'pass fewer prototypes').fill(NaN);
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
