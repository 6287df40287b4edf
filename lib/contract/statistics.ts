/**
 * Chapter 2 (statistics) contract: option and result types and the argument checks.
 */
import { fail } from '../errors';
import * as v from './validate';

/** Checks a seed: an integer (E_TYPE) in [0, 2^53) (E_ARG). */
export function checkSeed(fn: string, name: string, seed: unknown): asserts seed is number {
  v.int(fn, name, seed);
  if (seed < 0 || seed > Number.MAX_SAFE_INTEGER) fail('E_ARG', `${fn}: ${name} must be in [0, 2^53), got ${seed}`);
}

/** Largest number of values randomUnitVectors produces (n·d). */
export const MAX_RANDOM_VALUES = 2 ** 30;

/** Validates the arguments of randomUnitVectors. */
export function checkRandomUnitVectors(n: unknown, d: unknown, seed: unknown): asserts n is number {
  const fn = 'randomUnitVectors';
  v.int(fn, 'n', n);
  v.int(fn, 'd', d);
  v.int(fn, 'seed', seed);
  if (n < 1) fail('E_ARG', `${fn}: n must be >= 1, got ${n}`);
  if ((d as number) < 1) fail('E_ARG', `${fn}: d must be >= 1, got ${d}`);
  if (n * (d as number) > MAX_RANDOM_VALUES) {
    fail('E_ARG', `${fn}: n * d = ${n} * ${d} exceeds the limit of ${MAX_RANDOM_VALUES} values`);
  }
  checkSeed(fn, 'seed', seed);
}

// ---------------------------------------------------------------------------------------------
// Null distribution of the cosine between independent uniform unit vectors.
// ---------------------------------------------------------------------------------------------

/** `{ mean, variance, std }` of {@link nullCosine}. */
export interface NullCosine {
  /** 0: the distribution is symmetric. */
  mean: number;
  /** 1/d. */
  variance: number;
  /** 1/√d. */
  std: number;
}

/** Checks a dimension of the null distribution: integer (E_TYPE) ≥ 2 (E_ARG). */
export function checkDim(fn: string, d: unknown): asserts d is number {
  v.int(fn, 'd', d);
  if (d < 2) fail('E_ARG', `${fn}: d must be >= 2, got ${d}`);
}

/** Tail of {@link cosinePValue}. */
export type Tail = 'greater' | 'two-sided';

/** Options of {@link cosinePValue}. */
export interface PValueOptions {
  /** 'greater' (default): P(cos ≥ s); 'two-sided': P(|cos| ≥ |s|). */
  tail?: Tail;
}

/** Validates (s, d, options) of cosinePValue; returns true for the two-sided tail. */
export function checkPValue(s: unknown, d: unknown, options: PValueOptions | undefined): boolean {
  const fn = 'cosinePValue';
  v.num(fn, 's', s);
  v.int(fn, 'd', d);
  const o = v.opts(fn, v.snapOpts(fn, options, ['tail']));
  const tail = o.tail;
  if (tail !== undefined && typeof tail !== 'string') fail('E_TYPE', `${fn}: tail must be a string, got ${v.describe(tail)}`);
  if (d < 2) fail('E_ARG', `${fn}: d must be >= 2, got ${d}`);
  if (d > Number.MAX_SAFE_INTEGER) fail('E_ARG', `${fn}: d must be < 2^53, got ${d}`);
  if (Math.abs(s) > 1) fail('E_ARG', `${fn}: s must be in [-1, 1], got ${s}`);
  if (tail !== undefined && tail !== 'greater' && tail !== 'two-sided') {
    fail('E_ARG', `${fn}: unknown tail '${tail}' (expected 'greater' or 'two-sided')`);
  }
  if (Number.isNaN(s)) fail('E_NON_FINITE', `${fn}: s is NaN`);
  return tail === 'two-sided';
}

// ---------------------------------------------------------------------------------------------
// Pairwise cosine statistics.
// ---------------------------------------------------------------------------------------------

/** Options of {@link similarityStats}. */
export interface SimilarityStatsOptions {
  /** Estimate from `pairs` random pairs (i ≠ j) drawn with the documented PRNG from `seed`. */
  sample?: { pairs: number; seed: number };
}

/** Result of {@link similarityStats}. */
export interface SimilarityStats {
  /** Mean cosine over the pairs. */
  mean: number;
  /** Population variance of the cosines over the pairs. */
  variance: number;
  /** 1/d, the variance of the cosine between independent uniform unit vectors. */
  nullVariance: number;
  /** mean / √(nullVariance / pairs). */
  zScore: number;
  /** Number of pairs: n(n−1)/2, or the sample size. */
  pairs: number;
}

/** Largest sample size accepted by similarityStats. */
export const MAX_SAMPLE_PAIRS = 2 ** 32;

/** Validates similarityStats (on snapshots, see validate.snap); returns the sample (null for the exact statistics). */
export function checkSimilarityStats(m: unknown, options: SimilarityStatsOptions | undefined): { pairs: number; seed: number } | null {
  const fn = 'similarityStats';
  v.matType(fn, 'm', m);
  const o = v.opts(fn, options);
  const s = o.sample;
  if (s !== undefined && (typeof s !== 'object' || s === null)) fail('E_TYPE', `${fn}: sample must be an object { pairs, seed }, got ${v.describe(s)}`);
  let pairs = 0;
  let seed = 0;
  if (s) {
    const ss = v.snapOpts(fn, s, ['pairs', 'seed']);
    pairs = ss.pairs;
    seed = ss.seed;
    v.int(fn, 'sample.pairs', pairs);
    v.int(fn, 'sample.seed', seed);
  }
  v.matShape(fn, 'm', m, 2);
  if (s) {
    if (pairs < 1 || pairs > MAX_SAMPLE_PAIRS) fail('E_ARG', `${fn}: sample.pairs must be in [1, 2^32], got ${pairs}`);
    checkSeed(fn, 'sample.seed', seed);
  }
  v.finite(fn, 'm', m.data);
  return s ? { pairs, seed } : null;
}
