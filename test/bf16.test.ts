/**
 * precision: 'bf16' — inputs rounded to bfloat16 (nearest even, float32 subnormals as zero),
 * products accumulated in float32. The native backend is compared with the reference on the
 * rounded inputs (float64) at float32-accumulation tolerance, on every ISA (AVX-512 with
 * AVX512-BF16 runs vdpbf16ps; the others the fallback), and against the f32 result within the
 * documented bf16 bound.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { close, dv, forEachIsa, randm, ref, throwsCode } from './helpers';

type M = { data: Float32Array; rows: number; cols: number };
type Api = typeof dv;
const BACKENDS: Array<[string, Api]> = [
  ['native', dv],
  ['reference', ref as unknown as Api],
];

/** Runs `f` with the package's backend set to the reference (its async twins run in a worker). */
async function onReference<T>(f: () => Promise<T>): Promise<T> {
  const before = dv.backendInfo().backend;
  dv.setBackend('reference');
  try {
    return await f();
  } finally {
    dv.setBackend(before);
  }
}

/** The async twins of the backend a test names: the package's own on native, the reference's otherwise. */
function asyncOf(name: string): (f: () => Promise<unknown>) => Promise<unknown> {
  return name === 'native' ? (f) => f() : onReference;
}

const THREADS = dv.backendInfo().threads;
afterAll(() => dv.setThreads(THREADS));

/** Σ_k |q_k c_k| for every pair: the scale of a dot product's rounding error. */
function absDots(q: M, c: M): Float64Array {
  const out = new Float64Array(q.rows * c.rows);
  for (let i = 0; i < q.rows; i++) {
    for (let j = 0; j < c.rows; j++) {
      let s = 0;
      for (let k = 0; k < q.cols; k++) s += Math.abs(q.data[i * q.cols + k] * c.data[j * c.cols + k]);
      out[i * c.rows + j] = s;
    }
  }
  return out;
}

describe('bf16 rounding', () => {
  // 1 × 1 dot products with 1: the result is the bf16 value of x exactly.
  const cases: Array<[number, number]> = [
    [1, 1],
    [1 + 2 ** -8, 1], // tie → even (down)
    [1 + 3 * 2 ** -8, 1 + 2 ** -6], // tie → even (up)
    [-(1 + 3 * 2 ** -8), -(1 + 2 ** -6)],
    [1 + 2 ** -8 + 2 ** -20, 1 + 2 ** -7], // above the tie
    [Math.fround(1 + 2 ** -8 - 2 ** -23), 1], // below the tie
    [Infinity, Infinity],
    [-Infinity, -Infinity],
    [3.4028234663852886e38, Infinity], // float32 max rounds past the largest bf16
    [3.3895313892515355e38, 3.3895313892515355e38], // largest bf16 stays
    [1e-39, 0], // float32 subnormal → 0
    [-1e-39, -0],
    [1.1754943508222875e-38, 1.1754943508222875e-38], // smallest normal stays
  ];
  for (const [name, api] of BACKENDS) {
    it(`rounds to nearest even, NaN/∞ kept, subnormals as zero (${name})`, () => {
      const one = { data: Float32Array.of(1), rows: 1, cols: 1 };
      for (const [x, want] of cases) {
        const q = { data: Float32Array.of(x), rows: 1, cols: 1 };
        const got = api.similarityMatrix(q, one, { metric: 'dot', precision: 'bf16' }).data[0];
        expect(Object.is(got, want) || (want === 0 && got === 0), `bf16(${x}) = ${got}, want ${want}`).toBe(true);
      }
      const nan = api.similarityMatrix({ data: Float32Array.of(NaN), rows: 1, cols: 1 }, one, { metric: 'dot', precision: 'bf16' });
      expect(Number.isNaN(nan.data[0])).toBe(true);
    });
  }
});

describe('similarityMatrix / topK with precision bf16', () => {
  const q = randm(13, 67, 1);
  const c = randm(517, 67, 2);
  const qb = ref.similarityMatrix(q, c, { metric: 'dot' }); // f32 reference (float64)
  const scale = absDots(q, c);

  it('reference: the float64 metric of the rounded rows, within 2^-8·Σ|q_k c_k| of f32', () => {
    const b = ref.similarityMatrix(q, c, { metric: 'dot', precision: 'bf16' });
    let differs = 0;
    for (let i = 0; i < b.data.length; i++) {
      const e = Math.abs(b.data[i] - qb.data[i]);
      expect(e).toBeLessThanOrEqual(2 ** -8 * scale[i] + 1e-6);
      if (e > 1e-4) differs++;
    }
    expect(differs).toBeGreaterThan(b.data.length / 2);
  });

  for (const metric of ['dot', 'cosine', 'l2sq'] as const) {
    it(`native equals the reference on the rounded inputs, every ISA (${metric})`, () => {
      const want = ref.similarityMatrix(q, c, { metric, precision: 'bf16' });
      const f32 = ref.similarityMatrix(q, c, { metric });
      forEachIsa(() => {
        const got = dv.similarityMatrix(q, c, { metric, precision: 'bf16' });
        close(got.data, want.data, 2e-6, metric === 'cosine' ? 2e-6 : 5e-5);
        // And not the f32 result: the option reaches the kernel.
        let far = 0;
        for (let i = 0; i < got.data.length; i++) if (Math.abs(got.data[i] - f32.data[i]) > 1e-3 * (metric === 'cosine' ? 0.01 : 1)) far++;
        expect(far).toBeGreaterThan(0);
      });
    });
  }

  it('the vdpbf16ps path and the AVX2 / AVX-512 fallbacks give the same bits', () => {
    const results: Float32Array[] = [];
    forEachIsa((isa) => {
      if (isa === 'avx2' || isa === 'avx512') results.push(dv.similarityMatrix(q, c, { metric: 'dot', precision: 'bf16' }).data);
    });
    for (const r of results.slice(1)) expect(Buffer.from(r.buffer).equals(Buffer.from(results[0].buffer))).toBe(true);
  });

  it('l2sq of near-duplicate rows is the l2sq of the rounded rows (relative error)', () => {
    const base = randm(5, 300, 3);
    const near = { data: base.data.map((x, i) => x + 1e-3 * Math.sin(i)), rows: 5, cols: 300 };
    const want = ref.similarityMatrix(base, near, { metric: 'l2sq', precision: 'bf16' });
    for (const api of [dv, ref as unknown as Api]) {
      const got = api.similarityMatrix(base, near, { metric: 'l2sq', precision: 'bf16' });
      close(got.data, want.data, 1e-4, 1e-9);
    }
  });

  it('compact corpora: the decoded values rounded to bf16', () => {
    const h = dv.quantize(c, 'f16');
    const want = ref.similarityMatrix(q, h, { metric: 'cosine', precision: 'bf16' });
    close(dv.similarityMatrix(q, h, { metric: 'cosine', precision: 'bf16' }).data, want.data, 2e-6, 2e-6);
    const t = dv.topK(q, h, 5, { metric: 'dot', precision: 'bf16' });
    const tr = ref.topK(q, h, 5, { metric: 'dot', precision: 'bf16' });
    close(t.scores, tr.scores, 2e-6, 5e-5);
  });

  it('topK and the async twins agree with the reference', async () => {
    for (const metric of ['dot', 'cosine', 'l2sq'] as const) {
      const o = { metric, precision: 'bf16' as const };
      const want = ref.topK(q, c, 7, o);
      const got = dv.topK(q, c, 7, o);
      close(got.scores, want.scores, 2e-6, metric === 'cosine' ? 2e-6 : 5e-5);
      expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
      const ga = await dv.topKAsync(q, c, 7, o);
      expect(Array.from(ga.indices)).toEqual(Array.from(got.indices));
      expect(Array.from(ga.scores)).toEqual(Array.from(got.scores));
      const sa = await dv.similarityMatrixAsync(q, c, o);
      expect(Array.from(sa.data)).toEqual(Array.from(dv.similarityMatrix(q, c, o).data));
      const ra = await onReference(() => dv.topKAsync(q, c, 7, o));
      expect(Array.from(ra.indices)).toEqual(Array.from(want.indices));
      // skip / mask go through the filtered entry point.
      const mask = new Uint8Array(c.rows).fill(1);
      mask[want.indices[0]] = 0;
      const f = dv.topK(q, c, 7, { ...o, mask });
      const fr = ref.topK(q, c, 7, { ...o, mask });
      close(f.scores, fr.scores, 2e-6, metric === 'cosine' ? 2e-6 : 5e-5);
    }
  });

  it('is bit-identical for every thread count', () => {
    const qq = randm(200, 129, 4);
    const cc = randm(900, 129, 5);
    const runs: Float32Array[] = [];
    const tops: Uint32Array[] = [];
    for (const t of [1, 2, 3]) {
      dv.setThreads(t);
      runs.push(dv.similarityMatrix(qq, cc, { metric: 'cosine', precision: 'bf16' }).data);
      tops.push(dv.topK(qq, cc, 4, { metric: 'dot', precision: 'bf16' }).indices);
    }
    for (const r of runs.slice(1)) expect(Buffer.from(r.buffer).equals(Buffer.from(runs[0].buffer))).toBe(true);
    for (const r of tops.slice(1)) expect(Array.from(r)).toEqual(Array.from(tops[0]));
  });

  for (const [name, api] of BACKENDS) {
    it(`validates the option like the other names (${name})`, async () => {
      throwsCode(() => api.similarityMatrix(q, c, { precision: 16 as never }), 'E_TYPE', /precision must be a string/);
      throwsCode(() => api.similarityMatrix(q, c, { precision: 'fp16' as never }), 'E_ARG', /unknown precision 'fp16' \(expected 'f32' or 'bf16'\)/);
      throwsCode(() => api.topK(q, c, 3, { precision: 'toString' as never }), 'E_ARG', /expected 'f32' or 'bf16'/);
      throwsCode(() => api.topK(q, c, 3, { precision: '__proto__' as never }), 'E_ARG');
      // E_TYPE of the option before E_SHAPE of the matrices.
      throwsCode(() => api.similarityMatrix(q, { data: new Float32Array(3), rows: 1, cols: 3 }, { precision: 1 as never }), 'E_TYPE');
      await expect(asyncOf(name)(() => dv.topKAsync(q, c, 3, { precision: 'half' as never }))).rejects.toMatchObject({ name: 'DensevecError', code: 'E_ARG' });
      // 'f32' is the default.
      expect(Array.from(api.similarityMatrix(q, c, { precision: 'f32' }).data)).toEqual(Array.from(api.similarityMatrix(q, c).data));
    });
  }
});

/** max |a − b| ≤ rel · max |b| (gradients: the bf16 rounding of the softmax weights is noise of about 2^-9 per term). */
function closeRel(a: Float32Array, b: Float32Array, rel: number, what: string): void {
  let mx = 0;
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    mx = Math.max(mx, Math.abs(b[i]));
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
  }
  expect(worst, `${what}: max error ${worst} vs max ${mx}`).toBeLessThanOrEqual(rel * mx);
}

describe('losses with precision bf16', () => {
  const q = randm(40, 96, 11);
  const keys = randm(70, 96, 12);
  const labels = Uint32Array.from({ length: 40 }, (_, i) => (i * 7) % 70);

  for (const normalize of [false, true]) {
    it(`infoNCE (normalize ${normalize}): native equals the reference on bf16 inputs, sync and async`, async () => {
      const scaleQ = { data: q.data.map((x) => x * 0.05), rows: q.rows, cols: q.cols };
      const keysS = { data: keys.data.map((x) => x * 0.1), rows: keys.rows, cols: keys.cols };
      const o = { temperature: 0.1, normalize, precision: 'bf16' as const };
      const want = ref.infoNCE(scaleQ, keysS, o);
      const f32 = ref.infoNCE(scaleQ, keysS, { temperature: 0.1, normalize });
      forEachIsa(() => {
        const got = dv.infoNCE(scaleQ, keysS, o);
        expect(Math.abs(got.loss - want.loss)).toBeLessThanOrEqual(2e-5 * Math.abs(want.loss) + 1e-6);
        // The option reaches the kernels: the f32 loss is much further away.
        expect(Math.abs(f32.loss - want.loss)).toBeGreaterThan(20 * Math.abs(got.loss - want.loss));
        closeRel(got.gradQ.data, want.gradQ.data, 4e-3, 'gradQ');
        closeRel(got.gradKeys.data, want.gradKeys.data, 4e-3, 'gradKeys');
        expect(Math.abs(got.gradTemperature - want.gradTemperature)).toBeLessThanOrEqual(1e-3 * Math.abs(want.gradTemperature) + 1e-5);
      });
      const a = await dv.infoNCEAsync(scaleQ, keysS, o);
      expect(a.loss).toBe(dv.infoNCE(scaleQ, keysS, o).loss);
      expect(Array.from(a.gradQ.data)).toEqual(Array.from(dv.infoNCE(scaleQ, keysS, o).gradQ.data));
      const ra = await onReference(() => dv.infoNCEAsync(scaleQ, keysS, o));
      expect(ra.loss).toBe(want.loss);
    });
  }

  it('ntXent: native equals the reference on bf16 inputs, sync and async', async () => {
    const b = randm(40, 96, 13);
    const o = { temperature: 0.2, precision: 'bf16' as const };
    const want = ref.ntXent(q, b, o);
    const f32 = ref.ntXent(q, b, { temperature: 0.2 });
    forEachIsa(() => {
      const got = dv.ntXent(q, b, o);
      expect(Math.abs(got.loss - want.loss)).toBeLessThanOrEqual(2e-5 * Math.abs(want.loss));
      expect(Math.abs(f32.loss - want.loss)).toBeGreaterThan(20 * Math.abs(got.loss - want.loss));
      closeRel(got.gradA.data, want.gradA.data, 4e-3, 'gradA');
      closeRel(got.gradB.data, want.gradB.data, 4e-3, 'gradB');
    });
    const a = await dv.ntXentAsync(q, b, o);
    expect(a.loss).toBe(dv.ntXent(q, b, o).loss);
  });

  for (const kind of ['normalized', 'cosface', 'arcface'] as const) {
    it(`marginSoftmax ${kind}: native equals the reference on bf16 inputs, sync and async`, async () => {
      const o = { kind, scale: 16, precision: 'bf16' as const };
      const want = ref.marginSoftmax(q, keys, labels, o);
      const f32 = ref.marginSoftmax(q, keys, labels, { kind, scale: 16 });
      forEachIsa(() => {
        const got = dv.marginSoftmax(q, keys, labels, o);
        expect(Math.abs(got.loss - want.loss)).toBeLessThanOrEqual(2e-5 * Math.abs(want.loss));
        expect(Math.abs(f32.loss - want.loss)).toBeGreaterThan(20 * Math.abs(got.loss - want.loss));
        close(got.logits.data, want.logits.data, 1e-5, 5e-5);
        closeRel(got.gradX.data, want.gradX.data, 4e-3, 'gradX');
        closeRel(got.gradW.data, want.gradW.data, 4e-3, 'gradW');
      });
      const a = await dv.marginSoftmaxAsync(q, keys, labels, o);
      expect(a.loss).toBe(dv.marginSoftmax(q, keys, labels, o).loss);
    });
  }

  it('losses are bit-identical for every thread count', () => {
    const qq = randm(300, 64, 21);
    const kk = randm(300, 64, 22);
    const lab = Uint32Array.from({ length: 300 }, (_, i) => i % 50);
    const w = randm(50, 64, 23);
    const outs: string[] = [];
    for (const t of [1, 2, 3]) {
      dv.setThreads(t);
      const a = dv.infoNCE(qq, kk, { temperature: 0.07, normalize: true, precision: 'bf16' });
      const b = dv.ntXent(qq, kk, { temperature: 0.1, precision: 'bf16' });
      const c = dv.marginSoftmax(qq, w, lab, { kind: 'arcface', precision: 'bf16' });
      const h = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64');
      outs.push([a.loss, h(a.gradQ.data), h(a.gradKeys.data), b.loss, h(b.gradA.data), c.loss, h(c.gradX.data), h(c.gradW.data)].join('|'));
    }
    expect(outs[1]).toBe(outs[0]);
    expect(outs[2]).toBe(outs[0]);
  });

  for (const [name, api] of BACKENDS) {
    it(`validates the option (${name})`, async () => {
      throwsCode(() => api.infoNCE(q, keys, { temperature: 0.1, precision: 1 as never }), 'E_TYPE', /precision must be a string/);
      throwsCode(() => api.infoNCE(q, keys, { temperature: 0.1, precision: 'f16' as never }), 'E_ARG', /expected 'f32' or 'bf16'/);
      throwsCode(() => api.ntXent(q, q, { temperature: 0.1, precision: 'constructor' as never }), 'E_ARG', /expected 'f32' or 'bf16'/);
      throwsCode(() => api.marginSoftmax(q, keys, labels, { kind: 'cosface', precision: [] as never }), 'E_TYPE', /precision must be a string/);
      // E_TYPE of the option before E_SHAPE, E_ARG of the option after E_SHAPE.
      throwsCode(() => api.ntXent(q, keys, { temperature: 0.1, precision: 2 as never }), 'E_TYPE');
      throwsCode(() => api.ntXent(q, keys, { temperature: 0.1, precision: 'x' as never }), 'E_SHAPE');
      const run = asyncOf(name);
      await expect(run(() => dv.marginSoftmaxAsync(q, keys, labels, { kind: 'cosface', precision: 'x' as never }))).rejects.toMatchObject({ code: 'E_ARG' });
      await expect(run(() => dv.infoNCEAsync(q, keys, { temperature: 0.1, precision: 'x' as never }))).rejects.toMatchObject({ code: 'E_ARG' });
      await expect(run(() => dv.ntXentAsync(q, q, { temperature: 0.1, precision: 'x' as never }))).rejects.toMatchObject({ code: 'E_ARG' });
    });
  }
});
