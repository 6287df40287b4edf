/**
 * Row-wise similarity contract: the checks of dotRows, cosineRows and l2sqRows.
 */
import type { Matrix } from '../matrix';
import * as v from './validate';

/** Validates the two matrices of a row-wise call: types, then non-empty shapes, then equal shapes. */
export function checkRows(fn: string, a: unknown, b: unknown): asserts a is Matrix {
  v.matPair(fn, 'a', a, 'b', b, false);
}
