import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { close, dv, randm, ref, refStats, throwsCode } from './helpers';

type M = { data: Float32Array; rows: number; cols: number };

const fixtures = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'statistics.json'), 'utf8')) as {
  cases: { s: number; d: number; greater: number; twoSided: number; greaterMp: number; twoSidedMp: number }[];
  large: { s: number; d: number; greater: number; twoSided: number }[];
};

/** SplitMix64 written directly with BigInt, as an independent check of the 32-bit-halves code. */
function splitmixBig(seed: bigint): () => bigint {
  const mask = (1n << 64n) - 1n;
  let state = seed;
  return () => {
    state = (state + 0x9e3779b97f4a7c15n) & mask;
    let z = state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
    return z ^ (z >> 31n);
  };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** All pairwise cosines i < j in float64. */
function allCosines(m: M): Float64Array {
  const { rows: n, cols: d, data } = m;
  const nrm = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += data[i * d + k] ** 2;
    nrm[i] = Math.sqrt(s);
  }
  const out = new Float64Array((n * (n - 1)) / 2);
  let p = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += data[i * d + k] * data[j * d + k];
      out[p++] = nrm[i] === 0 || nrm[j] === 0 ? 0 : s / (nrm[i] * nrm[j]);
    }
  }
  return out;
}

afterAll(() => dv.setThreads(2));

describe('statistics: the PRNG', () => {
  it('runs on the native backend', () => {
    expect(dv.backendInfo().backend).toBe('native');
  });

  it('SplitMix64 matches the published outputs and a BigInt implementation', () => {
    const g = new refStats.SplitMix64(0);
    expect(g.nextU64()).toBe(0xe220a8397b1dcdafn);
    expect(g.nextU64()).toBe(0x6e789e6aa1b965f4n);
    expect(g.nextU64()).toBe(0x06c45d188009454fn);
    for (const seed of [1, 42, 0xffffffff, 2 ** 32, 2 ** 40 + 12345, Number.MAX_SAFE_INTEGER]) {
      const a = new refStats.SplitMix64(seed);
      const b = splitmixBig(BigInt(seed));
      for (let i = 0; i < 2000; i++) expect(a.nextU64()).toBe(b());
    }
  });

  it('jumping k draws equals drawing k times', () => {
    for (const k of [0, 1, 7, 1000, 2 ** 33 + 5]) {
      const a = new refStats.SplitMix64(987654321);
      a.jump(k);
      const b = splitmixBig(987654321n + ((BigInt(k) * 0x9e3779b97f4a7c15n) & ((1n << 64n) - 1n)));
      expect(a.nextU64()).toBe(b() & ((1n << 64n) - 1n));
    }
    const a = new refStats.SplitMix64(5);
    for (let i = 0; i < 1001; i++) a.nextU64();
    const b = new refStats.SplitMix64(5);
    b.jump(1001);
    expect(a.nextU64()).toBe(b.nextU64());
  });

  it('uniforms are ((z >> 11) + 0.5) / 2^53, strictly positive', () => {
    const g = new refStats.SplitMix64(77);
    const b = splitmixBig(77n);
    for (let i = 0; i < 1000; i++) {
      const u = g.uniform();
      expect(u).toBe((Number(b() >> 11n) + 0.5) / 2 ** 53);
      expect(u > 0 && u < 1).toBe(true);
    }
  });

  it('native and reference random unit vectors agree (same stream, 1e-6)', () => {
    for (const [n, d, seed] of [
      [1, 1, 0],
      [3, 7, 1],
      [5, 2, 2 ** 53 - 1],
      [64, 767, 12345],
      [4000, 5, 9],
      [33, 1025, 2 ** 40],
    ]) {
      const a = dv.randomUnitVectors(n, d, seed);
      const b = ref.randomUnitVectors(n, d, seed);
      expect([a.rows, a.cols]).toEqual([n, d]);
      close(a.data, b.data, 1e-6, 1e-6);
    }
  });

  it('the first row is the normalized first d normals of the Box–Muller stream', () => {
    const d = 5;
    const g = new refStats.SplitMix64(2024);
    const z: number[] = [];
    while (z.length < d) {
      const u1 = g.uniform();
      const u2 = g.uniform();
      const r = Math.sqrt(-2 * Math.log(u1));
      z.push(r * Math.cos(2 * Math.PI * u2), r * Math.sin(2 * Math.PI * u2));
    }
    const x = z.slice(0, d);
    const nx = Math.hypot(...x);
    close(
      dv.randomUnitVectors(1, d, 2024).data,
      x.map((t) => t / nx),
      1e-6,
      1e-7,
    );
  });

  it('random unit vectors have unit norm, and a seed fixes them', () => {
    const m = dv.randomUnitVectors(500, 96, 3);
    for (let i = 0; i < m.rows; i++) {
      let s = 0;
      for (let k = 0; k < m.cols; k++) s += m.data[i * m.cols + k] ** 2;
      expect(Math.abs(Math.sqrt(s) - 1)).toBeLessThan(1e-6);
    }
    expect(sameBits(dv.randomUnitVectors(500, 96, 3).data, m.data)).toBe(true);
    expect(sameBits(dv.randomUnitVectors(500, 96, 4).data, m.data)).toBe(false);
  });

  it('random unit vectors do not depend on the thread count', () => {
    dv.setThreads(1);
    const a = dv.randomUnitVectors(3001, 37, 11);
    dv.setThreads(3);
    const b = dv.randomUnitVectors(3001, 37, 11);
    dv.setThreads(2);
    expect(sameBits(a.data, b.data)).toBe(true);
  });
});

describe('statistics: the null distribution', () => {
  it('nullCosine is {0, 1/d, 1/sqrt(d)}', () => {
    for (const d of [2, 3, 768, 4096]) {
      for (const lib of [dv, ref]) {
        expect(lib.nullCosine(d)).toEqual({ mean: 0, variance: 1 / d, std: 1 / Math.sqrt(d) });
      }
    }
  });

  it('random unit vectors: mean cosine ≈ 0 and variance ≈ 1/d within 5σ', () => {
    // For iid uniform unit vectors the pairwise cosines are pairwise uncorrelated, and so are
    // their squares, so the standard errors below are exact: Var(mean) = (1/d)/P and
    // Var(mean of c²) = (E[c⁴] − 1/d²)/P with E[c⁴] = 3/(d(d+2)).
    for (const [n, d] of [
      [400, 3],
      [600, 64],
      [300, 768],
    ]) {
      const m = dv.randomUnitVectors(n, d, n + d);
      const st = dv.similarityStats(m);
      const P = (n * (n - 1)) / 2;
      expect(st.pairs).toBe(P);
      expect(Math.abs(st.mean)).toBeLessThan(5 * Math.sqrt(1 / d / P));
      expect(Math.abs(st.zScore)).toBeLessThan(5);
      const varC2 = 3 / (d * (d + 2)) - 1 / (d * d);
      expect(Math.abs(st.variance - 1 / d)).toBeLessThan(5 * Math.sqrt(varC2 / P) + st.mean ** 2 + 25 / d / P);
      expect(st.nullVariance).toBe(1 / d);
    }
  });

  it('the p-value matches the empirical tail of random cosines within 5σ', () => {
    // Given x_i, the cosines c_ij (j ≠ i) are iid with the null law, so pair indicators are
    // pairwise independent and the tail fraction has variance p(1 − p)/P.
    for (const [n, d] of [
      [500, 4],
      [500, 30],
      [400, 200],
    ]) {
      const m = dv.randomUnitVectors(n, d, 1000 + d);
      const cs = allCosines(m);
      const P = cs.length;
      for (const z of [-1.5, 0, 0.5, 1, 2, 3]) {
        const s = Math.max(-0.999, Math.min(0.999, z / Math.sqrt(d)));
        const p = dv.cosinePValue(s, d);
        const p2 = dv.cosinePValue(s, d, { tail: 'two-sided' });
        let up = 0;
        let both = 0;
        for (const c of cs) {
          if (c >= s) up++;
          if (Math.abs(c) >= Math.abs(s)) both++;
        }
        expect(Math.abs(up / P - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / P) + 1 / P);
        expect(Math.abs(both / P - p2)).toBeLessThan(5 * Math.sqrt((p2 * (1 - p2)) / P) + 1 / P);
      }
    }
  });

  it('cosinePValue matches SciPy to 1e-9 absolute (and 1e-9 relative), both tails', () => {
    let worstAbs = 0;
    let worstRel = 0;
    for (const lib of [dv, ref]) {
      for (const c of fixtures.cases) {
        const g = lib.cosinePValue(c.s, c.d);
        const t = lib.cosinePValue(c.s, c.d, { tail: 'two-sided' });
        for (const [got, want] of [
          [g, c.greater],
          [t, c.twoSided],
        ]) {
          const e = Math.abs(got - want);
          if (!(e <= 1e-9)) expect.fail(`d=${c.d} s=${c.s}: ${got} vs SciPy ${want}`);
          worstAbs = Math.max(worstAbs, e);
          if (want > 1e-290) worstRel = Math.max(worstRel, e / want);
        }
      }
    }
    expect(worstAbs).toBeLessThan(1e-12);
    expect(worstRel).toBeLessThan(1e-9);
  });

  it('cosinePValue stays accurate far beyond d = 4096 (SciPy, d up to 1e8, 1e-9 relative)', () => {
    expect(fixtures.large.length).toBeGreaterThan(20);
    for (const lib of [dv, ref]) {
      for (const c of fixtures.large) {
        close(lib.cosinePValue(c.s, c.d), c.greater, 1e-9, 1e-300);
        close(lib.cosinePValue(c.s, c.d, { tail: 'two-sided' }), c.twoSided, 1e-9, 1e-300);
      }
    }
  });

  it('cosinePValue: native equals reference, symmetric and monotone', () => {
    for (const d of [2, 3, 7, 64, 1000, 4096, 100000]) {
      let prev = 1;
      for (let s = -1; s <= 1.0000001; s += 0.01) {
        const t = Math.max(-1, Math.min(1, s));
        const a = dv.cosinePValue(t, d);
        close(a, ref.cosinePValue(t, d), 1e-12, 1e-15);
        expect(a).toBeLessThanOrEqual(prev + 1e-15);
        prev = a;
        // P(cos ≥ s) + P(cos ≥ −s) = 1 (continuous, symmetric law).
        close(a + dv.cosinePValue(-t, d), 1, 0, 1e-14);
        close(dv.cosinePValue(t, d, { tail: 'two-sided' }), Math.min(1, 2 * dv.cosinePValue(Math.abs(t), d)), 0, 1e-15);
      }
    }
    expect(dv.cosinePValue(1, 10)).toBe(0);
    expect(dv.cosinePValue(-1, 10)).toBe(1);
    expect(dv.cosinePValue(0, 10)).toBe(0.5);
    expect(dv.cosinePValue(0, 10, { tail: 'two-sided' })).toBe(1);
    // A cosine of 0.2 is unremarkable in 10 dimensions and impossible by chance in 1536.
    expect(dv.cosinePValue(0.2, 10)).toBeGreaterThan(0.25);
    expect(dv.cosinePValue(0.2, 1536)).toBeLessThan(1e-14);
  });
});

describe('statistics: similarityStats', () => {
  function skewed(n: number, d: number, seed: number): M {
    // Gaussian rows plus a shared direction: positive mean cosine, spread-out cosines.
    const m = randm(n, d, seed);
    for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) m.data[i * d + k] += 0.7 * Math.cos(k);
    return m;
  }

  it('native equals reference equals the naive two-pass statistics', () => {
    for (const [n, d] of [
      [2, 1],
      [2, 3],
      [3, 7],
      [17, 33],
      [257, 5],
      [300, 65],
      [700, 17],
    ]) {
      const m = skewed(n, d, n * 7 + d);
      if (n > 10) m.data.fill(0, 3 * d, 4 * d); // a zero row: cosine 0 with everything
      const cs = allCosines(m);
      const mean = cs.reduce((a, b) => a + b, 0) / cs.length;
      const variance = cs.reduce((a, c) => a + (c - mean) ** 2, 0) / cs.length;
      for (const st of [dv.similarityStats(m), ref.similarityStats(m)]) {
        expect(st.pairs).toBe(cs.length);
        close(st.mean, mean, 1e-6, 1e-6);
        close(st.variance, variance, 1e-5, 1e-7);
        expect(st.nullVariance).toBe(1 / d);
        close(st.zScore, st.mean / Math.sqrt(1 / d / cs.length), 1e-12);
      }
    }
  });

  it('the sample path draws the same pairs on both backends', () => {
    for (const [n, d, pairs, seed] of [
      [2, 3, 1, 0],
      [10, 4, 1000, 5],
      [333, 21, 100_001, 2 ** 50],
    ]) {
      const m = skewed(n, d, n);
      const a = dv.similarityStats(m, { sample: { pairs, seed } });
      const b = ref.similarityStats(m, { sample: { pairs, seed } });
      expect(a.pairs).toBe(pairs);
      expect(b.pairs).toBe(pairs);
      close(a.mean, b.mean, 1e-6, 1e-7);
      close(a.variance, b.variance, 1e-5, 1e-8);
      close(a.zScore, b.zScore, 1e-5, 1e-5);
    }
    // The pairs themselves follow the documented recipe.
    const g = new refStats.SplitMix64(9);
    const h = new refStats.SplitMix64(9);
    for (let p = 0; p < 1000; p++) {
      const [i, j] = refStats.samplePair(g, 7);
      const i0 = Math.floor(h.uniform() * 7);
      let j0 = Math.floor(h.uniform() * 6);
      if (j0 >= i0) j0++;
      expect([i, j]).toEqual([i0, j0]);
      expect(i).not.toBe(j);
    }
  });

  it('sampled and exact statistics agree statistically', () => {
    // Pairs are drawn iid uniformly from all ordered pairs i ≠ j, so the sampled mean has
    // standard error sqrt(variance / pairs).
    const m = skewed(800, 24, 3);
    const ex = dv.similarityStats(m);
    for (const seed of [1, 2, 3]) {
      const pairs = 50_000;
      const sa = dv.similarityStats(m, { sample: { pairs, seed } });
      expect(Math.abs(sa.mean - ex.mean)).toBeLessThan(5 * Math.sqrt(ex.variance / pairs));
      expect(Math.abs(sa.variance - ex.variance)).toBeLessThan(0.05 * ex.variance);
      close(sa.zScore, sa.mean / Math.sqrt(ex.nullVariance / pairs), 1e-12);
    }
  });

  it('cosine statistics are scale invariant, dot thresholds are not', () => {
    const m = dv.randomUnitVectors(300, 32, 8);
    const scaled = { data: new Float32Array(m.data), rows: m.rows, cols: m.cols };
    for (let i = 0; i < m.rows; i++) for (let k = 0; k < m.cols; k++) scaled.data[i * m.cols + k] *= 0.1 + (i % 13);
    const a = dv.similarityStats(m);
    const b = dv.similarityStats(scaled);
    close(b.mean, a.mean, 1e-5, 1e-6);
    close(b.variance, a.variance, 1e-4, 1e-7);
    const count = (s: M, metric: 'dot' | 'cosine', t: number): number => {
      const sm = dv.similarityMatrix(s, s, { metric });
      let c = 0;
      for (let i = 0; i < s.rows; i++) for (let j = i + 1; j < s.rows; j++) if (sm.data[i * s.rows + j] >= t) c++;
      return c;
    };
    const t = 2 / Math.sqrt(32);
    expect(count(scaled, 'cosine', t)).toBe(count(m, 'cosine', t));
    expect(count(scaled, 'dot', t)).toBeGreaterThan(5 * count(m, 'dot', t));
  });

  it('results do not depend on the thread count (bit for bit)', () => {
    const m = skewed(1100, 40, 12);
    const runs = [1, 2, 3].map((t) => {
      dv.setThreads(t);
      return [dv.similarityStats(m), dv.similarityStats(m, { sample: { pairs: 200_000, seed: 4 } })];
    });
    dv.setThreads(2);
    expect(runs[1]).toEqual(runs[0]);
    expect(runs[2]).toEqual(runs[0]);
  });

  it('async twin agrees and rejects bad input', async () => {
    const m = skewed(300, 10, 1);
    expect(await dv.similarityStatsAsync(m)).toEqual(dv.similarityStats(m));
    expect(await dv.similarityStatsAsync(m, { sample: { pairs: 999, seed: 3 } })).toEqual(dv.similarityStats(m, { sample: { pairs: 999, seed: 3 } }));
    await expect(dv.similarityStatsAsync({ data: new Float32Array(3), rows: 1, cols: 3 })).rejects.toMatchObject({ code: 'E_SHAPE' });
  });
});

describe('statistics: bad input', () => {
  const libs = [dv, ref] as const;

  it('randomUnitVectors', () => {
    for (const lib of libs) {
      throwsCode(() => lib.randomUnitVectors(2.5, 3, 1), 'E_TYPE', /randomUnitVectors: n/);
      throwsCode(() => lib.randomUnitVectors(2, 3, 1.5), 'E_TYPE', /seed/);
      throwsCode(() => lib.randomUnitVectors(2, '3' as unknown as number, 1), 'E_TYPE', /d/);
      throwsCode(() => lib.randomUnitVectors(0, 3, 1), 'E_ARG', /n must be >= 1/);
      throwsCode(() => lib.randomUnitVectors(2, 0, 1), 'E_ARG', /d must be >= 1/);
      throwsCode(() => lib.randomUnitVectors(2, 3, -1), 'E_ARG', /seed/);
      throwsCode(() => lib.randomUnitVectors(2, 3, 2 ** 53), 'E_ARG', /seed/);
      throwsCode(() => lib.randomUnitVectors(2 ** 20, 2 ** 11, 1), 'E_ARG', /limit/);
    }
  });

  it('nullCosine and cosinePValue', () => {
    for (const lib of libs) {
      throwsCode(() => lib.nullCosine(1), 'E_ARG', /nullCosine: d must be >= 2, got 1/);
      throwsCode(() => lib.nullCosine(2.5), 'E_TYPE', /nullCosine: d/);
      throwsCode(() => lib.cosinePValue(0.1, 1), 'E_ARG', /d must be >= 2/);
      throwsCode(() => lib.cosinePValue(0.1, 10.5), 'E_TYPE', /d must be an integer/);
      throwsCode(() => lib.cosinePValue(1.0000001, 10), 'E_ARG', /s must be in \[-1, 1\]/);
      throwsCode(() => lib.cosinePValue(-Infinity, 10), 'E_ARG', /s must be/);
      throwsCode(() => lib.cosinePValue(NaN, 10), 'E_NON_FINITE', /s is NaN/);
      throwsCode(() => lib.cosinePValue('0.5' as unknown as number, 10), 'E_TYPE', /s must be a number/);
      throwsCode(() => lib.cosinePValue(0.5, 10, { tail: 'less' as 'greater' }), 'E_ARG', /unknown tail 'less'/);
      throwsCode(() => lib.cosinePValue(0.5, 10, { tail: 1 as unknown as 'greater' }), 'E_TYPE', /tail/);
      // Order of codes: type before argument before finiteness.
      throwsCode(() => lib.cosinePValue(NaN, 1.5), 'E_TYPE');
      throwsCode(() => lib.cosinePValue(NaN, 1), 'E_ARG');
    }
  });

  it('similarityStats', () => {
    const good = { data: new Float32Array(6), rows: 2, cols: 3 };
    for (const lib of libs) {
      throwsCode(() => lib.similarityStats({ data: [1, 2], rows: 1, cols: 2 } as unknown as M), 'E_TYPE', /m.data/);
      throwsCode(() => lib.similarityStats({ data: new Float32Array(3), rows: 1, cols: 3 }), 'E_SHAPE', /at least 2/);
      throwsCode(() => lib.similarityStats({ data: new Float32Array(5), rows: 2, cols: 3 }), 'E_SHAPE', /rows \* cols/);
      throwsCode(() => lib.similarityStats(good, { sample: { pairs: 1.5, seed: 1 } }), 'E_TYPE', /sample.pairs/);
      throwsCode(() => lib.similarityStats(good, { sample: { pairs: 10, seed: 0.5 } }), 'E_TYPE', /sample.seed/);
      throwsCode(() => lib.similarityStats(good, { sample: 3 as unknown as { pairs: number; seed: number } }), 'E_TYPE', /sample/);
      throwsCode(() => lib.similarityStats(good, { sample: { pairs: 0, seed: 1 } }), 'E_ARG', /sample.pairs/);
      throwsCode(() => lib.similarityStats(good, { sample: { pairs: 5, seed: -2 } }), 'E_ARG', /sample.seed/);
      const bad = { data: new Float32Array([1, 2, 3, 4, NaN, 6]), rows: 2, cols: 3 };
      throwsCode(() => lib.similarityStats(bad), 'E_NON_FINITE', /similarityStats: m has a non-finite value NaN at index 4/);
      bad.data[4] = Infinity;
      throwsCode(() => lib.similarityStats(bad), 'E_NON_FINITE');
      // Shape wins over finiteness, type over shape.
      throwsCode(() => lib.similarityStats({ data: new Float32Array([NaN, 1]), rows: 1, cols: 2 }), 'E_SHAPE');
      throwsCode(() => lib.similarityStats({ data: new Float32Array(3), rows: 1, cols: 3 }, { sample: { pairs: 0.5, seed: 1 } }), 'E_TYPE');
    }
  });
});
