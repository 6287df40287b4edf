import { describe, expect, it } from 'vitest';
import { close, dv, fdGrad, fixture, fm, forEachIsa, gatherRows, type M, maxAbs, randm, ref, rng, throwsCode } from './helpers';

/** PyTorch autograd fixtures (scripts/fixtures/learning_extra.py). */
const fixtures = fixture('learning-extra.json');

function fopts(o: Record<string, any>): Record<string, any> {
  const out: Record<string, any> = { ...o };
  if (o.positives) out.positives = Uint32Array.from(o.positives);
  if (o.keyIds) out.keyIds = Uint32Array.from(o.keyIds);
  if (o.logQ) out.logQ = Float32Array.from(o.logQ);
  return out;
}

type Stats = { meanEntropy: number; meanPositiveProbability: number; meanMaxNegativeProbability: number; effectiveNegatives: number };

function statsArr(s: Stats): number[] {
  return [s.meanEntropy, s.meanPositiveProbability, s.meanMaxNegativeProbability, s.effectiveNegatives];
}

/** Central difference of f at t with relative step. */
function fd1(f: (t: number) => number, t: number, h = 1e-5): number {
  const s = h * Math.max(1, Math.abs(t));
  return (f(t + s) - f(t - s)) / (2 * s);
}

/**
 * Direct float64 diagnostics from explicit softmax rows: logits[i] (−∞ = excluded), pos[i];
 * returns [H, p(pos), max p(neg), exp(H of renormalized negatives)] averaged over rows.
 */
function directStats(logits: number[][], pos: number[]): number[] {
  const acc = [0, 0, 0, 0];
  for (let i = 0; i < logits.length; i++) {
    const z = logits[i];
    const m = Math.max(...z);
    const e = z.map((x) => Math.exp(x - m));
    const s = e.reduce((a, b) => a + b, 0);
    const p = e.map((x) => x / s);
    let h = 0;
    for (const x of p) if (x > 0) h -= x * Math.log(x);
    const negs = p.filter((_, j) => j !== pos[i] && z[j] !== -Infinity);
    const pn = negs.reduce((a, b) => a + b, 0);
    let hn = 0;
    for (const x of negs) if (x > 0) hn -= (x / pn) * Math.log(x / pn);
    acc[0] += h;
    acc[1] += p[pos[i]];
    acc[2] += negs.length ? Math.max(...negs) : 0;
    acc[3] += negs.length ? Math.exp(hn) : 0;
  }
  return acc.map((x) => x / logits.length);
}

/** Logits q·k/τ − logQ (float64 of the float32 inputs), with optional normalization. */
function logitsOf(q: M, keys: M, tau: number, logQ?: Float32Array, normalize = false): number[][] {
  const d = q.cols;
  const nrm = (m: M, i: number): number => {
    if (!normalize) return 1;
    let s = 0;
    for (let k = 0; k < d; k++) s += m.data[i * d + k] ** 2;
    return Math.sqrt(s);
  };
  const out: number[][] = [];
  for (let i = 0; i < q.rows; i++) {
    const row: number[] = [];
    for (let j = 0; j < keys.rows; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += q.data[i * d + k] * keys.data[j * d + k];
      row.push(s / (nrm(q, i) * nrm(keys, j)) / tau - (logQ ? logQ[j] : 0));
    }
    out.push(row);
  }
  return out;
}

describe('learnable temperature: gradTemperature', () => {
  const q = randm(3, 4, 11);
  const keys = randm(6, 4, 12);
  const variants: Array<[string, Record<string, unknown>]> = [
    ['plain', {}],
    ['positives', { positives: new Uint32Array([5, 0, 2]) }],
    ['logQ', { logQ: new Float32Array([-1.2, -0.3, -2.5, -1.6, -0.9, -1.1]) }],
    ['normalize', { normalize: true }],
    ['keyIds', { keyIds: new Uint32Array([7, 7, 3, 3, 9, 7]) }],
  ];
  for (const [name, extra] of variants) {
    it(`infoNCE (${name}): reference matches d loss / d τ; native matches reference`, () => {
      const tau = 0.7;
      const r = ref.infoNCE(q, keys, { temperature: tau, ...extra });
      const fd = fd1((t) => ref.infoNCE(q, keys, { temperature: t, ...extra }).loss, tau);
      close(r.gradTemperature, fd, 1e-6, 1e-8);
      expect(Math.abs(r.gradTemperature)).toBeGreaterThan(1e-3);
      const n = dv.infoNCE(q, keys, { temperature: tau, ...extra });
      close(n.gradTemperature, r.gradTemperature, 1e-4, 1e-6);
      close(statsArr(n.stats), statsArr(r.stats), 1e-4, 1e-6);
    });
  }

  it('ntXent: reference matches d loss / d τ; native and async match', async () => {
    const a = randm(5, 6, 21);
    const b = randm(5, 6, 22);
    for (const tau of [0.1, 0.5, 2]) {
      const r = ref.ntXent(a, b, { temperature: tau });
      const fd = fd1((t) => ref.ntXent(a, b, { temperature: t }).loss, tau);
      close(r.gradTemperature, fd, 1e-6, 1e-8);
      const n = dv.ntXent(a, b, { temperature: tau });
      close(n.gradTemperature, r.gradTemperature, 1e-4, 1e-6);
      close(statsArr(n.stats), statsArr(r.stats), 1e-4, 1e-6);
      const y = await dv.ntXentAsync(a, b, { temperature: tau });
      expect(y.gradTemperature).toBe(n.gradTemperature);
      expect(y.stats).toEqual(n.stats);
    }
  });

  it('native matches the reference across tiles (B = 130, K = 300) with logQ and positives', async () => {
    const Q = randm(130, 9, 31);
    const Kx = randm(300, 9, 32);
    const r0 = rng(33);
    const positives = new Uint32Array(130).map(() => Math.floor(r0() * 300));
    const logQ = new Float32Array(300).map(() => -1 - 3 * r0());
    const o = { temperature: 0.3, positives, logQ, normalize: true };
    const r = ref.infoNCE(Q, Kx, o);
    const n = dv.infoNCE(Q, Kx, o);
    close(n.loss, r.loss, 1e-5, 1e-6);
    close(n.gradTemperature, r.gradTemperature, 1e-4, 1e-6);
    close(statsArr(n.stats), statsArr(r.stats), 1e-4, 1e-6);
    const y = await dv.infoNCEAsync(Q, Kx, o);
    expect(y.gradTemperature).toBe(n.gradTemperature);
    expect(y.stats).toEqual(n.stats);
  });

  it('marginSoftmax gradScale: reference matches d loss / d s for every kind; native and async match', async () => {
    const x = randm(6, 5, 41);
    const w = randm(4, 5, 42);
    const labels = new Uint32Array([0, 1, 2, 3, 1, 0]);
    for (const kind of ['normalized', 'cosface', 'arcface'] as const) {
      for (const eps of [0, 0.1]) {
        const o = { kind, scale: 8, margin: 0.3, labelSmoothing: eps };
        const r = ref.marginSoftmax(x, w, labels, o);
        const fd = fd1((s) => ref.marginSoftmax(x, w, labels, { ...o, scale: s }).loss, 8);
        close(r.gradScale, fd, 1e-6, 1e-8);
        expect(Math.abs(r.gradScale)).toBeGreaterThan(1e-4);
        const n = dv.marginSoftmax(x, w, labels, o);
        close(n.gradScale, r.gradScale, 1e-4, 1e-6);
        const y = await dv.marginSoftmaxAsync(x, w, labels, o);
        expect(y.gradScale).toBe(n.gradScale);
        close(y.angularMargins, n.angularMargins, 0, 0);
      }
    }
  });
});

describe('diagnostics: stats', () => {
  it('infoNCE stats equal a direct float64 computation from explicit softmax rows', () => {
    const q = randm(4, 5, 51);
    const keys = randm(7, 5, 52);
    const positives = new Uint32Array([6, 1, 1, 3]);
    const logQ = new Float32Array([-0.5, -1, -1.5, -2, -2.5, -3, -0.2]);
    for (const normalize of [false, true]) {
      const o = { temperature: 0.5, positives, logQ, normalize };
      const want = directStats(logitsOf(q, keys, 0.5, logQ, normalize), Array.from(positives));
      close(statsArr(ref.infoNCE(q, keys, o).stats), want, 1e-9, 1e-12);
      close(statsArr(dv.infoNCE(q, keys, o).stats), want, 1e-4, 1e-6);
    }
  });

  it('ntXent stats equal the direct computation over the 2N anchors (self excluded)', () => {
    const a = randm(3, 4, 53);
    const b = randm(3, 4, 54);
    const z: M = { data: new Float32Array([...a.data, ...b.data]), rows: 6, cols: 4 };
    const lg = logitsOf(z, z, 0.4, undefined, true);
    for (let i = 0; i < 6; i++) lg[i][i] = -Infinity;
    const want = directStats(lg, [3, 4, 5, 0, 1, 2]);
    close(statsArr(ref.ntXent(a, b, { temperature: 0.4 }).stats), want, 1e-9, 1e-12);
    close(statsArr(dv.ntXent(a, b, { temperature: 0.4 }).stats), want, 1e-4, 1e-6);
  });

  it('a dominant positive (negatives ~70-90 nats below) keeps exact negative statistics', () => {
    const d = 4;
    const q: M = { data: new Float32Array([1, 0, 0, 0]), rows: 1, cols: d };
    const keys: M = {
      data: new Float32Array([1, 0, 0, 0, 0.1, 0.99, 0, 0, 0.2, 0, 0.97, 0, 0.3, 0, 0, 0.95]),
      rows: 4,
      cols: d,
    };
    const o = { temperature: 0.01, positives: new Uint32Array([0]) };
    const want = directStats(logitsOf(q, keys, 0.01), [0]);
    expect(want[3]).toBeGreaterThan(1);
    close(statsArr(ref.infoNCE(q, keys, o).stats), want, 1e-9, 1e-300);
    const n = dv.infoNCE(q, keys, o);
    close(n.stats.effectiveNegatives, want[3], 1e-3, 0);
    close(n.stats.meanMaxNegativeProbability, want[2], 1e-2, 0);
    expect(Number.isFinite(n.gradTemperature)).toBe(true);
  });

  it('a query without negatives counts entropy 0, p(pos) 1, and 0 for the negative measures', () => {
    const q = randm(2, 3, 55);
    const keys = randm(1, 3, 56);
    const o = { temperature: 1, positives: new Uint32Array([0, 0]) };
    for (const m of [ref, dv]) {
      const r = m.infoNCE(q, keys, o);
      expect(statsArr(r.stats)).toEqual([0, 1, 0, 0]);
      expect(r.gradTemperature).toBe(0);
      expect(r.loss).toBeCloseTo(0, 6);
    }
  });
});

describe('accidental hits: keyIds', () => {
  const q = randm(4, 5, 61);
  const keys = randm(7, 5, 62);
  const positives = new Uint32Array([0, 3, 5, 6]);
  const keyIds = new Uint32Array([1, 2, 1, 2, 4, 1, 2]);
  const logQ = new Float32Array([-1, -2, -0.5, -1.5, -3, -0.7, -1.1]);

  for (const [label, m] of [
    ['reference', ref],
    ['native', dv],
  ] as const) {
    it(`${label}: equals deleting the excluded keys, query by query`, () => {
      const tau = 0.6;
      const full = m.infoNCE(q, keys, { temperature: tau, positives, keyIds, logQ });
      const d = q.cols;
      const B = q.rows;
      let loss = 0;
      let gt = 0;
      const st = [0, 0, 0, 0];
      const gq = new Float64Array(B * d);
      const gk = new Float64Array(keys.rows * d);
      let removed = 0;
      for (let i = 0; i < B; i++) {
        const keep: number[] = [];
        for (let j = 0; j < keys.rows; j++) if (j === positives[i] || keyIds[j] !== keyIds[positives[i]]) keep.push(j);
        removed += keys.rows - keep.length;
        const kd = gatherRows(keys, keep).data;
        const qi: M = { data: q.data.slice(i * d, (i + 1) * d), rows: 1, cols: d };
        const one = m.infoNCE(
          qi,
          { data: kd, rows: keep.length, cols: d },
          {
            temperature: tau,
            positives: new Uint32Array([keep.indexOf(positives[i])]),
            logQ: Float32Array.from(keep.map((j) => logQ[j])),
          },
        );
        loss += one.loss / B;
        gt += one.gradTemperature / B;
        statsArr(one.stats).forEach((v, t) => {
          st[t] += v / B;
        });
        for (let k = 0; k < d; k++) gq[i * d + k] = one.gradQ.data[k] / B;
        keep.forEach((j, t) => {
          for (let k = 0; k < d; k++) gk[j * d + k] += one.gradKeys.data[t * d + k] / B;
        });
      }
      expect(removed).toBeGreaterThan(0);
      close(full.loss, loss, 1e-5, 1e-7);
      close(full.gradQ.data, gq, 1e-4, 1e-6);
      close(full.gradKeys.data, gk, 1e-4, 1e-6);
      close(full.gradTemperature, gt, 1e-4, 1e-6);
      close(statsArr(full.stats), st, 1e-4, 1e-6);
      // And it differs from the call without keyIds.
      const plain = m.infoNCE(q, keys, { temperature: tau, positives, logQ });
      expect(Math.abs(plain.loss - full.loss)).toBeGreaterThan(1e-3);
    });
  }

  it('native keyIds across tiles matches the reference; async twin agrees', async () => {
    const Q = randm(140, 6, 63);
    const Kx = randm(520, 6, 64);
    const r0 = rng(65);
    const ids = new Uint32Array(520).map(() => Math.floor(r0() * 40));
    const pos = new Uint32Array(140).map(() => Math.floor(r0() * 520));
    const o = { temperature: 0.2, positives: pos, keyIds: ids, normalize: true };
    const r = ref.infoNCE(Q, Kx, o);
    const n = dv.infoNCE(Q, Kx, o);
    close(n.loss, r.loss, 1e-5, 1e-6);
    close(n.gradQ.data, r.gradQ.data, 1e-3, 1e-6);
    close(n.gradKeys.data, r.gradKeys.data, 1e-3, 1e-6);
    close(n.gradTemperature, r.gradTemperature, 1e-4, 1e-6);
    const y = await dv.infoNCEAsync(Q, Kx, o);
    expect(y.loss).toBe(n.loss);
    close(y.gradKeys.data, n.gradKeys.data, 0, 0);
  });

  it('errors: keyIds type and length', () => {
    for (const m of [ref, dv]) {
      throwsCode(() => m.infoNCE(q, keys, { temperature: 1, positives, keyIds: new Int32Array(7) as never }), 'E_TYPE', /keyIds/);
      throwsCode(() => m.infoNCE(q, keys, { temperature: 1, positives, keyIds: new Uint32Array(6) }), 'E_SHAPE', /keyIds has length 6/);
    }
  });
});

describe('margin geometry: angularMargins and marginGeometry', () => {
  it('angularMargins = min over j ≠ y of θ_j − θ_y (reference = direct; native = reference)', () => {
    const x = randm(8, 3, 71);
    const w = randm(5, 3, 72);
    const labels = new Uint32Array([0, 1, 2, 3, 4, 0, 1, 2]);
    const xs = ref.normalizeRows(x);
    const ws = ref.normalizeRows(w);
    const want: number[] = [];
    for (let i = 0; i < 8; i++) {
      const th = (j: number): number => {
        let c = 0;
        for (let k = 0; k < 3; k++) c += xs.data[i * 3 + k] * ws.data[j * 3 + k];
        return Math.acos(Math.max(-1, Math.min(1, c)));
      };
      let best = Infinity;
      for (let j = 0; j < 5; j++) if (j !== labels[i]) best = Math.min(best, th(j) - th(labels[i]));
      want.push(best);
    }
    expect(want.some((v) => v < 0) && want.some((v) => v > 0)).toBe(true);
    for (const kind of ['normalized', 'arcface'] as const) {
      close(ref.marginSoftmax(x, w, labels, { kind }).angularMargins, want, 1e-5, 1e-6);
      close(dv.marginSoftmax(x, w, labels, { kind }).angularMargins, want, 1e-3, 1e-3);
    }
    // One class: no competitor, +∞.
    const one = { data: new Float32Array([1, 2, 3]), rows: 1, cols: 3 };
    expect(Array.from(dv.marginSoftmax(x, one, new Uint32Array(8), { kind: 'cosface' }).angularMargins)).toEqual(new Array(8).fill(Infinity));
    expect(Array.from(ref.marginSoftmax(x, one, new Uint32Array(8), { kind: 'cosface' }).angularMargins)).toEqual(new Array(8).fill(Infinity));
  });

  it('marginGeometry: angles, ArcFace m, CosFace 2·asin(m / (2 sin(Δ/2))) with NaN rules', () => {
    const deltas = [0, 0.2, 2.0];
    const w: M = { data: new Float32Array(deltas.flatMap((t) => [3 * Math.cos(t), 3 * Math.sin(t)])), rows: 3, cols: 2 };
    for (const m of [ref, dv]) {
      const cos = m.marginGeometry(w, { kind: 'cosface', margin: 0.35 });
      const arc = m.marginGeometry(w, { kind: 'arcface', margin: 0.4 });
      const nor = m.marginGeometry(w, { kind: 'normalized' });
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          const D = Math.abs(deltas[i] - deltas[j]);
          close(cos.angles.data[i * 3 + j], D, 1e-5, 1e-5);
          if (i === j) {
            expect(cos.gaps.data[i * 3 + j]).toBeNaN();
            expect(arc.gaps.data[i * 3 + j]).toBeNaN();
            expect(nor.gaps.data[i * 3 + j]).toBeNaN();
            continue;
          }
          close(arc.gaps.data[i * 3 + j], 0.4, 1e-6, 1e-7);
          expect(nor.gaps.data[i * 3 + j]).toBe(0);
          const chord = 2 * Math.sin(D / 2);
          if (0.35 > chord) expect(cos.gaps.data[i * 3 + j]).toBeNaN();
          else close(cos.gaps.data[i * 3 + j], 2 * Math.asin(0.35 / chord), 1e-5, 1e-6);
        }
      }
      // Pairs 0-1 (Δ = 0.2) are too close for m = 0.35; 0-2 (Δ = 2) are not.
      expect(cos.gaps.data[1]).toBeNaN();
      expect(Number.isFinite(cos.gaps.data[2])).toBe(true);
      expect(cos.gaps.rows).toBe(3);
      expect(cos.gaps.cols).toBe(3);
    }
    const big = randm(9, 7, 73);
    const a = ref.marginGeometry(big, { kind: 'cosface' });
    const b = dv.marginGeometry(big, { kind: 'cosface' });
    close(b.angles.data, a.angles.data, 1e-5, 1e-6);
    close(b.gaps.data, a.gaps.data, 1e-5, 1e-6);
  });

  it('marginGeometry errors', () => {
    const w = randm(3, 2, 74);
    for (const m of [ref, dv]) {
      throwsCode(() => m.marginGeometry(w, { kind: 'sphereface' as never }), 'E_ARG', /unknown kind/);
      throwsCode(() => m.marginGeometry(w, { kind: 'cosface', margin: 1.5 }), 'E_ARG', /margin/);
      throwsCode(() => m.marginGeometry({ data: new Float32Array([0, 0, 1, 1]), rows: 2, cols: 2 }, { kind: 'arcface' }), 'E_ARG', /zero norm/);
      throwsCode(() => m.marginGeometry({ data: new Float32Array([NaN, 0, 1, 1]), rows: 2, cols: 2 }, { kind: 'arcface' }), 'E_NON_FINITE');
      throwsCode(() => m.marginGeometry({ data: new Float32Array(3), rows: 2, cols: 2 }, { kind: 'arcface' }), 'E_SHAPE');
      throwsCode(() => m.marginGeometry(w, undefined as never), 'E_TYPE');
    }
  });
});

describe('AliasSampler and unigramWeights', () => {
  const weights = new Float64Array([5, 0, 1, 3, 0.5, 10, 2, 2, 7, 1.5]);

  it('same draws for a seed on both backends, continuing across calls', () => {
    const a = new ref.AliasSampler(weights, 1234);
    const b = new dv.AliasSampler(weights, 1234);
    const a1 = a.sample(1000);
    const b1 = b.sample(1000);
    expect(Array.from(b1)).toEqual(Array.from(a1));
    const a2 = a.sample(333);
    const b2 = b.sample(333);
    expect(Array.from(b2)).toEqual(Array.from(a2));
    // Continuing the stream equals one longer call.
    const c = new dv.AliasSampler(weights, 1234).sample(1333);
    expect(Array.from(c)).toEqual([...a1, ...a2]);
    // Another seed draws differently.
    expect(Array.from(new dv.AliasSampler(weights, 1235).sample(1000))).not.toEqual(Array.from(a1));
    close(b.probabilities, a.probabilities, 1e-15, 0);
    const s = weights.reduce((x, y) => x + y, 0);
    close(
      a.probabilities,
      Array.from(weights, (w) => w / s),
      1e-15,
      0,
    );
  });

  it('matches its target distribution (chi-square at a fixed seed)', () => {
    const N = 200000;
    for (const m of [ref, dv]) {
      const sm = new m.AliasSampler(weights, 7);
      const counts = new Array(weights.length).fill(0);
      for (const i of sm.sample(N)) counts[i]++;
      expect(counts[1]).toBe(0);
      let chi = 0;
      let df = -1;
      for (let i = 0; i < weights.length; i++) {
        const e = sm.probabilities[i] * N;
        if (e === 0) continue;
        chi += (counts[i] - e) ** 2 / e;
        df++;
      }
      expect(df).toBe(8);
      // 99.9th percentile of chi-square with 8 degrees of freedom.
      expect(chi).toBeLessThan(26.12);
    }
  });

  it('logProb and unigramWeights', () => {
    const sm = new dv.AliasSampler(weights, 3);
    const idx = new Uint32Array([0, 5, 1, 9]);
    const lp = sm.logProb(idx);
    const rp = new ref.AliasSampler(weights, 3).logProb(idx);
    expect(lp).toBeInstanceOf(Float32Array);
    close([lp[0], lp[1], lp[3]], [rp[0], rp[1], rp[3]], 1e-6, 0);
    close(lp[1], Math.log(10 / 32), 1e-6, 0);
    expect(lp[2]).toBe(-Infinity);
    expect(rp[2]).toBe(-Infinity);
    throwsCode(() => sm.logProb(new Uint32Array([10])), 'E_ARG', /out of range/);
    throwsCode(() => sm.logProb([1] as never), 'E_TYPE');
    const counts = new Uint32Array([16, 1, 0, 81]);
    for (const m of [ref, dv]) {
      close(m.unigramWeights(counts), [8, 1, 0, 27], 1e-12, 0);
      close(m.unigramWeights([4, 9], 0.5), [2, 3], 1e-12, 0);
      throwsCode(() => m.unigramWeights([1, -2]), 'E_ARG', /negative/);
      throwsCode(() => m.unigramWeights([1, NaN]), 'E_NON_FINITE');
      throwsCode(() => m.unigramWeights([1, 2], -1), 'E_ARG', /power/);
      throwsCode(() => m.unigramWeights('x' as never), 'E_TYPE');
      throwsCode(() => m.unigramWeights([]), 'E_SHAPE');
    }
  });

  it('errors for bad weights and counts', () => {
    for (const m of [ref, dv]) {
      throwsCode(() => new m.AliasSampler([1, -1, 2], 1), 'E_ARG', /negative/);
      throwsCode(() => new m.AliasSampler([1, Infinity], 1), 'E_NON_FINITE');
      throwsCode(() => new m.AliasSampler([1, NaN], 1), 'E_NON_FINITE');
      throwsCode(() => new m.AliasSampler([0, 0], 1), 'E_ARG', /all zero/);
      throwsCode(() => new m.AliasSampler([], 1), 'E_SHAPE');
      throwsCode(() => new m.AliasSampler('abc' as never, 1), 'E_TYPE');
      throwsCode(() => new m.AliasSampler([1, 2], 1.5), 'E_TYPE');
      throwsCode(() => new m.AliasSampler([1, 2], -1), 'E_ARG');
      throwsCode(() => new m.AliasSampler([1, 2], 1).sample(-1), 'E_ARG');
      throwsCode(() => new m.AliasSampler([1, 2], 1).sample(0.5), 'E_TYPE');
    }
  });
});

describe('negativeSamplingLoss', () => {
  const n = 3;
  const k = 2;
  const d = 4;
  const x = randm(n, d, 81);
  const pos = randm(n, d, 82);
  const neg = randm(n * k, d, 83);
  const logQ = new Float32Array([-2, -1, -3, -1.5, -0.5, -2.2, -4, -1, -0.9]);

  for (const [label, extra] of [
    ['word2vec', {}],
    ['NCE (logQ)', { logQ }],
  ] as const) {
    it(`${label}: reference gradients match finite differences; native matches reference`, () => {
      const o = { k, ...extra };
      const r = ref.negativeSamplingLoss(x, pos, neg, o);
      for (const [m, g] of [
        [x, r.gradX],
        [pos, r.gradPositives],
        [neg, r.gradNegatives],
      ] as const) {
        const fd = fdGrad(m.data, () => ref.negativeSamplingLoss(x, pos, neg, o).loss);
        close(g.data, fd, 1e-3, 1e-5);
      }
      // The loss by its definition.
      let want = 0;
      const lsig = (t: number): number => -Math.log1p(Math.exp(-t));
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let t = 0; t < d; t++) s += x.data[i * d + t] * pos.data[i * d + t];
        want -= lsig(s - ('logQ' in extra ? Math.log(k) + logQ[i] : 0));
        for (let r0 = 0; r0 < k; r0++) {
          let sn = 0;
          for (let t = 0; t < d; t++) sn += x.data[i * d + t] * neg.data[(i * k + r0) * d + t];
          want -= lsig(-(sn - ('logQ' in extra ? Math.log(k) + logQ[n + i * k + r0] : 0)));
        }
      }
      close(r.loss, want / n, 1e-12, 1e-12);
      const nv = dv.negativeSamplingLoss(x, pos, neg, extra);
      close(nv.loss, r.loss, 1e-5, 1e-6);
      close(nv.gradX.data, r.gradX.data, 1e-4, 1e-6);
      close(nv.gradPositives.data, r.gradPositives.data, 1e-4, 1e-6);
      close(nv.gradNegatives.data, r.gradNegatives.data, 1e-4, 1e-6);
      expect(nv.gradNegatives.rows).toBe(n * k);
    });
  }

  it('stays finite for large |x·y|', () => {
    const big = (v: number): M => ({ data: new Float32Array([v, 0]), rows: 1, cols: 2 });
    for (const m of [ref, dv]) {
      const r = m.negativeSamplingLoss(big(100), big(-100), big(100));
      expect(r.loss).toBeCloseTo(20000, 0);
      expect([...r.gradX.data, ...r.gradPositives.data, ...r.gradNegatives.data].every(Number.isFinite)).toBe(true);
      const ok = m.negativeSamplingLoss(big(100), big(100), big(-100));
      expect(ok.loss).toBeLessThan(1e-300 + 1e-12);
    }
  });

  it('large results (computed in uninitialized Buffer memory) are whole Float32Arrays with the same bits on 1 and 2 threads', () => {
    // gradNegatives: 4096·5 × 64 floats = 5.2 MB; gradX and gradPositives: 1 MB, written in
    // place (every row zeroed by its task first).
    const N = 4096;
    const K = 5;
    const X = randm(N, 64, 87);
    const P = randm(N, 64, 88);
    const Ng = randm(N * K, 64, 89);
    const threads = dv.backendInfo().threads;
    const run = (t: number) => {
      dv.setThreads(t);
      return dv.negativeSamplingLoss(X, P, Ng);
    };
    try {
      const [one, two, again] = [run(1), run(2), run(2)];
      for (const r of [one, two, again]) {
        for (const g of [r.gradX, r.gradPositives, r.gradNegatives]) {
          expect(g.data).toBeInstanceOf(Float32Array);
          expect(Buffer.isBuffer(g.data)).toBe(false);
          expect(g.data.byteOffset).toBe(0);
          expect(g.data.buffer.byteLength).toBe(g.data.byteLength);
          expect(g.data.length).toBe(g.rows * g.cols);
          expect(g.data.every(Number.isFinite)).toBe(true);
        }
      }
      for (const r of [two, again]) {
        expect(r.loss).toBe(one.loss);
        for (const key of ['gradX', 'gradPositives', 'gradNegatives'] as const) {
          expect(Buffer.compare(Buffer.from(r[key].data.buffer), Buffer.from(one[key].data.buffer))).toBe(0);
        }
      }
      const want = ref.negativeSamplingLoss(X, P, Ng);
      close(one.loss, want.loss, 1e-5, 1e-6);
      close(one.gradNegatives.data, want.gradNegatives.data, 1e-4, 1e-7);
      close(one.gradX.data, want.gradX.data, 1e-4, 1e-7);
      close(one.gradPositives.data, want.gradPositives.data, 1e-4, 1e-7);
    } finally {
      dv.setThreads(threads);
    }
  });

  it('native matches the reference on a larger batch (several tasks)', () => {
    const N = 150;
    const K = 5;
    const X = randm(N, 16, 84);
    const P = randm(N, 16, 85);
    const Ng = randm(N * K, 16, 86);
    const r = ref.negativeSamplingLoss(X, P, Ng);
    const nv = dv.negativeSamplingLoss(X, P, Ng);
    close(nv.loss, r.loss, 1e-5, 1e-6);
    close(nv.gradNegatives.data, r.gradNegatives.data, 1e-4, 1e-7);
    close(nv.gradX.data, r.gradX.data, 1e-4, 1e-7);
  });

  it('errors: wrong k, mismatched lengths, non-finite input', () => {
    for (const m of [ref, dv]) {
      throwsCode(() => m.negativeSamplingLoss(x, pos, neg, { k: 3 }), 'E_SHAPE', /n·k/);
      throwsCode(() => m.negativeSamplingLoss(x, pos, randm(7, d, 1)), 'E_SHAPE', /multiple/);
      throwsCode(() => m.negativeSamplingLoss(x, pos, neg, { k: 0 }), 'E_ARG', /k must be/);
      throwsCode(() => m.negativeSamplingLoss(x, pos, neg, { k: 1.5 }), 'E_TYPE');
      throwsCode(() => m.negativeSamplingLoss(x, randm(2, d, 1), neg), 'E_SHAPE');
      throwsCode(() => m.negativeSamplingLoss(x, pos, randm(6, 3, 1)), 'E_SHAPE');
      throwsCode(() => m.negativeSamplingLoss(x, pos, neg, { logQ: new Float32Array(8) }), 'E_SHAPE', /logQ/);
      const bad = { data: x.data.slice(), rows: n, cols: d };
      bad.data[2] = NaN;
      throwsCode(() => m.negativeSamplingLoss(bad, pos, neg), 'E_NON_FINITE');
      const lq = logQ.slice();
      lq[0] = Infinity;
      throwsCode(() => m.negativeSamplingLoss(x, pos, neg, { logQ: lq }), 'E_NON_FINITE', /logQ/);
    }
  });
});

describe('mismatchScore withinView', () => {
  it('muQ over cross- and within-view pairs (direct computation), both backends', () => {
    const a = randm(5, 3, 91);
    const b = randm(5, 3, 92);
    a.data.fill(0, 3, 6); // a zero row: cosine 0 with everything
    const views = [
      ...Array.from({ length: 5 }, (_, i) => a.data.subarray(i * 3, i * 3 + 3)),
      ...Array.from({ length: 5 }, (_, i) => b.data.subarray(i * 3, i * 3 + 3)),
    ];
    const cos = (u: Float32Array, w: Float32Array): number => {
      const nu = Math.hypot(...u);
      const nw = Math.hypot(...w);
      return nu === 0 || nw === 0 ? 0 : (u[0] * w[0] + u[1] * w[1] + u[2] * w[2]) / (nu * nw);
    };
    let s = 0;
    let cnt = 0;
    for (let i = 0; i < 10; i++) {
      for (let j = i + 1; j < 10; j++) {
        if (j === i + 5) continue;
        s += cos(views[i], views[j]);
        cnt++;
      }
    }
    expect(cnt).toBe(2 * 5 * 4);
    for (const m of [ref, dv]) {
      const w = m.mismatchScore(a, b, { withinView: true });
      const c = m.mismatchScore(a, b);
      close(w.muQ, s / cnt, 1e-6, 1e-7);
      close(w.muP, c.muP, 1e-12, 0);
      close(w.M, w.muP - w.muQ, 1e-12, 1e-14);
      expect(Math.abs(w.muQ - c.muQ)).toBeGreaterThan(1e-4);
      throwsCode(() => m.mismatchScore(a, b, { withinView: 1 as never }), 'E_TYPE', /withinView/);
    }
  });
});

describe('PyTorch autograd fixtures', () => {
  it('holds every kind of case', () => {
    const kinds = new Set(fixtures.cases.map((c) => c.kind));
    expect([...kinds].sort()).toEqual(['infoNCE', 'marginSoftmax', 'negativeSamplingLoss', 'ntXent']);
    expect(fixtures.cases.length).toBeGreaterThanOrEqual(12);
  });
  for (const c of fixtures.cases) {
    for (const [label, m, tol] of [
      ['reference', ref, 1e-6],
      ['native', dv, 2e-4],
    ] as const) {
      it(`${c.kind} ${c.name} (${label})`, () => {
        const st = (got: Stats): void => close(statsArr(got), statsArr(c.stats), tol, tol);
        const g = (got: ArrayLike<number>, want: number[]): void => close(got, want, tol, tol * Math.max(maxAbs(want), 1e-12));
        if (c.kind === 'infoNCE') {
          const r = m.infoNCE(fm(c.q), fm(c.keys), fopts(c.options) as never);
          close(r.loss, c.loss, tol, tol);
          g(r.gradQ.data, c.gradQ);
          g(r.gradKeys.data, c.gradKeys);
          close(r.gradTemperature, c.gradTemperature, tol, tol);
          st(r.stats);
        } else if (c.kind === 'ntXent') {
          const r = m.ntXent(fm(c.a), fm(c.b), c.options);
          close(r.loss, c.loss, tol, tol);
          g(r.gradA.data, c.gradA);
          close(r.gradTemperature, c.gradTemperature, tol, tol);
          st(r.stats);
        } else if (c.kind === 'marginSoftmax') {
          const r = m.marginSoftmax(fm(c.x), fm(c.prototypes), Uint32Array.from(c.labels), c.options);
          close(r.loss, c.loss, tol, tol);
          close(r.gradScale, c.gradScale, tol, tol);
          close(r.angularMargins, c.angularMargins, label === 'native' ? 1e-3 : 1e-6, label === 'native' ? 1e-3 : 1e-6);
        } else {
          const r = m.negativeSamplingLoss(fm(c.x), fm(c.positives), fm(c.negatives), fopts(c.options) as never);
          close(r.loss, c.loss, tol, tol);
          g(r.gradX.data, c.gradX);
          g(r.gradPositives.data, c.gradPositives);
          g(r.gradNegatives.data, c.gradNegatives);
        }
      });
    }
  }
});

describe('every ISA', () => {
  it('gradTemperature, stats, gradScale, angularMargins and negativeSamplingLoss agree with the reference on every forced ISA', () => {
    const q = randm(37, 13, 101);
    const keys = randm(300, 13, 102);
    const r0 = rng(103);
    const positives = new Uint32Array(37).map(() => Math.floor(r0() * 300));
    const keyIds = new Uint32Array(300).map(() => Math.floor(r0() * 50));
    const o = { temperature: 0.25, positives, keyIds, normalize: true };
    const want = ref.infoNCE(q, keys, o);
    const a = randm(19, 13, 104);
    const b = randm(19, 13, 105);
    const wantX = ref.ntXent(a, b, { temperature: 0.2 });
    const labels = new Uint32Array(37).map(() => Math.floor(r0() * 7));
    const w = randm(7, 13, 106);
    const wantM = ref.marginSoftmax(q, w, labels, { kind: 'cosface' });
    const neg = randm(37 * 3, 13, 107);
    const pos37 = randm(37, 13, 108);
    const wantN2 = ref.negativeSamplingLoss(q, pos37, neg);
    expect(wantN2.loss).toBeGreaterThan(0);
    forEachIsa(() => {
      const r = dv.infoNCE(q, keys, o);
      close(r.gradTemperature, want.gradTemperature, 1e-4, 1e-6);
      close(statsArr(r.stats), statsArr(want.stats), 1e-4, 1e-6);
      const x = dv.ntXent(a, b, { temperature: 0.2 });
      close(x.gradTemperature, wantX.gradTemperature, 1e-4, 1e-6);
      close(statsArr(x.stats), statsArr(wantX.stats), 1e-4, 1e-6);
      const m = dv.marginSoftmax(q, w, labels, { kind: 'cosface' });
      close(m.gradScale, wantM.gradScale, 1e-4, 1e-6);
      close(m.angularMargins, wantM.angularMargins, 1e-3, 1e-3);
      const ns = dv.negativeSamplingLoss(q, pos37, neg);
      close(ns.loss, wantN2.loss, 1e-5, 1e-6);
      close(ns.gradX.data, wantN2.gradX.data, 1e-4, 1e-6);
    });
  });
});
