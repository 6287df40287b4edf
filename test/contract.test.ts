/**
 * The error contract and argument handling, on both backends: every field read once at call
 * time (also by the …Async twins), names looked up by own keys only, one typed-array rule
 * (genuine arrays of any realm; Proxies and look-alikes are E_TYPE), the precedence
 * E_TYPE > E_SHAPE > E_ARG > E_NON_FINITE, cosinePValue for huge d, subnormal temperatures,
 * the environment variables, the reference backend's worker thread for the …Async twins, and
 * identical messages on both backends.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import * as vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { close, dv, randm, randn, ref } from './helpers';

type M = { data: Float32Array; rows: number; cols: number };
type Backend = 'native' | 'reference';
const BACKENDS: Backend[] = ['native', 'reference'];

afterEach(() => dv.setBackend('auto'));

/** The DensevecError `f` throws (fails if it throws anything else or nothing). */
function caught(f: () => unknown): { code: string; message: string } {
  let err: unknown = null;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a DensevecError').toBeInstanceOf(dv.DensevecError);
  return { code: (err as { code: string }).code, message: (err as Error).message };
}

/** The DensevecError a promise rejects with. */
async function rejected(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  let err: unknown = null;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a rejection with a DensevecError').toBeInstanceOf(dv.DensevecError);
  return { code: (err as { code: string }).code, message: (err as Error).message };
}

/** Runs `f` on each backend and expects the same code (and message) from both. */
function sameError(f: () => unknown, code: string, re?: RegExp): string {
  const msgs: string[] = [];
  for (const b of BACKENDS) {
    dv.setBackend(b);
    const e = caught(f);
    expect(e.code, `${b}: ${e.message}`).toBe(code);
    if (re) expect(e.message).toMatch(re);
    msgs.push(e.message);
  }
  dv.setBackend('auto');
  expect(msgs[0]).toBe(msgs[1]);
  return msgs[0];
}

/** A matrix whose field `key` answers `first` on the first read and `later` afterwards; counts reads. */
function shifty(m: M, key: 'rows' | 'cols' | 'data', first: unknown, later: unknown): { m: M; reads: () => number } {
  let n = 0;
  const o = { ...m } as Record<string, unknown>;
  delete o[key];
  Object.defineProperty(o, key, {
    get() {
      n++;
      return n === 1 ? first : later;
    },
    enumerable: true,
  });
  return { m: o as unknown as M, reads: () => n };
}

describe('contract: every field is read once, at call time', () => {
  it('the …Async twins are not affected by changes made after the call', async () => {
    for (const b of BACKENDS) {
      dv.setBackend(b);
      const q = randm(4, 6, 1);
      const c = randm(5, 6, 2);
      const want = dv.similarityMatrix(q, c);
      const qq = { ...q, data: q.data.slice() };
      const cc = { ...c, data: c.data.slice() };
      const p = dv.similarityMatrixAsync(qq, cc);
      qq.rows = 1;
      qq.data.fill(7);
      cc.cols = 3;
      cc.data = new Float32Array(3);
      const got = await p;
      expect([got.rows, got.cols]).toEqual([4, 5]);
      close(got.data, want.data, 0, 0);

      const tq = { ...q, data: q.data.slice() };
      const pt = dv.topKAsync(tq, c, 2, { metric: 'dot' });
      tq.rows = 2;
      tq.data.fill(0);
      const tk = await pt;
      expect(Array.from(tk.indices)).toEqual(Array.from(dv.topK(q, c, 2, { metric: 'dot' }).indices));

      const keys = randm(4, 6, 3);
      const opts = { temperature: 0.5 as number };
      const kq = { ...q, data: q.data.slice() };
      const pi = dv.infoNCEAsync(kq, keys, opts);
      kq.rows = 1;
      opts.temperature = 100;
      const inf = await pi;
      close(inf.loss, dv.infoNCE(q, keys, { temperature: 0.5 }).loss, 1e-12, 0);
      expect(inf.gradQ.rows).toBe(4);

      const a = randm(5, 3, 4);
      const bb = randm(5, 3, 5);
      const aa = { ...a, data: a.data.slice() };
      const pn = dv.ntXentAsync(aa, bb, { temperature: 0.3 });
      aa.rows = 1;
      expect((await pn).gradA.rows).toBe(5);

      const labels = new Uint32Array([0, 1, 2, 0, 1]);
      const w = randm(3, 3, 6);
      const xa = { ...a, data: a.data.slice() };
      const pm = dv.marginSoftmaxAsync(xa, w, labels, { kind: 'cosface' });
      xa.rows = 2;
      xa.data.fill(1);
      close((await pm).loss, dv.marginSoftmax(a, w, labels, { kind: 'cosface' }).loss, 1e-6, 0);

      const px = { ...a, data: a.data.slice() };
      const pp = dv.procrustesAsync(px, bb);
      px.cols = 1;
      expect((await pp).rotation.rows).toBe(3);

      const wa = { ...a, data: a.data.slice() };
      const pw = dv.wassersteinRegularizerAsync(wa, bb, { p: 2 });
      wa.rows = 2;
      close((await pw).loss, dv.wassersteinRegularizer(a, bb).loss, 1e-6, 1e-9);

      const train = randm(6, 3, 7);
      const tl = new Uint32Array([0, 1, 0, 1, 0, 1]);
      const kn = { ...a, data: a.data.slice() };
      const pk = dv.knnClassifyAsync(train, tl, kn, 3);
      kn.rows = 1;
      expect((await pk).length).toBe(5);

      const sm = { ...a, data: a.data.slice() };
      const ps = dv.similarityStatsAsync(sm);
      sm.rows = 2;
      expect((await ps).pairs).toBe(10);
    }
  });

  it('a getter is read once per call, and what it answered first is what is used', () => {
    for (const b of BACKENDS) {
      dv.setBackend(b);
      const q = randm(3, 4, 11);
      const c = randm(5, 4, 12);
      // rows answers 3 once, then 2^52 + 1: validation and computation see the same 3.
      const s = shifty(q, 'rows', 3, 2 ** 52 + 1);
      const r = dv.similarityMatrix(s.m, c);
      expect(s.reads()).toBe(1);
      expect(r.rows).toBe(3);
      close(r.data, dv.similarityMatrix(q, c).data, 0, 0);
      // data answers a valid array once, then a shorter one.
      const t = shifty(q, 'data', q.data, new Float32Array(1));
      expect(dv.topK(t.m, c, 2).indices.length).toBe(6);
      expect(t.reads()).toBe(1);
      // An options getter too.
      let reads = 0;
      const opts = {
        get metric() {
          reads++;
          return reads === 1 ? 'dot' : 'toString';
        },
      };
      dv.similarityMatrix(q, c, opts as never);
      expect(reads).toBe(1);
      // A getter that throws is an E_TYPE naming the argument.
      const bad = Object.defineProperty({ data: q.data, cols: 4 }, 'rows', {
        get() {
          throw new Error('no');
        },
      });
      const e = caught(() => dv.normalizeRows(bad as never));
      expect(e.code).toBe('E_TYPE');
      expect(e.message).toMatch(/normalizeRows: m could not be read/);
    }
  });

  it('graphGeodesicsAsync shapes its result from the call-time sources, and options fields are read once', async () => {
    for (const b of BACKENDS) {
      dv.setBackend(b);
      const m = randm(12, 8, 31);
      const sources = new Uint32Array([0, 3, 5]);
      const want = dv.graphGeodesics(m, { k: 4, sources: new Uint32Array([0, 3, 5]) });
      const p = dv.graphGeodesicsAsync(m, { k: 4, sources });
      // Detached right after the call: the result still has the call's three rows.
      structuredClone(sources.buffer, { transfer: [sources.buffer] });
      const got = await p;
      expect([got.rows, got.cols]).toEqual([3, 12]);
      close(got.data, want.data, 0, 0);
      // marginGeometry and mismatchScore read each options field once.
      const once = (vals: unknown[]) => {
        let i = 0;
        return { get: () => vals[Math.min(i++, vals.length - 1)], enumerable: true };
      };
      const protos = randm(5, 8, 32);
      const g = dv.marginGeometry(protos, Object.defineProperties({ margin: 0.3 }, { kind: once(['arcface', 'bogus']) }) as never);
      close(g.gaps.data, dv.marginGeometry(protos, { kind: 'arcface', margin: 0.3 }).gaps.data, 0, 0);
      const a = randm(6, 8, 33);
      const bb = randm(6, 8, 34);
      const ms = dv.mismatchScore(a, bb, Object.defineProperties({}, { withinView: once([false, true]) }) as never);
      expect(ms.muQ).toBe(dv.mismatchScore(a, bb, { withinView: false }).muQ);
    }
  });

  it('topKStream searches every chunk with the call-time queries', async () => {
    for (const b of BACKENDS) {
      dv.setBackend(b);
      const q = randm(4, 16, 35);
      const c = randm(100, 16, 36);
      const chunks = [0, 25, 50, 75].map((s) => ({ data: c.data.subarray(s * 16, (s + 25) * 16), rows: 25, cols: 16 }));
      const want = Array.from(dv.topK(q, c, 3).indices);
      const qq = { ...q, data: q.data.slice() };
      const r = await dv.topKStream(qq, chunks, 3, {
        onProgress: (n: number) => {
          if (n === 25) {
            qq.data.fill(3);
            qq.rows = 2;
          }
        },
      });
      expect(Array.from(r.indices)).toEqual(want);
    }
  });

  it('sync calls copy their index arrays: a SharedArrayBuffer changed by another thread never gives E_INTERNAL', async () => {
    const { Worker } = await import('node:worker_threads');
    const n = 64;
    const shared = new SharedArrayBuffer(4 * n);
    const stop = new SharedArrayBuffer(4);
    const labels = new Uint32Array(shared);
    for (let i = 0; i < n; i++) labels[i] = i % 8;
    const w = new Worker(
      `const { workerData: { shared, stop } } = require('node:worker_threads');
       const u = new Uint32Array(shared), s = new Int32Array(stop); let x = 1;
       while (Atomics.load(s, 0) === 0) for (let i = 0; i < u.length; i++) { x = (x * 1103515245 + 12345) >>> 0; u[i] = (x & 1) ? 0xfffffff0 : (x >>> 8) % 8; }`,
      { eval: true, workerData: { shared, stop } },
    );
    dv.setBackend('native');
    const x = randm(n, 32, 37);
    const w8 = randm(8, 32, 38);
    const codes = new Set<string>();
    const t0 = Date.now();
    while (Date.now() - t0 < 1500) {
      for (const f of [
        () => dv.marginSoftmax(x, w8, labels, { kind: 'arcface' }),
        () => dv.infoNCE(x, x, { temperature: 0.1, positives: labels }),
        () => dv.graphGeodesics(x, { k: 5, sources: labels.subarray(0, 4) }),
      ]) {
        try {
          f();
          codes.add('ok');
        } catch (e) {
          codes.add((e as { code: string }).code);
        }
      }
    }
    Atomics.store(new Int32Array(stop), 0, 1);
    await w.terminate();
    expect([...codes].filter((c) => c !== 'ok' && c !== 'E_ARG')).toEqual([]);
  });

  it('the pair functions throw DensevecError naming themselves when the addon refuses', () => {
    dv.setBackend('native');
    const a = new Float32Array(4);
    const b = new Float32Array(8);
    Object.defineProperty(a, 'length', { value: 8 });
    for (const f of ['dot', 'cosine', 'l2sq'] as const) {
      // caught() fails unless a DensevecError is thrown.
      const e = caught(() => dv[f](a, b));
      expect(e.code).toBe('E_TYPE');
      expect(e.message).toMatch(new RegExp(`^${f}: `));
    }
  });

  it('async twins reject with DensevecError, never a plain Error', async () => {
    const q = randm(2, 3, 1);
    const fake = new Proxy(q.data, {});
    for (const b of BACKENDS) {
      dv.setBackend(b);
      const cases: Array<[Promise<unknown>, string]> = [
        [dv.similarityMatrixAsync({ ...q, data: fake }, q), 'E_TYPE'],
        [dv.topKAsync(q, q, 5), 'E_ARG'],
        [dv.infoNCEAsync(q, q, { temperature: 0 }), 'E_ARG'],
        [dv.ntXentAsync(q, { ...q, rows: 1 }, { temperature: 1 }), 'E_SHAPE'],
        [dv.marginSoftmaxAsync(q, q, new Uint32Array([0, 1]), { kind: 'toString' as never }), 'E_ARG'],
        [dv.procrustesAsync(q, { ...q, data: Float32Array.from([1, 2, 3, 4, 5, NaN]) }), 'E_NON_FINITE'],
        [dv.wassersteinRegularizerAsync(q, q, { p: 3 }), 'E_ARG'],
        [dv.knnClassifyAsync(q, new Uint32Array(2), q, 1, { metric: '__proto__' as never }), 'E_ARG'],
        [dv.similarityStatsAsync({ ...q, rows: 1n } as never), 'E_TYPE'],
        [dv.infoNCEAsync(q, { ...q, data: Float32Array.from([1, 2, 3, Infinity, 5, 6]) }, { temperature: 1 }), 'E_NON_FINITE'],
      ];
      // Every rejection is handled at once: some (the native checks) come from the pool, later
      // than the ones the TypeScript layer raises.
      const settled = cases.map(([p, code]) => [rejected(p), code] as const);
      for (const [p, code] of settled) expect((await p).code).toBe(code);
    }
  });
});

describe('contract: names are looked up by own keys only', () => {
  it('metric, kind and dtype names from Object.prototype are unknown names (E_ARG) on both backends', () => {
    const q = randm(3, 4, 21);
    const labels = new Uint32Array([0, 1, 0]);
    for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf']) {
      sameError(() => dv.similarityMatrix(q, q, { metric: name as never }), 'E_ARG', /unknown metric/);
      sameError(() => dv.topK(q, q, 1, { metric: name as never }), 'E_ARG', /unknown metric/);
      sameError(() => dv.knnClassify(q, labels, q, 1, { metric: name as never }), 'E_ARG', /unknown metric/);
      sameError(() => dv.marginSoftmax(q, q, labels, { kind: name as never }), 'E_ARG', /unknown kind/);
      sameError(() => dv.temperatureSchedule({ start: 1, end: 1, steps: 1, kind: name as never }), 'E_ARG', /unknown kind/);
      sameError(() => dv.cosinePValue(0.1, 10, { tail: name as never }), 'E_ARG', /unknown tail/);
      sameError(() => dv.quantize(q, name as never), 'E_ARG', /dtype/);
      sameError(() => dv.similarityMatrix(q, { data: new Uint16Array(12), rows: 3, cols: 4, dtype: name } as never), 'E_ARG', /dtype/);
      sameError(() => dv.setBackend(name as never), 'E_ARG', /unknown backend/);
    }
  });
});

describe('contract: one typed-array rule', () => {
  const a = Float32Array.from([1, 2, 3]);
  const fakes: Array<[string, unknown]> = [
    ['a Proxy of a Float32Array', new Proxy(Float32Array.from([1, 2, 3]), {})],
    ['an object with the Float32Array prototype', Object.create(Float32Array.prototype)],
    ['a spoofed toStringTag', { length: 3, 0: 1, 1: 2, 2: 3, [Symbol.toStringTag]: 'Float32Array' }],
    ['a DataView posing as a Float32Array', Object.setPrototypeOf(new DataView(new ArrayBuffer(12)), Float32Array.prototype)],
    ['a Float64Array', new Float64Array(3)],
  ];

  it('Proxies and look-alikes are E_TYPE DensevecErrors, with the same message on both backends', () => {
    for (const [what, f] of fakes) {
      const fm = { data: f, rows: 1, cols: 3 } as never;
      sameError(() => dv.dot(f as never, a), 'E_TYPE', /a must be a Float32Array/);
      sameError(() => dv.cosine(a, f as never), 'E_TYPE', /b must be a Float32Array/);
      sameError(() => dv.l2sq(f as never, f as never), 'E_TYPE');
      sameError(() => dv.norm(f as never), 'E_TYPE');
      sameError(() => dv.normalize(f as never), 'E_TYPE');
      sameError(() => dv.normalizeInPlace(f as never), 'E_TYPE');
      sameError(() => dv.similarityMatrix(fm, fm), 'E_TYPE', /q.data must be a Float32Array/);
      sameError(() => dv.sphericalTriangle(a, a, f as never), 'E_TYPE');
      sameError(() => dv.softmaxProbabilities(f as never, randm(2, 3, 1), 1), 'E_TYPE');
      sameError(() => dv.infoNCE(randm(1, 3, 1), randm(1, 3, 2), { temperature: 1, logQ: f as never }), 'E_TYPE', /logQ/);
      // matrix() copies a genuine Float64Array (docs/pipelines.md); every other fake is refused.
      if (what !== 'a Float64Array') sameError(() => dv.matrix(f as never, 3), 'E_TYPE');
      const msg = caught(() => dv.norm(f as never)).message;
      expect(msg, what).not.toMatch(/got Float32Array$/);
    }
    const u = new Proxy(new Uint32Array([0]), {});
    sameError(() => dv.marginSoftmax(randm(1, 3, 1), randm(2, 3, 2), u as never, { kind: 'normalized' }), 'E_TYPE', /labels must be a Uint32Array/);
    sameError(() => dv.knnClassify(randm(1, 3, 1), u as never, randm(1, 3, 2), 1), 'E_TYPE', /labels/);
    const i8 = new Proxy(new Int8Array(3), {});
    sameError(() => dv.similarityMatrix(randm(1, 3, 1), { data: i8, rows: 1, cols: 3, dtype: 'i8', scale: 1 } as never), 'E_TYPE', /Int8Array/);
    const u16 = Object.create(Uint16Array.prototype);
    sameError(() => dv.topK(randm(1, 3, 1), { data: u16, rows: 1, cols: 3, dtype: 'f16' } as never, 1), 'E_TYPE', /Uint16Array/);
    sameError(
      () => dv.dequantize({ data: new Int8Array(3), rows: 1, cols: 3, dtype: 'i8', scale: new Proxy(new Float32Array(1), {}) } as never),
      'E_TYPE',
      /scale/,
    );
  });

  it('genuine arrays are accepted from any realm and at any byteOffset', () => {
    const other = vm.runInNewContext('new Float32Array([1, 2, 3, 4, 5, 6])') as Float32Array;
    expect(other instanceof Float32Array).toBe(false);
    const buf = new Float32Array(9);
    buf.set([9, 9, 9, 1, 2, 3, 4, 5, 6]);
    const view = buf.subarray(3);
    const labels = vm.runInNewContext('new Uint32Array([0, 1])') as Uint32Array;
    for (const b of BACKENDS) {
      dv.setBackend(b);
      for (const x of [other, view]) {
        close(dv.dot(x, x), 91, 1e-6, 0);
        const m = { data: x, rows: 2, cols: 3 };
        const same = { data: Float32Array.from(x), rows: 2, cols: 3 };
        close(dv.similarityMatrix(m, m).data, ref.similarityMatrix(same, same).data, 1e-6, 1e-7);
        expect(dv.marginSoftmax(m, m, labels, { kind: 'normalized' }).loss).toBeGreaterThan(0);
        expect(dv.matrix(x, 3).rows).toBe(2);
      }
    }
  });

  it('BigInts and other non-numbers are E_TYPE where numbers are required', () => {
    const m = randm(2, 3, 31);
    sameError(() => new dv.GaussianStream(1n as never), 'E_TYPE', /GaussianStream: seed must be an integer, got 1n/);
    sameError(() => new dv.GaussianStream(1.5), 'E_TYPE');
    sameError(() => new dv.GaussianStream(-1), 'E_ARG');
    sameError(() => dv.row(m, 1n as never), 'E_TYPE', /row: i must be an integer/);
    sameError(() => dv.row(null as never, 0), 'E_TYPE', /row: m must be a Matrix/);
    sameError(() => dv.rows({ data: [1, 2] } as never), 'E_TYPE', /rows: m.data/);
    sameError(() => dv.rows({ data: new Float32Array(3), rows: 2, cols: 2 }), 'E_SHAPE');
    sameError(() => dv.f16ToNumber(1n as never), 'E_TYPE', /f16ToNumber: h must be an integer/);
    sameError(() => dv.bf16ToNumber(0x1ffff), 'E_ARG', /65535/);
    sameError(() => dv.numberToF16(1n as never), 'E_TYPE');
    sameError(() => dv.numberToBf16('1' as never), 'E_TYPE');
    sameError(() => dv.quantize(m, 1n as never), 'E_TYPE', /quantize: dtype must be a string, got bigint/);
    sameError(() => dv.quantize(m, 'i8', { scale: 2n } as never), 'E_TYPE');
    sameError(() => dv.similarityMatrix(m, { data: new Int8Array(6), rows: 2, cols: 3, dtype: 1n } as never), 'E_TYPE', /dtype must be a string/);
    sameError(() => dv.similarityMatrix(m, m, { metric: 1n } as never), 'E_TYPE');
    expect(dv.f16ToNumber(0x3c00)).toBe(1);
    expect(dv.bf16ToNumber(0x3f80)).toBe(1);
  });

  it('BatchNorm validates fields that were replaced after construction', () => {
    const m = randm(4, 3, 41);
    const cases: Array<[(l: Record<string, unknown>) => void, string, RegExp]> = [
      [(l) => (l.runningMean = 8), 'E_TYPE', /BatchNorm.forward: runningMean must be a Float32Array, got number/],
      [(l) => (l.runningVar = new Proxy(new Float32Array(3), {})), 'E_TYPE', /runningVar/],
      [(l) => (l.runningMean = new Float32Array(2)), 'E_SHAPE', /runningMean has length 2/],
      [(l) => (l.eps = -1), 'E_ARG', /eps must be > 0/],
      [(l) => (l.eps = '1e-5'), 'E_TYPE', /eps must be a number/],
      [(l) => (l.momentum = 2), 'E_ARG', /momentum/],
      [(l) => (l.momentum = undefined), 'E_TYPE', /momentum/],
      [(l) => (l.dim = 2.5), 'E_TYPE', /dim/],
    ];
    for (const [edit, code, re] of cases) {
      for (const training of [true, false]) {
        sameError(
          () => {
            const layer = new dv.BatchNorm(3);
            edit(layer as unknown as Record<string, unknown>);
            return layer.forward(m, { training });
          },
          code,
          re,
        );
      }
    }
    // Unchanged layers still agree with the reference.
    const l1 = new dv.BatchNorm(3);
    const l2 = new ref.BatchNorm(3);
    close(l1.forward(m).data, l2.forward(m).data, 1e-5, 1e-6);
    close(l1.runningVar, l2.runningVar, 1e-6, 1e-7);
  });
});

describe('contract: precedence E_TYPE > E_SHAPE > E_ARG > E_NON_FINITE', () => {
  it('reports the type error first', () => {
    sameError(() => dv.randomOrthogonal(0, 'x' as never), 'E_TYPE', /seed must be an integer/);
    sameError(() => dv.randomOrthogonal(1e9, 1.5), 'E_TYPE', /seed/);
    sameError(() => dv.setBackend(5 as never), 'E_TYPE', /setBackend: name must be a string/);
    sameError(() => dv.matrix([[1, 2], [3]], '3' as never), 'E_TYPE', /cols/);
    sameError(() => dv.matrix([[1, 'a' as never]]), 'E_TYPE', /entry \[0\]\[1\] must be a number/);
    sameError(() => dv.matrix([[1, 2], [3]]), 'E_SHAPE', /row 1 has length 1/);
    sameError(() => dv.matrix([[1, 2], 5 as never]), 'E_TYPE', /row 1 is not an array/);
    sameError(() => dv.temperatureSchedule({ start: 0, end: 1, steps: 1.5 }), 'E_TYPE', /steps must be an integer/);
    sameError(() => dv.temperatureSchedule({ start: 1, end: 1, steps: 0 }), 'E_ARG', /steps/);
    const q = randm(2, 3, 51);
    // A compact corpus: its types (data, rows) before q's shape, its shape before its dtype.
    const badQ = { data: new Float32Array(5), rows: 2, cols: 3 };
    sameError(() => dv.similarityMatrix(badQ, { data: [1], rows: 1, cols: 3, dtype: 'f64' } as never), 'E_TYPE', /c.data must be a Uint16Array/);
    sameError(() => dv.similarityMatrix(badQ, { data: new Uint16Array(3), rows: 1, cols: 3, dtype: 'f64' } as never), 'E_SHAPE', /q.data/);
    sameError(() => dv.topK(q, { data: new Uint16Array(2), rows: 1, cols: 3, dtype: 'f64' } as never, 1), 'E_SHAPE', /c.data has length 2/);
    sameError(() => dv.topK(q, { data: new Uint16Array(3), rows: 1, cols: 3, dtype: 'f64' } as never, 1), 'E_ARG', /dtype/);
    sameError(() => dv.topK(q, { data: new Uint16Array(3), rows: 1, cols: 3, dtype: 'f16' } as never, 1.5), 'E_TYPE', /k must be an integer/);
    sameError(() => dv.topK(badQ, { data: new Uint16Array(3), rows: 1, cols: 3, dtype: 'f16' } as never, 'x' as never), 'E_TYPE', /k/);
    sameError(
      () => dv.similarityMatrix(q, { data: new Int8Array(3), rows: 1, cols: 3, dtype: 'i8', scale: new Float32Array(2) } as never),
      'E_SHAPE',
      /scale has length 2/,
    );
    // quantize: types, then shapes, then values, then finiteness.
    sameError(() => dv.quantize(badQ, 5 as never), 'E_TYPE', /dtype must be a string/);
    sameError(() => dv.quantize(badQ, 'i8', 5 as never), 'E_TYPE', /options/);
    sameError(() => dv.quantize(badQ, 'x' as never), 'E_SHAPE');
    sameError(
      () => dv.quantize({ data: Float32Array.from([NaN, 1, 2]), rows: 1, cols: 3 }, 'i8', { scale: 'x' as never }),
      'E_ARG',
      /scale must be 'row' or 'global'/,
    );
    sameError(() => dv.quantize({ data: Float32Array.from([NaN, 1, 2]), rows: 1, cols: 3 }, 'i8'), 'E_NON_FINITE');
  });

  it('wassersteinRegularizer reports a zero row (E_ARG) before a NaN (E_NON_FINITE)', () => {
    const a = randm(4, 3, 61);
    a.data[0] = NaN;
    a.data.fill(0, 6, 9);
    const b = randm(4, 3, 62);
    sameError(() => dv.wassersteinRegularizer(a, b), 'E_ARG', /a has a zero-norm row 2/);
    const c = randm(4, 3, 63);
    c.data[4] = Infinity;
    sameError(() => dv.wassersteinRegularizer(c, b), 'E_NON_FINITE', /Infinity at index 4/);
  });

  it('i8 quantization rounds half to even', () => {
    // max |x| = 127 gives scale 1, so x / scale is x itself.
    const m = { data: Float32Array.from([127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 126.5, -126.5, 0.49999997]), rows: 1, cols: 11 };
    const q = dv.quantize(m, 'i8');
    expect(q.scale).toEqual(Float32Array.from([1]));
    expect(Array.from(q.data)).toEqual([127, 0, 2, 2, 0, -2, -2, 4, 126, -126, 0]);
  });

  it('infoNCE with a subnormal temperature is finite on both backends', () => {
    const k = { data: Float32Array.from([1, 0, 0, 1, 0.6, 0.8]), rows: 3, cols: 2 };
    for (const b of BACKENDS) {
      dv.setBackend(b);
      for (const tau of [1e-320, 1e-300, 1e-45, 1e-30]) {
        for (const normalize of [false, true]) {
          const r = dv.infoNCE(k, k, { temperature: tau, normalize });
          expect(r.loss, `${b} τ=${tau}`).toBe(0);
          expect(r.gradQ.data.every((g) => g === 0)).toBe(true);
          expect(r.gradKeys.data.every((g) => g === 0)).toBe(true);
        }
        // With a wrong positive the loss is (s_max − s_pos)/τ: +∞ once past the double range, never NaN.
        const r = dv.infoNCE(k, k, { temperature: tau, positives: new Uint32Array([1, 0, 0]) });
        expect(Number.isNaN(r.loss)).toBe(false);
        expect(r.loss).toBeGreaterThan(0);
        const q = randm(3, 2, 71);
        const lq = dv.infoNCE(q, k, { temperature: tau, logQ: Float32Array.from([0.5, -1, 2]) });
        expect(Number.isNaN(lq.loss)).toBe(false);
      }
    }
    // NT-Xent and softmaxProbabilities hold their logits the same way.
    const a = { data: Float32Array.from([1, 0, 0, 1]), rows: 2, cols: 2 };
    for (const b of BACKENDS) {
      dv.setBackend(b);
      for (const tau of [1e-320, 1e-40]) {
        const r = dv.ntXent(a, a, { temperature: tau });
        expect(r.loss, `${b} τ=${tau}`).toBe(0);
        expect([...r.gradA.data, ...r.gradB.data].every((g) => g === 0)).toBe(true);
        expect(Array.from(dv.softmaxProbabilities(Float32Array.from([1, 0]), a, tau))).toEqual([1, 0]);
        const sp = dv.softmaxProbabilities(Float32Array.from([0.5, 0.5]), a, tau);
        expect(Array.from(sp)).toEqual([0.5, 0.5]);
      }
    }
    dv.setBackend('auto');
    // Moderate temperatures are unchanged by the scaled form: native and reference agree.
    const q = randm(4, 5, 72);
    const keys = randm(6, 5, 73);
    for (const tau of [0.05, 1, 3]) {
      const o = { temperature: tau, logQ: randn(6, 74) };
      close(dv.infoNCE(q, keys, o).loss, ref.infoNCE(q, keys, o).loss, 1e-5, 1e-6);
      close(dv.infoNCE(q, keys, o).gradQ.data, ref.infoNCE(q, keys, o).gradQ.data, 1e-4, 1e-6);
    }
  });
});

describe('contract: cosinePValue for huge d', () => {
  // P(cos ≥ z/√d) at d = 2^53 − 1, from mpmath quadrature of the density at 40 digits; these
  // are the normal tail Q(z) to ~1e-16 (s·√d ~ N(0, 1) as d → ∞).
  const D = Number.MAX_SAFE_INTEGER;
  const WANT: Array<[number, number]> = [
    [1e-9, 0.49999999960105773],
    [0.3, 0.3820885778110474],
    [1, 0.15865525393145707],
    [2, 0.0227501319481792],
    [5, 2.866515718791895e-7],
    [10, 7.619853024158468e-24],
  ];

  it('matches the normal limit on both backends and never loops for long', () => {
    for (const b of BACKENDS) {
      dv.setBackend(b);
      for (const [z, want] of WANT) {
        const s = z / Math.sqrt(D);
        close(dv.cosinePValue(s, D), want, 1e-11, 0);
        close(dv.cosinePValue(-s, D), 1 - want, 1e-11, 0);
        close(dv.cosinePValue(s, D, { tail: 'two-sided' }), Math.min(1, 2 * want), 1e-11, 0);
      }
      // 1e-17 at d = 2^53: z = 1e-17·√d ≈ 9.5e-10 and Q(z) = ½ − z/√(2π) to O(z³).
      close(dv.cosinePValue(1e-17, D), 0.5 - (1e-17 * Math.sqrt(D)) / Math.sqrt(2 * Math.PI), 0, 1e-14);
      expect(dv.cosinePValue(0.5, 1e12)).toBe(0);
      expect(dv.cosinePValue(-0.5, 1e12)).toBe(1);
    }
    for (const d of [99_999, 100_000, 100_001, 1e6, 1e9, 1e12]) {
      for (const z of [0, 0.2, 1, 3, 8]) {
        const s = z / Math.sqrt(d);
        dv.setBackend('native');
        const n = dv.cosinePValue(s, d);
        dv.setBackend('reference');
        close(n, dv.cosinePValue(s, d), 1e-12, 0);
      }
    }
    // The continued fraction (d < 1e5) and the asymptotic form (d ≥ 1e5) both match mpmath
    // quadrature where they meet (s = z/√1e5).
    const MEET: Array<[number, number, number]> = [
      [0.5, 0.3085396291307546, 0.3085387489560229],
      [2, 0.022750401901324324, 0.02274986198086092],
      [6, 9.837656998540904e-10, 9.835839295209427e-10],
    ];
    for (const [z, below, at] of MEET) {
      for (const b of BACKENDS) {
        dv.setBackend(b);
        close(dv.cosinePValue(z / Math.sqrt(1e5), 99_999), below, 1e-11, 0);
        close(dv.cosinePValue(z / Math.sqrt(1e5), 100_000), at, 1e-11, 0);
      }
    }
  });

  it('d must be below 2^53 (E_ARG on both backends), and 1e34 no longer hangs', () => {
    sameError(() => dv.cosinePValue(1e-17, 1e34), 'E_ARG', /cosinePValue: d must be < 2\^53, got 1e\+34/);
    sameError(() => dv.cosinePValue(0.5, 1e30), 'E_ARG', /d must be < 2\^53/);
    sameError(() => dv.cosinePValue(0.5, 2 ** 53), 'E_ARG');
    sameError(() => dv.cosinePValue(0.5, Infinity), 'E_TYPE', /d must be an integer/);
  });
});

describe('contract: environment variables', () => {
  const index = join(__dirname, '..', 'dist', 'index.js');
  function child(env: Record<string, string>): { status: number | null; out: string } {
    const code = `try { const dv = require(${JSON.stringify(index)}); console.log('OK ' + dv.backendInfo().backend + ' ' + dv.backendInfo().threads); } catch (e) { console.log('ERR ' + e.name + ' ' + e.code + ' ' + e.message); }`;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...process.env, DENSEVEC_BACKEND: '', DENSEVEC_THREADS: '', ...env } });
    return { status: r.status, out: r.stdout.trim() };
  }

  it('DENSEVEC_BACKEND and DENSEVEC_THREADS are validated at load, naming the variable', () => {
    const bogus = child({ DENSEVEC_BACKEND: 'bogus' });
    expect(bogus.out).toMatch(/^ERR DensevecError E_ARG densevec: DENSEVEC_BACKEND must be 'auto', 'native', 'cuda' or 'reference', got 'bogus'/);
    const abc = child({ DENSEVEC_THREADS: 'abc' });
    expect(abc.out).toMatch(/^ERR DensevecError E_ARG densevec: DENSEVEC_THREADS must be an integer in \[1, 1024\], got 'abc'/);
    for (const t of ['0', '-1', '1.5', '2000', '2x', ' 2', '1e1'])
      expect(child({ DENSEVEC_THREADS: t }).out).toMatch(/^ERR DensevecError E_ARG .*DENSEVEC_THREADS/);
    expect(child({ DENSEVEC_THREADS: '2' }).out).toBe('OK native 2');
    expect(child({ DENSEVEC_BACKEND: 'reference' }).out).toBe('OK reference 1');
    expect(child({}).out).toMatch(/^OK native \d+$/);
  });
});

describe('contract: the reference backend runs the …Async twins in a worker thread', () => {
  it('a timer fires while a long topKAsync runs, and the result equals the synchronous one', async () => {
    dv.setBackend('reference');
    const q = randm(64, 64, 81);
    const c = randm(4000, 64, 82);
    let settled = false;
    const p = dv.topKAsync(q, c, 5).then((r) => {
      settled = true;
      return r;
    });
    // On the calling thread the whole search would finish before any timer could run.
    await new Promise((r) => setTimeout(r, 0));
    expect(settled).toBe(false);
    const got = await p;
    const want = ref.topK(q, c, 5);
    expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
    expect(Array.from(got.scores)).toEqual(Array.from(want.scores));
  });

  it('results and errors cross the thread intact', async () => {
    dv.setBackend('reference');
    const q = randm(5, 4, 91);
    const keys = randm(7, 4, 92);
    const a = await dv.infoNCEAsync(q, keys, { temperature: 0.2, logQ: randn(7, 93), normalize: true });
    const w = ref.infoNCE(q, keys, { temperature: 0.2, logQ: randn(7, 93), normalize: true });
    expect(a.loss).toBe(w.loss);
    expect(Array.from(a.gradKeys.data)).toEqual(Array.from(w.gradKeys.data));
    const z = { data: q.data.slice(), rows: 5, cols: 4 };
    z.data.fill(0, 4, 8);
    const e = await rejected(dv.ntXentAsync(z, q, { temperature: 0.5 }));
    expect(e).toEqual({ code: 'E_ARG', message: 'ntXent: a row 1 has zero norm and cannot be normalized' });
    const st = await dv.similarityStatsAsync(q, { sample: { pairs: 50, seed: 3 } });
    expect(st).toEqual(ref.similarityStats(q, { sample: { pairs: 50, seed: 3 } }));
    const y = { data: keys.data.subarray(0, 20), rows: 5, cols: 4 };
    const pr = await dv.procrustesAsync(q, y);
    expect(Array.from(pr.rotation.data)).toEqual(Array.from(ref.procrustes(q, y).rotation.data));
  });
});

describe('contract: one wording on both backends', () => {
  it('a sample of messages is the same text on native and reference', () => {
    const q = randm(3, 4, 101);
    const nanQ = { ...q, data: q.data.slice() };
    nanQ.data[5] = NaN;
    const infQ = { ...q, data: q.data.slice() };
    infQ.data[2] = -Infinity;
    const zero = { ...q, data: q.data.slice() };
    zero.data.fill(0, 4, 8);
    const lab = new Uint32Array([0, 1, 9]);
    const cases: Array<[() => unknown, string, string]> = [
      [() => dv.cosine(new Float32Array(4), new Float32Array(3)), 'E_SHAPE', 'cosine: a has length 4 but b has length 3'],
      [
        () => dv.similarityMatrix({ data: new Float32Array(3), rows: 1, cols: 2 }, q),
        'E_SHAPE',
        'similarityMatrix: q.data has length 3 but rows * cols = 1 * 2 = 2',
      ],
      [() => dv.infoNCE(infQ, q, { temperature: 1 }), 'E_NON_FINITE', 'infoNCE: q has a non-finite value -Infinity at index 2'],
      [() => dv.infoNCE(q, nanQ, { temperature: 1 }), 'E_NON_FINITE', 'infoNCE: keys has a non-finite value NaN at index 5'],
      [() => dv.infoNCE(q, q, { temperature: 1, positives: lab }), 'E_ARG', 'infoNCE: positives[2] = 9 is out of range [0, 3) (rows of keys)'],
      [() => dv.infoNCE(zero, q, { temperature: 1, normalize: true }), 'E_ARG', 'infoNCE: q row 1 has zero norm and cannot be normalized'],
      [() => dv.ntXent(q, infQ, { temperature: 1 }), 'E_NON_FINITE', 'ntXent: b has a non-finite value -Infinity at index 2'],
      [() => dv.marginSoftmax(q, q, lab, { kind: 'arcface' }), 'E_ARG', 'marginSoftmax: labels[2] = 9 is out of range [0, 3) (rows of prototypes)'],
      [
        () => dv.marginSoftmax(q, nanQ, new Uint32Array(3), { kind: 'arcface' }),
        'E_NON_FINITE',
        'marginSoftmax: prototypes has a non-finite value NaN at index 5',
      ],
      [() => dv.labelSmoothingCrossEntropy(q, lab, 0.1), 'E_ARG', 'labelSmoothingCrossEntropy: labels[2] = 9 is out of range [0, 4) (columns of logits)'],
      [
        () => dv.labelSmoothingCrossEntropy(infQ, new Uint32Array(3), 0.1),
        'E_NON_FINITE',
        'labelSmoothingCrossEntropy: logits has a non-finite value -Infinity at index 2',
      ],
      [() => dv.normPenalty(nanQ, 1), 'E_NON_FINITE', 'normPenalty: m has a non-finite value NaN at index 5'],
      [() => dv.similarityStats(infQ), 'E_NON_FINITE', 'similarityStats: m has a non-finite value -Infinity at index 2'],
      [() => dv.procrustes(q, infQ), 'E_NON_FINITE', 'procrustes: y has a non-finite value -Infinity at index 2'],
      // The native path finds non-finite values in its own pass: same message, x before y.
      [() => dv.procrustes(nanQ, infQ), 'E_NON_FINITE', 'procrustes: x has a non-finite value NaN at index 5'],
      [() => dv.embeddingDrift(infQ, q), 'E_NON_FINITE', 'embeddingDrift: a has a non-finite value -Infinity at index 2'],
      [() => dv.sparsity(nanQ), 'E_NON_FINITE', 'sparsity: m has a non-finite value NaN at index 5'],
      [() => dv.mismatchScore(q, infQ), 'E_NON_FINITE', 'mismatchScore: b has a non-finite value -Infinity at index 2'],
      [() => dv.softmaxProbabilities(q.data.subarray(0, 4), infQ, 1), 'E_NON_FINITE', 'softmaxProbabilities: ys has a non-finite value -Infinity at index 2'],
      [
        () => dv.sphericalTriangle(new Float32Array(3), Float32Array.from([1, 0, 0]), Float32Array.from([0, 1, 0])),
        'E_ARG',
        'sphericalTriangle: x is the zero vector',
      ],
      [() => new dv.BatchNorm(4).forward(infQ), 'E_NON_FINITE', 'BatchNorm.forward: m has a non-finite value -Infinity at index 2'],
      [() => dv.topK(q, q, 4), 'E_ARG', 'topK: k must be in [1, 3] (rows of the corpus), got 4'],
      [() => dv.randomUnitVectors(2 ** 20, 2 ** 11, 1), 'E_ARG', 'randomUnitVectors: n * d = 1048576 * 2048 exceeds the limit of 1073741824 values'],
    ];
    for (const [f, code, message] of cases) {
      for (const b of BACKENDS) {
        dv.setBackend(b);
        expect({ backend: b, ...caught(f) }).toEqual({ backend: b, code, message });
      }
    }
  });
});
