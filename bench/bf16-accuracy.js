// Accuracy of precision: 'bf16' against the f32 result on realistic inputs: d = 768 unit
// embeddings in clusters (cosines to same-cluster neighbours 0.5–0.9, to the rest near 0).
// Prints the figures quoted in docs/kernels.md ("bf16 compute mode"). Not a timing script.
//
//   node bench/bf16-accuracy.js            (needs the built dist/)
'use strict';

const { dv } = require('./common');
const { mulberry32: rng } = require('../scripts/mulberry32.cjs');

const D = 768;

/**
 * rows unit vectors of dimension D, row i around centre i % clusters (noise ratio `spread`); the
 * centres depend only on their count, so two calls share them (row i of one and row j of the
 * other are neighbours when i ≡ j mod clusters).
 */
function embeddings(rows, clusters, spread, seed) {
  const rc = rng(clusters * 7919);
  const gc = () => Math.sqrt(-2 * Math.log(1 - rc())) * Math.cos(2 * Math.PI * rc());
  const centres = Array.from({ length: clusters }, () => Float64Array.from({ length: D }, gc));
  const r = rng(seed);
  const g = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const data = new Float32Array(rows * D);
  for (let i = 0; i < rows; i++) {
    const c = centres[i % clusters];
    let s = 0;
    const row = new Float64Array(D);
    for (let k = 0; k < D; k++) {
      row[k] = c[k] + spread * g();
      s += row[k] * row[k];
    }
    const inv = 1 / Math.sqrt(s);
    for (let k = 0; k < D; k++) data[i * D + k] = row[k] * inv;
  }
  return { data, rows, cols: D };
}

function stats(a, b, pick = () => true) {
  let max = 0;
  let sq = 0;
  let n = 0;
  let rmax = 0;
  for (let i = 0; i < a.length; i++) {
    if (!pick(b[i])) continue;
    const e = Math.abs(a[i] - b[i]);
    max = Math.max(max, e);
    sq += e * e;
    n++;
    if (b[i] !== 0) rmax = Math.max(rmax, e / Math.abs(b[i]));
  }
  return { n, maxAbs: max, rmsAbs: Math.sqrt(sq / n), maxRel: rmax };
}

function relNorm(a, b) {
  let e = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    e += (a[i] - b[i]) ** 2;
    s += b[i] ** 2;
  }
  return Math.sqrt(e / s);
}

const fmt = (x) => x.toExponential(2);

const q = embeddings(256, 64, 0.8, 1);
const c = embeddings(8192, 64, 0.8, 2);
console.log(`bf16 path: ${dv.backendInfo().isa} ISA; inputs: unit rows, d = ${D}, 64 clusters (noise/centre 0.8: same-cluster cosines ≈ 0.6)`);
for (const metric of ['cosine', 'dot', 'l2sq']) {
  const f = dv.similarityMatrix(q, c, { metric }).data;
  const b = dv.similarityMatrix(q, c, { metric, precision: 'bf16' }).data;
  const all = stats(b, f);
  const near = metric === 'l2sq' ? stats(b, f, (x) => x < 1) : stats(b, f, (x) => x > 0.5);
  console.log(
    `similarityMatrix ${metric.padEnd(6)} 256 × 8192: |Δ| max ${fmt(all.maxAbs)}, rms ${fmt(all.rmsAbs)}; ` +
      `neighbours (${metric === 'l2sq' ? 'l2sq < 1' : 'score > 0.5'}, ${near.n} pairs): relative max ${fmt(near.maxRel)}`,
  );
}
{
  const K = 10;
  const f = dv.topK(q, c, K, { metric: 'cosine' });
  const b = dv.topK(q, c, K, { metric: 'cosine', precision: 'bf16' });
  let same = 0;
  for (let i = 0; i < q.rows; i++) {
    const s = new Set(f.indices.subarray(i * K, (i + 1) * K));
    for (let t = 0; t < K; t++) if (s.has(b.indices[i * K + t])) same++;
  }
  console.log(
    `topK cosine k = ${K}: ${((100 * same) / (q.rows * K)).toFixed(2)} % of the f32 neighbours kept; scores |Δ| max ${fmt(stats(b.scores, f.scores).maxAbs)}`,
  );
}
{
  const B = 1024;
  const qq = embeddings(B, 256, 1.0, 3);
  const kk = embeddings(B, 256, 1.0, 4);
  const o = { temperature: 0.07, normalize: true };
  const f = dv.infoNCE(qq, kk, o);
  const b = dv.infoNCE(qq, kk, { ...o, precision: 'bf16' });
  console.log(
    `infoNCE B = ${B}, τ = 0.07, normalize: loss ${f.loss.toFixed(6)} vs ${b.loss.toFixed(6)} (relative ${fmt(Math.abs(b.loss - f.loss) / f.loss)}); ` +
      `‖ΔgradQ‖/‖gradQ‖ ${fmt(relNorm(b.gradQ.data, f.gradQ.data))}, ‖ΔgradKeys‖/‖gradKeys‖ ${fmt(relNorm(b.gradKeys.data, f.gradKeys.data))}`,
  );
  const nf = dv.ntXent(qq, kk, { temperature: 0.1 });
  const nb = dv.ntXent(qq, kk, { temperature: 0.1, precision: 'bf16' });
  console.log(
    `ntXent N = ${B}, τ = 0.1: loss relative ${fmt(Math.abs(nb.loss - nf.loss) / nf.loss)}; ‖ΔgradA‖/‖gradA‖ ${fmt(relNorm(nb.gradA.data, nf.gradA.data))}`,
  );
  const C = 2000;
  const w = embeddings(C, C, 0.0, 5);
  const xm = embeddings(B, C, 1.0, 6);
  const labels = Uint32Array.from({ length: B }, (_, i) => i % C);
  const mf = dv.marginSoftmax(xm, w, labels, { kind: 'arcface' });
  const mb = dv.marginSoftmax(xm, w, labels, { kind: 'arcface', precision: 'bf16' });
  console.log(
    `marginSoftmax arcface N = ${B}, C = ${C}: loss relative ${fmt(Math.abs(mb.loss - mf.loss) / mf.loss)}; ` +
      `‖ΔgradX‖/‖gradX‖ ${fmt(relNorm(mb.gradX.data, mf.gradX.data))}, ‖ΔgradW‖/‖gradW‖ ${fmt(relNorm(mb.gradW.data, mf.gradW.data))}`,
  );
}
