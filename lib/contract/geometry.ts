/**
 * Chapter 5 (geometry) contract: result types, the argument checks, and the documented
 * Gaussian stream both backends draw from.
 */
import { fail } from '../errors';
import type { Matrix } from '../matrix';
import { checkK, type MetricOptions } from './similarity';
import { checkSeed } from './statistics';
import * as v from './validate';

/** Result of {@link procrustes}. */
export interface ProcrustesResult {
  /** d × d orthogonal matrix Q minimizing ‖x·Q − y‖_F (reflections allowed). */
  rotation: Matrix;
  /** ‖x·rotation − y‖_F. */
  residual: number;
}

/** Result of {@link sphericalTriangle} (all lengths and angles in radians, unit sphere). */
export interface SphericalTriangle {
  /** Geodesic side lengths [a, b, c]: a = y–z (opposite x), b = x–z, c = x–y. */
  sides: [number, number, number];
  /** Interior angles [A, B, C] at x, y, z. */
  angles: [number, number, number];
  /** Spherical excess A + B + C − π. */
  excess: number;
  /** Area on the unit sphere (equal to the excess). */
  area: number;
  /** Area of the flat triangle spanned by the three chords. */
  chordArea: number;
  /** excess / chordArea; tends to 1 (the sphere's Gaussian curvature) as the triangle shrinks. */
  curvature: number;
}

// ---------------------------------------------------------------------------------------------
// k-nearest-neighbour classification

/** Snapshots of knnClassify's matrices and options: each field read once (validate.snap). */
export function snapKnn<M, O>(fn: string, train: M, queries: M, options: O): [M, M, O] {
  return [v.snap(fn, 'train', train), v.snap(fn, 'queries', queries), v.snapOpts(fn, options, ['metric'])];
}

/** Validates the arguments of knnClassify; returns the metric code. */
export function checkKnn(fn: string, train: unknown, labels: unknown, queries: unknown, k: unknown, options: MetricOptions | undefined): number {
  v.matType(fn, 'train', train);
  v.u32(fn, 'labels', labels);
  v.matType(fn, 'queries', queries);
  v.int(fn, 'k', k);
  const o = v.opts(fn, options);
  v.METRIC.type(fn, o.metric);
  v.matShape(fn, 'train', train);
  v.matShape(fn, 'queries', queries);
  v.sameCols(fn, 'train', train, 'queries', queries);
  if (labels.length !== train.rows) fail('E_SHAPE', `${fn}: labels has length ${labels.length} but train has ${train.rows} rows`);
  const metric = v.METRIC.code(fn, o.metric);
  checkK(fn, k, train.rows);
  return metric;
}

// ---------------------------------------------------------------------------------------------
// Gaussian stream and Haar orthogonal matrices

const MASK64 = (1n << 64n) - 1n;

/**
 * The documented Gaussian stream of densevec (identical in the native backend):
 * SplitMix64 (state += 0x9E3779B97F4A7C15; z = state; z = (z ^ z>>30)·0xBF58476D1CE4E5B9;
 * z = (z ^ z>>27)·0x94D049BB133111EB; out = z ^ z>>31, all mod 2^64) seeded with `seed`;
 * uniforms u = ((out >> 11) + 0.5)·2^−53 ∈ (0, 1); Box–Muller on consecutive pairs (u1, u2):
 * r = √(−2 ln u1), emitting r·cos(2πu2) then r·sin(2πu2) — the same construction as the
 * statistics chapter's documented PRNG.
 */
export class GaussianStream {
  private state: bigint;
  private spare: number | null = null;
  /** `seed`: an integer in [0, 2^53). */
  constructor(seed: number) {
    checkSeed('GaussianStream', 'seed', seed);
    this.state = BigInt.asUintN(64, BigInt(seed));
  }
  /** Next 64-bit SplitMix64 output. */
  nextU64(): bigint {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK64;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  }
  /** Uniform in (0, 1): ((out >> 11) + 0.5)·2^−53, never 0 or 1. */
  uniform(): number {
    return (Number(this.nextU64() >> 11n) + 0.5) * 2 ** -53;
  }
  /** Standard normal. */
  gauss(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u1 = this.uniform();
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const t = 2 * Math.PI * u2;
    this.spare = r * Math.sin(t);
    return r * Math.cos(t);
  }
}

/** Validates randomOrthogonal: both types (integers) before either range. */
export function checkRandomOrthogonal(fn: string, d: unknown, seed: unknown): void {
  v.int(fn, 'd', d);
  v.int(fn, 'seed', seed);
  checkOrthoDim(fn, d);
  checkSeed(fn, 'seed', seed);
}

/** Checks the dimension of randomOrthogonal. */
export function checkOrthoDim(fn: string, d: unknown): asserts d is number {
  v.int(fn, 'd', d);
  if (d < 1) fail('E_ARG', `${fn}: d must be >= 1, got ${d}`);
  if (d > 16384) fail('E_ARG', `${fn}: d must be <= 16384, got ${d}`);
}

// ---------------------------------------------------------------------------------------------
// Matrix product

/** Validates matmul. */
export function checkMatmul(fn: string, a: unknown, b: unknown): void {
  v.matType(fn, 'a', a);
  v.matType(fn, 'b', b);
  v.matShape(fn, 'a', a);
  v.matShape(fn, 'b', b);
  if (a.cols !== b.rows) fail('E_SHAPE', `${fn}: a is ${a.rows} x ${a.cols} but b is ${b.rows} x ${b.cols} (a.cols must equal b.rows)`);
}

// ---------------------------------------------------------------------------------------------
// Orthogonal Procrustes

/** Validates procrustes. */
export function checkProcrustes(fn: string, x: unknown, y: unknown): void {
  v.matPair(fn, 'x', x, 'y', y, true);
}

/**
 * The checks of {@link checkProcrustes} before the native call: types and shapes. The addon
 * finds non-finite values itself, in the parallel pass that forms xᵀy, and reports them with the
 * same code, message and precedence (x before y); a second, serial scan here took about a sixth
 * of a 20,000 × 300 call.
 */
export function checkProcrustesShapes(fn: string, x: unknown, y: unknown): void {
  v.matPair(fn, 'x', x, 'y', y, false);
}

/** Validates the inputs of sphericalTriangle. */
export function checkTriangle(fn: string, x: unknown, y: unknown, z: unknown): void {
  v.vecType(fn, 'x', x);
  v.vecType(fn, 'y', y);
  v.vecType(fn, 'z', z);
  if (x.length !== y.length || x.length !== z.length) {
    fail('E_SHAPE', `${fn}: x, y, z have lengths ${x.length}, ${y.length}, ${z.length}; they must be equal`);
  }
  if (x.length === 0) fail('E_SHAPE', `${fn}: x, y, z are empty`);
  if (x.length < 2) fail('E_ARG', `${fn}: the dimension must be >= 2, got ${x.length}`);
  // A zero vertex (E_ARG) is reported before a non-finite value (E_NON_FINITE).
  for (const [name, a] of [
    ['x', x],
    ['y', y],
    ['z', z],
  ] as const) {
    if ((a as Float32Array).every((t) => t === 0)) fail('E_ARG', `${fn}: ${name} is the zero vector`);
  }
  v.finite(fn, 'x', x);
  v.finite(fn, 'y', y);
  v.finite(fn, 'z', z);
}
