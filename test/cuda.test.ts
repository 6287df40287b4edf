import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { close, dv, native, randm, ref, throwsCode } from './helpers';

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
    const raw = native.cudaInfo() as { available: boolean; device?: string; reason?: string; computeCapability?: string };
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

  it('the raw GPU bindings check shapes first, then report the missing backend as E_BACKEND', () => {
    const q = new Float32Array(6);
    const c = new Float32Array(6);
    rawThrows(() => native.cudaSimilarityMatrix(q, 2, c, 4, 3, 0), 'E_SHAPE');
    rawThrows(() => native.cudaTopK(q, 2, c, 2, 3, 3, 0), 'E_ARG');
    rawThrows(() => native.cudaTopK(q, 2, c, 2, 3, 1, 7), 'E_ARG');
    expect(native.cudaTopKMax()).toBe(128);
    if (!gpu) {
      rawThrows(() => native.cudaSimilarityMatrix(q, 2, c, 2, 3, 0), 'E_BACKEND', /not available/);
      rawThrows(() => native.cudaTopK(q, 2, c, 2, 3, 1, 0), 'E_BACKEND', /not available/);
    }
  });
});

describe('cuda backend: results', () => {
  const shapes: [number, number, number][] = [[1, 1, 1], [3, 5, 7], [17, 33, 65], [200, 401, 97]];

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
    onCuda(() => {
      const q = randm(7, 33, 1);
      const c = randm(5000, 33, 2);
      for (const metric of ['dot', 'cosine', 'l2sq'] as const) {
        for (const k of [1, 5, 64, 128, 200]) {
          const got = dv.topK(q, c, k, { metric });
          const want = ref.topK(q, c, k, { metric });
          expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
          close(got.scores, want.scores, 1e-4, 1e-4);
        }
      }
      const dup = { data: new Float32Array([1, 0, 0, 1, 1, 0, 1, 0]), rows: 4, cols: 2 };
      const one = { data: new Float32Array([1, 0]), rows: 1, cols: 2 };
      expect(Array.from(dv.topK(one, dup, 3).indices)).toEqual([0, 2, 3]);
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
