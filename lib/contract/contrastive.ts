/**
 * Chapter 3 (contrastive losses) contract: option and result types, the argument checks and
 * the input scans (indices in range, zero rows, finiteness).
 */
import { fail } from '../errors';
import type { Matrix } from '../matrix';
import * as v from './validate';

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
   * 'f32' (default) or 'bf16': the three GEMMs take bfloat16 inputs (nearest even) and accumulate in
   * float32 — the logits from the bf16 values of the (normalized, when `normalize`) rows of q
   * and keys, gradQ from those of the softmax weights and the key rows, gradKeys from those of
   * the weights and the query rows. The logQ correction, the softmax and the backward pass
   * through the normalization stay in float32/float64. Calls whose float32 logits could overflow
   * take the float64 path whatever the precision. Calls with 'bf16' run on the CPU.
   */
  precision?: v.Precision;
  /**
   * Bytes of scratch memory the native CPU backend may use to hold the logit matrix
   * (default 268435456 = 256 MiB; a non-negative integer). When the float32 logits fit
   * (4·q.rows·keys.rows bytes), they are kept and forward + backward take three GEMMs; otherwise
   * the tiled path runs in O((rows + cols)·d) memory. Results agree within float32 rounding
   * either way and are bit-identical for every thread count; `0` always takes the tiled path.
   * The reference and GPU backends validate and ignore it.
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
   * 'f32' (default) or 'bf16': the similarity and gradient GEMMs take bfloat16 inputs (the
   * normalized rows and the softmax weights, nearest even) and accumulate in float32; the
   * normalization and its backward pass stay in float32/float64. Calls with 'bf16' run on the CPU.
   */
  precision?: v.Precision;
  /**
   * Bytes of scratch memory the native CPU backend may use to hold the logit matrix
   * (default 268435456 = 256 MiB; a non-negative integer). When the float32 logits fit
   * (4·(2N)² bytes), they are kept: by symmetry only half of the forward GEMM is done and the
   * backward is one GEMM; otherwise the tiled path runs in O(N·d) memory. Results agree within
   * float32 rounding either way and are bit-identical for every thread count; `0` always takes
   * the tiled path. The reference and GPU backends validate and ignore it.
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

/** `scratchBytes` of ntXent options that {@link checkNtXent} accepted. */
export function ntXentScratch(options: NtXentOptions): number {
  return options.scratchBytes ?? DEFAULT_SCRATCH_BYTES;
}

/** Parsed InfoNCE options. */
export interface InfoNCEParsed {
  temperature: number;
  positives: Uint32Array | null;
  logQ: Float32Array | null;
  normalize: boolean;
  keyIds: Uint32Array | null;
  /** 0 f32, 1 bf16. */
  precision: number;
  scratchBytes: number;
}

/** Snapshots of infoNCE's arguments: each field read once (validate.snap). */
export function snapInfoNCE<Q, K, O>(fn: string, q: Q, keys: K, options: O): [Q, K, O] {
  return [
    v.snap(fn, 'q', q),
    v.snap(fn, 'keys', keys),
    v.snapOpts(fn, options, ['temperature', 'positives', 'logQ', 'normalize', 'keyIds', 'precision', 'scratchBytes']),
  ];
}

/** Snapshots of ntXent's arguments: each field read once (validate.snap). */
export function snapNtXent<A, O>(fn: string, a: A, b: A, options: O): [A, A, O] {
  return [v.snap(fn, 'a', a), v.snap(fn, 'b', b), v.snapOpts(fn, options, ['temperature', 'precision', 'scratchBytes'])];
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
  v.PRECISION.type(fn, o.precision);
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
  const precision = v.PRECISION.code(fn, o.precision);
  return {
    temperature: o.temperature,
    positives: o.positives ?? null,
    logQ: o.logQ ?? null,
    normalize: o.normalize === true,
    keyIds: o.keyIds ?? null,
    precision,
    scratchBytes: scratchValue(fn, o.scratchBytes),
  };
}

/**
 * Whether float32 logits q·k/τ − logQ could lose what the float64 reference keeps, by the rule
 * of the native code (`float32_logits_unsafe`): 1/τ past the float32 range; max|q|·max|k|·d,
 * or that over τ plus max|logQ|, at 1e36 or more; max|q|·max|k| below 2^-100 (products out of
 * the normal range); max|logQ| above 64. Such calls are kept off the GPU, and the native CPU
 * code computes them in float64.
 */
export function logitsMayOverflow(q: Matrix, keys: Matrix, p: InfoNCEParsed): boolean {
  const maxAbs = (x: Float32Array): number => {
    let m = 0;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
    return m;
  };
  const prod = maxAbs(q.data) * maxAbs(keys.data);
  const raw = prod * q.cols;
  const lq = p.logQ ? maxAbs(p.logQ) : 0;
  const bound = raw / p.temperature + lq;
  return !Number.isFinite(Math.fround(1 / p.temperature)) || !(bound < 1e36 && raw < 1e36) || (prod > 0 && prod < 2 ** -100) || !(lq <= 64);
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
  v.PRECISION.type(fn, (options as NtXentOptions).precision);
  checkScratchType(fn, (options as NtXentOptions).scratchBytes);
  v.matShape(fn, 'a', a);
  v.matShape(fn, 'b', b);
  v.sameShape(fn, 'a', a, 'b', b);
  checkTemperature(fn, t);
  v.PRECISION.code(fn, (options as NtXentOptions).precision);
  scratchValue(fn, (options as NtXentOptions).scratchBytes);
  return t;
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
