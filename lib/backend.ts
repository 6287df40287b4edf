/**
 * Backend selection: the native addon (Rust, SIMD), CUDA (when built in and a GPU is present)
 * or the pure-TypeScript reference. The choice is made once at load (`DENSEVEC_BACKEND`) and
 * can be changed with {@link setBackend}.
 */
import { DensevecError, fail, fromNative } from './errors';

/** A raw single-pair entry point on two Float32Arrays of equal length (validated by the caller). */
export type FastPair = (a: Float32Array, b: Float32Array) => number;

/**
 * The binding produced by napi-rs (lib/native/binding.cjs), plus the raw low-overhead pair
 * functions the addon registers on its exports (not described by the generated typings).
 */
export type NativeBinding = typeof import('./native/binding.cjs') & {
  dotFast: FastPair;
  cosineFast: FastPair;
  l2sqFast: FastPair;
};

/** Name of a backend. */
export type BackendName = 'native' | 'cuda' | 'reference';

/** ISA names reported by {@link backendInfo}. */
export type IsaName = 'avx512' | 'avx2' | 'neon' | 'scalar';

/** Availability of the CUDA backend, as reported by {@link backendInfo}. */
export interface CudaStatus {
  /** Whether the GPU functions (similarityMatrix, topK, infoNCE, ntXent, marginSoftmax, wassersteinRegularizer) can run here. */
  available: boolean;
  /** Device name, e.g. 'NVIDIA H200' (when available). */
  device?: string;
  /** Total device memory in bytes (when available). */
  memory?: number;
  /** Compute capability 'major.minor' (when available). */
  computeCapability?: string;
  /**
   * How the GPU's matrix products run (when available): '3xTF32' (tensor cores with split
   * operands, float32 accuracy), 'FP32' (cuBLAS SGEMM; DENSEVEC_CUDA_GEMM=fp32 or no TF32 tensor
   * cores) or 'FP32 kernel' (densevec's own kernel, when cuBLAS is missing).
   */
  gemm?: string;
  /** Why the CUDA backend is not available: no driver, no NVRTC, no device, compile failure. */
  reason?: string;
}

/** What {@link backendInfo} returns. */
export interface BackendInfo {
  /** The backend that runs calls now. */
  backend: BackendName;
  /** SIMD family of the native kernels; null on the reference backend. */
  isa: IsaName | null;
  /** Worker threads of the native pool (1 on the reference backend). */
  threads: number;
  /** Whether the CUDA backend can run here, and why not. */
  cuda: CudaStatus;
  /** Why the native addon did not load, when it did not. */
  nativeError?: string;
  /**
   * Large freed blocks the native code keeps for reuse now (see {@link releaseMemory}); absent
   * without the addon.
   */
  keptMemory?: { blocks: number; bytes: number };
}

let binding: NativeBinding | null = null;
let loadError: string | null = null;

function firstLine(e: unknown): string {
  let msg: string;
  try {
    msg = e instanceof Error ? e.message : String(e);
  } catch {
    msg = 'unknown error';
  }
  return msg.split('\n')[0].trim();
}

/**
 * One line saying why the addon did not load. The napi-rs loader throws "Cannot find native
 * binding. …" and chains one error per candidate it tried in `cause`, the last tried outermost;
 * they are listed here in the order they were tried (first line of each, no require stacks).
 */
export function describeLoadError(e: unknown): string {
  const chain: string[] = [];
  let cur: unknown = e instanceof Error ? e.cause : undefined;
  while (cur != null && chain.length < 32) {
    chain.push(firstLine(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  let head = firstLine(e);
  if (chain.length === 0) return head;
  // Drop the npm advice that follows the first sentence; it is restated briefly below.
  const dot = head.indexOf('. ');
  if (dot > 0) head = head.slice(0, dot);
  return `${head}; tried, in order: ${chain.reverse().join('; ')} (if a densevec-<platform> package should be installed, remove node_modules and package-lock.json and install again, see npm/cli#4828)`;
}

function loadNative(): void {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = require('./native/binding.cjs') as NativeBinding;
    const warn = binding.nativeInit();
    if (warn) process.emitWarning(`densevec: ${warn}`);
  } catch (e) {
    binding = null;
    loadError = describeLoadError(e);
  }
}
loadNative();

/** Process-wide flag, so the fallback warning is written once even if this module loads twice. */
const WARNED = Symbol.for('densevec.referenceFallbackWarned');

let current: BackendName = 'reference';

let cudaCache: CudaStatus | null = null;
/** Whether the last setBackend was 'auto' (large similarity calls may then go to the GPU). */
let autoMode = true;

/** CUDA availability, probed once per process through the addon (never throws). */
export function cudaStatus(): CudaStatus {
  if (cudaCache) return cudaCache;
  if (!binding) return { available: false, reason: `the native addon is not available: ${loadError ?? 'unknown reason'}` };
  try {
    const c = binding.cudaInfo();
    const d = c.available ? c.device : null;
    cudaCache = d
      ? { available: true, device: d.name, memory: d.memory, computeCapability: d.computeCapability, gemm: d.gemm }
      : { available: false, reason: c.reason ?? 'unknown reason' };
  } catch (e) {
    cudaCache = { available: false, reason: firstLine(e) };
  }
  return cudaCache;
}

/**
 * How a similarityMatrix/topK call may use the GPU now: 'strict' (CUDA backend selected; errors
 * are the caller's), 'auto' (auto backend and a GPU is present; the caller decides by size and
 * falls back to the CPU on error) or null (CPU only).
 */
export function cudaRoute(): 'strict' | 'auto' | null {
  if (!binding) return null;
  if (current === 'cuda') return 'strict';
  if (autoMode && current === 'native' && cudaStatus().available) return 'auto';
  return null;
}

/** Chooses the backend: 'auto' (fastest available), 'native', 'cuda' or 'reference'. */
export function setBackend(name: 'auto' | BackendName): void {
  if (typeof name !== 'string') fail('E_TYPE', `setBackend: name must be a string, got ${name === null ? 'null' : typeof name}`);
  switch (name) {
    case 'auto':
      current = binding ? 'native' : 'reference';
      autoMode = true;
      return;
    case 'native':
      if (!binding) fail('E_BACKEND', `setBackend: the native addon is not available: ${loadError ?? 'unknown reason'}`);
      current = 'native';
      autoMode = false;
      return;
    case 'cuda': {
      const c = cudaStatus();
      if (!c.available) fail('E_BACKEND', `setBackend: the CUDA backend is not available: ${c.reason}`);
      current = 'cuda';
      autoMode = false;
      return;
    }
    case 'reference':
      current = 'reference';
      autoMode = false;
      return;
    default:
      fail('E_ARG', `setBackend: unknown backend '${String(name)}' (expected 'auto', 'native', 'cuda' or 'reference')`);
  }
}

const BACKEND_NAMES = new Set(['auto', 'native', 'cuda', 'reference']);

/**
 * Reads DENSEVEC_THREADS: unset or empty → null; else it must be a decimal integer in
 * [1, 1024] (E_ARG at load, naming the variable). The native pool reads the same variable.
 */
export function envThreads(raw: string | undefined): number | null {
  if (raw === undefined || raw === '') return null;
  // Digits only, as the native pool parses it (no sign, no spaces, no exponent).
  const n = /^[0-9]{1,5}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= 1024)) {
    throw new DensevecError('E_ARG', `densevec: DENSEVEC_THREADS must be an integer in [1, 1024], got '${raw}'`);
  }
  return n;
}

/**
 * Reads DENSEVEC_BACKEND: unset or empty → 'auto'; else one of 'auto', 'native', 'cuda',
 * 'reference' (E_ARG at load, naming the variable).
 */
export function envBackend(raw: string | undefined): 'auto' | BackendName {
  if (raw === undefined || raw === '') return 'auto';
  if (!BACKEND_NAMES.has(raw)) {
    throw new DensevecError('E_ARG', `densevec: DENSEVEC_BACKEND must be 'auto', 'native', 'cuda' or 'reference', got '${raw}'`);
  }
  return raw as 'auto' | BackendName;
}

function initBackend(): void {
  const want = envBackend(process.env.DENSEVEC_BACKEND);
  const threads = envThreads(process.env.DENSEVEC_THREADS);
  const requireNative = process.env.DENSEVEC_REQUIRE_NATIVE === '1';
  if (!binding) {
    if (requireNative) {
      throw new DensevecError('E_BACKEND', `densevec: DENSEVEC_REQUIRE_NATIVE=1 but the native addon did not load: ${loadError}`);
    }
    const g = globalThis as unknown as Record<symbol, boolean | undefined>;
    if (want !== 'reference' && !g[WARNED]) {
      g[WARNED] = true;
      process.stderr.write(`densevec: native addon unavailable, using the pure-TypeScript reference backend (${loadError})\n`);
    }
  }
  // The native pool reads the same (now validated) variable when it starts.
  void threads;
  try {
    setBackend(want);
  } catch (e) {
    if (e instanceof DensevecError && want !== 'auto') throw new DensevecError(e.code, `densevec: DENSEVEC_BACKEND=${want}: ${e.message}`);
    throw e;
  }
}
initBackend();

/**
 * The native binding when the native or CUDA backend is selected, else null (functions without
 * a GPU path run on the native CPU code under the CUDA backend).
 */
export function nat(): NativeBinding | null {
  return current === 'native' || current === 'cuda' ? binding : null;
}

/**
 * A private memory mapping of the file at `path` (see `openCorpus`) when the addon loaded,
 * whatever backend is selected; null without the addon.
 */
export function mapFile(path: string): ArrayBuffer | null {
  if (!binding) return null;
  try {
    return binding.mapCorpus(path);
  } catch (e) {
    rethrow(e);
  }
}

/** Rethrows a native error as a DensevecError. */
export function rethrow(e: unknown): never {
  throw fromNative(e);
}

/** Reports the backend, ISA, threads and CUDA availability. */
export function backendInfo(): BackendInfo {
  const info: BackendInfo = {
    backend: current,
    isa: current === 'reference' || !binding ? null : (binding.nativeIsa() as IsaName),
    threads: current === 'reference' || !binding ? 1 : binding.nativeThreads(),
    cuda: cudaStatus(),
  };
  if (loadError) info.nativeError = loadError;
  if (binding) {
    const [blocks, bytes] = binding.nativeKeptMemory();
    info.keptMemory = { blocks, bytes };
  }
  return info;
}

/**
 * Returns to the system, now, the large blocks (1 MiB and up) that the native code freed and
 * keeps for reuse. They are kept so that repeated calls of one shape do not take fresh pages
 * from the kernel on every call, and are returned by themselves after `DENSEVEC_KEEP_MS`
 * (default 10,000) milliseconds in which no large block was freed or reused; at most `DENSEVEC_KEEP_MB`
 * (default 512) MiB are kept, and 0 in either turns keeping off. Nothing happens
 * without the addon. Results never depend on it.
 */
export function releaseMemory(): void {
  if (binding) binding.nativeReleaseMemory();
}

/** Sets the worker threads of the native pool (integer ≥ 1). Results do not depend on it. */
export function setThreads(n: number): void {
  if (typeof n !== 'number' || !Number.isInteger(n)) fail('E_TYPE', `setThreads: n must be an integer, got ${String(n)}`);
  if (n < 1 || n > 1024) fail('E_ARG', `setThreads: n must be in [1, 1024], got ${n}`);
  if (binding) {
    try {
      binding.nativeSetThreads(n);
    } catch (e) {
      rethrow(e);
    }
  }
}

/**
 * Forces the native kernels onto a lower ISA ('scalar', 'avx2', 'avx512', 'neon'); the CPU
 * must support it. Also settable at load with `DENSEVEC_ISA`. For tests and benchmarks.
 */
export function setIsa(isa: IsaName): void {
  if (typeof isa !== 'string') fail('E_TYPE', `setIsa: isa must be a string, got ${typeof isa}`);
  if (!binding) fail('E_BACKEND', `setIsa: the native addon is not available: ${loadError}`);
  try {
    binding.nativeSetIsa(isa);
  } catch (e) {
    rethrow(e);
  }
}

/** ISAs the native kernels can run on this CPU, scalar first ([] without the addon). */
export function availableIsas(): IsaName[] {
  return binding ? (binding.nativeIsas() as IsaName[]) : [];
}
