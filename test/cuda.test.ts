import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { close, dv, native, randm, ref, throwsCode, topKMatchesReference } from './helpers';

// The GPU paths run only where a CUDA device exists. Elsewhere (CI, laptops) each test checks
// the fallback instead and says so: "no GPU: <reason>".
const info = dv.backendInfo().cuda;
const gpu = info.available;
if (!gpu) console.log(`cuda.test: no GPU (${info.reason}); checking the CPU fallback`);

const distIndex = new URL('../dist/index.js', import.meta.url).pathname;

/** The raw binding throws plain Errors whose message is `CODE|text`. */
function rawThrows(f: () => unknown, code: string, re?: RegExp): void {
  let msg: string | null = null;
  try {
    f();
  } catch (e) {
    msg = (e as Error).message;
  }
  expect(msg, `expected ${code}`).not.toBeNull();
  expect((msg as string).split('|')[0]).toBe(code);
  if (re) expect(msg).toMatch(re);
}

function child(env: Record<string, string>, code: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['-e', code], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('cuda backend: availability', () => {
  it('backendInfo().cuda is the addon probe, with a reason when unavailable', () => {
    const raw = native.cudaInfo() as { available: boolean; device?: { name: string }; reason?: string };
    expect(info.available).toBe(raw.available);
    if (gpu) {
      expect(typeof info.device).toBe('string');
      expect(info.computeCapability).toMatch(/^\d+\.\d+$/);
      expect(info.memory).toBeGreaterThan(0);
      expect(info.reason).toBeUndefined();
    } else {
      expect(info.reason).toBe(raw.reason);
      // names what is missing: the driver, NVRTC, a device, or the kernels' compilation
      expect(info.reason).toMatch(/driver|libcuda|NVRTC|device|compil|disabled/i);
      expect(info.device).toBeUndefined();
    }
  });

  it('setBackend("cuda") selects the GPU, or throws E_BACKEND with the reason and changes nothing', () => {
    const q = randm(5, 9, 1);
    const c = randm(11, 9, 2);
    const before = dv.similarityMatrix(q, c);
    try {
      if (gpu) {
        dv.setBackend('cuda');
        expect(dv.backendInfo().backend).toBe('cuda');
      } else {
        throwsCode(() => dv.setBackend('cuda'), 'E_BACKEND', /CUDA backend is not available/);
        let msg = '';
        try {
          dv.setBackend('cuda');
        } catch (e) {
          msg = (e as Error).message;
        }
        expect(msg).toContain(info.reason as string);
        expect(dv.backendInfo().backend).toBe('native');
      }
      close(dv.similarityMatrix(q, c).data, before.data, 1e-4, 1e-4 * 9);
    } finally {
      dv.setBackend('auto');
    }
    expect(dv.backendInfo().backend).toBe('native');
  });

  it('DENSEVEC_BACKEND=cuda at load selects the GPU or fails with E_BACKEND', () => {
    const r = child({ DENSEVEC_BACKEND: 'cuda' }, `const dv = require(${JSON.stringify(distIndex)}); console.log('BACKEND=' + dv.backendInfo().backend);`);
    if (gpu) {
      expect(r.out).toContain('BACKEND=cuda');
    } else {
      expect(r.status).not.toBe(0);
      expect(r.out).toContain('E_BACKEND');
      expect(r.out).toContain(info.reason as string);
    }
  });

  it('the raw bindings asked for the GPU check shapes first, then report the missing backend as E_BACKEND', () => {
    const q = new Float32Array(6);
    const c = new Float32Array(6);
    const GPU = { mode: 'sync', device: 'gpu' };
    const sim = (cRows: number, metric = 'dot') =>
      native.similarityMatrix({ q: { data: q, rows: 2, cols: 3 }, c: { dtype: 'f32', rows: cRows, f32: c }, metric }, GPU);
    const top = (k: number) => native.topK({ q: { data: q, rows: 2, cols: 3 }, c: { dtype: 'f32', rows: 2, f32: c }, k, metric: 'dot' }, GPU);
    rawThrows(() => sim(4), 'E_SHAPE');
    rawThrows(() => top(3), 'E_ARG');
    expect(native.cudaTopKMax()).toBe(128);
    if (!gpu) {
      rawThrows(() => sim(2), 'E_BACKEND', /not available/);
      rawThrows(() => top(1), 'E_BACKEND', /not available/);
      // k beyond the GPU's limit runs on the CPU (and fails there for its own reason here: k > c.rows).
      rawThrows(() => top(129), 'E_ARG', /k/);
      // 'auto' falls back to the CPU silently, whatever the work threshold.
      const auto = { mode: 'sync', device: 'auto', minWork: 0 };
      const r = native.similarityMatrix({ q: { data: q, rows: 2, cols: 3 }, c: { dtype: 'f32', rows: 2, f32: c }, metric: 'dot' }, auto) as Float32Array;
      expect(Array.from(r)).toEqual([0, 0, 0, 0]);
    }
  });

  it('the raw learning bindings asked for the GPU validate like the CPU before asking for the device', () => {
    const x = new Float32Array([1, 2, 3, 4, 5, 6]);
    const m = (data: Float32Array, rows: number, cols = 3) => ({ data, rows, cols });
    const GPU = { mode: 'sync', device: 'gpu' };
    const nce = (o: Record<string, unknown>) => native.infoNCE({ q: m(x, 2), keys: m(x, 2), temperature: 0.1, normalize: false, ...o }, GPU);
    // shapes, then arguments, then values — the CPU's order
    rawThrows(() => nce({ keys: m(x, 3) }), 'E_SHAPE');
    rawThrows(() => nce({ temperature: 0 }), 'E_ARG', /temperature/);
    rawThrows(() => nce({ positives: new Uint32Array([0, 5]) }), 'E_ARG', /positives\[1\]/);
    rawThrows(() => nce({ q: m(new Float32Array([1, 2, 3, NaN, 5, 6]), 2) }), 'E_NON_FINITE');
    const ntx = (a: Float32Array, b: Float32Array, rows: number) => native.ntXent({ a: m(a, rows), b: m(b, rows), temperature: 0.1 }, GPU);
    rawThrows(() => ntx(x, x, 3), 'E_SHAPE');
    rawThrows(() => ntx(x, new Float32Array([0, 0, 0, 1, 1, 1]), 2), 'E_ARG', /zero norm/);
    const margin = (labels: number[], kind: string, mg: number, ls = 0) =>
      native.marginSoftmax({ x: m(x, 2), prototypes: m(x, 2), labels: new Uint32Array(labels), kind, scale: 30, margin: mg, labelSmoothing: ls }, GPU);
    rawThrows(() => margin([0, 2], 'normalized', 0), 'E_ARG', /labels\[1\]/);
    rawThrows(() => margin([0, 1], 'arcface', 2), 'E_ARG', /margin/);
    const w = (rows: number, cols: number, p: number) => native.wassersteinRegularizer({ a: m(x, rows, cols), b: m(x, rows, cols), p }, GPU);
    rawThrows(() => w(1, 6, 2), 'E_SHAPE');
    rawThrows(() => w(2, 3, 3), 'E_ARG', /p must be/);
    if (!gpu) {
      rawThrows(() => nce({ normalize: true }), 'E_BACKEND', /not available/);
      rawThrows(() => ntx(x, x, 2), 'E_BACKEND', /not available/);
      rawThrows(() => margin([0, 1], 'arcface', 0.5, 0.1), 'E_BACKEND', /not available/);
      rawThrows(() => w(2, 3, 2), 'E_BACKEND', /not available/);
      // With keyIds the GPU form does not apply: the CPU computes, even when the GPU is asked for.
      const r = nce({ keyIds: new Uint32Array([0, 1]) }) as { loss: number };
      expect(Number.isFinite(r.loss)).toBe(true);
    }
  });
});

describe('cuda backend: results', () => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [3, 5, 7],
    [17, 33, 65],
    [200, 401, 97],
  ];

  function onCuda(f: () => void): void {
    if (gpu) dv.setBackend('cuda');
    try {
      f();
    } finally {
      dv.setBackend('auto');
    }
  }

  it('similarityMatrix agrees with the reference (on the GPU when present, else native)', () => {
    onCuda(() => {
      for (const [m, n, d] of shapes) {
        const q = randm(m, d, m + 3 * d);
        const c = randm(n, d, n + 5 * d);
        for (const metric of ['dot', 'cosine', 'l2sq'] as const) {
          const got = dv.similarityMatrix(q, c, { metric });
          expect([got.rows, got.cols]).toEqual([m, n]);
          close(got.data, ref.similarityMatrix(q, c, { metric }).data, 1e-4, 1e-4 * d);
        }
      }
    });
  });

  it('topK agrees with the reference, ties by lower index, k above the GPU limit on the CPU', () => {
    onCuda(() => topKMatchesReference([1, 5, 64, 128, 200]));
  });

  it('infoNCE, ntXent, marginSoftmax and wassersteinRegularizer agree with the reference (GPU when present, else native)', () => {
    onCuda(() => {
      const lossAndGrads = (got: Record<string, unknown>, want: Record<string, unknown>, keys: string[]) => {
        close(got.loss as number, want.loss as number, 1e-5, 1e-5);
        for (const k of keys) {
          const w = (want[k] as { data: Float64Array | Float32Array }).data;
          let m = 1e-12;
          for (const x of w) m = Math.max(m, Math.abs(x));
          close((got[k] as { data: Float32Array }).data, w, 1e-4, 1e-5 * m);
        }
      };
      for (const [b, n, d] of [
        [1, 1, 1],
        [7, 13, 5],
        [40, 97, 33],
      ] as const) {
        const q = randm(b, d, b + d);
        const k = randm(n, d, n + 2 * d);
        const positives = Uint32Array.from({ length: b }, (_, i) => (i * 7 + 3) % n);
        const logQ = Float32Array.from({ length: n }, (_, j) => -Math.log(1 + (j % 5)));
        for (const o of [{ temperature: 0.1 }, { temperature: 0.2, normalize: true, positives, logQ }]) {
          lossAndGrads(dv.infoNCE(q, k, o) as never, ref.infoNCE(q, k, o) as never, ['gradQ', 'gradKeys']);
        }
      }
      const a = randm(12, 9, 1);
      const b2 = randm(12, 9, 2);
      lossAndGrads(dv.ntXent(a, b2, { temperature: 0.3 }) as never, ref.ntXent(a, b2, { temperature: 0.3 }) as never, ['gradA', 'gradB']);
      const x = randm(15, 8, 3);
      const w = randm(6, 8, 4);
      const labels = Uint32Array.from({ length: 15 }, (_, i) => i % 6);
      for (const o of [
        { kind: 'arcface', margin: 0.5 },
        { kind: 'cosface', margin: 0.35, labelSmoothing: 0.1 },
      ] as const) {
        const got = dv.marginSoftmax(x, w, labels, o);
        const want = ref.marginSoftmax(x, w, labels, o);
        lossAndGrads(got as never, want as never, ['gradX', 'gradW', 'logits']);
      }
      lossAndGrads(dv.wassersteinRegularizer(a, b2) as never, ref.wassersteinRegularizer(a, b2) as never, ['gradA', 'gradB']);
    });
  });

  it("'auto' with a zero size threshold gives the same results (GPU when present, else native)", () => {
    const old = process.env.DENSEVEC_CUDA_MIN_WORK;
    process.env.DENSEVEC_CUDA_MIN_WORK = '0';
    try {
      dv.setBackend('auto');
      const q = randm(9, 40, 7);
      const c = randm(300, 40, 8);
      close(dv.similarityMatrix(q, c).data, ref.similarityMatrix(q, c).data, 1e-4, 1e-4 * 40);
      const got = dv.topK(q, c, 10, { metric: 'l2sq' });
      expect(Array.from(got.indices)).toEqual(Array.from(ref.topK(q, c, 10, { metric: 'l2sq' }).indices));
      expect(dv.backendInfo().backend).toBe('native');
    } finally {
      if (old === undefined) delete process.env.DENSEVEC_CUDA_MIN_WORK;
      else process.env.DENSEVEC_CUDA_MIN_WORK = old;
    }
  });

  it('other functions keep working under the CUDA backend (native CPU code)', () => {
    onCuda(() => {
      const a = randm(1, 17, 3).data;
      const b = randm(1, 17, 4).data;
      close(dv.cosine(a, b), ref.cosine(a, b), 1e-5, 1e-6);
    });
  });
});
