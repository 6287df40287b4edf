'use strict';
/**
 * Audit of an embedding for the demo: kNN accuracy, isotropy against the null, invariance
 * under a random rotation and distortion by a random anisotropic map, BatchNorm train/eval
 * drift, sparsity, and the intrinsic curvature of the data (hyperbolicity and triangle
 * comparison on the k-nearest-neighbour graph); analogies by vector arithmetic between classes.
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

/** The rows `idx` of `m`, in that order, as a new Matrix. */
function rowsOf(m, idx) {
  const out = new Float32Array(idx.length * m.cols);
  for (let i = 0; i < idx.length; i++) out.set(m.data.subarray(idx[i] * m.cols, (idx[i] + 1) * m.cols), i * m.cols);
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
  if (sameClass) {
    y.forEach((l, i) => {
      (byClass.get(l) || byClass.set(l, []).get(l)).push(i);
    });
  }
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
    const b = pick();
    const c = pick();
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
    for (let s = 0; s + bs <= zTrain.rows; s += bs)
      bn.forward(
        rowsOf(
          zTrain,
          Array.from({ length: bs }, (_, i) => s + i),
        ),
      );
  }
  const tb = rowsOf(
    zTest,
    Array.from({ length: Math.min(bs, zTest.rows) }, (_, i) => i),
  );
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

  // Distortion by a random anisotropic map (singular values e^N(0, 1) between two random
  // rotations) beside the rotation above: how many cosine neighbours survive it.
  const d = zTest.cols;
  if (zTest.rows >= 3) {
    const kk = Math.min(10, zTest.rows - 1);
    out.orthKept = dv.mapDistortion(zTest, Q, { k: kk }).neighborOverlap;
    const A = anisotropic(dv, ref, d, seed + 11);
    const md = dv.mapDistortion(zTest, A, { k: kk });
    out.anisoKept = md.neighborOverlap;
    out.anisoCond = md.conditionNumber;
    out.anisoCosChange = md.meanCosineChange;
    if (yTrain) out.anisoKnn = accuracy(dv.knnClassify(dv.matmul(zTrain, A), yTrain, dv.matmul(zTest, A), k, { metric: 'cosine' }), yTest);
  }

  // Intrinsic curvature of the test rows, measured along the data (angular k-NN graph):
  // Gromov's four-point δ relative to the diameter (0 for a tree) and the triangle-comparison
  // ratio (> 1 fatter than flat: positive curvature; < 1 thinner: negative).
  if (zTest.rows >= 4) {
    const kg = Math.min(o.graphK ?? 10, zTest.rows - 1);
    try {
      const h = dv.hyperbolicity(zTest, { k: kg, samples: 1000, seed: seed + 7 });
      out.relDelta = h.relativeDelta;
      out.hypSkipped = h.skipped;
    } catch (e) {
      if (e.code !== 'E_ARG') throw e;
    }
    try {
      const t = dv.triangleCurvature(zTest, { k: kg, triangles: 200, seed: seed + 8 });
      out.triRatio = t.medianRatio;
      out.triPositive = t.positiveFraction;
      out.triRatios = Array.from(t.ratios);
    } catch (e) {
      if (e.code !== 'E_ARG') throw e;
    }
    out.graphK = kg;
  }
  return out;
}

/** A d × d map U·diag(e^g)·V with U, V random rotations and g standard normal (seeded). */
function anisotropic(dv, ref, d, seed) {
  const U = dv.randomOrthogonal(d, seed);
  const V = dv.randomOrthogonal(d, seed + 1);
  const g = new ref.GaussianStream(seed + 2);
  const S = new Float32Array(d * d);
  for (let i = 0; i < d; i++) S[i * d + i] = Math.exp(g.gauss());
  return dv.matmul(dv.matmul(U, { data: S, rows: d, cols: d }), V);
}

/**
 * "medoid(A) : medoid(B) :: x : ?" with 3CosAdd over the rows of z: for `count` seeded triples
 * (class A, class B ≠ A, a row x of class A other than A's medoid), whether the best answer
 * (never the inputs) has class B. The medoid of a class is its row nearest to the class mean
 * direction. Returns { accuracy, count, chance }.
 */
function analogyTransfer(dv, ref, z, y, count, seed) {
  const classes = [...new Set(y)].sort((a, b) => a - b);
  if (classes.length < 2) return null;
  const unit = dv.normalizeRows(z);
  const members = new Map(classes.map((c) => [c, []]));
  y.forEach((l, i) => {
    members.get(l).push(i);
  });
  const medoid = new Map();
  for (const c of classes) {
    const idx = members.get(c);
    const mean = new Float32Array(z.cols);
    for (const i of idx) for (let j = 0; j < z.cols; j++) mean[j] += unit.data[i * z.cols + j] / idx.length;
    const best = dv.topK({ data: mean, rows: 1, cols: z.cols }, rowsOf(unit, idx), 1, { metric: 'cosine' }).indices[0];
    medoid.set(c, idx[best]);
  }
  const rng = new ref.SplitMix64(seed);
  const pick = (arr) => arr[Math.min(arr.length - 1, Math.floor(rng.uniform() * arr.length))];
  let hit = 0;
  let n = 0;
  for (let t = 0; t < count; t++) {
    const a = pick(classes);
    const b = pick(classes.filter((c) => c !== a));
    const xs = members.get(a).filter((i) => i !== medoid.get(a));
    if (xs.length === 0) continue;
    const x = pick(xs);
    const r = dv.analogy(z, [medoid.get(a), medoid.get(b), x], 1, { method: 'add' });
    if (y[r.indices[0]] === b) hit++;
    n++;
  }
  return n === 0 ? null : { accuracy: hit / n, count: n, chance: 1 / classes.length };
}

/** Procrustes between two embeddings of the same rows (unit rows): residual before and after. */
function alignment(dv, a, b) {
  const ua = dv.normalizeRows(a);
  const ub = dv.normalizeRows(b);
  const pr = dv.procrustes(ua, ub);
  const nb = frob(ub);
  return { before: diffFrob(ua, ub) / nb, after: pr.residual / nb };
}

module.exports = { audit, alignment, analogyTransfer, anisotropic, curvature, rowsOf };
