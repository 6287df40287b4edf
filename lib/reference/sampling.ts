/**
 * Reference implementation of the negative-sampling tools: Walker's alias sampler on the
 * documented SplitMix64 stream, unigram weights and the binary negative-sampling (word2vec) /
 * NCE loss. Float64 throughout; the native backend builds the same alias table and draws the
 * same indices for a seed.
 */
import { fail } from '../errors';
import type { Matrix } from '../matrix';
import * as v from '../validate';
import { checkSeed, SplitMix64 } from './statistics';

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

/** Builds Walker's alias table (Vose's stable variant, fixed order; identical in Rust). */
export function buildAlias(weights: Float64Array): AliasTable {
  const fn = 'AliasSampler';
  scanWeights(fn, 'weights', weights);
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i];
  if (total === 0) fail('E_ARG', `${fn}: weights are all zero (at least one must be positive)`);
  if (!Number.isFinite(total)) fail('E_ARG', `${fn}: the sum of weights overflows (got ${total})`);
  const K = weights.length;
  const probabilities = new Float64Array(K);
  const q = new Float64Array(K);
  for (let i = 0; i < K; i++) {
    probabilities[i] = weights[i] / total;
    q[i] = probabilities[i] * K;
  }
  const prob = new Float64Array(K);
  const alias = new Uint32Array(K);
  const small: number[] = [];
  const large: number[] = [];
  for (let i = 0; i < K; i++) (q[i] < 1 ? small : large).push(i);
  while (small.length > 0 && large.length > 0) {
    const s = small.pop() as number;
    const l = large.pop() as number;
    prob[s] = q[s];
    alias[s] = l;
    q[l] = q[l] + q[s] - 1;
    (q[l] < 1 ? small : large).push(l);
  }
  for (const i of large.concat(small)) {
    prob[i] = 1;
    alias[i] = i;
  }
  return { prob, alias, probabilities };
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

/** log p(i) of each index (E_TYPE unless a Uint32Array, E_ARG when out of range). */
export function aliasLogProb(probabilities: Float64Array, indices: unknown): Float32Array {
  const fn = 'AliasSampler.logProb';
  aliasLogProbCheck(indices);
  const K = probabilities.length;
  const out = new Float32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    if (indices[i] >= K) fail('E_ARG', `${fn}: indices[${i}] = ${indices[i]} is out of range [0, ${K})`);
    out[i] = Math.log(probabilities[indices[i]]);
  }
  return out;
}

/**
 * Walker's alias sampler over K categories with probabilities weights / Σ weights (non-negative,
 * finite, at least one positive). Draws come from the documented SplitMix64 stream of `seed`
 * (two outputs per draw: u picks column ⌊u·K⌋, u' accepts it when u' < prob, else its alias),
 * continuing across calls; the same seed gives the same indices on every backend. O(1) per
 * draw after an O(K) build.
 */
export class AliasSampler {
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

  /** Builds the table (overridden by the native backend). */
  protected build(w: Float64Array): AliasTable {
    return buildAlias(w);
  }

  /** The next `n` draws (Uint32Array of category indices). */
  sample(n: number): Uint32Array {
    checkCount('AliasSampler.sample', n);
    const out = this.draw(n);
    this.draws += 2 * n;
    return out;
  }

  /** `n` draws from the current stream position (overridden by the native backend). */
  protected draw(n: number): Uint32Array {
    const rng = new SplitMix64(this.seed);
    rng.jump(this.draws);
    const K = this.prob.length;
    const out = new Uint32Array(n);
    for (let t = 0; t < n; t++) {
      const i = Math.min(Math.floor(rng.uniform() * K), K - 1);
      out[t] = rng.uniform() < this.prob[i] ? i : this.alias[i];
    }
    return out;
  }

  /** log p(i) of each index, as a Float32Array (for InfoNCE's `logQ`); −∞ for a zero weight. */
  logProb(indices: Uint32Array): Float32Array {
    return aliasLogProb(this.probabilities, indices);
  }
}

/** Checks unigramWeights' power: a number (E_TYPE), finite and ≥ 0 (E_ARG). */
export function checkPower(fn: string, power: unknown): asserts power is number {
  v.num(fn, 'power', power);
  if (!(power >= 0) || !Number.isFinite(power)) fail('E_ARG', `${fn}: power must be >= 0 and finite, got ${power}`);
}

/**
 * word2vec's noise weights counts^power (default power 0.75), unnormalized, as a Float64Array
 * (feed it to {@link AliasSampler}). Counts are non-negative and finite.
 */
export function unigramWeights(counts: WeightsLike, power = 0.75): Float64Array {
  const fn = 'unigramWeights';
  const c = toWeights(fn, 'counts', counts, false);
  v.num(fn, 'power', power);
  nonEmpty(fn, 'counts', c);
  checkPower(fn, power);
  scanWeights(fn, 'counts', c);
  const out = new Float64Array(c.length);
  for (let i = 0; i < c.length; i++) out[i] = Math.pow(c[i], power);
  return out;
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

/** log(1 + e^t) without overflow. */
export function softplus(t: number): number {
  return Math.max(t, 0) + Math.log1p(Math.exp(-Math.abs(t)));
}

/** σ(t) without overflow. */
export function sigmoid(t: number): number {
  if (t >= 0) return 1 / (1 + Math.exp(-t));
  const e = Math.exp(t);
  return e / (1 + e);
}

/**
 * Binary negative-sampling loss. x and positives are n × d, negatives (n·k) × d with k
 * consecutive rows per anchor. Without logQ (word2vec):
 * loss = mean_i [−log σ(x_i·y⁺_i) − Σ_r log σ(−x_i·y⁻_ir)]; with logQ (NCE), each score s
 * becomes s − log(k·Q) (Q from logQ, positives first). log σ is evaluated via softplus, so the
 * loss stays finite for any |s|. Returns `{ loss, gradX, gradPositives, gradNegatives }`.
 */
export function negativeSamplingLoss(x: Matrix, positives: Matrix, negatives: Matrix, options?: NegativeSamplingOptions): NegativeSamplingResult {
  const fn = 'negativeSamplingLoss';
  const p = checkNegativeSampling(fn, x, positives, negatives, options);
  v.finite(fn, 'x', x.data);
  v.finite(fn, 'positives', positives.data);
  v.finite(fn, 'negatives', negatives.data);
  if (p.logQ) v.finite(fn, 'logQ', p.logQ);
  const n = x.rows;
  const d = x.cols;
  const k = p.k;
  const lnk = Math.log(k);
  const shift = (idx: number): number => (p.logQ ? lnk + p.logQ[idx] : 0);
  const gx = new Float64Array(n * d);
  const gp = new Float64Array(n * d);
  const gn = new Float64Array(n * k * d);
  const dot = (a: Float32Array, ai: number, b: Float32Array, bi: number): number => {
    let s = 0;
    for (let t = 0; t < d; t++) s += a[ai * d + t] * b[bi * d + t];
    return s;
  };
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const o = dot(x.data, i, positives.data, i) - shift(i);
    loss += softplus(-o);
    const c = -sigmoid(-o) / n;
    for (let t = 0; t < d; t++) {
      gx[i * d + t] += c * positives.data[i * d + t];
      gp[i * d + t] += c * x.data[i * d + t];
    }
    for (let r = 0; r < k; r++) {
      const j = i * k + r;
      const on = dot(x.data, i, negatives.data, j) - shift(n + j);
      loss += softplus(on);
      const cn = sigmoid(on) / n;
      for (let t = 0; t < d; t++) {
        gx[i * d + t] += cn * negatives.data[j * d + t];
        gn[j * d + t] += cn * x.data[i * d + t];
      }
    }
  }
  return {
    loss: loss / n,
    gradX: { data: Float32Array.from(gx), rows: n, cols: d },
    gradPositives: { data: Float32Array.from(gp), rows: n, cols: d },
    gradNegatives: { data: Float32Array.from(gn), rows: n * k, cols: d },
  };
}
