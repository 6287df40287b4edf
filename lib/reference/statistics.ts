/**
 * Reference implementation of chapter 2 (statistics of high-dimensional embeddings): the
 * documented PRNG, random unit vectors, the null distribution of the cosine between two
 * independent uniform unit vectors, its exact p-value, and summary statistics of all pairwise
 * cosines of a set of embeddings. Accumulates in float64.
 */
import { alloc } from '../contract/alloc';
import {
  checkDim,
  checkPValue,
  checkRandomUnitVectors,
  checkSimilarityStats,
  type NullCosine,
  type PValueOptions,
  type SimilarityStats,
  type SimilarityStatsOptions,
} from '../contract/statistics';
import * as v from '../contract/validate';
import type { Matrix } from '../matrix';

// ---------------------------------------------------------------------------------------------
// PRNG: SplitMix64, uniforms in (0, 1), Box–Muller normals (identical in the native backend).
// ---------------------------------------------------------------------------------------------

/** 2^32. */
const TWO32 = 4294967296;
/** SplitMix64's increment γ = 0x9E3779B97F4A7C15, as 32-bit halves. */
const GAMMA_HI = 0x9e3779b9;
const GAMMA_LO = 0x7f4a7c15;

/** Low 32 bits of the 64-bit product of two uint32 values, and the high 32 bits. */
function mul32x32(a: number, b: number): [number, number] {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const p11 = a1 * b1;
  // (p11 << 32) + ((p01 + p10) << 16) + p00, split into halves without losing bits.
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const lo = ((mid & 0xffff) << 16) | (p00 & 0xffff);
  const hi = p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  return [lo >>> 0, hi >>> 0];
}

/** (hi, lo) · (mhi, mlo) mod 2^64. */
function mul64(hi: number, lo: number, mhi: number, mlo: number): [number, number] {
  const [l, h] = mul32x32(lo, mlo);
  const cross = (Math.imul(hi, mlo) + Math.imul(lo, mhi)) >>> 0;
  return [(h + cross) >>> 0, l];
}

/**
 * SplitMix64 with the state kept as two uint32 halves (exact 64-bit arithmetic without
 * BigInt). `state` after k draws is seed + k·γ (mod 2^64), which {@link SplitMix64.jump} uses.
 */
export class SplitMix64 {
  private hi: number;
  private lo: number;
  /** `seed`: an integer in [0, 2^53). */
  constructor(seed: number) {
    this.hi = Math.floor(seed / TWO32) >>> 0;
    this.lo = seed >>> 0;
  }
  /** Advances the state by k draws (k a non-negative integer below 2^53) in O(1). */
  jump(k: number): void {
    // state += k·γ with k = khi·2^32 + klo.
    const khi = Math.floor(k / TWO32) >>> 0;
    const klo = k >>> 0;
    const [phi, plo] = mul64(khi, klo, GAMMA_HI, GAMMA_LO);
    this.add(phi, plo);
  }
  private add(hi: number, lo: number): void {
    const l = this.lo + lo;
    this.lo = l >>> 0;
    this.hi = (this.hi + hi + (l >= TWO32 ? 1 : 0)) >>> 0;
  }
  /** Next output as [hi, lo] uint32 halves. */
  nextHalves(): [number, number] {
    this.add(GAMMA_HI, GAMMA_LO);
    let hi = this.hi;
    let lo = this.lo;
    // z ^= z >> 30; z *= 0xBF58476D1CE4E5B9
    lo = (lo ^ ((lo >>> 30) | (hi << 2))) >>> 0;
    hi = (hi ^ (hi >>> 30)) >>> 0;
    [hi, lo] = mul64(hi, lo, 0xbf58476d, 0x1ce4e5b9);
    // z ^= z >> 27; z *= 0x94D049BB133111EB
    lo = (lo ^ ((lo >>> 27) | (hi << 5))) >>> 0;
    hi = (hi ^ (hi >>> 27)) >>> 0;
    [hi, lo] = mul64(hi, lo, 0x94d049bb, 0x133111eb);
    // z ^= z >> 31
    lo = (lo ^ ((lo >>> 31) | (hi << 1))) >>> 0;
    hi = (hi ^ (hi >>> 31)) >>> 0;
    return [hi, lo];
  }
  /** Next output as a BigInt (for tests and diagnostics). */
  nextU64(): bigint {
    const [hi, lo] = this.nextHalves();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  /** Uniform double in (0, 1): ((z >> 11) + 0.5) / 2^53; never 0, never 1. */
  uniform(): number {
    const [hi, lo] = this.nextHalves();
    // z >> 11 = hi·2^21 + (lo >>> 11) < 2^53, exact in a double.
    return (hi * 2097152 + (lo >>> 11) + 0.5) / 9007199254740992;
  }
}

/**
 * Writes `count` standard normals into `out[off…]` from `rng`: Box–Muller on consecutive
 * uniform pairs (u1, u2), r = √(−2 ln u1), t = 2πu2, emitting r·cos t then r·sin t.
 */
export function fillNormals(rng: SplitMix64, out: Float64Array, off: number, count: number): void {
  let i = 0;
  while (i < count) {
    const u1 = rng.uniform();
    const u2 = rng.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const t = 2 * Math.PI * u2;
    out[off + i++] = r * Math.cos(t);
    if (i < count) out[off + i++] = r * Math.sin(t);
  }
}

/**
 * n × d Matrix of rows uniform on the unit sphere S^{d−1}: n·d standard normals from the
 * documented PRNG (row-major, one stream), each row normalized in float64 and rounded to
 * float32. Same seed → same vectors on every backend.
 */
export function randomUnitVectors(n: number, d: number, seed: number): Matrix {
  checkRandomUnitVectors(n, d, seed);
  const rng = new SplitMix64(seed);
  const out = alloc(Float32Array, n * d, 'randomUnitVectors', 'the n × d result', 'generate the rows in batches');
  const buf = alloc(Float64Array, n * d, 'randomUnitVectors', 'the n × d normals', 'generate the rows in batches');
  fillNormals(rng, buf, 0, n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += buf[i * d + k] * buf[i * d + k];
    const inv = 1 / Math.sqrt(s);
    for (let k = 0; k < d; k++) out[i * d + k] = buf[i * d + k] * inv;
  }
  return { data: out, rows: n, cols: d };
}

/**
 * Mean, variance and standard deviation of cos(x, y) for independent x, y uniform on S^{d−1}:
 * mean 0, variance exactly 1/d.
 */
export function nullCosine(d: number): NullCosine {
  checkDim('nullCosine', d);
  return { mean: 0, variance: 1 / d, std: 1 / Math.sqrt(d) };
}

const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
  9.9843695780195716e-6, 1.5056327351493116e-7,
];
const LN_SQRT_2PI = 0.9189385332046728;

/** ln Γ(x) for x ≥ 0.5 (Lanczos, g = 7, n = 9; ~1e-15 relative). */
export function lnGamma(x: number): number {
  const z = x - 1;
  let a = LANCZOS[0];
  const t = z + LANCZOS_G + 0.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (z + i);
  return LN_SQRT_2PI + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Stirling remainder δ(x) = ln Γ(x) − [(x − ½) ln x − x + ½ ln 2π], for x ≥ 10. */
function stirlingDelta(x: number): number {
  const r = 1 / x;
  const r2 = r * r;
  // 1/(12x) − 1/(360x³) + 1/(1260x⁵) − 1/(1680x⁷) + 1/(1188x⁹); the next term is < 1e-16 at x ≥ 10.
  return r * (1 / 12 - r2 * (1 / 360 - r2 * (1 / 1260 - r2 * (1 / 1680 - r2 / 1188))));
}

/** ln(4^{−a} / B(a, a)), accurate for every a ≥ ½ (no cancellation of large terms). */
function lnSymmetricBetaFactor(a: number): number {
  if (a < 10) return lnGamma(2 * a) - 2 * lnGamma(a) - 2 * a * Math.LN2;
  return 0.5 * Math.log(a / (4 * Math.PI)) - 2 * stirlingDelta(a) + stirlingDelta(2 * a);
}

/** ln(1 − s²) for |s| ≤ 1 without cancellation. */
function ln1mS2(s: number): number {
  const t = Math.abs(s);
  return t < 0.5 ? Math.log1p(-t * t) : Math.log((1 - t) * (1 + t));
}

const CF_TINY = 1e-300;
const CF_EPS = 1e-16;

/**
 * Continued fraction of the incomplete beta function with a = b (modified Lentz), the factor
 * h such that I_x(a, a) = x^a (1−x)^a / (a·B(a, a)) · h. Converges fast for x < ½.
 */
function betaCf(a: number, x: number): number {
  const b = a;
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < CF_TINY) d = CF_TINY;
  d = 1 / d;
  let h = d;
  const maxIt = 1000 + Math.ceil(50 * Math.sqrt(a));
  for (let m = 1; m <= maxIt; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < CF_TINY) d = CF_TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < CF_TINY) c = CF_TINY;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < CF_TINY) d = CF_TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < CF_TINY) c = CF_TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < CF_EPS) break;
  }
  return h;
}

/** Dimension from which {@link upperTail} uses the asymptotic form (the continued fraction needs O(√d) steps). */
export const PVALUE_ASYMPTOTIC_D = 1e5;

/**
 * erfcx(x) = e^{x²}·erfc(x) for x ≥ 0 (about 1e-14 relative): the series of erf below 2,
 * Laplace's continued fraction (60 terms, evaluated backwards) from 2 on.
 */
export function erfcx(x: number): number {
  if (x < 2) {
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let k = 1; k < 200; k++) {
      term *= (2 * x2) / (2 * k + 1);
      sum += term;
      if (term < 1e-17 * sum) break;
    }
    // erf(x) = 2/√π · e^{−x²} · Σ 2^k x^{2k+1} / (1·3·…·(2k+1)), all terms positive.
    return Math.exp(x2) - (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0;
  for (let k = 60; k >= 1; k--) f = k / 2 / (x + f);
  return 1 / (Math.sqrt(Math.PI) * (x + f));
}

/** Coefficients of dt/dw = Σ c_k w^{2k} for t = √(1 − e^{−w²}) (so that (1 − t²)^m = e^{−m w²}). */
const DTDW = [1, -3 / 4, 25 / 96, -7 / 128, 79 / 10240, -33 / 40960];

/**
 * P(cos ≥ s) for 0 < s < 1 and large d (≥ {@link PVALUE_ASYMPTOTIC_D}), in log space: with
 * m = (d − 3)/2 and w = √(−ln(1 − t²)), P = C ∫_{w₀}^∞ e^{−m w²} (dt/dw) dw, C = Γ(d/2) /
 * (√π Γ((d−1)/2)); dt/dw is expanded in powers of w² and each ∫ w^{2k} e^{−m w²} is exact
 * (erfcx and a recurrence). Terms dropped are O(w₀¹²) + O(m⁻⁶), below 1e-13 relative wherever the
 * result does not underflow; the normal limit P → Q(s√d) holds as d → ∞.
 */
function upperTailAsymptotic(s: number, d: number): number {
  const m = (d - 3) / 2;
  const x = (d - 1) / 2;
  // ln C = lnΓ(x + ½) − lnΓ(x) − ½ ln π by Stirling with its remainder δ.
  const lnC = 0.5 * Math.log(x) + (x * Math.log1p(1 / (2 * x)) - 0.5) + stirlingDelta(x + 0.5) - stirlingDelta(x) - 0.5 * Math.log(Math.PI);
  const w0 = Math.sqrt(-Math.log1p(-s * s));
  // Beyond this the tail is below the smallest double (C ≤ 4e7, K₀ ≤ 1), and the expansion
  // of dt/dw, meant for small w, would no longer hold.
  if (m * w0 * w0 > 800) return 0;
  // K_k = e^{m w₀²} ∫_{w₀}^∞ w^{2k} e^{−m w²} dw.
  let kk = 0.5 * Math.sqrt(Math.PI / m) * erfcx(w0 * Math.sqrt(m));
  let sum = DTDW[0] * kk;
  for (let k = 1; k < DTDW.length; k++) {
    kk = (w0 ** (2 * k - 1) + (2 * k - 1) * kk) / (2 * m);
    sum += DTDW[k] * kk;
  }
  return Math.exp(lnC - m * w0 * w0 + Math.log(sum));
}

/**
 * P(cos ≥ s) for 0 < s ≤ 1 under the null in dimension d:
 * I_{(1−s)/2}(a, a) with a = (d − 1)/2, where x^a (1−x)^a = ((1 − s²)/4)^a; for
 * d ≥ {@link PVALUE_ASYMPTOTIC_D} the asymptotic form (bounded work for every d).
 */
function upperTail(s: number, d: number): number {
  if (s >= 1) return 0;
  if (d >= PVALUE_ASYMPTOTIC_D) return upperTailAsymptotic(s, d);
  const a = (d - 1) / 2;
  const x = (1 - s) / 2;
  const lnFront = a * ln1mS2(s) + lnSymmetricBetaFactor(a);
  return (Math.exp(lnFront) * betaCf(a, x)) / a;
}

/** P(cos ≥ s) for any s in [−1, 1]. */
export function cosineUpper(s: number, d: number): number {
  if (s === 0) return 0.5;
  if (s > 0) return upperTail(s, d);
  return 1 - upperTail(-s, d);
}

/**
 * Exact p-value of a cosine s between two independent uniform unit vectors in dimension d
 * ((1 + cos)/2 ~ Beta((d−1)/2, (d−1)/2)): P(cos ≥ s) for `tail: 'greater'` (default) or
 * P(|cos| ≥ |s|) for `'two-sided'`. Integer d in [2, 2^53) and |s| ≤ 1, else E_ARG; NaN s → E_NON_FINITE.
 */
export function cosinePValue(s: number, d: number, options?: PValueOptions): number {
  const two = checkPValue(s, d, options);
  if (two) return Math.min(1, 2 * cosineUpper(Math.abs(s), d));
  return cosineUpper(s, d);
}

/**
 * The next random pair (i ≠ j) of rows 0..n: i = min(⌊u·n⌋, n−1), j = min(⌊u'·(n−1)⌋, n−2),
 * then j += (j ≥ i). (The clamps matter only when u·n rounds up to n.)
 */
export function samplePair(rng: SplitMix64, n: number): [number, number] {
  const i = Math.min(Math.floor(rng.uniform() * n), n - 1);
  let j = Math.min(Math.floor(rng.uniform() * (n - 1)), n - 2);
  if (j >= i) j++;
  return [i, j];
}

function finishStats(s1: number, s2: number, shift: number, pairs: number, d: number): SimilarityStats {
  const m1 = s1 / pairs;
  const mean = shift + m1;
  const variance = Math.max(0, s2 / pairs - m1 * m1);
  const nullVariance = 1 / d;
  return { mean, variance, nullVariance, zScore: mean / Math.sqrt(nullVariance / pairs), pairs };
}

/**
 * Mean and population variance of cos(row_i, row_j) over all pairs i < j (or over
 * `sample.pairs` random pairs i ≠ j), with the null variance 1/d and the z-score of the mean
 * against the null: mean / √(nullVariance / pairs). A zero row has cosine 0 with every row.
 * n < 2 → E_SHAPE; NaN or ±∞ → E_NON_FINITE.
 */
export function similarityStats(m: Matrix, options?: SimilarityStatsOptions): SimilarityStats {
  m = v.snap('similarityStats', 'm', m);
  options = v.snapOpts('similarityStats', options, ['sample']);
  const sample = checkSimilarityStats(m, options);
  const n = m.rows;
  const d = m.cols;
  const inv = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += m.data[i * d + k] * m.data[i * d + k];
    inv[i] = s === 0 ? 0 : 1 / Math.sqrt(s);
  }
  const cos = (i: number, j: number): number => {
    let s = 0;
    for (let k = 0; k < d; k++) s += m.data[i * d + k] * m.data[j * d + k];
    return s * inv[i] * inv[j];
  };
  // Accumulate around a shift (the cosine of rows 0 and 1) so the variance does not cancel.
  const shift = cos(0, 1);
  let s1 = 0;
  let s2 = 0;
  if (sample) {
    const rng = new SplitMix64(sample.seed);
    for (let p = 0; p < sample.pairs; p++) {
      const [i, j] = samplePair(rng, n);
      const c = cos(i, j) - shift;
      s1 += c;
      s2 += c * c;
    }
    return finishStats(s1, s2, shift, sample.pairs, d);
  }
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const c = cos(i, j) - shift;
      s1 += c;
      s2 += c * c;
    }
  }
  return finishStats(s1, s2, shift, (n * (n - 1)) / 2, d);
}
