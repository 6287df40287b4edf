import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { close, dv, forEachIsa, randm, randn, ref, throwsCode } from './helpers';

type M = { data: Float32Array; rows: number; cols: number };
const fx = JSON.parse(readFileSync(new URL('./fixtures/geometry.json', import.meta.url), 'utf8'));
const f32 = (a: number[]) => Float32Array.from(a);

describe('BatchNorm', () => {
  it('equals PyTorch BatchNorm1d(affine=False), train and eval, several steps', () => {
    for (const c of fx.batchNorm) {
      for (const impl of [dv, ref]) {
        const bn = new impl.BatchNorm(c.d, { momentum: c.momentum, eps: c.eps });
        expect(Array.from(bn.runningMean)).toEqual(new Array(c.d).fill(0));
        expect(Array.from(bn.runningVar)).toEqual(new Array(c.d).fill(1));
        expect(bn.runningMean).toBeInstanceOf(Float32Array);
        for (const s of c.steps) {
          const y = bn.forward({ data: f32(s.x), rows: s.n, cols: c.d });
          expect([y.rows, y.cols]).toEqual([s.n, c.d]);
          close(y.data, s.train, 1e-5, 1e-5);
          close(bn.runningMean, s.runningMean, 1e-6, 1e-6);
          close(bn.runningVar, s.runningVar, 1e-6, 1e-6);
          const ye = bn.forward({ data: f32(s.evalX), rows: 4, cols: c.d }, { training: false });
          close(ye.data, s.eval, 1e-5, 1e-5);
        }
      }
    }
  });

  it('native equals reference on random shapes; defaults', () => {
    for (const [n, d] of [
      [2, 1],
      [7, 13],
      [64, 33],
    ]) {
      const a = new dv.BatchNorm(d);
      const b = new ref.BatchNorm(d);
      expect([a.momentum, a.eps]).toEqual([0.1, 1e-5]);
      for (let t = 0; t < 3; t++) {
        const m = randm(n, d, n * d + t);
        close(a.forward(m).data, b.forward(m).data, 1e-5, 1e-5);
        close(a.runningMean, b.runningMean, 1e-6, 1e-7);
        close(a.runningVar, b.runningVar, 1e-6, 1e-7);
      }
      const m = randm(3, d, 99);
      close(a.forward(m, { training: false }).data, b.forward(m, { training: false }).data, 1e-5, 1e-5);
    }
  });

  it('drift story: train vs eval outputs drift more with a slow momentum on a moving stream', () => {
    const d = 16;
    const drift: Record<string, { meanCosine: number; meanL2: number }> = {};
    for (const momentum of [0.5, 0.01]) {
      const bn = new dv.BatchNorm(d, { momentum });
      let last: M | null = null;
      for (let t = 0; t < 40; t++) {
        // Non-stationary: the mean walks away and the scale grows over time.
        const m = randm(32, d, 1000 + t);
        for (let i = 0; i < m.data.length; i++) m.data[i] = m.data[i] * (1 + 0.05 * t) + 0.2 * t;
        bn.forward(m);
        last = m;
      }
      const train = new dv.BatchNorm(d, { momentum }).forward(last as M);
      const evalOut = bn.forward(last as M, { training: false });
      drift[momentum] = dv.embeddingDrift(train, evalOut);
      const r = ref.embeddingDrift(train, evalOut);
      close(drift[momentum].meanCosine, r.meanCosine, 1e-5, 1e-6);
      close(drift[momentum].meanL2, r.meanL2, 1e-5, 1e-6);
    }
    expect(drift[0.01].meanL2).toBeGreaterThan(2 * drift[0.5].meanL2);
    expect(drift[0.01].meanCosine).toBeLessThan(drift[0.5].meanCosine);
  });

  it('bad input', () => {
    for (const impl of [dv, ref]) {
      const bn = new impl.BatchNorm(4);
      throwsCode(() => bn.forward(randm(1, 4, 1)), 'E_SHAPE', /at least 2 rows/);
      expect(bn.forward(randm(1, 4, 1), { training: false }).rows).toBe(1);
      throwsCode(() => bn.forward(randm(5, 3, 1)), 'E_SHAPE', /dim 4/);
      const bad = randm(5, 4, 2);
      bad.data[3] = NaN;
      throwsCode(() => bn.forward(bad), 'E_NON_FINITE');
      throwsCode(() => bn.forward(randm(5, 4, 1), { training: 1 as unknown as boolean }), 'E_TYPE');
      throwsCode(() => new impl.BatchNorm(0), 'E_ARG');
      throwsCode(() => new impl.BatchNorm(2.5), 'E_TYPE');
      throwsCode(() => new impl.BatchNorm(3, { momentum: 1.5 }), 'E_ARG');
      throwsCode(() => new impl.BatchNorm(3, { eps: 0 }), 'E_ARG');
      // A failed call leaves the running statistics alone.
      expect(Array.from(bn.runningMean)).toEqual([0, 0, 0, 0]);
    }
  });
});

describe('embeddingDrift and sparsity', () => {
  it('embeddingDrift: definitions and native vs reference', () => {
    const a = { data: f32([1, 0, 0, 2, 0, 0]), rows: 3, cols: 2 };
    const b = { data: f32([0, 1, 0, 4, 3, 4]), rows: 3, cols: 2 };
    for (const impl of [dv, ref]) {
      const r = impl.embeddingDrift(a, b);
      close(r.meanCosine, (0 + 1 + 0) / 3, 1e-7);
      close(r.meanL2, (Math.SQRT2 + 2 + 5) / 3, 1e-7);
    }
    const x = randm(37, 65, 1);
    const y = randm(37, 65, 2);
    const g = dv.embeddingDrift(x, y);
    const w = ref.embeddingDrift(x, y);
    close(g.meanCosine, w.meanCosine, 1e-5, 1e-6);
    close(g.meanL2, w.meanL2, 1e-5);
    for (const impl of [dv, ref]) {
      throwsCode(() => impl.embeddingDrift(x, randm(36, 65, 2)), 'E_SHAPE');
      const bad = randm(37, 65, 3);
      bad.data[5] = -Infinity;
      throwsCode(() => impl.embeddingDrift(x, bad), 'E_NON_FINITE');
    }
  });

  it('sparsity: Hoyer values against NumPy, and simple rows', () => {
    const s = fx.sparsity;
    const m = { data: f32(s.m), rows: s.rows, cols: s.cols };
    for (const impl of [dv, ref]) {
      const r = impl.sparsity(m);
      close(r.fractionNearZero, s.fractionNearZero, 1e-12);
      close(r.hoyer, s.hoyer, 1e-6);
      // One-hot → 1, flat → 0, zero → 0.
      const h = impl.sparsity({ data: f32([0, 5, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]), rows: 3, cols: 4 });
      close(h.hoyer, 1 / 3, 1e-7);
      close(h.fractionNearZero, 7 / 12, 1e-12);
      close(impl.sparsity({ data: f32([0.5, -0.1]), rows: 1, cols: 2 }, { eps: 0.2 }).fractionNearZero, 0.5, 0);
    }
    const x = randm(20, 31, 4);
    for (let i = 0; i < x.data.length; i += 3) x.data[i] = 0;
    const g = dv.sparsity(x);
    const w = ref.sparsity(x);
    close(g.hoyer, w.hoyer, 1e-6);
    expect(g.fractionNearZero).toBe(w.fractionNearZero);
    for (const impl of [dv, ref]) {
      throwsCode(() => impl.sparsity(randm(3, 1, 1)), 'E_ARG', /at least 2 columns/);
      throwsCode(() => impl.sparsity(x, { eps: -1 }), 'E_ARG');
      const bad = randm(3, 4, 1);
      bad.data[0] = NaN;
      throwsCode(() => impl.sparsity(bad), 'E_NON_FINITE');
    }
  });
});

/** Central finite differences of the reference loss wrt every entry of a and b. */
function fdGrad(a: M, b: M, p: number, h: number): { ga: number[]; gb: number[] } {
  const lossAt = (aa: M, bb: M) => ref.wassersteinRegularizer(aa, bb, { p }).loss;
  const one = (which: 'a' | 'b') => {
    const m = which === 'a' ? a : b;
    const out: number[] = [];
    for (let i = 0; i < m.data.length; i++) {
      const plus = { ...m, data: Float32Array.from(m.data) };
      const minus = { ...m, data: Float32Array.from(m.data) };
      plus.data[i] += h;
      minus.data[i] -= h;
      const hp = plus.data[i] - m.data[i];
      const hm = m.data[i] - minus.data[i];
      const lp = which === 'a' ? lossAt(plus, b) : lossAt(a, plus);
      const lm = which === 'a' ? lossAt(minus, b) : lossAt(a, minus);
      out.push((lp - lm) / (hp + hm));
    }
    return out;
  };
  return { ga: one('a'), gb: one('b') };
}

describe('wassersteinRegularizer', () => {
  it('loss equals POT wasserstein_1d; gradients equal PyTorch autograd (incl. ties)', () => {
    for (const c of fx.wasserstein) {
      const a = { data: f32(c.a), rows: c.n, cols: c.d };
      const b = { data: f32(c.b), rows: c.n, cols: c.d };
      // POT returns the p-th power of the p-Wasserstein distance: the same quantity.
      close(c.pot, c.loss, 1e-12, 1e-14);
      for (const impl of [dv, ref]) {
        const r = impl.wassersteinRegularizer(a, b, { p: c.p });
        close(r.loss, c.loss, 1e-5, 1e-7);
        close(r.gradA.data, c.gradA, 1e-4, 1e-5);
        close(r.gradB.data, c.gradB, 1e-4, 1e-5);
        expect([r.gradA.rows, r.gradA.cols]).toEqual([c.n, c.d]);
      }
    }
  });

  it('gradients equal central finite differences of the reference, p = 1 and 2', () => {
    for (const p of [1, 2]) {
      const a = randm(6, 4, 10 + p);
      const b = randm(6, 4, 20 + p);
      const r = ref.wassersteinRegularizer(a, b, { p });
      const fd = fdGrad(a, b, p, 1e-3);
      close(r.gradA.data, fd.ga, 2e-2, 2e-4);
      close(r.gradB.data, fd.gb, 2e-2, 2e-4);
    }
  });

  it('native equals reference on random shapes, every ISA', () => {
    const want = new Map<string, ReturnType<typeof ref.wassersteinRegularizer>>();
    forEachIsa(() => {
      for (const [n, d] of [
        [2, 1],
        [3, 2],
        [17, 9],
        [70, 33],
        [130, 64],
      ]) {
        for (const p of [1, 2]) {
          const a = randm(n, d, n + d);
          const b = randm(n, d, n * d);
          const g = dv.wassersteinRegularizer(a, b, { p });
          const key = `${n},${d},${p}`;
          if (!want.has(key)) want.set(key, ref.wassersteinRegularizer(a, b, { p }));
          const w = want.get(key) as ReturnType<typeof ref.wassersteinRegularizer>;
          close(g.loss, w.loss, 1e-4, 1e-7);
          // Near-equal similarities may sort differently in float32; that moves the gradient by
          // the gap between neighbouring sorted values, which is small.
          const tol = p === 2 ? 1e-4 : 2e-3;
          close(g.gradA.data, w.gradA.data, 1e-3, tol);
          close(g.gradB.data, w.gradB.data, 1e-3, tol);
        }
      }
    });
  });

  it('is zero for views with the same similarity profile, whatever the rotation', () => {
    const a = randm(40, 12, 3);
    const b = dv.matmul(a, dv.randomOrthogonal(12, 5));
    for (const impl of [dv, ref]) {
      const r = impl.wassersteinRegularizer(a, b);
      expect(r.loss).toBeLessThan(1e-10);
      for (const v of r.gradA.data) expect(Math.abs(v)).toBeLessThan(1e-5);
    }
  });

  it('stable tie handling: equal similarities keep pair order', () => {
    // Rows 0, 1, 2 identical in a: S_a(0,3) = S_a(1,3) = S_a(2,3) exactly, and so on.
    const d = 3;
    const a = { data: f32([1, 2, 2, 1, 2, 2, 1, 2, 2, 0, 1, 0]), rows: 4, cols: d };
    const b = randm(4, d, 8);
    for (const p of [1, 2]) {
      const r = ref.wassersteinRegularizer(a, b, { p });
      const g = dv.wassersteinRegularizer(a, b, { p });
      close(g.gradA.data, r.gradA.data, 1e-4, 1e-5);
      close(g.gradB.data, r.gradB.data, 1e-4, 1e-5);
      // The tied pairs (0,3), (1,3), (2,3) take the coefficients of consecutive sorted slots in
      // pair order, so the identical rows 0, 1, 2 get different gradients for p = 2.
      if (p === 2) {
        const g0 = [0, 1, 2].map((i) => r.gradA.data[i * d]);
        expect(new Set(g0).size).toBe(3);
      }
    }
  });

  it('p = 1 subgradient of |0| is 0', () => {
    // a and b with the same sorted similarities except one pair.
    const a = randm(5, 3, 1);
    const r = ref.wassersteinRegularizer(a, a, { p: 1 });
    expect(r.loss).toBe(0);
    expect(r.gradA.data.every((v) => v === 0)).toBe(true);
    const g = dv.wassersteinRegularizer(a, a, { p: 1 });
    expect(g.loss).toBe(0);
    expect(g.gradA.data.every((v) => v === 0)).toBe(true);
  });

  it('async twin, thread independence, bad input', async () => {
    const a = randm(300, 16, 1);
    const b = randm(300, 16, 2);
    const s = dv.wassersteinRegularizer(a, b);
    const t = await dv.wassersteinRegularizerAsync(a, b);
    expect(t.loss).toBe(s.loss);
    expect(Array.from(t.gradA.data)).toEqual(Array.from(s.gradA.data));
    dv.setThreads(1);
    const u = dv.wassersteinRegularizer(a, b);
    dv.setThreads(2);
    expect(u.loss).toBe(s.loss);
    expect(Array.from(u.gradB.data)).toEqual(Array.from(s.gradB.data));
    await expect(dv.wassersteinRegularizerAsync(a, b, { p: 3 })).rejects.toMatchObject({ code: 'E_ARG' });
    for (const impl of [dv, ref]) {
      throwsCode(() => impl.wassersteinRegularizer(a, randm(299, 16, 1)), 'E_SHAPE');
      throwsCode(() => impl.wassersteinRegularizer(randm(1, 4, 1), randm(1, 4, 2)), 'E_SHAPE', /at least 2/);
      throwsCode(() => impl.wassersteinRegularizer(a, b, { p: 3 }), 'E_ARG', /p must be 1 or 2/);
      const z = randm(300, 16, 3);
      z.data.fill(0, 16, 32);
      throwsCode(() => impl.wassersteinRegularizer(a, z), 'E_ARG', /zero-norm row 1/);
      const bad = randm(300, 16, 3);
      bad.data[100] = NaN;
      throwsCode(() => impl.wassersteinRegularizer(bad, b), 'E_NON_FINITE');
      throwsCode(() => impl.wassersteinRegularizer(a, { data: randn(10, 1), rows: 300, cols: 16 }), 'E_SHAPE');
    }
  });
});
