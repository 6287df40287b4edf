/**
 * Reference implementation of chapter 5 (symmetry and geometry): k-NN classification, Haar
 * random orthogonal matrices, matrix product, orthogonal Procrustes and spherical triangles.
 * Written for clarity; float64 throughout. The oracle the native backend is tested against.
 */
import { alloc } from '../contract/alloc';
import {
  checkKnn,
  checkMatmul,
  checkProcrustes,
  checkRandomOrthogonal,
  checkTriangle,
  GaussianStream,
  type ProcrustesResult,
  snapKnn,
  type SphericalTriangle,
} from '../contract/geometry';
import type { MetricOptions } from '../contract/similarity';
import * as v from '../contract/validate';
import { fail } from '../errors';
import type { Matrix } from '../matrix';
import { score64, sumsq64 } from './similarity';

/**
 * Majority vote over `k` neighbour labels listed best first; a tie on votes goes to the label
 * whose best-ranked member comes first (i.e. is nearest).
 */
export function vote(neighbourLabels: ArrayLike<number>): number {
  const count = new Map<number, number>();
  const first = new Map<number, number>();
  for (let t = 0; t < neighbourLabels.length; t++) {
    const l = neighbourLabels[t];
    count.set(l, (count.get(l) ?? 0) + 1);
    if (!first.has(l)) first.set(l, t);
  }
  let best = -1;
  let bestCount = -1;
  let bestFirst = Infinity;
  for (const [l, c] of count) {
    const f = first.get(l) as number;
    if (c > bestCount || (c === bestCount && f < bestFirst)) {
      best = l;
      bestCount = c;
      bestFirst = f;
    }
  }
  return best;
}

/**
 * Predicted label of every query row by majority vote among its k nearest training rows under
 * `metric` ('cosine' by default, also 'dot' and 'l2sq'); neighbours are ranked as by `topK`
 * (ties by lower index). When several labels tie on votes, the label whose closest member among
 * the k is nearest wins.
 */
export function knnClassify(train: Matrix, labels: Uint32Array, queries: Matrix, k: number, options?: MetricOptions): Uint32Array {
  [train, queries, options] = snapKnn('knnClassify', train, queries, options);
  const metric = checkKnn('knnClassify', train, labels, queries, k, options);
  const d = train.cols;
  const tn = new Float64Array(train.rows);
  for (let j = 0; j < train.rows; j++) tn[j] = sumsq64(train.data, j * d, d);
  const qn = new Float64Array(queries.rows);
  for (let i = 0; i < queries.rows; i++) qn[i] = sumsq64(queries.data, i * d, d);
  const key = new Float64Array(train.rows);
  const order = new Uint32Array(train.rows);
  const out = new Uint32Array(queries.rows);
  const nb = new Uint32Array(k);
  for (let i = 0; i < queries.rows; i++) {
    for (let j = 0; j < train.rows; j++) {
      const s = score64(queries, i, train, j, metric, qn, tn);
      key[j] = Number.isNaN(s) ? -Infinity : metric === 2 ? -s : s;
      order[j] = j;
    }
    order.sort((a, b) => (key[a] > key[b] ? -1 : key[a] < key[b] ? 1 : a - b));
    for (let t = 0; t < k; t++) nb[t] = labels[order[t]];
    out[i] = vote(nb);
  }
  return out;
}

/**
 * Q of the Householder QR of the d × d row-major matrix `a` (float64), with the sign fix
 * Q ← Q·diag(sign Rᵢᵢ) (sign 0 → +1), so that Q is unique and Haar-distributed for a Gaussian a.
 */
export function qrQ(a: Float64Array, d: number): Float64Array {
  const r = Float64Array.from(a);
  const vs: Float64Array[] = [];
  const diag = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    let s = 0;
    for (let i = j; i < d; i++) s += r[i * d + j] ** 2;
    const nrm = Math.sqrt(s);
    const hv = new Float64Array(d);
    const x0 = r[j * d + j];
    const alpha = x0 >= 0 ? -nrm : nrm;
    if (nrm === 0) {
      vs.push(hv);
      diag[j] = 0;
      continue;
    }
    hv[j] = x0 - alpha;
    for (let i = j + 1; i < d; i++) hv[i] = r[i * d + j];
    let vv = 0;
    for (let i = j; i < d; i++) vv += hv[i] * hv[i];
    if (vv > 0) {
      for (let c = j; c < d; c++) {
        let t = 0;
        for (let i = j; i < d; i++) t += hv[i] * r[i * d + c];
        const f = (2 * t) / vv;
        for (let i = j; i < d; i++) r[i * d + c] -= f * hv[i];
      }
    }
    vs.push(hv);
    diag[j] = r[j * d + j];
  }
  // Q = H_0 H_1 … H_{d−1}, applied to the identity from the right-most reflector.
  const q = alloc(Float64Array, d * d, 'randomOrthogonal', 'the d × d matrix Q');
  for (let i = 0; i < d; i++) q[i * d + i] = 1;
  for (let j = d - 1; j >= 0; j--) {
    const hv = vs[j];
    let vv = 0;
    for (let i = j; i < d; i++) vv += hv[i] * hv[i];
    if (vv === 0) continue;
    for (let c = 0; c < d; c++) {
      let t = 0;
      for (let i = j; i < d; i++) t += hv[i] * q[i * d + c];
      const f = (2 * t) / vv;
      if (f !== 0) for (let i = j; i < d; i++) q[i * d + c] -= f * hv[i];
    }
  }
  for (let j = 0; j < d; j++) {
    if (diag[j] < 0) for (let i = 0; i < d; i++) q[i * d + j] = -q[i * d + j];
  }
  return q;
}

/**
 * A d × d orthogonal matrix drawn from the Haar measure: the Q factor (with the sign fix
 * Q·diag(sign Rᵢᵢ)) of the QR decomposition of a d × d matrix of standard normals, filled row
 * by row from the documented {@link GaussianStream} seeded with `seed`. The same seed gives the
 * same matrix on every backend (within 1e-5).
 */
export function randomOrthogonal(d: number, seed: number): Matrix {
  checkRandomOrthogonal('randomOrthogonal', d, seed);
  const g = new GaussianStream(seed);
  const a = alloc(Float64Array, d * d, 'randomOrthogonal', 'the d × d Gaussian matrix');
  for (let i = 0; i < d * d; i++) a[i] = g.gauss();
  const q = qrQ(a, d);
  return { data: Float32Array.from(q), rows: d, cols: d };
}

/** a·b, an a.rows × b.cols Matrix (float64 accumulation). */
export function matmul(a: Matrix, b: Matrix): Matrix {
  a = v.snap('matmul', 'a', a);
  b = v.snap('matmul', 'b', b);
  checkMatmul('matmul', a, b);
  const m = a.rows;
  const kd = a.cols;
  const n = b.cols;
  const out = alloc(Float32Array, m * n, 'matmul', 'the a.rows × b.cols product', 'split a into row blocks');
  const acc = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    for (let p = 0; p < kd; p++) {
      const x = a.data[i * kd + p];
      if (x === 0) continue;
      for (let j = 0; j < n; j++) acc[j] += x * b.data[p * n + j];
    }
    for (let j = 0; j < n; j++) out[i * n + j] = acc[j];
  }
  return { data: out, rows: m, cols: n };
}

/**
 * Q = U·Vᵀ for the SVD M = U·Σ·Vᵀ of the d × d row-major float64 matrix `m`, by one-sided
 * Jacobi. Directions of zero singular values are completed to an orthonormal basis, so Q is
 * always orthogonal.
 */
export function polarOrthogonal(m: Float64Array, d: number): Float64Array {
  // Columns of M and of V.
  const a: Float64Array[] = [];
  const vc: Float64Array[] = [];
  for (let j = 0; j < d; j++) {
    const c = new Float64Array(d);
    for (let i = 0; i < d; i++) c[i] = m[i * d + j];
    a.push(c);
    const e = new Float64Array(d);
    e[j] = 1;
    vc.push(e);
  }
  const rot = (x: Float64Array, y: Float64Array, c: number, s: number): void => {
    for (let i = 0; i < d; i++) {
      const xi = x[i];
      const yi = y[i];
      x[i] = c * xi - s * yi;
      y[i] = s * xi + c * yi;
    }
  };
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < d - 1; p++) {
      for (let q = p + 1; q < d; q++) {
        let al = 0;
        let be = 0;
        let ga = 0;
        const ap = a[p];
        const aq = a[q];
        for (let i = 0; i < d; i++) {
          al += ap[i] * ap[i];
          be += aq[i] * aq[i];
          ga += ap[i] * aq[i];
        }
        if (ga === 0 || Math.abs(ga) <= 1e-15 * Math.sqrt(al * be)) continue;
        rotated = true;
        const zeta = (be - al) / (2 * ga);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        rot(ap, aq, c, s);
        rot(vc[p], vc[q], c, s);
      }
    }
    if (!rotated) break;
  }
  const sig = a.map((c) => Math.sqrt(sumsq64(c, 0, d)));
  const smax = Math.max(0, ...sig);
  const tol = smax * d * 1e-13;
  const u: (Float64Array | null)[] = a.map((c, j) => (sig[j] > tol && sig[j] > 0 ? c.map((x) => x / sig[j]) : null));
  // Complete the missing left singular vectors by Gram–Schmidt on the standard basis.
  let e = 0;
  for (let j = 0; j < d; j++) {
    if (u[j] !== null) continue;
    for (; e < d; e++) {
      const w = new Float64Array(d);
      w[e] = 1;
      for (let pass = 0; pass < 2; pass++) {
        for (const b of u) {
          if (b === null) continue;
          let t = 0;
          for (let i = 0; i < d; i++) t += b[i] * w[i];
          for (let i = 0; i < d; i++) w[i] -= t * b[i];
        }
      }
      const nw = Math.sqrt(sumsq64(w, 0, d));
      if (nw > 0.5) {
        u[j] = w.map((x) => x / nw);
        e++;
        break;
      }
    }
  }
  const q = alloc(Float64Array, d * d, 'procrustes', 'the d × d rotation');
  for (let j = 0; j < d; j++) {
    const uj = u[j] as Float64Array;
    const vj = vc[j];
    for (let r = 0; r < d; r++) {
      const ur = uj[r];
      for (let c = 0; c < d; c++) q[r * d + c] += ur * vj[c];
    }
  }
  return q;
}

/**
 * Orthogonal Procrustes: the d × d orthogonal Q (reflections allowed) minimizing ‖x·Q − y‖_F
 * for two n × d matrices of matching rows, Q = U·Vᵀ from the SVD of xᵀy, and the residual
 * ‖x·Q − y‖_F. When xᵀy is rank-deficient, Q is one of the minimizers (still orthogonal).
 */
export function procrustes(x: Matrix, y: Matrix): ProcrustesResult {
  x = v.snap('procrustes', 'x', x);
  y = v.snap('procrustes', 'y', y);
  checkProcrustes('procrustes', x, y);
  const n = x.rows;
  const d = x.cols;
  const m = alloc(Float64Array, d * d, 'procrustes', 'the d × d matrix x^T y');
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < d; i++) {
      const xi = x.data[r * d + i];
      if (xi === 0) continue;
      for (let j = 0; j < d; j++) m[i * d + j] += xi * y.data[r * d + j];
    }
  }
  const q = polarOrthogonal(m, d);
  let res = 0;
  const row = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    row.fill(0);
    for (let i = 0; i < d; i++) {
      const xi = x.data[r * d + i];
      for (let j = 0; j < d; j++) row[j] += xi * q[i * d + j];
    }
    for (let j = 0; j < d; j++) res += (row[j] - y.data[r * d + j]) ** 2;
  }
  return { rotation: { data: Float32Array.from(q), rows: d, cols: d }, residual: Math.sqrt(res) };
}

// ---------------------------------------------------------------------------------------------
// Spherical triangles

function dotv(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function nrm(a: Float64Array): number {
  return Math.sqrt(dotv(a, a));
}

function sub(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((x, i) => x - b[i]);
}

/** q minus its projections on the orthonormal vectors `basis` (two passes). */
function reject(q: Float64Array, basis: Float64Array[]): Float64Array {
  const w = Float64Array.from(q);
  for (let pass = 0; pass < 2; pass++) {
    for (const b of basis) {
      const t = dotv(w, b);
      for (let i = 0; i < w.length; i++) w[i] -= t * b[i];
    }
  }
  return w;
}

/** Angle between two non-zero vectors, atan2(‖p‖‖q⊥p‖, p·q). */
function angleBetween(p: Float64Array, q: Float64Array): number {
  const np = nrm(p);
  const ph = p.map((x) => x / np);
  const perp = reject(q, [ph]);
  return Math.atan2(np * nrm(perp), dotv(p, q));
}

/** Interior angle at unit vertex `at` toward unit vertices p and q (tangent directions). */
function vertexAngle(at: Float64Array, p: Float64Array, q: Float64Array): number {
  // Tangent toward p: (p − at) minus its component along at (the difference keeps precision).
  const tp = reject(sub(p, at), [at]);
  const tq = reject(sub(q, at), [at]);
  return angleBetween(tp, tq);
}

/** Geodesic distance between unit vectors: 2·atan2(‖p − q‖, ‖p + q‖). */
function geodesic(p: Float64Array, q: Float64Array): number {
  let s = 0;
  let t = 0;
  for (let i = 0; i < p.length; i++) {
    s += (p[i] - q[i]) ** 2;
    t += (p[i] + q[i]) ** 2;
  }
  return 2 * Math.atan2(Math.sqrt(s), Math.sqrt(t));
}

/** Relative volume below which three unit vectors count as one great circle. */
export const SPHERICAL_DEGENERACY = 1e-9;

function unit64(fn: string, name: string, a: Float32Array): Float64Array {
  const out = Float64Array.from(a);
  let m = 0;
  for (let i = 0; i < out.length; i++) m = Math.max(m, Math.abs(out[i]));
  if (m === 0) fail('E_ARG', `${fn}: ${name} is the zero vector`);
  for (let i = 0; i < out.length; i++) out[i] /= m;
  const n = nrm(out);
  for (let i = 0; i < out.length; i++) out[i] /= n;
  return out;
}

/**
 * The spherical triangle with vertices x, y, z (normalized inside): geodesic sides, interior
 * angles, spherical excess (= area on the unit sphere), the flat area of the chord triangle and
 * the curvature excess / chordArea. Computed with atan2 forms throughout; the excess uses the
 * Van Oosterom–Strackee formula tan(E/2) = vol(x, y, z) / (1 + x·y + y·z + z·x) with the
 * volume from a Gram–Schmidt of (x, y − x, z − x), so tiny triangles keep full relative
 * precision. Two equal or antipodal vertices, or three on one great circle → E_ARG.
 */
export function sphericalTriangle(x: Float32Array, y: Float32Array, z: Float32Array): SphericalTriangle {
  const fn = 'sphericalTriangle';
  checkTriangle(fn, x, y, z);
  const X = unit64(fn, 'x', x);
  const Y = unit64(fn, 'y', y);
  const Z = unit64(fn, 'z', z);
  return triangle64(X, Y, Z);
}

/** The triangle of three float64 unit vectors (shared by tests and the reference). */
export function triangle64(X: Float64Array, Y: Float64Array, Z: Float64Array): SphericalTriangle {
  const fn = 'sphericalTriangle';
  const u = sub(Y, X);
  const w = sub(Z, X);
  const nu = nrm(u);
  const nw = nrm(w);
  // Volume of the parallelepiped (x, u, w) = ‖x‖·‖u⊥x‖·‖w⊥{x,u}‖.
  const u1 = reject(u, [X]);
  const h2 = nrm(u1);
  const e2 = h2 > 0 ? u1.map((t) => t / h2) : u1;
  const h3 = h2 > 0 ? nrm(reject(w, [X, e2])) : 0;
  const vol = h2 * h3;
  if (!(nu > 0) || !(nw > 0) || !(vol > SPHERICAL_DEGENERACY * nu * nw)) {
    fail('E_ARG', `${fn}: degenerate triangle (two vertices equal or antipodal, or all three on one great circle)`);
  }
  const sides: [number, number, number] = [geodesic(Y, Z), geodesic(X, Z), geodesic(X, Y)];
  const angles: [number, number, number] = [vertexAngle(X, Y, Z), vertexAngle(Y, Z, X), vertexAngle(Z, X, Y)];
  const den = 1 + dotv(X, Y) + dotv(Y, Z) + dotv(Z, X);
  const excess = 2 * Math.atan2(vol, den);
  // Flat chord triangle: ½‖u‖·‖w⊥u‖.
  const uh = u.map((t) => t / nu);
  const chordArea = 0.5 * nu * nrm(reject(w, [uh]));
  return { sides, angles, excess, area: excess, chordArea, curvature: excess / chordArea };
}
export * from './curvature';
