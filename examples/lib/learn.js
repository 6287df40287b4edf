'use strict';
/**
 * Training helpers of the demo: augmentations, Adam, and two kinds of heads trained with
 * densevec's losses and gradients — a contrastive linear projection (NT-Xent on two augmented
 * views, a Wasserstein regularizer between the views' similarity distributions, an L2 penalty,
 * a temperature schedule or a learned temperature) and supervised margin heads (ArcFace / CosFace with label smoothing).
 * Everything is deterministic for a seed (the documented PRNG of densevec/reference).
 */

/** Adam on a list of Float32Array parameters (updated in place). */
class Adam {
  constructor(params, lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8) {
    this.params = params;
    this.lr = lr;
    this.b1 = b1;
    this.b2 = b2;
    this.eps = eps;
    this.t = 0;
    this.m = params.map((p) => new Float64Array(p.length));
    this.v = params.map((p) => new Float64Array(p.length));
  }
  step(grads) {
    this.t++;
    const c1 = 1 - this.b1 ** this.t;
    const c2 = 1 - this.b2 ** this.t;
    this.params.forEach((p, k) => {
      const g = grads[k];
      const m = this.m[k];
      const v = this.v[k];
      for (let i = 0; i < p.length; i++) {
        m[i] = this.b1 * m[i] + (1 - this.b1) * g[i];
        v[i] = this.b2 * v[i] + (1 - this.b2) * g[i] * g[i];
        p[i] -= (this.lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + this.eps);
      }
    });
  }
}

function transpose(m) {
  const out = new Float32Array(m.data.length);
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < m.cols; j++) out[j * m.rows + i] = m.data[i * m.cols + j];
  return { data: out, rows: m.cols, cols: m.rows };
}

/** xᵀ·g (d × h) for x (B × d), g (B × h): the gradient of a linear map z = xW. */
function gradWeights(dv, x, g) {
  return dv.matmul(transpose(x), g).data;
}

function addInto(dst, src, s = 1) {
  for (let i = 0; i < dst.length; i++) dst[i] += s * src[i];
  return dst;
}

/** A standard normal from the PRNG (Box–Muller, one value per call). */
function gauss(rng) {
  return Math.sqrt(-2 * Math.log(rng.uniform())) * Math.cos(2 * Math.PI * rng.uniform());
}

/**
 * Returns view(idx) → standardized Matrix of augmented copies of the raw rows `idx`:
 * for square images (side² = d), with probability `shift` a random shift by one pixel (zero
 * fill); each feature dropped (set to its mean) with probability `dropout`; then Gaussian noise
 * of standard deviation `noise` in standardized units (noise added before standardizing would
 * blow up in nearly constant features).
 */
function augmenter(raw, mu, sd, rng, { noise = 0.3, dropout = 0.1, shift = 0, imageSide = 0 } = {}) {
  const d = raw.cols;
  return (idx) => {
    const out = new Float32Array(idx.length * d);
    for (let r = 0; r < idx.length; r++) {
      const src = raw.data.subarray(idx[r] * d, (idx[r] + 1) * d);
      const dst = out.subarray(r * d, (r + 1) * d);
      dst.set(src);
      if (imageSide > 0 && shift > 0 && rng.uniform() < shift) {
        const s = imageSide;
        // One of the 8 neighbouring offsets.
        const o = Math.min(7, Math.floor(rng.uniform() * 8));
        const dx = [-1, 0, 1, -1, 1, -1, 0, 1][o];
        const dy = [-1, -1, -1, 0, 0, 1, 1, 1][o];
        for (let y = 0; y < s; y++) {
          for (let x = 0; x < s; x++) {
            const sx = x - dx;
            const sy = y - dy;
            dst[y * s + x] = sx >= 0 && sx < s && sy >= 0 && sy < s ? src[sy * s + sx] : 0;
          }
        }
      }
      for (let k = 0; k < d; k++) {
        const v = dropout > 0 && rng.uniform() < dropout ? mu[k] : dst[k];
        dst[k] = (sd[k] > 0 ? (v - mu[k]) / sd[k] : 0) + noise * gauss(rng);
      }
    }
    return { data: out, rows: idx.length, cols: d };
  };
}

/** Batches of `size` indices from seeded permutations of 0..n−1 (a new permutation per epoch). */
function batcher(n, size, rng) {
  let perm = [];
  let pos = n;
  return () => {
    const out = [];
    while (out.length < size) {
      if (pos >= n) {
        perm = Array.from({ length: n }, (_, i) => i);
        for (let i = n - 1; i > 0; i--) {
          const j = Math.min(i, Math.floor(rng.uniform() * (i + 1)));
          [perm[i], perm[j]] = [perm[j], perm[i]];
        }
        pos = 0;
      }
      out.push(perm[pos++]);
    }
    return out;
  };
}

/** d × h initial weights: h random unit directions of R^d as columns. */
function initWeights(dv, d, h, seed) {
  return transpose(dv.randomUnitVectors(h, d, seed));
}

/**
 * Contrastive projection head z = xW (W: d × h) trained on pairs of augmented views with
 * loss = NT-Xent(τ) + μ·W₂(similarities of view a, of view b) + λ‖W‖². τ follows a cosine
 * schedule, or with `learnTemperature` is learned (CLIP's logit scale): Adam on log τ with
 * ∂L/∂log τ = τ·∂L/∂τ from ntXent's gradTemperature, starting at tauStart, kept in
 * [tauMin, 1]. Returns { W, history: [{ step, tau, ntxent, wasserstein, penalty,
 * gradTemperature, entropy, positiveProbability, maxNegativeProbability, effectiveNegatives }] }
 * (the last five from ntXent's diagnostics).
 */
function trainContrastive(dv, ref, task, seed, o) {
  const rng = new ref.SplitMix64(seed);
  const W = initWeights(dv, task.raw.cols, o.dim, seed);
  const view = augmenter(task.raw, task.mu, task.sd, rng, task.augment);
  const next = batcher(task.trainIdx.length, Math.min(o.batch, task.trainIdx.length), rng);
  const tau = dv.temperatureSchedule({ start: o.tauStart, end: o.tauEnd, steps: o.steps, kind: 'cosine' });
  const adam = new Adam([W.data], o.lr);
  const logTau = new Float64Array([Math.log(o.tauStart)]);
  const adamTau = o.learnTemperature ? new Adam([logTau], o.tauLr ?? 0.02) : null;
  const logTauMin = Math.log(o.tauMin ?? 0.02);
  const history = [];
  for (let step = 0; step < o.steps; step++) {
    const idx = next().map((i) => task.trainIdx[i]);
    const xa = view(idx);
    const xb = view(idx);
    const za = dv.matmul(xa, W);
    const zb = dv.matmul(xb, W);
    const t = adamTau ? Math.exp(logTau[0]) : tau(step);
    const nt = dv.ntXent(za, zb, { temperature: t });
    const ws = dv.wassersteinRegularizer(za, zb, { p: 2 });
    const pen = dv.normPenalty(W, o.lambda);
    const ga = addInto(Float32Array.from(nt.gradA.data), ws.gradA.data, o.mu);
    const gb = addInto(Float32Array.from(nt.gradB.data), ws.gradB.data, o.mu);
    const gW = addInto(
      addInto(gradWeights(dv, xa, { data: ga, rows: za.rows, cols: za.cols }), gradWeights(dv, xb, { data: gb, rows: zb.rows, cols: zb.cols })),
      pen.grad.data,
    );
    adam.step([gW]);
    if (adamTau) {
      adamTau.step([[t * nt.gradTemperature]]);
      logTau[0] = Math.min(0, Math.max(logTauMin, logTau[0]));
    }
    const st = nt.stats ?? {};
    history.push({
      step,
      tau: t,
      ntxent: nt.loss,
      wasserstein: ws.loss,
      penalty: pen.loss,
      gradTemperature: nt.gradTemperature,
      entropy: st.meanEntropy,
      positiveProbability: st.meanPositiveProbability,
      maxNegativeProbability: st.meanMaxNegativeProbability,
      effectiveNegatives: st.effectiveNegatives,
    });
    if (o.onStep) o.onStep(step);
  }
  return { W, history };
}

/**
 * Supervised margin head: z = xW (then, with `o.batchNorm`, an affine BatchNorm trained with
 * it through its backward pass), prototypes P (C × h), loss = marginSoftmax(kind, scale, margin,
 * label smoothing) + λ‖W‖². Light augmentation of the inputs. Returns { W, P, bn, history }
 * (bn: the layer, to apply in inference mode, or null).
 */
function trainMargin(dv, ref, task, kind, seed, o) {
  const rng = new ref.SplitMix64(seed);
  const W = initWeights(dv, task.raw.cols, o.dim, seed);
  const P = dv.randomUnitVectors(task.classes, o.dim, seed + 1);
  const view = augmenter(task.raw, task.mu, task.sd, rng, task.augmentMargin ?? task.augment);
  const next = batcher(task.trainIdx.length, Math.min(o.batch, task.trainIdx.length), rng);
  const bn = o.batchNorm ? new dv.BatchNorm(o.dim, { affine: true, momentum: 0.1 }) : null;
  const adam = new Adam(bn ? [W.data, P.data, bn.weight, bn.bias] : [W.data, P.data], o.lr);
  const history = [];
  for (let step = 0; step < o.steps; step++) {
    const idx = next().map((i) => task.trainIdx[i]);
    const x = view(idx);
    const y = Uint32Array.from(idx, (i) => task.y[i]);
    const z0 = dv.matmul(x, W);
    const z = bn ? bn.forward(z0) : z0;
    const r = dv.marginSoftmax(z, P, y, { kind, scale: o.scale, margin: o.margin[kind], labelSmoothing: o.labelSmoothing });
    const pen = dv.normPenalty(W, o.lambda);
    const g = bn ? bn.backward(r.gradX) : { gradX: r.gradX };
    const grads = [addInto(gradWeights(dv, x, g.gradX), pen.grad.data), r.gradW.data];
    if (bn) grads.push(g.gradWeight, g.gradBias);
    adam.step(grads);
    history.push({ step, loss: r.loss, penalty: pen.loss });
    if (o.onStep) o.onStep(step);
  }
  return { W, P, bn, history };
}

module.exports = { Adam, augmenter, batcher, gradWeights, trainContrastive, trainMargin, transpose };
