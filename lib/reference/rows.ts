/**
 * Reference of the batched row-wise pairs: one value per row of two n × d matrices.
 */
import { checkRows } from '../contract/rows';
import type { Matrix } from '../matrix';
import { cosine, dot, l2sq } from './similarity';

function pairRows(fn: string, a: Matrix, b: Matrix, f: (x: Float32Array, y: Float32Array) => number): Float32Array {
  checkRows(fn, a, b);
  const { rows, cols } = a;
  const out = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    out[i] = f(a.data.subarray(i * cols, (i + 1) * cols), b.data.subarray(i * cols, (i + 1) * cols));
  }
  return out;
}

/** Σ_k a_ik b_ik for every row i: a Float32Array of a.rows values. */
export function dotRows(a: Matrix, b: Matrix): Float32Array {
  return pairRows('dotRows', a, b, dot);
}

/** Cosine of row i of `a` and row i of `b` (0 when either is zero), for every row. */
export function cosineRows(a: Matrix, b: Matrix): Float32Array {
  return pairRows('cosineRows', a, b, cosine);
}

/** Squared Euclidean distance of row i of `a` and row i of `b`, for every row. */
export function l2sqRows(a: Matrix, b: Matrix): Float32Array {
  return pairRows('l2sqRows', a, b, l2sq);
}

/** Σ_k |a_ik − b_ik| (summed in float64) of two rows. */
function l1(x: Float32Array, y: Float32Array): number {
  let s = 0;
  for (let k = 0; k < x.length; k++) s += Math.abs(x[k] - y[k]);
  return s;
}

/** L1 (Manhattan) distance Σ_k |a_ik − b_ik| of row i of `a` and row i of `b`, for every row. */
export function l1Rows(a: Matrix, b: Matrix): Float32Array {
  return pairRows('l1Rows', a, b, l1);
}
