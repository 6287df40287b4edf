// Suite 6 — geometry:
//   wassersteinRegularizer fwd+bwd, p = 2, n = 2048, d = 128 (2,096,128 pair cosines per view)
//     vs PyTorch CPU autograd (normalize, Gram, triu gather, sort, mean of squared differences)
//     and POT ot.wasserstein_1d on the precomputed pair cosines alone (no Gram, no gradient)
//   procrustes 20,000 × 300 vs scipy.linalg.orthogonal_procrustes plus the residual ‖x·R − y‖_F
//     (float64, BLAS threads pinned with threadpoolctl)
//   graphGeodesics (k-NN graph, 64 Dijkstra sources) and hyperbolicity (300 sampled
//     quadruples), n = 2000, d = 64, k = 10, vs densevec's pure-TypeScript reference
// 1 and 2 threads where the anchor can be pinned.
'use strict';

const { dv, has, impl, Suite, randMatrix, randn, dvThreads } = require('../common');
const { startPython, input } = require('../python');

module.exports = async function geometry({ quick, smoke }) {
  const suite = new Suite('geometry', { quick });
  const S = smoke ? 4 : 1;
  const torch = has('wassersteinRegularizer') ? await startPython(suite, 'bench-torch.py', 'PyTorch') : null;
  const sci = await startPython(suite, 'bench-scipy.py', 'SciPy/POT');

  // Wasserstein regularizer.
  if (has('wassersteinRegularizer')) {
    const n = 2048 / S;
    const d = 128;
    const a = randMatrix(n, d, 71);
    const b = randMatrix(n, d, 72);
    const fn = () => dv.wassersteinRegularizer(a, b, { p: 2 });
    const impls = [];
    for (const t of [1, 2]) impls.push(impl('densevec', 'densevec', t, fn, { before: dvThreads(t) }));
    dv.setThreads(1);
    const mine = fn().loss;
    const losses = { densevec: mine };
    const jobs = [];
    if (torch) {
      try {
        const job = await torch.setup('wasserstein', { p: 2 }, { a: input(a.data, [n, d]), b: input(b.data, [n, d]) });
        losses.pytorch = job.value;
        jobs.push(() => torch.free(job.id));
        for (const t of [1, 2]) impls.push(torch.impl('PyTorch', job.id, t));
      } catch (e) {
        suite.note(`PyTorch wasserstein skipped: ${e.message}`);
      }
    }
    if (sci) {
      try {
        const job = await sci.setup('pot_w1d', { p: 2 }, { a: input(a.data, [n, d]), b: input(b.data, [n, d]) });
        losses.pot = job.value;
        jobs.push(() => sci.free(job.id));
        impls.push(sci.impl('POT wasserstein_1d (values only)', job.id, 1));
      } catch (e) {
        suite.note(`POT wasserstein_1d skipped: ${e.message}`);
      }
    }
    await suite.row({
      workload: 'wassersteinRegularizer fwd+bwd, p=2',
      params: { n, d, pairs: (n * (n - 1)) / 2 },
      impls,
      throughput: (ms) => ({ value: (n * (n - 1)) / 2 / ms / 1e3, unit: 'M pairs/s' }),
      targets: [
        { anchor: 'PyTorch', threads: 1, min: 4, what: '1T ≥ 4× PyTorch' },
        { anchor: 'PyTorch', threads: 2, min: 4, what: '2T ≥ 4× PyTorch' },
        { kind: 'scaling', label: 'densevec', min: 1.8, what: 'densevec 2T/1T ≥ 1.8' },
      ],
      extra: { loss: losses },
    });
    suite.note(
      `wasserstein loss: ${Object.entries(losses)
        .map(([k, v]) => `${k} ${v.toPrecision(6)}`)
        .join(', ')}`,
    );
    for (const f of jobs) await f();
  } else {
    suite.note('wassersteinRegularizer: not available in this build');
  }

  // Procrustes.
  if (has('procrustes')) {
    const n = 20000 / S;
    const d = 300;
    const x = randMatrix(n, d, 73);
    // y = x with its columns permuted and sign-flipped (an orthogonal map) plus noise.
    const noise = randn(n * d, 74);
    const perm = Array.from({ length: d }, (_, j) => (j * 7 + 3) % d);
    const y = { data: new Float32Array(n * d), rows: n, cols: d };
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) y.data[i * d + j] = (j % 2 ? -1 : 1) * x.data[i * d + perm[j]] + 0.1 * noise[i * d + j];
    const fn = () => dv.procrustes(x, y);
    const impls = [];
    for (const t of [1, 2]) impls.push(impl('densevec', 'densevec', t, fn, { before: dvThreads(t) }));
    dv.setThreads(1);
    const residual = { densevec: fn().residual };
    let free = null;
    if (sci) {
      try {
        const job = await sci.setup('procrustes', {}, { x: input(x.data, [n, d]), y: input(y.data, [n, d]) });
        residual.scipy = job.value;
        free = () => sci.free(job.id);
        for (const t of [1, 2]) impls.push(sci.impl('SciPy orthogonal_procrustes + residual (f64)', job.id, t));
      } catch (e) {
        suite.note(`SciPy procrustes skipped: ${e.message}`);
      }
    }
    await suite.row({
      workload: 'procrustes',
      params: { n, d },
      impls,
      throughput: (ms) => ({ value: (2 * n * d * d) / ms / 1e6, unit: 'GFLOP/s (xᵀy)' }),
      targets: [
        { anchor: 'SciPy orthogonal_procrustes + residual (f64)', threads: 1, min: 2, what: '1T ≥ 2× SciPy' },
        { anchor: 'SciPy orthogonal_procrustes + residual (f64)', threads: 2, min: 2, what: '2T ≥ 2× SciPy' },
        { kind: 'scaling', label: 'densevec', min: 1.6, what: 'densevec 2T/1T ≥ 1.6' },
      ],
      extra: { residual },
    });
    suite.note(
      `procrustes residual: ${Object.entries(residual)
        .map(([k, v]) => `${k} ${v.toPrecision(7)}`)
        .join(', ')}`,
    );
    if (free) await free();
  } else {
    suite.note('procrustes: not available in this build');
  }
  // Intrinsic geometry on the k-NN graph: kNN graph O(n²d) + Dijkstra from sources; the
  // anchor is densevec's own pure-TypeScript reference (same float64 algorithm, one thread).
  const refImpl = require('../../dist/reference/index.js');
  if (has('graphGeodesics')) {
    const n = 2000 / S;
    const d = 64;
    const k = 10;
    const m = randMatrix(n, d, 75);
    const sources = Uint32Array.from({ length: 64 }, (_, i) => (i * 31) % n);
    const opts = { k, sources };
    const fn = () => dv.graphGeodesics(m, opts);
    const impls = [];
    for (const t of [1, 2]) impls.push(impl('densevec', 'densevec', t, fn, { before: dvThreads(t) }));
    impls.push(impl('densevec reference (TS)', 'reference', 1, () => refImpl.graphGeodesics(m, opts)));
    await suite.row({
      workload: 'graphGeodesics (k-NN graph + 64 Dijkstra sources)',
      params: { n, d, k, sources: sources.length },
      impls,
      throughput: (ms) => ({ value: (n * n * d) / ms / 1e6, unit: 'G pair-coords/s (graph)' }),
      targets: [{ kind: 'scaling', label: 'densevec', min: 1.8, what: 'densevec 2T/1T ≥ 1.8' }], // PERF.md: every batch workload
    });
  } else {
    suite.note('graphGeodesics: not available in this build');
  }
  if (has('hyperbolicity')) {
    const n = 2000 / S;
    const d = 64;
    const opts = { k: 10, samples: 300, seed: 1 };
    const m = randMatrix(n, d, 76);
    const fn = () => dv.hyperbolicity(m, opts);
    const impls = [];
    for (const t of [1, 2]) impls.push(impl('densevec', 'densevec', t, fn, { before: dvThreads(t) }));
    impls.push(impl('densevec reference (TS)', 'reference', 1, () => refImpl.hyperbolicity(m, opts)));
    dv.setThreads(1);
    const value = fn();
    await suite.row({
      workload: 'hyperbolicity (four-point δ, sampled quadruples)',
      params: { n, d, k: opts.k, samples: opts.samples },
      impls,
      throughput: (ms) => ({ value: opts.samples / ms, unit: 'k quadruples/s' }),
      targets: [{ kind: 'scaling', label: 'densevec', min: 1.8, what: 'densevec 2T/1T ≥ 1.8' }], // PERF.md: every batch workload
      extra: { relativeDelta: value.relativeDelta },
    });
    suite.note(`hyperbolicity: relativeDelta ${value.relativeDelta.toPrecision(4)} (random Gaussian rows, n = ${n})`);
  } else {
    suite.note('hyperbolicity: not available in this build');
  }

  if (torch) await torch.stop();
  if (sci) await sci.stop();
  return suite.write();
};
