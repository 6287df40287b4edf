/**
 * How a native call runs: now or as a Promise, and on which device. On the GPU: similarityMatrix,
 * topK (k ≤ 128, float32 corpus, no filters), infoNCE, ntXent, marginSoftmax and
 * wassersteinRegularizer (the synchronous forms). The choice is made in the addon (each
 * operation knows whether its GPU form takes the arguments, and its work); this module passes
 * the backend's wish:
 *
 * - backend 'cuda' (setBackend('cuda') or DENSEVEC_BACKEND=cuda): device 'gpu', every call of
 *   those functions runs on the GPU; GPU errors are thrown (E_BACKEND). Other functions, the
 *   …Async twins, and topK with larger k run on the native CPU code.
 * - backend 'auto' (the default): device 'auto', a call goes to the GPU only when a GPU is
 *   present and the call is large enough to win over the CPU after the host↔device copies:
 *   when its work (the multiply-adds of its GEMMs) is at least {@link cudaAutoMinWork} (2e9 by
 *   default, settable with DENSEVEC_CUDA_MIN_WORK); a GPU error then falls back to the CPU
 *   silently.
 */
import { cudaRoute } from './backend';
import { isQuantized, type Corpus } from './contract/quantized';

/** Default multiply-add count (q.rows · c.rows · cols) from which 'auto' uses the GPU. */
export const CUDA_AUTO_MIN_WORK = 2e9;

/** The threshold in effect: DENSEVEC_CUDA_MIN_WORK if it is a non-negative number, else the default. */
export function cudaAutoMinWork(): number {
  const v = Number(process.env.DENSEVEC_CUDA_MIN_WORK);
  return process.env.DENSEVEC_CUDA_MIN_WORK !== undefined && Number.isFinite(v) && v >= 0 ? v : CUDA_AUTO_MIN_WORK;
}

/** The second argument of every native entry point (the addon's `How`). */
export interface How {
  mode: 'sync' | 'async';
  device?: 'cpu' | 'gpu' | 'auto';
  minWork?: number;
}

/** Now, on the CPU. */
export const SYNC: How = { mode: 'sync' };
/** As a Promise, on the libuv pool (inputs copied at call time). */
export const ASYNC: How = { mode: 'async' };

/** Now, on the device the backend asks for (for the operations that have a GPU form). */
export function onDevice(): How {
  const route = cudaRoute();
  if (route === null) return SYNC;
  return route === 'strict' ? { mode: 'sync', device: 'gpu' } : { mode: 'sync', device: 'auto', minWork: cudaAutoMinWork() };
}

/** The value of a native call made with a synchronous {@link How}. */
export function now<T>(r: T | Promise<T>): T {
  return r as T;
}

/** The Promise of a native call made with {@link ASYNC}. */
export function soon<T>(r: T | Promise<T>): Promise<T> {
  return r as Promise<T>;
}

/** Metric names of the native entry points, by metric code. */
export const METRIC_NAMES = ['dot', 'cosine', 'l2sq'] as const;

/** The binding's precision names by code (0 f32, 1 bf16). */
export const PRECISION_NAMES = ['f32', 'bf16'] as const;

/** The native corpus argument: the float32 values, or the compact ones with their dtype. */
export function corpusArg(c: Corpus): NativeCorpus {
  if (!isQuantized(c)) return { dtype: 'f32', rows: c.rows, f32: c.data };
  if (c.dtype === 'i8')
    return typeof c.scale === 'number'
      ? { dtype: 'i8', rows: c.rows, int8: c.data, scale: c.scale }
      : { dtype: 'i8', rows: c.rows, int8: c.data, scales: c.scale };
  return { dtype: c.dtype, rows: c.rows, half: c.data };
}

/** The addon's `CorpusArg`. */
export interface NativeCorpus {
  dtype: 'f32' | 'f16' | 'bf16' | 'i8';
  rows: number;
  f32?: Float32Array;
  half?: Uint16Array;
  int8?: Int8Array;
  scale?: number;
  scales?: Float32Array;
}
