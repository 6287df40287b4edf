/**
 * Chapter 2 — statistics of high-dimensional embeddings: seeded random unit vectors (the
 * documented PRNG, identical on every backend), the null distribution of the cosine between
 * independent uniform unit vectors and its exact p-value, and summary statistics of all
 * pairwise cosines of a set of embeddings against that null.
 */
import { nat, rethrow } from './backend';
import { ASYNC, SYNC, now, soon } from './cuda';
import { fromNative } from './errors';
import { refAsync } from './refasync';
import { snap, snapOpts } from './contract/validate';
import type { Matrix } from './matrix';
import * as contract from './contract/statistics';
import * as ref from './reference/statistics';
import type { NullCosine, PValueOptions, SimilarityStats, SimilarityStatsOptions } from './contract/statistics';

/**
 * n × d Matrix of rows drawn uniformly from the unit sphere S^{d−1}, from the documented
 * PRNG (SplitMix64 → Box–Muller, see docs/statistics.md): the same seed gives the same
 * vectors on every backend and thread count. n, d integers ≥ 1; seed an integer in [0, 2^53).
 */
export function randomUnitVectors(n: number, d: number, seed: number): Matrix {
  const b = nat();
  if (b === null) return ref.randomUnitVectors(n, d, seed);
  contract.checkRandomUnitVectors(n, d, seed);
  try {
    return { data: now(b.randomUnitVectors({ n, d, seed }, SYNC)), rows: n, cols: d };
  } catch (e) {
    rethrow(e);
  }
}

/**
 * Null distribution of cos(x, y) for independent x, y uniform on S^{d−1}:
 * `{ mean: 0, variance: 1/d, std: 1/√d }`. d an integer ≥ 2.
 */
export function nullCosine(d: number): NullCosine {
  return ref.nullCosine(d);
}

/**
 * Exact p-value of the cosine `s` between two independent uniform unit vectors in dimension
 * d, from (1 + cos)/2 ~ Beta((d−1)/2, (d−1)/2): P(cos ≥ s) (`tail: 'greater'`, default) or
 * P(|cos| ≥ |s|) (`'two-sided'`). Integer d in [2, 2^53) and |s| ≤ 1, else E_ARG; NaN → E_NON_FINITE.
 * For d ≥ 1e5 an asymptotic form is used (bounded work; tends to the normal tail Q(s√d)).
 */
export function cosinePValue(s: number, d: number, options?: PValueOptions): number {
  const b = nat();
  if (b === null) return ref.cosinePValue(s, d, options);
  const two = contract.checkPValue(s, d, options);
  try {
    return b.cosinePValue({ s, d, tail: two ? 'two-sided' : 'greater' });
  } catch (e) {
    rethrow(e);
  }
}

/**
 * Mean and population variance of the cosine over all pairs of rows i < j of `m`, with
 * nullVariance = 1/d and zScore = mean / √(nullVariance / pairs), the z-score of the mean
 * against independent uniform directions. `sample: { pairs, seed }` estimates the same from
 * that many random pairs (i ≠ j, with replacement). n < 2 → E_SHAPE; NaN/±∞ → E_NON_FINITE.
 */
export function similarityStats(m: Matrix, options?: SimilarityStatsOptions): SimilarityStats {
  m = snap('similarityStats', 'm', m);
  options = snapOpts('similarityStats', options, ['sample']);
  const b = nat();
  if (b === null) return ref.similarityStats(m, options);
  const s = contract.checkSimilarityStats(m, options);
  try {
    return now(b.similarityStats({ m, samplePairs: s?.pairs, sampleSeed: s?.seed }, SYNC));
  } catch (e) {
    rethrow(e);
  }
}

/**
 * Async twin of {@link similarityStats}: runs off the event loop (native: the libuv pool;
 * reference backend: a worker thread); the input is read and copied when the call is made.
 */
export function similarityStatsAsync(m: Matrix, options?: SimilarityStatsOptions): Promise<SimilarityStats> {
  try {
    m = snap('similarityStatsAsync', 'm', m);
    options = snapOpts('similarityStatsAsync', options, ['sample']);
    const s = contract.checkSimilarityStats(m, options);
    const b = nat();
    if (b === null) return refAsync<SimilarityStats>('similarityStats', [m, s ? { sample: s } : undefined]);
    return soon(b.similarityStats({ m, samplePairs: s?.pairs, sampleSeed: s?.seed }, ASYNC)).then((r) => r, rethrow);
  } catch (e) {
    return Promise.reject(fromNative(e));
  }
}
