/**
 * densevec/reference — the pure-TypeScript reference implementation of every function, written
 * for clarity with float64 accumulation. Same names, arguments and errors as `densevec`: this
 * entry exports that public API and nothing else (the argument checks both backends share live
 * in lib/contract/).
 */
export { DensevecError } from '../errors';
export type { ErrorCode } from '../errors';
export { matrix, row, rows } from '../matrix';
export type { Matrix } from '../matrix';
export type { Metric } from '../contract/validate';
export { matrixFrom, toArrow } from '../inputs';
export type { TensorLike } from '../inputs';

export { dot, cosine, l2sq, norm, normalize, normalizeInPlace, normalizeRows, similarityMatrix, topK } from './similarity';
export { SKIP_NONE } from '../contract/similarity';
export type { MetricOptions, TopKOptions, TopKResult } from '../contract/similarity';
export { quantize, dequantize, f16ToNumber, numberToF16, bf16ToNumber, numberToBf16 } from '../contract/quantized';
export type { Corpus, HalfMatrix, Int8Matrix, QuantizedMatrix, QuantizeOptions } from '../contract/quantized';
export { dotRows, cosineRows, l2sqRows, l1Rows } from './rows';

export { randomUnitVectors, nullCosine, cosinePValue, similarityStats } from './statistics';
export type { NullCosine, PValueOptions, SimilarityStats, SimilarityStatsOptions, Tail } from '../contract/statistics';

export { infoNCE, ntXent, mismatchScore, softmaxProbabilities, temperatureSchedule } from './contrastive';
export type {
  ContrastiveStats,
  InfoNCEOptions,
  InfoNCEResult,
  MismatchOptions,
  MismatchResult,
  NtXentOptions,
  NtXentResult,
  ScheduleKind,
  ScheduleOptions,
} from '../contract/contrastive';

export { marginSoftmax, labelSmoothingCrossEntropy, normPenalty, l1Penalty, marginGeometry } from './margin';
export { ARCFACE_SIN_EPS } from '../contract/margin';
export type {
  CrossEntropyResult,
  MarginGeometryOptions,
  MarginGeometryResult,
  MarginKind,
  MarginOptions,
  MarginResult,
  PenaltyResult,
} from '../contract/margin';

export { knnClassify, randomOrthogonal, matmul, procrustes, sphericalTriangle } from './geometry';
export { GaussianStream } from '../contract/geometry';
export type { ProcrustesResult, SphericalTriangle } from '../contract/geometry';
export { graphGeodesics, hyperbolicity, triangleCurvature, mapDistortion, analogy } from './curvature';
export type {
  AnalogyOptions,
  AnalogyResult,
  GraphGeodesicsOptions,
  GraphMetric,
  GraphOptions,
  Hyperbolicity,
  HyperbolicityOptions,
  MapDistortion,
  MapDistortionOptions,
  TriangleCurvature,
  TriangleCurvatureOptions,
} from '../contract/curvature';

export { BatchNorm, batchNormLag, softThreshold, softThresholdInPlace, embeddingDrift, sparsity, wassersteinRegularizer } from './regularizers';
export type {
  BatchNormForwardOptions,
  BatchNormGrads,
  BatchNormOptions,
  EmbeddingDrift,
  Sparsity,
  SparsityOptions,
  WassersteinOptions,
  WassersteinResult,
} from '../contract/regularizers';

export { topKStream, openCorpus } from './pipelines';
export { mergeTopK, writeCorpus, readCorpusHeader, corpusChunks, CORPUS_MAGIC, CORPUS_VERSION, CORPUS_HEADER_BYTES } from '../contract/pipelines';
export type { MergeTopKOptions, TopKStreamOptions, CorpusChunk, CorpusChunks, CorpusFileInfo, OpenCorpusOptions } from '../contract/pipelines';

export { AliasSampler, unigramWeights, negativeSamplingLoss } from './sampling';
export type { NegativeSamplingOptions, NegativeSamplingResult, WeightsLike } from '../contract/sampling';
