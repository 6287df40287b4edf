/**
 * The hard regimes: ArcFace at θ_y → 0, batched l2sq under cancellation, the whole float32
 * range in every similarity function, and NaN ranking in topK. The native backend is checked
 * against the float64 reference (and, for ArcFace, against central differences of the
 * reference's float64 loss).
 */
import { describe, expect, it } from 'vitest';
import { close, dv, forEachIsa, randm, ref, rng } from './helpers';

type M = { data: Float32Array; rows: number; cols: number };
const mat = (rows: number, cols: number, f: (i: number, k: number) => number): M => {
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let k = 0; k < cols; k++) data[i * cols + k] = f(i, k);
  return { data, rows, cols };
};
const maxAbs = (a: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};
const dot64 = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

describe('ArcFace at and next to θ_y = 0', () => {
  const w = dv.matrix([
    [1, 2, 3, 4],
    [4, -1, 0, 2],
    [-2, 1, 1, 0],
  ]);
  const labels = Uint32Array.of(0);
  const opts = { kind: 'arcface', scale: 30, margin: 0.5, labelSmoothing: 0.1 } as const;
  const cases: Array<[string, number[]]> = [
    ['θ = 0', [1, 2, 3, 4]],
    ['θ = 3e-4', [1.0014697, 1.9992652, 3, 4]],
  ];

  for (const [name, row] of cases) {
    it(`${name}: native gradients match the float64 reference; x·gradX = 0`, () => {
      const x = dv.matrix([row]);
      forEachIsa(() => {
        const got = dv.marginSoftmax(x, w, labels, opts);
        const want = ref.marginSoftmax(x, w, labels, opts);
        close(got.loss, want.loss, 1e-6, 1e-6);
        const gx = maxAbs(want.gradX.data);
        const gw = maxAbs(want.gradW.data);
        close(got.gradX.data, want.gradX.data, 0, 1e-5 * gx);
        close(got.gradW.data, want.gradW.data, 0, 1e-5 * gw);
        const nx = Math.sqrt(dot64(x.data, x.data));
        const ng = Math.sqrt(dot64(got.gradX.data, got.gradX.data));
        expect(Math.abs(dot64(x.data, got.gradX.data))).toBeLessThan(1e-6 * nx * ng);
      });
      if (name === 'θ = 0') {
        // The values of the report (expected column), which the reference gives.
        close(dv.marginSoftmax(x, w, labels, opts).gradX.data, [0.010444, 0.006772, -0.012335, 0.003254], 0, 2e-6);
      }
    });
  }

  it('θ = 3e-4: native gradX matches central differences of the float64 loss', () => {
    const x = dv.matrix([[1.0014697, 1.9992652, 3, 4]]);
    const got = dv.marginSoftmax(x, w, labels, opts).gradX.data;
    // Steps of 2^-17 are exact in float32 here and well below θ·‖x‖ ≈ 1.6e-3.
    const h = 2 ** -17;
    const fd = new Float64Array(4);
    for (let t = 0; t < 4; t++) {
      const up = dv.matrix([Array.from(x.data)]);
      const dn = dv.matrix([Array.from(x.data)]);
      up.data[t] += h;
      dn.data[t] -= h;
      fd[t] = (ref.marginSoftmax(up, w, labels, opts).loss - ref.marginSoftmax(dn, w, labels, opts).loss) / (up.data[t] - dn.data[t]);
    }
    close(got, fd, 0, 1e-3 * maxAbs(fd));
  });

  it('matches the reference all the way to θ = 0, through the clamp of sin θ at 1e-6', () => {
    // x = w_0 + t·v with v ⟂ w_0: θ ≈ t·‖v‖/‖w_0‖ ≈ 0.41·t.
    const v = [2, -1, 0, 0];
    for (const t of [1e-2, 1e-3, 1e-4, 1e-5, 3e-6, 1e-6, 3e-7, 0]) {
      const x = dv.matrix([[1 + t * v[0], 2 + t * v[1], 3, 4]]);
      const got = dv.marginSoftmax(x, w, labels, opts);
      const want = ref.marginSoftmax(x, w, labels, opts);
      // Both backends take sin θ = √(1 − cos²θ) from a float64 cos θ, which is worth
      // ~4e-16/θ² relative where the clamp does not apply (θ > 1e-6): the tolerance follows.
      const theta = 0.41 * t;
      const rel = 1e-5 + (theta > 1e-6 ? 4e-16 / theta ** 2 : 0);
      close(got.gradX.data, want.gradX.data, 0, rel * maxAbs(want.gradX.data));
      close(got.gradW.data, want.gradW.data, 0, rel * maxAbs(want.gradW.data));
    }
  });
});

describe('batched l2sq under cancellation', () => {
  it('the reported case: q = 1000 + sin k, c = 1000 + cos 3k, d = 768', () => {
    const d = 768;
    const q = mat(1, d, (_, k) => 1000 + Math.sin(k));
    const c = mat(1, d, (_, k) => 1000 + Math.cos(3 * k));
    const want = ref.l2sq(q.data, c.data);
    forEachIsa(() => {
      const got = dv.similarityMatrix(q, c, { metric: 'l2sq' }).data[0];
      close(got, want, 1e-5, 0);
      close(dv.topK(q, c, 1, { metric: 'l2sq' }).scores[0], want, 1e-5, 0);
    });
  });

  it('meets the README bound |error| ≤ 2^-14·l2sq over random offsets and d; every score depends only on its two rows', () => {
    const r = rng(20261129);
    const u = 2 ** -14;
    let worst = 0;
    forEachIsa(() => {
      for (const d of [1, 2, 3, 4, 5, 8, 17, 64, 100, 300, 768, 1024]) {
        for (let trial = 0; trial < 4; trial++) {
          const qr = 1 + Math.floor(r() * 12);
          const cr = 1 + Math.floor(r() * 20);
          const off = r() < 0.2 ? 0 : 10 ** (r() * 6 - 1); // 0, 0.1 … 1e5
          const spread = 10 ** (r() * 3 - 2); // 0.01 … 10
          const cShift = r() < 0.3 ? off * r() : 0;
          const base = Array.from({ length: d }, () => off * (0.5 + r()));
          const structured = r() < 0.5;
          const f = 1 + 3 * r();
          const q = mat(qr, d, (i, k) => base[k] + spread * (structured ? Math.sin(k * f + i) : 2 * r() - 1));
          const c = mat(cr, d, (j, k) => base[k] + cShift + spread * (structured ? Math.cos(3 * k + j) : 2 * r() - 1));
          const got = dv.similarityMatrix(q, c, { metric: 'l2sq' }).data;
          const top = dv.topK(q, c, cr, { metric: 'l2sq' });
          for (let i = 0; i < qr; i++) {
            // The same scores when the query is searched alone.
            const alone = dv.similarityMatrix({ data: q.data.slice(i * d, (i + 1) * d), rows: 1, cols: d }, c, { metric: 'l2sq' }).data;
            for (let j = 0; j < cr; j++) {
              let want = 0;
              for (let k = 0; k < d; k++) want += (q.data[i * d + k] - c.data[j * d + k]) ** 2;
              const err = Math.abs(got[i * cr + j] - want);
              if (want > 0) worst = Math.max(worst, err / want);
              if (!(err <= u * want)) expect.fail(`d ${d} (${i}, ${j}): error ${err} above 2^-14 of ${want}`);
              expect(alone[j]).toBe(got[i * cr + j]);
            }
            // topK scores are the same numbers.
            for (let t = 0; t < cr; t++) expect(top.scores[i * cr + t]).toBe(got[i * cr + top.indices[i * cr + t]]);
          }
        }
      }
    });
    if (process.env.DENSEVEC_PRINT_BOUND) console.log(`worst relative error: ${worst}`);
  });

  it('small-integer data stays exact: exact ties rank by lower index, as in the reference', () => {
    const r = rng(7);
    forEachIsa(() => {
      for (let trial = 0; trial < 20; trial++) {
        const d = 1 + Math.floor(r() * 6);
        const q = mat(1 + Math.floor(r() * 5), d, () => Math.floor(r() * 5) - 2);
        const c = mat(5 + Math.floor(r() * 30), d, () => Math.floor(r() * 5) - 2);
        const got = dv.topK(q, c, c.rows, { metric: 'l2sq' });
        const want = ref.topK(q, c, c.rows, { metric: 'l2sq' });
        expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
        expect(Array.from(got.scores)).toEqual(Array.from(want.scores));
        expect(Array.from(dv.similarityMatrix(q, c, { metric: 'l2sq' }).data)).toEqual(Array.from(ref.similarityMatrix(q, c, { metric: 'l2sq' }).data));
      }
    });
  });

  it('a row holding ±∞ is at distance ∞, as in the reference', () => {
    const q = dv.matrix([
      [1, 2, 3],
      [0.5, 0.5, 0.5],
    ]);
    const c = dv.matrix([
      [0, Infinity, 0],
      [0, 0, -Infinity],
      [7, 0, 0],
    ]);
    forEachIsa(() => {
      for (const [a, b] of [
        [q, c],
        [c, q],
      ]) {
        const got = dv.similarityMatrix(a, b, { metric: 'l2sq' }).data;
        const want = ref.similarityMatrix(a, b, { metric: 'l2sq' }).data;
        expect(Array.from(got).map(Number.isFinite)).toEqual(Array.from(want).map(Number.isFinite));
        expect(Array.from(got).filter((v) => !Number.isFinite(v))).toEqual(Array.from(want).filter((v) => !Number.isFinite(v)));
        close(Array.from(got).filter(Number.isFinite), Array.from(want).filter(Number.isFinite), 1e-6, 0);
        expect(Array.from(dv.topK(a, b, b.rows, { metric: 'l2sq' }).indices)).toEqual(Array.from(ref.topK(a, b, b.rows, { metric: 'l2sq' }).indices));
      }
    });
  });
});

describe('the whole float32 range', () => {
  const scales = [1e-25, 1e-23, 1e-20, 1, 1e19, 1e20, 1e30];
  const vec = (s: number, d: number, p: number): Float32Array => Float32Array.from({ length: d }, (_, k) => s * (Math.sin(k * p + 1) + 0.1));

  it('cosine, norm, normalize, l2sq, dot', () => {
    forEachIsa(() => {
      for (const s of scales) {
        for (const d of [3, 17, 768]) {
          const a = vec(s, d, 0.7);
          const b = vec(s, d, 1.3);
          close(dv.cosine(a, b), ref.cosine(a, b), 1e-6, 1e-7);
          close(dv.norm(a), ref.norm(a), 1e-6, 0);
          close(dv.normalize(a), ref.normalize(a), 1e-5, 1e-7);
          close(dv.l2sq(a, b), ref.l2sq(a, b), 1e-5, 0);
          close(dv.dot(a, b), ref.dot(a, b), 1e-5, 0);
          const m = { data: new Float32Array([...a, ...b]), rows: 2, cols: d };
          close(dv.normalizeRows(m).data, ref.normalizeRows(m).data, 1e-5, 1e-7);
          const m2 = { data: m.data.slice(), rows: 2, cols: d };
          dv.normalizeInPlace(m2);
          close(m2.data, ref.normalizeRows(m).data, 1e-5, 1e-7);
        }
      }
    });
  });

  it('cosine similarityMatrix and topK over rows of every magnitude', () => {
    const d = 33;
    const rows = [...scales, 0, 3e37];
    const m = mat(rows.length, d, (i, k) => rows[i] * Math.sin((k + 1) * (i + 1) * 0.37));
    forEachIsa(() => {
      const got = dv.similarityMatrix(m, m);
      const want = ref.similarityMatrix(m, m);
      close(got.data, want.data, 0, 1e-6);
      const tk = dv.topK(m, m, 4);
      const tr = ref.topK(m, m, 4);
      close(tk.scores, tr.scores, 0, 1e-6);
      // Same order wherever the reference's scores are not tied within the tolerance.
      for (let i = 0; i < m.rows; i++) {
        for (let t = 0; t < 4; t++) {
          const sNext = t + 1 < 4 ? tr.scores[i * 4 + t + 1] : -Infinity;
          const sPrev = t > 0 ? tr.scores[i * 4 + t - 1] : Infinity;
          if (tr.scores[i * 4 + t] - sNext > 1e-5 && sPrev - tr.scores[i * 4 + t] > 1e-5) expect(tk.indices[i * 4 + t]).toBe(tr.indices[i * 4 + t]);
        }
      }
    });
    // All rows at 1e20 (the case of the report): scores finite, order as the reference.
    const big = mat(6, 16, (i, k) => 1e20 * Math.cos(k * 0.3 + i));
    const tk = dv.topK(big, big, 6);
    const tr = ref.topK(big, big, 6);
    expect(Array.from(tk.scores).every(Number.isFinite)).toBe(true);
    close(tk.scores, tr.scores, 0, 1e-6);
    expect(Array.from(tk.indices)).toEqual(Array.from(tr.indices));
  });

  it("cosine at precision 'bf16' over rows of every magnitude: the cosine of the rounded rows, never ±∞ or 0", () => {
    const d = 33;
    const rows = [...scales, 1e-22, 1e-30, 0, 3e37];
    const m = mat(rows.length, d, (i, k) => rows[i] * Math.sin((k + 1) * (i + 1) * 0.37));
    const o = { precision: 'bf16' } as const;
    forEachIsa(() => {
      const got = dv.similarityMatrix(m, m, o);
      const want = ref.similarityMatrix(m, m, o);
      close(got.data, want.data, 0, 2e-6);
      const tk = dv.topK(m, m, 4, o);
      const tr = ref.topK(m, m, 4, o);
      close(tk.scores, tr.scores, 0, 2e-6);
    });
    // The reported pairs: norms of 1e20 and 1e-20 on both sides.
    for (const s of [1e20, 1e30, 1e-20, 1e-22]) {
      const q = mat(2, 2, (i, k) => s * [1, 1, 1, 0][i * 2 + k]);
      const c = mat(2, 2, (i, k) => s * [1, 0, -1, -1][i * 2 + k]);
      const got = dv.similarityMatrix(q, c, o);
      expect(Array.from(got.data).every(Number.isFinite)).toBe(true);
      close(got.data, ref.similarityMatrix(q, c, o).data, 0, 1e-6);
      close(dv.topK(q, c, 2, o).scores, ref.topK(q, c, 2, o).scores, 0, 1e-6);
    }
  });

  it('dot similarityMatrix, topK, matmul and softmaxProbabilities where partial sums pass the float32 range', () => {
    // 1e19·(2e19 + 2e19 − 3e19) = 1e38 fits float32, but the first two products sum to 4e38;
    // with four of sixteen products negated the dot is +2.4e39 (+∞), never −∞.
    const cases: Array<[number[], number[]]> = [
      [
        [1e19, 1e19, 1e19],
        [2e19, 2e19, -3e19],
      ],
      [Array(16).fill(1e19), Array.from({ length: 16 }, (_, k) => (k < 4 ? -3e19 : 3e19))],
      [Array(5).fill(-2e19), [3e19, 3e19, -1e19, -1e19, -3.5e19]],
    ];
    forEachIsa(() => {
      for (const [qa, cb] of cases) {
        const d = qa.length;
        const q = mat(1, d, (_, k) => qa[k]);
        const c = mat(2, d, (i, k) => (i === 0 ? cb[k] : 1e-3 * cb[k]));
        for (const precision of ['f32', 'bf16'] as const) {
          const o = { metric: 'dot', precision } as const;
          const want = ref.similarityMatrix(q, c, o).data;
          const got = dv.similarityMatrix(q, c, o).data;
          expect(Array.from(got, (v) => Number.isFinite(v) || v)).toEqual(Array.from(want, (v) => Number.isFinite(v) || v));
          close(
            Array.from(got, (v) => (Number.isFinite(v) ? v : 0)),
            Array.from(want, (v) => (Number.isFinite(v) ? v : 0)),
            1e-6,
            0,
          );
          const tk = dv.topK(q, c, 2, o);
          const tr = ref.topK(q, c, 2, o);
          expect(Array.from(tk.indices)).toEqual(Array.from(tr.indices));
          expect(Array.from(tk.scores, (v) => Number.isFinite(v) || v)).toEqual(Array.from(tr.scores, (v) => Number.isFinite(v) || v));
        }
        const bt = mat(d, 1, (k) => cb[k]);
        const mm = dv.matmul(q, bt).data;
        const mr = ref.matmul(q, bt).data;
        expect(Number.isFinite(mm[0]) || mm[0]).toEqual(Number.isFinite(mr[0]) || mr[0]);
        if (Number.isFinite(mr[0])) close(mm, mr, 1e-6, 0);
      }
      const x = new Float32Array([1e20, 0]);
      const ys = mat(2, 2, (i, k) => (k === 0 ? (i === 0 ? 1e20 : -1e20) : 0));
      for (const t of [1, 1e10, 1e30]) close(dv.softmaxProbabilities(x, ys, t), ref.softmaxProbabilities(x, ys, t), 0, 1e-6);
    });
  });

  it('infoNCE where float32 logits would lose digits: rows of 1e20 and 1e-30, logits of 1e37, a huge logQ; both paths, both precisions', () => {
    const M = (rows: number, cols: number, a: number[]) => ({ data: Float32Array.from(a), rows, cols });
    const cases: Array<[string, ReturnType<typeof M>, ReturnType<typeof M>, number, Float32Array | undefined]> = [
      ['q·k = 2e40, τ = 1e10', M(1, 2, [1e20, 1e20]), M(2, 2, [1e20, 0, 0, 1e20]), 1e10, undefined],
      ['q·k = 2e-61, τ = 1e-30', M(1, 2, [1e-30, 0]), M(2, 2, [2e-31, 0, 1e-30, 0]), 1e-30, undefined],
      ['q·k ≈ 2.5e37, τ = 1 (p(pos) underflows)', M(1, 1, [-4.98e18]), M(2, 1, [-4.92e18, -5e18]), 1, undefined],
      ['one negative of p = 0', M(1, 1, [-5e18]), M(2, 1, [-4.9e18, 9e17]), 1, undefined],
      ['logQ = −1e8 on every key', M(1, 2, [1, 0]), M(2, 2, [0.9, 0, 0.3, 0]), 1, Float32Array.of(-1e8, -1e8)],
      ['logQ = −1e4, 3e3', M(1, 2, [1, 0]), M(2, 2, [0.9, 0, 0.3, 0]), 0.5, Float32Array.of(-1e4, 3e3)],
    ];
    for (const [name, q, keys, temperature, logQ] of cases) {
      for (const precision of ['f32', 'bf16'] as const) {
        for (const scratchBytes of [0, undefined]) {
          const o = { temperature, precision, scratchBytes, ...(logQ ? { logQ } : {}) };
          const want = ref.infoNCE(q, keys, o);
          const got = dv.infoNCE(q, keys, o);
          const what = `${name} ${precision} scratch ${scratchBytes}`;
          expect(Number.isFinite(got.loss), what).toBe(true);
          close(got.loss, want.loss, 1e-6, 1e-9);
          close(got.gradTemperature, want.gradTemperature, 1e-5, 1e-9);
          close(got.gradQ.data, want.gradQ.data, 1e-5, 1e-6 * maxAbs(want.gradQ.data));
          close(got.gradKeys.data, want.gradKeys.data, 1e-5, 1e-6 * maxAbs(want.gradKeys.data));
          const s = got.stats;
          const w = want.stats;
          close(
            [s.meanEntropy, s.meanPositiveProbability, s.meanMaxNegativeProbability, s.effectiveNegatives],
            [w.meanEntropy, w.meanPositiveProbability, w.meanMaxNegativeProbability, w.effectiveNegatives],
            1e-5,
            1e-7,
          );
        }
      }
    }
  });

  it('infoNCE (normalized) and ntXent at τ = 1e-40 and 1e-45: gradients past the float32 range are ±∞ as in the reference, never NaN', () => {
    const a = randm(3, 4, 61);
    const b = randm(3, 4, 62);
    const same = (got: Float32Array, want: Float32Array) => {
      expect(Array.from(got).some(Number.isNaN)).toBe(false);
      expect(Array.from(got, (v) => (Number.isFinite(v) ? 0 : v))).toEqual(Array.from(want, (v) => (Number.isFinite(v) ? 0 : v)));
      const fin = (x: Float32Array) => Array.from(x, (v) => (Number.isFinite(v) ? v : 0));
      close(fin(got), fin(want), 1e-5, 1e-6 * maxAbs(fin(want)));
    };
    for (const temperature of [1e-30, 1e-40, 1e-45]) {
      const nt = dv.ntXent(a, b, { temperature });
      const ntr = ref.ntXent(a, b, { temperature });
      close(nt.loss, ntr.loss, 1e-6, 1e-9);
      same(nt.gradA.data, ntr.gradA.data);
      same(nt.gradB.data, ntr.gradB.data);
      const o = { temperature, normalize: true };
      const inf = dv.infoNCE(a, b, o);
      const infr = ref.infoNCE(a, b, o);
      close(inf.loss, infr.loss, 1e-6, 1e-9);
      same(inf.gradQ.data, infr.gradQ.data);
      same(inf.gradKeys.data, infr.gradKeys.data);
    }
  });

  it('softmaxProbabilities of rows of 1e-30 at τ = 1e-60, and ∂L/∂τ of infoNCE at a subnormal τ', () => {
    const x = Float32Array.of(1e-30, 0);
    const ys = { data: Float32Array.of(1e-30, 0, 3e-30, 0, -1e-30, 0), rows: 3, cols: 2 };
    close(dv.softmaxProbabilities(x, ys, 1e-60), ref.softmaxProbabilities(x, ys, 1e-60), 0, 1e-6);
    // The positive's logit is below the other's: ∂L/∂τ → −∞ as τ → 0 (its term is kept even
    // when its log-probability is −∞ in float64).
    const q = { data: Float32Array.of(1, 0), rows: 1, cols: 2 };
    const keys = { data: Float32Array.of(-0.5, 0, -0.1, 0), rows: 2, cols: 2 };
    for (const temperature of [1e-300, 1e-310, 1e-320]) expect(dv.infoNCE(q, keys, { temperature }).gradTemperature).toBe(-Infinity);
  });

  it('infoNCE and ntXent at a subnormal τ: statistics and ∂L/∂τ as in the reference, never NaN', () => {
    const q = randm(4, 9, 71);
    const k = randm(5, 9, 72);
    const b = randm(4, 9, 73);
    const stats = (r: {
      gradTemperature: number;
      stats: { meanEntropy: number; meanPositiveProbability: number; meanMaxNegativeProbability: number; effectiveNegatives: number };
    }) => [r.gradTemperature, r.stats.meanEntropy, r.stats.meanPositiveProbability, r.stats.meanMaxNegativeProbability, r.stats.effectiveNegatives];
    for (const temperature of [1e-300, 1e-310, 5e-324]) {
      for (const normalize of [false, true]) {
        const got = stats(dv.infoNCE(q, k, { temperature, normalize }));
        const want = stats(ref.infoNCE(q, k, { temperature, normalize }));
        expect(got.some(Number.isNaN), `infoNCE τ ${temperature}`).toBe(false);
        expect(got).toEqual(want.map((v, i) => (Number.isFinite(v) ? expect.closeTo(v, 6) : got[i] === v ? v : NaN)));
      }
      const got = stats(dv.ntXent(q, b, { temperature }));
      const want = stats(ref.ntXent(q, b, { temperature }));
      expect(got.some(Number.isNaN), `ntXent τ ${temperature}`).toBe(false);
      expect(got).toEqual(want.map((v, i) => (Number.isFinite(v) ? expect.closeTo(v, 6) : got[i] === v ? v : NaN)));
    }
  });

  it('infoNCE diagnostics of the tiled path equal the held path at ordinary scale (bf16 too)', () => {
    const q = { data: Float32Array.of(-0.4997482, -0.4374833), rows: 1, cols: 2 };
    const keys = { data: Float32Array.of(-0.4934532, 0.1368891, -0.4967295, 0.0305031), rows: 2, cols: 2 };
    for (const precision of ['f32', 'bf16'] as const) {
      for (const temperature of [1, 0.07, 1e-3, 1e-6]) {
        const tiled = dv.infoNCE(q, keys, { temperature, precision, scratchBytes: 0 }).stats;
        const held = dv.infoNCE(q, keys, { temperature, precision }).stats;
        const want = ref.infoNCE(q, keys, { temperature, precision }).stats;
        expect(tiled.effectiveNegatives).toBeCloseTo(1, 12); // one negative
        expect(tiled.meanEntropy).toBeGreaterThanOrEqual(0);
        close(tiled.meanEntropy, held.meanEntropy, 0, 1e-7);
        close(tiled.meanEntropy, want.meanEntropy, 1e-5, 1e-6);
      }
    }
  });

  it('negativeSamplingLoss with scores past the float32 range: the reference loss and gradients', () => {
    const p = randm(4, 3, 6);
    const ng = randm(8, 3, 7);
    for (const v of [3e38, -3e38, 1e20, 1e-30]) {
      const x = mat(4, 3, () => v);
      forEachIsa(() => {
        const got = dv.negativeSamplingLoss(x, p, ng);
        const want = ref.negativeSamplingLoss(x, p, ng);
        expect(Number.isFinite(got.loss)).toBe(true);
        close(got.loss, want.loss, 1e-6, 0);
        close(got.gradX.data, want.gradX.data, 1e-5, 1e-6 * maxAbs(want.gradX.data));
        close(got.gradPositives.data, want.gradPositives.data, 1e-5, 1e-6 * maxAbs(want.gradPositives.data));
        close(got.gradNegatives.data, want.gradNegatives.data, 1e-5, 1e-6 * maxAbs(want.gradNegatives.data));
      });
    }
  });

  it('marginSoftmax at scales from 1e-320 to 1e300: the reference loss, gradients, gradScale and logits', () => {
    const x = randm(6, 5, 21);
    const w = randm(7, 5, 22);
    const labels = Uint32Array.of(0, 3, 6, 2, 2, 5);
    // ±∞ where the reference has them (a float32 logit or gradient past the range), else close.
    const near = (a: Float32Array, b: Float32Array, atol: number) => {
      const fin = (v: Float32Array) => Array.from(v, (t) => (Number.isFinite(t) ? t : 0));
      expect(Array.from(a, (t) => (Number.isFinite(t) ? 0 : t))).toEqual(Array.from(b, (t) => (Number.isFinite(t) ? 0 : t)));
      close(fin(a), fin(b), 1e-5, atol);
    };
    for (const kind of ['normalized', 'cosface', 'arcface'] as const) {
      for (const labelSmoothing of [0, 0.1]) {
        for (const scale of [1e-320, 1e-40, 1e-19, 2e36, 1e38, 3.5e38, 1e39, 1e300]) {
          const o = { kind, scale, margin: 0.3, labelSmoothing };
          const want = ref.marginSoftmax(x, w, labels, o);
          forEachIsa(() => {
            const got = dv.marginSoftmax(x, w, labels, o);
            close(got.loss, want.loss, 1e-6, 0);
            close(got.gradScale, want.gradScale, 1e-5, 1e-9);
            near(got.gradX.data, want.gradX.data, 1e-4 * maxAbs(want.gradX.data.filter(Number.isFinite)) + 1e-44);
            near(got.gradW.data, want.gradW.data, 1e-4 * maxAbs(want.gradW.data.filter(Number.isFinite)) + 1e-44);
            near(got.logits.data, want.logits.data, 1e-6 * Math.min(scale, 3e38) + 1e-44);
            close(got.angularMargins, want.angularMargins, 0, 1e-5);
          });
        }
      }
    }
  });

  it('embeddingDrift and similarityStats at 1e-25 … 1e20', () => {
    for (const s of [1e-25, 1e-24, 1e-23, 1e20, 1e30]) {
      const a = mat(5, 24, (i, k) => s * Math.sin(k * 0.5 + i));
      const b = mat(5, 24, (i, k) => s * Math.cos(k * 0.4 + 2 * i));
      const g = dv.embeddingDrift(a, b);
      const w = ref.embeddingDrift(a, b);
      close(g.meanCosine, w.meanCosine, 1e-6, 1e-7);
      close(g.meanL2, w.meanL2, 1e-6, 0);
      const st = dv.similarityStats(a);
      const sw = ref.similarityStats(a);
      close(st.mean, sw.mean, 1e-5, 1e-6);
      close(st.variance, sw.variance, 1e-4, 1e-6);
    }
  });

  it('procrustes at 1e20 and 1e-25: the rotation and residual of the reference', () => {
    const x0 = randm(40, 6, 11);
    const rot = dv.randomOrthogonal(6, 5);
    const y0 = dv.matmul(x0, rot);
    for (let i = 0; i < y0.data.length; i++) y0.data[i] += 0.01 * Math.cos(i);
    for (const s of [1e-25, 1e-20, 1, 1e20, 1e30]) {
      const x = { ...x0, data: x0.data.map((v) => v * s) };
      const y = { ...y0, data: y0.data.map((v) => v * s) };
      const got = dv.procrustes(x, y);
      const want = ref.procrustes(x, y);
      close(got.rotation.data, want.rotation.data, 0, 1e-5);
      close(got.rotation.data, rot.data, 0, 0.05);
      close(got.residual, want.residual, 1e-4, 0);
    }
  });
});

describe('penalties, cross-entropy and curvature at the edges', () => {
  it('normPenalty forms 2λ·m before rounding: no ∞ or 0 where the gradient fits float32', () => {
    const cases: [number[][], number][] = [
      [[[0.1]], 3e38],
      [[[1e-42]], 1e80],
      [[[0, 1e-45]], 1e300],
      [[[3e38]], 1e-80],
      [[[1.5, -2.25]], 0.3],
    ];
    for (const [rows, lambda] of cases) {
      const m = dv.matrix(rows);
      const want = ref.normPenalty(m, lambda).grad.data;
      expect(Array.from(dv.normPenalty(m, lambda).grad.data), `λ = ${lambda}`).toEqual(Array.from(want));
    }
    expect(dv.normPenalty(dv.matrix([[0.1]]), 3e38).grad.data[0]).toBe(Math.fround(2 * 3e38 * Math.fround(0.1)));
  });

  it('labelSmoothingCrossEntropy: the label’s gradient is not lost when its probability rounds to 1', () => {
    const logits = dv.matrix([
      [20, 0, -40],
      [30, 1, -2],
    ]);
    const labels = Uint32Array.of(0, 0);
    for (const eps of [0, 0.1]) {
      const g = dv.labelSmoothingCrossEntropy(logits, labels, eps).grad.data;
      const w = ref.labelSmoothingCrossEntropy(logits, labels, eps).grad.data;
      close(g, w, 1e-6, 1e-30);
      // Each row of the gradient sums to 0, up to the float32 rounding of its entries.
      for (let r = 0; r < 2; r++) {
        const row = [g[3 * r], g[3 * r + 1], g[3 * r + 2]];
        expect(Math.abs(row[0] + row[1] + row[2])).toBeLessThanOrEqual(4 * 2 ** -24 * maxAbs(row));
      }
    }
    expect(dv.labelSmoothingCrossEntropy(dv.matrix([[20, 0]]), Uint32Array.of(0), 0).grad.data[0]).toBeLessThan(0);
  });

  it('knnClassify ranks dot and l2sq neighbours of entries past the float32 product range like the reference', () => {
    const cases: [number[][], number[][], 'dot' | 'l2sq'][] = [
      [[[1e20], [2e20]], [[1e20]], 'dot'],
      [[[5e20], [2e20]], [[0]], 'l2sq'],
      [[[1e-25], [3e-25]], [[2e-25]], 'dot'],
      [[[5e-25], [2e-25]], [[0]], 'l2sq'],
    ];
    for (const [train, q, metric] of cases) {
      const labels = Uint32Array.from(train.map((_, i) => i));
      const want = Array.from(ref.knnClassify(dv.matrix(train), labels, dv.matrix(q), 1, { metric }));
      expect(Array.from(dv.knnClassify(dv.matrix(train), labels, dv.matrix(q), 1, { metric })), `${metric} ${train}`).toEqual(want);
      expect(want).toEqual([1]);
    }
    // Random data scaled by 2^±83 (exactly): the same predictions as at scale 1.
    const tr = randm(200, 8, 42);
    const qs = randm(30, 8, 43);
    const labels = Uint32Array.from({ length: 200 }, (_, i) => i % 5);
    for (const metric of ['dot', 'l2sq'] as const) {
      const base = Array.from(dv.knnClassify(tr, labels, qs, 5, { metric }));
      for (const s of [2 ** 83, 2 ** -83]) {
        const sc = (m: M): M => ({ ...m, data: m.data.map((v) => v * s) });
        expect(Array.from(dv.knnClassify(sc(tr), labels, sc(qs), 5, { metric })), `${metric} × ${s}`).toEqual(base);
      }
    }
  });

  it('the graph functions report a zero row (angular metric) before a non-finite value, on both backends', () => {
    const m = dv.matrix([
      [0, 0],
      [Number.NaN, 1],
      [1, 1],
      [2, 1],
      [1, 3],
    ]);
    for (const impl of [dv, ref]) {
      for (const f of ['graphGeodesics', 'hyperbolicity', 'triangleCurvature'] as const) {
        let code = 'none';
        try {
          (impl[f] as (m: M, o: { k: number }) => unknown)(m, { k: 1 });
        } catch (e) {
          code = (e as { code: string }).code;
        }
        expect(code, f).toBe('E_ARG');
      }
    }
  });

  it('triangleCurvature counts no rounding noise as positive curvature: 0 on a line, equal on both backends', () => {
    const line = dv.matrix(Array.from({ length: 9 }, (_, i) => [i * 0.37, 1 - i * 0.11]));
    for (const impl of [dv, ref]) {
      const t = impl.triangleCurvature(line, { k: 3, triangles: 60, seed: 1 });
      expect(t.positiveFraction).toBe(0);
    }
    const m = randm(300, 8, 41);
    const a = dv.triangleCurvature(m, { k: 6, triangles: 200, seed: 3 });
    const b = ref.triangleCurvature(m, { k: 6, triangles: 200, seed: 3 });
    expect(Array.from(a.ratios)).toEqual(Array.from(b.ratios));
    expect(a.positiveFraction).toBe(b.positiveFraction);
  });
});

describe('NaN ranks after every number in topK, on both backends', () => {
  // One query [1, 0] against rows whose dot products are 1, −∞, NaN, 5, −∞, NaN.
  const q = dv.matrix([[1, 0]]);
  const c = dv.matrix([
    [1, 0],
    [-Infinity, 0],
    [NaN, 0],
    [5, 0],
    [-Infinity, 0],
    [NaN, 0],
  ]);
  for (const [name, f] of [
    ['native', dv.topK],
    ['reference', ref.topK],
  ] as const) {
    it(`${name}: dot — NaN after −∞, ties by lower index`, () => {
      for (let k = 1; k <= 6; k++) {
        const r = f(q, c, k, { metric: 'dot' });
        expect(Array.from(r.indices)).toEqual([3, 0, 1, 4, 2, 5].slice(0, k));
      }
    });
    it(`${name}: l2sq — NaN after +∞`, () => {
      const c2 = dv.matrix([
        [NaN, 0],
        [Infinity, 0],
        [2, 0],
        [-Infinity, 0],
      ]);
      const r = f(q, c2, 4, { metric: 'l2sq' });
      expect(Array.from(r.indices)).toEqual([2, 1, 3, 0]);
      expect(r.scores[1]).toBe(Infinity);
      expect(Number.isNaN(r.scores[3])).toBe(true);
    });
    it(`${name}: cosine — NaN rows last`, () => {
      const c3 = dv.matrix([
        [NaN, 1],
        [-1, 0],
        [0, 1],
        [1, 1],
      ]);
      const r = f(q, c3, 4, { metric: 'cosine' });
      expect(Array.from(r.indices)).toEqual([3, 2, 1, 0]);
    });
  }
});
