/**
 * Batched row-wise pairs: `dotRows`, `cosineRows`, `l2sqRows`, `l1Rows` return one value per row of two
 * n × d matrices in one call. A single-pair call (`dot`, `cosine`, `l2sq`) costs ~80 ns of
 * argument handling however short the vectors are; these pay it once for all n rows and run
 * at memory bandwidth. Each value equals the single-pair function on the same two rows.
 */
import { nat, rethrow } from './backend';
import type { Matrix } from './matrix';
import * as contract from './contract/rows';
import * as ref from './reference/rows';
import { snap } from './contract/validate';

type RowsFn = 'dotRows' | 'cosineRows' | 'l2sqRows' | 'l1Rows';

function pairRows(fn: RowsFn, a: Matrix, b: Matrix): Float32Array {
  a = snap(fn, 'a', a);
  b = snap(fn, 'b', b);
  const n = nat();
  if (n === null) return ref[fn](a, b);
  contract.checkRows(fn, a, b);
  try {
    return n[fn]({ a, b });
  } catch (e) {
    rethrow(e);
  }
}

/** Σ_k a_ik b_ik for every row i of two equal-shape matrices: a Float32Array of a.rows values. */
export function dotRows(a: Matrix, b: Matrix): Float32Array {
  return pairRows('dotRows', a, b);
}

/** Cosine of row i of `a` and row i of `b` (0 when either is zero), for every row. */
export function cosineRows(a: Matrix, b: Matrix): Float32Array {
  return pairRows('cosineRows', a, b);
}

/** Squared Euclidean distance Σ_k (a_ik − b_ik)² for every row i. */
export function l2sqRows(a: Matrix, b: Matrix): Float32Array {
  return pairRows('l2sqRows', a, b);
}

/** L1 (Manhattan) distance Σ_k |a_ik − b_ik| of row i of `a` and row i of `b`, for every row. */
export function l1Rows(a: Matrix, b: Matrix): Float32Array {
  return pairRows('l1Rows', a, b);
}
