// The `scratchBytes` option of infoNCE, ntXent and marginSoftmax: each path (held logits and
// tiled / blockwise) matches the float64 reference and the other path, is bit-identical for
// every thread count, and the option is validated with the usual codes on both backends.
import { describe, expect, it } from 'vitest';
import { close, dv, randm, randn, ref, throwsCode } from './helpers';

type M = { data: Float32Array; rows: number; cols: number };

const same = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Elementwise within rtol, with an absolute floor relative to the largest entry. */
function closeGrad(got: ArrayLike<number>, want: ArrayLike<number>, rtol = 1e-4, floor = 2e-5): void {
  close(got, want, rtol, floor * Math.max(maxAbs(want), 1e-12));
}

const TILED = 0;
const HELD = 1 << 30;

function stats(s: { meanEntropy: number; meanPositiveProbability: number; meanMaxNegativeProbability: number; effectiveNegatives: number }): number[] {
  return [s.meanEntropy, s.meanPositiveProbability, s.meanMaxNegativeProbability, s.effectiveNegatives];
}

describe('scratchBytes: held and tiled paths', () => {
  const q = randm(300, 24, 71);
  const keys = randm(520, 24, 72);
  const positives = Uint32Array.from({ length: 300 }, (_, i) => (i * 17 + 5) % 520);
  const logQ = Float32Array.from(randn(520, 73), (v) => -2 + 0.3 * v);
  const keyIds = Uint32Array.from({ length: 520 }, (_, j) => j % 41);

  it('infoNCE: both paths match the reference and each other, with every option', () => {
    for (const o of [
      { temperature: 0.1, normalize: true },
      { temperature: 0.3, positives, logQ },
      { temperature: 0.2, positives, keyIds, normalize: true },
    ]) {
      const want = ref.infoNCE(q, keys, o);
      const got = [TILED, HELD].map((scratchBytes) => dv.infoNCE(q, keys, { ...o, scratchBytes }));
      for (const g of got) {
        close(g.loss, want.loss, 1e-5, 1e-5);
        closeGrad(g.gradQ.data, want.gradQ.data);
        closeGrad(g.gradKeys.data, want.gradKeys.data);
        close(g.gradTemperature, want.gradTemperature, 1e-4, 1e-4);
        close(stats(g.stats), stats(want.stats), 1e-4, 1e-4);
      }
      closeGrad(got[0].gradQ.data, got[1].gradQ.data);
      closeGrad(got[0].gradKeys.data, got[1].gradKeys.data);
    }
  });

  it('ntXent: both paths match the reference and each other', () => {
    const a = randm(200, 16, 74);
    const b = randm(200, 16, 75);
    const want = ref.ntXent(a, b, { temperature: 0.15 });
    for (const scratchBytes of [TILED, HELD, undefined]) {
      const g = dv.ntXent(a, b, { temperature: 0.15, scratchBytes });
      close(g.loss, want.loss, 1e-5, 1e-5);
      closeGrad(g.gradA.data, want.gradA.data);
      closeGrad(g.gradB.data, want.gradB.data);
      close(g.gradTemperature, want.gradTemperature, 1e-4, 1e-4);
      close(stats(g.stats), stats(want.stats), 1e-4, 1e-4);
    }
  });

  it('marginSoftmax: every budget gives the same bits (G is formed block by block) and matches the reference', () => {
    const x = randm(300, 20, 76);
    const w = randm(700, 20, 77);
    const labels = Uint32Array.from({ length: 300 }, (_, i) => (i * 31) % 700);
    const o = { kind: 'arcface' as const, labelSmoothing: 0.1 };
    const want = ref.marginSoftmax(x, w, labels, o);
    const t = dv.marginSoftmax(x, w, labels, { ...o, scratchBytes: TILED });
    const h = dv.marginSoftmax(x, w, labels, { ...o, scratchBytes: HELD });
    expect(t.loss).toBe(h.loss);
    expect(same(t.gradX.data, h.gradX.data)).toBe(true);
    expect(same(t.gradW.data, h.gradW.data)).toBe(true);
    close(h.loss, want.loss, 1e-5, 1e-5);
    closeGrad(h.gradX.data, want.gradX.data, 1e-3, 1e-4);
    closeGrad(h.gradW.data, want.gradW.data, 1e-3, 1e-4);
    close(h.gradScale, want.gradScale, 1e-4, 1e-4);
  });

  it('each path is bit-identical for every thread count', () => {
    const a: M = { data: keys.data.subarray(0, 300 * 24), rows: 300, cols: 24 };
    for (const scratchBytes of [TILED, HELD]) {
      const run = () =>
        [
          dv.infoNCE(q, keys, { temperature: 0.1, positives, logQ, keyIds, normalize: true, scratchBytes }),
          dv.ntXent(q, a, { temperature: 0.2, scratchBytes }),
        ] as const;
      dv.setThreads(1);
      const [i1, n1] = run();
      dv.setThreads(2);
      const [i2, n2] = run();
      expect(i1.loss).toBe(i2.loss);
      expect(same(i1.gradQ.data, i2.gradQ.data)).toBe(true);
      expect(same(i1.gradKeys.data, i2.gradKeys.data)).toBe(true);
      expect(i1.gradTemperature).toBe(i2.gradTemperature);
      expect(stats(i1.stats)).toEqual(stats(i2.stats));
      expect(n1.loss).toBe(n2.loss);
      expect(same(n1.gradA.data, n2.gradA.data)).toBe(true);
      expect(same(n1.gradB.data, n2.gradB.data)).toBe(true);
    }
    dv.setThreads(1);
  });

  it('async twins take the option', async () => {
    for (const scratchBytes of [TILED, HELD]) {
      const s = dv.infoNCE(q, keys, { temperature: 0.2, normalize: true, scratchBytes });
      const a = await dv.infoNCEAsync(q, keys, { temperature: 0.2, normalize: true, scratchBytes });
      expect(a.loss).toBe(s.loss);
      expect(same(a.gradKeys.data, s.gradKeys.data)).toBe(true);
      const b: M = { data: keys.data.subarray(0, 300 * 24), rows: 300, cols: 24 };
      const ns = dv.ntXent(q, b, { temperature: 0.2, scratchBytes });
      const na = await dv.ntXentAsync(q, b, { temperature: 0.2, scratchBytes });
      expect(na.loss).toBe(ns.loss);
      expect(same(na.gradA.data, ns.gradA.data)).toBe(true);
    }
    const x = randm(30, 8, 78);
    const w = randm(12, 8, 79);
    const labels = Uint32Array.from({ length: 30 }, (_, i) => i % 12);
    const ms = dv.marginSoftmax(x, w, labels, { kind: 'cosface', scratchBytes: 0 });
    const ma = await dv.marginSoftmaxAsync(x, w, labels, { kind: 'cosface', scratchBytes: 0 });
    expect(ma.loss).toBe(ms.loss);
    expect(same(ma.gradW.data, ms.gradW.data)).toBe(true);
  });

  it('marginSoftmax: the sync form (logits computed in the returned buffer) equals the async form bit for bit, on 1 and 2 threads', async () => {
    // 800 × 900 classes: one thread takes larger GEMM blocks and similarity tiles than two.
    const x = randm(800, 12, 81);
    const w = randm(900, 12, 82);
    const labels = Uint32Array.from({ length: 800 }, (_, i) => (i * 7) % 900);
    const o = { kind: 'arcface' as const, labelSmoothing: 0.05 };
    const got = [];
    for (const t of [1, 2]) {
      dv.setThreads(t);
      got.push(dv.marginSoftmax(x, w, labels, o), await dv.marginSoftmaxAsync(x, w, labels, o));
    }
    dv.setThreads(1);
    const [s] = got;
    expect(s.logits.rows).toBe(800);
    expect(s.logits.cols).toBe(900);
    for (const r of got.slice(1)) {
      expect(r.loss).toBe(s.loss);
      expect(r.gradScale).toBe(s.gradScale);
      for (const k of ['logits', 'gradX', 'gradW'] as const) expect(same(r[k].data, s[k].data)).toBe(true);
      expect(same(r.angularMargins, s.angularMargins)).toBe(true);
    }
    const want = ref.marginSoftmax(x, w, labels, o);
    closeGrad(s.logits.data, want.logits.data, 1e-4, 1e-5);
    close(s.loss, want.loss, 1e-5, 1e-5);
  });

  it('infoNCE: the sync form (gradients computed in the returned buffers) equals the async form bit for bit, on every path, option and thread count', async () => {
    const cases = [
      { temperature: 0.1, normalize: true, scratchBytes: HELD },
      { temperature: 0.1, normalize: true, scratchBytes: TILED },
      { temperature: 0.3, positives, logQ, scratchBytes: HELD },
      { temperature: 0.2, positives, keyIds, normalize: true, scratchBytes: TILED },
      { temperature: 0.2, positives, keyIds, scratchBytes: HELD, precision: 'bf16' as const },
      // Logits that may overflow float32: the float64 path.
      { temperature: 1e-38, normalize: true },
    ];
    for (const o of cases) {
      const got = [];
      for (const t of [1, 2]) {
        dv.setThreads(t);
        got.push(dv.infoNCE(q, keys, o), await dv.infoNCEAsync(q, keys, o));
      }
      dv.setThreads(1);
      const [s] = got;
      expect(s.gradQ.rows).toBe(300);
      expect(s.gradKeys.rows).toBe(520);
      expect(maxAbs(s.gradQ.data)).toBeGreaterThan(0);
      for (const r of got.slice(1)) {
        expect(r.loss).toBe(s.loss);
        expect(r.gradTemperature).toBe(s.gradTemperature);
        expect(stats(r.stats)).toEqual(stats(s.stats));
        expect(same(r.gradQ.data, s.gradQ.data)).toBe(true);
        expect(same(r.gradKeys.data, s.gradKeys.data)).toBe(true);
      }
      if (o.precision === undefined && o.temperature > 1e-3) {
        const want = ref.infoNCE(q, keys, o);
        closeGrad(s.gradQ.data, want.gradQ.data);
        closeGrad(s.gradKeys.data, want.gradKeys.data);
      }
    }
  });

  it('validates scratchBytes with E_TYPE, then shapes, then E_ARG, on both backends', async () => {
    const small = randm(4, 3, 80);
    const labels = new Uint32Array([0, 1, 2, 3]);
    for (const lib of [dv, ref]) {
      throwsCode(() => lib.infoNCE(small, small, { temperature: 0.1, scratchBytes: '1' as unknown as number }), 'E_TYPE', /scratchBytes/);
      throwsCode(() => lib.infoNCE(small, small, { temperature: 0.1, scratchBytes: 1.5 }), 'E_TYPE', /scratchBytes/);
      throwsCode(() => lib.infoNCE(small, small, { temperature: 0.1, scratchBytes: -1 }), 'E_ARG', /scratchBytes/);
      // A type error wins over a shape error, a shape error over a value error.
      throwsCode(() => lib.infoNCE(small, randm(4, 2, 81), { temperature: 0.1, scratchBytes: '1' as unknown as number }), 'E_TYPE');
      throwsCode(() => lib.infoNCE(small, randm(4, 2, 81), { temperature: 0.1, scratchBytes: -1 }), 'E_SHAPE');
      throwsCode(() => lib.ntXent(small, small, { temperature: 0.1, scratchBytes: null as unknown as number }), 'E_TYPE', /scratchBytes/);
      throwsCode(() => lib.ntXent(small, small, { temperature: 0.1, scratchBytes: -5 }), 'E_ARG', /scratchBytes/);
      throwsCode(() => lib.marginSoftmax(small, small, labels, { kind: 'arcface', scratchBytes: Infinity }), 'E_TYPE', /scratchBytes/);
      throwsCode(() => lib.marginSoftmax(small, small, labels, { kind: 'arcface', scratchBytes: -2 }), 'E_ARG', /scratchBytes/);
    }
    await expect(dv.infoNCEAsync(small, small, { temperature: 0.1, scratchBytes: -1 })).rejects.toMatchObject({ code: 'E_ARG' });
    await expect(dv.ntXentAsync(small, small, { temperature: 0.1, scratchBytes: 0.5 })).rejects.toMatchObject({ code: 'E_TYPE' });
    // 0 and the largest safe integer are accepted.
    expect(Number.isFinite(dv.infoNCE(small, small, { temperature: 0.1, scratchBytes: Number.MAX_SAFE_INTEGER }).loss)).toBe(true);
    expect(Number.isFinite(ref.infoNCE(small, small, { temperature: 0.1, scratchBytes: 0 }).loss)).toBe(true);
  });
});
