/**
 * The public names both entries export beside their functions — `densevec` (lib/index.ts) and
 * `densevec/reference` (lib/reference/index.ts): the error class, the Matrix helpers, the option
 * and result types of every chapter and the values the contract defines (quantization, the
 * corpus file format, the documented constants and streams). Listed once here, so the two
 * entries cannot drift apart.
 */
export { DensevecError } from '../errors';
export type { ErrorCode } from '../errors';
export { matrix, row, rows } from '../matrix';
export type { Matrix } from '../matrix';
export type { Metric } from './validate';
export { matrixFrom, toArrow } from '../inputs';
export type { TensorLike } from '../inputs';

export { SKIP_NONE } from './similarity';
export type { MetricOptions, TopKOptions, TopKResult } from './similarity';
export { quantize, dequantize, f16ToNumber, numberToF16, bf16ToNumber, numberToBf16 } from './quantized';
export type { Corpus, HalfMatrix, Int8Matrix, QuantizedMatrix, QuantizeOptions } from './quantized';

export type { NullCosine, PValueOptions, SimilarityStats, SimilarityStatsOptions, Tail } from './statistics';

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
} from './contrastive';

export { ARCFACE_SIN_EPS } from './margin';
export type {
  CrossEntropyResult,
  MarginGeometryOptions,
  MarginGeometryResult,
  MarginKind,
  MarginOptions,
  MarginResult,
  PenaltyResult,
} from './margin';

export { GaussianStream } from './geometry';
export type { ProcrustesResult, SphericalTriangle } from './geometry';
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
} from './curvature';

export type {
  BatchNormForwardOptions,
  BatchNormGrads,
  BatchNormOptions,
  EmbeddingDrift,
  Sparsity,
  SparsityOptions,
  WassersteinOptions,
  WassersteinResult,
} from './regularizers';

export { mergeTopK, writeCorpus, readCorpusHeader, corpusChunks, CORPUS_MAGIC, CORPUS_VERSION, CORPUS_HEADER_BYTES } from './pipelines';
export type { MergeTopKOptions, TopKStreamOptions, CorpusChunk, CorpusChunks, CorpusFileInfo, OpenCorpusOptions } from './pipelines';

export type { NegativeSamplingOptions, NegativeSamplingResult, WeightsLike } from './sampling';
