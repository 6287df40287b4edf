/**
 * Argument checks shared by every backend, so that native, CUDA and reference report the same
 * codes and messages. Order of checks inside a function: types, then shapes, then values, then
 * finiteness (API: E_TYPE before E_SHAPE before E_ARG before E_NON_FINITE).
 *
 * Every public function reads each field of its arguments once, at call time: a Matrix (or a
 * compact corpus, or an options bag) is first copied into a frozen snapshot ({@link snap},
 * {@link snapCorpus}, {@link snapOpts}), and only the snapshot is validated and computed on. A
 * getter that changes its answer, or a caller that edits `rows` while an …Async call runs,
 * cannot make validation and computation disagree.
 */
import { fail } from '../errors';
import type { Matrix } from '../matrix';

/** %TypedArray%.prototype, the prototype shared by every typed array constructor. */
const TYPED_ARRAY_PROTO = Object.getPrototypeOf(Uint8Array.prototype) as object;
/**
 * The intrinsic %TypedArray%.prototype[@@toStringTag] getter: the typed array's constructor
 * name for a genuine typed array of any realm, undefined for anything else (a Proxy of a typed
 * array, an object whose prototype is Float32Array.prototype, a DataView, a plain object with
 * a spoofed Symbol.toStringTag).
 */
const TYPED_ARRAY_TAG = (Object.getOwnPropertyDescriptor(TYPED_ARRAY_PROTO, Symbol.toStringTag) as PropertyDescriptor).get as (
  this: unknown,
) => string | undefined;

/** Names of the typed array kinds densevec accepts somewhere. */
export type TypedArrayKind = 'Float32Array' | 'Uint32Array' | 'Uint16Array' | 'Int8Array' | 'Uint8Array';

/** The constructor name of a genuine typed array (any realm, any byteOffset), else undefined. */
export function typedArrayKind(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null || !ArrayBuffer.isView(v)) return undefined;
  try {
    return TYPED_ARRAY_TAG.call(v);
  } catch {
    return undefined;
  }
}

/** Is a genuine typed array of kind `kind` (also from another realm). */
export function isTyped(v: unknown, kind: TypedArrayKind): boolean {
  return typedArrayKind(v) === kind;
}

const TYPED_NAMES = new Set([
  'Float32Array',
  'Float64Array',
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'BigInt64Array',
  'BigUint64Array',
  'Float16Array',
  'DataView',
  'ArrayBuffer',
]);

/** Short description of a value's type for messages; never throws, never runs user code twice. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  const k = typedArrayKind(v);
  if (k !== undefined) return k;
  let isArray = false;
  let name: unknown;
  try {
    isArray = Array.isArray(v);
    if (!isArray) name = (v as { constructor?: { name?: unknown } }).constructor?.name;
  } catch {
    return 'object';
  }
  if (isArray) return 'Array';
  if (typeof name !== 'string' || name === '') return 'object';
  // A Proxy of a typed array, or an object whose prototype is a typed array's, is not one.
  if (TYPED_NAMES.has(name)) return `an object that is not a genuine ${name} (a Proxy or a look-alike)`;
  return name;
}

/** A value as messages show it: strings quoted, BigInts with their n, never throws. */
export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null) return String(v);
  if (typeof v === 'symbol') return 'a symbol';
  return describe(v);
}

/** Is a genuine Float32Array (also from another realm). */
export function isF32(v: unknown): v is Float32Array {
  return typedArrayKind(v) === 'Float32Array';
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

/** Checks that `v` is a genuine typed array of kind `kind` (E_TYPE otherwise). */
export function typed(fn: string, name: string, v: unknown, kind: TypedArrayKind): void {
  if (typedArrayKind(v) !== kind) fail('E_TYPE', `${fn}: ${name} must be a${kind === 'Int8Array' ? 'n' : ''} ${kind}, got ${describe(v)}`);
}

/** Checks that `v` is a Uint32Array. */
export function u32(fn: string, name: string, v: unknown): asserts v is Uint32Array {
  typed(fn, name, v, 'Uint32Array');
}

function readFailed(fn: string, name: string, e: unknown): never {
  let msg: string;
  try {
    msg = e instanceof Error ? e.message : String(e);
  } catch {
    msg = 'unknown error';
  }
  fail('E_TYPE', `${fn}: ${name} could not be read (${msg})`);
}

/**
 * A frozen snapshot `{ data, rows, cols }` of a Matrix argument, each field read exactly once.
 * Anything that is not a plain object (null, a primitive, an array, a typed array) is returned
 * as is, for the type check to report. A getter or Proxy trap that throws gives E_TYPE.
 */
export function snap<T>(fn: string, name: string, m: T): T {
  if (typeof m !== 'object' || m === null || typedArrayKind(m) !== undefined) return m;
  try {
    if (Array.isArray(m)) return m;
    const o = m as unknown as { data: unknown; rows: unknown; cols: unknown };
    const data = o.data;
    const rows = o.rows;
    const cols = o.cols;
    return Object.freeze({ data, rows, cols }) as unknown as T;
  } catch (e) {
    return readFailed(fn, name, e);
  }
}

/**
 * A frozen snapshot of a corpus argument: `{ data, rows, cols }` for a Matrix, plus `dtype`
 * (and `scale` for 'i8') for a compact corpus, each field read exactly once.
 */
export function snapCorpus<T>(fn: string, name: string, c: T): T {
  if (typeof c !== 'object' || c === null || typedArrayKind(c) !== undefined) return c;
  try {
    if (Array.isArray(c)) return c;
    const o = c as unknown as { data: unknown; rows: unknown; cols: unknown; dtype: unknown; scale: unknown };
    const dtype = o.dtype;
    const data = o.data;
    const rows = o.rows;
    const cols = o.cols;
    if (dtype === undefined || dtype === 'f32') return Object.freeze({ data, rows, cols }) as unknown as T;
    const scale = dtype === 'i8' ? o.scale : undefined;
    return Object.freeze(dtype === 'i8' ? { data, rows, cols, dtype, scale } : { data, rows, cols, dtype }) as unknown as T;
  } catch (e) {
    return readFailed(fn, name, e);
  }
}

/**
 * A frozen snapshot of an options bag with the listed keys, each read exactly once (absent
 * keys stay absent). undefined, null and non-objects are returned as is for the type check.
 */
export function snapOpts<T>(fn: string, o: T, keys: readonly string[]): T {
  if (typeof o !== 'object' || o === null) return o;
  try {
    const src = o as unknown as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of keys) {
      const x = src[k];
      if (x !== undefined) out[k] = x;
    }
    return Object.freeze(out) as unknown as T;
  } catch (e) {
    return readFailed(fn, 'options', e);
  }
}

/** Checks the type of a Matrix (data Float32Array, integer rows/cols). */
export function matType(fn: string, name: string, m: unknown): asserts m is Matrix {
  if (typeof m !== 'object' || m === null) fail('E_TYPE', `${fn}: ${name} must be a Matrix {data, rows, cols}, got ${describe(m)}`);
  if (typedArrayKind(m) !== undefined || Array.isArray(m)) {
    fail(
      'E_TYPE',
      `${fn}: ${name} must be a Matrix {data, rows, cols}, got ${describe(m)}: wrap it with matrix(x, cols) (a single vector: matrix(x, x.length))`,
    );
  }
  const mm = m as Matrix;
  if (!isF32(mm.data)) fail('E_TYPE', `${fn}: ${name}.data must be a Float32Array, got ${describe(mm.data)}`);
  if (!Number.isInteger(mm.rows) || mm.rows < 0) fail('E_TYPE', `${fn}: ${name}.rows must be a non-negative integer, got ${show(mm.rows)}`);
  if (!Number.isInteger(mm.cols) || mm.cols < 0) fail('E_TYPE', `${fn}: ${name}.cols must be a non-negative integer, got ${show(mm.cols)}`);
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

/**
 * Two matrices of equal shape (`an`, `bn` name them): both types, then both non-empty shapes,
 * then equal shapes, then (when `checkFinite`) finiteness of each.
 */
export function matPair(fn: string, an: string, a: unknown, bn: string, b: unknown, checkFinite: boolean): asserts a is Matrix {
  matType(fn, an, a);
  matType(fn, bn, b);
  matShape(fn, an, a);
  matShape(fn, bn, b);
  sameShape(fn, an, a, bn, b);
  if (checkFinite) {
    finite(fn, an, a.data);
    finite(fn, bn, b.data);
  }
}

/** Checks an integer (E_TYPE otherwise). */
export function int(fn: string, name: string, v: unknown): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v)) fail('E_TYPE', `${fn}: ${name} must be an integer, got ${show(v)}`);
}

/** Checks a number (E_TYPE otherwise). */
export function num(fn: string, name: string, v: unknown): asserts v is number {
  if (typeof v !== 'number') fail('E_TYPE', `${fn}: ${name} must be a number, got ${describe(v)}`);
}

/** Checks a string (E_TYPE otherwise). */
export function str(fn: string, name: string, v: unknown): asserts v is string {
  if (typeof v !== 'string') fail('E_TYPE', `${fn}: ${name} must be a string, got ${describe(v)}`);
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

/**
 * Looks a name up in a fixed table by own keys only: 'toString', 'constructor' or '__proto__'
 * are unknown names, not inherited properties.
 */
export function lookup<V>(table: ReadonlyMap<string, V>, name: unknown): V | undefined {
  return typeof name === 'string' ? table.get(name) : undefined;
}

/** A string option with a fixed set of names, each with its wire code. */
export interface Choice {
  /** Checks the option's type (undefined or a string; E_TYPE otherwise). */
  type(fn: string, x: unknown): void;
  /** Resolves the option to its wire code (the default when undefined); an unknown name → E_ARG. */
  code(fn: string, x: unknown): number;
}

/** The names of a table as a message lists them: 'a', 'b' or 'c'. */
function oneOf(names: readonly string[]): string {
  const q = names.map((n) => `'${n}'`);
  return q.length < 2 ? q.join('') : `${q.slice(0, -1).join(', ')} or ${q[q.length - 1]}`;
}

/** The {@link Choice} of option `name` over `table` (own keys only, see {@link lookup}), `def` when undefined. */
function choice(name: string, table: ReadonlyMap<string, number>, def: number): Choice {
  const expected = oneOf([...table.keys()]);
  const type = (fn: string, x: unknown): void => {
    if (x !== undefined && typeof x !== 'string') fail('E_TYPE', `${fn}: ${name} must be a string, got ${describe(x)}`);
  };
  const code = (fn: string, x: unknown): number => {
    if (x === undefined) return def;
    type(fn, x);
    const c = lookup(table, x);
    if (c === undefined) fail('E_ARG', `${fn}: unknown ${name} '${x}' (expected ${expected})`);
    return c;
  };
  return { type, code };
}

/** Metric names and their wire codes. */
export type Metric = 'dot' | 'cosine' | 'l2sq';
/** The metric option: 'dot' (0), 'cosine' (1, the default) or 'l2sq' (2). */
export const METRIC = choice(
  'metric',
  new Map([
    ['dot', 0],
    ['cosine', 1],
    ['l2sq', 2],
  ]),
  1,
);

/**
 * Compute precision of the GEMM-bound functions: 'f32' (default) or 'bf16' (inputs rounded to
 * bfloat16, nearest even, float32 subnormals as zero; products accumulated in float32).
 */
export type Precision = 'f32' | 'bf16';
/** The precision option: 'f32' (0, the default) or 'bf16' (1). */
export const PRECISION = choice(
  'precision',
  new Map([
    ['f32', 0],
    ['bf16', 1],
  ]),
  0,
);

/** The precision code of options already validated ({@link PRECISION}.code of `o.precision`). */
export function precisionOf(fn: string, o: unknown): number {
  return PRECISION.code(fn, o !== null && typeof o === 'object' ? (o as { precision?: unknown }).precision : undefined);
}
