import { describe, expect, it } from 'vitest';
import { close, dv, fdGrad, randm, ref, throwsCode } from './helpers';

type M = { data: Float32Array; rows: number; cols: number };
const impls = [
  ['native', dv],
  ['reference', ref],
] as const;
const mat = (rows: number[][]): M => ({ data: Float32Array.from(rows.flat()), rows: rows.length, cols: rows[0].length });

// ---------------------------------------------------------------------------------------------
// Known geometries

/** Points on a great-circle arc of S² at the given angles (a line metric: a tree). */
function arc(angles: number[]): M {
  return mat(angles.map((t) => [Math.cos(t), Math.sin(t), 0]));
}

/** Angles of a connected k = 2 chain (gaps grow slowly, so each point's two nearest are its neighbours). */
const LINE = [0, 0.05, 0.12, 0.2, 0.3, 0.42, 0.55, 0.7, 0.86, 1.03];

/** Three meridian arcs from the north pole of S² (a tripod: a tree metric under k = 2). */
function tripod(steps: number, h: number): M {
  const pts: number[][] = [[0, 0, 1]];
  for (let b = 0; b < 3; b++) {
    const phi = (2 * Math.PI * b) / 3;
    for (let s = 1; s <= steps; s++) {
      const th = s * h;
      pts.push([Math.sin(th) * Math.cos(phi), Math.sin(th) * Math.sin(phi), Math.cos(th)]);
    }
  }
  return mat(pts);
}

/** Evenly spread points in the unit square (2-D, Euclidean: flat), from the R2 sequence. */
function square(n: number, start: number): M {
  const pts: number[][] = [];
  let a = start / 7;
  let b = start / 11;
  for (let i = 0; i < n; i++) {
    a = (a + 0.7548776662466927) % 1;
    b = (b + 0.5698402909980532) % 1;
    pts.push([a, b]);
  }
  return mat(pts);
}

/** Evenly spread points on the spherical cap of angular radius `r` around the north pole. */
function cap(n: number, r: number): M {
  const pts: number[][] = [];
  const z0 = Math.cos(r);
  for (let i = 0; i < n; i++) {
    // Fibonacci lattice restricted to the cap (uniform area).
    const z = 1 - ((i + 0.5) / n) * (1 - z0);
    const rho = Math.sqrt(1 - z * z);
    const phi = i * 2.399963229728653;
    pts.push([rho * Math.cos(phi), rho * Math.sin(phi), z]);
  }
  return mat(pts);
}

/** The symmetrized k-NN graph and all-pairs shortest paths by Floyd–Warshall (test oracle). */
function floyd(m: M, k: number, metric: 'angular' | 'euclidean'): number[][] {
  const n = m.rows;
  const d = m.cols;
  const p = Array.from({ length: n }, (_, i) => Array.from(m.data.subarray(i * d, i * d + d)));
  if (metric === 'angular')
    for (const r of p) {
      const s = Math.hypot(...r);
      r.forEach((x, j) => {
        r[j] = x / s;
      });
    }
  const len = (i: number, j: number) => {
    const c = Math.hypot(...p[i].map((x, t) => x - p[j][t]));
    return metric === 'angular' ? 2 * Math.asin(Math.min(c / 2, 1)) : c;
  };
  const D = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 0 : Infinity)));
  for (let i = 0; i < n; i++) {
    const order = [...Array(n).keys()].filter((j) => j !== i).sort((a, b) => len(i, a) - len(i, b) || a - b);
    for (const j of order.slice(0, k)) D[i][j] = D[j][i] = len(i, j);
  }
  for (let t = 0; t < n; t++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (D[i][t] + D[t][j] < D[i][j]) D[i][j] = D[i][t] + D[t][j];
  return D;
}

// ---------------------------------------------------------------------------------------------

describe('softThreshold', () => {
  it('is sign(x)·max(|x| − λ, 0) on both backends, in place on views', () => {
    for (const [, impl] of impls) {
      const m = mat([
        [1.5, -0.2, 0.3],
        [-2, 0.5, -0.5],
      ]);
      const copy = m.data.slice();
      const r = impl.softThreshold(m, 0.5);
      expect(Array.from(r.data)).toEqual([1, 0, 0, -1.5, 0, 0]);
      expect(Object.is(r.data[1], 0) || Object.is(r.data[1], -0)).toBe(true);
      expect(m.data).toEqual(copy);
      expect(Array.from(impl.softThreshold(m, 0).data)).toEqual(Array.from(copy));
      const big = new Float32Array(10).fill(9);
      big.set(copy, 2);
      const view = { data: big.subarray(2, 8), rows: 2, cols: 3 };
      impl.softThresholdInPlace(view, 0.25);
      close(Array.from(big), [9, 9, 1.25, 0, 0.05, -1.75, 0.25, -0.25, 9, 9], 1e-6, 1e-7);
    }
  });

  it('is the proximal operator of λ‖·‖₁ (minimizes ½(z − x)² + λ|z|) and agrees across backends', () => {
    const m = randm(20, 16, 3);
    const lam = 0.4;
    const a = dv.softThreshold(m, lam);
    const b = ref.softThreshold(m, lam);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    const obj = (z: number, x: number) => 0.5 * (z - x) ** 2 + lam * Math.abs(z);
    let zeros = 0;
    for (let i = 0; i < m.data.length; i++) {
      const x = m.data[i];
      const z = a.data[i];
      if (z === 0) zeros++;
      for (const dz of [-1e-3, 1e-3, 0.1, -0.1]) expect(obj(z, x)).toBeLessThanOrEqual(obj(z + dz, x) + 1e-9);
    }
    expect(zeros).toBeGreaterThan(0.2 * m.data.length);
  });

  it('follows the error contract', () => {
    for (const [, impl] of impls) {
      for (const f of [impl.softThreshold, impl.softThresholdInPlace]) {
        throwsCode(() => f({ data: [1, 2], rows: 1, cols: 2 } as never, 0.1), 'E_TYPE');
        throwsCode(() => f(mat([[1, 2]]), '0.1' as never), 'E_TYPE');
        throwsCode(() => f({ data: new Float32Array(3), rows: 1, cols: 2 }, 0.1), 'E_SHAPE');
        throwsCode(() => f(mat([[1, 2]]), -0.1), 'E_ARG', /lambda/);
        throwsCode(() => f(mat([[1, 2]]), NaN), 'E_ARG');
        throwsCode(() => f(mat([[1, NaN]]), 0.1), 'E_NON_FINITE');
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('BatchNorm: affine parameters and backward', () => {
  it('starts with weight 1 and bias 0 and applies x̂·weight + bias; native equals reference', () => {
    const m = randm(9, 5, 11);
    const a = new dv.BatchNorm(5, { affine: true });
    const b = new ref.BatchNorm(5, { affine: true });
    const plain = new ref.BatchNorm(5);
    expect(plain.affine).toBe(false);
    expect(plain.weight).toBeUndefined();
    expect(a.weight).toBeInstanceOf(Float32Array);
    expect(Array.from(a.weight!)).toEqual([1, 1, 1, 1, 1]);
    expect(Array.from(a.bias!)).toEqual([0, 0, 0, 0, 0]);
    const y0 = plain.forward(m);
    close(a.forward(m).data, y0.data, 1e-6, 1e-6);
    close(b.forward(m).data, y0.data, 1e-6, 1e-6);
    for (const bn of [a, b]) {
      bn.weight = Float32Array.from([2, -1, 0.5, 1, 3]);
      bn.bias = Float32Array.from([0.1, 0.2, -0.3, 0, 1]);
    }
    const ya = a.forward(m, { training: false });
    const yb = b.forward(m, { training: false });
    close(ya.data, yb.data, 1e-5, 1e-6);
    const ta = a.forward(m);
    b.forward(m); // keep the running statistics in step
    const want = y0.data.map((v, i) => v * b.weight![i % 5] + b.bias![i % 5]);
    close(ta.data, want, 1e-5, 1e-5);
  });

  it('backward equals finite differences (PyTorch BatchNorm1d autograd in training mode)', () => {
    for (const [, impl] of impls) {
      for (const affine of [false, true]) {
        const n = 6;
        const d = 4;
        const x = randm(n, d, 5);
        const g = randm(n, d, 6);
        const bn = new impl.BatchNorm(d, { affine, eps: 1e-3 });
        if (affine) {
          bn.weight = Float32Array.from([1.5, -0.7, 2, 0.3]);
          bn.bias = Float32Array.from([0.2, 0.1, -1, 0]);
        }
        const loss = () => {
          const y = new ref.BatchNorm(d, { affine, eps: 1e-3 });
          if (affine) {
            y.weight = bn.weight!.slice();
            y.bias = bn.bias!.slice();
          }
          const out = y.forward(x).data;
          let s = 0;
          for (let i = 0; i < out.length; i++) s += g.data[i] * out[i];
          return s;
        };
        bn.forward(x);
        const r = bn.backward(g);
        expect([r.gradX.rows, r.gradX.cols]).toEqual([n, d]);
        close(r.gradX.data, fdGrad(x.data, loss, 1e-2), 2e-3, 2e-3);
        // Shifting a column of the batch changes nothing: each column of gradX sums to 0.
        for (let j = 0; j < d; j++) {
          let s1 = 0;
          for (let i = 0; i < n; i++) s1 += r.gradX.data[i * d + j];
          expect(Math.abs(s1)).toBeLessThan(1e-5);
        }
        if (affine) {
          close(r.gradWeight!, fdGrad(bn.weight!, loss, 1e-2), 2e-3, 2e-3);
          close(r.gradBias!, fdGrad(bn.bias!, loss, 1e-2), 2e-3, 2e-3);
        } else {
          expect('gradWeight' in r).toBe(false);
          expect('gradBias' in r).toBe(false);
        }
      }
    }
  });

  it('native backward equals reference backward', () => {
    const x = randm(33, 7, 21);
    const g = randm(33, 7, 22);
    const a = new dv.BatchNorm(7, { affine: true, momentum: 0.3 });
    const b = new ref.BatchNorm(7, { affine: true, momentum: 0.3 });
    for (const bn of [a, b]) bn.weight = Float32Array.from([1, 2, 3, -1, 0.5, 0, 4]);
    a.forward(x);
    b.forward(x);
    const ra = a.backward(g);
    const rb = b.backward(g);
    close(ra.gradX.data, rb.gradX.data, 1e-5, 1e-6);
    close(ra.gradWeight!, rb.gradWeight!, 1e-5, 1e-6);
    close(ra.gradBias!, rb.gradBias!, 1e-5, 1e-6);
    // The weight saved at forward is used, not a later replacement (as autograd does).
    a.weight = new Float32Array(7);
    close(a.backward(g).gradX.data, ra.gradX.data, 1e-6, 1e-7);
  });

  it('backward and affine follow the error contract', () => {
    for (const [, impl] of impls) {
      const bn = new impl.BatchNorm(3, { affine: true });
      const x = randm(4, 3, 1);
      throwsCode(() => bn.backward(x), 'E_ARG', /training-mode forward/);
      bn.forward(x);
      throwsCode(() => bn.backward({ data: [1], rows: 1, cols: 1 } as never), 'E_TYPE');
      throwsCode(() => bn.backward(randm(5, 3, 2)), 'E_SHAPE');
      throwsCode(
        () =>
          bn.backward(
            mat([
              [1, 2, 3],
              [1, 2, 3],
              [1, 2, 3],
              [1, 2, NaN],
            ]),
          ),
        'E_NON_FINITE',
      );
      bn.forward(x, { training: false });
      throwsCode(() => bn.backward(x), 'E_ARG');
      bn.weight = new Float32Array(2);
      throwsCode(() => bn.forward(x), 'E_SHAPE', /weight/);
      bn.weight = [1, 1, 1] as never;
      throwsCode(() => bn.forward(x), 'E_TYPE');
      bn.weight = Float32Array.from([1, Infinity, 1]);
      throwsCode(() => bn.forward(x), 'E_NON_FINITE');
      throwsCode(() => new impl.BatchNorm(3, { affine: 'yes' as never }), 'E_TYPE');
    }
  });

  it('momentumFromKeras is 1 − m', () => {
    for (const [, impl] of impls) {
      close(impl.BatchNorm.momentumFromKeras(0.99), 0.01, 1e-12, 1e-15);
      expect(impl.BatchNorm.momentumFromKeras(0)).toBe(1);
      throwsCode(() => impl.BatchNorm.momentumFromKeras(1.5), 'E_ARG');
      throwsCode(() => impl.BatchNorm.momentumFromKeras('0.9' as never), 'E_TYPE');
      // Keras momentum 0.9 and PyTorch momentum 0.1 give the same running mean.
      const bn = new impl.BatchNorm(1, { momentum: impl.BatchNorm.momentumFromKeras(0.9) });
      bn.forward(mat([[1], [3]]));
      close(bn.runningMean, [0.9 * 0 + 0.1 * 2], 1e-6, 1e-7);
    }
  });

  it('batchNormLag is the steady-state lag of the running mean (checked by simulation)', () => {
    for (const [, impl] of impls) {
      for (const [mu, v] of [
        [0.1, 0.05],
        [0.3, -0.2],
        [1, 0.7],
      ]) {
        const bn = new impl.BatchNorm(1, { momentum: mu });
        let lag = 0;
        for (let t = 1; t <= 300; t++) {
          const c = v * t; // batch mean drifts by v per step
          bn.forward(mat([[c - 1], [c + 1]]));
          lag = c - bn.runningMean[0];
        }
        close(impl.batchNormLag(mu, v), lag, 1e-3, 1e-5);
      }
      expect(impl.batchNormLag(0.1, 1)).toBeCloseTo(9, 12);
      throwsCode(() => impl.batchNormLag(0, 1), 'E_ARG');
      throwsCode(() => impl.batchNormLag(1.1, 1), 'E_ARG');
      throwsCode(() => impl.batchNormLag('0.1' as never, 1), 'E_TYPE');
      throwsCode(() => impl.batchNormLag(0.1, NaN), 'E_NON_FINITE');
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('analogy', () => {
  // Orthogonal directions: royal r, male m, female w, plus noise directions.
  const e = (i: number, s = 1) => Array.from({ length: 8 }, (_, j) => (j === i ? s : 0));
  const add = (...v: number[][]) => v[0].map((_, j) => v.reduce((s, x) => s + x[j], 0));
  const rows = [
    add(e(0), e(1)), // 0 king = royal + male
    add(e(0), e(2)), // 1 queen = royal + female
    add(e(1), e(3, 0.1)), // 2 man
    add(e(2), e(3, 0.1)), // 3 woman
    add(e(0), e(4, 0.5)), // 4 throne
    add(e(2), e(5, 0.8)), // 5 girl
    e(6), // 6 unrelated
    add(e(1), e(7, 0.7)), // 7 boy
  ];
  const corpus = mat(rows);

  it('man : king :: woman : queen with 3CosAdd and 3CosMul; inputs never returned', () => {
    for (const [, impl] of impls) {
      for (const method of ['add', 'mul'] as const) {
        const r = impl.analogy(corpus, [2, 0, 3], 5, { method });
        expect(r.indices[0]).toBe(1);
        expect(r.indices).toBeInstanceOf(Uint32Array);
        expect(r.scores).toBeInstanceOf(Float32Array);
        for (const i of r.indices) expect([2, 0, 3]).not.toContain(i);
        for (let t = 1; t < 5; t++) expect(r.scores[t]).toBeLessThanOrEqual(r.scores[t - 1]);
      }
    }
  });

  it('scores are cos(x, b̂ − â + ĉ) and the 3CosMul ratio; native equals reference', () => {
    const unit = (v: number[]) => v.map((x) => x / Math.hypot(...v));
    const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
    const [a, b, c] = [unit(rows[2]), unit(rows[0]), unit(rows[3])];
    const t = unit(b.map((x, i) => x - a[i] + c[i]));
    const r = ref.analogy(corpus, [2, 0, 3], 5);
    for (let i = 0; i < 5; i++) close(r.scores[i], dot(unit(rows[r.indices[i]]), t), 1e-6, 1e-7);
    const s = ref.analogy(corpus, [2, 0, 3], 5, { method: 'mul' });
    const sh = (x: number[], y: number[]) => (1 + dot(x, y)) / 2;
    for (let i = 0; i < 5; i++) {
      const x = unit(rows[s.indices[i]]);
      close(s.scores[i], (sh(x, b) * sh(x, c)) / (sh(x, a) + 0.001), 1e-6, 1e-7);
    }
    const big = randm(300, 24, 8);
    for (const method of ['add', 'mul'] as const) {
      const p = dv.analogy(big, [5, 17, 200], 295, { method });
      const q = ref.analogy(big, [5, 17, 200], 295, { method });
      expect(Array.from(p.indices)).toEqual(Array.from(q.indices));
      close(p.scores, q.scores, 1e-6, 1e-7);
    }
  });

  it('follows the error contract', () => {
    for (const [, impl] of impls) {
      throwsCode(() => impl.analogy(corpus, 'abc' as never, 1), 'E_TYPE');
      throwsCode(() => impl.analogy(corpus, [0, 1.5, 2] as never, 1), 'E_TYPE');
      throwsCode(() => impl.analogy(corpus, [0, 1] as never, 1), 'E_SHAPE');
      throwsCode(() => impl.analogy(corpus, [0, 1, 8], 1), 'E_ARG', /out of range/);
      throwsCode(() => impl.analogy(corpus, [0, 1, 2], 6), 'E_ARG', /k must be/);
      throwsCode(() => impl.analogy(corpus, [0, 1, 2], 1, { method: 'sub' as never }), 'E_ARG');
      const bad = mat(rows);
      bad.data[3] = NaN;
      throwsCode(() => impl.analogy(bad, [0, 1, 2], 1), 'E_NON_FINITE');
      // Repeated inputs exclude fewer rows.
      expect(impl.analogy(corpus, [0, 0, 2], 6).indices.length).toBe(6);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('mapDistortion', () => {
  const x = randm(120, 6, 31);

  it('orthogonal maps (and their multiples) keep every neighbour and every cosine', () => {
    const q = dv.randomOrthogonal(6, 4);
    for (const [, impl] of impls) {
      for (const s of [1, 2.5]) {
        const a = { data: q.data.map((v) => v * s), rows: 6, cols: 6 };
        const r = impl.mapDistortion(x, a, { k: 8 });
        close(r.singularValues, new Array(6).fill(s), 1e-5, 1e-6);
        close(r.conditionNumber, 1, 1e-5);
        expect(r.neighborOverlap).toBe(1);
        expect(r.meanCosineChange).toBeLessThan(1e-6);
      }
    }
  });

  it('anisotropic scaling and shear break neighbours; singular values are exact', () => {
    const diag = (v: number[]) => ({ data: Float32Array.from(v.flatMap((s, i) => v.map((_, j) => (i === j ? s : 0)))), rows: v.length, cols: v.length });
    for (const [, impl] of impls) {
      const r = impl.mapDistortion(x, diag([10, 1, 1, 1, 1, 0.1]), { k: 8 });
      close(r.singularValues, [10, 1, 1, 1, 1, 0.1], 1e-6, 1e-7);
      close(r.conditionNumber, 100, 1e-5);
      expect(r.neighborOverlap).toBeLessThan(0.7);
      expect(r.meanCosineChange).toBeGreaterThan(0.1);
      const shear = diag([1, 1, 1, 1, 1, 1]);
      shear.data[1] = 3; // row 0 gets 3·column… x ↦ x·a adds 3·x₀ to coordinate 1
      const s = impl.mapDistortion(x, shear, { k: 8 });
      // Singular values of [[1, 3], [0, 1]]: (√13 ± 3)/2.
      close(s.singularValues, [(Math.sqrt(13) + 3) / 2, 1, 1, 1, 1, (Math.sqrt(13) - 3) / 2], 1e-6, 1e-7);
      expect(s.neighborOverlap).toBeLessThan(0.9);
      expect(s.meanCosineChange).toBeGreaterThan(0.02);
      const sing = impl.mapDistortion(x, diag([1, 1, 1, 1, 1, 0]), { k: 3 });
      expect(sing.conditionNumber).toBe(Infinity);
    }
    const a = randm(6, 6, 40);
    const p = dv.mapDistortion(x, a, { k: 5 });
    const q = ref.mapDistortion(x, a, { k: 5 });
    close(p.singularValues, q.singularValues, 1e-10, 1e-12);
    expect(p.neighborOverlap).toBe(q.neighborOverlap);
    close(p.meanCosineChange, q.meanCosineChange, 1e-10);
    expect(p.singularValues).toBeInstanceOf(Float64Array);
    // Σσ² = ‖a‖_F².
    close(
      p.singularValues.reduce((s, v) => s + v * v, 0),
      a.data.reduce((s, v) => s + v * v, 0),
      1e-9,
    );
  });

  it('follows the error contract', () => {
    for (const [, impl] of impls) {
      const a = dv.randomOrthogonal(6, 1);
      throwsCode(() => impl.mapDistortion(x, { data: [1], rows: 1, cols: 1 } as never), 'E_TYPE');
      throwsCode(() => impl.mapDistortion(x, a, { k: 2.5 }), 'E_TYPE');
      throwsCode(() => impl.mapDistortion(x, randm(5, 6, 1)), 'E_SHAPE');
      throwsCode(() => impl.mapDistortion(randm(1, 6, 1), a), 'E_SHAPE');
      throwsCode(() => impl.mapDistortion(x, a, { k: 120 }), 'E_ARG');
      const b = { data: a.data.slice(), rows: 6, cols: 6 };
      b.data[0] = Infinity;
      throwsCode(() => impl.mapDistortion(x, b), 'E_NON_FINITE');
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('graphGeodesics', () => {
  it('equals Floyd–Warshall on the symmetrized k-NN graph (angular and euclidean)', () => {
    const m = randm(40, 5, 12);
    for (const metric of ['angular', 'euclidean'] as const) {
      const D = floyd(m, 3, metric);
      for (const [, impl] of impls) {
        const g = impl.graphGeodesics(m, { k: 3, metric });
        expect([g.rows, g.cols]).toEqual([40, 40]);
        close(g.data, D.flat(), 1e-6, 1e-6);
        const s = impl.graphGeodesics(m, { k: 3, metric, sources: Uint32Array.from([7, 0]) });
        expect([s.rows, s.cols]).toEqual([2, 40]);
        close(s.data, [...D[7], ...D[0]], 1e-6, 1e-6);
      }
    }
  });

  it('on a great-circle arc the geodesic is the arc length; disconnected parts are ∞', () => {
    const th = [0, 0.1, 0.25, 0.3, 0.55, 0.6, 0.9];
    for (const [, impl] of impls) {
      const g = impl.graphGeodesics(arc(th), { k: 2 });
      close(
        g.data,
        th.flatMap((a) => th.map((b) => Math.abs(a - b))),
        1e-6,
        1e-6,
      );
      const two = mat([
        [1, 0],
        [1, 0.01],
        [-1, 0],
        [-1, 0.01],
      ]);
      const h = impl.graphGeodesics(two, { k: 1, sources: Uint32Array.from([0]) });
      expect(h.data[2]).toBe(Infinity);
      expect(h.data[1]).toBeGreaterThan(0);
    }
  });

  it('follows the error contract', async () => {
    const m = randm(10, 3, 2);
    for (const [, impl] of impls) {
      throwsCode(() => impl.graphGeodesics(m, { k: 1.5 }), 'E_TYPE');
      throwsCode(() => impl.graphGeodesics(m, { k: 2, sources: [1] as never }), 'E_TYPE');
      throwsCode(() => impl.graphGeodesics({ data: new Float32Array(3), rows: 1, cols: 3 }, { k: 1 }), 'E_SHAPE');
      throwsCode(() => impl.graphGeodesics(m, { k: 2, sources: new Uint32Array(0) }), 'E_SHAPE');
      throwsCode(() => impl.graphGeodesics(m, { k: 10 }), 'E_ARG');
      throwsCode(() => impl.graphGeodesics(m, { k: 2, metric: 'l1' as never }), 'E_ARG');
      throwsCode(() => impl.graphGeodesics(m, { k: 2, sources: Uint32Array.from([10]) }), 'E_ARG');
      const z = { data: m.data.slice(), rows: 10, cols: 3 };
      z.data.fill(0, 0, 3);
      throwsCode(() => impl.graphGeodesics(z, { k: 2 }), 'E_ARG', /zero-norm/);
      expect(impl.graphGeodesics(z, { k: 2, metric: 'euclidean' }).rows).toBe(10);
      z.data[5] = NaN;
      throwsCode(() => impl.graphGeodesics(z, { k: 2, metric: 'euclidean' }), 'E_NON_FINITE');
    }
    const a = await dv.graphGeodesicsAsync(m, { k: 3 });
    close(a.data, dv.graphGeodesics(m, { k: 3 }).data, 0, 0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('hyperbolicity', () => {
  it('is 0 on tree metrics (a line, a tripod of meridians)', () => {
    for (const [, impl] of impls) {
      const line = impl.hyperbolicity(arc(LINE), { k: 2, samples: 300, seed: 1 });
      expect(line.delta).toBeLessThan(1e-12);
      close(line.diameter, 1.03, 1e-6);
      expect(line.skipped).toBe(0);
      const t = impl.hyperbolicity(tripod(8, 0.05), { k: 2, samples: 2000, seed: 2 });
      expect(t.delta).toBeLessThan(1e-12);
      expect(t.relativeDelta).toBeLessThan(1e-12);
      expect(t.skipped).toBe(0);
      close(t.diameter, 2 * 8 * 0.05, 1e-6);
    }
  });

  it('equals the brute-force maximum over every quadruple when sampled densely', () => {
    const m = randm(9, 4, 77);
    const D = floyd(m, 3, 'angular');
    let best = 0;
    let diam = 0;
    const n = 9;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) diam = Math.max(diam, D[i][j]);
    for (let a = 0; a < n; a++)
      for (let b = a + 1; b < n; b++)
        for (let c = b + 1; c < n; c++)
          for (let d = c + 1; d < n; d++) {
            const s = [D[a][b] + D[c][d], D[a][c] + D[b][d], D[a][d] + D[b][c]].sort((p, q) => q - p);
            best = Math.max(best, (s[0] - s[1]) / 2);
          }
    expect(best).toBeGreaterThan(0);
    for (const [, impl] of impls) {
      const h = impl.hyperbolicity(m, { k: 3, samples: 20000, seed: 9 });
      close(h.delta, best, 1e-6, 1e-9);
      close(h.diameter, diam, 1e-6);
      close(h.relativeDelta, (2 * best) / diam, 1e-6);
    }
  });

  it('native equals reference for a seed; random data is not a tree', async () => {
    const m = randm(150, 8, 5);
    const a = dv.hyperbolicity(m, { k: 6, samples: 500, seed: 42 });
    const b = ref.hyperbolicity(m, { k: 6, samples: 500, seed: 42 });
    close(a.delta, b.delta, 1e-9);
    close(a.diameter, b.diameter, 1e-9);
    expect(a.relativeDelta).toBeGreaterThan(0.05);
    expect(a.relativeDelta).toBeLessThanOrEqual(1);
    const c = await dv.hyperbolicityAsync(m, { k: 6, samples: 500, seed: 42 });
    expect(c.delta).toBe(a.delta);
  });

  it('follows the error contract', () => {
    const m = randm(10, 3, 2);
    for (const [, impl] of impls) {
      throwsCode(() => impl.hyperbolicity(m, { k: 2, samples: 1.5 }), 'E_TYPE');
      throwsCode(() => impl.hyperbolicity(m, { k: 2, seed: 'a' as never }), 'E_TYPE');
      throwsCode(() => impl.hyperbolicity(randm(3, 3, 1), { k: 2 }), 'E_SHAPE');
      throwsCode(() => impl.hyperbolicity(m, { k: 2, samples: 0 }), 'E_ARG');
      throwsCode(() => impl.hyperbolicity(m, { k: 2, seed: -1 }), 'E_ARG');
      throwsCode(() => impl.hyperbolicity(m, { k: 0 }), 'E_ARG');
      // Two far pairs with k = 1: every quadruple crosses components.
      const two = mat([
        [1, 0],
        [1, 0.01],
        [-1, 0],
        [-1, 0.01],
      ]);
      throwsCode(() => impl.hyperbolicity(two, { k: 1, samples: 10 }), 'E_ARG', /disconnected/);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('triangleCurvature', () => {
  it('is exactly 1 on a line (great-circle arc) and never above 1 on a tree', () => {
    for (const [, impl] of impls) {
      const line = impl.triangleCurvature(arc(LINE), { k: 2, triangles: 100, seed: 3 });
      expect(line.ratios.length).toBeGreaterThan(50);
      close(line.ratios, new Array(line.ratios.length).fill(1), 1e-5);
      const t = impl.triangleCurvature(tripod(8, 0.05), { k: 2, triangles: 300, seed: 4 });
      // A tree is CAT(0) and thinner than flat: no ratio above 1, those across branches below.
      expect(Math.max(...t.ratios)).toBeLessThan(1 + 1e-6);
      expect(Math.min(...t.ratios)).toBeLessThan(0.9);
      expect(t.medianRatio).toBeLessThan(1 + 1e-6);
    }
  });

  it('≈ 1 on a flat square, > 1 on a sphere cap', async () => {
    const flat = ref.triangleCurvature(square(600, 1), { k: 12, metric: 'euclidean', triangles: 200, seed: 5 });
    expect(Math.abs(flat.medianRatio - 1)).toBeLessThan(0.03);
    const sph = ref.triangleCurvature(cap(600, 1.4), { k: 12, triangles: 200, seed: 5 });
    expect(sph.medianRatio).toBeGreaterThan(1.02);
    expect(sph.medianRatio).toBeGreaterThan(flat.medianRatio);
    expect(sph.positiveFraction).toBeGreaterThan(0.6);
    const nat = dv.triangleCurvature(cap(600, 1.4), { k: 12, triangles: 200, seed: 5 });
    close(nat.ratios, sph.ratios, 1e-6, 1e-7);
    close(nat.medianRatio, sph.medianRatio, 1e-9);
    expect(nat.skipped).toBe(sph.skipped);
    const later = await dv.triangleCurvatureAsync(cap(600, 1.4), { k: 12, triangles: 200, seed: 5 });
    expect(Array.from(later.ratios)).toEqual(Array.from(nat.ratios));
    await expect(dv.triangleCurvatureAsync(cap(10, 1), { k: 10 })).rejects.toMatchObject({ code: 'E_ARG' });
  });

  it('follows the error contract', () => {
    const m = randm(10, 3, 2);
    for (const [, impl] of impls) {
      throwsCode(() => impl.triangleCurvature(m, { k: 2, triangles: 'x' as never }), 'E_TYPE');
      throwsCode(() => impl.triangleCurvature(randm(2, 3, 1), { k: 1 }), 'E_SHAPE');
      throwsCode(() => impl.triangleCurvature(m, { k: 2, triangles: 2 ** 20 + 1 }), 'E_ARG', /2\^20/);
      throwsCode(() => impl.triangleCurvature(m, { k: 2, metric: 'cosine' as never }), 'E_ARG');
      const bad = { data: m.data.slice(), rows: 10, cols: 3 };
      bad.data[0] = NaN;
      throwsCode(() => impl.triangleCurvature(bad, { k: 2 }), 'E_NON_FINITE');
    }
  });
});
