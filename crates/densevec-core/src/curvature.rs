//! Intrinsic geometry of a point cloud and of linear maps: geodesic distances on the
//! k-nearest-neighbour graph, Gromov's four-point hyperbolicity, triangle-comparison curvature,
//! the distortion a linear map causes, and word analogies (3CosAdd / 3CosMul).
//!
//! Everything here runs in f64 with the same operation order as the TypeScript reference, so
//! neighbour choices, edge lengths and therefore shortest paths agree between the backends.
//! Random quadruples and triangles come from the documented SplitMix64 stream.

use crate::bail;
use crate::error::{check_finite, check_matrix, Result};
use crate::pool;
use crate::statistics::SplitMix64;
use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

// ---------------------------------------------------------------------------------------------
// k-nearest-neighbour graph

/// Edge lengths of the graph: angles between rows (default) or Euclidean distances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphMetric {
    Angular,
    Euclidean,
}

impl GraphMetric {
    /// 0 angular, 1 euclidean.
    pub fn from_code(func: &str, c: u32) -> Result<Self> {
        match c {
            0 => Ok(GraphMetric::Angular),
            1 => Ok(GraphMetric::Euclidean),
            _ => bail!(Arg, "{func}: unknown metric code {c}"),
        }
    }
}

/// A symmetric weighted graph in CSR form (neighbours of each vertex in ascending order).
pub struct Graph {
    pub n: usize,
    pub start: Vec<usize>,
    pub adj: Vec<u32>,
    pub w: Vec<f64>,
}

/// Rows in f64, unit length for the angular metric (a zero row → E_ARG).
fn prepare(func: &str, m: &[f32], cols: usize, metric: GraphMetric) -> Result<Vec<f64>> {
    let mut p: Vec<f64> = m.iter().map(|&v| v as f64).collect();
    if metric == GraphMetric::Angular {
        for (i, r) in p.chunks_exact_mut(cols).enumerate() {
            let mut s = 0.0;
            for &v in r.iter() {
                s += v * v;
            }
            if s == 0.0 {
                bail!(
                    Arg,
                    "{func}: m has a zero-norm row {i} (the angular metric needs directions)"
                );
            }
            let nr = s.sqrt();
            for v in r.iter_mut() {
                *v /= nr;
            }
        }
    }
    Ok(p)
}

#[inline]
fn dist2(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for (x, y) in a.iter().zip(b) {
        let t = x - y;
        s += t * t;
    }
    s
}

#[inline]
fn edge_len(d2: f64, metric: GraphMetric) -> f64 {
    match metric {
        GraphMetric::Angular => 2.0 * (d2.sqrt() / 2.0).min(1.0).asin(),
        GraphMetric::Euclidean => d2.sqrt(),
    }
}

/// (key, index) order; −0 equals +0 as in JavaScript (keys are never NaN).
fn by_key(a: &(f64, u32), b: &(f64, u32)) -> Ordering {
    a.0.partial_cmp(&b.0)
        .unwrap_or(Ordering::Equal)
        .then(a.1.cmp(&b.1))
}

/// The k-nearest-neighbour graph of the rows of `p` (n × d, prepared), symmetrized (an edge
/// when either end is among the other's k nearest; ties by the lower index), with edge
/// lengths by `metric`.
fn knn_graph(p: &[f64], n: usize, d: usize, k: usize, metric: GraphMetric) -> Graph {
    let row = |i: usize| &p[i * d..(i + 1) * d];
    let lists = knn_lists(n, k, |i, j| dist2(row(i), row(j)));
    let mut nb: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (i, l) in lists.iter().enumerate() {
        for &j in l {
            nb[i].push(j);
            nb[j as usize].push(i as u32);
        }
    }
    let mut start = Vec::with_capacity(n + 1);
    let mut adj = Vec::new();
    let mut w = Vec::new();
    start.push(0);
    for (i, l) in nb.iter_mut().enumerate() {
        l.sort_unstable();
        l.dedup();
        for &j in l.iter() {
            adj.push(j);
            w.push(edge_len(
                dist2(
                    &p[i * d..(i + 1) * d],
                    &p[j as usize * d..(j as usize + 1) * d],
                ),
                metric,
            ));
        }
        start.push(adj.len());
    }
    Graph { n, start, adj, w }
}

#[derive(PartialEq)]
struct Item(f64, u32);
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    // Reversed: BinaryHeap is a max-heap; the smallest (distance, index) pops first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.total_cmp(&self.0).then(o.1.cmp(&self.1))
    }
}

/// Shortest-path lengths from `src` (∞ when unreachable); `pred[v]` the previous vertex on the
/// path (u32::MAX for the source and unreachable vertices). Vertices leave the queue in order
/// of (distance, index); a distance changes only on strict improvement.
fn dijkstra(g: &Graph, src: usize, pred: Option<&mut Vec<u32>>) -> Vec<f64> {
    let mut dist = vec![f64::INFINITY; g.n];
    let mut pr = pred;
    if let Some(p) = pr.as_deref_mut() {
        p.clear();
        p.resize(g.n, u32::MAX);
    }
    let mut done = vec![false; g.n];
    let mut heap = BinaryHeap::new();
    dist[src] = 0.0;
    heap.push(Item(0.0, src as u32));
    while let Some(Item(du, u)) = heap.pop() {
        let u = u as usize;
        if done[u] {
            continue;
        }
        done[u] = true;
        for e in g.start[u]..g.start[u + 1] {
            let v = g.adj[e] as usize;
            let nd = du + g.w[e];
            if nd < dist[v] {
                dist[v] = nd;
                if let Some(p) = pr.as_deref_mut() {
                    p[v] = u as u32;
                }
                heap.push(Item(nd, v as u32));
            }
        }
    }
    dist
}

/// The k-nearest-neighbour graph a graph statistic runs on: the rows of `m` (rows × cols), `k`
/// neighbours each, edge lengths by `metric`; `func` names the call in errors.
#[derive(Clone, Copy)]
struct GraphOf<'a> {
    func: &'a str,
    m: &'a [f32],
    rows: usize,
    cols: usize,
    k: usize,
    metric: GraphMetric,
}

impl GraphOf<'_> {
    /// Checks m (at least `min_rows` rows) and k.
    fn check(&self, min_rows: usize) -> Result<()> {
        let (func, rows, k) = (self.func, self.rows, self.k);
        check_matrix(func, "m", self.m, rows, self.cols)?;
        if rows < min_rows {
            bail!(
                Shape,
                "{func}: m has {rows} row(s) but at least {min_rows} are needed"
            );
        }
        if k < 1 || k >= rows {
            bail!(Arg, "{func}: k must be in [1, {}], got {k}", rows - 1);
        }
        Ok(())
    }

    /// The graph, once every other argument is checked (m's values are checked here: a zero
    /// row under the angular metric, E_ARG, before a non-finite value).
    fn build(&self) -> Result<Graph> {
        let p = prepare(self.func, self.m, self.cols, self.metric)?;
        check_finite(self.func, "m", self.m)?;
        Ok(knn_graph(&p, self.rows, self.cols, self.k, self.metric))
    }
}

/// Geodesic distances on the symmetrized k-NN graph from each source row to every row
/// (sources.len() × rows, row-major; ∞ when unreachable).
pub fn graph_geodesics(
    m: &[f32],
    rows: usize,
    cols: usize,
    k: usize,
    metric: GraphMetric,
    sources: Option<&[u32]>,
) -> Result<Vec<f32>> {
    const F: &str = "graphGeodesics";
    let graph = GraphOf {
        func: F,
        m,
        rows,
        cols,
        k,
        metric,
    };
    graph.check(2)?;
    let all: Vec<u32>;
    let src = match sources {
        Some(s) => {
            if s.is_empty() {
                bail!(Shape, "{F}: sources is empty");
            }
            if let Some(&bad) = s.iter().find(|&&v| v as usize >= rows) {
                bail!(Arg, "{F}: source {bad} is out of range for {rows} rows");
            }
            s
        }
        None => {
            all = (0..rows as u32).collect();
            &all
        }
    };
    let total = match src.len().checked_mul(rows) {
        Some(t) if t <= isize::MAX as usize / 4 => t,
        _ => bail!(
            Arg,
            "{F}: the result of {} x {rows} is too large",
            src.len()
        ),
    };
    let g = graph.build()?;
    let mut out = Vec::new();
    if out.try_reserve_exact(total).is_err() {
        bail!(Arg, "{F}: cannot allocate {total} distances");
    }
    out.resize(total, 0f32);
    pool::run(|| {
        out.par_chunks_mut(rows)
            .zip(src.par_iter())
            .for_each(|(o, &s)| {
                let d = dijkstra(&g, s as usize, None);
                for (x, v) in o.iter_mut().zip(d) {
                    *x = v as f32;
                }
            })
    });
    Ok(out)
}

/// `count` distinct uniform indices in [0, n): the t-th draw r = min(⌊u·(n − t)⌋, n − t − 1)
/// is mapped to the r-th index not drawn yet.
pub fn draw_distinct(rng: &mut SplitMix64, n: usize, out: &mut [usize]) {
    let mut sorted: Vec<usize> = Vec::with_capacity(out.len());
    for (t, o) in out.iter_mut().enumerate() {
        let mut r = ((rng.uniform() * (n - t) as f64) as usize).min(n - t - 1);
        for &c in &sorted {
            if r >= c {
                r += 1;
            }
        }
        *o = r;
        let pos = sorted.partition_point(|&c| c < r);
        sorted.insert(pos, r);
    }
}

/// A zeroed buffer of `len` values, or E_ARG when it cannot be allocated.
fn alloc_zeroed<T: Clone + Default>(func: &str, len: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    if v.try_reserve_exact(len).is_err() {
        bail!(Arg, "{func}: cannot allocate {len} values for the samples");
    }
    v.resize(len, T::default());
    Ok(v)
}

/// Largest number of sampled quadruples or triangles.
pub const MAX_SAMPLES: usize = 1 << 20;

/// The checks and set-up shared by the sampled graph statistics: the k-NN graph and `count`
/// tuples of `arity` distinct rows drawn from the SplitMix64 stream of `seed` (the count named
/// `what` in errors).
fn sampled_graph(
    graph: GraphOf,
    (what, count): (&str, usize),
    arity: usize,
    seed: u64,
) -> Result<(Graph, Vec<usize>)> {
    let func = graph.func;
    graph.check(arity)?;
    if !(1..=MAX_SAMPLES).contains(&count) {
        bail!(Arg, "{func}: {what} must be in [1, 2^20], got {count}");
    }
    let g = graph.build()?;
    let mut rng = SplitMix64::new(seed);
    let mut tuples = alloc_zeroed::<usize>(func, arity * count)?;
    for t in tuples.chunks_exact_mut(arity) {
        draw_distinct(&mut rng, graph.rows, t);
    }
    Ok((g, tuples))
}

/// Result of [`hyperbolicity`].
pub struct Hyperbolicity {
    pub delta: f64,
    pub relative_delta: f64,
    pub diameter: f64,
    pub skipped: usize,
}

/// Gromov's four-point δ of the graph metric over `samples` random quadruples of distinct rows
/// (the max over quadruples of half the gap between the two largest of the three pair sums),
/// the largest geodesic distance seen from the rows that were Dijkstra sources (`diameter`) and
/// 2δ/diameter. Quadruples with an unreachable pair are skipped and counted.
pub fn hyperbolicity(
    m: &[f32],
    rows: usize,
    cols: usize,
    k: usize,
    metric: GraphMetric,
    samples: usize,
    seed: u64,
) -> Result<Hyperbolicity> {
    const F: &str = "hyperbolicity";
    let graph = GraphOf {
        func: F,
        m,
        rows,
        cols,
        k,
        metric,
    };
    let (g, quads) = sampled_graph(graph, ("samples", samples), 4, seed)?;
    // Pair slots 0..6: (0,1) (2,3) (0,2) (1,3) (0,3) (1,2); the pair's first vertex is the source.
    const PAIRS: [(usize, usize); 6] = [(0, 1), (2, 3), (0, 2), (1, 3), (0, 3), (1, 2)];
    let mut req: Vec<Vec<(u32, u32)>> = vec![Vec::new(); rows];
    for (qi, q) in quads.chunks_exact(4).enumerate() {
        for (s, &(a, b)) in PAIRS.iter().enumerate() {
            req[q[a]].push(((qi * 6 + s) as u32, q[b] as u32));
        }
    }
    let srcs: Vec<usize> = (0..rows).filter(|&v| !req[v].is_empty()).collect();
    let found: Vec<(Vec<(u32, f64)>, f64)> = pool::run(|| {
        srcs.par_iter()
            .map(|&s| {
                let d = dijkstra(&g, s, None);
                let far = d
                    .iter()
                    .filter(|v| v.is_finite())
                    .fold(0f64, |a, &b| a.max(b));
                (
                    req[s]
                        .iter()
                        .map(|&(slot, t)| (slot, d[t as usize]))
                        .collect(),
                    far,
                )
            })
            .collect()
    });
    let mut dist = alloc_zeroed::<f64>(F, 6 * samples)?;
    let mut diameter = 0f64;
    for (list, far) in found {
        diameter = diameter.max(far);
        for (slot, v) in list {
            dist[slot as usize] = v;
        }
    }
    let (mut delta, mut skipped, mut used) = (0f64, 0usize, 0usize);
    for q in dist.chunks_exact(6) {
        if q.iter().any(|v| !v.is_finite()) {
            skipped += 1;
            continue;
        }
        used += 1;
        let mut s = [q[0] + q[1], q[2] + q[3], q[4] + q[5]];
        s.sort_by(|a, b| b.total_cmp(a));
        delta = delta.max((s[0] - s[1]) / 2.0);
    }
    if used == 0 {
        bail!(
            Arg,
            "{F}: every sampled quadruple spans disconnected parts of the {k}-nearest-neighbour graph; increase k"
        );
    }
    let relative_delta = if diameter > 0.0 {
        2.0 * delta / diameter
    } else {
        0.0
    };
    Ok(Hyperbolicity {
        delta,
        relative_delta,
        diameter,
        skipped,
    })
}

/// Result of [`triangle_curvature`].
pub struct TriangleCurvature {
    pub ratios: Vec<f32>,
    pub median_ratio: f64,
    pub positive_fraction: f64,
    pub skipped: usize,
}

/// Relative size below which a comparison distance counts as degenerate.
const DEGENERATE: f64 = 1e-6;

/// For each of `triangles` random triples (x, y, z) of distinct rows: the graph distance from x
/// to the vertex m on the shortest y→z path nearest its midpoint, over the distance from x to
/// the point at the same position t = d(y, m) on side yz of the flat comparison triangle
/// (Stewart's theorem; Apollonius's median when t = a/2). Triangles with an unreachable pair,
/// a zero side yz, x at that midpoint vertex or a comparison distance below 1e-6 of the
/// perimeter are skipped and counted.
pub fn triangle_curvature(
    m: &[f32],
    rows: usize,
    cols: usize,
    k: usize,
    metric: GraphMetric,
    triangles: usize,
    seed: u64,
) -> Result<TriangleCurvature> {
    const F: &str = "triangleCurvature";
    let graph = GraphOf {
        func: F,
        m,
        rows,
        cols,
        k,
        metric,
    };
    let (g, tris) = sampled_graph(graph, ("triangles", triangles), 3, seed)?;
    let found: Vec<Option<f64>> = pool::run(|| {
        tris.par_chunks(3)
            .map(|t| triangle_ratio(&g, t[0], t[1], t[2]))
            .collect()
    });
    let ratios: Vec<f64> = found.iter().filter_map(|&r| r).collect();
    let skipped = triangles - ratios.len();
    if ratios.is_empty() {
        bail!(
            Arg,
            "{F}: every sampled triangle is degenerate or spans disconnected parts of the {k}-nearest-neighbour graph; increase k"
        );
    }
    let mut s = ratios.clone();
    s.sort_by(|a, b| a.total_cmp(b));
    let h = s.len() / 2;
    let median_ratio = if s.len() % 2 == 1 {
        s[h]
    } else {
        (s[h - 1] + s[h]) / 2.0
    };
    // Counted on the reported float32 ratios: a flat triangle's ratio is 1 up to float64
    // rounding (1 + 2^-52 is not positive curvature), and both backends report the same values.
    let positive = ratios.iter().filter(|&&r| r as f32 > 1.0).count();
    Ok(TriangleCurvature {
        positive_fraction: positive as f64 / ratios.len() as f64,
        ratios: ratios.iter().map(|&r| r as f32).collect(),
        median_ratio,
        skipped,
    })
}

fn triangle_ratio(g: &Graph, x: usize, y: usize, z: usize) -> Option<f64> {
    let dx = dijkstra(g, x, None);
    let mut pred = Vec::new();
    let dy = dijkstra(g, y, Some(&mut pred));
    let (a, b, c) = (dy[z], dx[z], dx[y]);
    if !a.is_finite() || !b.is_finite() || !c.is_finite() || a <= 0.0 {
        return None;
    }
    // Walk z → y; keep the path vertex minimizing (|d(y,v) − a/2|, d(y,v)).
    let half = a / 2.0;
    let mut best = z;
    let mut v = z;
    loop {
        let (e, eb) = ((dy[v] - half).abs(), (dy[best] - half).abs());
        if e < eb || (e == eb && dy[v] < dy[best]) {
            best = v;
        }
        if v == y {
            break;
        }
        v = pred[v] as usize;
    }
    let t = dy[best];
    let flat2 = ((a - t) * c * c + t * b * b) / a - t * (a - t);
    let flat = flat2.max(0.0).sqrt();
    if dx[best] == 0.0 || flat <= DEGENERATE * (a + b + c) {
        return None;
    }
    Some(dx[best] / flat)
}

// ---------------------------------------------------------------------------------------------
// Map distortion

/// Singular values (descending) of the d × d matrix `a` (row-major) by one-sided Jacobi on its
/// columns in f64.
pub fn singular_values(a: &[f64], d: usize) -> Vec<f64> {
    // Work on columns: u[j] = column j.
    let mut u: Vec<Vec<f64>> = (0..d)
        .map(|j| (0..d).map(|i| a[i * d + j]).collect())
        .collect();
    for _sweep in 0..80 {
        let mut rotated = false;
        for p in 0..d {
            for q in p + 1..d {
                let (lo, hi) = u.split_at_mut(q);
                let (up, uq) = (&mut lo[p], &mut hi[0]);
                let (mut al, mut be, mut ga) = (0.0, 0.0, 0.0);
                for (x, y) in up.iter().zip(uq.iter()) {
                    al += x * x;
                    be += y * y;
                    ga += x * y;
                }
                if ga == 0.0 || ga.abs() <= 1e-15 * (al * be).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (be - al) / (2.0 * ga);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let t = if zeta == 0.0 { 1.0 } else { t };
                let cs = 1.0 / (1.0 + t * t).sqrt();
                let sn = cs * t;
                for (x, y) in up.iter_mut().zip(uq.iter_mut()) {
                    let (xv, yv) = (*x, *y);
                    *x = cs * xv - sn * yv;
                    *y = sn * xv + cs * yv;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut s: Vec<f64> = u
        .iter()
        .map(|c| c.iter().fold(0.0, |acc, v| acc + v * v).sqrt())
        .collect();
    s.sort_by(|a, b| b.total_cmp(a));
    s
}

/// Result of [`map_distortion`].
pub struct MapDistortion {
    pub singular_values: Vec<f64>,
    pub condition_number: f64,
    pub neighbor_overlap: f64,
    pub mean_cosine_change: f64,
}

/// Unit rows in f64 (a zero row stays zero).
fn unit_rows(x: &[f64], d: usize) -> Vec<f64> {
    let mut u = x.to_vec();
    for r in u.chunks_exact_mut(d) {
        let mut s = 0.0;
        for &v in r.iter() {
            s += v * v;
        }
        if s > 0.0 {
            let nr = s.sqrt();
            for v in r.iter_mut() {
                *v /= nr;
            }
        }
    }
    u
}

#[inline]
fn dot64(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for (x, y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}

/// Cosine k nearest neighbours of every row among the others (ties by lower index), sorted.
fn cosine_knn(u: &[f64], n: usize, d: usize, k: usize) -> Vec<Vec<u32>> {
    let row = |i: usize| &u[i * d..(i + 1) * d];
    knn_lists(n, k, |i, j| -dot64(row(i), row(j)))
}

/// The `k` nearest of every row `i` of `n` among the others by `dist(i, j)` (smaller first,
/// ties by the lower index), each list sorted by index.
fn knn_lists(n: usize, k: usize, dist: impl Fn(usize, usize) -> f64 + Sync) -> Vec<Vec<u32>> {
    pool::run(|| {
        (0..n)
            .into_par_iter()
            .map(|i| {
                let mut c: Vec<(f64, u32)> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| (dist(i, j), j as u32))
                    .collect();
                if k < c.len() {
                    c.select_nth_unstable_by(k, by_key);
                    c.truncate(k);
                }
                let mut l: Vec<u32> = c.into_iter().map(|(_, j)| j).collect();
                l.sort_unstable();
                l
            })
            .collect()
    })
}

/// How the d × d linear map `a` (rows x ↦ x·a) distorts the rows of x (n × d, n ≥ 2): the
/// singular values of a, σ_max/σ_min, the mean fraction of each row's k cosine neighbours
/// kept after the map, and the mean |Δ cos| over all pairs of rows.
pub fn map_distortion(
    x: &[f32],
    rows: usize,
    cols: usize,
    a: &[f32],
    a_rows: usize,
    a_cols: usize,
    k: usize,
) -> Result<MapDistortion> {
    const F: &str = "mapDistortion";
    check_matrix(F, "x", x, rows, cols)?;
    check_matrix(F, "a", a, a_rows, a_cols)?;
    if a_rows != cols || a_cols != cols {
        bail!(
            Shape,
            "{F}: a must be {cols} x {cols} (x has {cols} columns), got {a_rows} x {a_cols}"
        );
    }
    if rows < 2 {
        bail!(Shape, "{F}: x has {rows} row(s) but at least 2 are needed");
    }
    if k < 1 || k >= rows {
        bail!(Arg, "{F}: k must be in [1, {}], got {k}", rows - 1);
    }
    check_finite(F, "x", x)?;
    check_finite(F, "a", a)?;
    let d = cols;
    let widen = |what: &str, v: &[f32]| -> Result<Vec<f64>> {
        let mut w: Vec<f64> = crate::alloc::try_vec(F, what, v.len())?;
        w.iter_mut().zip(v).for_each(|(o, &s)| *o = s as f64);
        Ok(w)
    };
    let (x64, a64) = (widen("x in float64", x)?, widen("a in float64", a)?);
    let mut y: Vec<f64> = crate::alloc::try_mat(F, "x·a in float64", rows, d, "")?;
    for (yr, xr) in y.chunks_exact_mut(d).zip(x64.chunks_exact(d)) {
        for (t, &xv) in xr.iter().enumerate() {
            let ar = &a64[t * d..(t + 1) * d];
            for (o, &av) in yr.iter_mut().zip(ar) {
                *o += xv * av;
            }
        }
    }
    let sv = singular_values(&a64, d);
    let (smax, smin) = (sv[0], sv[d - 1]);
    let condition_number = if smin > 0.0 {
        smax / smin
    } else {
        f64::INFINITY
    };
    let ux = unit_rows(&x64, d);
    let uy = unit_rows(&y, d);
    let nx = cosine_knn(&ux, rows, d, k);
    let ny = cosine_knn(&uy, rows, d, k);
    let mut overlap = 0f64;
    for (l1, l2) in nx.iter().zip(&ny) {
        let c = l1.iter().filter(|v| l2.binary_search(v).is_ok()).count();
        overlap += c as f64 / k as f64;
    }
    let change: Vec<f64> = pool::run(|| {
        (0..rows)
            .into_par_iter()
            .map(|i| {
                let mut s = 0.0;
                for j in i + 1..rows {
                    let cx = dot64(&ux[i * d..(i + 1) * d], &ux[j * d..(j + 1) * d]);
                    let cy = dot64(&uy[i * d..(i + 1) * d], &uy[j * d..(j + 1) * d]);
                    s += (cy - cx).abs();
                }
                s
            })
            .collect()
    });
    let pairs = (rows * (rows - 1) / 2) as f64;
    Ok(MapDistortion {
        singular_values: sv,
        condition_number,
        neighbor_overlap: overlap / rows as f64,
        mean_cosine_change: change.iter().sum::<f64>() / pairs,
    })
}

// ---------------------------------------------------------------------------------------------
// Analogies

/// ε of 3CosMul (Levy & Goldberg 2014).
pub const COSMUL_EPS: f64 = 0.001;

/// The k best answers to "a is to b as c is to ?" among the rows of `corpus` other than a, b
/// and c: 3CosAdd (`mul` false) scores cos(x, b̂ − â + ĉ) (0 when that vector is zero);
/// 3CosMul scores c'(x,b)·c'(x,c)/(c'(x,a) + ε) with c' = (1 + cos)/2. Best first, ties by the
/// lower index. Returns (indices, scores).
pub fn analogy(
    corpus: &[f32],
    rows: usize,
    cols: usize,
    abc: [usize; 3],
    k: usize,
    mul: bool,
) -> Result<(Vec<u32>, Vec<f32>)> {
    const F: &str = "analogy";
    check_matrix(F, "corpus", corpus, rows, cols)?;
    if let Some(&bad) = abc.iter().find(|&&v| v >= rows) {
        bail!(Arg, "{F}: index {bad} is out of range for {rows} rows");
    }
    let mut distinct = abc.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let eligible = rows - distinct.len();
    if k < 1 || k > eligible {
        bail!(
            Arg,
            "{F}: k must be in [1, {eligible}] (rows other than a, b, c), got {k}"
        );
    }
    check_finite(F, "corpus", corpus)?;
    let d = cols;
    let x64: Vec<f64> = corpus.iter().map(|&v| v as f64).collect();
    let u = unit_rows(&x64, d);
    let row = |i: usize| &u[i * d..(i + 1) * d];
    let (ua, ub, uc) = (row(abc[0]), row(abc[1]), row(abc[2]));
    let target: Vec<f64> = unit_rows(
        &(0..d).map(|t| ub[t] - ua[t] + uc[t]).collect::<Vec<f64>>(),
        d,
    );
    let scores: Vec<f64> = pool::run(|| {
        (0..rows)
            .into_par_iter()
            .map(|i| {
                let ui = row(i);
                if mul {
                    let ca = (1.0 + dot64(ui, ua)) / 2.0;
                    let cb = (1.0 + dot64(ui, ub)) / 2.0;
                    let cc = (1.0 + dot64(ui, uc)) / 2.0;
                    cb * cc / (ca + COSMUL_EPS)
                } else {
                    dot64(ui, &target)
                }
            })
            .collect()
    });
    let mut c: Vec<(f64, u32)> = (0..rows)
        .filter(|i| distinct.binary_search(i).is_err())
        .map(|i| (-scores[i], i as u32))
        .collect();
    if k < c.len() {
        c.select_nth_unstable_by(k, by_key);
        c.truncate(k);
    }
    c.sort_by(by_key);
    Ok((
        c.iter().map(|&(_, i)| i).collect(),
        c.iter().map(|&(s, _)| (-s) as f32).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_draws() {
        let mut r = SplitMix64::new(7);
        let mut q = [0usize; 4];
        for _ in 0..1000 {
            draw_distinct(&mut r, 5, &mut q);
            let mut s = q.to_vec();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), 4);
            assert!(q.iter().all(|&v| v < 5));
        }
    }

    #[test]
    fn line_is_a_tree() {
        // Points on a line: the graph metric is |s − t|, a tree metric (δ = 0), ratios 1.
        let xs: Vec<f32> = (0..30).map(|i| (i as f32 * 0.37).powf(1.3)).collect();
        let h = hyperbolicity(&xs, 30, 1, 2, GraphMetric::Euclidean, 500, 3).unwrap();
        assert!(h.delta.abs() < 1e-9, "{}", h.delta);
        let t = triangle_curvature(&xs, 30, 1, 2, GraphMetric::Euclidean, 200, 3).unwrap();
        assert!(
            t.ratios.iter().all(|&r| (r - 1.0).abs() < 1e-5),
            "{:?}",
            t.ratios
        );
    }

    #[test]
    fn singular_values_of_diagonal_times_rotation() {
        let (c, s) = (0.6f64, 0.8f64);
        // diag(3, 0.5) · R
        let a = [3.0 * c, -3.0 * s, 0.5 * s, 0.5 * c];
        let sv = singular_values(&a, 2);
        assert!((sv[0] - 3.0).abs() < 1e-12 && (sv[1] - 0.5).abs() < 1e-12);
    }
}
