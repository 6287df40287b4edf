/**
 * Reference implementation of the negative-sampling tools: Walker's alias sampler on the
 * documented SplitMix64 stream, unigram weights and the binary negative-sampling (word2vec) /
 * NCE loss. Float64 throughout; the native backend builds the same alias table and draws the
 * same indices for a seed.
 */
import {
  AliasSamplerBase,
  aliasLogProbCheck,
  type AliasTable,
  checkNegativeSampling,
  checkPower,
  type NegativeSamplingOptions,
  type NegativeSamplingResult,
  nonEmpty,
  scanWeights,
  toWeights,
  type WeightsLike,
} from '../contract/sampling';
import * as v from '../contract/validate';
import { fail } from '../errors';
import type { Matrix } from '../matrix';
import { SplitMix64 } from './statistics';
import { alloc } from '../contract/alloc';

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
 * `n` draws from an alias table (acceptance `prob`, `alias`) on the SplitMix64 stream of `seed`
 * after its first `draws` outputs (two outputs per draw).
 */
export function aliasDraw(prob: Float64Array, alias: Uint32Array, seed: number, draws: number, n: number): Uint32Array {
  const rng = new SplitMix64(seed);
  rng.jump(draws);
  const K = prob.length;
  const out = alloc(Uint32Array, n, 'AliasSampler.sample', 'the draws', 'draw fewer at a time');
  for (let t = 0; t < n; t++) {
    const i = Math.min(Math.floor(rng.uniform() * K), K - 1);
    out[t] = rng.uniform() < prob[i] ? i : alias[i];
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
export class AliasSampler extends AliasSamplerBase {
  /** Builds the table (overridden by the native backend). */
  protected build(w: Float64Array): AliasTable {
    return buildAlias(w);
  }

  /** `n` draws from the current stream position (overridden by the native backend). */
  protected draw(n: number): Uint32Array {
    return aliasDraw(this.prob, this.alias, this.seed, this.draws, n);
  }

  /** log p(i) of each index, as a Float32Array (for InfoNCE's `logQ`); −∞ for a zero weight. */
  logProb(indices: Uint32Array): Float32Array {
    return aliasLogProb(this.probabilities, indices);
  }
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
  for (let i = 0; i < c.length; i++) out[i] = c[i] ** power;
  return out;
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
