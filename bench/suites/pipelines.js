// Suite — pipelines: what composing top-k costs against one in-memory topK.
//   1. merge overhead: the corpus as 4 shards searched one by one and merged with mergeTopK,
//      and mergeTopK alone;
//   2. streaming: topKStream over row chunks of the corpus;
//   3. memory-mapped corpus files (openCorpus, page cache warm), f32 and f16, vs in memory;
//   4. sharded search on BullMQ + Redis with 1, 2 and 3 local worker processes (needs
//      redis-server and the bullmq / ioredis dev dependencies; the row is skipped with a note
//      otherwise).
// Opt-in (DENSEVEC_BENCH_BIG_GB=N): one topKStream pass over an N GB f16 corpus file, with the
// process's peak resident memory, for corpora larger than the memory budget.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { dv, impl, Suite, randMatrix, dvThreads, procStatus, resetPeakRss } = require('../common');
const { startRedis, stopProcess } = require('../../examples/lib/redis.js');

const slice = (m, r0, r1) => ({ data: m.data.subarray(r0 * m.cols, r1 * m.cols), rows: r1 - r0, cols: m.cols });

module.exports = async function pipelines({ quick, smoke }) {
  const suite = new Suite('pipelines', { quick });
  const Q = smoke ? 8 : 100;
  const N = Number(process.env.DENSEVEC_BENCH_PIPELINES_N ?? 0) || (smoke ? 4000 : quick ? 50000 : 100000);
  const D = smoke ? 32 : 768;
  const K = 10;
  const q = randMatrix(Q, D, 41);
  const c = randMatrix(N, D, 42);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'densevec-bench-pipelines-'));
  const cleanups = [() => fs.rmSync(dir, { recursive: true, force: true })];
  let stopping = false;
  try {
    const whole = impl('densevec topK, one corpus in memory', 'anchor', 1, () => dv.topK(q, c, K, { metric: 'dot' }), { before: dvThreads(1) });

    // 1. Merge overhead.
    const S = 4;
    const cuts = Array.from({ length: S + 1 }, (_, s) => Math.floor((s * N) / S));
    const shards = cuts.slice(1).map((e, s) => slice(c, cuts[s], e));
    const parts = shards.map((sh) => dv.topK(q, sh, K, { metric: 'dot' }));
    await suite.row({
      workload: `topK k=${K}, dot, ${S} shards + mergeTopK`,
      params: { q: Q, n: N, d: D, k: K, shards: S },
      impls: [
        whole,
        impl(
          `densevec ${S} shard topKs + mergeTopK`,
          'densevec',
          1,
          () =>
            dv.mergeTopK(
              shards.map((sh) => dv.topK(q, sh, K, { metric: 'dot' })),
              K,
              { metric: 'dot' },
            ),
          { before: dvThreads(1) },
        ),
        impl('densevec mergeTopK alone', 'densevec', 1, () => dv.mergeTopK(parts, K, { metric: 'dot' })),
      ],
      throughput: (ms) => ({ value: Q / (ms / 1000), unit: 'q/s' }),
      targets: [
        {
          densevec: `densevec ${S} shard topKs + mergeTopK`,
          anchor: 'densevec topK, one corpus in memory',
          threads: 1,
          min: 0.95,
          what: 'sharded + merge ≥ 0.95× one topK',
        },
      ],
    });

    // 2. Streaming.
    const chunkRows = smoke ? 1000 : 16384;
    await suite.row({
      workload: `topKStream k=${K}, dot, chunks of ${chunkRows} rows`,
      params: { q: Q, n: N, d: D, k: K, chunkRows },
      impls: [
        whole,
        impl('densevec topKStream', 'densevec', 1, () => dv.topKStream(q, dv.corpusChunks(c, chunkRows), K, { metric: 'dot' }), { before: dvThreads(1) }),
      ],
      throughput: (ms) => ({ value: Q / (ms / 1000), unit: 'q/s' }),
      targets: [{ densevec: 'densevec topKStream', anchor: 'densevec topK, one corpus in memory', threads: 1, min: 0.8, what: 'streaming ≥ 0.8× in-memory' }],
    });

    // 3. Memory-mapped corpus files (warm page cache).
    const f32File = path.join(dir, 'c32.dvc');
    const f16File = path.join(dir, 'c16.dvc');
    const c16 = dv.quantize(c, 'f16');
    dv.writeCorpus(f32File, c);
    dv.writeCorpus(f16File, c16);
    const m32 = dv.openCorpus(f32File);
    const m16 = dv.openCorpus(f16File);
    await suite.row({
      workload: `topK k=${K}, dot, memory-mapped corpus file (warm)`,
      params: { q: Q, n: N, d: D, k: K },
      impls: [
        whole,
        impl('densevec topK, mapped f32 file', 'densevec', 1, () => dv.topK(q, m32, K, { metric: 'dot' }), { before: dvThreads(1) }),
        impl('densevec topK, f16 in memory', 'anchor', 1, () => dv.topK(q, c16, K, { metric: 'dot' }), { before: dvThreads(1) }),
        impl('densevec topK, mapped f16 file', 'densevec', 1, () => dv.topK(q, m16, K, { metric: 'dot' }), { before: dvThreads(1) }),
      ],
      throughput: (ms) => ({ value: Q / (ms / 1000), unit: 'q/s' }),
      targets: [
        {
          densevec: 'densevec topK, mapped f32 file',
          anchor: 'densevec topK, one corpus in memory',
          threads: 1,
          min: 0.8,
          what: 'mapped (cached) ≥ 0.8× in-memory (PERF.md)',
        },
      ],
    });

    // Opt-in: a corpus file larger than the memory budget.
    const bigGb = Number(process.env.DENSEVEC_BENCH_BIG_GB ?? 0);
    if (bigGb > 0 && !smoke) {
      const bigFile = path.join(process.env.DENSEVEC_BENCH_BIG_DIR ?? dir, 'big.dvc');
      const rowsPerBlock = 65536;
      const block = dv.quantize(randMatrix(rowsPerBlock, D, 43), 'f16');
      const blocks = Math.max(1, Math.round((bigGb * 2 ** 30) / block.data.byteLength));
      // Write block by block: the header of a corpus of blocks × rowsPerBlock rows, then the blocks.
      dv.writeCorpus(bigFile, { ...block, data: block.data.subarray(0, D), rows: 1 });
      const fd = fs.openSync(bigFile, 'r+');
      const head = Buffer.alloc(64);
      fs.readSync(fd, head, 0, 64, 0);
      head.writeBigUInt64LE(BigInt(blocks * rowsPerBlock), 16);
      fs.writeSync(fd, head, 0, 64, 0);
      const bytes = Buffer.from(block.data.buffer, block.data.byteOffset, block.data.byteLength);
      for (let b = 0; b < blocks; b++) fs.writeSync(fd, bytes, 0, bytes.length, 64 + b * bytes.length);
      fs.closeSync(fd);
      cleanups.push(() => fs.rmSync(bigFile, { force: true }));
      const big = dv.openCorpus(bigFile);
      resetPeakRss();
      const rss0 = procStatus().VmRSS;
      const t0 = process.hrtime.bigint();
      await dv.topKStream(q, dv.corpusChunks(big, 262144), K, { metric: 'dot' });
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const hwm = procStatus().VmHWM;
      suite.note(
        `one topKStream pass over a ${((blocks * bytes.length) / 2 ** 30).toFixed(1)} GiB f16 file (${blocks * rowsPerBlock} rows): ${s.toFixed(1)} s, ${((blocks * rowsPerBlock * D * 2) / 2 ** 30 / s).toFixed(2)} GiB/s; peak RSS ${(hwm / 2 ** 20).toFixed(0)} MiB (${((hwm - rss0) / 2 ** 20).toFixed(0)} MiB above the start; mapped pages are page cache the kernel reclaims)`,
      );
      suite.extra.big = { gib: (blocks * bytes.length) / 2 ** 30, seconds: s, peakRssBytes: hwm, startRssBytes: rss0 };
    }

    // 4. Sharded on BullMQ + Redis, 1..3 local workers.
    let bullmqOk = true;
    try {
      require.resolve('bullmq');
      require.resolve('ioredis');
    } catch {
      bullmqOk = false;
    }
    const redisOk = spawnSync('redis-server', ['--version']).status === 0;
    if (!bullmqOk || !redisOk) {
      suite.note(`sharded rows skipped: ${!redisOk ? 'redis-server is not installed' : 'bullmq / ioredis are not installed'}`);
    } else {
      const { proc: redis, url, port } = await startRedis();
      cleanups.push(() => stopProcess(redis));
      const bull = require('../../dist/bullmq.js');
      const shardFiles = shards.map((sh, s) => {
        const f = path.join(dir, `shard-${s}.dvc`);
        dv.writeCorpus(f, sh);
        return f;
      });
      const example = path.join(__dirname, '..', '..', 'examples', 'sharded-search.js');
      const impls = [];
      for (const W of [1, 2, 3]) {
        const prefix = `bench-${W}`;
        const procs = [];
        for (let w = 0; w < W; w++) {
          // Every worker serves every shard: W workers share the jobs.
          const arg = shardFiles.map((f, s) => `${s}:${f}`).join(',');
          const p = spawn(process.execPath, [example, '--serve', arg, '--redis', url, '--prefix', prefix, '--lock-ms', '30000'], {
            stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
          });
          procs.push(p);
          p.once('exit', (code, sig) => {
            if (!stopping) suite.note(`a worker process (${W}-worker run) exited early: code ${code}, signal ${sig}`);
          });
          cleanups.push(() => stopProcess(p));
        }
        await Promise.all(procs.map((p) => new Promise((res) => p.once('message', res))));
        const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
        const co = bull.createCoordinator({ connection, prefix });
        cleanups.push(() => co.close());
        impls.push(
          impl(`densevec searchSharded, ${W} worker${W > 1 ? 's' : ''}`, W === 1 ? 'anchor' : 'densevec', null, () =>
            co.searchSharded(q, K, { shards: S, metric: 'dot', batchRows: Math.max(1, Math.ceil(Q / 4)) }),
          ),
        );
      }
      await suite.row({
        workload: `sharded top-k on BullMQ + Redis, ${S} shards, 1-3 local worker processes`,
        params: { q: Q, n: N, d: D, k: K, shards: S, cores: os.cpus().length },
        impls: [whole, ...impls],
        throughput: (ms) => ({ value: Q / (ms / 1000), unit: 'q/s' }),
        opts: smoke ? {} : { rounds: 5 },
      });
      suite.note(
        `sharded rows: worker processes run with the default thread count on a ${os.cpus().length}-core machine; beyond the cores, more workers only add queueing`,
      );
    }
  } finally {
    stopping = true;
    for (const f of cleanups.reverse()) {
      try {
        await f();
      } catch {
        /* already gone */
      }
    }
  }
  return suite.write();
};
