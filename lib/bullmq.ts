/**
 * densevec/bullmq — sharded exact top-k and a data-parallel InfoNCE step on BullMQ + Redis
 * (both optional peer dependencies: `npm install bullmq ioredis`). See docs/pipelines.md.
 *
 * - {@link createShardWorker}: a process that serves corpus shards. Each shard is a corpus file
 *   (`writeCorpus`) that the worker opens with `openCorpus` (memory-mapped); shard s is served
 *   from the queue `<prefix>-shard-<s>`, so several workers can serve the same shard (replicas:
 *   a job held by a worker that dies is retried by another one, BullMQ's stalled-job recovery).
 *   The same worker also serves InfoNCE steps from `<prefix>-train`.
 * - {@link searchSharded}: the coordinator. Fans a query batch out as one job per shard (and
 *   per batch of `batchRows` queries), waits for them, and merges with `mergeTopK`: the result
 *   equals `topK` over the concatenated shards exactly (ties → lower global index).
 * - {@link infoNCEDataParallel}: each job computes `infoNCE` of its local queries against the
 *   all-gathered keys; the coordinator sums the gradients weighted by local batch size / total
 *   batch size — equal to the single-process step on the whole batch ({@link combineInfoNCE}).
 *
 * Matrices travel as base64 of their little-endian float32 bytes inside the job data.
 */
import { fail } from './errors';
import type { Matrix } from './matrix';
import { mergeTopK } from './contract/pipelines';
import type { Corpus } from './contract/quantized';
import type { InfoNCEOptions, InfoNCEResult } from './contract/contrastive';
import type { TopKResult } from './contract/similarity';
import { openCorpus } from './pipelines';
import { infoNCE } from './contrastive';
import { topK } from './similarity';

/** Redis connection options as BullMQ takes them (ioredis options or an ioredis client). */
export type RedisConnection = Record<string, unknown> | { host?: string; port?: number };

/** Options shared by the worker and the coordinators. */
export interface BullmqCommon {
  /** Redis connection (ioredis options, e.g. `{ host: '127.0.0.1', port: 6379 }`, or a client). */
  connection: RedisConnection;
  /** Prefix of the queue names (default 'densevec'); workers and coordinator must agree. */
  prefix?: string;
}

/** Options of {@link createShardWorker}. */
export interface ShardWorkerOptions extends BullmqCommon {
  /** Shards this worker serves: shard index → corpus file path (opened with `openCorpus`). */
  shards: Record<number, string> | Map<number, string>;
  /** Also serve InfoNCE steps from `<prefix>-train` (default true). */
  train?: boolean;
  /** Jobs processed at once per queue (default 1). */
  concurrency?: number;
  /**
   * BullMQ worker options merged into every worker (e.g. `{ lockDuration: 5000,
   * stalledInterval: 2000, maxStalledCount: 3 }` to recover faster from a killed worker).
   */
  workerOptions?: Record<string, unknown>;
}

/** A running shard worker. */
export interface ShardWorker {
  /** The BullMQ Worker objects (one per served queue). */
  workers: unknown[];
  /** The opened shards. */
  corpora: Map<number, Corpus>;
  /** Stops taking jobs and closes the Redis connections. */
  close(): Promise<void>;
}

/** Options of {@link searchSharded}. */
export interface SearchShardedOptions extends BullmqCommon {
  /** Number of shards (queues `<prefix>-shard-0 …`); their rows are concatenated in this order. */
  shards: number;
  /** 'dot', 'cosine' (default) or 'l2sq'. */
  metric?: 'dot' | 'cosine' | 'l2sq';
  /** Queries per job (default: all in one job per shard). */
  batchRows?: number;
  /** Attempts per job (default 3): a job whose worker throws is retried. */
  attempts?: number;
  /** Give up after this many ms (default 120000, at most 2^31 − 1) with E_BACKEND. */
  timeoutMs?: number;
  /**
   * Jobs still unfinished are also looked up in Redis every `pollMs` ms (default 1000, at most
   * 2^31 − 1), so a finished job whose event never reaches the coordinator costs at most this
   * much latency.
   */
  pollMs?: number;
  /** Called after each finished job with (jobsDone, jobsTotal). */
  onProgress?: (done: number, total: number) => void;
}

/** One data-parallel part: local queries and (optionally) their positives among the gathered keys. */
export interface DataParallelPart {
  q: Matrix;
  /** Global index into the gathered keys of each local query's positive (default: the query's global row). */
  positives?: Uint32Array;
}

/** Options of {@link infoNCEDataParallel}. */
export interface InfoNCEDataParallelOptions extends BullmqCommon {
  /** Attempts per job (default 3). */
  attempts?: number;
  /** Give up after this many ms (default 120000). */
  timeoutMs?: number;
  /** Unfinished jobs are also looked up in Redis every `pollMs` ms (default 1000); see {@link SearchShardedOptions.pollMs}. */
  pollMs?: number;
}

/** The parts of a BullMQ Job used here. */
type JobT = {
  id?: string;
  returnvalue?: unknown;
  failedReason?: string;
  getState(): Promise<string>;
};

/** A raw Redis client as BullMQ 5 (ioredis) and 6 (its client wrapper) expose it. */
type RawClient = { xrevrange(key: string, end: string, start: string, ...rest: (string | number)[]): Promise<[string, unknown][]> };

type Bullmq = {
  Queue: new (
    name: string,
    opts: Record<string, unknown>,
  ) => {
    add(name: string, data: unknown, opts?: Record<string, unknown>): Promise<JobT>;
    addBulk(jobs: { name: string; data: unknown; opts?: Record<string, unknown> }[]): Promise<JobT[]>;
    getJob(id: string): Promise<JobT | undefined>;
    close(): Promise<void>;
    /** BullMQ 5: the ioredis client. */
    client?: Promise<unknown>;
    /** BullMQ 6: the backend that holds the client. */
    getBackend?: () => { client?: Promise<unknown> | unknown };
    keys?: { events?: string };
  };
  QueueEvents: new (name: string, opts: Record<string, unknown>) => { waitUntilReady(): Promise<unknown>; close(): Promise<void> };
  Worker: new (
    name: string,
    proc: (job: { data: unknown }) => Promise<unknown>,
    opts: Record<string, unknown>,
  ) => {
    close(): Promise<void>;
    on(ev: string, f: (...a: unknown[]) => void): void;
  };
};

function loadBullmq(fn: string): Bullmq {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('bullmq') as Bullmq;
  } catch (e) {
    return fail(
      'E_BACKEND',
      `${fn}: needs the optional peer dependencies 'bullmq' and 'ioredis' (npm install bullmq ioredis): ${(e as Error).message.split('\n')[0]}`,
    );
  }
}

// ---- wire format ----------------------------------------------------------------------------

/** Base64 of a typed array's bytes. */
export function encodeArray(a: ArrayBufferView): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

function decodeBytes(s: string): Buffer {
  if (typeof s !== 'string') fail('E_TYPE', `densevec/bullmq: expected a base64 string in the job data, got ${typeof s}`);
  return Buffer.from(s, 'base64');
}

/** A Float32Array from {@link encodeArray}'s base64 (a fresh, aligned copy). */
export function decodeF32(s: string): Float32Array {
  const b = decodeBytes(s);
  const out = new Float32Array(b.length / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

/** A Uint32Array from {@link encodeArray}'s base64 (a fresh, aligned copy). */
export function decodeU32(s: string): Uint32Array {
  const b = decodeBytes(s);
  const out = new Uint32Array(b.length / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

interface WireMatrix {
  data: string;
  rows: number;
  cols: number;
}
const toWire = (m: Matrix): WireMatrix => ({ data: encodeArray(m.data), rows: m.rows, cols: m.cols });
const fromWire = (w: WireMatrix): Matrix => ({ data: decodeF32(w.data), rows: w.rows, cols: w.cols });

interface SearchJob {
  q: WireMatrix;
  k: number;
  metric?: string;
}
interface SearchReply {
  indices: string;
  scores: string;
  k: number;
  corpusRows: number;
}
interface TrainJob {
  q: WireMatrix;
  keys: WireMatrix;
  positives: string;
  options: Omit<InfoNCEOptions, 'positives' | 'logQ'> & { logQ?: string };
}
interface TrainReply {
  loss: number;
  gradQ: WireMatrix;
  gradKeys: WireMatrix;
  gradTemperature?: number;
  stats?: InfoNCEResult['stats'];
}

const names = (prefix: string | undefined) => {
  const p = prefix ?? 'densevec';
  return { shard: (s: number) => `${p}-shard-${s}`, train: `${p}-train` };
};

// ---- worker ---------------------------------------------------------------------------------

/** The job processor of a shard: top-k of the job's queries against the shard (k capped at its rows). */
export function searchShard(corpus: Corpus, job: SearchJob): SearchReply {
  const q = fromWire(job.q);
  const k = Math.min(job.k, corpus.rows);
  const r = topK(q, corpus, k, { metric: job.metric as 'cosine' | undefined });
  return { indices: encodeArray(r.indices), scores: encodeArray(r.scores), k, corpusRows: corpus.rows };
}

/** The job processor of a training step: infoNCE of the local queries against the gathered keys. */
export function trainPart(job: TrainJob): TrainReply {
  const { logQ, ...rest } = job.options;
  const r = infoNCE(fromWire(job.q), fromWire(job.keys), {
    ...rest,
    positives: decodeU32(job.positives),
    ...(logQ !== undefined ? { logQ: decodeF32(logQ) } : {}),
  });
  const g = (r as InfoNCEResult & { gradTemperature?: number }).gradTemperature;
  const st = (r as Partial<InfoNCEResult>).stats;
  return {
    loss: r.loss,
    gradQ: toWire(r.gradQ),
    gradKeys: toWire(r.gradKeys),
    ...(typeof g === 'number' ? { gradTemperature: g } : {}),
    ...(st ? { stats: { ...st } } : {}),
  };
}

/**
 * Starts a worker that serves the given corpus shards (each opened with `openCorpus`,
 * memory-mapped) and, unless `train: false`, data-parallel InfoNCE steps. Run one per process
 * (or machine); give each shard to two or more workers so a job held by a worker that dies is
 * finished by another (BullMQ moves a stalled job back to the queue after its lock expires).
 */
export function createShardWorker(options: ShardWorkerOptions): ShardWorker {
  const fn = 'createShardWorker';
  if (typeof options !== 'object' || options === null) fail('E_TYPE', `${fn}: options must be an object`);
  const B = loadBullmq(fn);
  const entries: [number, string][] =
    options.shards instanceof Map ? [...options.shards.entries()] : Object.entries(options.shards ?? {}).map(([s, p]) => [Number(s), p]);
  if (entries.length === 0 && options.train === false) fail('E_ARG', `${fn}: no shards and no training: nothing to serve`);
  const n = names(options.prefix);
  const corpora = new Map<number, Corpus>();
  for (const [s, p] of entries) {
    if (!Number.isInteger(s) || s < 0) fail('E_ARG', `${fn}: shard index ${s} is not a non-negative integer`);
    corpora.set(s, openCorpus(p));
  }
  const base = { connection: options.connection, concurrency: options.concurrency ?? 1, ...(options.workerOptions ?? {}) };
  const workers: InstanceType<Bullmq['Worker']>[] = [];
  for (const [s, c] of corpora) {
    workers.push(new B.Worker(n.shard(s), async (job) => searchShard(c, job.data as SearchJob), base));
  }
  if (options.train !== false) workers.push(new B.Worker(n.train, async (job) => trainPart(job.data as TrainJob), base));
  for (const w of workers) w.on('error', () => undefined);
  return {
    workers,
    corpora,
    close: async () => {
      await Promise.all(workers.map((w) => w.close()));
    },
  };
}

// ---- coordinators ---------------------------------------------------------------------------

type QueueT = InstanceType<Bullmq['Queue']>;
type EventsT = InstanceType<Bullmq['QueueEvents']>;

/**
 * The id of the last entry of a queue's event stream ('0-0' when it is empty), read through the
 * queue's own Redis client; null when this BullMQ version does not expose one (then QueueEvents
 * starts at '$' and the lookups of {@link fanOut} catch what it misses).
 */
async function streamTail(queue: QueueT): Promise<string | null> {
  const key = queue.keys?.events;
  if (typeof key !== 'string') return null;
  const backend = typeof queue.getBackend === 'function' ? queue.getBackend() : undefined;
  const client = (await (backend && 'client' in backend ? backend.client : queue.client)) as Partial<RawClient> | undefined;
  if (!client || typeof client.xrevrange !== 'function') return null;
  const last = await client.xrevrange(key, '+', '-', 'COUNT', 1);
  return Array.isArray(last) && last.length > 0 && typeof last[0][0] === 'string' ? last[0][0] : '0-0';
}

/** Queues and their event streams, opened once per name and reused until close(). */
class QueuePool {
  private queues = new Map<string, Promise<{ queue: QueueT; events: EventsT }>>();
  constructor(
    readonly B: Bullmq,
    private readonly connection: RedisConnection,
  ) {}

  get(name: string): Promise<{ queue: QueueT; events: EventsT }> {
    let p = this.queues.get(name);
    if (p === undefined) {
      p = this.open(name);
      this.queues.set(name, p);
      // A queue that failed to open is opened afresh by the next call.
      p.catch(() => {
        if (this.queues.get(name) === p) this.queues.delete(name);
      });
    }
    return p;
  }

  private async open(name: string): Promise<{ queue: QueueT; events: EventsT }> {
    const queue = new this.B.Queue(name, { connection: this.connection });
    let events: EventsT | undefined;
    try {
      // QueueEvents starts reading the event stream at '$' ("what arrives after my first
      // read") unless told where: an event written before that first read (or between two
      // reads of an idle stream) would be lost, and a job waited on would never finish.
      // Starting at the stream's current tail loses nothing.
      const lastEventId = await streamTail(queue);
      events = new this.B.QueueEvents(name, { connection: this.connection, ...(lastEventId ? { lastEventId } : {}) });
      // One waiter per job listens on these emitters: a large batch is not a leak.
      for (const e of [queue, events] as unknown as { setMaxListeners?: (n: number) => void }[]) e.setMaxListeners?.(0);
      await events.waitUntilReady();
      return { queue, events };
    } catch (e) {
      await events?.close().catch(() => undefined);
      await queue.close().catch(() => undefined);
      throw e;
    }
  }

  async close(): Promise<void> {
    const all = await Promise.allSettled([...this.queues.values()]);
    this.queues.clear();
    for (const r of all) {
      if (r.status === 'fulfilled') {
        await r.value.events.close();
        await r.value.queue.close();
      }
    }
  }
}

async function withPool<T>(fn: string, connection: RedisConnection, f: (pool: QueuePool) => Promise<T>): Promise<T> {
  const pool = new QueuePool(loadBullmq(fn), connection);
  try {
    return await f(pool);
  } finally {
    await pool.close();
  }
}

/** The longest delay Node's timers take (a larger one fires at once). */
const MAX_DELAY_MS = 2 ** 31 - 1;

/** The event emitter side of a QueueEvents. */
type Emitter = { on(ev: string, f: (args: never) => void): unknown; removeListener(ev: string, f: (args: never) => void): unknown };

async function fanOut<R>(
  pool: QueuePool,
  jobs: { queue: string; data: unknown }[],
  attempts: number,
  timeoutMs: number,
  pollMs: number,
  onDone?: (done: number, total: number) => void,
): Promise<R[]> {
  for (const [name, v] of [
    ['timeoutMs', timeoutMs],
    ['pollMs', pollMs],
  ] as const) {
    if (typeof v !== 'number' || !(v > 0 && v <= MAX_DELAY_MS))
      fail('E_ARG', `densevec/bullmq: ${name} must be a number of ms in (0, ${MAX_DELAY_MS}], got ${String(v)}`);
  }
  const names = [...new Set(jobs.map((j) => j.queue))];
  const opened = new Map<string, { queue: QueueT; events: EventsT }>();
  for (const [i, o] of (await Promise.all(names.map((n) => pool.get(n)))).entries()) opened.set(names[i], o);
  const at = (i: number) => opened.get(jobs[i].queue) as { queue: QueueT; events: EventsT };
  let done = 0;
  const opts = { attempts, removeOnComplete: { age: 600 }, removeOnFail: { age: 3600 } };
  const added: JobT[] = new Array(jobs.length);
  await Promise.all(
    names.map(async (name) => {
      const mine = jobs.map((j, i) => (j.queue === name ? i : -1)).filter((i) => i >= 0);
      const got = await (opened.get(name) as { queue: QueueT }).queue.addBulk(mine.map((i) => ({ name: 'densevec', data: jobs[i].data, opts })));
      mine.forEach((i, t) => {
        added[i] = got[t];
      });
    }),
  );
  // Each job finishes by its 'completed' / 'failed' event or, should that event be lost, by a
  // lookup of its state (at once, then every pollMs); whichever comes first settles it, once.
  // An error thrown by onDone ends the call.
  let failFast: (e: Error) => void = () => undefined;
  const fatal = new Promise<never>((_, reject) => {
    failFast = reject;
  });
  fatal.catch(() => undefined); // (when it comes after the call has ended)
  const settled: boolean[] = new Array(jobs.length).fill(false);
  const settlers: { resolve: (v: R) => void; reject: (e: Error) => void }[] = new Array(jobs.length);
  const waits = added.map(
    (_, i) =>
      new Promise<R>((resolve, reject) => {
        settlers[i] = {
          resolve: (v) => {
            if (settled[i]) return;
            settled[i] = true;
            done++;
            resolve(v);
            if (onDone) {
              try {
                onDone(done, jobs.length);
              } catch (e) {
                failFast(e instanceof Error ? e : new Error(String(e)));
              }
            }
          },
          reject: (e) => {
            if (settled[i]) return;
            settled[i] = true;
            reject(e);
          },
        };
      }),
  );
  for (const w of waits) w.catch(() => undefined); // (rejections reach the caller through Promise.all)
  // Our own listeners (removed when the call ends), not Job.waitUntilFinished: its timer and
  // listeners outlive a job settled by a lookup.
  const unlisten: (() => void)[] = [];
  added.forEach((job, i) => {
    const ev = at(i).events as unknown as Emitter;
    const id = String(job.id);
    const onCompleted = (args: { returnvalue?: unknown }) => settlers[i].resolve(args.returnvalue as R);
    const onFailed = (args: { failedReason?: string }) => settlers[i].reject(new Error(args.failedReason ?? `job ${id} failed`));
    ev.on(`completed:${id}`, onCompleted);
    ev.on(`failed:${id}`, onFailed);
    unlisten.push(() => {
      ev.removeListener(`completed:${id}`, onCompleted);
      ev.removeListener(`failed:${id}`, onFailed);
    });
  });
  let polling = false;
  const poll = async () => {
    const open = added.map((_, i) => i).filter((i) => !settled[i]);
    const states = await Promise.all(open.map((i) => added[i].getState().catch(() => 'unknown')));
    await Promise.all(
      open.map(async (i, t) => {
        if (states[t] !== 'completed' && states[t] !== 'failed') return;
        const job = await at(i).queue.getJob(String(added[i].id));
        if (job === undefined || settled[i]) return;
        if (states[t] === 'completed') settlers[i].resolve(job.returnvalue as R);
        else settlers[i].reject(new Error(job.failedReason ?? `job ${added[i].id} failed`));
      }),
    );
  };
  const pollNow = () => {
    if (polling) return;
    polling = true;
    poll()
      .catch(() => undefined) // a failed lookup leaves the job to its event or the timeout
      .finally(() => {
        polling = false;
      });
  };
  // Once now: a job may have finished before its listeners were attached.
  pollNow();
  const poller = setInterval(pollNow, pollMs);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${jobs.length - done} of ${jobs.length} jobs unfinished after ${timeoutMs} ms (are workers serving every queue?)`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([Promise.all(waits), timeout, fatal]);
  } catch (e) {
    return fail('E_BACKEND', `densevec/bullmq: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
    clearInterval(poller);
    for (const f of unlisten) f();
    for (let i = 0; i < jobs.length; i++) settlers[i]?.reject(new Error('abandoned'));
  }
}

/** A coordinator that keeps its Redis connections open across calls (see {@link createCoordinator}). */
export interface Coordinator {
  /** {@link searchSharded} on this coordinator's connections (options as there, minus connection / prefix). */
  searchSharded(q: Matrix, k: number, options: Omit<SearchShardedOptions, 'connection' | 'prefix'>): Promise<TopKResult>;
  /** {@link infoNCEDataParallel} on this coordinator's connections. */
  infoNCEDataParallel(
    parts: readonly DataParallelPart[],
    keys: Matrix,
    options: Omit<InfoNCEOptions, 'positives'>,
    bull?: Omit<InfoNCEDataParallelOptions, 'connection' | 'prefix'>,
  ): Promise<CombinedInfoNCE>;
  /** Closes the queues and their connections. */
  close(): Promise<void>;
}

/**
 * A coordinator whose queues and Redis connections stay open across calls: the standalone
 * {@link searchSharded} / {@link infoNCEDataParallel} open and close them on every call (tens
 * of ms). Close it when done.
 */
export function createCoordinator(common: BullmqCommon): Coordinator {
  if (typeof common !== 'object' || common === null) fail('E_TYPE', 'createCoordinator: options must be an object');
  const pool = new QueuePool(loadBullmq('createCoordinator'), common.connection);
  return {
    searchSharded: (q, k, o) => searchWith(pool, q, k, { ...o, connection: common.connection, prefix: common.prefix }),
    infoNCEDataParallel: (parts, keys, options, bull) =>
      trainWith(pool, parts, keys, options, { ...(bull ?? {}), connection: common.connection, prefix: common.prefix }),
    close: () => pool.close(),
  };
}

/**
 * Exact top-k of the queries `q` over a corpus split into `shards` shards served by
 * {@link createShardWorker} processes: one job per shard and per batch of `batchRows` queries,
 * merged with `mergeTopK`. Equals `topK(q, concatenation of the shards, k)` exactly (ties →
 * lower global index); global index = rows of the shards before + local index.
 */
export async function searchSharded(q: Matrix, k: number, options: SearchShardedOptions): Promise<TopKResult> {
  checkSearch(q, k, options);
  return withPool('searchSharded', options.connection, (pool) => searchWith(pool, q, k, options));
}

function checkSearch(q: Matrix, k: number, options: SearchShardedOptions): void {
  const fn = 'searchSharded';
  if (typeof q !== 'object' || q === null || !(q.data instanceof Float32Array)) fail('E_TYPE', `${fn}: q must be a Matrix {data, rows, cols}`);
  if (!Number.isInteger(k)) fail('E_TYPE', `${fn}: k must be an integer, got ${String(k)}`);
  if (typeof options !== 'object' || options === null) fail('E_TYPE', `${fn}: options must be an object`);
  const S = options.shards;
  if (!Number.isInteger(S) || S < 1) fail('E_ARG', `${fn}: shards must be a positive integer, got ${String(S)}`);
  if (q.data.length !== q.rows * q.cols || q.rows === 0 || q.cols === 0) fail('E_SHAPE', `${fn}: q is ${q.rows} x ${q.cols} with ${q.data.length} values`);
  if (k < 1) fail('E_ARG', `${fn}: k must be >= 1, got ${k}`);
  const batch = options.batchRows ?? q.rows;
  if (!Number.isInteger(batch) || batch < 1) fail('E_ARG', `${fn}: batchRows must be a positive integer, got ${String(batch)}`);
}

async function searchWith(pool: QueuePool, q: Matrix, k: number, options: SearchShardedOptions): Promise<TopKResult> {
  checkSearch(q, k, options);
  const S = options.shards;
  const batch = options.batchRows ?? q.rows;
  const n = names(options.prefix);
  const jobs: { queue: string; data: SearchJob }[] = [];
  const starts: number[] = [];
  for (let r0 = 0; r0 < q.rows; r0 += batch) {
    starts.push(r0);
    const r1 = Math.min(q.rows, r0 + batch);
    const qb = toWire({ data: q.data.subarray(r0 * q.cols, r1 * q.cols), rows: r1 - r0, cols: q.cols });
    for (let s = 0; s < S; s++) jobs.push({ queue: n.shard(s), data: { q: qb, k, metric: options.metric } });
  }
  const replies = await fanOut<SearchReply>(pool, jobs, options.attempts ?? 3, options.timeoutMs ?? 120000, options.pollMs ?? 1000, options.onProgress);
  const indices = new Uint32Array(q.rows * k);
  const scores = new Float32Array(q.rows * k);
  let corpusRows = 0;
  starts.forEach((r0, b) => {
    const parts = replies
      .slice(b * S, (b + 1) * S)
      .map((r) => ({ indices: decodeU32(r.indices), scores: decodeF32(r.scores), k: r.k, corpusRows: r.corpusRows }));
    const m = mergeTopK(parts, k, { metric: options.metric });
    indices.set(m.indices, r0 * k);
    scores.set(m.scores, r0 * k);
    corpusRows = m.corpusRows ?? 0;
  });
  return { indices, scores, corpusRows, k };
}

/** A combined InfoNCE result: ∂loss/∂τ and the diagnostics when every part reported them. */
export type CombinedInfoNCE = Omit<InfoNCEResult, 'gradTemperature' | 'stats'> & { gradTemperature?: number; stats?: InfoNCEResult['stats'] };

/**
 * Combines per-part InfoNCE results into the result of the whole batch. Part p has B_p local
 * queries (`sizes[p]`) and computed its mean loss over them against the same gathered keys; with
 * B = Σ B_p and w_p = B_p / B: loss = Σ w_p loss_p, gradKeys = Σ w_p gradKeys_p, and the gradQ
 * rows of part p are w_p gradQ_p (concatenated in part order). This equals `infoNCE` on the
 * concatenated queries (the mean over all B queries), up to float32 rounding of the sums.
 */
export function combineInfoNCE(
  parts: readonly { loss: number; gradQ: Matrix; gradKeys: Matrix; gradTemperature?: number; stats?: InfoNCEResult['stats'] }[],
  sizes: readonly number[],
): CombinedInfoNCE {
  const fn = 'combineInfoNCE';
  if (!Array.isArray(parts) || !Array.isArray(sizes)) fail('E_TYPE', `${fn}: parts and sizes must be arrays`);
  if (parts.length === 0 || parts.length !== sizes.length) fail('E_SHAPE', `${fn}: ${parts.length} parts but ${sizes.length} sizes`);
  const total = sizes.reduce((a, b) => a + b, 0);
  const d = parts[0].gradKeys.cols;
  const kr = parts[0].gradKeys.rows;
  const gradKeys = new Float64Array(kr * d);
  const gradQ = new Float32Array(total * d);
  let loss = 0;
  let gt = 0;
  let hasGt = true;
  // The diagnostics are means over queries too: combined with the same weights.
  const st = { meanEntropy: 0, meanPositiveProbability: 0, meanMaxNegativeProbability: 0, effectiveNegatives: 0 };
  let hasSt = true;
  let at = 0;
  parts.forEach((p, i) => {
    const w = sizes[i] / total;
    if (p.gradKeys.rows !== kr || p.gradKeys.cols !== d || p.gradQ.rows !== sizes[i] || p.gradQ.cols !== d)
      fail('E_SHAPE', `${fn}: part ${i} has the wrong shapes`);
    loss += w * p.loss;
    if (typeof p.gradTemperature === 'number') gt += w * p.gradTemperature;
    else hasGt = false;
    if (p.stats) {
      st.meanEntropy += w * p.stats.meanEntropy;
      st.meanPositiveProbability += w * p.stats.meanPositiveProbability;
      st.meanMaxNegativeProbability += w * p.stats.meanMaxNegativeProbability;
      st.effectiveNegatives += w * p.stats.effectiveNegatives;
    } else hasSt = false;
    for (let j = 0; j < gradKeys.length; j++) gradKeys[j] += w * p.gradKeys.data[j];
    for (let j = 0; j < p.gradQ.data.length; j++) gradQ[at + j] = w * p.gradQ.data[j];
    at += p.gradQ.data.length;
  });
  return {
    loss,
    gradQ: { data: gradQ, rows: total, cols: d },
    gradKeys: { data: Float32Array.from(gradKeys), rows: kr, cols: d },
    ...(hasGt ? { gradTemperature: gt } : {}),
    ...(hasSt ? { stats: st } : {}),
  };
}

/**
 * One data-parallel InfoNCE step: part p's queries are scored against all the gathered `keys`
 * (one job per part, served by {@link createShardWorker} workers); the coordinator combines the
 * results with {@link combineInfoNCE} (weights B_p / B). Equal to `infoNCE(concat of the parts'
 * queries, keys, options)` with each part's positives; default positive of a query = its
 * global row (part offset + local row), as `infoNCE`'s default i → i.
 */
export async function infoNCEDataParallel(
  parts: readonly DataParallelPart[],
  keys: Matrix,
  options: Omit<InfoNCEOptions, 'positives'>,
  bull: InfoNCEDataParallelOptions,
): Promise<CombinedInfoNCE> {
  if (!Array.isArray(parts) || parts.length === 0) fail('E_TYPE', 'infoNCEDataParallel: parts must be a non-empty array of { q, positives? }');
  return withPool('infoNCEDataParallel', bull.connection, (pool) => trainWith(pool, parts, keys, options, bull));
}

/** The arguments of {@link infoNCEDataParallel}. */
type DataParallelArgs = Parameters<typeof infoNCEDataParallel>;

async function trainWith(pool: QueuePool, ...[parts, keys, options, bull]: DataParallelArgs): Promise<CombinedInfoNCE> {
  if (!Array.isArray(parts) || parts.length === 0) fail('E_TYPE', 'infoNCEDataParallel: parts must be a non-empty array of { q, positives? }');
  const n = names(bull.prefix);
  const { logQ, ...rest } = options as InfoNCEOptions;
  let offset = 0;
  const jobs = parts.map((p) => {
    const pos = p.positives ?? Uint32Array.from({ length: p.q.rows }, (_, i) => offset + i);
    offset += p.q.rows;
    const data: TrainJob = {
      q: toWire(p.q),
      keys: toWire(keys),
      positives: encodeArray(pos),
      options: { ...rest, ...(logQ !== undefined ? { logQ: encodeArray(logQ) } : {}) },
    };
    return { queue: n.train, data };
  });
  const replies = await fanOut<TrainReply>(pool, jobs, bull.attempts ?? 3, bull.timeoutMs ?? 120000, bull.pollMs ?? 1000);
  return combineInfoNCE(
    replies.map((r) => ({ loss: r.loss, gradQ: fromWire(r.gradQ), gradKeys: fromWire(r.gradKeys), gradTemperature: r.gradTemperature, stats: r.stats })),
    parts.map((p) => p.q.rows),
  );
}
