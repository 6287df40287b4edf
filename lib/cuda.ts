/**
 * Routing to the optional CUDA backend. On the GPU: similarityMatrix, topK (k ≤ 128), infoNCE,
 * ntXent, marginSoftmax and wassersteinRegularizer (the synchronous forms).
 *
 * - backend 'cuda' (setBackend('cuda') or DENSEVEC_BACKEND=cuda): every call of those functions
 *   runs on the GPU; GPU errors are thrown (E_BACKEND). Other functions, the …Async twins, and
 *   topK with larger k run on the native CPU code.
 * - backend 'auto' (the default): a call goes to the GPU only when a GPU is present and the call
 *   is large enough to win over the CPU after the host↔device copies: when its work
 *   ({@link CUDA_WORK}: the multiply-adds of its GEMMs) is at least {@link cudaAutoMinWork}
 *   (2e9 by default, settable with DENSEVEC_CUDA_MIN_WORK); a GPU error then falls back to the
 *   CPU silently.
 */
import { cudaRoute, type NativeBinding } from './backend';

/** Default multiply-add count (q.rows · c.rows · cols) from which 'auto' uses the GPU. */
export const CUDA_AUTO_MIN_WORK = 2e9;

/**
 * The work of a call as the 'auto' backend measures it: the multiply-adds of the GEMMs the GPU
 * runs for it (for the Wasserstein regularizer, plus 64 per pair for the sort).
 */
export const CUDA_WORK = {
  similarity: (qRows: number, cRows: number, cols: number): number => qRows * cRows * cols,
  /** Three B × K × d GEMMs: logits, gradQ, gradKeys. */
  infoNCE: (qRows: number, kRows: number, cols: number): number => 3 * qRows * kRows * cols,
  /** The same over the 2N rows of both views. */
  ntXent: (rows: number, cols: number): number => 3 * (2 * rows) * (2 * rows) * cols,
  /** Three N × C × d GEMMs: cosines, gradX, gradW. */
  marginSoftmax: (rows: number, classes: number, cols: number): number => 3 * rows * classes * cols,
  /** Two n × n × d GEMMs per view (cosines, gradient) and the sort of n(n−1)/2 pairs. */
  wassersteinRegularizer: (rows: number, cols: number): number => 4 * rows * rows * cols + 64 * ((rows * (rows - 1)) / 2),
};

/** Largest k the GPU top-k handles (its per-thread lists live in registers/local memory). */
export const CUDA_TOPK_MAX_K = 128;

/** The threshold in effect: DENSEVEC_CUDA_MIN_WORK if it is a non-negative number, else the default. */
export function cudaAutoMinWork(): number {
  const v = Number(process.env.DENSEVEC_CUDA_MIN_WORK);
  return process.env.DENSEVEC_CUDA_MIN_WORK !== undefined && Number.isFinite(v) && v >= 0 ? v : CUDA_AUTO_MIN_WORK;
}

/**
 * Runs `gpu` with the binding when this call should run on the GPU, else `cpu`. `work` is the
 * call's {@link CUDA_WORK}; `eligible` is false for calls the GPU path does not take (k too large).
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
