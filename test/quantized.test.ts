import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { close, dv, forEachIsa, randm, ref, throwsCode } from './helpers';

const fx = JSON.parse(readFileSync(new URL('./fixtures/quantize.json', import.meta.url), 'utf8'));

// Compact corpus storage (f16, bf16, i8 + scale) for similarityMatrix and topK: a compact
// corpus means exactly its decoded float32 values, so every backend must give the float32
// function's result on dequantize(c).

const dtypes = ['f16', 'bf16', 'i8'] as const;

describe('i8 at the top of the float32 range', () => {
  it('a row holding the largest float32 decodes to finite values, and searches without ∞', () => {
    const F = 3.4028234663852886e38;
    const m = dv.matrix([
      [F, -F, 1],
      [F / 2, 0, -1],
    ]);
    for (const scale of ['row', 'global'] as const) {
      const q = dv.quantize(m, 'i8', { scale });
      const d = dv.dequantize(q).data;
      for (const v of d) expect(Number.isFinite(v), `${scale}: ${Array.from(d)}`).toBe(true);
      expect(d[0]).toBeGreaterThan(0.9999999 * F);
      expect(d[1]).toBeLessThan(-0.9999999 * F);
      for (const v of dv.similarityMatrix(dv.matrix([[1e-30, 0, 0]]), q).data) expect(Number.isFinite(v)).toBe(true);
    }
  });
});

describe('quantize / dequantize', () => {
  it('f16 and bf16 encode every float32 they can represent exactly and round to nearest even', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = ref.f16ToNumber(h);
      if (!Number.isNaN(x)) expect(ref.numberToF16(x)).toBe(h);
      const y = ref.bf16ToNumber(h);
      if (!Number.isNaN(y)) expect(ref.numberToBf16(y)).toBe(h);
    }
    expect(ref.numberToF16(1 + 1 / 2048)).toBe(0x3c00); // tie → even
    expect(ref.numberToF16(1 + 3 / 2048)).toBe(0x3c02);
    expect(ref.numberToF16(65520)).toBe(0x7c00); // overflow → +∞
    expect(ref.numberToF16(-(2 ** -25) * 1.5)).toBe(0x8001); // subnormal
    expect(ref.f16ToNumber(0x0001)).toBe(2 ** -24);
    expect(Number.isNaN(ref.f16ToNumber(ref.numberToF16(NaN)))).toBe(true);
    expect(Number.isNaN(ref.bf16ToNumber(ref.numberToBf16(NaN)))).toBe(true);
  });

  it('encodes like NumPy float16 and PyTorch bfloat16 (fixtures: ties, subnormals, overflow, random)', () => {
    const m = { data: Float32Array.from(fx.values as number[]), rows: 1, cols: fx.values.length };
    expect(Array.from(dv.quantize(m, 'f16').data)).toEqual(fx.f16);
    expect(Array.from(dv.quantize(m, 'bf16').data)).toEqual(fx.bf16);
    const s = fx.similarity;
    const q = { data: Float32Array.from(s.q as number[]), rows: s.rows[0], cols: s.cols };
    const c = { data: Float32Array.from(s.c as number[]), rows: s.rows[1], cols: s.cols };
    const c16 = dv.quantize(c, 'f16');
    const cb = dv.quantize(c, 'bf16');
    expect(Array.from(c16.data)).toEqual(s.f16Bits);
    expect(Array.from(cb.data)).toEqual(s.bf16Bits);
    close(dv.similarityMatrix(q, c16).data, s.cosineF16, 1e-5, 1e-6);
    close(dv.similarityMatrix(q, cb).data, s.cosineBf16, 1e-5, 1e-6);
    close(ref.similarityMatrix(q, c16).data, s.cosineF16, 1e-6, 1e-7);
  });

  it('round trips within the storage precision; i8 keeps each row within scale/2', () => {
    const m = randm(13, 37, 1);
    for (const [t, rel] of [
      ['f16', 2 ** -11],
      ['bf16', 2 ** -8],
    ] as const) {
      const back = dv.dequantize(dv.quantize(m, t));
      for (let i = 0; i < m.data.length; i++) expect(Math.abs(back.data[i] - m.data[i])).toBeLessThanOrEqual(rel * Math.abs(m.data[i]) + 1e-7);
    }
    for (const scale of ['row', 'global'] as const) {
      const qm = dv.quantize(m, 'i8', { scale });
      const back = dv.dequantize(qm);
      for (let r = 0; r < m.rows; r++) {
        const s = typeof qm.scale === 'number' ? qm.scale : qm.scale[r];
        for (let j = 0; j < m.cols; j++) {
          const i = r * m.cols + j;
          expect(Math.abs(back.data[i] - m.data[i])).toBeLessThanOrEqual(s / 2 + 1e-6);
          expect(Math.abs(qm.data[i])).toBeLessThanOrEqual(127);
        }
      }
      if (scale === 'row') expect(qm.scale).toBeInstanceOf(Float32Array);
      else expect(typeof qm.scale).toBe('number');
    }
    // a zero row gets scale 0 and decodes to zeros
    const z = { data: new Float32Array([0, 0, 1, -2]), rows: 2, cols: 2 };
    const qz = dv.quantize(z, 'i8');
    expect(Array.from(dv.dequantize(qz).data)).toEqual([0, 0, Math.fround(2 / 127) * 64, -2]);
  });

  it('dequantize of a float32 Matrix is the matrix itself', () => {
    const m = randm(2, 3, 2);
    expect(dv.dequantize(m)).toBe(m);
  });
});

describe('similarityMatrix and topK on compact corpora', () => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [3, 5, 7],
    [17, 1601, 33],
  ];

  it('native equals the float32 function on the decoded corpus, every dtype, metric and ISA', () => {
    forEachIsa((isa) => {
      for (const [m, n, d] of shapes) {
        const q = randm(m, d, m + d);
        const c = randm(n, d, n + d);
        for (const t of dtypes) {
          const cq = dv.quantize(c, t);
          const dec = dv.dequantize(cq);
          for (const metric of ['dot', 'cosine', 'l2sq'] as const) {
            const got = dv.similarityMatrix(q, cq, { metric });
            // same GEMM and epilogue on the same float32 values: identical to the float32 call
            expect(Array.from(got.data), `${isa} ${t} ${metric}`).toEqual(Array.from(dv.similarityMatrix(q, dec, { metric }).data));
            close(got.data, ref.similarityMatrix(q, cq, { metric }).data, 1e-4, 1e-4 * d);
            const k = Math.min(5, n);
            const tk = dv.topK(q, cq, k, { metric });
            const want = dv.topK(q, dec, k, { metric });
            expect(Array.from(tk.indices)).toEqual(Array.from(want.indices));
            expect(Array.from(tk.scores)).toEqual(Array.from(want.scores));
            expect(Array.from(ref.topK(q, cq, k, { metric }).indices)).toEqual(Array.from(want.indices));
          }
        }
      }
    });
  });

  it('per-row and global i8 scales; ties by lower index across pieces', () => {
    const d = 8;
    const n = 3000;
    const data = new Int8Array(n * d);
    data.set([1, 2, 3, 4, 5, 6, 7, 8], 10 * d);
    data.set([1, 2, 3, 4, 5, 6, 7, 8], 2900 * d); // same row in another piece
    const q = { data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), rows: 1, cols: d };
    const g = dv.topK(q, { data, rows: n, cols: d, dtype: 'i8', scale: 0.5 }, 3, { metric: 'cosine' });
    expect(Array.from(g.indices.slice(0, 2))).toEqual([10, 2900]);
    const scale = new Float32Array(n).fill(1);
    scale[2900] = 2; // larger norm: same cosine, larger dot
    const r = dv.topK(q, { data, rows: n, cols: d, dtype: 'i8', scale }, 2, { metric: 'dot' });
    expect(Array.from(r.indices)).toEqual([2900, 10]);
    close(r.scores, [2 * 204, 204], 1e-6);
  });

  it('the async twins give the same results', async () => {
    const q = randm(4, 24, 5);
    const c = randm(300, 24, 6);
    for (const t of dtypes) {
      const cq = dv.quantize(c, t);
      expect(Array.from((await dv.similarityMatrixAsync(q, cq)).data)).toEqual(Array.from(dv.similarityMatrix(q, cq).data));
      expect(Array.from((await dv.topKAsync(q, cq, 7)).indices)).toEqual(Array.from(dv.topK(q, cq, 7).indices));
    }
  });

  it('explains bad compact corpora with the usual codes, in the usual order', () => {
    const q = randm(1, 2, 1);
    const half = new Uint16Array(4);
    for (const impl of [dv, ref] as const) {
      throwsCode(() => impl.similarityMatrix(q, { data: new Float32Array(4), rows: 2, cols: 2, dtype: 'f16' } as never), 'E_TYPE', /Uint16Array/);
      throwsCode(() => impl.similarityMatrix(q, { data: half, rows: 2, cols: 2, dtype: 'i8', scale: 1 } as never), 'E_TYPE', /Int8Array/);
      throwsCode(() => impl.similarityMatrix(q, { data: new Int8Array(4), rows: 2, cols: 2, dtype: 'i8' } as never), 'E_TYPE', /scale/);
      throwsCode(() => impl.similarityMatrix(q, { data: half, rows: 2, cols: 2, dtype: 'f8' } as never), 'E_ARG', /dtype/);
      throwsCode(() => impl.similarityMatrix(q, { data: half, rows: 3, cols: 2, dtype: 'f16' }), 'E_SHAPE', /length 4/);
      throwsCode(() => impl.similarityMatrix(q, { data: new Uint16Array(6), rows: 2, cols: 3, dtype: 'bf16' }), 'E_SHAPE', /columns/);
      throwsCode(() => impl.topK(q, { data: new Int8Array(4), rows: 2, cols: 2, dtype: 'i8', scale: new Float32Array(3) }, 1), 'E_SHAPE', /scale has length 3/);
      throwsCode(() => impl.topK(q, { data: new Int8Array(4), rows: 2, cols: 2, dtype: 'i8', scale: -1 }, 1), 'E_ARG', /scale/);
      throwsCode(() => impl.topK(q, { data: new Int8Array(4), rows: 2, cols: 2, dtype: 'i8', scale: new Float32Array([1, NaN]) }, 1), 'E_ARG', /scale\[1\]/);
      throwsCode(() => impl.topK(q, { data: half, rows: 2, cols: 2, dtype: 'f16' }, 3), 'E_ARG', /k must be/);
    }
    throwsCode(() => dv.quantize(q, 'f8' as never), 'E_ARG', /dtype/);
    throwsCode(() => dv.quantize({ data: new Float32Array([1, NaN]), rows: 1, cols: 2 }, 'i8'), 'E_NON_FINITE');
    throwsCode(() => dv.quantize(q, 'i8', { scale: 'col' as never }), 'E_ARG', /scale/);
  });
});
