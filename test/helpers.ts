/** Shared test helpers: seeded random data, tolerance checks, forced ISAs. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { expect } from 'vitest';

const require = createRequire(import.meta.url);
/** The package under test, as built into dist/ (the same files that ship). */
export const dv = require('../dist/index.js') as typeof import('../dist/index');
/** The raw native binding (for tests of the binding layer itself). */
export const native = require('../dist/native/binding.cjs') as Record<string, (...args: unknown[]) => unknown>;
/** The pure-TypeScript reference, as built. */
export const ref = require('../dist/reference/index.js') as typeof import('../dist/reference/index');
/** The reference's statistics module, for the internals its tests pin (SplitMix64, lnGamma, …). */
export const refStats = require('../dist/reference/statistics.js') as typeof import('../dist/reference/statistics');

/** A matrix as the tests build it. */
export type M = { data: Float32Array; rows: number; cols: number };

/** A JSON fixture of test/fixtures (written by scripts/fixtures/*.py). */
export function fixture(name: string): { cases: Array<Record<string, any>> } {
  return JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8'));
}

/** A fixture's matrix ({ rows, cols, data: number[] }) as a float32 Matrix. */
export function fm(o: { rows: number; cols: number; data: number[] }): M {
  return { data: Float32Array.from(o.data), rows: o.rows, cols: o.cols };
}

/** The largest |a_i| (0 for an empty array). */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Compares gradients: elementwise within rtol, plus an absolute floor, `floor` × the largest entry and at least `abs`. */
export function closeGrad(got: ArrayLike<number>, want: ArrayLike<number>, rtol = 1e-4, floor = 1e-5, abs = 1e-12): void {
  close(got, want, rtol, Math.max(floor * maxAbs(want), abs));
}

/**
 * topK of the main entry equals the reference's (indices exactly, scores within 1e-4) for a 7 × 33
 * query block against a 5000-row corpus, every metric and each of `ks`; ties (duplicated rows)
 * come out in index order.
 */
export function topKMatchesReference(ks: readonly number[]): void {
  const q = randm(7, 33, 1);
  const c = randm(5000, 33, 2);
  for (const metric of ['dot', 'cosine', 'l2sq'] as const) {
    for (const k of ks) {
      const got = dv.topK(q, c, k, { metric });
      const want = ref.topK(q, c, k, { metric });
      expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
      close(got.scores, want.scores, 1e-4, 1e-4);
    }
  }
  const dup = { data: new Float32Array([1, 0, 0, 1, 1, 0, 1, 0]), rows: 4, cols: 2 };
  const one = { data: new Float32Array([1, 0]), rows: 1, cols: 2 };
  expect(Array.from(dv.topK(one, dup, 3).indices)).toEqual([0, 2, 3]);
  expect(Array.from(ref.topK(one, dup, 3).indices)).toEqual([0, 2, 3]);
}

/** The rows `idx` of `m`, in that order, as a new Matrix. */
export function gatherRows(m: { data: Float32Array; rows: number; cols: number }, idx: ArrayLike<number>): { data: Float32Array; rows: number; cols: number } {
  const c = m.cols;
  const data = new Float32Array(idx.length * c);
  for (let t = 0; t < idx.length; t++) data.set(m.data.subarray(idx[t] * c, (idx[t] + 1) * c), t * c);
  return { data, rows: idx.length, cols: c };
}

/** Mulberry32: a small seeded PRNG for test data (scripts/mulberry32.cjs, shared with the benchmarks). */
export const rng = (require('../scripts/mulberry32.cjs') as { mulberry32: (seed: number) => () => number }).mulberry32;

/** Standard normal samples (Box–Muller) from a seeded PRNG. */
export function gauss(r: () => number): number {
  const u = 1 - r();
  const v = r();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** A Float32Array of n standard normal values. */
export function randn(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = gauss(r);
  return out;
}

/** A rows × cols Matrix of standard normal values. */
export function randm(rows: number, cols: number, seed: number): { data: Float32Array; rows: number; cols: number } {
  return { data: randn(rows * cols, seed), rows, cols };
}

/** Asserts |a − b| ≤ atol + rtol·|b| elementwise, reporting the worst index. */
export function close(a: ArrayLike<number> | number, b: ArrayLike<number> | number, rtol = 1e-5, atol = 1e-6): void {
  const A = typeof a === 'number' ? [a] : a;
  const B = typeof b === 'number' ? [b] : b;
  expect(A.length).toBe(B.length);
  let worst = -1;
  let excess = 0;
  for (let i = 0; i < A.length; i++) {
    const x = A[i];
    const y = B[i];
    if (Number.isNaN(y) && Number.isNaN(x)) continue;
    const e = Math.abs(x - y) - (atol + rtol * Math.abs(y));
    if (!(e <= 0) && (worst < 0 || e > excess)) {
      worst = i;
      excess = e;
    }
  }
  if (worst >= 0) {
    expect.fail(`index ${worst}: ${A[worst]} vs ${B[worst]} (rtol ${rtol}, atol ${atol})`);
  }
}

/** Expects `f` to throw a DensevecError with `code` (and a message matching `re`, if given). */
export function throwsCode(f: () => unknown, code: string, re?: RegExp): void {
  let err: unknown = null;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(Error);
  const e = err as { name: string; code: string; message: string };
  expect(e.name).toBe('DensevecError');
  expect(e.code).toBe(code);
  if (re) expect(e.message).toMatch(re);
}

/**
 * Odd loss shapes [rows, keys or classes, d] with keys ≥ rows: a single row, key or dimension,
 * d = 1, sizes past the SIMD widths and the GEMM blocking.
 */
export const LOSS_SHAPES: ReadonlyArray<readonly [number, number, number]> = [
  [1, 1, 1],
  [1, 7, 5],
  [5, 5, 1],
  [3, 8, 2],
  [37, 301, 33],
  [130, 517, 17],
];

/**
 * Odd GEMM shapes [rows, inner, cols] (or [queries, corpus rows, d]): the loss shapes, and
 * both aspect ratios past the micro-kernel and the cache blocking.
 */
export const GEMM_SHAPES: ReadonlyArray<readonly [number, number, number]> = [...LOSS_SHAPES, [3, 5, 7], [65, 33, 17], [130, 70, 129], [200, 401, 97]];

/** Runs `f` once per ISA available on this CPU, restoring the best ISA afterwards. */
export function forEachIsa(f: (isa: string) => void): void {
  const isas = dv.availableIsas();
  try {
    for (const isa of isas) {
      dv.setIsa(isa);
      f(isa);
    }
  } finally {
    dv.setIsa(isas[isas.length - 1]);
  }
}

/**
 * Central finite differences of `loss` with respect to every element of `x` (float32 data,
 * perturbed in place; the step actually taken is measured in float32).
 */
export function fdGrad(x: Float32Array, loss: () => number, h = 1e-3): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    x[i] = x0 + h;
    const up = x[i];
    const lp = loss();
    x[i] = x0 - h;
    const dn = x[i];
    const lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (up - dn);
  }
  return g;
}
