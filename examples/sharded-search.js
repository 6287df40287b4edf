#!/usr/bin/env node
/**
 * Sharded exact top-k on BullMQ + Redis, with a worker killed mid-run.
 *
 *   node examples/sharded-search.js --workers 3 --check
 *
 * Writes a random corpus as one corpus file per shard, starts --workers worker processes (each
 * opens two shards with openCorpus, so every shard has a replica), fans the queries out as jobs
 * with searchSharded, kills one worker (SIGKILL) once a third of the jobs are done, and merges
 * the shard results with mergeTopK. BullMQ moves the killed worker's job back to the queue when
 * its lock expires; another replica finishes it. With --check, compares with topK on the whole
 * corpus in this process and prints as its last line
 *   sharded top-k identical to single-process: yes   (or: no, and exits with 1)
 *
 * Redis: REDIS_URL if set; else a server answering on 127.0.0.1:6379; else a redis-server
 * started here on a free loopback port (--save '' --appendonly no) and stopped at the end.
 * Needs a built package and the optional dependencies bullmq and ioredis.
 */
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { pingRedis, startRedis, stopProcess } = require('./lib/redis.js');

const HELP = `Usage: node examples/sharded-search.js [options]
  --workers N   worker processes (default 3; also the number of shards)
  --rows N      corpus rows (default 60000)   --dim N   dimensions (default 64)
  --queries N   queries (default 600)        --k N     neighbours (default 10)
  --batch N     queries per job (default 20)  --metric dot|cosine|l2sq (default cosine)
  --no-kill     do not kill a worker          --check   compare with single-process topK
  --seed N      data seed (default 1)
  --lock-ms N   job lock of the workers: how soon a dead worker's job is retried (default 5000)`;

function parseArgs(argv) {
  const o = { workers: 3, rows: 60000, dim: 64, queries: 600, k: 10, batch: 20, metric: 'cosine', kill: true, check: false, seed: 1 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} needs a positive integer, got ${argv[i]}`);
      return v;
    };
    if (a === '--workers') o.workers = num();
    else if (a === '--rows') o.rows = num();
    else if (a === '--dim') o.dim = num();
    else if (a === '--queries') o.queries = num();
    else if (a === '--k') o.k = num();
    else if (a === '--batch') o.batch = num();
    else if (a === '--seed') o.seed = num();
    else if (a === '--metric') o.metric = argv[++i];
    else if (a === '--check') o.check = true;
    else if (a === '--no-kill') o.kill = false;
    else if (a === '--serve') o.serve = argv[++i];
    else if (a === '--redis') o.redis = argv[++i];
    else if (a === '--prefix') o.prefix = argv[++i];
    else if (a === '--lock-ms') o.lockMs = num();
    else if (a === '--help' || a === '-h') o.help = true;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

function load() {
  const root = path.join(__dirname, '..');
  return { dv: require(path.join(root, 'dist', 'index.js')), bull: require(path.join(root, 'dist', 'bullmq.js')) };
}

/** ioredis-style options from a redis:// URL. */
function connectionFrom(url) {
  const u = new URL(url);
  const c = { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379), maxRetriesPerRequest: null };
  if (u.password) c.password = decodeURIComponent(u.password);
  if (u.username) c.username = decodeURIComponent(u.username);
  if (u.pathname && u.pathname.length > 1) c.db = Number(u.pathname.slice(1));
  return c;
}

/** REDIS_URL, a server on 127.0.0.1:6379, or one started here (returned with its process). */
async function redis() {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, proc: null };
  if (await pingRedis('127.0.0.1', 6379)) return { url: 'redis://127.0.0.1:6379', proc: null };
  const { url, proc } = await startRedis();
  return { url, proc };
}

/** Seeded uniform data in [-1, 1) (mulberry32). */
function randomMatrix(rows, cols, seed) {
  let a = seed >>> 0;
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    data[i] = ((t ^ (t >>> 14)) >>> 0) / 2147483648 - 1;
  }
  return { data, rows, cols };
}

/** Worker mode: serve the shards given as "s:path,s:path" until killed. */
async function serve(o) {
  const { bull } = load();
  const shards = {};
  for (const part of o.serve.split(',')) {
    const at = part.indexOf(':');
    shards[Number(part.slice(0, at))] = part.slice(at + 1);
  }
  const w = bull.createShardWorker({
    connection: connectionFrom(o.redis),
    prefix: o.prefix,
    shards,
    // Quick recovery for the demonstration: a dead worker's lock expires after 5 s (--lock-ms); a
    // shorter lock lets a worker starved of CPU on a busy machine lose jobs it is still running.
    workerOptions: { lockDuration: o.lockMs ?? 5000, stalledInterval: Math.max(500, Math.floor((o.lockMs ?? 5000) / 3)), maxStalledCount: 5 },
  });
  for (const x of w.workers) {
    x.on('failed', (_job, e) => console.error(`worker ${process.pid}: job failed: ${e?.message}`));
    x.on('error', (e) => process.env.DENSEVEC_DEBUG && console.error(`worker ${process.pid}: ${e?.message}`));
  }
  process.send?.('ready');
  const stop = async () => {
    setTimeout(() => process.exit(0), 2000).unref();
    await w.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('disconnect', stop);
  return 'serving';
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.help) return console.log(HELP);
  if (o.serve) return serve(o);
  const { dv, bull } = load();
  const S = o.workers;
  const cleanups = [];
  const cleanup = async () => {
    for (const f of cleanups.reverse()) {
      try {
        await f();
      } catch {
        /* already gone */
      }
    }
  };
  try {
    const r = await redis();
    if (r.proc) cleanups.push(() => stopProcess(r.proc));
    console.log(`redis: ${r.url}${r.proc ? ' (started here)' : ''}`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'densevec-shards-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const corpus = randomMatrix(o.rows, o.dim, o.seed);
    // Duplicate some rows across shard boundaries so exact ties cross shards.
    for (let j = 0; j < 50; j++) corpus.data.copyWithin((o.rows - 1 - j) * o.dim, j * o.dim, (j + 1) * o.dim);
    const queries = randomMatrix(o.queries, o.dim, o.seed + 1000);
    const files = [];
    for (let s = 0; s < S; s++) {
      const r0 = Math.floor((s * o.rows) / S);
      const r1 = Math.floor(((s + 1) * o.rows) / S);
      const f = path.join(dir, `shard-${s}.dvc`);
      dv.writeCorpus(f, { data: corpus.data.subarray(r0 * o.dim, r1 * o.dim), rows: r1 - r0, cols: o.dim });
      files.push(f);
    }
    console.log(`corpus: ${o.rows} x ${o.dim} in ${S} shard files; ${o.queries} queries, k = ${o.k}, batches of ${o.batch}`);
    const prefix = `densevec-example-${process.pid}-${Date.now()}`;
    const procs = [];
    for (let w = 0; w < S; w++) {
      const mine = [w, (w + 1) % S].filter((s, i, a) => a.indexOf(s) === i);
      const args = [__filename, '--serve', mine.map((s) => `${s}:${files[s]}`).join(','), '--redis', r.url, '--prefix', prefix];
      const p = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      procs.push(p);
      cleanups.push(() => stopProcess(p));
    }
    await Promise.all(
      procs.map(
        (p) =>
          new Promise((res, rej) => {
            p.once('message', res);
            p.once('exit', (c) => rej(new Error(`a worker exited early (code ${c})`)));
          }),
      ),
    );
    console.log(`workers: ${S} processes (each serving 2 shards)`);
    // Count the jobs BullMQ recovers from the killed worker (its lock expired: 'stalled').
    const { QueueEvents } = require('bullmq');
    let stalled = 0;
    for (let s = 0; s < S; s++) {
      const ev = new QueueEvents(`${prefix}-shard-${s}`, { connection: connectionFrom(r.url) });
      ev.on('stalled', () => stalled++);
      await ev.waitUntilReady();
      cleanups.push(() => ev.close());
    }
    let killed = false;
    const t0 = process.hrtime.bigint();
    const got = await bull.searchSharded(queries, o.k, {
      connection: connectionFrom(r.url),
      prefix,
      shards: S,
      metric: o.metric,
      batchRows: o.batch,
      onProgress: (done, total) => {
        if (o.kill && !killed && done >= total / 3) {
          killed = true;
          procs[0].kill('SIGKILL');
          console.log(`killed worker 0 (pid ${procs[0].pid}) after ${done} of ${total} jobs`);
        }
      },
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(`sharded search: ${ms.toFixed(0)} ms (${((o.queries / ms) * 1000).toFixed(0)} queries/s); jobs recovered from a dead worker: ${stalled}`);
    let ok = true;
    if (o.check) {
      const want = dv.topK(queries, corpus, o.k, { metric: o.metric });
      ok =
        Buffer.compare(Buffer.from(want.indices.buffer), Buffer.from(got.indices.buffer)) === 0 &&
        Buffer.compare(Buffer.from(want.scores.buffer), Buffer.from(got.scores.buffer)) === 0;
    }
    await cleanup();
    if (o.check) {
      console.log(`sharded top-k identical to single-process: ${ok ? 'yes' : 'no'}`);
      process.exitCode = ok ? 0 : 1;
    }
  } catch (e) {
    await cleanup();
    console.error(`sharded-search: ${e?.message ? e.message : e}`);
    process.exitCode = 2;
  }
}

main().then((serving) => {
  // The coordinator exits when done (its Redis connections and children may hold the loop);
  // a worker keeps serving until it is told to stop.
  if (serving !== 'serving') process.exit(process.exitCode ?? 0);
});
