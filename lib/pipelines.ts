/**
 * Pipelines: top-k that composes (exact merging of shard results, streaming over corpus chunks)
 * and corpora larger than memory (memory-mapped corpus files). See docs/pipelines.md.
 */
import { mapFile } from './backend';
import type { Matrix } from './matrix';
import type { Corpus } from './contract/quantized';
import {
  checkOpenOptions,
  corpusFromBuffer,
  readWhole,
  streamTopK,
  type CorpusChunks,
  type OpenCorpusOptions,
  type TopKStreamOptions,
} from './contract/pipelines';
import type { TopKResult } from './contract/similarity';
import { topK } from './similarity';
import { fail } from './errors';

/**
 * Global top-k over a corpus given as a sequence of chunks (an iterable or async iterable of
 * float32 or compact corpora, e.g. row ranges of an `openCorpus` file): indices are global, the
 * result equals `topK` over the concatenation. Each chunk is searched in place (no copy; the
 * event loop is given back between chunks, so a chunk's size bounds how long it is held), and
 * merged into the running result: extra memory O(q.rows · k). `onProgress(rowsDone)` is called
 * after each chunk.
 */
export function topKStream(q: Matrix, chunks: CorpusChunks, k: number, options?: TopKStreamOptions): Promise<TopKResult> {
  return streamTopK('topKStream', q, chunks, k, options, async (qq, c, kk, o) => {
    await new Promise<void>((resolve) => setImmediate(resolve));
    return topK(qq, c, kk, o);
  });
}

/**
 * Opens a corpus file written by `writeCorpus` and memory-maps it (`options.cols` /
 * `options.dtype`, when given, must match its header: E_SHAPE / E_ARG): the returned corpus (a
 * float32 Matrix, or an f16 / bf16 / i8 compact corpus) views the mapping without copying and
 * is usable wherever a corpus `c` is accepted. Pages are read from the file on demand, so a
 * corpus larger than memory can be searched (`topK` on it synchronously, or `topKStream` over
 * row ranges from {@link corpusChunks}). The mapping is private: writing into `data` changes
 * this process's copy only, never the file. It is unmapped when the garbage collector frees the
 * last view of it. Without the native addon the file is read into memory instead.
 * Bad files (shorter than the header, wrong magic or version, size not matching the header)
 * → E_SHAPE / E_ARG naming the reason.
 */
export function openCorpus(path: string, options?: OpenCorpusOptions): Corpus {
  if (typeof path !== 'string') fail('E_TYPE', `openCorpus: path must be a string, got ${typeof path}`);
  const expect = checkOpenOptions('openCorpus', options);
  const buf = mapFile(path) ?? readWhole('openCorpus', path);
  return corpusFromBuffer('openCorpus', path, buf, expect);
}
