/**
 * Compact corpus storage for similarityMatrix and topK (README.md, "Similarity geometry": compact corpora):
 * f16 and bf16 as their bits in a Uint16Array, i8 in an Int8Array with a scale (value =
 * v · scale; one number, or a Float32Array with one scale per row). A compact corpus means
 * exactly its decoded float32 values: every result equals the function on `dequantize(c)`.
 * The encoding and decoding are the one implementation both backends use.
 */
import { fail } from '../errors';
import type { Matrix } from '../matrix';
import { alloc } from './alloc';
import * as v from './validate';

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

/** Checks the argument of the bits → number decoders: an integer (E_TYPE) in [0, 65535] (E_ARG). */
function checkBits(fn: string, h: unknown): asserts h is number {
  v.int(fn, 'h', h);
  if (h < 0 || h > 0xffff) fail('E_ARG', `${fn}: h must be in [0, 65535] (16 bits), got ${h}`);
}

/** f16 bits → number (exact). `h` an integer in [0, 65535]. */
export function f16ToNumber(h: number): number {
  checkBits('f16ToNumber', h);
  return f16Decode(h);
}

function f16Decode(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

/** number → f16 bits: rounded to float32 first, then to nearest even; overflow to ±∞. */
export function numberToF16(x: number): number {
  v.num('numberToF16', 'x', x);
  return f16Encode(x);
}

function f16Encode(x: number): number {
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

/** bf16 bits → number (exact). `h` an integer in [0, 65535]. */
export function bf16ToNumber(h: number): number {
  checkBits('bf16ToNumber', h);
  return bf16Decode(h);
}

function bf16Decode(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

/** number → bf16 bits: rounded to float32 first, then to nearest even; NaN stays NaN. */
export function numberToBf16(x: number): number {
  v.num('numberToBf16', 'x', x);
  return bf16Encode(x);
}

function bf16Encode(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if (Number.isNaN(f32[0])) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Whether `c` declares a compact storage type (a `dtype` other than 'f32'); reads `dtype` once. */
export function isQuantized(c: unknown): c is QuantizedMatrix {
  if (typeof c !== 'object' || c === null) return false;
  const d = (c as { dtype?: unknown }).dtype;
  return d !== undefined && d !== 'f32';
}

/** The typed array a dtype stores its values in. */
function storageOf(dtype: unknown): 'Uint16Array' | 'Int8Array' | null {
  return dtype === 'f16' || dtype === 'bf16' ? 'Uint16Array' : dtype === 'i8' ? 'Int8Array' : null;
}

/**
 * Types of a compact corpus (E_TYPE): dtype a string, data the typed array of its dtype (a
 * Uint16Array or an Int8Array when the dtype is unknown), integer rows and cols, and for 'i8' a
 * scale that is a number or a Float32Array.
 */
export function checkQuantizedType(fn: string, name: string, c: unknown): asserts c is QuantizedMatrix {
  if (typeof c !== 'object' || c === null) fail('E_TYPE', `${fn}: ${name} must be a Matrix or a compact corpus, got ${v.describe(c)}`);
  const m = c as { dtype: unknown; data: unknown; rows: unknown; cols: unknown; scale?: unknown };
  if (typeof m.dtype !== 'string') fail('E_TYPE', `${fn}: ${name}.dtype must be a string, got ${v.describe(m.dtype)}`);
  const kind = storageOf(m.dtype);
  if (kind === null) {
    const k = v.typedArrayKind(m.data);
    if (k !== 'Uint16Array' && k !== 'Int8Array') {
      fail('E_TYPE', `${fn}: ${name}.data must be a Uint16Array (f16, bf16) or an Int8Array (i8), got ${v.describe(m.data)}`);
    }
  } else if (!v.isTyped(m.data, kind)) {
    fail(
      'E_TYPE',
      kind === 'Int8Array'
        ? `${fn}: ${name}.data must be an Int8Array for dtype 'i8', got ${v.describe(m.data)}`
        : `${fn}: ${name}.data must be a Uint16Array of ${m.dtype} bits for dtype '${m.dtype}', got ${v.describe(m.data)}`,
    );
  }
  if (!Number.isInteger(m.rows) || (m.rows as number) < 0) fail('E_TYPE', `${fn}: ${name}.rows must be a non-negative integer, got ${v.show(m.rows)}`);
  if (!Number.isInteger(m.cols) || (m.cols as number) < 0) fail('E_TYPE', `${fn}: ${name}.cols must be a non-negative integer, got ${v.show(m.cols)}`);
  if (m.dtype === 'i8' && typeof m.scale !== 'number' && !v.isF32(m.scale)) {
    fail('E_TYPE', `${fn}: ${name}.scale must be a number or a Float32Array (one per row) for dtype 'i8', got ${v.describe(m.scale)}`);
  }
}

/** Shapes of a compact corpus whose types passed (E_SHAPE): data.length, non-empty, scale length. */
export function checkQuantizedShape(fn: string, name: string, m: QuantizedMatrix): void {
  if (m.data.length !== m.rows * m.cols) {
    fail('E_SHAPE', `${fn}: ${name}.data has length ${m.data.length} but rows * cols = ${m.rows} * ${m.cols} = ${m.rows * m.cols}`);
  }
  if (m.rows === 0 || m.cols === 0) fail('E_SHAPE', `${fn}: ${name} is empty (${m.rows} x ${m.cols})`);
  if (m.dtype === 'i8' && typeof m.scale !== 'number' && m.scale.length !== m.rows) {
    fail('E_SHAPE', `${fn}: ${name}.scale has length ${m.scale.length} but ${name} has ${m.rows} rows`);
  }
}

/** Values of a compact corpus whose types and shapes passed (E_ARG): a known dtype, scales finite and ≥ 0. */
export function checkQuantizedValues(fn: string, name: string, m: QuantizedMatrix): void {
  if (storageOf(m.dtype) === null) {
    fail('E_ARG', `${fn}: ${name}.dtype must be 'f32', 'f16', 'bf16' or 'i8', got ${v.show(m.dtype)}`);
  }
  if (m.dtype === 'i8') {
    const s = m.scale;
    if (typeof s === 'number') {
      if (!Number.isFinite(s) || s < 0) fail('E_ARG', `${fn}: ${name}.scale must be finite and >= 0, got ${s}`);
    } else {
      for (let i = 0; i < s.length; i++) {
        if (!Number.isFinite(s[i]) || s[i] < 0) fail('E_ARG', `${fn}: ${name}.scale[${i}] must be finite and >= 0, got ${s[i]}`);
      }
    }
  }
}

/** Checks a compact corpus (shared by every backend): types, then shape, then dtype and scale values. */
export function checkQuantized(fn: string, name: string, c: unknown): asserts c is QuantizedMatrix {
  checkQuantizedType(fn, name, c);
  checkQuantizedShape(fn, name, c);
  checkQuantizedValues(fn, name, c);
}

/** The float32 values a compact corpus stands for (a new Matrix); a Matrix is returned as is. */
export function dequantize(c: Corpus): Matrix {
  const cs = v.snapCorpus('dequantize', 'c', c);
  if (!isQuantized(cs)) {
    v.mat('dequantize', 'c', cs);
    return c as Matrix;
  }
  checkQuantized('dequantize', 'c', cs);
  return decode(cs);
}

/** The decoded values of a validated compact corpus. */
function decode(c: QuantizedMatrix): Matrix {
  const out = alloc(Float32Array, c.rows * c.cols, 'dequantize', 'the decoded corpus');
  if (c.dtype === 'i8') {
    const s = c.scale;
    for (let i = 0; i < c.rows; i++) {
      const si = typeof s === 'number' ? Math.fround(s) : s[i];
      for (let j = 0; j < c.cols; j++) out[i * c.cols + j] = c.data[i * c.cols + j] * si;
    }
  } else {
    const dec = c.dtype === 'f16' ? f16Decode : bf16Decode;
    for (let i = 0; i < out.length; i++) out[i] = dec(c.data[i]);
  }
  return { data: out, rows: c.rows, cols: c.cols };
}

/**
 * The float32 scale max|x| / 127, one float32 step lower when rounding it up would make 127 ×
 * scale overflow (max|x| near the largest float32): every decoded value stays finite.
 */
function i8Scale(amax: number): number {
  const s = Math.fround(amax / 127);
  if (Number.isFinite(Math.fround(127 * s))) return s;
  const b = new Float32Array([s]);
  new Uint32Array(b.buffer)[0] -= 1;
  return b[0];
}

/** Rounds to the nearest integer, ties to even (as NumPy's `rint` and PyTorch's `round`). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const r = x - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Encodes a float32 Matrix in a compact storage type: `'f16'` or `'bf16'` (round to nearest
 * even), or `'i8'` (v = round(x / scale), ties to even, clamped to [−127, 127]; scale =
 * max |x| / 127 per row, or over the matrix with `{ scale: 'global' }`; a zero row gets scale 0).
 */
export function quantize(m: Matrix, dtype: 'f16' | 'bf16'): HalfMatrix;
export function quantize(m: Matrix, dtype: 'i8', options?: QuantizeOptions): Int8Matrix;
export function quantize(m: Matrix, dtype: 'f16' | 'bf16' | 'i8', options?: QuantizeOptions): QuantizedMatrix;
export function quantize(m: Matrix, dtype: 'f16' | 'bf16' | 'i8', options?: QuantizeOptions): QuantizedMatrix {
  const fn = 'quantize';
  m = v.snap(fn, 'm', m);
  options = v.snapOpts(fn, options, ['scale']);
  v.matType(fn, 'm', m);
  v.str(fn, 'dtype', dtype);
  const o = v.opts(fn, options);
  if (o.scale !== undefined) v.str(fn, 'scale', o.scale);
  v.matShape(fn, 'm', m);
  if (dtype === 'f16' || dtype === 'bf16') {
    const enc = dtype === 'f16' ? f16Encode : bf16Encode;
    const data = new Uint16Array(m.data.length);
    for (let i = 0; i < data.length; i++) data[i] = enc(m.data[i]);
    return { data, rows: m.rows, cols: m.cols, dtype };
  }
  if (dtype !== 'i8') fail('E_ARG', `${fn}: dtype must be 'f16', 'bf16' or 'i8', got ${v.show(dtype)}`);
  if (o.scale !== undefined && o.scale !== 'row' && o.scale !== 'global') {
    fail('E_ARG', `${fn}: scale must be 'row' or 'global', got ${v.show(o.scale)}`);
  }
  const x = m.data;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) fail('E_NON_FINITE', `${fn}: m has a non-finite value ${x[i]} at index ${i}`);
  }
  const cols = m.cols;
  const data = new Int8Array(x.length);
  const maxAbs = (a: number, b: number) => {
    let t = 0;
    for (let i = a; i < b; i++) t = Math.max(t, Math.abs(x[i]));
    return t;
  };
  const encodeRows = (i0: number, i1: number, s: number) => {
    for (let i = i0 * cols; i < i1 * cols; i++) data[i] = s === 0 ? 0 : Math.max(-127, Math.min(127, roundHalfEven(x[i] / s)));
  };
  if (o.scale === 'global') {
    const s = i8Scale(maxAbs(0, x.length));
    encodeRows(0, m.rows, s);
    return { data, rows: m.rows, cols, dtype: 'i8', scale: s };
  }
  const scale = new Float32Array(m.rows);
  for (let r = 0; r < m.rows; r++) {
    scale[r] = i8Scale(maxAbs(r * cols, (r + 1) * cols));
    encodeRows(r, r + 1, scale[r]);
  }
  return { data, rows: m.rows, cols, dtype: 'i8', scale };
}
