// Suite 1 — one pair: dot and cosine at d = 768 and 1536 (single call, single thread), against
// simsimd (native SIMD, N-API) and a plain JS loop; plus the N-API floor (cheapest calls). The
// single-call rows are measured with benchmark.js (ops/sec ± relative margin of error); the
// batched dotRows row with the interleaved harness.
'use strict';

const path = require('node:path');
const { dv, anchor, impl, Suite, randn, dvThreads } = require('../common');

function naiveDot(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function naiveCosine(a, b) {
  let s = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    s += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na > 0 && nb > 0 ? s / Math.sqrt(na * nb) : 0;
}

module.exports = async function pair({ quick, smoke }) {
  const suite = new Suite('pair', { quick, smoke });
  dv.setThreads(1);
  const simsimd = anchor('simsimd', suite.notes);
  const perCall = (ms) => ({ value: 1e-3 / ms, unit: 'M calls/s' });
  for (const op of ['dot', 'cosine']) {
    for (const d of [768, 1536]) {
      const a = randn(d, 11 + d);
      const b = randn(d, 12 + d);
      const want = op === 'dot' ? naiveDot(a, b) : naiveCosine(a, b);
      const got = dv[op](a, b);
      if (Math.abs(got - want) > 1e-3 * Math.max(1, Math.abs(want))) suite.note(`${op} d=${d}: densevec ${got} vs JS ${want}`);
      const ss = simsimd && (op === 'dot' ? () => simsimd.dot(a, b) : () => simsimd.cosine(a, b)); // simsimd.cosine is 1 − cos
      await suite.row({
        workload: `${op}, one pair`,
        params: { d },
        impls: [
          impl('densevec', 'densevec', 1, op === 'dot' ? () => dv.dot(a, b) : () => dv.cosine(a, b)),
          ss && impl('simsimd', 'anchor', 1, ss),
          impl('naive JS', 'baseline', 1, op === 'dot' ? () => naiveDot(a, b) : () => naiveCosine(a, b)),
        ],
        throughput: perCall,
        micro: true,
        targets: [{ anchor: 'simsimd', threads: 1, min: 1.3, what: `${op} d=${d} ≥ 1.3× simsimd` }],
      });
    }
  }

  // Batched row-wise pairs: one call for n rows, memory-bandwidth bound. Anchors: a loop of
  // simsimd.dot over the same row views, and a plain copy of the bytes dotRows reads
  // (TypedArray.prototype.set), which measures what the memory system gives in this run. The
  // copy's source holds those bytes: a fresh, never-written array would be read from the
  // kernel's shared zero page, in cache, and make the copy look three times faster than memory.
  {
    const R = smoke ? 10000 : 100000;
    const D = 768;
    const a = { data: randn(R * D, 61), rows: R, cols: D };
    const b = { data: randn(R * D, 62), rows: R, cols: D };
    const src = new Float32Array(2 * R * D);
    src.set(a.data);
    src.set(b.data, R * D);
    const dst = new Float32Array(2 * R * D);
    const aRows = Array.from({ length: R }, (_, i) => a.data.subarray(i * D, (i + 1) * D));
    const bRows = Array.from({ length: R }, (_, i) => b.data.subarray(i * D, (i + 1) * D));
    const out = new Float64Array(R);
    const bytes = 2 * R * D * 4;
    await suite.row({
      workload: 'dotRows (bytes read per call)',
      params: { rows: R, d: D },
      impls: [
        impl('densevec dotRows', 'densevec', 1, () => dv.dotRows(a, b), { before: dvThreads(1) }),
        impl('densevec dotRows', 'densevec', 2, () => dv.dotRows(a, b), { before: dvThreads(2) }),
        simsimd &&
          impl('simsimd.dot loop', 'anchor', 1, () => {
            for (let i = 0; i < R; i++) out[i] = simsimd.dot(aRows[i], bRows[i]);
          }),
        impl('copy of the same bytes', 'anchor', 1, () => dst.set(src)),
      ],
      throughput: (ms) => ({ value: bytes / ms / 1e6, unit: 'GB/s' }),
      targets: [
        { anchor: 'simsimd.dot loop', threads: 1, min: 5, what: 'dotRows 1T ≥ 5× a loop of simsimd.dot' },
        { anchor: 'copy of the same bytes', threads: 1, min: 0.7, what: 'dotRows 1T ≥ 70 % of copy bandwidth' },
      ],
    });
  }

  // Floor: what a call costs with (almost) no work, to read the rows above against.
  const binding = require(path.join(__dirname, '..', '..', 'dist', 'native', 'binding.cjs'));
  const one = new Float32Array([1]);
  const two = new Float32Array([2]);
  await suite.row({
    workload: 'N-API floor (d = 1)',
    params: { d: 1 },
    impls: [
      impl('densevec dot', 'densevec', 1, () => dv.dot(one, two)),
      typeof binding.dotFast === 'function' && impl('densevec raw dotFast(a, b)', 'floor', 1, () => binding.dotFast(one, two)),
      impl('densevec nativeThreads() (no args)', 'floor', 1, () => binding.nativeThreads()),
      simsimd && impl('simsimd dot', 'anchor', 1, () => simsimd.dot(one, two)),
    ],
    throughput: perCall,
    micro: true,
  });
  return suite.write();
};
