import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { close, dv, gatherRows, native, randm, ref, throwsCode } from './helpers';

const require = createRequire(import.meta.url);
const arrow = require('apache-arrow') as typeof import('apache-arrow');

type M = { data: Float32Array; rows: number; cols: number };
type Impl = typeof dv | typeof ref;
const IMPLS: [string, Impl][] = [
  ['native', dv],
  ['reference', ref as unknown as Impl],
];
const METRICS = ['dot', 'cosine', 'l2sq'] as const;

const dir = mkdtempSync(join(tmpdir(), 'densevec-pipelines-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Rows [r0, r1) of a Matrix (a view). */
function slice(m: M, r0: number, r1: number): M {
  return { data: m.data.subarray(r0 * m.cols, r1 * m.cols), rows: r1 - r0, cols: m.cols };
}

/** Rows of `m` kept by `keep`, compacted, with their original indices. */
function compact(m: M, keep: (j: number) => boolean): { m: M; idx: number[] } {
  const idx: number[] = [];
  for (let j = 0; j < m.rows; j++) if (keep(j)) idx.push(j);
  return { m: gatherRows(m, idx), idx };
}

/** A corpus with duplicated rows (exact ties) spread over it. */
function tiedCorpus(rows: number, cols: number, seed: number): M {
  const c = randm(rows, cols, seed);
  for (let j = 7; j < rows; j += 13) c.data.copyWithin(j * cols, (j % 5) * cols, (j % 5) * cols + cols);
  return c;
}

describe('topK skip / mask', () => {
  it('equals topK over the eligible rows only (all metrics, f32 and compact corpora, both backends)', () => {
    const q = randm(6, 24, 1);
    const c = tiedCorpus(1500, 24, 2);
    const mask = new Uint8Array(c.rows).map((_, j) => (j % 4 === 3 ? 0 : 1));
    const skip = new Uint32Array([0, 7, 20, 0xffffffff, 3, 1499]);
    const corpora: [string, unknown][] = [
      ['f32', c],
      ['f16', dv.quantize(c, 'f16')],
      ['i8', dv.quantize(c, 'i8')],
    ];
    for (const [name, impl] of IMPLS) {
      for (const [cname, corpus] of corpora) {
        const full = dv.dequantize(corpus as M);
        for (const metric of METRICS) {
          const k = 9;
          const got = impl.topK(q, corpus as M, k, { metric, skip, mask });
          expect(got.corpusRows).toBe(c.rows);
          expect(got.k).toBe(k);
          for (let i = 0; i < q.rows; i++) {
            const sub = compact(full, (j) => mask[j] !== 0 && j !== skip[i]);
            const want = impl.topK(slice(q, i, i + 1), sub.m, k, { metric });
            const gi = Array.from(got.indices.subarray(i * k, (i + 1) * k));
            expect(gi, `${name} ${cname} ${metric} query ${i}`).toEqual(Array.from(want.indices, (t) => sub.idx[t]));
            expect(gi).not.toContain(skip[i]);
            expect(Array.from(got.scores.subarray(i * k, (i + 1) * k))).toEqual(Array.from(want.scores));
          }
        }
      }
    }
  });

  it('native agrees with the reference, and the async twin with the sync function', async () => {
    const q = randm(5, 17, 3);
    const c = randm(700, 17, 4);
    const mask = new Uint8Array(c.rows).fill(1);
    mask.fill(0, 100, 400);
    const skip = new Uint32Array([5, 6, 7, 8, 9]);
    for (const metric of METRICS) {
      const a = dv.topK(q, c, 12, { metric, skip, mask });
      const b = ref.topK(q, c, 12, { metric, skip, mask });
      expect(Array.from(a.indices)).toEqual(Array.from(b.indices));
      close(a.scores, b.scores, 1e-4, 1e-4);
      const x = await dv.topKAsync(q, c, 12, { metric, skip, mask });
      expect(Array.from(x.indices)).toEqual(Array.from(a.indices));
      expect(x.corpusRows).toBe(700);
      const xq = await dv.topKAsync(q, dv.quantize(c, 'bf16'), 12, { metric, mask });
      expect(Array.from(xq.indices)).toEqual(Array.from(dv.topK(q, dv.quantize(c, 'bf16'), 12, { metric, mask }).indices));
    }
  });

  it('self-search with skip never returns the query row', () => {
    const c = randm(300, 16, 5);
    const skip = Uint32Array.from({ length: 300 }, (_, i) => i);
    const r = dv.topK(c, c, 3, { skip });
    for (let i = 0; i < 300; i++) expect(Array.from(r.indices.subarray(i * 3, i * 3 + 3))).not.toContain(i);
    expect(dv.topK(c, c, 1).indices[42]).toBe(42);
  });

  it('errors follow the contract on both backends', async () => {
    const q = randm(2, 3, 6);
    const c = randm(5, 3, 7);
    for (const [, impl] of IMPLS) {
      throwsCode(() => impl.topK(q, c, 1, { skip: [0, 1] as unknown as Uint32Array }), 'E_TYPE', /skip must be a Uint32Array/);
      throwsCode(() => impl.topK(q, c, 1, { mask: new Int8Array(5) as unknown as Uint8Array }), 'E_TYPE', /mask must be a Uint8Array/);
      throwsCode(() => impl.topK(q, c, 1, { skip: new Uint32Array(3) }), 'E_SHAPE', /skip has length 3/);
      throwsCode(() => impl.topK(q, c, 1, { mask: new Uint8Array(4) }), 'E_SHAPE', /mask has length 4/);
      // E_TYPE outranks E_SHAPE, E_SHAPE outranks E_ARG.
      throwsCode(() => impl.topK(q, { data: c.data, rows: 4, cols: 3 }, 1, { skip: [] as unknown as Uint32Array }), 'E_TYPE');
      throwsCode(() => impl.topK(q, c, 9, { mask: new Uint8Array(4) }), 'E_SHAPE');
      throwsCode(() => impl.topK(q, c, 1, { skip: new Uint32Array([0, 5]) }), 'E_ARG', /skip\[1\] = 5/);
      const mask = new Uint8Array([1, 0, 1, 1, 1]);
      throwsCode(() => impl.topK(q, c, 4, { skip: new Uint32Array([0, 1]), mask }), 'E_ARG', /query 0 has 3 eligible/);
      expect(impl.topK(q, c, 3, { skip: new Uint32Array([0, 1]), mask }).indices.length).toBe(6);
    }
    await expect(dv.topKAsync(q, c, 5, { mask: new Uint8Array(5) })).rejects.toMatchObject({ code: 'E_ARG' });
  });

  it('a plain vector gets a hint to wrap it with matrix()', () => {
    const c = randm(4, 384, 8);
    for (const [, impl] of IMPLS) {
      throwsCode(() => impl.topK(new Float32Array(384) as unknown as M, c, 1), 'E_TYPE', /wrap it with matrix\(x, cols\)/);
      throwsCode(() => impl.similarityMatrix([[1, 2]] as unknown as M, c), 'E_TYPE', /wrap it with matrix/);
    }
  });
});

describe('mergeTopK', () => {
  it('equals topK over the concatenated shards exactly, ties and compact shards included', () => {
    const q = randm(8, 20, 9);
    const c = tiedCorpus(900, 20, 10);
    // Exact cross-shard ties: shard 2 repeats rows of shard 0.
    c.data.copyWithin(700 * 20, 0, 50 * 20);
    const cuts = [0, 250, 251, 600, 900];
    for (const [name, impl] of IMPLS) {
      for (const metric of METRICS) {
        for (const k of [1, 10, 40]) {
          const parts = [];
          for (let s = 0; s + 1 < cuts.length; s++) {
            const sh = slice(c, cuts[s], cuts[s + 1]);
            parts.push(impl.topK(q, sh, Math.min(k, sh.rows), { metric }));
          }
          const merged = impl.mergeTopK(parts, k, { metric });
          const whole = impl.topK(q, c, k, { metric });
          expect(Array.from(merged.indices), `${name} ${metric} k=${k}`).toEqual(Array.from(whole.indices));
          expect(Array.from(merged.scores)).toEqual(Array.from(whole.scores));
          expect(merged.corpusRows).toBe(900);
          // Explicit offsets, shards out of order.
          const rev = impl.mergeTopK([parts[3], parts[0], parts[2], parts[1]], k, { metric, offsets: [600, 0, 251, 250] });
          expect(Array.from(rev.indices)).toEqual(Array.from(whole.indices));
        }
      }
      // Compact shards.
      const c8 = dv.quantize(c, 'i8', { scale: 'global' });
      const sh0 = { ...c8, data: c8.data.subarray(0, 400 * 20), rows: 400 };
      const sh1 = { ...c8, data: c8.data.subarray(400 * 20), rows: 500 };
      const m8 = impl.mergeTopK([impl.topK(q, sh0, 7), impl.topK(q, sh1, 7)], 7);
      expect(Array.from(m8.indices)).toEqual(Array.from(impl.topK(q, c8, 7).indices));
    }
  });

  it('orders NaN scores last, like topK', () => {
    const q = { data: new Float32Array([1, 1]), rows: 1, cols: 2 };
    const c = { data: new Float32Array([NaN, 0, 1, 0, NaN, 1, 2, 0, 0, 0]), rows: 5, cols: 2 };
    for (const [, impl] of IMPLS) {
      const whole = impl.topK(q, c, 5, { metric: 'dot' });
      const merged = impl.mergeTopK([impl.topK(q, slice(c, 0, 2), 2, { metric: 'dot' }), impl.topK(q, slice(c, 2, 5), 3, { metric: 'dot' })], 5, {
        metric: 'dot',
      });
      expect(Array.from(merged.indices)).toEqual(Array.from(whole.indices));
      expect(Array.from(whole.indices).slice(3)).toEqual([0, 2]);
    }
  });

  it('errors', () => {
    const q = randm(2, 4, 11);
    const a = dv.topK(q, randm(5, 4, 12), 3);
    const b = dv.topK(q, randm(6, 4, 13), 3);
    for (const [, impl] of IMPLS) {
      throwsCode(() => impl.mergeTopK('x' as never, 3), 'E_TYPE');
      throwsCode(() => impl.mergeTopK([{ indices: [1], scores: new Float32Array(1) } as never], 1), 'E_TYPE', /indices must be a Uint32Array/);
      throwsCode(() => impl.mergeTopK([a, b], 2.5), 'E_TYPE');
      throwsCode(() => impl.mergeTopK([], 3), 'E_SHAPE');
      throwsCode(() => impl.mergeTopK([a, { ...b, indices: b.indices.subarray(0, 3), scores: b.scores.subarray(0, 3) }], 3), 'E_SHAPE');
      throwsCode(() => impl.mergeTopK([a, b], 3, { offsets: [0] }), 'E_SHAPE');
      throwsCode(() => impl.mergeTopK([a, b], 7), 'E_ARG', /fewer than k = 7/);
      throwsCode(() => impl.mergeTopK([a, { indices: b.indices, scores: b.scores, k: 3 }], 3), 'E_ARG', /corpusRows/);
      throwsCode(() => impl.mergeTopK([a, b], 3, { metric: 'manhattan' as never }), 'E_ARG');
      expect(Array.from(impl.mergeTopK([a, { indices: b.indices, scores: b.scores, k: 3 }], 3, { offsets: [0, 5] }).indices)).toEqual(
        Array.from(impl.mergeTopK([a, b], 3).indices),
      );
    }
  });
});

describe('topKStream', () => {
  it('equals topK over the concatenation (sync and async iterables, f32 and compact chunks, progress)', async () => {
    const q = randm(5, 12, 14);
    const c = tiedCorpus(1000, 12, 15);
    const cuts = [0, 3, 300, 301, 777, 1000];
    for (const [, impl] of IMPLS) {
      for (const metric of METRICS) {
        const chunks = cuts.slice(1).map((e, s) => slice(c, cuts[s], e));
        const progress: number[] = [];
        const got = await impl.topKStream(q, chunks, 20, { metric, onProgress: (n: number) => progress.push(n) });
        const want = impl.topK(q, c, 20, { metric });
        expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
        expect(Array.from(got.scores)).toEqual(Array.from(want.scores));
        expect(progress).toEqual(cuts.slice(1));
        async function* gen() {
          for (const ch of chunks) {
            await new Promise((r) => setTimeout(r, 1));
            yield ch;
          }
        }
        const ga = await impl.topKStream(q, gen(), 20, { metric });
        expect(Array.from(ga.indices)).toEqual(Array.from(want.indices));
      }
      const c16 = dv.quantize(c, 'f16');
      const s16 = await impl.topKStream(q, impl.corpusChunks(c16, 128), 5);
      expect(Array.from(s16.indices)).toEqual(Array.from(impl.topK(q, c16, 5).indices));
    }
  });

  it('errors', async () => {
    const q = randm(2, 4, 16);
    const c = randm(5, 4, 17);
    for (const [, impl] of IMPLS) {
      await expect(impl.topKStream(q, 42 as never, 1)).rejects.toMatchObject({ code: 'E_TYPE' });
      await expect(impl.topKStream(q, [c], 6)).rejects.toMatchObject({ code: 'E_ARG' });
      await expect(impl.topKStream(q, [c, randm(3, 5, 1)], 2)).rejects.toMatchObject({ code: 'E_SHAPE', message: expect.stringMatching(/chunk 1/) });
      await expect(impl.topKStream(q, [c], 1, { onProgress: 3 as never })).rejects.toMatchObject({ code: 'E_TYPE' });
    }
  });
});

describe('writeCorpus / openCorpus', () => {
  it('round-trips every storage type; the opened corpus searches like the in-memory one', async () => {
    const q = randm(4, 33, 18);
    const c = tiedCorpus(500, 33, 19);
    const kinds: [string, unknown][] = [
      ['f32', c],
      ['f16', dv.quantize(c, 'f16')],
      ['bf16', dv.quantize(c, 'bf16')],
      ['i8row', dv.quantize(c, 'i8')],
      ['i8global', dv.quantize(c, 'i8', { scale: 'global' })],
    ];
    for (const [name, m] of kinds) {
      const p = join(dir, `${name}.dvc`);
      const bytes = dv.writeCorpus(p, m as M);
      expect(readFileSync(p).length).toBe(bytes);
      expect(readFileSync(p).subarray(0, 8).toString('latin1')).toBe('DVCORPUS');
      for (const [impl_name, impl] of IMPLS) {
        const o = impl.openCorpus(p) as unknown as Record<string, unknown> & M;
        const mm = m as Record<string, unknown> & M;
        expect(o.rows).toBe(500);
        expect(o.cols).toBe(33);
        expect(o.dtype).toBe(mm.dtype);
        expect(o.data.constructor).toBe(mm.data.constructor);
        expect(Array.from(o.data as ArrayLike<number>)).toEqual(Array.from(mm.data as ArrayLike<number>));
        if (mm.scale !== undefined)
          expect(typeof mm.scale === 'number' ? o.scale : Array.from(o.scale as Float32Array)).toEqual(
            typeof mm.scale === 'number' ? mm.scale : Array.from(mm.scale as Float32Array),
          );
        for (const metric of METRICS) {
          expect(Array.from(impl.topK(q, o, 8, { metric }).indices), `${impl_name} ${name}`).toEqual(Array.from(impl.topK(q, m as M, 8, { metric }).indices));
        }
        const s = await impl.topKStream(q, impl.corpusChunks(o, 64), 8);
        expect(Array.from(s.indices)).toEqual(Array.from(impl.topK(q, m as M, 8).indices));
      }
    }
  });

  it('maps the file without copying (private: writes never reach the file)', () => {
    const c = randm(64, 16, 20);
    const p = join(dir, 'map.dvc');
    dv.writeCorpus(p, c);
    const a = dv.openCorpus(p) as M;
    const b = dv.openCorpus(p) as M;
    // A mapping, not a heap copy: the ArrayBuffer is the whole file (header included), and on
    // Linux the file shows up among the process's mappings.
    expect(a.data.byteOffset).toBe(64);
    expect(a.data.buffer.byteLength).toBe(64 + 64 * 16 * 4);
    expect(typeof native.mapCorpus).toBe('function');
    if (process.platform === 'linux') expect(readFileSync('/proc/self/maps', 'utf8')).toContain(p);
    a.data[0] = 12345;
    expect(a.data[0]).toBe(12345);
    expect(b.data[0]).toBe(c.data[0]);
    expect(readFileSync(p).readFloatLE(64)).toBe(c.data[0]);
    // Usable by every corpus-taking function, e.g. similarityMatrix and normalizeRows.
    close(dv.similarityMatrix(c, b).data, dv.similarityMatrix(c, c).data, 0, 0);
  });

  it('writeCorpus replaces a file by a rename: a corpus opened from the old file keeps its rows', () => {
    const p = join(dir, 'replace.dvc');
    const c = randm(300, 16, 22);
    const q = randm(3, 16, 23);
    for (const [name, impl] of IMPLS) {
      impl.writeCorpus(p, c);
      const old = impl.openCorpus(p) as M;
      const want = Array.from(impl.topK(q, c, 5).indices);
      // Rewritten smaller while mapped: the old mapping still holds the old file.
      impl.writeCorpus(p, randm(7, 16, 24));
      expect(Array.from(impl.topK(q, old, 5).indices), name).toEqual(want);
      expect((impl.openCorpus(p) as M).rows).toBe(7);
    }
    // No temporary file is left beside it, and a refused write leaves the old file whole.
    expect(readdirSync(dir).filter((f) => f.startsWith('replace.dvc'))).toEqual(['replace.dvc']);
    throwsCode(() => dv.writeCorpus(p, { data: new Float32Array(3), rows: 2, cols: 2 }), 'E_SHAPE');
    expect((dv.openCorpus(p) as M).rows).toBe(7);
  });

  it.skipIf(process.platform === 'win32')('a mapped file that shrinks gives E_ARG, never a crash', () => {
    // In a child process: without the guard, the first read past the file's new end ends the
    // process with SIGBUS.
    const p = join(dir, 'shrink.dvc');
    const script = `
      const dv = require(${JSON.stringify(require.resolve('..'))});
      const fs = require('node:fs');
      const c = dv.randomUnitVectors(20000, 64, 2);
      dv.writeCorpus(${JSON.stringify(p)}, c);
      const oc = dv.openCorpus(${JSON.stringify(p)});
      const q = dv.randomUnitVectors(2, 64, 1);
      fs.truncateSync(${JSON.stringify(p)}, 64 + 4 * 64 * 100);
      const out = [];
      const code = (f) => { try { f(); return 'ok'; } catch (e) { return e.code + (/shrank while it was mapped/.test(e.message) && e.message.includes(${JSON.stringify(p)}) ? '' : ' ' + e.message); } };
      out.push(code(() => dv.topK(q, oc, 3)));
      out.push(code(() => dv.topK(q, oc, 3)));
      out.push(code(() => dv.similarityMatrix(q, oc)));
      out.push(code(() => dv.normalizeRows(oc)));
      out.push(code(() => dv.normalizeInPlace(oc)));
      out.push(code(() => dv.dotRows(oc, oc)));
      // The rows before the new end are intact and still searchable.
      const head = { data: oc.data.subarray(0, 6400), rows: 100, cols: 64 };
      const want = dv.topK(q, { data: c.data.subarray(0, 6400), rows: 100, cols: 64 }, 3);
      out.push(String(dv.topK(q, head, 3).indices) === String(want.indices) ? 'head' : 'head differs');
      out.push(String(oc.data[oc.data.length - 1]));
      out.push(code(() => dv.topK(q, oc, 3)));
      dv.topKAsync(q, oc, 3).then(() => out.push('ok'), (e) => out.push(e.code)).then(() => console.log(out.join(',')));
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('E_ARG,E_ARG,E_ARG,E_ARG,E_ARG,E_ARG,head,0,E_ARG,E_ARG');
  });

  it.skipIf(process.platform === 'win32')('SIGBUS outside a mapping still ends the process', () => {
    const script = `
      const dv = require(${JSON.stringify(require.resolve('..'))});
      dv.writeCorpus(${JSON.stringify(join(dir, 'sig.dvc'))}, dv.randomUnitVectors(10, 4, 1));
      const oc = dv.openCorpus(${JSON.stringify(join(dir, 'sig.dvc'))});
      process.kill(process.pid, 'SIGBUS');
      setTimeout(() => console.log('alive', oc.rows), 500);
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.signal).toBe('SIGBUS');
    expect(r.stdout).not.toContain('alive');
  });

  it('bad files give clear errors on both backends', () => {
    const c = randm(10, 4, 21);
    const good = join(dir, 'good.dvc');
    dv.writeCorpus(good, c);
    const bytes = readFileSync(good);
    const variant = (name: string, f: (b: Buffer) => Buffer): string => {
      const p = join(dir, name);
      writeFileSync(p, f(Buffer.from(bytes)));
      return p;
    };
    const truncated = variant('trunc.dvc', (b) => b.subarray(0, b.length - 4));
    const trailing = variant('trail.dvc', (b) => Buffer.concat([b, Buffer.alloc(3)]));
    const tiny = variant('tiny.dvc', (b) => b.subarray(0, 10));
    const empty = variant('empty.dvc', () => Buffer.alloc(0));
    const magic = variant('magic.dvc', (b) => {
      b.write('NOTACORP', 0, 'latin1');
      return b;
    });
    const version = variant('version.dvc', (b) => {
      b.writeUInt32LE(7, 8);
      return b;
    });
    const dtype = variant('dtype.dvc', (b) => {
      b.writeUInt32LE(9, 12);
      return b;
    });
    const rows = variant('rows.dvc', (b) => {
      b.writeBigUInt64LE(11n, 16);
      return b;
    });
    // A sparse file over 4 GiB (no disk blocks): the largest one buffer maps.
    const huge = join(dir, 'huge.dvc');
    copyFileSync(good, huge);
    truncateSync(huge, 2 ** 32 + 64 + 16);
    for (const [, impl] of IMPLS) {
      throwsCode(() => impl.openCorpus(truncated), 'E_SHAPE', /needs exactly 224.*truncated/);
      throwsCode(() => impl.openCorpus(trailing), 'E_SHAPE', /trailing bytes/);
      throwsCode(() => impl.openCorpus(tiny), 'E_SHAPE', /less than the 64-byte header/);
      throwsCode(() => impl.openCorpus(empty), 'E_SHAPE', /has 0 bytes/);
      throwsCode(() => impl.openCorpus(magic), 'E_ARG', /not a densevec corpus file/);
      throwsCode(() => impl.openCorpus(version), 'E_ARG', /version 7/);
      throwsCode(() => impl.openCorpus(dtype), 'E_ARG', /unknown dtype code 9/);
      throwsCode(() => impl.openCorpus(rows), 'E_SHAPE', /11 x 4/);
      throwsCode(() => impl.openCorpus(join(dir, 'missing.dvc')), 'E_ARG', /cannot open/);
      throwsCode(() => impl.openCorpus(huge), 'E_ARG', /more than the 4294967296 bytes \(4 GiB\) one mapped buffer holds; write the corpus as shard files/);
      throwsCode(() => impl.openCorpus(3 as never), 'E_TYPE');
      expect(impl.openCorpus(good, { cols: 4, dtype: 'f32' }).rows).toBe(10);
      throwsCode(() => impl.openCorpus(good, { cols: 5 }), 'E_SHAPE', /has 4 columns but cols 5/);
      throwsCode(() => impl.openCorpus(good, { dtype: 'f16' }), 'E_ARG', /holds f32 rows but dtype 'f16'/);
      throwsCode(() => impl.openCorpus(good, { cols: 1.5 }), 'E_TYPE');
      throwsCode(() => impl.openCorpus(good, { dtype: 'f64' as never }), 'E_ARG');
      throwsCode(() => impl.writeCorpus(join(dir, 'x.dvc'), { data: new Float32Array(3), rows: 2, cols: 2 }), 'E_SHAPE');
      throwsCode(() => impl.writeCorpus(join(dir, 'nodir', 'x.dvc'), c), 'E_ARG', /cannot open/);
    }
  });
});

describe('matrix() inputs and toArrow', () => {
  it('Float64Array, other typed arrays and number[][] are copied', () => {
    const f64 = new Float64Array([1, 2, 3, 4, 5, 6]);
    for (const impl of [dv, ref]) {
      const m = impl.matrix(f64, 3);
      expect(m.data).toBeInstanceOf(Float32Array);
      expect([m.rows, m.cols]).toEqual([2, 3]);
      expect(Array.from(m.data)).toEqual([1, 2, 3, 4, 5, 6]);
      f64[0] = 9;
      expect(m.data[0]).toBe(1);
      f64[0] = 1;
      expect(Array.from(impl.matrix(new Int8Array([1, -2]), 1).data)).toEqual([1, -2]);
      throwsCode(() => impl.matrix(f64, 4), 'E_SHAPE');
      throwsCode(() => impl.matrix(f64), 'E_TYPE', /cols must be a positive integer/);
      throwsCode(() => impl.matrix(new BigInt64Array(2) as never, 1), 'E_TYPE');
      throwsCode(() => impl.matrix('abc' as never, 1), 'E_TYPE', /Float64Array \(with cols\)/);
    }
  });

  it('tensor-likes { data, dims } are zero-copy', () => {
    const data = new Float32Array(12).map((_, i) => i);
    const m = dv.matrix({ data, dims: [3, 4] });
    expect(m.data).toBe(data);
    expect([m.rows, m.cols]).toEqual([3, 4]);
    expect(dv.matrix({ data: data.subarray(0, 4), dims: [4] }).rows).toBe(1);
    expect(Array.from(dv.matrix({ data: new Float64Array([1, 2]), dims: [1, 2] }).data)).toEqual([1, 2]);
    throwsCode(() => dv.matrix({ data, dims: [2, 4] }), 'E_SHAPE', /need 8/);
    throwsCode(() => dv.matrix({ data, dims: [1, 3, 4] }), 'E_SHAPE', /pool or reshape/);
    throwsCode(() => dv.matrix({ data, dims: [3, 4] }, 5), 'E_SHAPE');
    throwsCode(() => dv.matrix({ data: 'x', dims: [1, 1] } as never), 'E_TYPE');
  });

  it('Arrow FixedSizeList<Float32>: zero-copy, slices honoured, nulls refused; toArrow round-trips', () => {
    const m = randm(10, 3, 22);
    const vec = dv.toArrow(m) as import('apache-arrow').Vector;
    expect(vec.length).toBe(10);
    expect(String(vec.type)).toMatch(/FixedSizeList\[3\]<Float32>/);
    const back = dv.matrix(vec);
    expect(back.data.buffer).toBe(m.data.buffer);
    expect(back.data.byteOffset).toBe(m.data.byteOffset);
    expect(Array.from(back.data)).toEqual(Array.from(m.data));
    expect(Array.from(vec.get(4)!.toArray() as Float32Array)).toEqual(Array.from(m.data.subarray(12, 15)));
    // A slice: the child buffer is longer than the column; row 0 of the slice is row 2.
    const sl = vec.slice(2, 7);
    const ms = dv.matrix(sl);
    expect([ms.rows, ms.cols]).toEqual([5, 3]);
    expect(ms.data.buffer).toBe(m.data.buffer);
    expect(Array.from(ms.data)).toEqual(Array.from(m.data.subarray(6, 21)));
    const msd = dv.matrix(sl.data[0]);
    expect(Array.from(msd.data)).toEqual(Array.from(ms.data));
    // Results on the Arrow input equal those on the Matrix.
    expect(Array.from(dv.topK(ms, m, 2).indices)).toEqual(Array.from(dv.topK(slice(m, 2, 7), m, 2).indices));
    // Several chunks are concatenated (copied).
    const two = new arrow.Vector([
      ...(dv.toArrow(slice(m, 0, 4)) as import('apache-arrow').Vector).data,
      ...(dv.toArrow(slice(m, 4, 10)) as import('apache-arrow').Vector).data,
    ]);
    expect(Array.from(dv.matrix(two).data)).toEqual(Array.from(m.data));
    // Nulls.
    const f32 = new arrow.Float32();
    const child = arrow.makeData({ type: f32, length: 6, data: new Float32Array(6) });
    const withNull = arrow.makeData({
      type: new arrow.FixedSizeList(3, new arrow.Field('item', f32)),
      length: 2,
      nullCount: 1,
      nullBitmap: new Uint8Array([1]),
      child,
    });
    throwsCode(() => dv.matrix(withNull), 'E_ARG', /1 null row/);
    // Other Arrow types.
    const ints = arrow.vectorFromArray([1, 2, 3], new arrow.Int32());
    throwsCode(() => dv.matrix(ints), 'E_TYPE', /FixedSizeList<Float32>/);
    throwsCode(() => dv.matrix(vec, 4), 'E_SHAPE');
  });
});
