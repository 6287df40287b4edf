/**
 * densevec/bullmq: sharded exact top-k and the data-parallel InfoNCE step, on a redis-server
 * started here on a free loopback port. Without redis-server the Redis parts print why they did
 * not run (DENSEVEC_REQUIRE_REDIS=1 makes them mandatory, as in CI).
 */
import { type ChildProcess, execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { close, dv, randm } from './helpers';

const require = createRequire(import.meta.url);
const bull = require('../dist/bullmq.js') as typeof import('../dist/bullmq');
const { startRedis } = require('../examples/lib/redis.js') as { startRedis: () => Promise<{ url: string; port: number; proc: ChildProcess }> };

type M = { data: Float32Array; rows: number; cols: number };
const slice = (m: M, r0: number, r1: number): M => ({ data: m.data.subarray(r0 * m.cols, r1 * m.cols), rows: r1 - r0, cols: m.cols });

const REQUIRE = process.env.DENSEVEC_REQUIRE_REDIS === '1';
const hasRedis = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).status === 0;
const NO_REDIS = 'redis-server is not installed (apt-get install redis-server); the Redis tests of densevec/bullmq did not run';

let redis: ChildProcess | null = null;
let port = 0;
const dir = mkdtempSync(join(tmpdir(), 'densevec-sharded-'));

beforeAll(async () => {
  if (!hasRedis) return;
  ({ proc: redis, port } = await startRedis());
});

afterAll(() => {
  redis?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Whether the Redis tests run; prints why not (or fails when they are required). */
function redisReady(): boolean {
  if (hasRedis) return true;
  if (REQUIRE) expect.fail(`DENSEVEC_REQUIRE_REDIS=1 but ${NO_REDIS}`);
  console.warn(NO_REDIS);
  return false;
}

const connection = () => ({ host: '127.0.0.1', port, maxRetriesPerRequest: null });

describe('data-parallel InfoNCE: combining per-part results', () => {
  it('the B_p / B weighted sum of the parts equals infoNCE on the whole batch', () => {
    const keys = randm(40, 12, 1);
    const q = randm(30, 12, 2);
    const positives = Uint32Array.from({ length: 30 }, (_, i) => (i * 7) % 40);
    for (const normalize of [false, true]) {
      const opts = { temperature: 0.2, normalize };
      const whole = dv.infoNCE(q, keys, { ...opts, positives });
      const cuts = [0, 4, 19, 30];
      const parts = cuts.slice(1).map((e, p) => dv.infoNCE(slice(q, cuts[p], e), keys, { ...opts, positives: positives.subarray(cuts[p], e) }));
      const got = bull.combineInfoNCE(parts, [4, 15, 11]);
      close(got.loss, whole.loss, 1e-5, 1e-6);
      close(got.gradQ.data, whole.gradQ.data, 1e-4, 1e-6);
      close(got.gradKeys.data, whole.gradKeys.data, 1e-4, 1e-6);
      expect([got.gradQ.rows, got.gradKeys.rows]).toEqual([30, 40]);
      // Unweighted averaging of the parts (a common mistake) is measurably different.
      expect(Math.abs((parts[0].loss + parts[1].loss + parts[2].loss) / 3 - whole.loss)).toBeGreaterThan(1e-4);
    }
  });
});

describe('densevec/bullmq on Redis', () => {
  it('searchSharded equals topK over the concatenated shards exactly (f32 and compact shards)', async () => {
    if (!redisReady()) return;
    const c = randm(3000, 16, 3);
    c.data.copyWithin(2900 * 16, 0, 100 * 16); // exact ties across shards
    const q = randm(50, 16, 4);
    const cuts = [0, 1000, 1001, 3000];
    const files: Record<number, string> = {};
    const c16 = dv.quantize(c, 'f16');
    const files16: Record<number, string> = {};
    for (let s = 0; s + 1 < cuts.length; s++) {
      files[s] = join(dir, `s${s}.dvc`);
      dv.writeCorpus(files[s], slice(c, cuts[s], cuts[s + 1]));
      files16[s] = join(dir, `h${s}.dvc`);
      dv.writeCorpus(files16[s], { ...c16, data: c16.data.subarray(cuts[s] * 16, cuts[s + 1] * 16), rows: cuts[s + 1] - cuts[s] });
    }
    const w1 = bull.createShardWorker({ connection: connection(), shards: files, prefix: 'f32', train: false });
    const w2 = bull.createShardWorker({ connection: connection(), shards: files16, prefix: 'f16', train: false });
    try {
      for (const metric of ['dot', 'cosine', 'l2sq'] as const) {
        const got = await bull.searchSharded(q, 10, { connection: connection(), shards: 3, prefix: 'f32', metric, batchRows: 16 });
        const want = dv.topK(q, c, 10, { metric });
        expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
        expect(Array.from(got.scores)).toEqual(Array.from(want.scores));
      }
      const g16 = await bull.searchSharded(q, 5, { connection: connection(), shards: 3, prefix: 'f16' });
      expect(Array.from(g16.indices)).toEqual(Array.from(dv.topK(q, c16, 5).indices));
      // A coordinator keeps its connections across calls.
      const co = bull.createCoordinator({ connection: connection(), prefix: 'f32' });
      try {
        for (const k of [1, 7]) {
          const r = await co.searchSharded(q, k, { shards: 3, metric: 'l2sq', batchRows: 20 });
          expect(Array.from(r.indices)).toEqual(Array.from(dv.topK(q, c, k, { metric: 'l2sq' }).indices));
        }
      } finally {
        await co.close();
      }
      // A shard nobody serves: a clear error after the timeout.
      await expect(bull.searchSharded(q, 5, { connection: connection(), shards: 4, prefix: 'f32', timeoutMs: 1500 })).rejects.toMatchObject({
        code: 'E_BACKEND',
      });
    } finally {
      await w1.close();
      await w2.close();
    }
  });

  describe('a job whose event does not arrive still finishes', () => {
    // Jobs are done by a worker in this process; the events that tell the coordinator so are
    // delayed or dropped here, as a slow or reconnecting event stream would.
    type Bq = {
      QueueEvents: { prototype: { emit: (...a: unknown[]) => boolean } };
      RedisQueueBackend: { prototype: { readEvents: (...a: unknown[]) => Promise<unknown> } };
    };
    const bq = require('bullmq') as Bq;
    const setup = (prefix: string) => {
      const c = randm(600, 8, 11);
      const files: Record<number, string> = {};
      for (let s = 0; s < 2; s++) {
        files[s] = join(dir, `${prefix}${s}.dvc`);
        dv.writeCorpus(files[s], slice(c, s * 300, (s + 1) * 300));
      }
      return { c, q: randm(12, 8, 12), w: bull.createShardWorker({ connection: connection(), shards: files, prefix, train: false }) };
    };

    it('events written before the coordinator first reads its stream are not lost', async () => {
      if (!redisReady()) return;
      const { c, q, w } = setup('late');
      const proto = bq.RedisQueueBackend.prototype;
      const read = proto.readEvents;
      // Every read of the event stream starts 700 ms late: a reader that starts at '$' (only
      // events after its first read) would never see the completions of these fast jobs.
      proto.readEvents = async function (this: unknown, ...a: unknown[]) {
        await new Promise((r) => setTimeout(r, 700));
        return read.apply(this, a);
      };
      try {
        for (let round = 0; round < 2; round++) {
          const got = await bull.searchSharded(q, 4, { connection: connection(), shards: 2, prefix: 'late', metric: 'dot', pollMs: 600000, timeoutMs: 8000 });
          expect(Array.from(got.indices)).toEqual(Array.from(dv.topK(q, c, 4, { metric: 'dot' }).indices));
        }
      } finally {
        proto.readEvents = read;
        await w.close();
      }
    });

    it('lost completion events: the job is looked up after pollMs, and without the lookups the call times out', async () => {
      if (!redisReady()) return;
      const { c, q, w } = setup('lost');
      const proto = bq.QueueEvents.prototype;
      const emit = proto.emit;
      proto.emit = function (this: unknown, ev: unknown, ...a: unknown[]) {
        if (typeof ev === 'string' && ev.startsWith('completed')) return false;
        return emit.call(this, ev, ...a);
      };
      try {
        const t0 = Date.now();
        const got = await bull.searchSharded(q, 4, { connection: connection(), shards: 2, prefix: 'lost', metric: 'dot', pollMs: 200, timeoutMs: 20000 });
        expect(Array.from(got.indices)).toEqual(Array.from(dv.topK(q, c, 4, { metric: 'dot' }).indices));
        expect(Array.from(got.scores)).toEqual(Array.from(dv.topK(q, c, 4, { metric: 'dot' }).scores));
        expect(Date.now() - t0).toBeLessThan(15000);
        await expect(
          bull.searchSharded(q, 4, { connection: connection(), shards: 2, prefix: 'lost', metric: 'dot', pollMs: 600000, timeoutMs: 2000 }),
        ).rejects.toMatchObject({ code: 'E_BACKEND' });
      } finally {
        proto.emit = emit;
        await w.close();
      }
      for (const bad of [{ pollMs: 0 }, { pollMs: 2 ** 31 }, { timeoutMs: -1 }, { timeoutMs: Number.NaN }]) {
        await expect(bull.searchSharded(q, 4, { connection: connection(), shards: 2, prefix: 'lost', ...bad })).rejects.toMatchObject({ code: 'E_ARG' });
      }
    });
  });

  it('an onProgress that throws ends the call at once with E_BACKEND (no crash, no wait for the timeout)', async () => {
    if (!redisReady()) return;
    const c = randm(400, 8, 21);
    const file = join(dir, 'progress0.dvc');
    dv.writeCorpus(file, c);
    const w = bull.createShardWorker({ connection: connection(), shards: { 0: file }, prefix: 'progress', train: false });
    try {
      const q = randm(9, 8, 22);
      const t0 = Date.now();
      const onProgress = () => {
        throw new Error('stop here');
      };
      await expect(
        bull.searchSharded(q, 3, { connection: connection(), shards: 1, prefix: 'progress', batchRows: 3, timeoutMs: 30000, onProgress }),
      ).rejects.toMatchObject({ code: 'E_BACKEND', message: expect.stringMatching(/stop here/) });
      expect(Date.now() - t0).toBeLessThan(20000);
      // The same queues still serve a call whose onProgress behaves.
      const seen: number[] = [];
      const got = await bull.searchSharded(q, 3, { connection: connection(), shards: 1, prefix: 'progress', batchRows: 3, onProgress: (d) => seen.push(d) });
      expect(Array.from(got.indices)).toEqual(Array.from(dv.topK(q, c, 3).indices));
      expect(seen).toEqual([1, 2, 3]);
    } finally {
      await w.close();
    }
  });

  it('infoNCEDataParallel equals the single-process step', async () => {
    if (!redisReady()) return;
    const w = bull.createShardWorker({ connection: connection(), shards: {}, prefix: 'train' });
    try {
      const keys = randm(24, 8, 5);
      const q = randm(24, 8, 6);
      const opts = { temperature: 0.1, normalize: true };
      const got = await bull.infoNCEDataParallel([{ q: slice(q, 0, 10) }, { q: slice(q, 10, 24) }], keys, opts, { connection: connection(), prefix: 'train' });
      const want = dv.infoNCE(q, keys, opts);
      close(got.loss, want.loss, 1e-5, 1e-6);
      close(got.gradQ.data, want.gradQ.data, 1e-4, 1e-6);
      close(got.gradKeys.data, want.gradKeys.data, 1e-4, 1e-6);
    } finally {
      await w.close();
    }
  });

  it('examples/sharded-search.js --workers 3 --check: a worker killed mid-run, still identical', async () => {
    if (!redisReady()) return;
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['examples/sharded-search.js', '--workers', '3', '--check', '--rows', '30000', '--queries', '300'],
        { env: { ...process.env, REDIS_URL: `redis://127.0.0.1:${port}` }, timeout: 110000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    const lines = out.stdout.trim().split('\n');
    expect(out.stdout).toMatch(/killed worker 0/);
    expect(lines[lines.length - 1], out.stderr).toBe('sharded top-k identical to single-process: yes');
    expect(out.code).toBe(0);
  });
});
