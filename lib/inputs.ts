/**
 * The inputs pipelines hold, turned into a {@link Matrix}: Float64Array and other numeric typed
 * arrays (copied), tensor-likes `{ data, dims: [rows, cols] }` (transformers.js, onnxruntime;
 * zero-copy when `data` is a Float32Array) and Apache Arrow `FixedSizeList<Float32>` vectors /
 * data (zero-copy for one chunk, honouring slices; nulls → E_ARG). `toArrow` goes the other way.
 * `matrix(x, cols?)` dispatches here for everything but a Float32Array and number[][].
 */
import { fail } from './errors';
import type { Matrix } from './matrix';
import { describe, typedArrayKind } from './contract/validate';

/** A tensor as transformers.js and onnxruntime return them: row-major data and its dims. */
export interface TensorLike {
  data: Float32Array | Float64Array | ArrayLike<number>;
  dims: readonly number[];
}

function checkCols(fn: string, cols: unknown): asserts cols is number {
  if (typeof cols !== 'number' || !Number.isInteger(cols) || cols < 1) {
    fail('E_TYPE', `${fn}: cols must be a positive integer when data is a flat typed array, got ${String(cols)}`);
  }
}

/** Copies a flat numeric array of rows × cols values into a new float32 Matrix. */
function copyFlat(fn: string, data: ArrayLike<number>, cols: number): Matrix {
  if (data.length % cols !== 0) fail('E_SHAPE', `${fn}: data.length ${data.length} is not a multiple of cols ${cols}`);
  return { data: Float32Array.from(data), rows: data.length / cols, cols };
}

interface ArrowType {
  typeId?: number;
  listSize?: number;
  precision?: number;
  toString(): string;
}
interface ArrowData {
  type: ArrowType;
  length: number;
  offset: number;
  nullCount: number;
  children: ArrowData[];
  values?: unknown;
}
interface ArrowVector {
  type: ArrowType;
  length: number;
  data: ArrowData[];
  nullCount: number;
}

const ARROW_FLOAT = 3;
const ARROW_FIXED_SIZE_LIST = 16;
const PRECISION_SINGLE = 1;

function isArrowData(x: unknown): x is ArrowData {
  const d = x as ArrowData;
  return typeof x === 'object' && x !== null && typeof d.type === 'object' && d.type !== null && Array.isArray(d.children) && typeof d.length === 'number';
}

function isArrowVector(x: unknown): x is ArrowVector {
  const d = x as ArrowVector;
  return typeof x === 'object' && x !== null && typeof d.type === 'object' && d.type !== null && Array.isArray(d.data) && typeof d.length === 'number';
}

/** The float32 values of one FixedSizeList<Float32> Data chunk, zero-copy. */
function arrowChunk(fn: string, d: ArrowData): { values: Float32Array; rows: number; cols: number } {
  const t = d.type;
  const child = d.children[0];
  if (t.typeId !== ARROW_FIXED_SIZE_LIST || child === undefined || child.type.typeId !== ARROW_FLOAT || child.type.precision !== PRECISION_SINGLE) {
    fail('E_TYPE', `${fn}: an Arrow column must be FixedSizeList<Float32>, got ${String(t)}`);
  }
  const cols = t.listSize as number;
  if (!(child.values instanceof Float32Array)) fail('E_TYPE', `${fn}: the Arrow child values are not a Float32Array`);
  const rows = d.length;
  if (d.nullCount > 0) fail('E_ARG', `${fn}: the Arrow column has ${d.nullCount} null row(s); fill or drop them first`);
  if (child.nullCount > 0) fail('E_ARG', `${fn}: the Arrow column has ${child.nullCount} null value(s) inside its rows; fill or drop them first`);
  // Arrow JS slices child value buffers along with the list (Data.slice), so the values of list
  // row 0 start at values[0]; the buffer can be longer than the column, so cut it to length.
  const need = rows * cols;
  if (child.values.length < need) fail('E_SHAPE', `${fn}: the Arrow child has ${child.values.length} values but ${rows} rows x ${cols} need ${need}`);
  return { values: child.values.subarray(0, need), rows, cols };
}

/** Matrix over an Arrow FixedSizeList<Float32> Vector (one chunk zero-copy; several copied) or Data. */
function fromArrow(fn: string, x: ArrowData | ArrowVector, cols: number | undefined): Matrix {
  const chunks = isArrowVector(x) ? x.data : [x];
  if (chunks.length === 0) fail('E_SHAPE', `${fn}: the Arrow vector has no data`);
  const parts = chunks.map((d) => arrowChunk(fn, d));
  const c = parts[0].cols;
  if (cols !== undefined && cols !== c) fail('E_SHAPE', `${fn}: the Arrow list size is ${c} but cols is ${cols}`);
  if (parts.length === 1) return { data: parts[0].values, rows: parts[0].rows, cols: c };
  let rows = 0;
  for (const p of parts) rows += p.rows;
  const out = new Float32Array(rows * c);
  let at = 0;
  for (const p of parts) {
    out.set(p.values, at);
    at += p.values.length;
  }
  return { data: out, rows, cols: c };
}

/** Matrix from a tensor-like `{ data, dims: [rows, cols] }` (or `[cols]`, one row). */
function fromTensor(fn: string, t: TensorLike, cols: number | undefined): Matrix {
  const data = t.data;
  const dims = Array.from(t.dims, (d) => Number(d));
  if (dims.length !== 1 && dims.length !== 2) {
    fail('E_SHAPE', `${fn}: a tensor must have dims [rows, cols] (or [cols]), got [${dims.join(', ')}]; pool or reshape it first`);
  }
  for (const d of dims) if (!Number.isInteger(d) || d < 0) fail('E_TYPE', `${fn}: tensor dims must be non-negative integers, got [${dims.join(', ')}]`);
  const rows = dims.length === 2 ? dims[0] : 1;
  const c = dims[dims.length - 1];
  if (cols !== undefined && cols !== c) fail('E_SHAPE', `${fn}: the tensor has ${c} columns but cols is ${cols}`);
  if (data.length !== rows * c) fail('E_SHAPE', `${fn}: tensor data has length ${data.length} but dims [${dims.join(', ')}] need ${rows * c}`);
  if (data instanceof Float32Array) return { data, rows, cols: c };
  return { data: Float32Array.from(data as ArrayLike<number>), rows, cols: c };
}

/**
 * The {@link Matrix} for an input other than a Float32Array or number[][] (what `matrix`
 * dispatches here): a numeric typed array with `cols` (copied to float32), a tensor-like
 * `{ data, dims }` (zero-copy when data is a Float32Array) or an Arrow FixedSizeList<Float32>
 * Vector / Data (zero-copy for a single chunk; slices honoured; nulls → E_ARG).
 */
export function matrixFrom(x: unknown, cols?: number): Matrix {
  const fn = 'matrix';
  if (cols !== undefined && (typeof cols !== 'number' || !Number.isInteger(cols) || cols < 1)) {
    fail('E_TYPE', `${fn}: cols must be a positive integer, got ${String(cols)}`);
  }
  const kind = typedArrayKind(x);
  if (kind !== undefined) {
    // A genuine typed array (brand-checked, any realm) other than Float32Array: copied.
    if (kind === 'BigInt64Array' || kind === 'BigUint64Array' || kind === 'DataView') fail('E_TYPE', `${fn}: data must hold numbers, got ${kind}`);
    checkCols(fn, cols);
    return copyFlat(fn, x as unknown as ArrayLike<number>, cols);
  }
  if (ArrayBuffer.isView(x)) fail('E_TYPE', `${fn}: data must be a genuine typed array, got ${describe(x)}`);
  if (typeof x === 'object' && x !== null) {
    if (isArrowData(x) || isArrowVector(x)) return fromArrow(fn, x, cols);
    const t = x as Partial<TensorLike>;
    if (t.dims !== undefined) {
      if (!ArrayBuffer.isView(t.data) && !Array.isArray(t.data))
        fail('E_TYPE', `${fn}: tensor data must be a Float32Array (or another numeric array), got ${describe(t.data)}`);
      if (!Array.isArray(t.dims) && !ArrayBuffer.isView(t.dims)) fail('E_TYPE', `${fn}: tensor dims must be an array, got ${describe(t.dims)}`);
      return fromTensor(fn, t as TensorLike, cols);
    }
  }
  return fail(
    'E_TYPE',
    `${fn}: data must be a Float32Array (with cols), Float64Array (with cols), number[][], a tensor {data, dims: [rows, cols]} or an Arrow FixedSizeList<Float32> column, got ${describe(x)}`,
  );
}

type ArrowModule = {
  makeData: (props: Record<string, unknown>) => unknown;
  makeVector: (data: unknown) => unknown;
  FixedSizeList: new (size: number, child: unknown) => unknown;
  Field: new (name: string, type: unknown, nullable?: boolean) => unknown;
  Float32: new () => unknown;
};

function loadArrow(fn: string): ArrowModule {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('apache-arrow') as ArrowModule;
  } catch (e) {
    return fail('E_BACKEND', `${fn}: needs the optional peer dependency 'apache-arrow' (npm install apache-arrow): ${(e as Error).message.split('\n')[0]}`);
  }
}

/**
 * An Apache Arrow `Vector<FixedSizeList<Float32>>` over the same memory as `m` (no copy): one
 * list of m.cols floats per row. Needs the optional peer dependency `apache-arrow`.
 */
export function toArrow(m: Matrix): unknown {
  const fn = 'toArrow';
  if (typeof m !== 'object' || m === null || !(m.data instanceof Float32Array))
    fail('E_TYPE', `${fn}: m must be a Matrix {data: Float32Array, rows, cols}, got ${describe(m)}`);
  if (!Number.isInteger(m.rows) || !Number.isInteger(m.cols) || m.rows < 0 || m.cols < 0)
    fail('E_TYPE', `${fn}: m.rows and m.cols must be non-negative integers`);
  if (m.data.length !== m.rows * m.cols) fail('E_SHAPE', `${fn}: m.data has length ${m.data.length} but rows * cols = ${m.rows * m.cols}`);
  if (m.cols === 0) fail('E_SHAPE', `${fn}: m has no columns`);
  const A = loadArrow(fn);
  const f32 = new A.Float32();
  const child = A.makeData({ type: f32, length: m.rows * m.cols, nullCount: 0, data: m.data });
  const type = new A.FixedSizeList(m.cols, new A.Field('item', f32, false));
  return A.makeVector(A.makeData({ type, length: m.rows, nullCount: 0, child }));
}
