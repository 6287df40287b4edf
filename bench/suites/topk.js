// Suite 3 — exact top-10: 100 queries × 100,000 corpus rows, d = 768 (inner product).
// Anchors: onnxruntime-node Gemm+TopK graph (bench/models/gemm_nt_topk.onnx; it materializes the
// whole 100 × 100,000 score table), usearch exactSearch, faiss IndexFlatIP (Python, optional).
// Also the peak extra memory of one densevec topK call (VmHWM after a reset, minus VmRSS before).
'use strict';

const { dv, anchor, impl, Suite, randMatrix, dvThreads, ortOptions, modelBytes, procStatus, resetPeakRss } = require('../common');
const { startPython, input } = require('../python');

function peakExtra(fn) {
  global.gc?.();
  if (!resetPeakRss()) return null;
  const before = procStatus().VmRSS;
  const r = fn();
  const after = procStatus();
  return { result: r, extraBytes: after.VmHWM - before };
}

module.exports = async function topk({ quick }) {
  const suite = new Suite('topk', { quick });
  const Q = 100;
  const N = 100000;
  const D = 768;
  const K = 10;
  const q = randMatrix(Q, D, 31);
  const c = randMatrix(N, D, 32);

  const ort = anchor('onnxruntime-node', suite.notes);
  const usearch = anchor('usearch', suite.notes);
  const impls = [];
  for (const t of [1, 2]) impls.push(impl('densevec', 'densevec', t, () => dv.topK(q, c, K, { metric: 'dot' }), { before: dvThreads(t) }));
  impls.push(impl('densevec bf16', 'densevec-extra', 1, () => dv.topK(q, c, K, { metric: 'dot', precision: 'bf16' }), { before: dvThreads(1) }));

  dv.setThreads(1);
  const mem = peakExtra(() => dv.topK(q, c, K, { metric: 'dot' }));
  const mine = mem ? mem.result : dv.topK(q, c, K, { metric: 'dot' });
  const memory = {};
  if (mem) {
    memory.densevecExtraBytes = mem.extraBytes;
    memory.scoreTableBytes = Q * N * 4;
    memory.outputBytes = Q * K * 8;
    suite.note(
      `densevec topK peak extra memory ${(mem.extraBytes / 2 ** 20).toFixed(1)} MiB (1 thread; the full score table would be ${(memory.scoreTableBytes / 2 ** 20).toFixed(1)} MiB, the q·k output ${(memory.outputBytes / 1024).toFixed(1)} KiB)`,
    );
  }

  if (ort) {
    const feeds = {
      A: new ort.Tensor('float32', q.data, [Q, D]),
      B: new ort.Tensor('float32', c.data, [N, D]),
      K: new ort.Tensor('int64', BigInt64Array.from([BigInt(K)]), [1]),
    };
    for (const t of [1, 2]) {
      const session = await ort.InferenceSession.create(modelBytes('gemm_nt_topk.onnx'), ortOptions(t));
      impls.push(impl('onnxruntime Gemm+TopK', 'anchor', t, () => session.run(feeds)));
      if (t === 1) {
        await session.run(feeds);
        resetPeakRss();
        const before = procStatus().VmRSS;
        const r = await session.run(feeds);
        memory.onnxruntimeExtraBytes = procStatus().VmHWM - before;
        let same = 0;
        for (let i = 0; i < Q; i++) {
          const a = new Set(Array.from(r.indices.data.subarray(i * K, (i + 1) * K), Number));
          for (let j = 0; j < K; j++) if (a.has(mine.indices[i * K + j])) same++;
        }
        suite.note(`densevec vs onnxruntime top-${K} index overlap ${((100 * same) / (Q * K)).toFixed(2)} %`);
      }
    }
  }
  if (usearch) {
    for (const t of [1, 2]) impls.push(impl('usearch exactSearch', 'anchor', t, () => usearch.exactSearch(c.data, q.data, D, K, 'ip', t)));
  }
  const py = await startPython(suite, 'bench-faiss.py', 'faiss IndexFlatIP');
  if (py) {
    try {
      const job = await py.setup('flatip', { k: K }, { corpus: input(c.data, [N, D]), queries: input(q.data, [Q, D]) });
      for (const t of [1, 2]) impls.push(py.impl('faiss IndexFlatIP', job.id, t));
      const same = job.info.first_ids.filter((id) => Array.from(mine.indices.subarray(0, K)).includes(id)).length;
      suite.note(
        `faiss: distance_compute_blas_threshold ${job.info.blas_threshold} (this wheel's default ${job.info.default_blas_threshold} would take the slower one-pair-at-a-time path for 100 queries); query 0 top-${K} agrees with densevec on ${same}/${K} ids`,
      );
    } catch (e) {
      suite.note(`faiss rows skipped: ${e.message}`);
    }
  }
  await suite.row({
    workload: `topK k=${K}, dot`,
    params: { q: Q, n: N, d: D, k: K },
    impls,
    throughput: (ms) => ({ value: Q / (ms / 1000), unit: 'q/s' }),
    targets: [
      { anchor: 'onnxruntime Gemm+TopK', threads: 1, min: 1.05, what: '1T ≥ 1.05× onnxruntime Gemm+TopK' }, // PERF.md
      { anchor: 'faiss IndexFlatIP', threads: 1, min: 2.0, what: '1T ≥ 2× faiss IndexFlatIP' },
      { kind: 'scaling', label: 'densevec', min: 1.8, what: 'densevec 2T/1T ≥ 1.8' },
    ],
    extra: { memory },
  });
  if (py) await py.stop();

  // Compact corpus storage: the same search over an f16 / bf16 / i8 copy of the corpus (half or
  // a quarter of the memory), decoded piece by piece inside the search, against float32.
  const compact = [];
  compact.push(impl('densevec float32 corpus', 'anchor', 1, () => dv.topK(q, c, K, { metric: 'dot' }), { before: dvThreads(1) }));
  for (const t of ['f16', 'bf16', 'i8']) {
    const cq = dv.quantize(c, t);
    compact.push(impl(`densevec ${t} corpus`, 'densevec', 1, () => dv.topK(q, cq, K, { metric: 'dot' }), { before: dvThreads(1) }));
  }
  await suite.row({
    workload: `topK k=${K}, dot, compact corpus`,
    params: { q: Q, n: N, d: D, k: K, corpusMiB: { f32: (N * D * 4) / 2 ** 20, f16: (N * D * 2) / 2 ** 20, i8: (N * D) / 2 ** 20 } },
    impls: compact,
    throughput: (ms) => ({ value: Q / (ms / 1000), unit: 'q/s' }),
    targets: [{ densevec: 'densevec f16 corpus', anchor: 'densevec float32 corpus', threads: 1, min: 0.9, what: 'f16 corpus ≥ 0.9× the float32 corpus speed' }],
  });
  return suite.write();
};
