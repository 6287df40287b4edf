/**
 * Sampling contract: option and result types, weights and argument checks, and the alias
 * sampler's state (the backends build its table and draw).
 */
import { fail } from '../errors';
import type { Matrix } from '../matrix';
import { checkSeed } from './statistics';
import * as v from './validate';

/** Weights or counts: a Float64Array, Float32Array, Uint32Array or number[]. */
export type WeightsLike = Float64Array | Float32Array | Uint32Array | readonly number[];

/** Options of {@link negativeSamplingLoss}. */
export interface NegativeSamplingOptions {
  /** Negatives per anchor (integer ≥ 1); default negatives.rows / x.rows (must divide). */
  k?: number;
  /**
   * log Q of each scored row, positives first (length n + n·k): turns the loss into NCE with
   * scores s − log(k·Q).
   */
  logQ?: Float32Array;
}

/** Result of {@link negativeSamplingLoss}: the mean loss over anchors and its gradients. */
export interface NegativeSamplingResult {
  loss: number;
  gradX: Matrix;
  gradPositives: Matrix;
  gradNegatives: Matrix;
}

/** Alias table of a sampler. */
export interface AliasTable {
  prob: Float64Array;
  alias: Uint32Array;
  probabilities: Float64Array;
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'Array';
  if (typeof x === 'object') return (x as object).constructor?.name ?? 'object';
  return typeof x;
}

/**
 * Copies weights/counts to a Float64Array (E_TYPE for anything else; E_SHAPE when empty, unless
 * `checkEmpty` is false and the caller checks it after its other type checks).
 */
export function toWeights(fn: string, name: string, w: unknown, checkEmpty = true): Float64Array {
  let out: Float64Array;
  if (w instanceof Float64Array || w instanceof Float32Array || w instanceof Uint32Array) out = Float64Array.from(w);
  else if (Array.isArray(w)) {
    for (let i = 0; i < w.length; i++) {
      if (typeof w[i] !== 'number') fail('E_TYPE', `${fn}: ${name}[${i}] must be a number, got ${describe(w[i])}`);
    }
    out = Float64Array.from(w as number[]);
  } else fail('E_TYPE', `${fn}: ${name} must be a Float64Array, Float32Array, Uint32Array or number[], got ${describe(w)}`);
  if (checkEmpty) nonEmpty(fn, name, out);
  return out;
}

/** E_SHAPE when empty. */
export function nonEmpty(fn: string, name: string, w: Float64Array): void {
  if (w.length === 0) fail('E_SHAPE', `${fn}: ${name} is empty`);
}

/** Value checks of weights: none negative (E_ARG), all finite (E_NON_FINITE). */
export function scanWeights(fn: string, name: string, w: Float64Array): void {
  for (let i = 0; i < w.length; i++) if (w[i] < 0) fail('E_ARG', `${fn}: ${name}[${i}] = ${w[i]} is negative`);
  v.finite(fn, name, w);
}

/** Checks a draw count n: an integer (E_TYPE) ≥ 0 (E_ARG). */
export function checkCount(fn: string, n: unknown): asserts n is number {
  v.int(fn, 'n', n);
  if (n < 0) fail('E_ARG', `${fn}: n must be >= 0, got ${n}`);
}

/** Type of logProb's indices (E_TYPE unless a Uint32Array). */
export function aliasLogProbCheck(indices: unknown): asserts indices is Uint32Array {
  v.u32('AliasSampler.logProb', 'indices', indices);
}

/** Checks unigramWeights' power: a number (E_TYPE), finite and ≥ 0 (E_ARG). */
export function checkPower(fn: string, power: unknown): asserts power is number {
  v.num(fn, 'power', power);
  if (!(power >= 0) || !Number.isFinite(power)) fail('E_ARG', `${fn}: power must be >= 0 and finite, got ${power}`);
}

/** Parsed negativeSamplingLoss options. */
export interface NegativeSamplingParsed {
  k: number;
  logQ: Float32Array | null;
}

/** Types, shapes and values of negativeSamplingLoss (k checked and inferred). */
export function checkNegativeSampling(fn: string, x: unknown, positives: unknown, negatives: unknown, options: unknown): NegativeSamplingParsed {
  v.matType(fn, 'x', x);
  v.matType(fn, 'positives', positives);
  v.matType(fn, 'negatives', negatives);
  const o = v.opts(fn, options as NegativeSamplingOptions | undefined);
  if (o.k !== undefined) v.int(fn, 'k', o.k);
  if (o.logQ !== undefined) v.vecType(fn, 'logQ', o.logQ);
  v.matShape(fn, 'x', x);
  v.matShape(fn, 'positives', positives);
  v.matShape(fn, 'negatives', negatives);
  v.sameShape(fn, 'x', x, 'positives', positives);
  v.sameCols(fn, 'x', x, 'negatives', negatives);
  const n = x.rows;
  let k: number;
  if (o.k !== undefined) {
    k = o.k;
    if (k >= 1 && negatives.rows !== n * k) fail('E_SHAPE', `${fn}: negatives has ${negatives.rows} rows but x has ${n} rows and k = ${k} (needs n·k)`);
  } else {
    if (negatives.rows % n !== 0) fail('E_SHAPE', `${fn}: negatives has ${negatives.rows} rows, not a multiple of x's ${n} rows`);
    k = negatives.rows / n;
  }
  if (o.logQ !== undefined && o.logQ.length !== n + negatives.rows) {
    fail('E_SHAPE', `${fn}: logQ has length ${o.logQ.length} but there are n + n·k = ${n + negatives.rows} scored rows`);
  }
  if (k < 1) fail('E_ARG', `${fn}: k must be >= 1, got ${k}`);
  return { k, logQ: o.logQ ?? null };
}

/**
 * The state and argument handling of Walker's alias sampler that both backends share (the
 * backends build the table, draw and score). Walker's alias sampler over K categories with probabilities weights / Σ weights (non-negative,
 * finite, at least one positive). Draws come from the documented SplitMix64 stream of `seed`
 * (two outputs per draw: u picks column ⌊u·K⌋, u' accepts it when u' < prob, else its alias),
 * continuing across calls; the same seed gives the same indices on every backend. O(1) per
 * draw after an O(K) build.
 */
export abstract class AliasSamplerBase {
  /** The normalized target distribution (Float64Array of length K). */
  readonly probabilities: Float64Array;
  /** The seed of the stream. */
  readonly seed: number;
  /** Acceptance probability of each column. */
  protected readonly prob: Float64Array;
  /** The other category of each column. */
  protected readonly alias: Uint32Array;
  /** Stream outputs used so far (two per draw). */
  protected draws = 0;

  constructor(weights: WeightsLike, seed: number) {
    const w = toWeights('AliasSampler', 'weights', weights);
    checkSeed('AliasSampler', 'seed', seed);
    const t = this.build(w);
    this.prob = t.prob;
    this.alias = t.alias;
    this.probabilities = t.probabilities;
    this.seed = seed;
  }

  /** The next `n` draws (Uint32Array of category indices). */
  sample(n: number): Uint32Array {
    checkCount('AliasSampler.sample', n);
    const out = this.draw(n);
    this.draws += 2 * n;
    return out;
  }

  /** Builds the table of normalized weights `w` (each backend's own). */
  protected abstract build(w: Float64Array): AliasTable;

  /** `n` draws from the current stream position (each backend's own). */
  protected abstract draw(n: number): Uint32Array;

  /** log p(i) of each index, as a Float32Array (for InfoNCE's `logQ`); −∞ for a zero weight. */
  abstract logProb(indices: Uint32Array): Float32Array;
}
