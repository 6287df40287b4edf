/**
 * Compact corpus storage for similarityMatrix and topK (API.md §1, optional storage types):
 * f16 and bf16 as their bits in a Uint16Array, i8 in an Int8Array with a scale (value =
 * v · scale; one number, or a Float32Array with one scale per row). A compact corpus means
 * exactly its decoded float32 values: every result equals the function on `dequantize(c)`.
 */
import { fail } from '../errors';
import { alloc } from './alloc';
import type { Matrix } from '../matrix';
import * as v from '../validate';

/** A corpus stored as IEEE half precision (`'f16'`) or bfloat16 (`'bf16'`) bits. */
export interface HalfMatrix {
  data: Uint16Array;
  rows: number;
  cols: number;
  dtype: 'f16' | 'bf16';
}

/** A corpus stored as 8-bit integers: value = data[i] · scale (per row when a Float32Array). */
export interface Int8Matrix {
  data: Int8Array;
  rows: number;
  cols: number;
  dtype: 'i8';
  scale: number | Float32Array;
}

/** A compact corpus. */
export type QuantizedMatrix = HalfMatrix | Int8Matrix;

/** What similarityMatrix / topK accept as their corpus `c`. */
export type Corpus = Matrix | QuantizedMatrix;

/** Options of {@link quantize}. */
export interface QuantizeOptions {
  /** i8 only: one scale per row (`'row'`, default: max |x| / 127 of the row) or one for the matrix (`'global'`). */
  scale?: 'row' | 'global';
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f16 bits → number (exact). */
export function f16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

/** number → f16 bits: rounded to float32 first, then to nearest even; overflow to ±∞. */
export function numberToF16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const man = b & 0x7fffff;
  if (exp === 255) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = man | 0x800000;
    const shift = 14 - e;
    const half = 2 ** (shift - 1);
    const rest = m % 2 ** shift;
    let r = Math.floor(m / 2 ** shift);
    if (rest > half || (rest === half && (r & 1) === 1)) r += 1;
    return sign | r;
  }
  let r = (e << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (r & 1) === 1)) r += 1;
  return sign | r;
}

/** bf16 bits → number (exact). */
export function bf16ToNumber(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

/** number → bf16 bits: rounded to float32 first, then to nearest even; NaN stays NaN. */
export function numberToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if (Number.isNaN(f32[0])) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Whether `c` declares a compact storage type (it has a `dtype` other than 'f32'). */
export function isQuantized(c: unknown): c is QuantizedMatrix {
  return typeof c === 'object' && c !== null && 'dtype' in c && (c as { dtype: unknown }).dtype !== undefined && (c as { dtype: unknown }).dtype !== 'f32';
}

/** Checks a compact corpus (shared by every backend): types, then shape, then scale values. */
export function checkQuantized(fn: string, name: string, c: unknown): asserts c is QuantizedMatrix {
  const m = c as QuantizedMatrix;
  if (m.dtype !== 'f16' && m.dtype !== 'bf16' && m.dtype !== 'i8') {
    fail('E_ARG', `${fn}: ${name}.dtype must be 'f32', 'f16', 'bf16' or 'i8', got ${JSON.stringify(m.dtype)}`);
  }
  if (m.dtype === 'i8') {
    if (!(m.data instanceof Int8Array)) fail('E_TYPE', `${fn}: ${name}.data must be an Int8Array for dtype 'i8'`);
    if (typeof m.scale !== 'number' && !(m.scale instanceof Float32Array)) {
      fail('E_TYPE', `${fn}: ${name}.scale must be a number or a Float32Array (one per row) for dtype 'i8'`);
    }
  } else if (!(m.data instanceof Uint16Array)) {
    fail('E_TYPE', `${fn}: ${name}.data must be a Uint16Array of ${m.dtype} bits for dtype '${m.dtype}'`);
  }
  if (!Number.isInteger(m.rows) || m.rows < 0) fail('E_TYPE', `${fn}: ${name}.rows must be a non-negative integer, got ${String(m.rows)}`);
  if (!Number.isInteger(m.cols) || m.cols < 0) fail('E_TYPE', `${fn}: ${name}.cols must be a non-negative integer, got ${String(m.cols)}`);
  if (m.data.length !== m.rows * m.cols) {
    fail('E_SHAPE', `${fn}: ${name}.data has length ${m.data.length} but rows * cols = ${m.rows} * ${m.cols} = ${m.rows * m.cols}`);
  }
  if (m.rows === 0 || m.cols === 0) fail('E_SHAPE', `${fn}: ${name} is empty (${m.rows} x ${m.cols})`);
  if (m.dtype === 'i8') {
    const s = m.scale;
    if (typeof s === 'number') {
      if (!Number.isFinite(s) || s < 0) fail('E_ARG', `${fn}: ${name}.scale must be finite and >= 0, got ${s}`);
    } else {
      if (s.length !== m.rows) fail('E_SHAPE', `${fn}: ${name}.scale has length ${s.length} but ${name} has ${m.rows} rows`);
      for (let i = 0; i < s.length; i++) {
        if (!Number.isFinite(s[i]) || s[i] < 0) fail('E_ARG', `${fn}: ${name}.scale[${i}] must be finite and >= 0, got ${s[i]}`);
      }
    }
  }
}

/** The float32 values a compact corpus stands for (a new Matrix); a Matrix is returned as is. */
export function dequantize(c: Corpus): Matrix {
  if (!isQuantized(c)) {
    v.mat('dequantize', 'c', c);
    return c;
  }
  checkQuantized('dequantize', 'c', c);
  const out = alloc(Float32Array, c.rows * c.cols, 'dequantize', 'the decoded corpus');
  if (c.dtype === 'i8') {
    const s = c.scale;
    for (let i = 0; i < c.rows; i++) {
      const si = typeof s === 'number' ? Math.fround(s) : s[i];
      for (let j = 0; j < c.cols; j++) out[i * c.cols + j] = c.data[i * c.cols + j] * si;
    }
  } else {
    const dec = c.dtype === 'f16' ? f16ToNumber : bf16ToNumber;
    for (let i = 0; i < out.length; i++) out[i] = dec(c.data[i]);
  }
  return { data: out, rows: c.rows, cols: c.cols };
}

/**
 * Encodes a float32 Matrix in a compact storage type: `'f16'` or `'bf16'` (round to nearest
 * even), or `'i8'` (v = round(x / scale) clamped to [−127, 127]; scale = max |x| / 127 per row,
 * or over the matrix with `{ scale: 'global' }`; a zero row gets scale 0).
 */
export function quantize(m: Matrix, dtype: 'f16' | 'bf16'): HalfMatrix;
export function quantize(m: Matrix, dtype: 'i8', options?: QuantizeOptions): Int8Matrix;
export function quantize(m: Matrix, dtype: 'f16' | 'bf16' | 'i8', options?: QuantizeOptions): QuantizedMatrix;
export function quantize(m: Matrix, dtype: 'f16' | 'bf16' | 'i8', options?: QuantizeOptions): QuantizedMatrix {
  v.mat('quantize', 'm', m);
  const o = v.opts('quantize', options);
  if (dtype === 'f16' || dtype === 'bf16') {
    const enc = dtype === 'f16' ? numberToF16 : numberToBf16;
    const data = new Uint16Array(m.data.length);
    for (let i = 0; i < data.length; i++) data[i] = enc(m.data[i]);
    return { data, rows: m.rows, cols: m.cols, dtype };
  }
  if (dtype !== 'i8') fail('E_ARG', `quantize: dtype must be 'f16', 'bf16' or 'i8', got ${JSON.stringify(dtype)}`);
  if (o.scale !== undefined && o.scale !== 'row' && o.scale !== 'global') {
    fail('E_ARG', `quantize: scale must be 'row' or 'global', got ${JSON.stringify(o.scale)}`);
  }
  for (let i = 0; i < m.data.length; i++) {
    if (!Number.isFinite(m.data[i])) fail('E_NON_FINITE', `quantize: m has a non-finite value ${m.data[i]} at index ${i}`);
  }
  const data = new Int8Array(m.data.length);
  const maxAbs = (a: number, b: number) => {
    let x = 0;
    for (let i = a; i < b; i++) x = Math.max(x, Math.abs(m.data[i]));
    return x;
  };
  const encodeRows = (i0: number, i1: number, s: number) => {
    for (let i = i0 * m.cols; i < i1 * m.cols; i++) data[i] = s === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(m.data[i] / s)));
  };
  if (o.scale === 'global') {
    const s = Math.fround(maxAbs(0, m.data.length) / 127);
    encodeRows(0, m.rows, s);
    return { data, rows: m.rows, cols: m.cols, dtype: 'i8', scale: s };
  }
  const scale = new Float32Array(m.rows);
  for (let r = 0; r < m.rows; r++) {
    scale[r] = maxAbs(r * m.cols, (r + 1) * m.cols) / 127;
    encodeRows(r, r + 1, scale[r]);
  }
  return { data, rows: m.rows, cols: m.cols, dtype: 'i8', scale };
}
