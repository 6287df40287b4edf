"""Shared loop of the Python benchmark anchors (scripts/bench-torch.py, bench-scipy.py, bench-faiss.py),
which `import bench_serve`.

Two ways to run a workload script:

  * served (what bench/run.js does): `python3 scripts/bench-torch.py --serve`, then one JSON
    command per line on stdin, one JSON reply per line on stdout:
        {"cmd": "setup", "id": "x", "workload": "infonce", "params": {...},
         "inputs": {"q": {"path": "/tmp/…/q.f32", "dtype": "float32", "shape": [4096, 768]}, …}}
            → {"ok": true, "value": <loss or checksum of one call>, "info": {...}}
        {"cmd": "run", "id": "x", "reps": 3, "threads": 1}
            → {"ok": true, "ms": <wall time of reps calls>, "cpu_ms": <process CPU time, all threads>}
        {"cmd": "free", "id": "x"}, {"cmd": "exit"}
    The first line on stdout is {"ready": true, "versions": {...}} or {"ready": false, "error": "..."}.
    bench/run.js alternates these runs with the densevec calls round by round, so the anchors
    are measured interleaved with densevec while this process waits idle on stdin.

  * standalone: `python3 scripts/bench-torch.py infonce --params '{"B": 4096, "d": 768}'
    --threads 1 --rounds 5` fills the inputs with random normals and prints JSON timings
    (median and all samples, ms per call).
"""
import argparse
import importlib
import json
import statistics
import sys
import time

import numpy as np


def need(*modules, hint=''):
    """Imports `modules` and returns them; when one is missing, tells the caller (which skips
    these rows) with a {"ready": false} line and exits."""
    try:
        return [importlib.import_module(m) for m in modules]
    except Exception as e:
        print(json.dumps({'ready': False, 'error': f'{type(e).__name__}: {e}{hint}'}), flush=True)
        sys.exit(0)


def load_input(spec):
    dtype = np.dtype(spec.get('dtype', 'float32'))
    arr = np.fromfile(spec['path'], dtype=dtype)
    return arr.reshape(spec['shape'])


def random_inputs(shapes, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for name, (shape, dtype, hi) in shapes.items():
        if dtype == 'uint32':
            out[name] = rng.integers(0, hi, size=shape, dtype=np.uint32)
        else:
            out[name] = rng.standard_normal(shape, dtype=np.float32)
    return out


def timed(fn, reps):
    """(wall ms, process CPU ms over all threads) for reps calls."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3


def serve(module):
    """module: has VERSIONS (dict), WORKLOADS {name: setup(params, inputs) -> (fn, value, info)}, set_threads(n)."""
    out = sys.stdout
    print(json.dumps({'ready': True, 'versions': module.VERSIONS}), file=out, flush=True)
    jobs = {}
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
            cmd = msg['cmd']
            if cmd == 'exit':
                print(json.dumps({'ok': True}), file=out, flush=True)
                return
            if cmd == 'setup':
                module.set_threads(msg.get('threads', 1))
                inputs = {k: load_input(v) for k, v in msg.get('inputs', {}).items()}
                fn, value, info = module.WORKLOADS[msg['workload']](msg.get('params', {}), inputs)
                jobs[msg['id']] = fn
                reply = {'ok': True, 'value': value, 'info': info}
            elif cmd == 'run':
                module.set_threads(msg.get('threads', 1))
                ms, cpu_ms = timed(jobs[msg['id']], int(msg.get('reps', 1)))
                reply = {'ok': True, 'ms': ms, 'cpu_ms': cpu_ms}
            elif cmd == 'free':
                jobs.pop(msg['id'], None)
                reply = {'ok': True}
            else:
                reply = {'ok': False, 'error': f'unknown command {cmd}'}
        except Exception as e:  # report and keep serving
            reply = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
        print(json.dumps(reply), file=out, flush=True)


def standalone(module, argv):
    ap = argparse.ArgumentParser()
    ap.add_argument('workload', choices=sorted(module.WORKLOADS))
    ap.add_argument('--params', default='{}')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--rounds', type=int, default=5)
    args = ap.parse_args(argv)
    params = json.loads(args.params)
    module.set_threads(args.threads)
    inputs = random_inputs(module.SHAPES[args.workload](params))
    fn, value, info = module.WORKLOADS[args.workload](params, inputs)
    fn()  # warm-up
    samples = [timed(fn, 1)[0] for _ in range(args.rounds)]
    print(json.dumps({'workload': args.workload, 'params': params, 'threads': args.threads, 'versions': module.VERSIONS,
                      'value': value, 'info': info, 'median_ms': statistics.median(samples), 'samples_ms': samples}))


def main(module):
    if len(sys.argv) > 1 and sys.argv[1] == '--serve':
        serve(module)
    else:
        standalone(module, sys.argv[1:])
