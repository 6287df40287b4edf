import { fail } from './errors';
import { matrixFrom, type TensorLike } from './inputs';

/** A row-major matrix: one embedding per row; `data.length === rows * cols`. */
export interface Matrix {
  data: Float32Array;
  rows: number;
  cols: number;
}

/**
 * Builds a {@link Matrix}. From a `Float32Array` (no copy; `cols` required, `rows` is
 * `data.length / cols`) or from `number[][]` (copied; every row must have the same length).
 * Also (see docs/pipelines.md): a `Float64Array` or other numeric typed array with `cols`
 * (copied), a tensor-like `{ data, dims: [rows, cols] }` (no copy for Float32Array data) and an
 * Apache Arrow `FixedSizeList<Float32>` Vector or Data (no copy for one chunk; nulls → E_ARG).
 */
export function matrix(
  data: Float32Array | Float64Array | number[][] | readonly (readonly number[])[] | TensorLike | object,
  cols?: number,
): Matrix {
  if (data instanceof Float32Array) {
    if (typeof cols !== 'number' || !Number.isInteger(cols) || cols < 1) {
      fail('E_TYPE', `matrix: cols must be a positive integer when data is a Float32Array, got ${String(cols)}`);
    }
    if (data.length % cols !== 0) {
      fail('E_SHAPE', `matrix: data.length ${data.length} is not a multiple of cols ${cols}`);
    }
    return { data, rows: data.length / cols, cols };
  }
  if (!Array.isArray(data)) return matrixFrom(data, cols);
  const rows = data.length;
  const c = rows > 0 ? (data[0] as readonly number[]).length : cols ?? 0;
  if (cols !== undefined && cols !== c) fail('E_SHAPE', `matrix: rows have length ${c} but cols is ${cols}`);
  const out = new Float32Array(rows * c);
  for (let i = 0; i < rows; i++) {
    const r = data[i] as readonly number[];
    if (!Array.isArray(r)) fail('E_TYPE', `matrix: row ${i} is not an array`);
    if (r.length !== c) fail('E_SHAPE', `matrix: row ${i} has length ${r.length} but row 0 has length ${c}`);
    for (let j = 0; j < c; j++) out[i * c + j] = r[j];
  }
  return { data: out, rows, cols: c };
}

/** A `Float32Array` view (no copy) of row `i`. */
export function row(m: Matrix, i: number): Float32Array {
  if (!Number.isInteger(i)) fail('E_TYPE', `row: i must be an integer, got ${i}`);
  if (i < 0 || i >= m.rows) fail('E_ARG', `row: i = ${i} is outside [0, ${m.rows})`);
  return m.data.subarray(i * m.cols, (i + 1) * m.cols);
}

/** Views of every row. */
export function rows(m: Matrix): Float32Array[] {
  const out: Float32Array[] = new Array(m.rows);
  for (let i = 0; i < m.rows; i++) out[i] = m.data.subarray(i * m.cols, (i + 1) * m.cols);
  return out;
}
