/**
 * Reference implementation of the intrinsic-geometry tools: geodesic distances on the
 * k-nearest-neighbour graph of a point cloud, Gromov's four-point hyperbolicity,
 * triangle-comparison curvature, the distortion a linear map causes, and word analogies
 * (3CosAdd / 3CosMul). Float64 throughout, with the same operation order as the native backend
 * (so neighbour choices and shortest paths agree); random quadruples and triangles come from
 * the documented SplitMix64 stream.
 */
import { alloc } from '../contract/alloc';
import {
  type AnalogyOptions,
  type AnalogyResult,
  checkAnalogy,
  checkGeodesics,
  checkMapDistortion,
  checkSampled,
  type Graph,
  type GraphGeodesicsOptions,
  type Hyperbolicity,
  type HyperbolicityOptions,
  type MapDistortion,
  type MapDistortionOptions,
  type TriangleCurvature,
  type TriangleCurvatureOptions,
} from '../contract/curvature';
import { fail } from '../errors';
import type { Matrix } from '../matrix';
import { SplitMix64 } from './statistics';

function prepare(fn: string, m: Matrix, code: number): Float64Array {
  const d = m.cols;
  const p = Float64Array.from(m.data);
  if (code === 0) {
    for (let i = 0; i < m.rows; i++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += p[i * d + t] * p[i * d + t];
      if (s === 0) fail('E_ARG', `${fn}: m has a zero-norm row ${i} (the angular metric needs directions)`);
      const nr = Math.sqrt(s);
      for (let t = 0; t < d; t++) p[i * d + t] /= nr;
    }
  }
  return p;
}

function dist2(p: Float64Array, i: number, j: number, d: number): number {
  let s = 0;
  for (let t = 0; t < d; t++) {
    const x = p[i * d + t] - p[j * d + t];
    s += x * x;
  }
  return s;
}

function edgeLen(d2: number, code: number): number {
  return code === 0 ? 2 * Math.asin(Math.min(Math.sqrt(d2) / 2, 1)) : Math.sqrt(d2);
}

/** Indices of the k smallest keys (ties by lower index) among 0..n except `skip`. */
function kSmallest(key: Float64Array, n: number, k: number, skip: number): number[] {
  const idx: number[] = [];
  for (let j = 0; j < n; j++) {
    if (j === skip) continue;
    if (idx.length === k && !(key[j] < key[idx[k - 1]])) continue; // j > every kept index: ties lose
    let pos = idx.length === k ? k - 1 : idx.length;
    if (idx.length < k) idx.push(j);
    while (pos > 0 && key[idx[pos - 1]] > key[j]) {
      idx[pos] = idx[pos - 1];
      pos--;
    }
    idx[pos] = j;
  }
  return idx;
}

function knnGraph(p: Float64Array, n: number, d: number, k: number, code: number): Graph {
  const nb: number[][] = Array.from({ length: n }, () => []);
  const key = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) key[j] = j === i ? 0 : dist2(p, i, j, d);
    for (const j of kSmallest(key, n, k, i)) {
      nb[i].push(j);
      nb[j].push(i);
    }
  }
  const start = new Int32Array(n + 1);
  const adj: number[] = [];
  const w: number[] = [];
  for (let i = 0; i < n; i++) {
    const l = [...new Set(nb[i])].sort((a, b) => a - b);
    for (const j of l) {
      adj.push(j);
      w.push(edgeLen(dist2(p, i, j, d), code));
    }
    start[i + 1] = adj.length;
  }
  return { n, start, adj: Uint32Array.from(adj), w: Float64Array.from(w) };
}

/** A binary min-heap of (distance, vertex) pairs ordered by distance, then vertex. */
class MinHeap {
  private d: number[] = [];
  private v: number[] = [];
  get size(): number {
    return this.d.length;
  }
  private less(a: number, b: number): boolean {
    return this.d[a] < this.d[b] || (this.d[a] === this.d[b] && this.v[a] < this.v[b]);
  }
  private swap(a: number, b: number): void {
    [this.d[a], this.d[b]] = [this.d[b], this.d[a]];
    [this.v[a], this.v[b]] = [this.v[b], this.v[a]];
  }
  push(dist: number, vertex: number): void {
    this.d.push(dist);
    this.v.push(vertex);
    let i = this.d.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): [number, number] {
    const top: [number, number] = [this.d[0], this.v[0]];
    const last = this.d.length - 1;
    this.swap(0, last);
    this.d.pop();
    this.v.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.d.length && this.less(l, m)) m = l;
      if (r < this.d.length && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}

/**
 * Dijkstra from `src`: distances (∞ when unreachable) and, if asked, predecessors (−1 for the
 * source and unreachable vertices). Vertices settle in order of (distance, index); a distance
 * changes only on strict improvement.
 */
function dijkstra(g: Graph, src: number, pred?: Int32Array): Float64Array {
  const dist = new Float64Array(g.n).fill(Infinity);
  if (pred) pred.fill(-1);
  const done = new Uint8Array(g.n);
  const h = new MinHeap();
  dist[src] = 0;
  h.push(0, src);
  while (h.size > 0) {
    const [du, u] = h.pop();
    if (done[u]) continue;
    done[u] = 1;
    for (let e = g.start[u]; e < g.start[u + 1]; e++) {
      const vtx = g.adj[e];
      const nd = du + g.w[e];
      if (nd < dist[vtx]) {
        dist[vtx] = nd;
        if (pred) pred[vtx] = u;
        h.push(nd, vtx);
      }
    }
  }
  return dist;
}

/**
 * `count` distinct uniform indices in [0, n) from `rng`: the t-th draw
 * r = min(⌊u·(n − t)⌋, n − t − 1) is mapped to the r-th index not drawn yet.
 */
export function drawDistinct(rng: SplitMix64, n: number, count: number): number[] {
  const out: number[] = [];
  const sorted: number[] = [];
  for (let t = 0; t < count; t++) {
    let r = Math.min(Math.floor(rng.uniform() * (n - t)), n - t - 1);
    for (const c of sorted) if (r >= c) r++;
    out.push(r);
    let pos = 0;
    while (pos < sorted.length && sorted[pos] < r) pos++;
    sorted.splice(pos, 0, r);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Public functions

/**
 * Geodesic distances along the data: the k-nearest-neighbour graph of the rows (an edge i–j
 * when either is among the other's k nearest, ties by the lower index), with edge lengths the
 * angle between the rows (`metric: 'angular'`, default) or their Euclidean distance, and
 * shortest paths by Dijkstra from each source. Returns a Matrix sources × rows (∞ where a row
 * is unreachable).
 */
export function graphGeodesics(m: Matrix, options: GraphGeodesicsOptions): Matrix {
  const fn = 'graphGeodesics';
  const [k, code, s] = checkGeodesics(fn, m, options);
  const n = m.rows;
  const g = knnGraph(prepare(fn, m, code), n, m.cols, k, code);
  const src = s ?? Uint32Array.from({ length: n }, (_, i) => i);
  const out = alloc(Float32Array, src.length * n, fn, 'the sources × rows distances', 'pass fewer sources at a time');
  for (let i = 0; i < src.length; i++) out.set(dijkstra(g, src[i]), i * n);
  return { data: out, rows: src.length, cols: n };
}

/**
 * The checks of a sampled graph function, its k-NN graph, and its draws: `count` (option `key`,
 * default `def`) sets of `size` distinct rows from the SplitMix64 stream of the seed.
 */
function sampledGraph(
  fn: string,
  m: Matrix,
  options: Parameters<typeof checkSampled>[2],
  key: 'samples' | 'triangles',
  def: number,
  size: number,
): { k: number; n: number; g: ReturnType<typeof knnGraph>; draws: number[][] } {
  const [k, code, count, seed] = checkSampled(fn, m, options, key, def, size);
  const n = m.rows;
  const g = knnGraph(prepare(fn, m, code), n, m.cols, k, code);
  const rng = new SplitMix64(seed);
  const draws: number[][] = [];
  for (let t = 0; t < count; t++) draws.push(drawDistinct(rng, n, size));
  return { k, n, g, draws };
}

/**
 * Gromov's four-point hyperbolicity of the geodesic (k-NN graph) metric of the rows: over
 * `samples` random quadruples of distinct rows (x, y, z, w), with the three pair sums
 * d(x,y)+d(z,w), d(x,z)+d(y,w), d(x,w)+d(y,z), δ is the largest half-gap between the two
 * largest sums; `relativeDelta` = 2δ / diameter (Khrulkov et al. 2020), near 0 for tree-like
 * (hyperbolic) data. `diameter` is the largest distance from the rows used as path sources (a
 * lower bound of the graph's diameter). Quadruples across disconnected parts are skipped.
 */
export function hyperbolicity(m: Matrix, options: HyperbolicityOptions): Hyperbolicity {
  const fn = 'hyperbolicity';
  const { k, n, g, draws: quads } = sampledGraph(fn, m, options, 'samples', 1000, 4);
  const samples = quads.length;
  const pairs: [number, number][] = [
    [0, 1],
    [2, 3],
    [0, 2],
    [1, 3],
    [0, 3],
    [1, 2],
  ];
  const req: [number, number][][] = Array.from({ length: n }, () => []);
  quads.forEach((q, qi) => {
    pairs.forEach(([a, b], s) => {
      req[q[a]].push([qi * 6 + s, q[b]]);
    });
  });
  const dist = new Float64Array(6 * samples);
  let diameter = 0;
  for (let s = 0; s < n; s++) {
    if (req[s].length === 0) continue;
    const d = dijkstra(g, s);
    for (let t = 0; t < n; t++) if (Number.isFinite(d[t]) && d[t] > diameter) diameter = d[t];
    for (const [slot, t] of req[s]) dist[slot] = d[t];
  }
  let delta = 0;
  let skipped = 0;
  for (let q = 0; q < samples; q++) {
    const x = dist.subarray(6 * q, 6 * q + 6);
    if (!x.every((e) => Number.isFinite(e))) {
      skipped++;
      continue;
    }
    const sums = [x[0] + x[1], x[2] + x[3], x[4] + x[5]].sort((a, b) => b - a);
    delta = Math.max(delta, (sums[0] - sums[1]) / 2);
  }
  if (skipped === samples) {
    fail('E_ARG', `${fn}: every sampled quadruple spans disconnected parts of the ${k}-nearest-neighbour graph; increase k`);
  }
  return { delta, relativeDelta: diameter > 0 ? (2 * delta) / diameter : 0, diameter, skipped };
}

/** Relative size below which a comparison distance counts as degenerate. */
const DEGENERATE = 1e-6;

function triangleRatio(g: Graph, x: number, y: number, z: number, pred: Int32Array): number | null {
  const dx = dijkstra(g, x);
  const dy = dijkstra(g, y, pred);
  const a = dy[z];
  const b = dx[z];
  const c = dx[y];
  if (!Number.isFinite(a) || !Number.isFinite(b) || !Number.isFinite(c) || a <= 0) return null;
  const half = a / 2;
  let best = z;
  let u = z;
  for (;;) {
    const e = Math.abs(dy[u] - half);
    const eb = Math.abs(dy[best] - half);
    if (e < eb || (e === eb && dy[u] < dy[best])) best = u;
    if (u === y) break;
    u = pred[u];
  }
  const t = dy[best];
  const flat2 = ((a - t) * c * c + t * b * b) / a - t * (a - t);
  const flat = Math.sqrt(Math.max(flat2, 0));
  if (dx[best] === 0 || flat <= DEGENERATE * (a + b + c)) return null;
  return dx[best] / flat;
}

/**
 * Triangle-comparison curvature of the geodesic (k-NN graph) metric: for each of `triangles`
 * random triples of distinct rows (x, y, z), the graph distance from x to the vertex m of the
 * shortest y→z path nearest its midpoint, divided by the distance from x to the point at the
 * same position t = d(y, m) on side yz of the flat triangle with the same three side lengths
 * (Stewart's theorem; Apollonius's median when t is exactly half). Ratio > 1: fatter than flat
 * (positive curvature, as on a sphere); < 1: thinner (negative curvature, as in a tree).
 * Graph paths zigzag, so geodesics are overestimated by a few percent for small k and sparse
 * data, long sides more in absolute terms; compare ratios at equal k and density.
 */
export function triangleCurvature(m: Matrix, options: TriangleCurvatureOptions): TriangleCurvature {
  const fn = 'triangleCurvature';
  const { k, n, g, draws: tris } = sampledGraph(fn, m, options, 'triangles', 200, 3);
  const triangles = tris.length;
  const pred = new Int32Array(n);
  const ratios: number[] = [];
  for (const [x, y, z] of tris) {
    const r = triangleRatio(g, x, y, z, pred);
    if (r !== null) ratios.push(r);
  }
  if (ratios.length === 0) {
    fail('E_ARG', `${fn}: every sampled triangle is degenerate or spans disconnected parts of the ${k}-nearest-neighbour graph; increase k`);
  }
  const s = [...ratios].sort((a, b) => a - b);
  const h = s.length >> 1;
  const medianRatio = s.length % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
  // Counted on the reported float32 ratios: a flat triangle's ratio is 1 up to float64 rounding.
  const positive = ratios.filter((r) => Math.fround(r) > 1).length;
  return {
    ratios: Float32Array.from(ratios),
    medianRatio,
    positiveFraction: positive / ratios.length,
    skipped: triangles - ratios.length,
  };
}

// ---------------------------------------------------------------------------------------------
// Map distortion

/** Singular values (largest first) of the d × d row-major `a` by one-sided Jacobi on its columns. */
export function singularValues(a: Float64Array, d: number): Float64Array {
  const u: Float64Array[] = [];
  for (let j = 0; j < d; j++) {
    const c = new Float64Array(d);
    for (let i = 0; i < d; i++) c[i] = a[i * d + j];
    u.push(c);
  }
  for (let sweep = 0; sweep < 80; sweep++) {
    let rotated = false;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        let al = 0;
        let be = 0;
        let ga = 0;
        for (let i = 0; i < d; i++) {
          al += u[p][i] * u[p][i];
          be += u[q][i] * u[q][i];
          ga += u[p][i] * u[q][i];
        }
        if (ga === 0 || Math.abs(ga) <= 1e-15 * Math.sqrt(al * be)) continue;
        rotated = true;
        const zeta = (be - al) / (2 * ga);
        const t = zeta === 0 ? 1 : (zeta < 0 ? -1 : 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const cs = 1 / Math.sqrt(1 + t * t);
        const sn = cs * t;
        for (let i = 0; i < d; i++) {
          const x = u[p][i];
          const y = u[q][i];
          u[p][i] = cs * x - sn * y;
          u[q][i] = sn * x + cs * y;
        }
      }
    }
    if (!rotated) break;
  }
  const s = u.map((c) => {
    let t = 0;
    for (let i = 0; i < d; i++) t += c[i] * c[i];
    return Math.sqrt(t);
  });
  return Float64Array.from(s.sort((x, y) => y - x));
}

function unitRows(x: Float64Array, n: number, d: number): Float64Array {
  const u = Float64Array.from(x);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let t = 0; t < d; t++) s += u[i * d + t] * u[i * d + t];
    if (s > 0) {
      const nr = Math.sqrt(s);
      for (let t = 0; t < d; t++) u[i * d + t] /= nr;
    }
  }
  return u;
}

function dotRows(u: Float64Array, i: number, w: Float64Array, j: number, d: number): number {
  let s = 0;
  for (let t = 0; t < d; t++) s += u[i * d + t] * w[j * d + t];
  return s;
}

function cosineKnn(u: Float64Array, n: number, d: number, k: number): Set<number>[] {
  const key = new Float64Array(n);
  const out: Set<number>[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) key[j] = j === i ? 0 : -dotRows(u, i, u, j, d);
    out.push(new Set(kSmallest(key, n, k, i)));
  }
  return out;
}

/**
 * How the d × d linear map `a` (each row x ↦ x·a) distorts the geometry of the rows of `x`
 * (n × d, n ≥ 2): its singular values and condition number σ_max/σ_min, the mean fraction of
 * each row's k nearest cosine neighbours that stay among its k nearest after the map, and the
 * mean absolute change of the pairwise cosines. Orthogonal maps give 1, 1 and 0: cosine k-NN is
 * invariant under them. Anisotropic scaling and shear reorder neighbours.
 */
export function mapDistortion(x: Matrix, a: Matrix, options?: MapDistortionOptions): MapDistortion {
  const fn = 'mapDistortion';
  const k = checkMapDistortion(fn, x, a, options);
  const n = x.rows;
  const d = x.cols;
  const x64 = Float64Array.from(x.data);
  const a64 = Float64Array.from(a.data);
  const y = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < d; t++) {
      const xv = x64[i * d + t];
      for (let j = 0; j < d; j++) y[i * d + j] += xv * a64[t * d + j];
    }
  }
  const sv = singularValues(a64, d);
  const smin = sv[d - 1];
  const ux = unitRows(x64, n, d);
  const uy = unitRows(y, n, d);
  const nx = cosineKnn(ux, n, d, k);
  const ny = cosineKnn(uy, n, d, k);
  let overlap = 0;
  for (let i = 0; i < n; i++) {
    let c = 0;
    for (const j of nx[i]) if (ny[i].has(j)) c++;
    overlap += c / k;
  }
  let change = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = i + 1; j < n; j++) s += Math.abs(dotRows(uy, i, uy, j, d) - dotRows(ux, i, ux, j, d));
    change += s;
  }
  return {
    singularValues: sv,
    conditionNumber: smin > 0 ? sv[0] / smin : Infinity,
    neighborOverlap: overlap / n,
    meanCosineChange: change / ((n * (n - 1)) / 2),
  };
}

// ---------------------------------------------------------------------------------------------
// Analogies

/** ε of 3CosMul (Levy & Goldberg 2014). */
export const COSMUL_EPS = 0.001;

/**
 * "a is to b as c is to ?" over the rows of `corpus` (a, b, c are row indices; they are never
 * returned): 3CosAdd (`method: 'add'`, default) ranks rows x by cos(x, b̂ − â + ĉ) on unit rows
 * (all 0 if that vector is zero); 3CosMul (`'mul'`, Levy & Goldberg 2014) by
 * c(x,b)·c(x,c) / (c(x,a) + 0.001) with cosines shifted to [0, 1], c = (1 + cos)/2. The k best,
 * ties by the lower index.
 */
export function analogy(corpus: Matrix, abc: [number, number, number], k: number, options?: AnalogyOptions): AnalogyResult {
  const fn = 'analogy';
  const [a, b, c, mul] = checkAnalogy(fn, corpus, abc, k, options);
  const n = corpus.rows;
  const d = corpus.cols;
  const u = unitRows(Float64Array.from(corpus.data), n, d);
  const t = new Float64Array(d);
  for (let j = 0; j < d; j++) t[j] = u[b * d + j] - u[a * d + j] + u[c * d + j];
  const tu = unitRows(t, 1, d);
  const score = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (mul) {
      const ca = (1 + dotRows(u, i, u, a, d)) / 2;
      const cb = (1 + dotRows(u, i, u, b, d)) / 2;
      const cc = (1 + dotRows(u, i, u, c, d)) / 2;
      score[i] = (cb * cc) / (ca + COSMUL_EPS);
    } else {
      score[i] = dotRows(u, i, tu, 0, d);
    }
  }
  const order: number[] = [];
  for (let i = 0; i < n; i++) if (i !== a && i !== b && i !== c) order.push(i);
  order.sort((p, q) => score[q] - score[p] || p - q);
  const top = order.slice(0, k);
  return { indices: Uint32Array.from(top), scores: Float32Array.from(top.map((i) => score[i])) };
}
