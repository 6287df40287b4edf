/**
 * densevec/reference — the pure-TypeScript reference implementation of every function, written
 * for clarity with float64 accumulation. Same names, arguments and errors as `densevec`: this
 * entry exports that public API and nothing else (the argument checks both backends share live
 * in lib/contract/; the types and values both entries export are listed once, in
 * lib/contract/api.ts).
 */
export * from '../contract/api';

export { dot, cosine, l2sq, norm, normalize, normalizeInPlace, normalizeRows, similarityMatrix, topK } from './similarity';
export { dotRows, cosineRows, l2sqRows, l1Rows } from './rows';
export { randomUnitVectors, nullCosine, cosinePValue, similarityStats } from './statistics';
export { infoNCE, ntXent, mismatchScore, softmaxProbabilities, temperatureSchedule } from './contrastive';
export { marginSoftmax, labelSmoothingCrossEntropy, normPenalty, l1Penalty, marginGeometry } from './margin';
export { knnClassify, randomOrthogonal, matmul, procrustes, sphericalTriangle } from './geometry';
export { graphGeodesics, hyperbolicity, triangleCurvature, mapDistortion, analogy } from './curvature';
export { BatchNorm, batchNormLag, softThreshold, softThresholdInPlace, embeddingDrift, sparsity, wassersteinRegularizer } from './regularizers';
export { topKStream, openCorpus } from './pipelines';
export { AliasSampler, unigramWeights, negativeSamplingLoss } from './sampling';
