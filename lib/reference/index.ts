/**
 * densevec/reference — the pure-TypeScript reference implementation of every function, written
 * for clarity with float64 accumulation. Same names, arguments and errors as `densevec`.
 */
export { DensevecError } from '../errors';
export type { ErrorCode } from '../errors';
export { matrix, row, rows } from '../matrix';
export type { Matrix } from '../matrix';
export * from './similarity';
export { dotRows, cosineRows, l2sqRows, l1Rows } from './rows';
export * from './quantized';
export * from './statistics';
export * from './contrastive';
export * from './margin';
export * from './geometry';
export * from './regularizers';
export * from './pipelines';
export { matrixFrom, toArrow } from '../inputs';
export type { TensorLike } from '../inputs';
export * from './sampling';
