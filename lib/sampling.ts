/**
 * Negative sampling: Walker's alias sampler on the documented SplitMix64 stream (same draws for
 * a seed on every backend), word2vec's unigram weights, and the binary negative-sampling /
 * NCE loss with its gradients.
 */
import { nat, rethrow } from './backend';
import { SYNC, now } from './cuda';
import type { Matrix } from './matrix';
import { snap } from './contract/validate';
import * as contract from './contract/sampling';
import * as ref from './reference/sampling';
import type { AliasTable, NegativeSamplingOptions, NegativeSamplingResult, WeightsLike } from './contract/sampling';

/**
 * Walker's alias sampler over K categories with probabilities weights / Σ weights (weights
 * non-negative and finite, at least one positive: E_ARG / E_NON_FINITE otherwise). `sample(n)`
 * returns the next n indices of the documented SplitMix64 stream of `seed` (identical on every
 * backend), `logProb(indices)` their log-probabilities (InfoNCE's `logQ`), `probabilities` the
 * normalized distribution.
 *
 * @example
 * const sampler = new AliasSampler(unigramWeights(counts), 42);
 * const negatives = sampler.sample(1024);
 * const logQ = sampler.logProb(negatives);
 */
export class AliasSampler extends contract.AliasSamplerBase {
  protected override build(w: Float64Array): AliasTable {
    const n = nat();
    if (n === null) return ref.buildAlias(w);
    try {
      return n.aliasBuild(w);
    } catch (e) {
      rethrow(e);
    }
  }

  protected override draw(count: number): Uint32Array {
    const n = nat();
    if (n === null) return ref.aliasDraw(this.prob, this.alias, this.seed, this.draws, count);
    try {
      return n.aliasSample({ prob: this.prob, alias: this.alias, probabilities: this.probabilities, seed: this.seed, draws: this.draws, n: count });
    } catch (e) {
      rethrow(e);
    }
  }

  override logProb(indices: Uint32Array): Float32Array {
    const n = nat();
    if (n === null) return ref.aliasLogProb(this.probabilities, indices);
    contract.aliasLogProbCheck(indices);
    try {
      return n.aliasLogProb({ probabilities: this.probabilities, indices });
    } catch (e) {
      rethrow(e);
    }
  }
}

/**
 * word2vec's noise weights counts^power (default 0.75), unnormalized (Float64Array): feed them
 * to {@link AliasSampler}. Counts are non-negative and finite; power ≥ 0.
 */
export function unigramWeights(counts: WeightsLike, power = 0.75): Float64Array {
  const n = nat();
  if (n === null) return ref.unigramWeights(counts, power);
  // Types first (counts, then power), then the empty check, as the reference.
  const c = contract.toWeights('unigramWeights', 'counts', counts, false);
  if (typeof power !== 'number') contract.checkPower('unigramWeights', power);
  contract.nonEmpty('unigramWeights', 'counts', c);
  contract.checkPower('unigramWeights', power);
  try {
    return n.unigramWeights({ counts: c, power });
  } catch (e) {
    rethrow(e);
  }
}

/**
 * Binary negative-sampling loss (word2vec) or, with `logQ`, NCE. x and positives are n × d,
 * negatives (n·k) × d with k consecutive rows per anchor (k inferred from the row counts when
 * omitted). loss = mean_i [−log σ(o⁺_i) − Σ_r log σ(−o⁻_ir)] with o = x·y, or o = x·y − log(k·Q)
 * with logQ (length n + n·k, positives first). Stable for any |o| (softplus). Returns
 * `{ loss, gradX, gradPositives, gradNegatives }`.
 *
 * @example
 * const { loss, gradX } = negativeSamplingLoss(x, contexts, noise, { k: 5 });
 */
export function negativeSamplingLoss(x: Matrix, positives: Matrix, negatives: Matrix, options?: NegativeSamplingOptions): NegativeSamplingResult {
  const fn = 'negativeSamplingLoss';
  x = snap(fn, 'x', x);
  positives = snap(fn, 'positives', positives);
  negatives = snap(fn, 'negatives', negatives);
  const n = nat();
  if (n === null) return ref.negativeSamplingLoss(x, positives, negatives, options);
  const p = contract.checkNegativeSampling('negativeSamplingLoss', x, positives, negatives, options);
  try {
    const r = now(n.negativeSamplingLoss({ x, positives: positives.data, negatives, k: p.k, logQ: p.logQ ?? undefined }, SYNC));
    return {
      loss: r.loss,
      gradX: { data: r.gradX, rows: x.rows, cols: x.cols },
      gradPositives: { data: r.gradPositives, rows: x.rows, cols: x.cols },
      gradNegatives: { data: r.gradNegatives, rows: negatives.rows, cols: x.cols },
    };
  } catch (e) {
    rethrow(e);
  }
}
