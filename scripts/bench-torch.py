#!/usr/bin/env python3
"""PyTorch CPU anchors for bench/suites/learning.js and bench/suites/geometry.js (autograd, float32).

Workloads (forward + backward of the loss with respect to every input, like densevec's calls):
  (infonce, ntxent, margin: with params.autocast the forward runs under
   torch.autocast('cpu', dtype=torch.bfloat16), the bf16 anchor of densevec's precision: 'bf16')
  infonce      q, keys: B×d; logits = q̂·k̂ᵀ/τ (rows L2-normalized when params.normalize), CE to i → i
  ntxent       a, b: N×d; SimCLR NT-Xent over the 2N normalized views, τ = params.temperature
  margin       x: N×d, W: C×d, labels; arcface / cosface / normalized logits, CE with label smoothing
  wasserstein  a, b: n×d; sorted pairwise cosines of each view, loss = mean |S_a,(k) − S_b,(k)|^p
  negsampling  x, positives: n×d, negatives: (n·k)×d; word2vec's −log σ(s⁺) − Σ log σ(−s⁻), mean over n
See scripts/bench_serve.py for how it is driven (served by bench/run.js, or standalone).
"""
import contextlib
import math
import sys

import bench_serve as serve

# torch missing: tell the caller, which skips these rows
np, torch, F = serve.need('numpy', 'torch', 'torch.nn.functional')

VERSIONS = {'torch': torch.__version__, 'numpy': np.__version__, 'python': sys.version.split()[0]}


def set_threads(n):
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def autocast(params):
    """torch.autocast('cpu', dtype=torch.bfloat16) when params.autocast, else no context."""
    if params.get('autocast'):
        return torch.autocast('cpu', dtype=torch.bfloat16)
    return contextlib.nullcontext()


def leaf(arr):
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).requires_grad_(True)


def infonce(params, inp):
    q, k = leaf(inp['q']), leaf(inp['keys'])
    tau = float(params.get('temperature', 0.07))
    norm = bool(params.get('normalize', True))
    target = torch.arange(q.shape[0])

    def step():
        q.grad = None
        k.grad = None
        with autocast(params):
            qq = F.normalize(q, dim=1) if norm else q
            kk = F.normalize(k, dim=1) if norm else k
            loss = F.cross_entropy(qq @ kk.T / tau, target)
        loss.backward()
        return loss.detach()

    return step, float(step()), {}


def ntxent(params, inp):
    a, b = leaf(inp['a']), leaf(inp['b'])
    tau = float(params.get('temperature', 0.1))
    n = a.shape[0]
    eye = torch.eye(2 * n, dtype=torch.bool)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])

    def step():
        a.grad = None
        b.grad = None
        with autocast(params):
            z = F.normalize(torch.cat([a, b]), dim=1)
            sim = (z @ z.T / tau).masked_fill(eye, float('-inf'))
            loss = F.cross_entropy(sim, target)
        loss.backward()
        return loss.detach()

    return step, float(step()), {}


def margin(params, inp):
    x, w = leaf(inp['x']), leaf(inp['prototypes'])
    y = torch.from_numpy(inp['labels'].astype(np.int64))
    kind = params.get('kind', 'arcface')
    s = float(params.get('scale', 30.0))
    m = float(params.get('margin', 0.5 if kind == 'arcface' else 0.35))
    eps = float(params.get('labelSmoothing', 0.0))
    cos_m, sin_m, th = math.cos(m), math.sin(m), math.cos(math.pi - m)

    def step():
        x.grad = None
        w.grad = None
        with autocast(params):
            cos = (F.normalize(x, dim=1) @ F.normalize(w, dim=1).T).float()
            cy = cos.gather(1, y[:, None]).squeeze(1)
            if kind == 'arcface':
                sin = torch.sqrt(torch.clamp(1 - cy * cy, min=1e-12))
                phi = torch.where(cy > th, cy * cos_m - sin * sin_m, cy - m * sin_m)
            elif kind == 'cosface':
                phi = cy - m
            else:
                phi = cy
            logits = s * cos.scatter(1, y[:, None], phi[:, None])
            loss = F.cross_entropy(logits, y, label_smoothing=eps)
        loss.backward()
        return loss.detach()

    return step, float(step()), {'kind': kind, 'scale': s, 'margin': m}


def wasserstein(params, inp):
    a, b = leaf(inp['a']), leaf(inp['b'])
    p = int(params.get('p', 2))
    n = a.shape[0]
    iu = torch.triu_indices(n, n, offset=1)

    def step():
        a.grad = None
        b.grad = None
        an = F.normalize(a, dim=1)
        bn = F.normalize(b, dim=1)
        sa = torch.sort((an @ an.T)[iu[0], iu[1]], stable=True).values
        sb = torch.sort((bn @ bn.T)[iu[0], iu[1]], stable=True).values
        diff = (sa - sb).abs()
        loss = (diff * diff).mean() if p == 2 else diff.mean()
        loss.backward()
        return loss.detach()

    return step, float(step()), {'pairs': int(iu.shape[1])}


def negsampling(params, inp):
    x, yp, yn = leaf(inp['x']), leaf(inp['positives']), leaf(inp['negatives'])
    n, d = x.shape
    k = yn.shape[0] // n

    def step():
        x.grad = None
        yp.grad = None
        yn.grad = None
        sp = (x * yp).sum(1)
        sn = torch.bmm(yn.view(n, k, d), x.unsqueeze(2)).squeeze(2)
        loss = -(F.logsigmoid(sp).sum() + F.logsigmoid(-sn).sum()) / n
        loss.backward()
        return loss.detach()

    return step, float(step()), {'k': k}


WORKLOADS = {'infonce': infonce, 'ntxent': ntxent, 'margin': margin, 'wasserstein': wasserstein, 'negsampling': negsampling}

SHAPES = {
    'infonce': lambda p: {'q': ([p.get('B', 4096), p.get('d', 768)], 'float32', None), 'keys': ([p.get('B', 4096), p.get('d', 768)], 'float32', None)},
    'ntxent': lambda p: {'a': ([p.get('B', 4096), p.get('d', 768)], 'float32', None), 'b': ([p.get('B', 4096), p.get('d', 768)], 'float32', None)},
    'margin': lambda p: {
        'x': ([p.get('N', 4096), p.get('d', 512)], 'float32', None),
        'prototypes': ([p.get('C', 10000), p.get('d', 512)], 'float32', None),
        'labels': ([p.get('N', 4096)], 'uint32', p.get('C', 10000)),
    },
    'wasserstein': lambda p: {'a': ([p.get('n', 2048), p.get('d', 128)], 'float32', None), 'b': ([p.get('n', 2048), p.get('d', 128)], 'float32', None)},
    'negsampling': lambda p: {
        'x': ([p.get('n', 4096), p.get('d', 300)], 'float32', None),
        'positives': ([p.get('n', 4096), p.get('d', 300)], 'float32', None),
        'negatives': ([p.get('n', 4096) * p.get('k', 5), p.get('d', 300)], 'float32', None),
    },
}

if __name__ == '__main__':
    serve.main(sys.modules[__name__])
