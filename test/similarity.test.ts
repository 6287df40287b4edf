import { describe, expect, it } from 'vitest';
import { close, dv, forEachIsa, GEMM_SHAPES, native, randm, randn, ref, throwsCode, topKMatchesReference } from './helpers';

describe('similarity: native vs reference', () => {
  it('runs on the native backend', () => {
    expect(dv.backendInfo().backend).toBe('native');
  });

  it('pair functions agree on odd lengths and unaligned views, every ISA', () => {
    const lens = [1, 2, 3, 7, 15, 16, 17, 31, 33, 63, 64, 65, 67, 768, 1031, 1536];
    forEachIsa(() => {
      for (const n of lens) {
        for (const off of [0, 1, 3]) {
          const a = randn(n + off, n).subarray(off);
          const b = randn(n + off, n + 7).subarray(off);
          close(dv.dot(a, b), ref.dot(a, b), 1e-5, 1e-5 * Math.sqrt(n));
          close(dv.cosine(a, b), ref.cosine(a, b), 1e-5, 1e-6);
          close(dv.l2sq(a, b), ref.l2sq(a, b), 1e-5, 1e-5);
          close(dv.norm(a), ref.norm(a), 1e-6);
          close(dv.normalize(a), ref.normalize(a), 1e-5, 1e-7);
        }
      }
    });
  });

  it('similarityMatrix agrees for every metric, every ISA', () => {
    forEachIsa(() => {
      for (const [m, n, d] of GEMM_SHAPES) {
        const q = randm(m, d, m * 31 + d);
        const c = randm(n, d, n * 17 + d);
        for (const metric of ['dot', 'cosine', 'l2sq'] as const) {
          const got = dv.similarityMatrix(q, c, { metric });
          const want = ref.similarityMatrix(q, c, { metric });
          expect([got.rows, got.cols]).toEqual([m, n]);
          close(got.data, want.data, 1e-4, 1e-4 * d);
        }
      }
    });
  });

  it('topK returns the exact top-k, ties by lower index', () => {
    topKMatchesReference([1, 5, 64]);
  });

  it('async twins agree with the sync functions', async () => {
    const q = randm(9, 20, 3);
    const c = randm(300, 20, 4);
    const s = await dv.similarityMatrixAsync(q, c, { metric: 'dot' });
    expect(Array.from(s.data)).toEqual(Array.from(dv.similarityMatrix(q, c, { metric: 'dot' }).data));
    const t = await dv.topKAsync(q, c, 4);
    expect(Array.from(t.indices)).toEqual(Array.from(dv.topK(q, c, 4).indices));
    await expect(dv.topKAsync(q, c, 0)).rejects.toMatchObject({ code: 'E_ARG' });
  });

  it('results do not depend on the thread count', () => {
    const q = randm(50, 96, 5);
    const c = randm(9000, 96, 6);
    dv.setThreads(1);
    const a = dv.similarityMatrix(q, c);
    const ta = dv.topK(q, c, 10);
    dv.setThreads(2);
    const b = dv.similarityMatrix(q, c);
    const tb = dv.topK(q, c, 10);
    expect(Buffer.from(a.data.buffer).equals(Buffer.from(b.data.buffer))).toBe(true);
    expect(Array.from(ta.indices)).toEqual(Array.from(tb.indices));
  });
});

describe('similarity: bad input', () => {
  for (const [name, impl] of [
    ['native', dv],
    ['reference', ref],
  ] as const) {
    it(`${name}: codes and messages`, () => {
      const a = new Float32Array(4);
      throwsCode(() => impl.cosine(a, new Float32Array(3)), 'E_SHAPE', /cosine: a has length 4 but b has length 3/);
      throwsCode(() => impl.dot([1, 2] as unknown as Float32Array, a), 'E_TYPE', /dot: a must be a Float32Array/);
      throwsCode(() => impl.dot(new Float32Array(0), new Float32Array(0)), 'E_SHAPE');
      const m = { data: new Float32Array(6), rows: 2, cols: 3 };
      throwsCode(() => impl.similarityMatrix(m, { data: new Float32Array(5), rows: 2, cols: 3 }), 'E_SHAPE', /c\.data has length 5/);
      throwsCode(() => impl.similarityMatrix(m, { data: new Float32Array(4), rows: 2, cols: 2 }), 'E_SHAPE');
      throwsCode(() => impl.similarityMatrix(m, m, { metric: 'hamming' as 'dot' }), 'E_ARG', /unknown metric/);
      throwsCode(() => impl.topK(m, m, 3), 'E_ARG', /k must be in \[1, 2\]/);
      throwsCode(() => impl.topK(m, m, 0), 'E_ARG');
      throwsCode(() => impl.topK(m, m, 1.5), 'E_TYPE');
      // E_TYPE wins over E_SHAPE.
      throwsCode(() => impl.topK({ data: [] as unknown as Float32Array, rows: 2, cols: 3 }, { data: new Float32Array(1), rows: 2, cols: 3 }, 1), 'E_TYPE');
    });
  }

  it('NaN propagates through similarity without an error', () => {
    const a = new Float32Array([1, NaN, 3]);
    const b = new Float32Array([1, 2, 3]);
    expect(Number.isNaN(dv.dot(a, b))).toBe(true);
    expect(Number.isNaN(dv.cosine(a, b))).toBe(true);
    const q = { data: a, rows: 1, cols: 3 };
    const c = { data: new Float32Array([1, 2, 3, 1, 0, 0, 0, 1, 0]), rows: 3, cols: 3 };
    const t = dv.topK({ data: new Float32Array([1, 1, 1]), rows: 1, cols: 3 }, { data: new Float32Array([NaN, 0, 0, 1, 0, 0, 0, 1, 0]), rows: 3, cols: 3 }, 3);
    expect(t.indices[2]).toBe(0);
    expect(Number.isNaN(t.scores[2])).toBe(true);
    expect(dv.similarityMatrix(q, c).data.every((x: number) => Number.isNaN(x))).toBe(true);
  });
});

describe('similarity: buffer views', () => {
  it('pair functions honour byteOffset, SharedArrayBuffer views and raw-path errors', () => {
    const big = randn(1000, 9);
    const a = big.subarray(3, 3 + 500);
    const b = big.subarray(401, 401 + 500);
    close(dv.dot(a, b), ref.dot(a, b), 1e-5, 1e-4);
    const sa = new Float32Array(new SharedArrayBuffer(4 * 500));
    sa.set(a);
    close(dv.cosine(sa, b), ref.cosine(a, b), 1e-5, 1e-6);
    close(dv.l2sq(b, sa), ref.l2sq(b, a), 1e-5, 1e-4);
    // The raw entry points refuse what the wrapper would have rejected, instead of reading junk.
    expect(() => native.dotFast(a, b.subarray(1))).toThrow(/E_TYPE/);
    expect(() => native.cosineFast(a, new Float64Array(500))).toThrow(/E_TYPE/);
    expect(() => native.l2sqFast(a)).toThrow(/E_TYPE/);
  });
});
