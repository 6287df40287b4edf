/**
 * Argument checks shared by every backend, so that native, CUDA and reference report the same
 * codes and messages. Order of checks inside a function: types, then shapes, then values, then
 * finiteness (API: E_TYPE before E_SHAPE before E_ARG before E_NON_FINITE).
 */
import { fail } from './errors';
import type { Matrix } from './matrix';

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'Array';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}

function tag(v: unknown): string {
  return Object.prototype.toString.call(v);
}

/** Is a Float32Array (also from another realm). */
export function isF32(v: unknown): v is Float32Array {
  return v instanceof Float32Array || tag(v) === '[object Float32Array]';
}

/** Checks that `v` is a Float32Array. */
export function vecType(fn: string, name: string, v: unknown): asserts v is Float32Array {
  if (!isF32(v)) fail('E_TYPE', `${fn}: ${name} must be a Float32Array, got ${describe(v)}`);
}

/** Checks a non-empty Float32Array. */
export function vec(fn: string, name: string, v: unknown): asserts v is Float32Array {
  vecType(fn, name, v);
  if (v.length === 0) fail('E_SHAPE', `${fn}: ${name} is empty`);
}

/** Checks that `v` is a Uint32Array. */
export function u32(fn: string, name: string, v: unknown): asserts v is Uint32Array {
  if (!(v instanceof Uint32Array) && tag(v) !== '[object Uint32Array]') {
    fail('E_TYPE', `${fn}: ${name} must be a Uint32Array, got ${describe(v)}`);
  }
}

/** Checks the type of a Matrix (data Float32Array, integer rows/cols). */
export function matType(fn: string, name: string, m: unknown): asserts m is Matrix {
  if (typeof m !== 'object' || m === null) fail('E_TYPE', `${fn}: ${name} must be a Matrix {data, rows, cols}, got ${describe(m)}`);
  if (ArrayBuffer.isView(m) || Array.isArray(m)) fail('E_TYPE', `${fn}: ${name} must be a Matrix {data, rows, cols}, got ${describe(m)}: wrap it with matrix(x, cols) (a single vector: matrix(x, x.length))`);
  const mm = m as Matrix;
  if (!isF32(mm.data)) fail('E_TYPE', `${fn}: ${name}.data must be a Float32Array, got ${describe(mm.data)}`);
  if (!Number.isInteger(mm.rows) || mm.rows < 0) fail('E_TYPE', `${fn}: ${name}.rows must be a non-negative integer, got ${String(mm.rows)}`);
  if (!Number.isInteger(mm.cols) || mm.cols < 0) fail('E_TYPE', `${fn}: ${name}.cols must be a non-negative integer, got ${String(mm.cols)}`);
}

/** Checks the shape of a Matrix: data.length === rows * cols and non-empty. */
export function matShape(fn: string, name: string, m: Matrix, minRows = 1): void {
  if (m.data.length !== m.rows * m.cols) {
    fail('E_SHAPE', `${fn}: ${name}.data has length ${m.data.length} but rows * cols = ${m.rows} * ${m.cols} = ${m.rows * m.cols}`);
  }
  if (m.rows === 0 || m.cols === 0) fail('E_SHAPE', `${fn}: ${name} is empty (${m.rows} x ${m.cols})`);
  if (m.rows < minRows) fail('E_SHAPE', `${fn}: ${name} has ${m.rows} row(s) but at least ${minRows} are needed`);
}

/** matType + matShape. */
export function mat(fn: string, name: string, m: unknown, minRows = 1): asserts m is Matrix {
  matType(fn, name, m);
  matShape(fn, name, m, minRows);
}

/** Checks that two matrices have the same number of columns. */
export function sameCols(fn: string, an: string, a: Matrix, bn: string, b: Matrix): void {
  if (a.cols !== b.cols) fail('E_SHAPE', `${fn}: ${an} has ${a.cols} columns but ${bn} has ${b.cols}`);
}

/** Checks that two matrices have the same shape. */
export function sameShape(fn: string, an: string, a: Matrix, bn: string, b: Matrix): void {
  if (a.rows !== b.rows || a.cols !== b.cols) {
    fail('E_SHAPE', `${fn}: ${an} is ${a.rows} x ${a.cols} but ${bn} is ${b.rows} x ${b.cols}`);
  }
}

/** Checks an integer (E_TYPE otherwise). */
export function int(fn: string, name: string, v: unknown): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v)) fail('E_TYPE', `${fn}: ${name} must be an integer, got ${String(v)}`);
}

/** Checks a number (E_TYPE otherwise). */
export function num(fn: string, name: string, v: unknown): asserts v is number {
  if (typeof v !== 'number') fail('E_TYPE', `${fn}: ${name} must be a number, got ${describe(v)}`);
}

/** Checks an options bag: undefined or a plain object. */
export function opts<T extends object>(fn: string, o: T | undefined): T {
  if (o === undefined || o === null) return {} as T;
  if (typeof o !== 'object') fail('E_TYPE', `${fn}: options must be an object, got ${describe(o)}`);
  return o;
}

/** Checks that every value is finite (E_NON_FINITE otherwise). */
export function finite(fn: string, name: string, v: Float32Array | Float64Array): void {
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (x - x !== 0) fail('E_NON_FINITE', `${fn}: ${name} has a non-finite value ${x} at index ${i}`);
  }
}

/** Metric names and their wire codes. */
export type Metric = 'dot' | 'cosine' | 'l2sq';
const METRICS: Record<string, number> = { dot: 0, cosine: 1, l2sq: 2 };

/** Resolves a metric option (default cosine) to its code; unknown → E_ARG. */
export function metricCode(fn: string, m: unknown): number {
  if (m === undefined) return 1;
  if (typeof m !== 'string') fail('E_TYPE', `${fn}: metric must be a string, got ${describe(m)}`);
  const c = METRICS[m];
  if (c === undefined) fail('E_ARG', `${fn}: unknown metric '${m}' (expected 'dot', 'cosine' or 'l2sq')`);
  return c;
}
