import { fail } from './errors';
import { matrixFrom, type TensorLike } from './inputs';
import { describe, isF32, matType, show, snap } from './contract/validate';

/** A row-major matrix: one embedding per row; `data.length === rows * cols`. */
export interface Matrix {
  data: Float32Array;
  rows: number;
  cols: number;
}

/** A Matrix over `data` with the shape of `m` (a gradient in the shape of its input). */
export function shapedLike(data: Float32Array, m: { rows: number; cols: number }): Matrix {
  return { data, rows: m.rows, cols: m.cols };
}

/**
 * Builds a {@link Matrix}. From a `Float32Array` (no copy; `cols` required, `rows` is
 * `data.length / cols`) or from `number[][]` (copied; every row must have the same length and
 * every entry must be a number). Types are checked before shapes: a non-integer `cols`, a row
 * that is not an array or an entry that is not a number is E_TYPE; ragged rows are E_SHAPE.
 * Also (see docs/pipelines.md): a `Float64Array` or other numeric typed array with `cols`
 * (copied), a tensor-like `{ data, dims: [rows, cols] }` (no copy for Float32Array data) and an
 * Apache Arrow `FixedSizeList<Float32>` Vector or Data (no copy for one chunk; nulls → E_ARG).
 */
export function matrix(data: Float32Array | Float64Array | number[][] | readonly (readonly number[])[] | TensorLike | object, cols?: number): Matrix {
  if (isF32(data)) {
    if (typeof cols !== 'number' || !Number.isInteger(cols) || cols < 1) {
      fail('E_TYPE', `matrix: cols must be a positive integer when data is a Float32Array, got ${show(cols)}`);
    }
    if (data.length % cols !== 0) {
      fail('E_SHAPE', `matrix: data.length ${data.length} is not a multiple of cols ${cols}`);
    }
    return { data, rows: data.length / cols, cols };
  }
  if (!Array.isArray(data)) return matrixFrom(data, cols);
  if (cols !== undefined && (typeof cols !== 'number' || !Number.isInteger(cols) || cols < 0)) {
    fail('E_TYPE', `matrix: cols must be a non-negative integer, got ${show(cols)}`);
  }
  const rows = data.length;
  // Every row read once; types first, then lengths.
  const rs: unknown[] = new Array(rows);
  for (let i = 0; i < rows; i++) {
    const r = data[i];
    if (!Array.isArray(r)) fail('E_TYPE', `matrix: row ${i} is not an array, got ${describe(r)}`);
    rs[i] = r;
  }
  const c = rows > 0 ? (rs[0] as readonly unknown[]).length : (cols ?? 0);
  const out = new Float32Array(rows * c);
  for (let i = 0; i < rows; i++) {
    const r = rs[i] as readonly unknown[];
    const n = r.length;
    for (let j = 0; j < n; j++) {
      const x = r[j];
      if (typeof x !== 'number') fail('E_TYPE', `matrix: entry [${i}][${j}] must be a number, got ${describe(x)}`);
      if (n === c) out[i * c + j] = x;
    }
  }
  for (let i = 0; i < rows; i++) {
    const n = (rs[i] as readonly unknown[]).length;
    if (n !== c) fail('E_SHAPE', `matrix: row ${i} has length ${n} but row 0 has length ${c}`);
  }
  if (cols !== undefined && cols !== c) fail('E_SHAPE', `matrix: rows have length ${c} but cols is ${cols}`);
  return { data: out, rows, cols: c };
}

/** Types and the length rule of a Matrix argument of row/rows (an empty Matrix is allowed). */
function checkRows(fn: string, m: unknown): asserts m is Matrix {
  matType(fn, 'm', m);
}

function checkLength(fn: string, m: Matrix): void {
  if (m.data.length !== m.rows * m.cols) {
    fail('E_SHAPE', `${fn}: m.data has length ${m.data.length} but rows * cols = ${m.rows} * ${m.cols} = ${m.rows * m.cols}`);
  }
}

/** A `Float32Array` view (no copy) of row `i`. */
export function row(m: Matrix, i: number): Float32Array {
  m = snap('row', 'm', m);
  checkRows('row', m);
  if (typeof i !== 'number' || !Number.isInteger(i)) fail('E_TYPE', `row: i must be an integer, got ${show(i)}`);
  checkLength('row', m);
  if (i < 0 || i >= m.rows) fail('E_ARG', `row: i = ${i} is outside [0, ${m.rows})`);
  return m.data.subarray(i * m.cols, (i + 1) * m.cols);
}

/** Views of every row. */
export function rows(m: Matrix): Float32Array[] {
  m = snap('rows', 'm', m);
  checkRows('rows', m);
  checkLength('rows', m);
  const out: Float32Array[] = new Array(m.rows);
  for (let i = 0; i < m.rows; i++) out[i] = m.data.subarray(i * m.cols, (i + 1) * m.cols);
  return out;
}
