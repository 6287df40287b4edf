/**
 * The …Async twins on the reference backend: the computation runs in a worker thread
 * (node:worker_threads) so the event loop stays free, as it does on the native backend.
 *
 * The caller validates its arguments on the calling thread first (so errors carry the same
 * codes and messages as the native backend and reject at once); the arguments are then copied
 * (every typed array into a fresh buffer, every field read once) and posted to one shared
 * worker, which loads the compiled reference module (dist/reference) and runs the same function
 * as the synchronous call. Results come back by transfer; an error thrown there comes back as a
 * DensevecError with the same code and message. The worker does not keep the process alive
 * while it is idle. If no worker can be started (no worker_threads, a bundle without
 * dist/refworker.js), the twins compute on the calling thread and a warning is emitted once.
 */
import * as path from 'node:path';
import { DensevecError, type ErrorCode } from './errors';
import * as ref from './reference/index';
import { typedArrayKind } from './contract/validate';

type WorkerLike = import('node:worker_threads').Worker;

/** Reference functions the worker may run (the targets of the …Async twins). */
export const REF_ASYNC_FUNCTIONS = [
  'similarityMatrix',
  'topK',
  'similarityStats',
  'infoNCE',
  'ntXent',
  'marginSoftmax',
  'knnClassify',
  'procrustes',
  'wassersteinRegularizer',
  'graphGeodesics',
  'hyperbolicity',
  'triangleCurvature',
] as const;

/** Name of a reference function the worker runs. */
export type RefAsyncName = (typeof REF_ASYNC_FUNCTIONS)[number];

interface Job {
  name: RefAsyncName;
  args: unknown[];
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

let worker: WorkerLike | null | undefined;
let nextId = 1;
const pending = new Map<number, Job>();
const WARNED = Symbol.for('densevec.referenceAsyncOnMainThreadWarned');

/** A deep copy of an argument: typed arrays into fresh buffers, plain objects field by field. */
function copy(x: unknown, depth = 0): unknown {
  if (typeof x !== 'object' || x === null) return x;
  const k = typedArrayKind(x);
  if (k === 'Float32Array') return new Float32Array(x as Float32Array);
  if (k === 'Uint32Array') return new Uint32Array(x as Uint32Array);
  if (k === 'Uint16Array') return new Uint16Array(x as Uint16Array);
  if (k === 'Int8Array') return new Int8Array(x as Int8Array);
  if (k !== undefined || depth > 4) return x;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(x)) out[key] = copy((x as Record<string, unknown>)[key], depth + 1);
  return out;
}

function runHere(job: Job): void {
  try {
    const f = ref[job.name] as (...a: unknown[]) => unknown;
    job.resolve(f(...job.args));
  } catch (e) {
    job.reject(e);
  }
}

function warnOnce(why: string): void {
  const g = globalThis as unknown as Record<symbol, boolean | undefined>;
  if (g[WARNED]) return;
  g[WARNED] = true;
  process.emitWarning(`densevec: the reference backend's …Async functions run on the calling thread (${why})`);
}

/** Gives up on the worker: every job still pending runs here, and later ones too. */
function abandon(why: string): void {
  const w = worker;
  worker = null;
  if (w) {
    w.removeAllListeners();
    w.on('error', () => undefined);
    void w.terminate().catch(() => undefined);
  }
  warnOnce(why);
  const jobs = [...pending.values()];
  pending.clear();
  for (const j of jobs) runHere(j);
}

function startWorker(): WorkerLike | null {
  if (worker !== undefined) return worker;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Worker } = require('node:worker_threads') as typeof import('node:worker_threads');
    const w = new Worker(path.join(__dirname, 'refworker.js'));
    w.on('message', (m: { id: number; ok: boolean; result?: unknown; code?: ErrorCode; message?: string }) => {
      const job = pending.get(m.id);
      if (!job) return;
      pending.delete(m.id);
      if (pending.size === 0) w.unref();
      if (m.ok) job.resolve(m.result);
      else job.reject(new DensevecError(m.code ?? 'E_INTERNAL', m.message ?? 'unknown error'));
    });
    w.on('error', (e) => abandon(`worker error: ${e instanceof Error ? e.message : String(e)}`));
    w.on('exit', (c) => {
      if (worker === w) abandon(`the worker exited with code ${c}`);
    });
    w.unref();
    worker = w;
  } catch (e) {
    worker = null;
    warnOnce(`no worker thread: ${e instanceof Error ? e.message : String(e)}`);
  }
  return worker;
}

/**
 * Runs the reference function `name` on already validated arguments in the worker thread and
 * resolves to its result (rejects with a DensevecError). The arguments are copied now.
 */
export function refAsync<T>(name: RefAsyncName, args: unknown[]): Promise<T> {
  const copied = args.map((a) => copy(a));
  return new Promise<T>((resolve, reject) => {
    const job: Job = { name, args: copied, resolve: resolve as (v: unknown) => void, reject };
    const w = startWorker();
    if (w === null) {
      runHere(job);
      return;
    }
    const id = nextId++;
    pending.set(id, job);
    if (pending.size === 1) w.ref();
    try {
      w.postMessage({ id, name, args: copied });
    } catch (e) {
      pending.delete(id);
      if (pending.size === 0) w.unref();
      reject(new DensevecError('E_INTERNAL', `${name}: could not post to the worker: ${e instanceof Error ? e.message : String(e)}`));
    }
  });
}
