/**
 * densevec — fast, exact math for dense vector embeddings.
 *
 * Every function runs on the fastest available backend (native SIMD, CUDA where built in and
 * present, or the pure-TypeScript reference) and gives the same results within the documented
 * tolerance. `densevec/reference` exports the reference alone.
 */
export * from './contract/api';
export { backendInfo, setBackend, setThreads, setIsa, availableIsas, releaseMemory } from './backend';
export type { BackendInfo, BackendName, IsaName } from './backend';
export * from './similarity';
export { dotRows, cosineRows, l2sqRows, l1Rows } from './rows';
export * from './statistics';
export * from './contrastive';
export * from './margin';
export * from './geometry';
export * from './regularizers';
export * from './pipelines';
export * from './sampling';
