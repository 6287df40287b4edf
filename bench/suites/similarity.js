// Suite 2 — similarity matrix: 100 queries × 20,000 corpus rows, d = 768 (dot; the cosine row
// adds the norms). Anchors: onnxruntime-node Gemm (transB = 1, bench/models/gemm_nt.onnx),
// usearch exactSearch (computes every score, keeps the top 10), simsimd one call per pair on a
// tenth of the corpus, scaled ×10. 1 and 2 threads.
'use strict';

const { dv, anchor, impl, Suite, randMatrix, dvThreads, ortOptions, modelBytes, peakGflops } = require('../common');

module.exports = async function similarity({ quick }) {
  const suite = new Suite('similarity', { quick });
  const Q = 100;
  const N = 20000;
  const D = 768;
  const q = randMatrix(Q, D, 21);
  const c = randMatrix(N, D, 22);
  const flop = 2 * Q * N * D;
  const PEAK = peakGflops();
  suite.note(
    `GFLOP/s counts 2·q·n·d = ${(flop / 1e9).toFixed(2)} GFLOP per call; % of peak against the fp32 FMA peak measured in this run: ${PEAK ? `${PEAK.toFixed(1)} GFLOP/s per core` : 'not measured'}`,
  );

  const ort = anchor('onnxruntime-node', suite.notes);
  const usearch = anchor('usearch', suite.notes);
  const simsimd = anchor('simsimd', suite.notes);

  const impls = [];
  for (const t of [1, 2]) {
    impls.push(impl('densevec', 'densevec', t, () => dv.similarityMatrix(q, c, { metric: 'dot' }), { before: dvThreads(t) }));
  }
  impls.push(impl('densevec cosine', 'densevec-extra', 1, () => dv.similarityMatrix(q, c, { metric: 'cosine' }), { before: dvThreads(1) }));
  // precision: 'bf16' (vdpbf16ps where the CPU has AVX512-BF16); GFLOP/s still counts 2·q·n·d.
  impls.push(impl('densevec bf16', 'densevec-extra', 1, () => dv.similarityMatrix(q, c, { metric: 'dot', precision: 'bf16' }), { before: dvThreads(1) }));
  let check = null;
  if (ort) {
    const feeds = { A: new ort.Tensor('float32', q.data, [Q, D]), B: new ort.Tensor('float32', c.data, [N, D]) };
    for (const t of [1, 2]) {
      const session = await ort.InferenceSession.create(modelBytes('gemm_nt.onnx'), ortOptions(t));
      impls.push(impl('onnxruntime Gemm', 'anchor', t, () => session.run(feeds)));
      if (t === 1) check = (await session.run(feeds)).Y.data;
    }
  }
  if (usearch) {
    for (const t of [1, 2]) impls.push(impl('usearch exactSearch', 'anchor', t, () => usearch.exactSearch(c.data, q.data, D, 10, 'ip', t)));
  }
  if (simsimd) {
    const SUB = N / 10;
    const qr = Array.from({ length: Q }, (_, i) => q.data.subarray(i * D, (i + 1) * D));
    const cr = Array.from({ length: SUB }, (_, j) => c.data.subarray(j * D, (j + 1) * D));
    const out = new Float32Array(Q * SUB);
    impls.push(
      impl(
        'simsimd per pair (1/10 of corpus, ×10)',
        'anchor',
        1,
        () => {
          for (let i = 0; i < Q; i++) for (let j = 0; j < SUB; j++) out[i * SUB + j] = simsimd.inner(qr[i], cr[j]);
          return out;
        },
        { scale: 10 },
      ),
    );
  }
  if (check) {
    dv.setThreads(1);
    const mine = dv.similarityMatrix(q, c, { metric: 'dot' }).data;
    let worst = 0;
    for (let i = 0; i < mine.length; i++) worst = Math.max(worst, Math.abs(mine[i] - check[i]) / (1 + Math.abs(check[i])));
    suite.note(`densevec vs onnxruntime scores: max relative difference ${worst.toExponential(2)}`);
  }
  await suite.row({
    workload: 'similarityMatrix dot',
    params: { q: Q, n: N, d: D },
    impls,
    throughput: (ms) => ({ value: flop / ms / 1e6, unit: 'GFLOP/s' }),
    targets: [
      { anchor: 'onnxruntime Gemm', threads: 1, min: 1.05, what: '1T ≥ 1.05× onnxruntime Gemm' }, // PERF.md
      { kind: 'peak', threads: 1, densevec: 'densevec', min: 0.8, what: '1T fraction of the measured one-core peak ≥ 0.8' },
      { kind: 'scaling', label: 'densevec', min: 1.8, what: 'densevec 2T/1T ≥ 1.8' },
    ],
  });
  const row = suite.rows[suite.rows.length - 1];
  if (PEAK) {
    for (const e of row.implementations) {
      if (e.throughput) e.percentOfPeak = (100 * e.throughput.value) / (PEAK * (e.threads ?? 1));
      if (e.throughputPerCpuSecond) e.percentOfPeakPerCpuSecond = (100 * e.throughputPerCpuSecond.value) / PEAK;
    }
    console.log(
      `  % of peak, wall (${PEAK.toFixed(1)} GFLOP/s per core × threads): ${row.implementations.map((e) => `${e.name} ${e.percentOfPeak.toFixed(1)} %`).join(', ')}`,
    );
    console.log(`  % of peak per CPU-second: ${row.implementations.map((e) => `${e.name} ${e.percentOfPeakPerCpuSecond?.toFixed(1)} %`).join(', ')}`);
  }
  return suite.write();
};
