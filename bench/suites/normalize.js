// Suite 4 — L2-normalize 100,000 × 768 rows in place (307 MB, far larger than any cache).
// Anchors: simsimd (native) for each row's squared norm + a JS loop for the scaling, and a plain
// JS two-pass loop. GB/s counts the matrix once (rows·cols·4 bytes per call), although every
// implementation reads it and writes it back. Each implementation owns its own copy; repeated
// normalization of unit rows does the same work as the first pass.
'use strict';

const { dv, anchor, impl, Suite, randn, dvThreads } = require('../common');

module.exports = async function normalize({ quick }) {
  const suite = new Suite('normalize', { quick });
  const R = 100000;
  const D = 768;
  const bytes = R * D * 4;
  const base = randn(R * D, 41);
  const simsimd = anchor('simsimd', suite.notes);

  const mine = { data: Float32Array.from(base), rows: R, cols: D };
  const impls = [];
  for (const t of [1, 2]) impls.push(impl('densevec normalizeInPlace', 'densevec', t, () => dv.normalizeInPlace(mine), { before: dvThreads(t) }));
  if (simsimd) {
    const data = Float32Array.from(base);
    const rowsV = Array.from({ length: R }, (_, i) => data.subarray(i * D, (i + 1) * D));
    impls.push(
      impl('simsimd norm + JS scale', 'anchor', 1, () => {
        for (let i = 0; i < R; i++) {
          const r = rowsV[i];
          const s = simsimd.inner(r, r);
          const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
          for (let j = 0; j < D; j++) r[j] *= inv;
        }
      }),
    );
  }
  const plain = Float32Array.from(base);
  impls.push(
    impl('naive JS', 'baseline', 1, () => {
      for (let i = 0; i < R; i++) {
        const o = i * D;
        let s = 0;
        for (let j = 0; j < D; j++) s += plain[o + j] * plain[o + j];
        const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
        for (let j = 0; j < D; j++) plain[o + j] *= inv;
      }
    }),
  );
  await suite.row({
    workload: 'normalizeInPlace',
    params: { rows: R, d: D },
    impls,
    throughput: (ms) => ({ value: bytes / ms / 1e6, unit: 'GB/s' }),
    targets: [
      { anchor: 'simsimd norm + JS scale', threads: 1, min: 2.0, what: '1T ≥ 2× simsimd norm + JS scale' },
      { kind: 'scaling', label: 'densevec normalizeInPlace', min: 1.8, what: 'densevec 2T/1T ≥ 1.8' },
    ],
  });
  let worst = 0;
  for (let i = 0; i < 1000; i++) {
    let s = 0;
    for (let j = 0; j < D; j++) s += mine.data[i * D + j] ** 2;
    worst = Math.max(worst, Math.abs(Math.sqrt(s) - 1));
  }
  suite.note(`densevec rows after normalization: max |‖row‖ − 1| = ${worst.toExponential(2)} (first 1000 rows)`);
  return suite.write();
};
