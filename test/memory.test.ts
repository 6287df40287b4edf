/**
 * Memory: requests far larger than memory throw E_ARG on both backends and never abort the
 * process; size arithmetic on dimensions never overflows; buffers returned in a synchronous loop
 * are freed as it runs.
 *
 * The huge requests run in a child process (test/memory-child.cjs) under a hard address-space
 * limit (`prlimit --as`, or `ulimit -v` through sh), so every one of them is refused by the
 * allocator at once and an abort would only kill the child. Without either tool the child runs
 * the loop part only and the test says why.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dv, native, randm } from './helpers';

const child = path.join(__dirname, 'memory-child.cjs');

/**
 * Address-space limit of the child: room for Node, V8 and the addon with two threads (about
 * 1.1 GB of mappings here), below every huge request (the smallest is randomUnitVectors at its
 * documented maximum, 2^30 float32 values = 4 GiB).
 */
const LIMIT_BYTES = 3 * 1024 ** 3;

/** Fewer threads and malloc arenas keep the child's address space small on many-core machines. */
const childEnv = {
  ...process.env,
  DENSEVEC_THREADS: '2',
  MALLOC_ARENA_MAX: '2',
  UV_THREADPOOL_SIZE: '2',
};

const nodeArgs = ['--v8-pool-size=2', child];

/** How to run a command under the limit: prlimit, else sh's ulimit -v, else null (and why). */
function limiter(): { cmd: string; args: string[] } | { why: string } {
  const p = spawnSync('prlimit', ['--version'], { encoding: 'utf8' });
  if (p.status === 0) {
    return { cmd: 'prlimit', args: [`--as=${LIMIT_BYTES}`, process.execPath, ...nodeArgs] };
  }
  const kb = Math.floor(LIMIT_BYTES / 1024);
  const s = spawnSync('sh', ['-c', `ulimit -v ${kb} && ulimit -v`], { encoding: 'utf8' });
  if (s.status === 0 && s.stdout.trim() === String(kb)) {
    const quoted = [process.execPath, ...nodeArgs].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    return { cmd: 'sh', args: ['-c', `ulimit -v ${kb} && exec ${quoted} "$@"`, 'sh'] };
  }
  return { why: `neither prlimit (${p.error?.message ?? `exit ${p.status}`}) nor sh's ulimit -v is available` };
}

interface Summary {
  ok: boolean;
  huge: { name: string; message: string }[];
  loop: { name: string; calls: number; returnedMB: number; rssGrowthMB: number }[];
  failures: string[];
}

function run(cmd: string, args: string[]): Summary {
  const r = spawnSync(cmd, args, { env: childEnv, encoding: 'utf8', timeout: 240_000, maxBuffer: 16 << 20 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  // Exit code 0 and a summary line: the child survived every request (an abort is 134).
  expect(r.error, out).toBeUndefined();
  expect(r.signal, out).toBeNull();
  expect(r.status, out).toBe(0);
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  const summary = JSON.parse(last) as Summary;
  expect(summary.failures, out).toEqual([]);
  expect(summary.ok).toBe(true);
  return summary;
}

describe('memory', () => {
  it('huge requests throw E_ARG on both backends under a hard address-space limit; result buffers of a sync loop are freed', () => {
    const how = limiter();
    if ('why' in how) {
      // The loop part needs no limit; the huge part cannot run safely without one.
      console.warn(`memory test: the huge-request part is skipped: ${how.why}`);
      const s = run(process.execPath, [...nodeArgs, '--loop']);
      expect(s.loop.length).toBeGreaterThanOrEqual(8);
      return;
    }
    const s = run(how.cmd, [...how.args, '--huge', '--loop']);
    const names = s.huge.map((h) => h.name);
    for (const backend of ['native', 'reference']) {
      for (const f of [
        'similarityMatrix 1e5 x 1e5',
        'similarityMatrix 30000 x 30000',
        'similarityMatrix 1e5 x 1e5 f16 corpus',
        'topK q.rows * k = 1e10',
        'matmul (1e5 x 1)(1 x 1e5)',
        'marginSoftmax N = C = 1e5',
        'marginSoftmax N = C = 30000',
        'marginGeometry C = 30000',
        'procrustes 1 x 100000',
        'wassersteinRegularizer n = 65536',
        'randomUnitVectors n * d = 2^30',
        'similarityMatrixAsync 1e5 x 1e5',
        'topKAsync q.rows * k = 1e10',
        'procrustesAsync 1 x 100000',
        'wassersteinRegularizerAsync n = 65536',
        'marginGeometry C = 1e5',
        'AliasSampler.sample 1e12',
        'AliasSampler.sample 2^31',
        'BatchNorm dim 2^40',
      ]) {
        expect(names).toContain(`${backend} ${f}`);
      }
    }
    expect(names).toContain('native knnClassify q.rows * k = 1e10');
    // The messages name the bytes and, where there is one, the way out.
    const sim = s.huge.find((h) => h.name === 'native similarityMatrix 1e5 x 1e5');
    expect(sim?.message).toMatch(/^similarityMatrix: cannot allocate 40000000000 bytes .*use topK/);
    const pr = s.huge.find((h) => h.name === 'native procrustes 1 x 100000');
    expect(pr?.message).toMatch(/^procrustes: cannot allocate \d+ bytes/);
    // marginSoftmax computes its logits in the returned buffer: that buffer is the one refused.
    const ms = s.huge.find((h) => h.name === 'native marginSoftmax N = C = 1e5');
    expect(ms?.message).toMatch(/^marginSoftmax: cannot allocate 40000000000 bytes \(40.0 GB\) for the N × C logits.*split the batch/);
    const ms30k = s.huge.find((h) => h.name === 'native marginSoftmax N = C = 30000');
    expect(ms30k?.message).toMatch(/^marginSoftmax: cannot allocate 3600000000 bytes \(3.6 GB\) for the N × C logits; split the batch/);
    const mg = s.huge.find((h) => h.name === 'native marginGeometry C = 30000');
    expect(mg?.message).toMatch(/^marginGeometry: cannot allocate 3600000000 bytes .*pass fewer prototypes/);
    // An asynchronous call refuses a result over the typed-array limit before computing it
    // (not after, with the whole result held).
    for (const f of ['similarityMatrixAsync 1e5 x 1e5', 'marginSoftmaxAsync N = C = 1e5']) {
      expect(s.huge.find((h) => h.name === `native ${f}`)?.message, f).toMatch(/more values than a typed array holds \(2\^32\)/);
    }
    expect(s.loop.length).toBeGreaterThanOrEqual(8);
  });
});

describe('size arithmetic on dimensions', () => {
  const big = 2 ** 52 + 1;

  it('the native binding refuses dimensions whose products overflow, with E_SHAPE / E_ARG', () => {
    const q = randm(1, 4, 1);
    const half = new Uint16Array(4);
    const code = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        const m = /^(E_[A-Z_]+)\|/.exec((e as Error).message);
        return m ? m[1] : `not a coded error: ${(e as Error).message}`;
      }
      return 'no error';
    };
    // Compact corpus: c.rows × cols = (2^52 + 1) × 4 does not match the data length, and
    // (2^52 + 1) × 2^20 does not even fit in 64 bits: both are shape errors, never a wrap-around.
    const S = { mode: 'sync' };
    const qm = (rows: number, cols = 4) => ({ data: q.data, rows, cols });
    const f16 = (rows: number) => ({ dtype: 'f16', rows, half });
    expect(code(() => native.similarityMatrix({ q: qm(1), c: f16(big), metric: 'dot' }, S))).toBe('E_SHAPE');
    expect(code(() => native.similarityMatrix({ q: qm(1, 2 ** 20), c: f16(big), metric: 'dot' }, S))).toBe('E_SHAPE');
    expect(code(() => native.topK({ q: qm(1), c: f16(big), k: 1, metric: 'dot' }, S))).toBe('E_SHAPE');
    expect(code(() => native.similarityMatrix({ q: qm(big), c: { dtype: 'f32', rows: 1, f32: q.data }, metric: 'dot' }, S))).toBe('E_SHAPE');
    expect(code(() => native.similarityMatrix({ q: qm(1, 2 ** 40), c: { dtype: 'f32', rows: big, f32: q.data }, metric: 'dot' }, S))).toBe('E_SHAPE');
    expect(code(() => native.matmul({ a: qm(1), b: { data: q.data, rows: 4, cols: big } }, S))).toBe('E_SHAPE');
    expect(code(() => native.randomUnitVectors({ n: 2 ** 52, d: 2 ** 52, seed: 1 }, S))).toBe('E_ARG');
    expect(code(() => native.normalizeRows({ data: q.data, rows: 1, cols: big }))).toBe('E_SHAPE');
  });

  it('a rows getter that changes after validation never crashes the process', () => {
    // Validation may read `rows` (1) before the call reads it again (2^52 + 1); whichever value
    // the backend uses, the outcome is a consistent result or a DensevecError.
    const q = randm(1, 4, 2);
    const c = dv.quantize(randm(1, 4, 3), 'f16');
    let reads = 0;
    const tricky = {
      ...c,
      get rows() {
        reads++;
        return reads === 1 ? 1 : big;
      },
    };
    for (const f of [() => dv.similarityMatrix(q, tricky), () => dv.topK(q, tricky, 1)]) {
      reads = 0;
      let r: unknown;
      try {
        r = f();
      } catch (e) {
        expect(e).toBeInstanceOf(dv.DensevecError);
        expect(['E_SHAPE', 'E_ARG']).toContain((e as InstanceType<typeof dv.DensevecError>).code);
        continue;
      }
      expect(r).toBeDefined();
    }
  });
});

describe('large freed blocks kept for reuse', () => {
  const index = path.join(__dirname, '..', 'dist', 'index.js');
  /** Runs `body` in a child with `env` added; returns its last stdout line as JSON and its stderr. */
  function inChild(env: Record<string, string>, body: string): { out: any; err: string } {
    const code = `const dv = require(${JSON.stringify(index)}); dv.setThreads(2);
const m = (r, c, s) => { const a = new Float32Array(r * c); let x = s; for (let i = 0; i < a.length; i++) { x = (x * 1103515245 + 12345) >>> 0; a[i] = x / 2 ** 32 - 0.5; } return { data: a, rows: r, cols: c }; };
const q = m(1024, 256, 1), k = m(1024, 256, 2);
const call = () => dv.infoNCE(q, k, { temperature: 0.1, normalize: true });
(async () => { ${body} })().catch((e) => { console.log(JSON.stringify({ error: String(e) })); });`;
    const r = spawnSync(process.execPath, ['-e', code], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const last = r.stdout.trim().split('\n').pop() ?? '';
    return { out: JSON.parse(last), err: r.stderr };
  }

  it('are reused by the next call without changing its bits, and releaseMemory returns them', () => {
    // A 1024 × 1024 infoNCE frees its 4 MiB of logits and 1 MiB normalized rows at the end.
    const { out } = inChild(
      {},
      `dv.backendInfo(); const a = call(); const kept = dv.backendInfo().keptMemory;
const b = call();
const same = a.loss === b.loss && Buffer.compare(Buffer.from(a.gradQ.data.buffer), Buffer.from(b.gradQ.data.buffer)) === 0
  && Buffer.compare(Buffer.from(a.gradKeys.data.buffer), Buffer.from(b.gradKeys.data.buffer)) === 0;
dv.releaseMemory();
console.log(JSON.stringify({ kept, same, after: dv.backendInfo().keptMemory }));`,
    );
    expect(out.kept.blocks).toBeGreaterThanOrEqual(1);
    expect(out.kept.bytes).toBeGreaterThanOrEqual(4 * 2 ** 20);
    expect(out.same).toBe(true);
    expect(out.after).toEqual({ blocks: 0, bytes: 0 });
  });

  it('are returned after DENSEVEC_KEEP_MS of idleness, capped by DENSEVEC_KEEP_MB, and not kept with 0', () => {
    // backendInfo() first: its first call probes CUDA, which must not eat into the keep time.
    const idle = inChild(
      { DENSEVEC_KEEP_MS: '1000' },
      `dv.backendInfo(); call(); const kept = dv.backendInfo().keptMemory; await new Promise((r) => setTimeout(r, 4000));
console.log(JSON.stringify({ kept, after: dv.backendInfo().keptMemory }));`,
    );
    expect(idle.out.kept.blocks).toBeGreaterThanOrEqual(1);
    expect(idle.out.after).toEqual({ blocks: 0, bytes: 0 });
    const off = inChild({ DENSEVEC_KEEP_MS: '0' }, `call(); console.log(JSON.stringify(dv.backendInfo().keptMemory));`);
    expect(off.out).toEqual({ blocks: 0, bytes: 0 });
    const capped = inChild({ DENSEVEC_KEEP_MB: '3' }, `call(); console.log(JSON.stringify(dv.backendInfo().keptMemory));`);
    expect(capped.out.bytes).toBeGreaterThan(0);
    expect(capped.out.bytes).toBeLessThanOrEqual(3 * 2 ** 20);
  });

  it('a malformed setting is named in a warning and the default applies', () => {
    const r = inChild({ DENSEVEC_KEEP_MS: 'soon' }, `call(); console.log(JSON.stringify(dv.backendInfo().keptMemory));`);
    expect(r.err).toMatch(/DENSEVEC_KEEP_MS must be an integer in \[0, 86400000\], got 'soon'; using 10000/);
    expect(r.out.blocks).toBeGreaterThanOrEqual(1);
  });
});
