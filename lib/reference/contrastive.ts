/**
 * Reference implementation of chapter 3 (contrastive learning): softmax over similarities,
 * InfoNCE, SimCLR's NT-Xent, the mismatch score and temperature schedules. Written for clarity
 * with float64 accumulation; the oracle the native backend is tested against.
 *
 * Energy E(x, y) = −x·y and p(y_j | x) = softmax_j(x·y_j / τ).
 */
import { alloc } from '../contract/alloc';
import {
  checkInfoNCE,
  checkMismatch,
  checkNtXent,
  checkSoftmax,
  type ContrastiveStats,
  type InfoNCEOptions,
  type InfoNCEParsed,
  type InfoNCEResult,
  type MismatchOptions,
  type MismatchResult,
  type NtXentOptions,
  type NtXentResult,
  scanInfoNCE,
  scanNtXent,
  type ScheduleOptions,
  snapInfoNCE,
  snapNtXent,
} from '../contract/contrastive';
import * as v from '../contract/validate';
import { fail } from '../errors';
import type { Matrix } from '../matrix';
import { bf16F64 } from './precision';

// ---------------------------------------------------------------------------------------------
// Float64 helpers.

function toF64(m: Matrix): Float64Array {
  return Float64Array.from(m.data);
}

/** Rows scaled to unit length (float64) and the original norms. */
function normRows(x: Float64Array, rows: number, d: number): { xh: Float64Array; norms: Float64Array } {
  const xh = new Float64Array(x.length);
  const norms = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[i * d + k] * x[i * d + k];
    const n = Math.sqrt(s);
    norms[i] = n;
    for (let k = 0; k < d; k++) xh[i * d + k] = x[i * d + k] / n;
  }
  return { xh, norms };
}

/** Backprop through x̂ = x/‖x‖ in place: g ← (g − x̂(x̂·g))/‖x‖. */
function backNorm(g: Float64Array, xh: Float64Array, norms: Float64Array, rows: number, d: number): void {
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += xh[i * d + k] * g[i * d + k];
    for (let k = 0; k < d; k++) g[i * d + k] = (g[i * d + k] - xh[i * d + k] * s) / norms[i];
  }
}

function toMatrix(g: Float64Array, rows: number, cols: number): Matrix {
  return { data: Float32Array.from(g), rows, cols };
}

/**
 * In place: row ← softmax(row / α) for logits held scaled by α = min(τ, 1) (so that a tiny τ
 * never makes an infinite logit); −∞ entries get probability 0. Returns
 * [log Σ exp((row − max)/α), max] so that log-sum-exp = log Σ + max/α.
 */
function scaledSoftmaxRow(z: Float64Array, off: number, n: number, alpha: number): [number, number] {
  let m = -Infinity;
  for (let j = 0; j < n; j++) if (z[off + j] > m) m = z[off + j];
  let s = 0;
  for (let j = 0; j < n; j++) {
    z[off + j] = Math.exp((z[off + j] - m) / alpha);
    s += z[off + j];
  }
  for (let j = 0; j < n; j++) z[off + j] /= s;
  return [Math.log(s), m];
}

/**
 * One query's ∂loss_i/∂τ and diagnostics from its logits z·α (masked entries −∞), positive
 * `pos` and logQ: [gradτ, entropy, p(pos), max p(neg), exp(entropy of the negatives)], in log space
 * (exact for any spread of the logits).
 */
function rowExtras(zs: Float64Array, off: number, n: number, pos: number, logQ: Float32Array | null, tau: number, alpha = 1): number[] {
  // Logits are held scaled by α = min(τ, 1) (u = α·z); every quantity is formed relative to
  // the largest negative, as a difference of the held values divided by α, so that neither
  // logits of 1e40 (or a logQ of 3e38) nor a subnormal τ (where z = u/α overflows) cost the
  // diagnostics their digits: d_j = z_j − mn, a = zp − mn, l = ln Σ_neg e^(d), r = lse − mn,
  // E = E_neg[z] − mn.
  let mu = -Infinity;
  for (let j = 0; j < n; j++) {
    const x = zs[off + j];
    if (j !== pos && x > mu) mu = x;
  }
  if (mu === -Infinity) return [0, 0, 1, 0, 0];
  const up = zs[off + pos];
  let ln = 0;
  let ez = 0;
  let elq = 0;
  for (let j = 0; j < n; j++) {
    const x = zs[off + j];
    if (j === pos || x === -Infinity) continue;
    const dj = (x - mu) / alpha;
    const e = Math.exp(dj);
    ln += e;
    if (e > 0) ez += e * dj;
    if (logQ) elq += e * logQ[j];
  }
  const a = (up - mu) / alpha;
  const l = Math.log(ln);
  const E = ez / ln;
  const lqp = logQ ? logQ[pos] : 0;
  // ∂L_i/∂τ = −(1/τ²)·Σ_j (p_j − y_j)·s_j = −(p(neg)/τ²)·(E_neg[s] − s_pos), with
  // s = (τ/α)·(u + α·logQ): −(p(neg)·X/τ)/α, X = (mu − u_pos) + α·(E + E_neg[logQ] − logQ_pos).
  const X = mu - up + alpha * (E + elq / ln - lqp);
  if (a === Infinity) {
    // The positive takes all the mass (a subnormal τ): p(pos) = 1 exactly.
    return [0, 0, 1, 0, Math.exp(l - E)];
  }
  const m = Math.max(a, l);
  const r = m + Math.log(Math.exp(a - m) + Math.exp(l - m));
  const pneg = Math.exp(l - r);
  const pp = Math.exp(a - r);
  const gt = pneg === 0 ? 0 : -(pneg * X) / tau / alpha;
  return [gt, (pp > 0 ? pp * (r - a) : 0) + pneg * (r - E), pp, Math.exp(-r), Math.exp(l - E)];
}

/** Means of per-query extras → (gradTemperature, stats). */
function meanExtras(ex: number[][]): { gradTemperature: number; stats: ContrastiveStats } {
  const t = [0, 0, 0, 0, 0];
  for (const e of ex) for (let k = 0; k < 5; k++) t[k] += e[k];
  const n = ex.length;
  return {
    gradTemperature: t[0] / n,
    stats: { meanEntropy: t[1] / n, meanPositiveProbability: t[2] / n, meanMaxNegativeProbability: t[3] / n, effectiveNegatives: t[4] / n },
  };
}

// ---------------------------------------------------------------------------------------------
// Public functions.

/** p(y_j | x) = softmax_j(x·y_j / τ) over the rows of `ys`, as a Float32Array of length ys.rows. */
export function softmaxProbabilities(x: Float32Array, ys: Matrix, temperature: number): Float32Array {
  const fn = 'softmaxProbabilities';
  ys = v.snap(fn, 'ys', ys);
  checkSoftmax(fn, x, ys, temperature);
  v.finite(fn, 'x', x);
  v.finite(fn, 'ys', ys.data);
  const d = ys.cols;
  const z = new Float64Array(ys.rows);
  for (let j = 0; j < ys.rows; j++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[k] * ys.data[j * d + k];
    z[j] = temperature < 1 ? s : s / temperature;
  }
  scaledSoftmaxRow(z, 0, ys.rows, Math.min(temperature, 1));
  return Float32Array.from(z);
}

/**
 * InfoNCE: loss = mean over queries of −log p(positive | query) with logits q·k/τ − logQ_k.
 * Returns ∂loss/∂q and ∂loss/∂keys (through the normalization when `normalize` is set).
 */
export function infoNCE(q: Matrix, keys: Matrix, options: InfoNCEOptions): InfoNCEResult {
  const fn = 'infoNCE';
  [q, keys, options] = snapInfoNCE(fn, q, keys, options);
  const p = checkInfoNCE(fn, q, keys, options);
  scanInfoNCE(fn, q, keys, p);
  return infoNCECore(q, keys, p);
}

function infoNCECore(q: Matrix, keys: Matrix, p: InfoNCEParsed): InfoNCEResult {
  const B = q.rows;
  const K = keys.rows;
  const d = q.cols;
  const tau = p.temperature;
  let qx = toF64(q);
  let kx = toF64(keys);
  let qn: { xh: Float64Array; norms: Float64Array } | null = null;
  let kn: { xh: Float64Array; norms: Float64Array } | null = null;
  if (p.normalize) {
    qn = normRows(qx, B, d);
    kn = normRows(kx, K, d);
    qx = qn.xh;
    kx = kn.xh;
  }
  // bf16 precision: every product of the logits and of the gradients uses the bf16 values of
  // the rows (the backward pass through the normalization keeps the unrounded rows).
  if (p.precision === 1) {
    qx = bf16F64(qx);
    kx = bf16F64(kx);
  }
  // Logits q·k/τ − logQ are held scaled by α = min(τ, 1): u = α·(q·k/τ − logQ), so that a tiny τ
  // (down to the subnormals, where 1/τ overflows) never makes an infinite logit; differences
  // (u − max u)/α ≤ 0 go through exp, and the gradients are divided by τ last.
  const alpha = Math.min(tau, 1);
  const z = alloc(Float64Array, B * K, 'infoNCE', 'the B × K logits', 'split the batch');
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < K; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += qx[i * d + k] * kx[j * d + k];
      z[i * K + j] = (tau < 1 ? s : s / tau) - alpha * (p.logQ ? p.logQ[j] : 0);
    }
  }
  if (p.keyIds) {
    for (let i = 0; i < B; i++) {
      const pos = p.positives ? p.positives[i] : i;
      const id = p.keyIds[pos];
      for (let j = 0; j < K; j++) if (j !== pos && p.keyIds[j] === id) z[i * K + j] = -Infinity;
    }
  }
  let loss = 0;
  const ex: number[][] = [];
  for (let i = 0; i < B; i++) {
    const pos = p.positives ? p.positives[i] : i;
    const off = i * K;
    ex.push(rowExtras(z, off, K, pos, p.logQ, tau, alpha));
    let m = -Infinity;
    for (let j = 0; j < K; j++) if (z[off + j] > m) m = z[off + j];
    const zp = z[off + pos];
    let sum = 0;
    for (let j = 0; j < K; j++) {
      z[off + j] = Math.exp((z[off + j] - m) / alpha);
      sum += z[off + j];
    }
    for (let j = 0; j < K; j++) z[off + j] /= sum;
    loss += Math.log(sum) + (m - zp) / alpha;
    z[off + pos] -= 1; // z now holds P − onehot(positive)
  }
  loss /= B;
  const gq = alloc(Float64Array, B * d, 'infoNCE', 'gradQ', 'split the batch');
  const gk = alloc(Float64Array, K * d, 'infoNCE', 'gradKeys', 'split the batch');
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < K; j++) {
      const g = z[i * K + j] / B;
      if (g === 0) continue;
      for (let k = 0; k < d; k++) {
        gq[i * d + k] += g * kx[j * d + k];
        gk[j * d + k] += g * qx[i * d + k];
      }
    }
  }
  for (let t = 0; t < gq.length; t++) gq[t] /= tau;
  for (let t = 0; t < gk.length; t++) gk[t] /= tau;
  if (qn && kn) {
    backNorm(gq, qn.xh, qn.norms, B, d);
    backNorm(gk, kn.xh, kn.norms, K, d);
  }
  return { loss, gradQ: toMatrix(gq, B, d), gradKeys: toMatrix(gk, K, d), ...meanExtras(ex) };
}

/**
 * NT-Xent (SimCLR): rows of a and b are L2-normalized inside, z = [â; b̂] (2N rows), logits
 * cos/τ with each anchor's own similarity excluded; the positive of anchor i is its partner view
 * (i ± N). loss = mean over the 2N anchors of −log p(partner | anchor).
 */
export function ntXent(a: Matrix, b: Matrix, options: NtXentOptions): NtXentResult {
  const fn = 'ntXent';
  [a, b, options] = snapNtXent(fn, a, b, options);
  const tau = checkNtXent(fn, a, b, options);
  scanNtXent(fn, a, b);
  const N = a.rows;
  const d = a.cols;
  const R = 2 * N;
  const zx = new Float64Array(R * d);
  zx.set(a.data, 0);
  zx.set(b.data, N * d);
  const { xh, norms } = normRows(zx, R, d);
  // bf16 precision: the products use the bf16 values of the normalized rows (xb); the backward
  // pass through the normalization keeps the unrounded rows (xh).
  const xb = v.precisionOf(fn, options) === 1 ? bf16F64(xh) : xh;
  const s = alloc(Float64Array, R * R, 'ntXent', 'the 2N × 2N similarities', 'split the batch');
  for (let i = 0; i < R; i++) {
    for (let j = 0; j < R; j++) {
      if (i === j) {
        s[i * R + j] = -Infinity;
        continue;
      }
      let t = 0;
      for (let k = 0; k < d; k++) t += xb[i * d + k] * xb[j * d + k];
      // Held scaled by α = min(τ, 1), as in infoNCE, so a tiny τ never overflows.
      s[i * R + j] = tau < 1 ? t : t / tau;
    }
  }
  const alpha = Math.min(tau, 1);
  let loss = 0;
  const ex: number[][] = [];
  for (let i = 0; i < R; i++) {
    const pos = i < N ? i + N : i - N;
    const sp = s[i * R + pos];
    ex.push(rowExtras(s, i * R, R, pos, null, tau, alpha));
    const [lse, m] = scaledSoftmaxRow(s, i * R, R, alpha);
    loss += lse + (m - sp) / alpha;
    s[i * R + pos] -= 1;
  }
  loss /= R;
  // Every z_m is both an anchor (row m of G) and a candidate (column m of G); the 1/τ of
  // ∂logit/∂cos is applied after the sums.
  const c = 1 / R;
  const g = new Float64Array(R * d);
  for (let i = 0; i < R; i++) {
    for (let j = 0; j < R; j++) {
      const w = s[i * R + j] * c;
      if (w === 0) continue;
      for (let k = 0; k < d; k++) {
        g[i * d + k] += w * xb[j * d + k];
        g[j * d + k] += w * xb[i * d + k];
      }
    }
  }
  for (let t = 0; t < g.length; t++) g[t] /= tau;
  backNorm(g, xh, norms, R, d);
  return { loss, gradA: toMatrix(g.subarray(0, N * d), N, d), gradB: toMatrix(g.subarray(N * d), N, d), ...meanExtras(ex) };
}

/**
 * Alignment of two views: muP = mean cos(a_i, b_i), muQ = mean cos(a_i, b_j) over i ≠ j,
 * M = muP − muQ. With `withinView: true`, muQ also counts the within-view pairs (a_i, a_j) and
 * (b_i, b_j), i < j. Zero rows have cosine 0 with everything (as {@link cosine}).
 */
export function mismatchScore(a: Matrix, b: Matrix, options?: MismatchOptions): MismatchResult {
  const fn = 'mismatchScore';
  a = v.snap(fn, 'a', a);
  b = v.snap(fn, 'b', b);
  const withinView = checkMismatch(fn, a, b, options);
  v.finite(fn, 'a', a.data);
  v.finite(fn, 'b', b.data);
  const n = a.rows;
  const d = a.cols;
  const ah = toF64(a);
  const bh = toF64(b);
  for (const x of [ah, bh]) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += x[i * d + k] * x[i * d + k];
      const inv = s === 0 ? 0 : 1 / Math.sqrt(s);
      for (let k = 0; k < d; k++) x[i * d + k] *= inv;
    }
  }
  // Σ_{i≠j} â_i·b̂_j = (Σ_i â_i)·(Σ_j b̂_j) − Σ_i â_i·b̂_i.
  const sa = new Float64Array(d);
  const sb = new Float64Array(d);
  let diag = 0;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < d; k++) {
      sa[k] += ah[i * d + k];
      sb[k] += bh[i * d + k];
      diag += ah[i * d + k] * bh[i * d + k];
    }
  }
  let all = 0;
  for (let k = 0; k < d; k++) all += sa[k] * sb[k];
  const muP = diag / n;
  let muQ = (all - diag) / (n * (n - 1));
  if (withinView) {
    // Σ_{i<j} â_i·â_j = (‖Σ â_i‖² − Σ ‖â_i‖²)/2, likewise for b.
    let within = 0;
    for (let k = 0; k < d; k++) within += sa[k] * sa[k] + sb[k] * sb[k];
    for (let i = 0; i < n * d; i++) within -= ah[i] * ah[i] + bh[i] * bh[i];
    muQ = (all - diag + within / 2) / (2 * n * (n - 1));
  }
  return { muP, muQ, M: muP - muQ };
}

/**
 * A temperature schedule t → τ for t clamped to [0, steps], r = t/steps: 'linear'
 * start + (end − start)·r, 'cosine' (default) end + (start − end)·(1 + cos πr)/2,
 * 'exponential' start·(end/start)^r.
 */
export function temperatureSchedule(options: ScheduleOptions): (t: number) => number {
  const fn = 'temperatureSchedule';
  if (options === undefined || options === null || typeof options !== 'object') {
    fail('E_TYPE', `${fn}: options must be an object {start, end, steps, kind}, got ${options === null ? 'null' : typeof options}`);
  }
  const o = v.snapOpts(fn, options, ['start', 'end', 'steps', 'kind']);
  const { start, end, steps } = o;
  const kind = o.kind ?? 'cosine';
  v.num(fn, 'start', start);
  v.num(fn, 'end', end);
  v.int(fn, 'steps', steps);
  v.str(fn, 'kind', kind);
  if (!(start > 0) || !Number.isFinite(start)) fail('E_ARG', `${fn}: start must be > 0 and finite, got ${start}`);
  if (!(end > 0) || !Number.isFinite(end)) fail('E_ARG', `${fn}: end must be > 0 and finite, got ${end}`);
  if (steps < 1) fail('E_ARG', `${fn}: steps must be an integer >= 1, got ${steps}`);
  if (kind !== 'linear' && kind !== 'cosine' && kind !== 'exponential') {
    fail('E_ARG', `${fn}: unknown kind '${kind}' (expected 'linear', 'cosine' or 'exponential')`);
  }
  return (t: number): number => {
    if (typeof t !== 'number' || Number.isNaN(t)) fail('E_TYPE', `${fn}: t must be a number, got ${String(t)}`);
    const r = Math.min(Math.max(t, 0), steps) / steps;
    if (kind === 'linear') return start + (end - start) * r;
    if (kind === 'exponential') return start * (end / start) ** r;
    return end + ((start - end) * (1 + Math.cos(Math.PI * r))) / 2;
  };
}
