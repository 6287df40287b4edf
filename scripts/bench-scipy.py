#!/usr/bin/env python3
"""SciPy and POT anchors for bench/suites/geometry.js.

Workloads:
  procrustes  x, y: n×d (float32 files, converted once to float64 as SciPy users do);
              R = scipy.linalg.orthogonal_procrustes(x, y) and ‖x·R − y‖_F (both timed, as
              densevec returns both); value = ‖x·R − y‖_F
  pot_w1d     a, b: n×d; the n(n−1)/2 pairwise cosines of each view (float64) are computed once
              at setup; the timed call is ot.wasserstein_1d(S_a, S_b, p), which sorts them and
              returns W_p^p — the same number as densevec's wassersteinRegularizer loss
              (POT has no gradient through the normalization or the Gram matrix, so this
              anchor covers only the 1-D transport part of the work)
See scripts/bench_serve.py for how it is driven.
"""
import sys

import bench_serve as serve

np, scipy, _ = serve.need('numpy', 'scipy', 'scipy.linalg')

try:
    import ot
except Exception:  # POT is optional: its workload reports the error instead
    ot = None
try:
    from threadpoolctl import threadpool_limits
except Exception:
    threadpool_limits = None

VERSIONS = {'scipy': scipy.__version__, 'numpy': np.__version__, 'pot': getattr(ot, '__version__', None), 'python': sys.version.split()[0]}
_threads = None


def set_threads(n):
    global _threads
    if n != _threads and threadpool_limits is not None:
        threadpool_limits(limits=n)  # applies to every BLAS/OpenMP pool numpy and scipy loaded
        _threads = n


def procrustes(params, inp):
    x = np.ascontiguousarray(inp['x'], dtype=np.float64)
    y = np.ascontiguousarray(inp['y'], dtype=np.float64)

    def step():
        # The rotation and its residual, the two things densevec.procrustes returns.
        r, _ = scipy.linalg.orthogonal_procrustes(x, y)
        return r, np.linalg.norm(x @ r - y)

    _, res = step()
    return step, float(res), {'dtype': 'float64'}


def _pair_cosines(m):
    m = m.astype(np.float64)
    m = m / np.linalg.norm(m, axis=1, keepdims=True)
    g = m @ m.T
    return g[np.triu_indices(m.shape[0], k=1)]


def pot_w1d(params, inp):
    if ot is None:
        raise RuntimeError('POT (import ot) is not installed')
    p = int(params.get('p', 2))
    sa = _pair_cosines(inp['a'])
    sb = _pair_cosines(inp['b'])

    def step():
        return ot.wasserstein_1d(sa, sb, p=p)

    return step, float(step()), {'values': int(sa.shape[0])}


WORKLOADS = {'procrustes': procrustes, 'pot_w1d': pot_w1d}
SHAPES = {
    'procrustes': lambda p: {'x': ([p.get('n', 20000), p.get('d', 300)], 'float32', None), 'y': ([p.get('n', 20000), p.get('d', 300)], 'float32', None)},
    'pot_w1d': lambda p: {'a': ([p.get('n', 2048), p.get('d', 128)], 'float32', None), 'b': ([p.get('n', 2048), p.get('d', 128)], 'float32', None)},
}

if __name__ == '__main__':
    serve.main(sys.modules[__name__])
