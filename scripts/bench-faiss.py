#!/usr/bin/env python3
"""faiss anchor for bench/suites/topk.js: exact inner-product top-k with IndexFlatIP (pip install faiss-cpu).

Workload:
  flatip  corpus: N×d, queries: Q×d, params.k; the index is built once at setup (a copy of the
          corpus); the timed call is index.search(queries, k), with
          distance_compute_blas_threshold = 20 (params.blas_threshold) so a batch of queries goes
          through BLAS
See scripts/bench_serve.py for how it is driven.
"""
import sys

import bench_serve as serve

np, faiss = serve.need('numpy', 'faiss', hint=' (try: pip install faiss-cpu)')

VERSIONS = {'faiss': faiss.__version__, 'numpy': np.__version__, 'python': sys.version.split()[0]}


def set_threads(n):
    faiss.omp_set_num_threads(n)


def flatip(params, inp):
    k = int(params.get('k', 10))
    corpus = np.ascontiguousarray(inp['corpus'], dtype=np.float32)
    queries = np.ascontiguousarray(inp['queries'], dtype=np.float32)
    # faiss 1.15's default threshold (128000 queries) sends a 100-query batch down the one-pair-
    # at-a-time path, ~7× slower here than its BLAS path; 20 (the long-standing default) gives
    # faiss its best time at this batch size.
    default_threshold = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = int(params.get('blas_threshold', 20))
    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(corpus)

    def step():
        return index.search(queries, k)

    scores, ids = step()
    return step, float(scores[:, 0].sum()), {
        'first_ids': ids[0, :k].tolist(),
        'blas_threshold': faiss.cvar.distance_compute_blas_threshold,
        'default_blas_threshold': default_threshold,
    }


WORKLOADS = {'flatip': flatip}
SHAPES = {
    'flatip': lambda p: {'corpus': ([p.get('N', 100000), p.get('d', 768)], 'float32', None), 'queries': ([p.get('Q', 100), p.get('d', 768)], 'float32', None)},
}

if __name__ == '__main__':
    serve.main(sys.modules[__name__])
