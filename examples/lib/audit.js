'use strict';
/**
 * Audit of an embedding for the demo: kNN accuracy, isotropy against the null, invariance
 * under a random rotation, BatchNorm train/eval drift, sparsity, and the curvature of
 * spherical triangles on sampled triples.
 */

function frob(m) {
  let s = 0;
  for (let i = 0; i < m.data.length; i++) s += m.data[i] * m.data[i];
  return Math.sqrt(s);
}

function diffFrob(a, b) {
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += (a.data[i] - b.data[i]) ** 2;
  return Math.sqrt(s);
}

function rowsOf(m, idx) {
  const out = new Float32Array(idx.length * m.cols);
  idx.forEach((r, i) => out.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), i * m.cols));
  return { data: out, rows: idx.length, cols: m.cols };
}

function accuracy(pred, truth) {
  let c = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === truth[i]) c++;
  return c / pred.length;
}

/**
 * Median and mean curvature (spherical excess / chord-triangle area) and mean excess of spherical
 * triangles on `count` sampled triples of rows, either any rows or three of one class.
 * Degenerate triples (E_ARG) are skipped and counted.
 */
function curvature(dv, ref, z, y, count, seed, sameClass) {
  const rng = new ref.SplitMix64(seed);
  const byClass = new Map();
  if (sameClass) y.forEach((l, i) => (byClass.get(l) || byClass.set(l, []).get(l)).push(i));
  const groups = sameClass ? [...byClass.values()].filter((g) => g.length >= 3) : [Array.from({ length: z.rows }, (_, i) => i)];
  let k = 0;
  let excess = 0;
  let curv = 0;
  let side = 0;
  let skipped = 0;
  const points = [];
  const row = (i) => z.data.subarray(i * z.cols, (i + 1) * z.cols);
  for (let t = 0; t < count; t++) {
    const g = groups[Math.min(groups.length - 1, Math.floor(rng.uniform() * groups.length))];
    const pick = () => g[Math.min(g.length - 1, Math.floor(rng.uniform() * g.length))];
    const a = pick();
    let b = pick();
    let c = pick();
    if (a === b || b === c || a === c) {
      skipped++;
      continue;
    }
    try {
      const tri = dv.sphericalTriangle(row(a), row(b), row(c));
      excess += tri.excess;
      curv += tri.curvature;
      side += (tri.sides[0] + tri.sides[1] + tri.sides[2]) / 3;
      points.push({ x: (tri.sides[0] + tri.sides[1] + tri.sides[2]) / 3, y: tri.curvature });
      k++;
    } catch (e) {
      if (e.code !== 'E_ARG') throw e;
      skipped++;
    }
  }
  // The ratio is heavy-tailed (nearly flat triangles have a tiny chord area): report the median.
  const sorted = points.map((p) => p.y).sort((a, b) => a - b);
  const median = sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)];
  return { triangles: k, skipped, meanExcess: excess / k, meanCurvature: curv / k, medianCurvature: median, meanSide: side / k, points };
}

/**
 * The audit of one embedding (train and test rows of the same map). Returns a flat record of
 * numbers for the report table.
 */
function audit(dv, ref, zTrain, zTest, yTrain, yTest, seed, o = {}) {
  const k = o.k ?? 5;
  const out = {};
  if (yTrain) out.knn = accuracy(dv.knnClassify(zTrain, yTrain, zTest, k, { metric: 'cosine' }), yTest);
  const st = dv.similarityStats(zTest);
  out.meanCos = st.mean;
  out.zScore = st.zScore;
  out.varRatio = st.variance / st.nullVariance;

  // A random rotation changes no cosine: kNN and statistics must not move.
  const Q = dv.randomOrthogonal(zTrain.cols, seed);
  const rTrain = dv.matmul(zTrain, Q);
  const rTest = dv.matmul(zTest, Q);
  const rst = dv.similarityStats(rTest);
  out.rotDeltaMean = Math.abs(rst.mean - st.mean);
  if (yTrain) out.rotKnn = accuracy(dv.knnClassify(rTrain, yTrain, rTest, k, { metric: 'cosine' }), yTest);
  // Procrustes recovers the rotation from the rotated copy.
  const pr = dv.procrustes(zTest, rTest);
  out.rotRecovered = pr.residual / frob(rTest);

  // BatchNorm: running statistics from batches of the training rows, then the difference
  // between training-mode (batch statistics) and inference-mode outputs on a test batch.
  const bn = new dv.BatchNorm(zTrain.cols, { momentum: 0.1 });
  const bs = Math.min(128, zTrain.rows);
  for (let epoch = 0; epoch < 3; epoch++) {
    for (let s = 0; s + bs <= zTrain.rows; s += bs) bn.forward(rowsOf(zTrain, Array.from({ length: bs }, (_, i) => s + i)));
  }
  const tb = rowsOf(zTest, Array.from({ length: Math.min(bs, zTest.rows) }, (_, i) => i));
  if (tb.rows >= 2) {
    const evalOut = bn.forward(tb, { training: false });
    const trainOut = bn.forward(tb, { training: true });
    const drift = dv.embeddingDrift(trainOut, evalOut);
    out.bnDriftCos = drift.meanCosine;
    out.bnDriftL2 = drift.meanL2;
  }

  // Sparsity of the unit-normalized rows: fraction of |x| ≤ 0.01 and Hoyer's measure.
  if (zTest.cols >= 2) {
    const sp = dv.sparsity(dv.normalizeRows(zTest), { eps: 0.01 });
    out.nearZero = sp.fractionNearZero;
    out.hoyer = sp.hoyer;
  }

  // Curvature of spherical triangles: ≈ 1 for small triangles (the sphere's Gaussian
  // curvature), larger for wide ones.
  const cur = curvature(dv, ref, zTest, yTest, 300, seed + 7, false);
  out.curvature = cur.medianCurvature;
  out.triSide = cur.meanSide;
  out.triangles = cur.points;
  if (yTest) {
    const cc = curvature(dv, ref, zTest, yTest, 300, seed + 8, true);
    out.curvatureSame = cc.medianCurvature;
    out.triSideSame = cc.meanSide;
    out.trianglesSame = cc.points;
  }
  return out;
}

/** Procrustes between two embeddings of the same rows (unit rows): residual before and after. */
function alignment(dv, a, b) {
  const ua = dv.normalizeRows(a);
  const ub = dv.normalizeRows(b);
  const pr = dv.procrustes(ua, ub);
  const nb = frob(ub);
  return { before: diffFrob(ua, ub) / nb, after: pr.residual / nb };
}

module.exports = { audit, alignment, curvature, rowsOf };
