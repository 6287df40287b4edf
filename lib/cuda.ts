/**
 * Routing of similarityMatrix / topK to the optional CUDA backend.
 *
 * - backend 'cuda' (setBackend('cuda') or DENSEVEC_BACKEND=cuda): every similarityMatrix call and
 *   every topK call with k ≤ 128 runs on the GPU; GPU errors are thrown (E_BACKEND). Other
 *   functions, and topK with larger k, run on the native CPU code.
 * - backend 'auto' (the default): a call goes to the GPU only when a GPU is present and the call
 *   is large enough to win over the CPU after the host↔device copies, i.e. when
 *   q.rows · c.rows · cols ≥ {@link cudaAutoMinWork} (2e9 by default, settable with
 *   DENSEVEC_CUDA_MIN_WORK); a GPU error then falls back to the CPU silently.
 */
import { cudaRoute, type NativeBinding } from './backend';

/** Default multiply-add count (q.rows · c.rows · cols) from which 'auto' uses the GPU. */
export const CUDA_AUTO_MIN_WORK = 2e9;

/** Largest k the GPU top-k handles (its per-thread lists live in registers/local memory). */
export const CUDA_TOPK_MAX_K = 128;

/** The threshold in effect: DENSEVEC_CUDA_MIN_WORK if it is a non-negative number, else the default. */
export function cudaAutoMinWork(): number {
  const v = Number(process.env.DENSEVEC_CUDA_MIN_WORK);
  return process.env.DENSEVEC_CUDA_MIN_WORK !== undefined && Number.isFinite(v) && v >= 0 ? v : CUDA_AUTO_MIN_WORK;
}

/**
 * Runs `gpu` with the binding when this call should run on the GPU, else `cpu`. `work` is
 * q.rows · c.rows · cols; `eligible` is false for calls the GPU path does not take (k too large).
 */
export function viaCuda<T>(work: number, eligible: boolean, gpu: (b: NativeBinding) => T, cpu: () => T, b: NativeBinding): T {
  if (!eligible) return cpu();
  const route = cudaRoute();
  if (route === 'strict') return gpu(b);
  if (route === 'auto' && work >= cudaAutoMinWork()) {
    try {
      return gpu(b);
    } catch {
      return cpu();
    }
  }
  return cpu();
}
