/**
 * Pipelines contract: merging of top-k results, the streaming loop over corpus chunks and the
 * corpus file format (header, writer, reader), one implementation used by both backends.
 */
import { DensevecError, fail } from '../errors';
import type { Matrix } from '../matrix';
import { alloc } from './alloc';
import { checkQuantized, type Corpus, isQuantized, type QuantizedMatrix } from './quantized';
import { type MetricOptions, rankKey, ranksBefore, type TopKResult } from './similarity';
import * as v from './validate';
import * as fs from 'node:fs';

/** Options of {@link mergeTopK}. */
export interface MergeTopKOptions extends MetricOptions {
  /**
   * `offsets[s]`: global index of row 0 of shard s. Default: the shards are concatenated in
   * order, each part saying its shard's row count in `corpusRows` (as topK results do).
   */
  offsets?: ArrayLike<number>;
}

/** Options of {@link topKStream}. */
export interface TopKStreamOptions extends MetricOptions {
  /** Called after each chunk with the number of corpus rows searched so far. */
  onProgress?: (rowsDone: number) => void;
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'Array';
  if (typeof x === 'object') return (x as object).constructor?.name ?? 'object';
  return typeof x;
}

/**
 * Merges top-k results computed over corpus shards into the top-k over their concatenation:
 * exactly what `topK` on the concatenated corpus returns, ties included (equal scores → lower
 * global index; NaN last), provided each part is the top-min(k, shard rows) of its shard.
 * `parts[s]` has q.rows × k_s entries (k_s = `parts[s].k`, default `k`); global index =
 * `offsets[s]` + local index. At least k entries per query over all parts, else E_ARG.
 */
export function mergeTopK(parts: readonly TopKResult[], k: number, options?: MergeTopKOptions): TopKResult {
  const fn = 'mergeTopK';
  if (!Array.isArray(parts)) fail('E_TYPE', `${fn}: parts must be an array of topK results, got ${describe(parts)}`);
  v.int(fn, 'k', k);
  const o = v.opts(fn, options);
  const metricOpt = o.metric;
  const offsetsOpt = o.offsets;
  const S = parts.length;
  const idx: Uint32Array[] = new Array(S);
  const sc: Float32Array[] = new Array(S);
  const ks: number[] = new Array(S);
  const crows: (number | undefined)[] = new Array(S);
  for (let s = 0; s < S; s++) {
    const p = parts[s] as unknown;
    if (typeof p !== 'object' || p === null) fail('E_TYPE', `${fn}: parts[${s}] must be a topK result {indices, scores}, got ${describe(p)}`);
    const pp = p as TopKResult;
    const pi = pp.indices;
    const ps = pp.scores;
    const pk = pp.k;
    const pc = pp.corpusRows;
    if (!(pi instanceof Uint32Array)) fail('E_TYPE', `${fn}: parts[${s}].indices must be a Uint32Array, got ${describe(pi)}`);
    if (!v.isF32(ps)) fail('E_TYPE', `${fn}: parts[${s}].scores must be a Float32Array, got ${describe(ps)}`);
    if (pk !== undefined && (typeof pk !== 'number' || !Number.isInteger(pk) || pk < 1))
      fail('E_TYPE', `${fn}: parts[${s}].k must be a positive integer, got ${String(pk)}`);
    if (pc !== undefined && (typeof pc !== 'number' || !Number.isInteger(pc) || pc < 0))
      fail('E_TYPE', `${fn}: parts[${s}].corpusRows must be a non-negative integer, got ${String(pc)}`);
    idx[s] = pi;
    sc[s] = ps;
    ks[s] = pk ?? k;
    crows[s] = pc;
  }
  let offsets: number[] | undefined;
  if (offsetsOpt !== undefined) {
    if (typeof offsetsOpt !== 'object' || offsetsOpt === null || typeof (offsetsOpt as ArrayLike<number>).length !== 'number') {
      fail('E_TYPE', `${fn}: offsets must be an array of integers, got ${describe(offsetsOpt)}`);
    }
    offsets = Array.from(offsetsOpt as ArrayLike<number>);
    for (let s = 0; s < offsets.length; s++) {
      if (typeof offsets[s] !== 'number' || !Number.isInteger(offsets[s])) fail('E_TYPE', `${fn}: offsets[${s}] must be an integer, got ${String(offsets[s])}`);
    }
  }
  if (metricOpt !== undefined && typeof metricOpt !== 'string') v.METRIC.code(fn, metricOpt);
  // Shapes.
  if (S === 0) fail('E_SHAPE', `${fn}: parts is empty`);
  let qRows = -1;
  for (let s = 0; s < S; s++) {
    if (idx[s].length !== sc[s].length) fail('E_SHAPE', `${fn}: parts[${s}] has ${idx[s].length} indices but ${sc[s].length} scores`);
    if (idx[s].length % ks[s] !== 0) fail('E_SHAPE', `${fn}: parts[${s}] has ${idx[s].length} entries, not a multiple of its k = ${ks[s]}`);
    const qr = idx[s].length / ks[s];
    if (qRows === -1) qRows = qr;
    else if (qr !== qRows) fail('E_SHAPE', `${fn}: parts[${s}] has ${qr} queries but parts[0] has ${qRows}`);
  }
  if (qRows === 0) fail('E_SHAPE', `${fn}: the parts have no queries`);
  if (offsets !== undefined && offsets.length !== S) fail('E_SHAPE', `${fn}: offsets has length ${offsets.length} but there are ${S} parts`);
  // Values.
  const metric = v.METRIC.code(fn, metricOpt);
  if (k < 1) fail('E_ARG', `${fn}: k must be >= 1, got ${k}`);
  if (offsets === undefined) {
    offsets = new Array(S);
    let at = 0;
    for (let s = 0; s < S; s++) {
      const c = crows[s];
      if (c === undefined)
        fail('E_ARG', `${fn}: parts[${s}] has no corpusRows; pass offsets (global index of each shard's row 0) or topK results, which carry it`);
      offsets[s] = at;
      at += c;
    }
  }
  let total = 0;
  for (let s = 0; s < S; s++) {
    if (offsets[s] < 0) fail('E_ARG', `${fn}: offsets[${s}] = ${offsets[s]} is negative`);
    total += ks[s];
  }
  if (total < k) fail('E_ARG', `${fn}: the parts hold ${total} entries per query, fewer than k = ${k}`);
  const indices = alloc(Uint32Array, qRows * k, fn, 'the q.rows × k indices', 'split the queries into batches');
  const scores = alloc(Float32Array, qRows * k, fn, 'the q.rows × k scores', 'split the queries into batches');
  const head = new Int32Array(S);
  for (let i = 0; i < qRows; i++) {
    head.fill(0);
    for (let t = 0; t < k; t++) {
      let best = -1;
      let bestKey = 0;
      let bestIdx = 0;
      for (let s = 0; s < S; s++) {
        const h = head[s];
        if (h >= ks[s]) continue;
        const at = i * ks[s] + h;
        const key = rankKey(sc[s][at], metric);
        const g = offsets[s] + idx[s][at];
        if (best === -1 || ranksBefore(key, g, bestKey, bestIdx)) {
          best = s;
          bestKey = key;
          bestIdx = g;
        }
      }
      if (bestIdx > 0xfffffffe) fail('E_ARG', `${fn}: global index ${bestIdx} does not fit in a Uint32Array`);
      indices[i * k + t] = bestIdx;
      scores[i * k + t] = sc[best][i * ks[best] + head[best]];
      head[best]++;
    }
  }
  let corpusRows = 0;
  for (let s = 0; s < S; s++) corpusRows = Math.max(corpusRows, offsets[s] + (crows[s] ?? 0));
  return { indices, scores, corpusRows, k };
}

/** A chunk of a streamed corpus: a float32 Matrix or a compact corpus. */
export type CorpusChunk = Corpus;

/** What topKStream accepts as its chunks. */
export type CorpusChunks = Iterable<CorpusChunk> | AsyncIterable<CorpusChunk>;

/**
 * The streaming loop shared by every backend: searches each chunk with `search` (k capped at the
 * chunk's rows), merges into the running result, reports progress. Memory O(q.rows · k) plus
 * what `search` holds for one chunk.
 */
export async function streamTopK(
  fn: string,
  q: Matrix,
  chunks: CorpusChunks,
  k: number,
  options: TopKStreamOptions | undefined,
  search: (q: Matrix, c: Corpus, k: number, o: MetricOptions) => TopKResult | Promise<TopKResult>,
): Promise<TopKResult> {
  v.mat(fn, 'q', q);
  v.int(fn, 'k', k);
  const o = v.opts(fn, options);
  const metric = o.metric;
  const onProgress = o.onProgress;
  if (onProgress !== undefined && typeof onProgress !== 'function') fail('E_TYPE', `${fn}: onProgress must be a function, got ${describe(onProgress)}`);
  const it = chunks as { [Symbol.asyncIterator]?: unknown; [Symbol.iterator]?: unknown } | null;
  if (typeof it !== 'object' || it === null || (typeof it[Symbol.asyncIterator] !== 'function' && typeof it[Symbol.iterator] !== 'function')) {
    fail('E_TYPE', `${fn}: chunks must be an iterable or async iterable of corpora, got ${describe(chunks)}`);
  }
  v.METRIC.code(fn, metric);
  if (k < 1) fail('E_ARG', `${fn}: k must be >= 1, got ${k}`);
  // The queries as they are now (the call-time reading of the async contract): every chunk is
  // searched with them, whatever the caller does to q while the stream runs.
  const qs: Matrix = { data: alloc(Float32Array, q.rows * q.cols, fn, 'a copy of q'), rows: q.rows, cols: q.cols };
  qs.data.set(q.data.subarray(0, q.rows * q.cols));
  let acc: TopKResult | null = null;
  let done = 0;
  let n = 0;
  for await (const c of chunks as AsyncIterable<CorpusChunk>) {
    if (typeof c !== 'object' || c === null) fail('E_TYPE', `${fn}: chunk ${n} must be a Matrix or a compact corpus, got ${describe(c)}`);
    const rows = (c as Corpus).rows;
    if (rows === 0) {
      n++;
      continue;
    }
    let r: TopKResult;
    try {
      r = await search(qs, c, Math.min(k, typeof rows === 'number' ? rows : k), { metric });
    } catch (e) {
      if (e instanceof DensevecError) throw new DensevecError(e.code, `${fn}: chunk ${n}: ${e.message}`);
      throw e;
    }
    const cr = r.corpusRows ?? rows;
    acc = acc === null ? r : mergeTopK([acc, r], Math.min(k, done + cr), { metric, offsets: [0, done] });
    done += cr;
    n++;
    if (onProgress !== undefined) onProgress(done);
  }
  if (acc === null || done < k) fail('E_ARG', `${fn}: k must be in [1, ${done}] (rows of all chunks), got ${k}`);
  return { indices: acc.indices, scores: acc.scores, corpusRows: done, k };
}

// ---------------------------------------------------------------------------------------------
// Corpus files.
//
// Layout (little-endian), 64-byte header:
//   0  magic "DVCORPUS" (8 bytes)     8  u32 version (1)          12 u32 dtype: 0 f32, 1 f16, 2 bf16, 3 i8
//   16 u64 rows                       24 u64 cols                 32 f32 scale (i8 with one scale, else 0)
//   36 u32 flags (bit 0: per-row i8 scales)                      40 u64 data offset (bytes, multiple of 64)
//   48 u64 scales offset (0 when none)                           56 8 reserved bytes (0)
// then the per-row scales (rows × f32) when flagged, zero padding to a multiple of 64, then the
// rows, row-major, at the data offset; the file ends right after them.

/** Magic bytes at the start of a corpus file. */
export const CORPUS_MAGIC = 'DVCORPUS';
/** The version of the corpus file format this code writes and reads. */
export const CORPUS_VERSION = 1;
/** Bytes of the corpus file header. */
export const CORPUS_HEADER_BYTES = 64;

const DTYPES = ['f32', 'f16', 'bf16', 'i8'] as const;
const ELEM = [4, 2, 2, 1];

const align64 = (x: number): number => Math.ceil(x / 64) * 64;

/** The header and layout of a corpus file (`writeCorpus`), as `openCorpus` reads it. */
export interface CorpusFileInfo {
  version: number;
  dtype: 'f32' | 'f16' | 'bf16' | 'i8';
  rows: number;
  cols: number;
  scale: number;
  rowScales: boolean;
  dataOffset: number;
  scalesOffset: number;
  bytes: number;
}

/** Encodes the header of a corpus of the given kind. */
function header(dtype: number, rows: number, cols: number, scale: number, rowScales: boolean): { head: Uint8Array; dataOffset: number; scalesOffset: number } {
  const head = new Uint8Array(CORPUS_HEADER_BYTES);
  const dv = new DataView(head.buffer);
  for (let i = 0; i < 8; i++) head[i] = CORPUS_MAGIC.charCodeAt(i);
  const scalesOffset = rowScales ? CORPUS_HEADER_BYTES : 0;
  const dataOffset = rowScales ? align64(CORPUS_HEADER_BYTES + rows * 4) : CORPUS_HEADER_BYTES;
  dv.setUint32(8, CORPUS_VERSION, true);
  dv.setUint32(12, dtype, true);
  dv.setBigUint64(16, BigInt(rows), true);
  dv.setBigUint64(24, BigInt(cols), true);
  dv.setFloat32(32, scale, true);
  dv.setUint32(36, rowScales ? 1 : 0, true);
  dv.setBigUint64(40, BigInt(dataOffset), true);
  dv.setBigUint64(48, BigInt(scalesOffset), true);
  return { head, dataOffset, scalesOffset };
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Writes a corpus (a float32 Matrix or a compact f16 / bf16 / i8 corpus) to `path` as a corpus
 * file: a 64-byte header (magic, version, rows, cols, dtype, scale) and the raw rows, which
 * {@link openCorpus} maps back without copying. Returns the number of bytes written.
 * The file is little-endian (as every platform densevec ships for). A regular file (or a new
 * one) is written beside `path` and renamed over it: a corpus already opened from the old file
 * keeps its rows, and a failed write leaves the old file whole.
 */
export function writeCorpus(path: string, m: Corpus): number {
  const fn = 'writeCorpus';
  if (typeof path !== 'string') fail('E_TYPE', `${fn}: path must be a string, got ${describe(path)}`);
  let code: number;
  let rows: number;
  let cols: number;
  let data: ArrayBufferView;
  let scale = 0;
  let scales: Float32Array | null = null;
  if (isQuantized(m)) {
    checkQuantized(fn, 'm', m);
    const qm = m as QuantizedMatrix;
    code = DTYPES.indexOf(qm.dtype);
    rows = qm.rows;
    cols = qm.cols;
    data = qm.data;
    if (qm.dtype === 'i8') {
      if (typeof qm.scale === 'number') scale = qm.scale;
      else scales = qm.scale;
    }
  } else {
    v.mat(fn, 'm', m);
    code = 0;
    rows = m.rows;
    cols = m.cols;
    data = m.data;
  }
  const { head, dataOffset, scalesOffset } = header(code, rows, cols, scale, scales !== null);
  // A mapping of the old file (openCorpus) would fault past a truncated end: a regular file is
  // replaced by a rename instead (the old inode lives on while mapped); anything else (a device,
  // a pipe) is written in place.
  let target = path;
  try {
    target = fs.realpathSync(path);
  } catch {
    // A new file.
  }
  let old: fs.Stats | null = null;
  try {
    old = fs.statSync(target);
  } catch {
    // A new file.
  }
  const replace = old === null || old.isFile();
  const out = replace ? `${target}.${process.pid}-${Math.random().toString(36).slice(2, 10)}.tmp` : target;
  let fd: number;
  try {
    fd = fs.openSync(out, replace ? 'wx' : 'w');
  } catch (e) {
    fail('E_ARG', `${fn}: cannot open '${path}' for writing: ${(e as Error).message}`);
  }
  let closed = false;
  let done = false;
  try {
    fs.writeSync(fd, head, 0, head.length, 0);
    if (scales !== null) {
      fs.writeSync(fd, bytesOf(scales), 0, scales.byteLength, scalesOffset);
      const pad = dataOffset - scalesOffset - scales.byteLength;
      if (pad > 0) fs.writeSync(fd, new Uint8Array(pad), 0, pad, scalesOffset + scales.byteLength);
    }
    const bytes = bytesOf(data);
    const CH = 1 << 28;
    for (let at = 0; at < bytes.length; at += CH) {
      const n = Math.min(CH, bytes.length - at);
      fs.writeSync(fd, bytes, at, n, dataOffset + at);
    }
    if (old !== null && replace) fs.fchmodSync(fd, old.mode & 0o7777);
    closed = true;
    fs.closeSync(fd);
    if (replace) fs.renameSync(out, target);
    done = true;
  } catch (e) {
    fail('E_ARG', `${fn}: cannot write '${path}': ${(e as Error).message}`);
  } finally {
    if (!closed) fs.closeSync(fd);
    if (!done && replace) {
      try {
        fs.unlinkSync(out);
      } catch {
        // Not created, or gone.
      }
    }
  }
  return dataOffset + data.byteLength;
}

/** Reads and checks the header of a corpus file held in `buf` (the whole file). */
export function readCorpusHeader(fn: string, path: string, buf: ArrayBuffer, byteOffset = 0, byteLength = buf.byteLength - byteOffset): CorpusFileInfo {
  if (byteLength < CORPUS_HEADER_BYTES) {
    fail('E_SHAPE', `${fn}: '${path}' has ${byteLength} bytes, less than the ${CORPUS_HEADER_BYTES}-byte header (truncated or not a corpus file)`);
  }
  const head = new Uint8Array(buf, byteOffset, CORPUS_HEADER_BYTES);
  const dv = new DataView(buf, byteOffset, CORPUS_HEADER_BYTES);
  let magic = '';
  for (let i = 0; i < 8; i++) magic += String.fromCharCode(head[i]);
  if (magic !== CORPUS_MAGIC) fail('E_ARG', `${fn}: '${path}' is not a densevec corpus file (magic ${JSON.stringify(magic)}, expected "${CORPUS_MAGIC}")`);
  const version = dv.getUint32(8, true);
  if (version !== CORPUS_VERSION) fail('E_ARG', `${fn}: '${path}' has corpus format version ${version}; this densevec reads version ${CORPUS_VERSION}`);
  const code = dv.getUint32(12, true);
  if (code >= DTYPES.length) fail('E_ARG', `${fn}: '${path}' has an unknown dtype code ${code} (0 f32, 1 f16, 2 bf16, 3 i8)`);
  const rows = Number(dv.getBigUint64(16, true));
  const cols = Number(dv.getBigUint64(24, true));
  const scale = dv.getFloat32(32, true);
  const flags = dv.getUint32(36, true);
  const dataOffset = Number(dv.getBigUint64(40, true));
  const scalesOffset = Number(dv.getBigUint64(48, true));
  const rowScales = (flags & 1) !== 0;
  const dtype = DTYPES[code];
  if (flags & ~1) fail('E_ARG', `${fn}: '${path}' has unknown header flags ${flags}`);
  if (rowScales && dtype !== 'i8') fail('E_ARG', `${fn}: '${path}' has per-row scales but dtype ${dtype}`);
  if (!Number.isSafeInteger(rows * cols)) fail('E_ARG', `${fn}: '${path}' declares ${rows} x ${cols}, too large`);
  if (rows === 0 || cols === 0) fail('E_SHAPE', `${fn}: '${path}' holds an empty corpus (${rows} x ${cols})`);
  if (dataOffset < CORPUS_HEADER_BYTES || dataOffset % 64 !== 0)
    fail('E_ARG', `${fn}: '${path}' has a bad data offset ${dataOffset} (a multiple of 64, at least ${CORPUS_HEADER_BYTES})`);
  if (rowScales && (scalesOffset < CORPUS_HEADER_BYTES || scalesOffset % 4 !== 0 || scalesOffset + rows * 4 > dataOffset)) {
    fail('E_ARG', `${fn}: '${path}' has a bad scales offset ${scalesOffset}`);
  }
  if (dtype === 'i8' && !rowScales && (!Number.isFinite(scale) || scale < 0)) fail('E_ARG', `${fn}: '${path}' has scale ${scale}; it must be finite and >= 0`);
  const expected = dataOffset + rows * cols * ELEM[code];
  if (byteLength !== expected) {
    fail(
      'E_SHAPE',
      `${fn}: '${path}' has ${byteLength} bytes but its header (${rows} x ${cols} ${dtype}) needs exactly ${expected}${byteLength < expected ? ' (truncated?)' : ' (trailing bytes)'}`,
    );
  }
  return { version, dtype, rows, cols, scale, rowScales, dataOffset, scalesOffset, bytes: expected };
}

/** Options of `openCorpus`: what the caller expects the file to hold (checked against its header). */
export interface OpenCorpusOptions {
  /** Expected columns (E_SHAPE when the file has others). */
  cols?: number;
  /** Expected storage type (E_ARG when the file has another). */
  dtype?: 'f32' | 'f16' | 'bf16' | 'i8';
}

/** Type-checks the options of openCorpus. */
export function checkOpenOptions(fn: string, o: OpenCorpusOptions | undefined): OpenCorpusOptions {
  const oo = v.opts(fn, o);
  const cols = oo.cols;
  const dtype = oo.dtype;
  if (cols !== undefined && (typeof cols !== 'number' || !Number.isInteger(cols) || cols < 1))
    fail('E_TYPE', `${fn}: cols must be a positive integer, got ${String(cols)}`);
  if (dtype !== undefined && typeof dtype !== 'string') fail('E_TYPE', `${fn}: dtype must be a string, got ${describe(dtype)}`);
  if (dtype !== undefined && !(DTYPES as readonly string[]).includes(dtype))
    fail('E_ARG', `${fn}: dtype must be 'f32', 'f16', 'bf16' or 'i8', got ${JSON.stringify(dtype)}`);
  return { cols, dtype };
}

/** The corpus over a whole corpus file held (mapped or read) in `buf`, without copying. */
export function corpusFromBuffer(fn: string, path: string, buf: ArrayBuffer, expect: OpenCorpusOptions = {}): Corpus {
  const h = readCorpusHeader(fn, path, buf);
  if (expect.cols !== undefined && expect.cols !== h.cols) fail('E_SHAPE', `${fn}: '${path}' has ${h.cols} columns but cols ${expect.cols} was expected`);
  if (expect.dtype !== undefined && expect.dtype !== h.dtype) fail('E_ARG', `${fn}: '${path}' holds ${h.dtype} rows but dtype '${expect.dtype}' was expected`);
  const n = h.rows * h.cols;
  switch (h.dtype) {
    case 'f32':
      return { data: new Float32Array(buf, h.dataOffset, n), rows: h.rows, cols: h.cols };
    case 'f16':
    case 'bf16':
      return { data: new Uint16Array(buf, h.dataOffset, n), rows: h.rows, cols: h.cols, dtype: h.dtype };
    default:
      return {
        data: new Int8Array(buf, h.dataOffset, n),
        rows: h.rows,
        cols: h.cols,
        dtype: 'i8',
        scale: h.rowScales ? new Float32Array(buf, h.scalesOffset, h.rows) : h.scale,
      };
  }
}

/** Reads a whole file into a fresh (8-byte aligned) ArrayBuffer. */
/** Largest corpus file: one ArrayBuffer of 2^32 bytes, as the native backend maps it. */
const MAX_FILE_BYTES = 2 ** 32;

export function readWhole(fn: string, path: string): ArrayBuffer {
  if (typeof path !== 'string') fail('E_TYPE', `${fn}: path must be a string, got ${describe(path)}`);
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    fail('E_ARG', `${fn}: cannot open '${path}': ${(e as Error).message}`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size > MAX_FILE_BYTES) {
      fail(
        'E_ARG',
        `${fn}: '${path}' has ${size} bytes, more than the ${MAX_FILE_BYTES} bytes (4 GiB) one mapped buffer holds; write the corpus as shard files of at most 4 GiB (writeCorpus per shard) and combine them exactly with topKStream or mergeTopK`,
      );
    }
    const buf = new ArrayBuffer(size);
    const u8 = new Uint8Array(buf);
    let at = 0;
    while (at < size) {
      const n = fs.readSync(fd, u8, at, Math.min(1 << 28, size - at), at);
      if (n === 0) break;
      at += n;
    }
    return at === size ? buf : buf.slice(0, at);
  } finally {
    fs.closeSync(fd);
  }
}

/** Row ranges of a corpus as chunks (views, no copy) of at most `rows` rows each, for {@link topKStream}. */
export function* corpusChunks(c: Corpus, rows: number): Generator<Corpus> {
  if (typeof rows !== 'number' || !Number.isInteger(rows) || rows < 1) fail('E_ARG', `corpusChunks: rows must be a positive integer, got ${String(rows)}`);
  const cols = c.cols;
  for (let r0 = 0; r0 < c.rows; r0 += rows) {
    const r1 = Math.min(c.rows, r0 + rows);
    if (isQuantized(c) && c.dtype === 'i8') {
      yield { ...c, data: c.data.subarray(r0 * cols, r1 * cols), rows: r1 - r0, scale: typeof c.scale === 'number' ? c.scale : c.scale.subarray(r0, r1) };
    } else if (isQuantized(c)) yield { ...c, data: c.data.subarray(r0 * cols, r1 * cols), rows: r1 - r0 };
    else yield { data: c.data.subarray(r0 * cols, r1 * cols), rows: r1 - r0, cols };
  }
}
