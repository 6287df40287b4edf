/**
 * Pipelines (reference): exact merging of top-k results computed over corpus shards, streaming
 * top-k over a sequence of corpus chunks, and the corpus file format (`writeCorpus` /
 * `openCorpus`). The merge is implemented here once and used by every backend.
 */
import {
  checkOpenOptions,
  type CorpusChunks,
  corpusFromBuffer,
  type OpenCorpusOptions,
  readWhole,
  streamTopK,
  type TopKStreamOptions,
} from '../contract/pipelines';
import type { Corpus } from '../contract/quantized';
import type { TopKResult } from '../contract/similarity';
import type { Matrix } from '../matrix';
import { topK } from './similarity';

/**
 * Global top-k over a corpus given as a sequence of chunks (an iterable or async iterable of
 * float32 or compact corpora): indices are global (chunk offsets added), the result equals
 * `topK` over the concatenation. Memory O(q.rows · k + one chunk). `onProgress(rowsDone)` is
 * called after each chunk.
 */
export function topKStream(q: Matrix, chunks: CorpusChunks, k: number, options?: TopKStreamOptions): Promise<TopKResult> {
  return streamTopK('topKStream', q, chunks, k, options, topK);
}

/**
 * Opens a corpus file written by {@link writeCorpus}; `options.cols` / `options.dtype`, when
 * given, must match the file's header. The reference reads the file into memory;
 * `densevec`'s `openCorpus` memory-maps it instead. Bad files (truncated, wrong magic or
 * version, size not matching the header) → E_SHAPE / E_ARG with the reason.
 */
export function openCorpus(path: string, options?: OpenCorpusOptions): Corpus {
  const expect = checkOpenOptions('openCorpus', options);
  return corpusFromBuffer('openCorpus', path, readWhole('openCorpus', path), expect);
}
