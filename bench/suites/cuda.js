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
  // Each row: the row counts of its two input matrices (p.d columns, seeds 1, 2, 3, … in row
  // order) and the call on them.
  const rows = [
    {
      workload: 'similarityMatrix cosine',
      params: { q: Math.round(1000 / s), n: 100000 / s, d: 768 },
      inputRows: (p) => [p.q, p.n],
      make: (q, c) => () => dv.similarityMatrix(q, c),
      flops: (p) => 2 * p.q * p.n * p.d,
    },
    {
      workload: 'topK k=10 dot',
      params: { q: Math.round(1000 / s), n: 1000000 / s, d: 768 },
      inputRows: (p) => [p.q, p.n],
      make: (q, c) => () => dv.topK(q, c, 10, { metric: 'dot' }),
      flops: (p) => 2 * p.q * p.n * p.d,
    },
    {
      workload: 'infoNCE fwd+bwd, normalize',
      params: { b: 16384 / s, d: 768 },
      inputRows: (p) => [p.b, p.b],
      make: (q, k) => () => dv.infoNCE(q, k, { temperature: 0.07, normalize: true }),
      flops: (p) => 6 * p.b * p.b * p.d,
    },
    {
      workload: 'ntXent fwd+bwd',
      params: { n: 4096 / s, d: 512 },
      inputRows: (p) => [p.n, p.n],
      make: (a, b) => () => dv.ntXent(a, b, { temperature: 0.1 }),
      flops: (p) => 6 * 4 * p.n * p.n * p.d,
    },
    {
      workload: 'marginSoftmax arcface fwd+bwd',
      params: { n: 4096 / s, c: 10000 / s, d: 512 },
      inputRows: (p) => [p.n, p.c],
      make: (x, w) => {
        const labels = Uint32Array.from({ length: x.rows }, (_, i) => i % w.rows);
        return () => dv.marginSoftmax(x, w, labels, { kind: 'arcface', scale: 64, margin: 0.5 });
      },
      flops: (p) => 6 * p.n * p.c * p.d,
    },
    {
      workload: 'wassersteinRegularizer p=2',
      params: { n: 8192 / s, d: 128 },
      inputRows: (p) => [p.n, p.n],
      make: (a, b) => () => dv.wassersteinRegularizer(a, b),
      flops: null,
    },
  ];
  let seed = 0;
  try {
    for (const r of rows) {
      const fn = r.make(...r.inputRows(r.params).map((n) => randMatrix(n, r.params.d, ++seed)));
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
