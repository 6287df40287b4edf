// Suite 7 — the CUDA backend from Node: each GPU function end to end (typed arrays in, typed
// arrays out, host↔device copies included) against the native CPU backend on the same machine,
// all CPU threads. Runs only where backendInfo().cuda.available; elsewhere it records why not.
// The device-side figures (similarity vs bare cuBLAS SGEMM, InfoNCE at B = 65,536 against its
// SGEMM floor and PyTorch CUDA) come from scripts/gpu-check.sh; see docs/cuda.md.
'use strict';

const os = require('node:os');
const { dv, impl, Suite, randMatrix } = require('../common');

module.exports = async function cuda({ quick, smoke }) {
  const suite = new Suite('cuda', { quick });
  const info = dv.backendInfo().cuda;
  if (!info.available) {
    suite.note(`skipped: no usable GPU here (${info.reason}); run on a GPU machine, or scripts/gpu-check.sh there`);
    return suite.write();
  }
  suite.note(`device ${info.device}, compute capability ${info.computeCapability}, GEMM ${info.gemm}`);
  const cores = os.cpus().length;
  const onCuda = () => dv.setBackend('cuda');
  const onCpu = () => {
    dv.setBackend('native');
    if (dv.backendInfo().threads !== cores) dv.setThreads(cores);
  };
  const pair = (label, fn) => [
    impl(`densevec CUDA ${label}`, 'densevec', null, fn, { before: onCuda }),
    impl(`densevec native ${label}`, 'anchor', null, fn, { before: onCpu }),
  ];
  const s = smoke ? 16 : 1;
  const rows = [
    {
      workload: 'similarityMatrix cosine',
      params: { q: 1000 / s, n: 100000 / s, d: 768 },
      make: (p) => {
        const q = randMatrix(p.q, p.d, 1);
        const c = randMatrix(p.n, p.d, 2);
        return () => dv.similarityMatrix(q, c);
      },
      flops: (p) => 2 * p.q * p.n * p.d,
    },
    {
      workload: 'topK k=10 dot',
      params: { q: 1000 / s, n: 1000000 / s, d: 768 },
      make: (p) => {
        const q = randMatrix(p.q, p.d, 3);
        const c = randMatrix(p.n, p.d, 4);
        return () => dv.topK(q, c, 10, { metric: 'dot' });
      },
      flops: (p) => 2 * p.q * p.n * p.d,
    },
    {
      workload: 'infoNCE fwd+bwd, normalize',
      params: { b: 16384 / s, d: 768 },
      make: (p) => {
        const q = randMatrix(p.b, p.d, 5);
        const k = randMatrix(p.b, p.d, 6);
        return () => dv.infoNCE(q, k, { temperature: 0.07, normalize: true });
      },
      flops: (p) => 6 * p.b * p.b * p.d,
    },
    {
      workload: 'ntXent fwd+bwd',
      params: { n: 4096 / s, d: 512 },
      make: (p) => {
        const a = randMatrix(p.n, p.d, 7);
        const b = randMatrix(p.n, p.d, 8);
        return () => dv.ntXent(a, b, { temperature: 0.1 });
      },
      flops: (p) => 6 * 4 * p.n * p.n * p.d,
    },
    {
      workload: 'marginSoftmax arcface fwd+bwd',
      params: { n: 4096 / s, c: 10000 / s, d: 512 },
      make: (p) => {
        const x = randMatrix(p.n, p.d, 9);
        const w = randMatrix(p.c, p.d, 10);
        const labels = Uint32Array.from({ length: p.n }, (_, i) => i % p.c);
        return () => dv.marginSoftmax(x, w, labels, { kind: 'arcface', scale: 64, margin: 0.5 });
      },
      flops: (p) => 6 * p.n * p.c * p.d,
    },
    {
      workload: 'wassersteinRegularizer p=2',
      params: { n: 8192 / s, d: 128 },
      make: (p) => {
        const a = randMatrix(p.n, p.d, 11);
        const b = randMatrix(p.n, p.d, 12);
        return () => dv.wassersteinRegularizer(a, b);
      },
      flops: null,
    },
  ];
  try {
    for (const r of rows) {
      const fn = r.make(r.params);
      await suite.row({
        workload: r.workload,
        params: r.params,
        impls: pair(r.workload.split(' ')[0], fn),
        throughput: r.flops ? (ms) => ({ value: r.flops(r.params) / ms / 1e9, unit: 'GFLOP/s' }) : null,
        targets: [{ anchor: `densevec native ${r.workload.split(' ')[0]}`, min: 1, what: `CUDA ≥ 1× native (${cores} threads)` }],
        opts: { rounds: quick ? 3 : 7, minSampleMs: 0, warmupMs: 0 },
      });
    }
  } finally {
    dv.setBackend('auto');
  }
  return suite.write();
};
