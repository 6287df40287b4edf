import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { close, dv, forEachIsa, GEMM_SHAPES, randm, randn, ref, refStats, rng, throwsCode } from './helpers';

type M = { data: Float32Array; rows: number; cols: number };
const fx = JSON.parse(readFileSync(new URL('./fixtures/geometry.json', import.meta.url), 'utf8'));
const f32 = (a: number[]) => Float32Array.from(a);

/** Max |QᵀQ − I|. */
function orthError(q: M): number {
  const d = q.cols;
  let worst = 0;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += q.data[t * d + i] * q.data[t * d + j];
      worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
    }
  }
  return worst;
}

/** Labelled clusters: `c` centres in d dims, n points each, spread `s`. */
function clusters(c: number, n: number, d: number, s: number, seed: number): { x: M; labels: Uint32Array } {
  const centres = randn(c * d, seed);
  const noise = randn(c * n * d, seed + 1);
  const data = new Float32Array(c * n * d);
  const labels = new Uint32Array(c * n);
  for (let i = 0; i < c * n; i++) {
    const l = i % c;
    labels[i] = l * 10 + 3;
    for (let k = 0; k < d; k++) data[i * d + k] = centres[l * d + k] + s * noise[i * d + k];
  }
  return { x: { data, rows: c * n, cols: d }, labels };
}

describe('knnClassify', () => {
  it('native equals reference on random shapes, every metric, every ISA', () => {
    forEachIsa(() => {
      for (const [c, n, d, q, k] of [
        [3, 20, 7, 11, 5],
        [5, 13, 33, 17, 1],
        [4, 50, 16, 40, 9],
        [2, 600, 9, 5, 25],
      ]) {
        const { x, labels } = clusters(c, n, d, 1.5, c * 100 + d);
        const qs = randm(q, d, q + d);
        for (const metric of ['cosine', 'dot', 'l2sq'] as const) {
          const got = dv.knnClassify(x, labels, qs, k, { metric });
          const want = ref.knnClassify(x, labels, qs, k, { metric });
          expect(got).toBeInstanceOf(Uint32Array);
          expect(Array.from(got)).toEqual(Array.from(want));
        }
      }
    });
  });

  it('breaks vote ties by the nearest member', () => {
    // Query at 0 on a line: neighbours 1 (label 7), 2 (label 9), 3 (label 9), 4 (label 7).
    const train = { data: f32([4, 1, 2, 3, 50]), rows: 5, cols: 1 };
    const labels = Uint32Array.from([7, 7, 9, 9, 1]);
    const q = { data: f32([0]), rows: 1, cols: 1 };
    for (const impl of [dv, ref]) {
      expect(Array.from(impl.knnClassify(train, labels, q, 4, { metric: 'l2sq' }))).toEqual([7]);
      expect(Array.from(impl.knnClassify(train, labels, q, 3, { metric: 'l2sq' }))).toEqual([9]);
      expect(Array.from(impl.knnClassify(train, labels, q, 2, { metric: 'l2sq' }))).toEqual([7]);
    }
    // Label 9 nearest: tie 2–2 goes to 9.
    const labels2 = Uint32Array.from([9, 7, 9, 7, 1]);
    expect(Array.from(dv.knnClassify(train, labels2, q, 4, { metric: 'l2sq' }))).toEqual([7]);
    const train3 = { data: f32([1, 2, 3, 4, 50]), rows: 5, cols: 1 };
    const labels3 = Uint32Array.from([9, 7, 7, 9, 1]);
    expect(Array.from(dv.knnClassify(train3, labels3, q, 4, { metric: 'l2sq' }))).toEqual([9]);
    expect(Array.from(ref.knnClassify(train3, labels3, q, 4, { metric: 'l2sq' }))).toEqual([9]);
  });

  it('is invariant under a random orthogonal map of train and queries (distances too)', () => {
    const d = 24;
    const { x, labels } = clusters(4, 30, d, 2.0, 7);
    const qs = randm(60, d, 8);
    const Q = dv.randomOrthogonal(d, 1234);
    const xr = dv.matmul(x, Q);
    const qr = dv.matmul(qs, Q);
    for (const metric of ['cosine', 'dot', 'l2sq'] as const) {
      const before = dv.knnClassify(x, labels, qs, 7, { metric });
      const after = dv.knnClassify(xr, labels, qr, 7, { metric });
      expect(Array.from(after)).toEqual(Array.from(before));
      const s0 = dv.similarityMatrix(qs, x, { metric });
      const s1 = dv.similarityMatrix(qr, xr, { metric });
      close(s1.data, s0.data, 1e-4, 1e-4 * d);
    }
    // Reference backend, too.
    expect(Array.from(ref.knnClassify(ref.matmul(x, Q), labels, ref.matmul(qs, Q), 7))).toEqual(Array.from(ref.knnClassify(x, labels, qs, 7)));
  });

  it('changes under anisotropic scaling and shear (constructed case)', () => {
    // Class 0 on the x axis, class 1 on the y axis; the query is nearer class 0 as given.
    const train = { data: f32([3, 0, -3, 0, 0, 1, 0, -1]), rows: 4, cols: 2 };
    const labels = Uint32Array.from([0, 0, 1, 1]);
    const q = { data: f32([2, 0.8]), rows: 1, cols: 2 };
    const scale = { data: f32([0.2, 0, 0, 1]), rows: 2, cols: 2 };
    const shear = { data: f32([1, 0, 3, 1]), rows: 2, cols: 2 };
    for (const impl of [dv, ref]) {
      const base = impl.knnClassify(train, labels, q, 1, { metric: 'l2sq' })[0];
      expect(base).toBe(0);
      const scaled = impl.knnClassify(impl.matmul(train, scale), labels, impl.matmul(q, scale), 1, { metric: 'l2sq' })[0];
      expect(scaled).toBe(1 - base);
      // Pairwise distances are not preserved by the shear, and its prediction changes.
      const sheared = impl.knnClassify(impl.matmul(train, shear), labels, impl.matmul(q, shear), 1, { metric: 'l2sq' })[0];
      expect(sheared).toBe(1 - base);
    }
  });

  it('async twin agrees; bad input', async () => {
    const { x, labels } = clusters(3, 10, 5, 1, 3);
    const qs = randm(4, 5, 4);
    expect(Array.from(await dv.knnClassifyAsync(x, labels, qs, 3))).toEqual(Array.from(dv.knnClassify(x, labels, qs, 3)));
    await expect(dv.knnClassifyAsync(x, labels, qs, 31)).rejects.toMatchObject({ code: 'E_ARG' });
    for (const impl of [dv, ref]) {
      throwsCode(() => impl.knnClassify(x, labels, qs, 31), 'E_ARG', /k must be in/);
      throwsCode(() => impl.knnClassify(x, labels, qs, 0), 'E_ARG');
      throwsCode(() => impl.knnClassify(x, labels, qs, 1.5), 'E_TYPE');
      throwsCode(() => impl.knnClassify(x, labels.subarray(1), qs, 3), 'E_SHAPE', /labels has length 29/);
      throwsCode(() => impl.knnClassify(x, labels, randm(2, 6, 1), 3), 'E_SHAPE');
      throwsCode(() => impl.knnClassify(x, Array.from(labels) as unknown as Uint32Array, qs, 3), 'E_TYPE');
      throwsCode(() => impl.knnClassify(x, labels, qs, 3, { metric: 'hamming' as 'dot' }), 'E_ARG');
    }
  });
});

describe('randomOrthogonal and matmul', () => {
  it('is orthogonal, deterministic and equal on both backends', () => {
    for (const d of [1, 2, 3, 8, 31, 64]) {
      for (const seed of [0, 1, 987654321]) {
        const a = dv.randomOrthogonal(d, seed);
        const b = ref.randomOrthogonal(d, seed);
        expect([a.rows, a.cols]).toEqual([d, d]);
        expect(orthError(a)).toBeLessThan(1e-5);
        expect(orthError(b)).toBeLessThan(1e-5);
        close(a.data, b.data, 0, 1e-5);
        expect(Array.from(dv.randomOrthogonal(d, seed).data)).toEqual(Array.from(a.data));
      }
    }
    // Different seeds differ.
    expect(Array.from(dv.randomOrthogonal(5, 1).data)).not.toEqual(Array.from(dv.randomOrthogonal(5, 2).data));
  });

  it('the Gaussian stream is the documented SplitMix64 → Box–Muller', () => {
    const g = new ref.GaussianStream(0);
    expect(g.nextU64()).toBe(0xe220a8397b1dcdafn);
    expect(g.nextU64()).toBe(0x6e789e6aa1b965f4n);
    // The same stream as the statistics chapter's documented PRNG.
    const mine = new ref.GaussianStream(12345);
    const theirs = new Float64Array(101);
    refStats.fillNormals(new refStats.SplitMix64(12345), theirs, 0, 101);
    expect(Array.from({ length: 101 }, () => mine.gauss())).toEqual(Array.from(theirs));
    const h = new ref.GaussianStream(7);
    const xs = Array.from({ length: 20000 }, () => h.gauss());
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const vr = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(vr - 1)).toBeLessThan(0.04);
  });

  it('looks Haar: the diagonal has mean ~0 and E[Q11²] ~ 1/d', () => {
    const d = 6;
    let s = 0;
    let s2 = 0;
    const T = 300;
    for (let t = 0; t < T; t++) {
      const q = dv.randomOrthogonal(d, t);
      s += q.data[0];
      s2 += q.data[0] ** 2;
    }
    expect(Math.abs(s / T)).toBeLessThan(0.08);
    expect(Math.abs(s2 / T - 1 / d)).toBeLessThan(0.04);
  });

  it('matmul agrees with the reference, every ISA', () => {
    forEachIsa(() => {
      for (const [m, k, n] of GEMM_SHAPES) {
        const a = randm(m, k, m + k);
        const b = randm(k, n, k + n);
        const got = dv.matmul(a, b);
        expect([got.rows, got.cols]).toEqual([m, n]);
        close(got.data, ref.matmul(a, b).data, 1e-4, 1e-4 * Math.sqrt(k));
      }
    });
    for (const impl of [dv, ref]) {
      throwsCode(() => impl.matmul(randm(2, 3, 1), randm(4, 2, 1)), 'E_SHAPE', /a.cols must equal b.rows/);
      throwsCode(() => impl.matmul(randm(2, 3, 1), { data: new Float64Array(6), rows: 3, cols: 2 } as unknown as M), 'E_TYPE');
    }
  });

  it('bad input', () => {
    for (const impl of [dv, ref]) {
      throwsCode(() => impl.randomOrthogonal(0, 1), 'E_ARG');
      throwsCode(() => impl.randomOrthogonal(2.5, 1), 'E_TYPE');
      throwsCode(() => impl.randomOrthogonal(3, -1), 'E_ARG');
      throwsCode(() => impl.randomOrthogonal(3, 0.5), 'E_TYPE');
    }
  });
});

describe('procrustes', () => {
  it('matches SciPy orthogonal_procrustes', () => {
    for (const c of fx.procrustes) {
      const x = { data: f32(c.x), rows: c.n, cols: c.d };
      const y = { data: f32(c.y), rows: c.n, cols: c.d };
      for (const impl of [dv, ref]) {
        const r = impl.procrustes(x, y);
        expect([r.rotation.rows, r.rotation.cols]).toEqual([c.d, c.d]);
        close(r.rotation.data, c.rotation, 0, 2e-5);
        close(r.residual, c.residual, 1e-4, 1e-5);
      }
    }
  });

  it('recovers a planted rotation with noise and reflections; native equals reference', () => {
    const r = rng(11);
    for (const [n, d, noise] of [
      [200, 8, 0.01],
      [500, 33, 0.05],
      [1000, 64, 0.001],
    ]) {
      const x = randm(n, d, n + d);
      const Q = dv.randomOrthogonal(d, d);
      // A reflection: flip one column.
      for (let i = 0; i < d; i++) Q.data[i * d + (d >> 1)] *= -1;
      const y = dv.matmul(x, Q);
      for (let i = 0; i < y.data.length; i++) y.data[i] += noise * (2 * r() - 1);
      const got = dv.procrustes(x, y);
      const want = ref.procrustes(x, y);
      expect(orthError(got.rotation)).toBeLessThan(1e-5);
      close(got.rotation.data, Q.data, 0, 20 * noise + 1e-4);
      close(got.rotation.data, want.rotation.data, 0, 1e-4);
      close(got.residual, want.residual, 1e-4, 1e-6);
      expect(got.residual).toBeLessThan(noise * Math.sqrt(n * d));
    }
  });

  it('gives an orthogonal matrix on rank-deficient input, and minimizes', () => {
    const n = 40;
    const d = 10;
    // x and y live in a 3-dimensional subspace.
    const basis = randm(3, d, 5);
    const cx = randm(n, 3, 6);
    const cy = randm(n, 3, 7);
    const x = dv.matmul(cx, basis);
    const y = dv.matmul(cy, basis);
    for (const impl of [dv, ref]) {
      const r = impl.procrustes(x, y);
      expect(orthError(r.rotation)).toBeLessThan(1e-5);
      const direct = impl.matmul(x, r.rotation);
      let s = 0;
      for (let i = 0; i < direct.data.length; i++) s += (direct.data[i] - y.data[i]) ** 2;
      close(r.residual, Math.sqrt(s), 1e-4, 1e-5);
      // No random orthogonal matrix does better.
      for (let t = 0; t < 5; t++) {
        const z = impl.matmul(x, dv.randomOrthogonal(d, 100 + t));
        let e = 0;
        for (let i = 0; i < z.data.length; i++) e += (z.data[i] - y.data[i]) ** 2;
        expect(r.residual).toBeLessThanOrEqual(Math.sqrt(e) + 1e-6);
      }
    }
    // All-zero x: still orthogonal.
    const zero = { data: new Float32Array(n * d), rows: n, cols: d };
    expect(orthError(dv.procrustes(zero, y).rotation)).toBeLessThan(1e-5);
    expect(orthError(ref.procrustes(zero, y).rotation)).toBeLessThan(1e-5);
  });

  it('async twin, thread independence, bad input', async () => {
    const x = randm(700, 20, 1);
    const y = randm(700, 20, 2);
    const a = await dv.procrustesAsync(x, y);
    const b = dv.procrustes(x, y);
    expect(Array.from(a.rotation.data)).toEqual(Array.from(b.rotation.data));
    // Unrelated x and y: the residual does not cancel (native uses ‖x‖² + ‖y‖² − 2Σσ).
    const w = ref.procrustes(x, y);
    close(b.residual, w.residual, 1e-5);
    close(b.rotation.data, w.rotation.data, 0, 1e-4);
    dv.setThreads(1);
    const c = dv.procrustes(x, y);
    dv.setThreads(2);
    expect(Array.from(c.rotation.data)).toEqual(Array.from(b.rotation.data));
    expect(c.residual).toBe(b.residual);
    await expect(dv.procrustesAsync(x, randm(700, 21, 1))).rejects.toMatchObject({ code: 'E_SHAPE' });
    for (const impl of [dv, ref]) {
      throwsCode(() => impl.procrustes(x, randm(699, 20, 1)), 'E_SHAPE', /x is 700 x 20 but y is 699 x 20/);
      const bad = randm(700, 20, 3);
      bad.data[17] = NaN;
      throwsCode(() => impl.procrustes(x, bad), 'E_NON_FINITE');
      bad.data[17] = Infinity;
      throwsCode(() => impl.procrustes(bad, y), 'E_NON_FINITE');
    }
  });
});

describe('sphericalTriangle', () => {
  const e = (d: number, i: number, s = 1) => {
    const v = new Float32Array(d);
    v[i] = s;
    return v;
  };

  it('octant triangle: right angles, excess π/2', () => {
    for (const impl of [dv, ref]) {
      const t = impl.sphericalTriangle(e(3, 0, 2), e(3, 1, 0.5), e(3, 2, 7));
      for (const v of [...t.sides, ...t.angles]) expect(v).toBeCloseTo(Math.PI / 2, 12);
      expect(t.excess).toBeCloseTo(Math.PI / 2, 12);
      expect(t.area).toBe(t.excess);
      expect(t.chordArea).toBeCloseTo(Math.sqrt(3) / 2, 12);
      expect(t.curvature).toBeCloseTo(Math.PI / Math.sqrt(3), 12);
      // In 5 dimensions, too.
      expect(impl.sphericalTriangle(e(5, 4), e(5, 1), e(5, 2)).excess).toBeCloseTo(Math.PI / 2, 12);
    }
  });

  it('matches the law of cosines (NumPy fixtures); native equals reference', () => {
    for (const c of fx.sphericalTriangle) {
      const [x, y, z] = [f32(c.x), f32(c.y), f32(c.z)];
      const a = dv.sphericalTriangle(x, y, z);
      const b = ref.sphericalTriangle(x, y, z);
      close(a.sides, c.sides, 1e-9, 1e-12);
      close(a.angles, c.angles, 1e-9, 1e-12);
      close(a.excess, c.excess, 1e-9, 1e-12);
      close(a.chordArea, c.chordArea, 1e-9, 1e-12);
      close(a.excess, a.angles[0] + a.angles[1] + a.angles[2] - Math.PI, 1e-9, 1e-12);
      close([...a.sides, ...a.angles, a.excess, a.chordArea, a.curvature], [...b.sides, ...b.angles, b.excess, b.chordArea, b.curvature], 1e-12, 1e-14);
    }
  });

  it('tiny triangles: curvature → 1, excess keeps relative precision', () => {
    const r = rng(3);
    for (const h of [1e-1, 1e-2, 1e-3]) {
      for (let t = 0; t < 5; t++) {
        const base = randn(4, 50 + t);
        const nb = Math.hypot(...base);
        const pt = () => Float32Array.from(base, (v) => v / nb + h * (2 * r() - 1));
        const [x, y, z] = [pt(), pt(), pt()];
        for (const impl of [dv, ref]) {
          const tri = impl.sphericalTriangle(x, y, z);
          // E ≈ chordArea · (1 + O(h²)).
          const s2 = tri.sides.reduce((s, v) => s + v * v, 0);
          expect(Math.abs(tri.curvature - 1)).toBeLessThan(s2 / 6 + 1e-9);
          expect(Math.abs(tri.curvature - 1)).toBeLessThan(10 * h * h);
          expect(tri.excess).toBeGreaterThan(0);
          const A = tri.angles;
          expect(A[0] + A[1] + A[2]).toBeCloseTo(Math.PI + tri.excess, 9);
        }
      }
    }
    // Well below f32 resolution of the angle sum: excess still ≈ chord area.
    const x = f32([1, 0, 0]);
    const y = f32([1, 1e-4, 0]);
    const z = f32([1, 0, 1e-4]);
    const t = dv.sphericalTriangle(x, y, z);
    close(t.curvature, 1, 1e-7, 0);
    close(t.excess, 0.5e-8, 1e-6, 0);
  });

  it('degenerate triangles and bad input', () => {
    const x = f32([1, 2, 3]);
    for (const impl of [dv, ref]) {
      throwsCode(() => impl.sphericalTriangle(x, x, f32([0, 1, 0])), 'E_ARG', /degenerate/);
      throwsCode(() => impl.sphericalTriangle(x, f32([2, 4, 6]), f32([0, 1, 0])), 'E_ARG', /degenerate/);
      throwsCode(() => impl.sphericalTriangle(x, f32([-1, -2, -3]), f32([0, 1, 0])), 'E_ARG', /degenerate/);
      throwsCode(() => impl.sphericalTriangle(f32([0, 1, 0]), x, f32([0, -1, 0])), 'E_ARG', /degenerate/);
      throwsCode(() => impl.sphericalTriangle(e(3, 0), e(3, 1), f32([1, 1, 0])), 'E_ARG', /degenerate/);
      throwsCode(() => impl.sphericalTriangle(e(2, 0), e(2, 1), f32([1, 1])), 'E_ARG', /degenerate/);
      throwsCode(() => impl.sphericalTriangle(f32([1]), f32([2]), f32([3])), 'E_ARG', /dimension must be >= 2/);
      throwsCode(() => impl.sphericalTriangle(x, f32([1, 2]), x), 'E_SHAPE');
      throwsCode(() => impl.sphericalTriangle(x, f32([0, 0, 0]), e(3, 1)), 'E_ARG', /zero vector/);
      throwsCode(() => impl.sphericalTriangle(x, f32([NaN, 0, 1]), e(3, 1)), 'E_NON_FINITE');
      throwsCode(() => impl.sphericalTriangle(x, [1, 2, 3] as unknown as Float32Array, e(3, 1)), 'E_TYPE');
    }
  });
});
