/**
 * Reference implementation of chapter 3 (contrastive learning): softmax over similarities,
 * InfoNCE, SimCLR's NT-Xent, the mismatch score and temperature schedules. Written for clarity
 * with float64 accumulation; the oracle the native backend is tested against.
 *
 * Energy E(x, y) = −x·y and p(y_j | x) = softmax_j(x·y_j / τ).
 */
import { fail } from '../errors';
import { alloc } from './alloc';
import type { Matrix } from '../matrix';
import * as v from '../validate';

/** Options of {@link infoNCE}. */
export interface InfoNCEOptions {
  /** τ > 0 (required). Logits are q·k/τ. */
  temperature: number;
  /** Index into keys of each query's positive (length q.rows). Default: query i ↔ key i. */
  positives?: Uint32Array;
  /** Per-key log sampling probability; logits become q·k/τ − logQ_k (sampled-softmax correction). */
  logQ?: Float32Array;
  /** L2-normalize q and keys inside (gradients flow through it). Default false. */
  normalize?: boolean;
  /**
   * Id of the item behind each key (length keys.rows). For query i with positive p_i, every key
   * j ≠ p_i with keyIds[j] = keyIds[p_i] is an accidental hit and is left out of the softmax
   * (logit −∞, gradient 0), as TensorFlow's `remove_accidental_hits`.
   */
  keyIds?: Uint32Array;
  /**
   * Bytes of scratch memory the native CPU backend may use to hold the logit matrix
   * (default 268435456 = 256 MiB; a non-negative integer). When the float32 logits fit
   * (4·q.rows·keys.rows bytes), they are kept and forward + backward take three GEMMs; otherwise the tiled
   * path runs in O((rows + cols)·d) memory. Results agree within float32 rounding either way and
   * are bit-identical for every thread count; `0` always takes the tiled path. The reference and
   * GPU backends validate and ignore it.
   */
  scratchBytes?: number;
}

/**
 * Diagnostics of the softmax p(·|q) over the keys, each averaged over queries (anchors for
 * {@link ntXent}). A query without negatives counts entropy 0, positive probability 1 and 0 for
 * the two negative measures.
 */
export interface ContrastiveStats {
  /** Entropy of p(·|q) in nats. */
  meanEntropy: number;
  /** p(positive | q). */
  meanPositiveProbability: number;
  /** The largest probability given to a negative. */
  meanMaxNegativeProbability: number;
  /** exp(entropy of the negatives' renormalized probabilities): 1 … number of negatives. */
  effectiveNegatives: number;
}

/** Result of {@link infoNCE}: mean loss and gradients with the shapes of q and keys. */
export interface InfoNCEResult {
  loss: number;
  gradQ: Matrix;
  gradKeys: Matrix;
  /** ∂loss/∂τ (for a learnable temperature; logQ does not depend on τ). */
  gradTemperature: number;
  stats: ContrastiveStats;
}

/** Options of {@link ntXent}. */
export interface NtXentOptions {
  /** τ > 0 (required). */
  temperature: number;
  /**
   * Bytes of scratch memory the native CPU backend may use to hold the logit matrix
   * (default 268435456 = 256 MiB; a non-negative integer). When the float32 logits fit
   * (4·(2N)² bytes; by symmetry only half of the forward GEMM is done and the backward is one GEMM), they are kept and forward + backward take three GEMMs; otherwise the tiled
   * path runs in O((rows + cols)·d) memory. Results agree within float32 rounding either way and
   * are bit-identical for every thread count; `0` always takes the tiled path. The reference and
   * GPU backends validate and ignore it.
   */
  scratchBytes?: number;
}

/** Result of {@link ntXent}: mean loss over the 2N anchors and gradients for both views. */
export interface NtXentResult {
  loss: number;
  gradA: Matrix;
  gradB: Matrix;
  /** ∂loss/∂τ. */
  gradTemperature: number;
  stats: ContrastiveStats;
}

/** Options of {@link mismatchScore}. */
export interface MismatchOptions {
  /**
   * Also count the within-view pairs (a_i, a_j) and (b_i, b_j), i < j, in muQ (default false:
   * cross-view pairs (a_i, b_j), i ≠ j, only). Then muQ is the mean over all 2n(n − 1)
   * non-matching pairs of the 2n views.
   */
  withinView?: boolean;
}

/** Result of {@link mismatchScore}. */
export interface MismatchResult {
  /** Mean cosine of matching rows. */
  muP: number;
  /** Mean cosine of non-matching rows (i ≠ j). */
  muQ: number;
  /** muP − muQ. */
  M: number;
}

/** Shape of a temperature schedule. */
export type ScheduleKind = 'linear' | 'cosine' | 'exponential';

/** Options of {@link temperatureSchedule}. */
export interface ScheduleOptions {
  /** τ at t = 0 (> 0). */
  start: number;
  /** τ at t = steps (> 0). */
  end: number;
  /** Integer ≥ 1. */
  steps: number;
  /** 'cosine' (default), 'linear' or 'exponential'. */
  kind?: ScheduleKind;
}

// ---------------------------------------------------------------------------------------------
// Validation shared with the native wrappers. `check…` does types, shapes and scalar values;
// `scan…` does the per-element value scans (index ranges, zero-norm rows, finiteness), which the
// native backend performs in Rust with the same codes and messages.

/** Checks a temperature: a number (E_TYPE), finite and > 0 (E_ARG). */
export function checkTemperature(fn: string, t: unknown): asserts t is number {
  v.num(fn, 'temperature', t);
  if (!(t > 0) || !Number.isFinite(t)) fail('E_ARG', `${fn}: temperature must be > 0 and finite, got ${t}`);
}

/** Default `scratchBytes` of the fused losses (256 MiB). */
export const DEFAULT_SCRATCH_BYTES = 268435456;

/** Type of a `scratchBytes` option: undefined or an integer (E_TYPE). */
export function checkScratchType(fn: string, s: unknown): void {
  if (s !== undefined) v.int(fn, 'scratchBytes', s);
}

/** Value of a type-checked `scratchBytes` option: ≥ 0 and ≤ 2^53 − 1 (E_ARG); the default when absent. */
export function scratchValue(fn: string, s: unknown): number {
  if (s === undefined) return DEFAULT_SCRATCH_BYTES;
  const n = s as number;
  if (!(n >= 0) || n > Number.MAX_SAFE_INTEGER) fail('E_ARG', `${fn}: scratchBytes must be a non-negative integer (bytes), got ${n}`);
  return n;
}

/** Parsed InfoNCE options. */
export interface InfoNCEParsed {
  temperature: number;
  positives: Uint32Array | null;
  logQ: Float32Array | null;
  normalize: boolean;
  keyIds: Uint32Array | null;
  scratchBytes: number;
}

/** Snapshots of infoNCE's arguments: each field read once (validate.snap). */
export function snapInfoNCE<Q, K, O>(fn: string, q: Q, keys: K, options: O): [Q, K, O] {
  return [v.snap(fn, 'q', q), v.snap(fn, 'keys', keys), v.snapOpts(fn, options, ['temperature', 'positives', 'logQ', 'normalize', 'keyIds', 'scratchBytes'])];
}

/** Snapshots of ntXent's arguments: each field read once (validate.snap). */
export function snapNtXent<A, O>(fn: string, a: A, b: A, options: O): [A, A, O] {
  return [v.snap(fn, 'a', a), v.snap(fn, 'b', b), v.snapOpts(fn, options, ['temperature', 'scratchBytes'])];
}

/** Types, shapes and scalar values of infoNCE's arguments. */
export function checkInfoNCE(fn: string, q: unknown, keys: unknown, options: unknown): InfoNCEParsed {
  v.matType(fn, 'q', q);
  v.matType(fn, 'keys', keys);
  if (options === undefined || options === null || typeof options !== 'object') {
    fail('E_TYPE', `${fn}: options must be an object with a temperature, got ${options === null ? 'null' : typeof options}`);
  }
  const o = options as InfoNCEOptions;
  v.num(fn, 'temperature', o.temperature);
  if (o.positives !== undefined) v.u32(fn, 'positives', o.positives);
  if (o.logQ !== undefined) v.vecType(fn, 'logQ', o.logQ);
  if (o.keyIds !== undefined) v.u32(fn, 'keyIds', o.keyIds);
  if (o.normalize !== undefined && typeof o.normalize !== 'boolean') {
    fail('E_TYPE', `${fn}: normalize must be a boolean, got ${typeof o.normalize}`);
  }
  checkScratchType(fn, o.scratchBytes);
  v.matShape(fn, 'q', q);
  v.matShape(fn, 'keys', keys);
  v.sameCols(fn, 'q', q, 'keys', keys);
  if (o.positives !== undefined && o.positives.length !== q.rows) {
    fail('E_SHAPE', `${fn}: positives has length ${o.positives.length} but q has ${q.rows} rows`);
  }
  if (o.positives === undefined && keys.rows < q.rows) {
    fail('E_SHAPE', `${fn}: without positives, query i's positive is key i, so keys needs at least q.rows = ${q.rows} rows, got ${keys.rows}`);
  }
  if (o.logQ !== undefined && o.logQ.length !== keys.rows) {
    fail('E_SHAPE', `${fn}: logQ has length ${o.logQ.length} but keys has ${keys.rows} rows`);
  }
  if (o.keyIds !== undefined && o.keyIds.length !== keys.rows) {
    fail('E_SHAPE', `${fn}: keyIds has length ${o.keyIds.length} but keys has ${keys.rows} rows`);
  }
  checkTemperature(fn, o.temperature);
  const scratchBytes = scratchValue(fn, o.scratchBytes);
  return { temperature: o.temperature, positives: o.positives ?? null, logQ: o.logQ ?? null, normalize: o.normalize === true, keyIds: o.keyIds ?? null, scratchBytes };
}

/**
 * Whether float32 logits q·k/τ − logQ could overflow for these inputs (max|q|·max|k|·d/τ +
 * max|logQ| near the float32 range, or 1/τ beyond it): such calls are kept off the GPU, and
 * the native CPU code then computes them in float64 with the scaled logits of the reference.
 */
export function logitsMayOverflow(q: Matrix, keys: Matrix, p: InfoNCEParsed): boolean {
  const maxAbs = (x: Float32Array): number => {
    let m = 0;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
    return m;
  };
  const bound = (maxAbs(q.data) * maxAbs(keys.data) * q.cols) / p.temperature + (p.logQ ? maxAbs(p.logQ) : 0);
  return !Number.isFinite(Math.fround(1 / p.temperature)) || !(bound < 1e36);
}

/** Checks every index of `idx` is < n (E_ARG). */
export function scanIndices(fn: string, name: string, idx: Uint32Array, n: number, what: string): void {
  for (let i = 0; i < idx.length; i++) {
    if (idx[i] >= n) fail('E_ARG', `${fn}: ${name}[${i}] = ${idx[i]} is out of range [0, ${n}) (${what})`);
  }
}

/** Fails with E_ARG on the first zero-norm row (for losses that normalize inside). */
export function scanZeroRows(fn: string, name: string, m: Matrix): void {
  const d = m.cols;
  for (let i = 0; i < m.rows; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += m.data[i * d + k] * m.data[i * d + k];
    if (s === 0) fail('E_ARG', `${fn}: ${name} row ${i} has zero norm and cannot be normalized`);
  }
}

/** Per-element scans of infoNCE (E_ARG then E_NON_FINITE). */
export function scanInfoNCE(fn: string, q: Matrix, keys: Matrix, p: InfoNCEParsed): void {
  if (p.positives) scanIndices(fn, 'positives', p.positives, keys.rows, 'rows of keys');
  if (p.normalize) {
    scanZeroRows(fn, 'q', q);
    scanZeroRows(fn, 'keys', keys);
  }
  v.finite(fn, 'q', q.data);
  v.finite(fn, 'keys', keys.data);
  if (p.logQ) v.finite(fn, 'logQ', p.logQ);
}

/** Types, shapes and scalar values of ntXent's arguments; returns τ. */
export function checkNtXent(fn: string, a: unknown, b: unknown, options: unknown): number {
  v.matType(fn, 'a', a);
  v.matType(fn, 'b', b);
  if (options === undefined || options === null || typeof options !== 'object') {
    fail('E_TYPE', `${fn}: options must be an object with a temperature, got ${options === null ? 'null' : typeof options}`);
  }
  const t = (options as NtXentOptions).temperature;
  v.num(fn, 'temperature', t);
  checkScratchType(fn, (options as NtXentOptions).scratchBytes);
  v.matShape(fn, 'a', a);
  v.matShape(fn, 'b', b);
  v.sameShape(fn, 'a', a, 'b', b);
  checkTemperature(fn, t);
  scratchValue(fn, (options as NtXentOptions).scratchBytes);
  return t;
}

/** `scratchBytes` of ntXent options that {@link checkNtXent} accepted. */
export function ntXentScratch(options: NtXentOptions): number {
  return options.scratchBytes ?? DEFAULT_SCRATCH_BYTES;
}

/** Per-element scans of ntXent. */
export function scanNtXent(fn: string, a: Matrix, b: Matrix): void {
  scanZeroRows(fn, 'a', a);
  scanZeroRows(fn, 'b', b);
  v.finite(fn, 'a', a.data);
  v.finite(fn, 'b', b.data);
}

/** Types and shapes of mismatchScore (n ≥ 2 rows, same shape); returns withinView. */
export function checkMismatch(fn: string, a: unknown, b: unknown, options?: unknown): boolean {
  v.matType(fn, 'a', a);
  v.matType(fn, 'b', b);
  const o = v.opts(fn, options as MismatchOptions | undefined);
  if (o.withinView !== undefined && typeof o.withinView !== 'boolean') {
    fail('E_TYPE', `${fn}: withinView must be a boolean, got ${typeof o.withinView}`);
  }
  v.matShape(fn, 'a', a, 2);
  v.matShape(fn, 'b', b, 2);
  v.sameShape(fn, 'a', a, 'b', b);
  return o.withinView === true;
}

/** Types, shapes and values of softmaxProbabilities. */
export function checkSoftmax(fn: string, x: unknown, ys: unknown, t: unknown): void {
  v.vecType(fn, 'x', x);
  v.matType(fn, 'ys', ys);
  v.num(fn, 'temperature', t);
  v.vec(fn, 'x', x);
  v.matShape(fn, 'ys', ys);
  if (ys.cols !== x.length) fail('E_SHAPE', `${fn}: x has length ${x.length} but ys has ${ys.cols} columns`);
  checkTemperature(fn, t);
}

// ---------------------------------------------------------------------------------------------
// Float64 helpers.

function toF64(m: Matrix): Float64Array {
  return Float64Array.from(m.data);
}

/** Rows scaled to unit length (float64) and the original norms. */
function normRows(x: Float64Array, rows: number, d: number): { xh: Float64Array; norms: Float64Array } {
  const xh = new Float64Array(x.length);
  const norms = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[i * d + k] * x[i * d + k];
    const n = Math.sqrt(s);
    norms[i] = n;
    for (let k = 0; k < d; k++) xh[i * d + k] = x[i * d + k] / n;
  }
  return { xh, norms };
}

/** Backprop through x̂ = x/‖x‖ in place: g ← (g − x̂(x̂·g))/‖x‖. */
function backNorm(g: Float64Array, xh: Float64Array, norms: Float64Array, rows: number, d: number): void {
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += xh[i * d + k] * g[i * d + k];
    for (let k = 0; k < d; k++) g[i * d + k] = (g[i * d + k] - xh[i * d + k] * s) / norms[i];
  }
}

function toMatrix(g: Float64Array, rows: number, cols: number): Matrix {
  return { data: Float32Array.from(g), rows, cols };
}

/**
 * In place: row ← softmax(row / α) for logits held scaled by α = min(τ, 1) (so that a tiny τ
 * never makes an infinite logit); −∞ entries get probability 0. Returns
 * [log Σ exp((row − max)/α), max] so that log-sum-exp = log Σ + max/α.
 */
function scaledSoftmaxRow(z: Float64Array, off: number, n: number, alpha: number): [number, number] {
  let m = -Infinity;
  for (let j = 0; j < n; j++) if (z[off + j] > m) m = z[off + j];
  let s = 0;
  for (let j = 0; j < n; j++) {
    z[off + j] = Math.exp((z[off + j] - m) / alpha);
    s += z[off + j];
  }
  for (let j = 0; j < n; j++) z[off + j] /= s;
  return [Math.log(s), m];
}

/**
 * One query's ∂loss_i/∂τ and diagnostics from its logits z·α (masked entries −∞), positive
 * `pos` and logQ: [gradτ, entropy, p(pos), max p(neg), exp(entropy of the negatives)], in log space
 * (exact for any spread of the logits).
 */
function rowExtras(zs: Float64Array, off: number, n: number, pos: number, logQ: Float32Array | null, tau: number, alpha = 1): number[] {
  // Logits are held scaled by α = min(τ, 1); the diagnostics use the logits themselves.
  const z = new Float64Array(n);
  for (let j = 0; j < n; j++) z[j] = zs[off + j] / alpha;
  off = 0;
  let m = -Infinity;
  let mn = -Infinity;
  for (let j = 0; j < n; j++) {
    const x = z[off + j];
    if (x > m) m = x;
    if (j !== pos && x > mn) mn = x;
  }
  const zp = z[off + pos];
  if (mn === -Infinity) return [0, 0, 1, 0, 0];
  let s = 0;
  for (let j = 0; j < n; j++) s += Math.exp(z[off + j] - m);
  const lse = m + Math.log(s);
  let ln = 0;
  let ez = 0;
  let elq = 0;
  for (let j = 0; j < n; j++) {
    const x = z[off + j];
    if (j === pos || x === -Infinity) continue;
    const e = Math.exp(x - mn);
    ln += e;
    ez += e * x;
    if (logQ) elq += e * logQ[j];
  }
  const eqz = ez / ln;
  const lsen = mn + Math.log(ln);
  const pneg = Math.exp(lsen - lse);
  const pp = Math.exp(zp - lse);
  const up = zp + (logQ ? logQ[pos] : 0);
  // ∂L_i/∂τ = −(1/τ) Σ_j (p_j − y_j)·u_j with u_j = s_j/τ = z_j + logQ_j (a sum over negatives).
  const gt = (-pneg * (eqz + elq / ln - up)) / tau;
  return [gt, pp * (lse - zp) + pneg * (lse - eqz), pp, Math.exp(mn - lse), Math.exp(lsen - eqz)];
}

/** Means of per-query extras → (gradTemperature, stats). */
function meanExtras(ex: number[][]): { gradTemperature: number; stats: ContrastiveStats } {
  const t = [0, 0, 0, 0, 0];
  for (const e of ex) for (let k = 0; k < 5; k++) t[k] += e[k];
  const n = ex.length;
  return {
    gradTemperature: t[0] / n,
    stats: { meanEntropy: t[1] / n, meanPositiveProbability: t[2] / n, meanMaxNegativeProbability: t[3] / n, effectiveNegatives: t[4] / n },
  };
}

// ---------------------------------------------------------------------------------------------
// Public functions.

/** p(y_j | x) = softmax_j(x·y_j / τ) over the rows of `ys`, as a Float32Array of length ys.rows. */
export function softmaxProbabilities(x: Float32Array, ys: Matrix, temperature: number): Float32Array {
  const fn = 'softmaxProbabilities';
  ys = v.snap(fn, 'ys', ys);
  checkSoftmax(fn, x, ys, temperature);
  v.finite(fn, 'x', x);
  v.finite(fn, 'ys', ys.data);
  const d = ys.cols;
  const z = new Float64Array(ys.rows);
  for (let j = 0; j < ys.rows; j++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[k] * ys.data[j * d + k];
    z[j] = temperature < 1 ? s : s / temperature;
  }
  scaledSoftmaxRow(z, 0, ys.rows, Math.min(temperature, 1));
  return Float32Array.from(z);
}

/**
 * InfoNCE: loss = mean over queries of −log p(positive | query) with logits q·k/τ − logQ_k.
 * Returns ∂loss/∂q and ∂loss/∂keys (through the normalization when `normalize` is set).
 */
export function infoNCE(q: Matrix, keys: Matrix, options: InfoNCEOptions): InfoNCEResult {
  const fn = 'infoNCE';
  [q, keys, options] = snapInfoNCE(fn, q, keys, options);
  const p = checkInfoNCE(fn, q, keys, options);
  scanInfoNCE(fn, q, keys, p);
  return infoNCECore(q, keys, p);
}

function infoNCECore(q: Matrix, keys: Matrix, p: InfoNCEParsed): InfoNCEResult {
  const B = q.rows;
  const K = keys.rows;
  const d = q.cols;
  const tau = p.temperature;
  let qx = toF64(q);
  let kx = toF64(keys);
  let qn: { xh: Float64Array; norms: Float64Array } | null = null;
  let kn: { xh: Float64Array; norms: Float64Array } | null = null;
  if (p.normalize) {
    qn = normRows(qx, B, d);
    kn = normRows(kx, K, d);
    qx = qn.xh;
    kx = kn.xh;
  }
  // Logits q·k/τ − logQ are held scaled by α = min(τ, 1): u = α·(q·k/τ − logQ), so that a tiny τ
  // (down to the subnormals, where 1/τ overflows) never makes an infinite logit; differences
  // (u − max u)/α ≤ 0 go through exp, and the gradients are divided by τ last.
  const alpha = Math.min(tau, 1);
  const z = alloc(Float64Array, B * K, 'infoNCE', 'the B × K logits', 'split the batch');
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < K; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += qx[i * d + k] * kx[j * d + k];
      z[i * K + j] = (tau < 1 ? s : s / tau) - alpha * (p.logQ ? p.logQ[j] : 0);
    }
  }
  if (p.keyIds) {
    for (let i = 0; i < B; i++) {
      const pos = p.positives ? p.positives[i] : i;
      const id = p.keyIds[pos];
      for (let j = 0; j < K; j++) if (j !== pos && p.keyIds[j] === id) z[i * K + j] = -Infinity;
    }
  }
  let loss = 0;
  const ex: number[][] = [];
  for (let i = 0; i < B; i++) {
    const pos = p.positives ? p.positives[i] : i;
    const off = i * K;
    ex.push(rowExtras(z, off, K, pos, p.logQ, tau, alpha));
    let m = -Infinity;
    for (let j = 0; j < K; j++) if (z[off + j] > m) m = z[off + j];
    const zp = z[off + pos];
    let sum = 0;
    for (let j = 0; j < K; j++) {
      z[off + j] = Math.exp((z[off + j] - m) / alpha);
      sum += z[off + j];
    }
    for (let j = 0; j < K; j++) z[off + j] /= sum;
    loss += Math.log(sum) + (m - zp) / alpha;
    z[off + pos] -= 1; // z now holds P − onehot(positive)
  }
  loss /= B;
  const gq = alloc(Float64Array, B * d, 'infoNCE', 'gradQ', 'split the batch');
  const gk = alloc(Float64Array, K * d, 'infoNCE', 'gradKeys', 'split the batch');
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < K; j++) {
      const g = z[i * K + j] / B;
      if (g === 0) continue;
      for (let k = 0; k < d; k++) {
        gq[i * d + k] += g * kx[j * d + k];
        gk[j * d + k] += g * qx[i * d + k];
      }
    }
  }
  for (let t = 0; t < gq.length; t++) gq[t] /= tau;
  for (let t = 0; t < gk.length; t++) gk[t] /= tau;
  if (qn && kn) {
    backNorm(gq, qn.xh, qn.norms, B, d);
    backNorm(gk, kn.xh, kn.norms, K, d);
  }
  return { loss, gradQ: toMatrix(gq, B, d), gradKeys: toMatrix(gk, K, d), ...meanExtras(ex) };
}

/**
 * NT-Xent (SimCLR): rows of a and b are L2-normalized inside, z = [â; b̂] (2N rows), logits
 * cos/τ with each anchor's own similarity excluded; the positive of anchor i is its partner view
 * (i ± N). loss = mean over the 2N anchors of −log p(partner | anchor).
 */
export function ntXent(a: Matrix, b: Matrix, options: NtXentOptions): NtXentResult {
  const fn = 'ntXent';
  [a, b, options] = snapNtXent(fn, a, b, options);
  const tau = checkNtXent(fn, a, b, options);
  scanNtXent(fn, a, b);
  const N = a.rows;
  const d = a.cols;
  const R = 2 * N;
  const zx = new Float64Array(R * d);
  zx.set(a.data, 0);
  zx.set(b.data, N * d);
  const { xh, norms } = normRows(zx, R, d);
  const s = alloc(Float64Array, R * R, 'ntXent', 'the 2N × 2N similarities', 'split the batch');
  for (let i = 0; i < R; i++) {
    for (let j = 0; j < R; j++) {
      if (i === j) {
        s[i * R + j] = -Infinity;
        continue;
      }
      let t = 0;
      for (let k = 0; k < d; k++) t += xh[i * d + k] * xh[j * d + k];
      // Held scaled by α = min(τ, 1), as in infoNCE, so a tiny τ never overflows.
      s[i * R + j] = tau < 1 ? t : t / tau;
    }
  }
  const alpha = Math.min(tau, 1);
  let loss = 0;
  const ex: number[][] = [];
  for (let i = 0; i < R; i++) {
    const pos = i < N ? i + N : i - N;
    const sp = s[i * R + pos];
    ex.push(rowExtras(s, i * R, R, pos, null, tau, alpha));
    const [lse, m] = scaledSoftmaxRow(s, i * R, R, alpha);
    loss += lse + (m - sp) / alpha;
    s[i * R + pos] -= 1;
  }
  loss /= R;
  // Every z_m is both an anchor (row m of G) and a candidate (column m of G); the 1/τ of
  // ∂logit/∂cos is applied after the sums.
  const c = 1 / R;
  const g = new Float64Array(R * d);
  for (let i = 0; i < R; i++) {
    for (let j = 0; j < R; j++) {
      const w = s[i * R + j] * c;
      if (w === 0) continue;
      for (let k = 0; k < d; k++) {
        g[i * d + k] += w * xh[j * d + k];
        g[j * d + k] += w * xh[i * d + k];
      }
    }
  }
  for (let t = 0; t < g.length; t++) g[t] /= tau;
  backNorm(g, xh, norms, R, d);
  return { loss, gradA: toMatrix(g.subarray(0, N * d), N, d), gradB: toMatrix(g.subarray(N * d), N, d), ...meanExtras(ex) };
}

/**
 * Alignment of two views: muP = mean cos(a_i, b_i), muQ = mean cos(a_i, b_j) over i ≠ j,
 * M = muP − muQ. With `withinView: true`, muQ also counts the within-view pairs (a_i, a_j) and
 * (b_i, b_j), i < j. Zero rows have cosine 0 with everything (as {@link cosine}).
 */
export function mismatchScore(a: Matrix, b: Matrix, options?: MismatchOptions): MismatchResult {
  const fn = 'mismatchScore';
  a = v.snap(fn, 'a', a);
  b = v.snap(fn, 'b', b);
  const withinView = checkMismatch(fn, a, b, options);
  v.finite(fn, 'a', a.data);
  v.finite(fn, 'b', b.data);
  const n = a.rows;
  const d = a.cols;
  const ah = toF64(a);
  const bh = toF64(b);
  for (const x of [ah, bh]) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += x[i * d + k] * x[i * d + k];
      const inv = s === 0 ? 0 : 1 / Math.sqrt(s);
      for (let k = 0; k < d; k++) x[i * d + k] *= inv;
    }
  }
  // Σ_{i≠j} â_i·b̂_j = (Σ_i â_i)·(Σ_j b̂_j) − Σ_i â_i·b̂_i.
  const sa = new Float64Array(d);
  const sb = new Float64Array(d);
  let diag = 0;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < d; k++) {
      sa[k] += ah[i * d + k];
      sb[k] += bh[i * d + k];
      diag += ah[i * d + k] * bh[i * d + k];
    }
  }
  let all = 0;
  for (let k = 0; k < d; k++) all += sa[k] * sb[k];
  const muP = diag / n;
  let muQ = (all - diag) / (n * (n - 1));
  if (withinView) {
    // Σ_{i<j} â_i·â_j = (‖Σ â_i‖² − Σ ‖â_i‖²)/2, likewise for b.
    let within = 0;
    for (let k = 0; k < d; k++) within += sa[k] * sa[k] + sb[k] * sb[k];
    for (let i = 0; i < n * d; i++) within -= ah[i] * ah[i] + bh[i] * bh[i];
    muQ = (all - diag + within / 2) / (2 * n * (n - 1));
  }
  return { muP, muQ, M: muP - muQ };
}

/**
 * A temperature schedule t → τ for t clamped to [0, steps], r = t/steps: 'linear'
 * start + (end − start)·r, 'cosine' (default) end + (start − end)·(1 + cos πr)/2,
 * 'exponential' start·(end/start)^r.
 */
export function temperatureSchedule(options: ScheduleOptions): (t: number) => number {
  const fn = 'temperatureSchedule';
  if (options === undefined || options === null || typeof options !== 'object') {
    fail('E_TYPE', `${fn}: options must be an object {start, end, steps, kind}, got ${options === null ? 'null' : typeof options}`);
  }
  const o = v.snapOpts(fn, options, ['start', 'end', 'steps', 'kind']);
  const { start, end, steps } = o;
  const kind = o.kind ?? 'cosine';
  v.num(fn, 'start', start);
  v.num(fn, 'end', end);
  v.int(fn, 'steps', steps);
  v.str(fn, 'kind', kind);
  if (!(start > 0) || !Number.isFinite(start)) fail('E_ARG', `${fn}: start must be > 0 and finite, got ${start}`);
  if (!(end > 0) || !Number.isFinite(end)) fail('E_ARG', `${fn}: end must be > 0 and finite, got ${end}`);
  if (steps < 1) fail('E_ARG', `${fn}: steps must be an integer >= 1, got ${steps}`);
  if (kind !== 'linear' && kind !== 'cosine' && kind !== 'exponential') {
    fail('E_ARG', `${fn}: unknown kind '${kind}' (expected 'linear', 'cosine' or 'exponential')`);
  }
  return (t: number): number => {
    if (typeof t !== 'number' || Number.isNaN(t)) fail('E_TYPE', `${fn}: t must be a number, got ${String(t)}`);
    const r = Math.min(Math.max(t, 0), steps) / steps;
    if (kind === 'linear') return start + (end - start) * r;
    if (kind === 'exponential') return start * Math.pow(end / start, r);
    return end + ((start - end) * (1 + Math.cos(Math.PI * r))) / 2;
  };
}
