import { describe, expect, it } from 'vitest';
import { close, dv, randm, ref } from './helpers';

const OPS = [
  ['dotRows', 'dot'],
  ['cosineRows', 'cosine'],
  ['l2sqRows', 'l2sq'],
] as const;

/** Odd shapes: a single entry, SIMD tails, more rows than one parallel block. */
const SHAPES = [
  [1, 1],
  [3, 7],
  [17, 33],
  [700, 5],
  [1025, 17],
] as const;

/** Two random matrices of one shape. */
function pairOf(rows: number, cols: number) {
  return [randm(rows, cols, rows + cols), randm(rows, cols, 3 * rows + cols)];
}

function rowOf(m: { data: Float32Array; cols: number }, i: number): Float32Array {
  return m.data.subarray(i * m.cols, (i + 1) * m.cols);
}

describe('batched row-wise pairs', () => {
  for (const [fn, single] of OPS) {
    it(`${fn} equals the single-pair function on every row, odd shapes, both backends`, () => {
      for (const [rows, cols] of SHAPES) {
        const [a, b] = pairOf(rows, cols);
        const got = dv[fn](a, b);
        const want = ref[fn](a, b);
        expect(got).toBeInstanceOf(Float32Array);
        expect(got.length).toBe(rows);
        close(got, want, 1e-5, 1e-5);
        for (let i = 0; i < rows; i += 97) {
          // Bit for bit the native single-pair value.
          expect(got[i]).toBe(Math.fround(dv[single](rowOf(a, i), rowOf(b, i))));
        }
      }
    });
  }

  it('l1Rows is the sum of absolute differences per row, on both backends', () => {
    const a = { data: new Float32Array([1, -2, 3, 0.5, 0, -1]), rows: 2, cols: 3 };
    const b = { data: new Float32Array([0, 2, 3, -0.5, 0, 1]), rows: 2, cols: 3 };
    expect(Array.from(dv.l1Rows(a, b))).toEqual([5, 3]);
    expect(Array.from(ref.l1Rows(a, b))).toEqual([5, 3]);
    for (const [rows, cols] of SHAPES) {
      const [x, y] = pairOf(rows, cols);
      const got = dv.l1Rows(x, y);
      expect(got).toBeInstanceOf(Float32Array);
      close(got, ref.l1Rows(x, y), 1e-6, 1e-6);
      // A metric: zero on equal rows, symmetric, and the triangle inequality through 0.
      expect(Array.from(dv.l1Rows(x, x)).every((v) => v === 0)).toBe(true);
      expect(dv.l1Rows(y, x)).toEqual(got);
      const zero = { data: new Float32Array(rows * cols), rows, cols };
      const viaZero = dv.l1Rows(x, zero).map((v, i) => v + dv.l1Rows(zero, y)[i]);
      for (let i = 0; i < rows; i++) expect(got[i]).toBeLessThanOrEqual(viaZero[i] * (1 + 1e-6));
    }
  });

  it('honours subarray views at any offset', () => {
    const big = randm(9, 6, 5).data;
    const a = { data: big.subarray(1, 1 + 24), rows: 4, cols: 6 };
    const b = { data: big.subarray(29, 29 + 24), rows: 4, cols: 6 };
    close(dv.dotRows(a, b), ref.dotRows(a, b), 1e-5, 1e-5);
  });

  it('results do not depend on the thread count', () => {
    const a = randm(5000, 24, 1);
    const b = randm(5000, 24, 2);
    dv.setThreads(1);
    const one = dv.cosineRows(a, b);
    dv.setThreads(2);
    expect(dv.cosineRows(a, b)).toEqual(one);
  });

  it('bad input follows the error contract on both backends', () => {
    const a = randm(3, 4, 1);
    const cases: [unknown, unknown, string][] = [
      [new Float32Array(12), a, 'E_TYPE'],
      [a, { data: new Float64Array(12), rows: 3, cols: 4 }, 'E_TYPE'],
      [a, randm(3, 5, 2), 'E_SHAPE'],
      [a, randm(2, 4, 2), 'E_SHAPE'],
      [{ data: new Float32Array(0), rows: 0, cols: 4 }, { data: new Float32Array(0), rows: 0, cols: 4 }, 'E_SHAPE'],
      [{ data: new Float32Array(11), rows: 3, cols: 4 }, a, 'E_SHAPE'],
    ];
    for (const [x, y, code] of cases) {
      for (const lib of [dv, ref]) {
        for (const fn of [...OPS.map(([f]) => f), 'l1Rows' as const]) {
          let err: unknown;
          try {
            (lib[fn] as (p: unknown, q: unknown) => unknown)(x, y);
          } catch (e) {
            err = e;
          }
          expect(err, `${fn}`).toBeInstanceOf(dv.DensevecError);
          expect((err as { code: string }).code, `${fn}`).toBe(code);
        }
      }
    }
  });
});
