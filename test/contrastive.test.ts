import { describe, expect, it } from 'vitest';
import { close, closeGrad, dv, fdGrad, fixture, fm, LOSS_SHAPES, type M, maxAbs, randm, randn, ref, rng, throwsCode } from './helpers';

const fixtures = fixture('learning.json');

function unitRows(rows: number, cols: number, seed: number): M {
  return ref.normalizeRows(randm(rows, cols, seed));
}

describe('contrastive: reference gradients by finite differences', () => {
  const B = 3;
  const K = 5;
  const d = 4;
  const variants: Array<[string, Record<string, unknown>]> = [
    ['plain', {}],
    ['positives', { positives: new Uint32Array([4, 0, 2]) }],
    ['logQ', { logQ: new Float32Array([-1.2, -0.3, -2.5, -1.6, -0.9]) }],
    ['normalize', { normalize: true }],
    ['all', { positives: new Uint32Array([1, 1, 3]), logQ: new Float32Array([-0.5, -1.5, -1, -2, -3]), normalize: true }],
  ];
  for (const [name, extra] of variants) {
    it(`infoNCE ${name}`, () => {
      const q = randm(B, d, 11);
      const keys = randm(K, d, 12);
      const o = { temperature: 0.3, ...extra };
      const r = ref.infoNCE(q, keys, o);
      const f = () => ref.infoNCE(q, keys, o).loss;
      closeGrad(r.gradQ.data, fdGrad(q.data, f), 1e-4, 1e-5);
      closeGrad(r.gradKeys.data, fdGrad(keys.data, f), 1e-4, 1e-5);
    });
  }

  it('ntXent', () => {
    const a = randm(3, 4, 21);
    const b = randm(3, 4, 22);
    const o = { temperature: 0.4 };
    const r = ref.ntXent(a, b, o);
    const f = () => ref.ntXent(a, b, o).loss;
    closeGrad(r.gradA.data, fdGrad(a.data, f), 1e-4, 1e-5);
    closeGrad(r.gradB.data, fdGrad(b.data, f), 1e-4, 1e-5);
  });

  it('ntXent with one pair has loss 0 and zero gradients', () => {
    const r = ref.ntXent(randm(1, 3, 1), randm(1, 3, 2), { temperature: 0.1 });
    expect(r.loss).toBe(0);
    expect(maxAbs(r.gradA.data)).toBe(0);
  });

  it('∂/∂x log p(y⁺|x) = (1/τ)(y⁺ − E_p[y]) for one query, both backends', () => {
    for (const be of [ref, dv]) {
      const x = randm(1, 6, 31);
      const ys = randm(9, 6, 32);
      const tau = 0.7;
      const pos = 4;
      const p = be.softmaxProbabilities(x.data, ys, tau);
      const want = new Float64Array(6);
      for (let k = 0; k < 6; k++) {
        let e = 0;
        for (let j = 0; j < 9; j++) e += p[j] * ys.data[j * 6 + k];
        want[k] = (ys.data[pos * 6 + k] - e) / tau;
      }
      // infoNCE's loss for one query is −log p(y⁺|x), so its gradient is the negative.
      const r = be.infoNCE(x, ys, { temperature: tau, positives: new Uint32Array([pos]) });
      closeGrad(
        Array.from(r.gradQ.data, (g) => -g),
        want,
        1e-5,
        1e-6,
      );
    }
  });
});

describe('contrastive: native vs reference', () => {
  it('runs on the native backend', () => {
    expect(dv.backendInfo().backend).toBe('native');
  });

  for (const [B, K, d] of LOSS_SHAPES) {
    it(`infoNCE B=${B} K=${K} d=${d}, every option`, () => {
      const q = randm(B, d, B * 7 + d);
      const keys = randm(K, d, K * 3 + d);
      const r = rng(B + K + d);
      const positives = Uint32Array.from({ length: B }, () => Math.floor(r() * K));
      const logQ = Float32Array.from({ length: K }, () => Math.log(0.01 + r()));
      const opts = [
        { temperature: 0.5 },
        { temperature: 0.1, normalize: true },
        { temperature: 0.2, positives, logQ },
        { temperature: 0.05, positives, logQ, normalize: true },
      ];
      for (const o of opts) {
        const got = dv.infoNCE(q, keys, o);
        const want = ref.infoNCE(q, keys, o);
        close(got.loss, want.loss, 1e-5, 1e-5);
        expect([got.gradQ.rows, got.gradQ.cols, got.gradKeys.rows, got.gradKeys.cols]).toEqual([B, d, K, d]);
        closeGrad(got.gradQ.data, want.gradQ.data, 1e-3, 1e-4);
        closeGrad(got.gradKeys.data, want.gradKeys.data, 1e-3, 1e-4);
      }
    });
  }

  it('infoNCE with more queries than keys (explicit positives)', () => {
    const q = randm(9, 6, 81);
    const keys = randm(4, 6, 82);
    const positives = new Uint32Array([0, 1, 2, 3, 3, 2, 1, 0, 0]);
    for (const normalize of [false, true]) {
      const o = { temperature: 0.3, positives, normalize };
      const got = dv.infoNCE(q, keys, o);
      const want = ref.infoNCE(q, keys, o);
      close(got.loss, want.loss, 1e-5, 1e-5);
      closeGrad(got.gradQ.data, want.gradQ.data, 1e-3, 1e-4);
      closeGrad(got.gradKeys.data, want.gradKeys.data, 1e-3, 1e-4);
      const f = () => ref.infoNCE(q, keys, o).loss;
      closeGrad(want.gradKeys.data, fdGrad(keys.data, f), 1e-4, 1e-5);
    }
  });

  for (const [N, d] of [
    [1, 3],
    [2, 1],
    [7, 9],
    [131, 65],
  ]) {
    it(`ntXent N=${N} d=${d}`, () => {
      const a = randm(N, d, N + d);
      const b = randm(N, d, N * 5 + d);
      for (const temperature of [0.5, 0.07]) {
        const got = dv.ntXent(a, b, { temperature });
        const want = ref.ntXent(a, b, { temperature });
        close(got.loss, want.loss, 1e-5, 1e-5);
        closeGrad(got.gradA.data, want.gradA.data, 1e-3, 1e-4);
        closeGrad(got.gradB.data, want.gradB.data, 1e-3, 1e-4);
      }
    });
  }

  it('softmaxProbabilities and mismatchScore agree', () => {
    for (const [n, d] of [
      [1, 1],
      [2, 3],
      [50, 17],
    ]) {
      const x = randn(d, n);
      const ys = randm(n, d, n + 1);
      const p = dv.softmaxProbabilities(x, ys, 0.3);
      close(p, ref.softmaxProbabilities(x, ys, 0.3), 1e-5, 1e-7);
      close(
        p.reduce((s, v) => s + v, 0),
        1,
        1e-5,
      );
    }
    for (const [n, d] of [
      [2, 1],
      [3, 4],
      [200, 33],
    ]) {
      const a = randm(n, d, n);
      const b = randm(n, d, n + 100);
      b.data.fill(0, 0, d); // a zero row has cosine 0
      const got = dv.mismatchScore(a, b);
      const want = ref.mismatchScore(a, b);
      // Direct O(n²) definition.
      let p = 0;
      let qs = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          const c = ref.cosine(a.data.subarray(i * d, (i + 1) * d), b.data.subarray(j * d, (j + 1) * d));
          if (i === j) p += c;
          else qs += c;
        }
      }
      close(want.muP, p / n, 1e-10, 1e-12);
      close(want.muQ, qs / (n * (n - 1)), 1e-10, 1e-12);
      close(want.M, want.muP - want.muQ, 1e-12, 1e-14);
      close([got.muP, got.muQ, got.M], [want.muP, want.muQ, want.M], 1e-5, 1e-6);
    }
  });

  it('τ = 0.01 on unit vectors stays finite and matches the reference', () => {
    const q = unitRows(40, 24, 41);
    const keys = unitRows(60, 24, 42);
    // Near-duplicates make the logits span ±100.
    keys.data.set(q.data.subarray(0, 24 * 10), 0);
    for (const be of [dv, ref]) {
      const r = be.infoNCE(q, keys, { temperature: 0.01 });
      expect(Number.isFinite(r.loss)).toBe(true);
      for (const v of r.gradQ.data) expect(Number.isFinite(v)).toBe(true);
      for (const v of r.gradKeys.data) expect(Number.isFinite(v)).toBe(true);
      const x = be.ntXent(q, { data: keys.data.slice(0, 40 * 24), rows: 40, cols: 24 }, { temperature: 0.01 });
      expect(Number.isFinite(x.loss)).toBe(true);
      for (const v of x.gradA.data) expect(Number.isFinite(v)).toBe(true);
    }
    const got = dv.infoNCE(q, keys, { temperature: 0.01, normalize: true });
    const want = ref.infoNCE(q, keys, { temperature: 0.01, normalize: true });
    close(got.loss, want.loss, 1e-4, 1e-4);
    closeGrad(got.gradQ.data, want.gradQ.data, 1e-2, 1e-3);
    closeGrad(got.gradKeys.data, want.gradKeys.data, 1e-2, 1e-3);
  });

  it('results do not depend on the thread count', () => {
    const q = randm(300, 40, 51);
    const keys = randm(700, 40, 52);
    const positives = Uint32Array.from({ length: 300 }, (_, i) => (i * 13) % 700);
    const logQ = randn(700, 53);
    const run = () =>
      [
        dv.infoNCE(q, keys, { temperature: 0.1, positives, logQ, normalize: true }),
        dv.ntXent(q, { data: keys.data.subarray(0, 300 * 40), rows: 300, cols: 40 }, { temperature: 0.2 }),
      ] as const;
    dv.setThreads(1);
    const [a1, b1] = run();
    dv.setThreads(2);
    const [a2, b2] = run();
    const same = (x: Float32Array, y: Float32Array) =>
      Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
    expect(a1.loss).toBe(a2.loss);
    expect(same(a1.gradQ.data, a2.gradQ.data)).toBe(true);
    expect(same(a1.gradKeys.data, a2.gradKeys.data)).toBe(true);
    expect(b1.loss).toBe(b2.loss);
    expect(same(b1.gradA.data, b2.gradA.data)).toBe(true);
    expect(same(b1.gradB.data, b2.gradB.data)).toBe(true);
  });

  it('async twins agree with the sync functions and reject with codes', async () => {
    const q = randm(9, 20, 61);
    const keys = randm(30, 20, 62);
    const o = { temperature: 0.2, normalize: true };
    const s = dv.infoNCE(q, keys, o);
    const a = await dv.infoNCEAsync(q, keys, o);
    expect(a.loss).toBe(s.loss);
    expect(Array.from(a.gradQ.data)).toEqual(Array.from(s.gradQ.data));
    expect(Array.from(a.gradKeys.data)).toEqual(Array.from(s.gradKeys.data));
    const b = keys.data.slice(0, 9 * 20);
    const xs = dv.ntXent(q, { data: b, rows: 9, cols: 20 }, { temperature: 0.3 });
    const xa = await dv.ntXentAsync(q, { data: b, rows: 9, cols: 20 }, { temperature: 0.3 });
    expect(xa.loss).toBe(xs.loss);
    expect(Array.from(xa.gradA.data)).toEqual(Array.from(xs.gradA.data));
    await expect(dv.infoNCEAsync(q, keys, { temperature: -1 })).rejects.toMatchObject({ code: 'E_ARG' });
    await expect(dv.ntXentAsync(q, keys, { temperature: 1 })).rejects.toMatchObject({ code: 'E_SHAPE' });
    const zero = { data: new Float32Array(9 * 20), rows: 9, cols: 20 };
    await expect(dv.infoNCEAsync(zero, keys, o)).rejects.toMatchObject({ code: 'E_ARG' });
  });
});

describe('contrastive: PyTorch fixtures', () => {
  for (const c of fixtures.cases.filter((x) => x.kind === 'infoNCE' || x.kind === 'ntXent')) {
    it(`${c.kind}: ${c.name}`, () => {
      for (const be of [ref, dv]) {
        if (c.kind === 'infoNCE') {
          const o = c.options;
          const opts = {
            temperature: o.temperature as number,
            normalize: o.normalize as boolean,
            positives: o.positives ? Uint32Array.from(o.positives as number[]) : undefined,
            logQ: o.logQ ? Float32Array.from(o.logQ as number[]) : undefined,
          };
          const r = be.infoNCE(fm(c.q), fm(c.keys), opts);
          close(r.loss, c.loss, 1e-5, 1e-6);
          closeGrad(r.gradQ.data, c.gradQ, 1e-4, 1e-5);
          closeGrad(r.gradKeys.data, c.gradKeys, 1e-4, 1e-5);
        } else {
          const r = be.ntXent(fm(c.a), fm(c.b), c.options);
          close(r.loss, c.loss, 1e-5, 1e-6);
          closeGrad(r.gradA.data, c.gradA, 1e-4, 1e-5);
          closeGrad(r.gradB.data, c.gradB, 1e-4, 1e-5);
        }
      }
    });
  }
});

describe('contrastive: temperature schedules', () => {
  it('follows the formulas and clamps t', () => {
    for (const be of [dv, ref]) {
      const lin = be.temperatureSchedule({ start: 1, end: 0.1, steps: 10, kind: 'linear' });
      close([lin(0), lin(5), lin(10), lin(-3), lin(99)], [1, 0.55, 0.1, 1, 0.1], 1e-12, 1e-15);
      const cos = be.temperatureSchedule({ start: 0.5, end: 0.05, steps: 4 });
      close([cos(0), cos(2), cos(4), cos(1)], [0.5, 0.275, 0.05, 0.05 + (0.45 * (1 + Math.SQRT1_2)) / 2], 1e-12, 1e-15);
      const ex = be.temperatureSchedule({ start: 1, end: 0.01, steps: 2, kind: 'exponential' });
      close([ex(0), ex(1), ex(2)], [1, 0.1, 0.01], 1e-12, 1e-15);
    }
  });

  it('rejects bad options', () => {
    for (const be of [dv, ref]) {
      throwsCode(() => be.temperatureSchedule({ start: 0, end: 1, steps: 3 }), 'E_ARG', /start/);
      throwsCode(() => be.temperatureSchedule({ start: 1, end: -1, steps: 3 }), 'E_ARG', /end/);
      throwsCode(() => be.temperatureSchedule({ start: 1, end: 1, steps: 0 }), 'E_ARG', /steps/);
      // A non-integer where an integer is required is a type error (README.md, Errors).
      throwsCode(() => be.temperatureSchedule({ start: 1, end: 1, steps: 2.5 }), 'E_TYPE', /steps/);
      throwsCode(() => be.temperatureSchedule({ start: 1, end: 1, steps: 2, kind: 'step' as never }), 'E_ARG', /kind/);
      throwsCode(() => be.temperatureSchedule({ start: '1' as never, end: 1, steps: 2 }), 'E_TYPE');
    }
  });
});

describe('contrastive: error codes', () => {
  it('reports the first applicable code, on both backends', () => {
    const q = randm(3, 4, 71);
    const keys = randm(5, 4, 72);
    for (const be of [dv, ref]) {
      throwsCode(() => be.infoNCE({ data: [1, 2] as never, rows: 1, cols: 2 }, keys, { temperature: 1 }), 'E_TYPE', /q\.data/);
      throwsCode(() => be.infoNCE(q, keys, undefined as never), 'E_TYPE');
      throwsCode(() => be.infoNCE(q, keys, { temperature: 1, positives: [0, 1, 2] as never }), 'E_TYPE', /positives/);
      throwsCode(() => be.infoNCE(q, keys, { temperature: 1, normalize: 1 as never }), 'E_TYPE', /normalize/);
      // Type beats shape beats arg.
      throwsCode(() => be.infoNCE(q, randm(5, 3, 1), { temperature: 'x' as never }), 'E_TYPE');
      throwsCode(() => be.infoNCE(q, randm(5, 3, 1), { temperature: -1 }), 'E_SHAPE', /columns/);
      throwsCode(() => be.infoNCE(q, randm(2, 4, 1), { temperature: 1 }), 'E_SHAPE', /at least/);
      throwsCode(() => be.infoNCE(q, keys, { temperature: 1, positives: new Uint32Array(2) }), 'E_SHAPE', /positives/);
      throwsCode(() => be.infoNCE(q, keys, { temperature: 1, logQ: new Float32Array(4) }), 'E_SHAPE', /logQ/);
      throwsCode(() => be.infoNCE(q, keys, { temperature: 0 }), 'E_ARG', /temperature/);
      throwsCode(() => be.infoNCE(q, keys, { temperature: NaN }), 'E_ARG', /temperature/);
      throwsCode(() => be.infoNCE(q, keys, { temperature: 1, positives: new Uint32Array([0, 5, 1]) }), 'E_ARG', /positives\[1\]/);
      const z = { data: q.data.slice(), rows: 3, cols: 4 };
      z.data.fill(0, 4, 8);
      throwsCode(() => be.infoNCE(z, keys, { temperature: 1, normalize: true }), 'E_ARG', /row 1/);
      expect(Number.isFinite(be.infoNCE(z, keys, { temperature: 1 }).loss)).toBe(true);
      const nan = { data: q.data.slice(), rows: 3, cols: 4 };
      nan.data[5] = NaN;
      throwsCode(() => be.infoNCE(nan, keys, { temperature: 1 }), 'E_NON_FINITE', /q/);
      // A zero row (E_ARG) wins over a NaN elsewhere (E_NON_FINITE).
      z.data[0] = Infinity;
      throwsCode(() => be.infoNCE(z, keys, { temperature: 1, normalize: true }), 'E_ARG');
      throwsCode(() => be.infoNCE(q, keys, { temperature: 1, logQ: new Float32Array([0, 0, -Infinity, 0, 0]) }), 'E_NON_FINITE', /logQ/);

      throwsCode(() => be.ntXent(q, keys, { temperature: 1 }), 'E_SHAPE');
      throwsCode(() => be.ntXent(q, q, { temperature: -0.1 }), 'E_ARG', /temperature/);
      throwsCode(() => be.ntXent(q, { data: new Float32Array(12), rows: 3, cols: 4 }, { temperature: 1 }), 'E_ARG', /b row 0/);
      throwsCode(() => be.ntXent(nan, q, { temperature: 1 }), 'E_NON_FINITE');
      throwsCode(() => be.ntXent({ data: new Float32Array(0), rows: 0, cols: 4 }, q, { temperature: 1 }), 'E_SHAPE');

      throwsCode(() => be.mismatchScore(randm(1, 4, 1), randm(1, 4, 2)), 'E_SHAPE');
      throwsCode(() => be.mismatchScore(q, keys), 'E_SHAPE');
      throwsCode(() => be.mismatchScore(nan, q), 'E_NON_FINITE');
      throwsCode(() => be.softmaxProbabilities(new Float32Array(3), keys, 1), 'E_SHAPE');
      throwsCode(() => be.softmaxProbabilities(new Float32Array(4), keys, 0), 'E_ARG');
      throwsCode(() => be.softmaxProbabilities([1, 2, 3, 4] as never, keys, 1), 'E_TYPE');
      throwsCode(() => be.softmaxProbabilities(new Float32Array([1, NaN, 0, 0]), keys, 1), 'E_NON_FINITE');
    }
  });
});
