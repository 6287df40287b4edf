import { describe, expect, it } from 'vitest';
import { close, closeGrad, dv, fdGrad, fixture, fm, LOSS_SHAPES, type M, randm, ref, rng, throwsCode } from './helpers';

const fixtures = fixture('learning.json');

function labelsOf(n: number, c: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: n }, () => Math.floor(r() * c));
}

/** Angle between row i of x and row j of w. */
function angle(x: M, i: number, w: M, j: number): number {
  const d = x.cols;
  return Math.acos(Math.min(1, Math.max(-1, ref.cosine(x.data.subarray(i * d, (i + 1) * d), w.data.subarray(j * d, (j + 1) * d)))));
}

const KINDS = ['normalized', 'cosface', 'arcface'] as const;

describe('margin: reference gradients by finite differences', () => {
  for (const kind of KINDS) {
    for (const labelSmoothing of [0, 0.2]) {
      it(`${kind}, ε = ${labelSmoothing}`, () => {
        const x = randm(4, 5, 1);
        const w = randm(6, 5, 2);
        const labels = new Uint32Array([0, 3, 3, 5]);
        const o = { kind, scale: 8, margin: kind === 'arcface' ? 0.5 : 0.3, labelSmoothing };
        const r = ref.marginSoftmax(x, w, labels, o);
        const f = () => ref.marginSoftmax(x, w, labels, o).loss;
        closeGrad(r.gradX.data, fdGrad(x.data, f), 1e-4, 1e-5);
        closeGrad(r.gradW.data, fdGrad(w.data, f), 1e-4, 1e-5);
      });
    }
  }

  it('arcface beyond π − m uses the continuation, and its gradient', () => {
    const w = randm(3, 6, 3);
    const x = randm(2, 6, 4);
    // Row 0 nearly opposite its class 1: θ > π − m.
    for (let k = 0; k < 6; k++) x.data[k] = -w.data[6 + k] + 0.01 * (k - 2);
    const labels = new Uint32Array([1, 2]);
    const m = 0.5;
    expect(angle(x, 0, w, 1)).toBeGreaterThan(Math.PI - m);
    const o = { kind: 'arcface' as const, scale: 64, margin: m };
    const r = ref.marginSoftmax(x, w, labels, o);
    const c = Math.cos(angle(x, 0, w, 1));
    close(r.logits.data[1], 64 * (c - m * Math.sin(m)), 1e-6, 1e-4);
    const f = () => ref.marginSoftmax(x, w, labels, o).loss;
    closeGrad(r.gradX.data, fdGrad(x.data, f, 1e-4), 1e-4, 1e-5);
    closeGrad(r.gradW.data, fdGrad(w.data, f, 1e-4), 1e-4, 1e-5);
    // Inside the range: s·cos(θ + m).
    const th = angle(x, 1, w, 2);
    close(r.logits.data[3 + 2], 64 * Math.cos(th + m), 1e-6, 1e-4);
  });

  it('arcface near θ = 0: gradient matches finite differences, and is finite at θ = 0 exactly', () => {
    const w = randm(3, 5, 5);
    const x = randm(2, 5, 6);
    for (let k = 0; k < 5; k++) x.data[k] = 2 * w.data[5 + k] + 0.02 * Math.sin(k + 1);
    const labels = new Uint32Array([1, 0]);
    expect(angle(x, 0, w, 1)).toBeLessThan(0.05);
    const o = { kind: 'arcface' as const, scale: 30, margin: 0.5, labelSmoothing: 0.1 };
    const r = ref.marginSoftmax(x, w, labels, o);
    const f = () => ref.marginSoftmax(x, w, labels, o).loss;
    closeGrad(r.gradX.data, fdGrad(x.data, f, 1e-5), 1e-3, 1e-4);
    closeGrad(r.gradW.data, fdGrad(w.data, f, 1e-5), 1e-3, 1e-4);
    // θ = 0 exactly (x row = its prototype): finite everywhere, both backends.
    x.data.set(w.data.subarray(5, 10), 0);
    for (const be of [ref, dv]) {
      const z = be.marginSoftmax(x, w, labels, { kind: 'arcface', scale: 64, margin: 0.5 });
      expect(Number.isFinite(z.loss)).toBe(true);
      for (const g of [z.gradX.data, z.gradW.data]) for (const v of g) expect(Number.isFinite(v)).toBe(true);
    }
  });

  it('labelSmoothingCrossEntropy and the penalties', () => {
    const z = randm(4, 7, 8);
    for (const s of z.data.keys()) z.data[s] *= 5;
    const labels = new Uint32Array([6, 0, 2, 2]);
    for (const eps of [0, 0.3]) {
      const r = ref.labelSmoothingCrossEntropy(z, labels, eps);
      closeGrad(
        r.grad.data,
        fdGrad(z.data, () => ref.labelSmoothingCrossEntropy(z, labels, eps).loss),
        1e-4,
        1e-5,
      );
    }
    const m = randm(3, 4, 9);
    const np = ref.normPenalty(m, 0.3);
    closeGrad(
      np.grad.data,
      fdGrad(m.data, () => ref.normPenalty(m, 0.3).loss),
      1e-5,
      1e-6,
    );
    let s = 0;
    for (const v of m.data) s += v * v;
    close(np.loss, 0.3 * s, 1e-12);
    const l1 = ref.l1Penalty(m, 0.7);
    closeGrad(
      l1.grad.data,
      fdGrad(m.data, () => ref.l1Penalty(m, 0.7).loss, 1e-4),
      1e-5,
      1e-6,
    );
  });
});

describe('margin: native vs reference', () => {
  // The loss shapes, and more rows than classes (one class; past the blocking).
  const shapes = [...LOSS_SHAPES, [6, 1, 4], [65, 37, 19]];
  for (const [N, C, d] of shapes) {
    it(`marginSoftmax N=${N} C=${C} d=${d}, every kind`, () => {
      const x = randm(N, d, N * 3 + d);
      const w = randm(C, d, C * 5 + d);
      const labels = labelsOf(N, C, N + C);
      for (const kind of KINDS) {
        for (const o of [{ kind }, { kind, scale: 64, margin: kind === 'cosface' ? 0.2 : 0.5, labelSmoothing: 0.1 }]) {
          const got = dv.marginSoftmax(x, w, labels, o);
          const want = ref.marginSoftmax(x, w, labels, o);
          close(got.loss, want.loss, 1e-5, 1e-5);
          expect([got.logits.rows, got.logits.cols, got.gradX.rows, got.gradW.rows]).toEqual([N, C, N, C]);
          close(got.logits.data, want.logits.data, 1e-5, 1e-4);
          // float32 probabilities are exact to ~1e-7, so gradients to ~1e-7·s (saturated rows
          // and one-class problems have true gradients at that level or exactly 0).
          const abs = 1e-6 * (o.scale ?? 30);
          closeGrad(got.gradX.data, want.gradX.data, 1e-3, 1e-4, abs);
          closeGrad(got.gradW.data, want.gradW.data, 1e-3, 1e-4, abs);
        }
      }
    });
  }

  it('defaults: s = 30, m = 0.35 (cosface) / 0.5 (arcface)', () => {
    const x = randm(3, 4, 1);
    const w = randm(2, 4, 2);
    const labels = new Uint32Array([0, 1, 1]);
    for (const be of [dv, ref]) {
      const n = be.marginSoftmax(x, w, labels, { kind: 'normalized' });
      const c = be.marginSoftmax(x, w, labels, { kind: 'cosface' });
      const a = be.marginSoftmax(x, w, labels, { kind: 'arcface' });
      close(n.logits.data[1], 30 * ref.cosine(x.data.subarray(0, 4), w.data.subarray(4, 8)), 1e-5, 1e-5);
      close(c.logits.data[0], n.logits.data[0] - 30 * 0.35, 1e-5, 1e-5);
      close(a.logits.data[0], 30 * Math.cos(Math.acos(n.logits.data[0] / 30) + 0.5), 1e-4, 1e-4);
    }
  });

  it('cross-entropy and penalties agree, sign(0) = 0', () => {
    for (const [N, C] of [
      [1, 1],
      [3, 7],
      [100, 1001],
    ]) {
      const z = randm(N, C, N + C);
      const labels = labelsOf(N, C, C);
      for (const eps of [0, 0.1, 0.9]) {
        const got = dv.labelSmoothingCrossEntropy(z, labels, eps);
        const want = ref.labelSmoothingCrossEntropy(z, labels, eps);
        close(got.loss, want.loss, 1e-5, 1e-6);
        closeGrad(got.grad.data, want.grad.data, 1e-4, 1e-5, 1e-7);
      }
    }
    const m = randm(300, 301, 3);
    m.data.fill(0, 0, 50);
    const a = dv.normPenalty(m, 0.01);
    const b = ref.normPenalty(m, 0.01);
    close(a.loss, b.loss, 1e-9);
    close(a.grad.data, b.grad.data, 1e-6, 1e-9);
    const c = dv.l1Penalty(m, 0.5);
    const d = ref.l1Penalty(m, 0.5);
    close(c.loss, d.loss, 1e-9);
    expect(Array.from(c.grad.data)).toEqual(Array.from(d.grad.data));
    expect(c.grad.data[0]).toBe(0);
    expect(Array.from(dv.l1Penalty({ data: new Float32Array([-0, 0, 2, -3]), rows: 2, cols: 2 }, 1).grad.data)).toEqual([0, 0, 1, -1]);
  });

  it('s = 64 margins stay finite and exact', () => {
    const x = ref.normalizeRows(randm(50, 16, 11));
    const w = ref.normalizeRows(randm(20, 16, 12));
    const labels = labelsOf(50, 20, 13);
    // Put half the rows on their prototypes: large, confident logits.
    for (let i = 0; i < 25; i++) x.data.set(w.data.subarray(labels[i] * 16, labels[i] * 16 + 16), i * 16);
    for (const kind of KINDS) {
      const got = dv.marginSoftmax(x, w, labels, { kind, scale: 64 });
      const want = ref.marginSoftmax(x, w, labels, { kind, scale: 64 });
      expect(Number.isFinite(got.loss)).toBe(true);
      close(got.loss, want.loss, 1e-5, 1e-5);
      for (const v of got.gradX.data) expect(Number.isFinite(v)).toBe(true);
      closeGrad(got.gradW.data, want.gradW.data, 1e-3, 1e-4);
    }
  });

  it('results do not depend on the thread count', () => {
    const x = randm(300, 24, 21);
    const w = randm(150, 24, 22);
    const labels = labelsOf(300, 150, 23);
    const same = (a: Float32Array, b: Float32Array) =>
      Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    dv.setThreads(1);
    const a = dv.marginSoftmax(x, w, labels, { kind: 'arcface', labelSmoothing: 0.1 });
    const ca = dv.labelSmoothingCrossEntropy(a.logits, labels, 0.1);
    dv.setThreads(2);
    const b = dv.marginSoftmax(x, w, labels, { kind: 'arcface', labelSmoothing: 0.1 });
    const cb = dv.labelSmoothingCrossEntropy(b.logits, labels, 0.1);
    expect(a.loss).toBe(b.loss);
    expect(same(a.gradX.data, b.gradX.data)).toBe(true);
    expect(same(a.gradW.data, b.gradW.data)).toBe(true);
    expect(same(a.logits.data, b.logits.data)).toBe(true);
    expect(ca.loss).toBe(cb.loss);
    expect(same(ca.grad.data, cb.grad.data)).toBe(true);
  });

  it('async twin agrees and rejects with codes', async () => {
    const x = randm(9, 8, 31);
    const w = randm(5, 8, 32);
    const labels = labelsOf(9, 5, 33);
    const o = { kind: 'cosface' as const, labelSmoothing: 0.05 };
    const s = dv.marginSoftmax(x, w, labels, o);
    const a = await dv.marginSoftmaxAsync(x, w, labels, o);
    expect(a.loss).toBe(s.loss);
    expect(Array.from(a.gradX.data)).toEqual(Array.from(s.gradX.data));
    expect(Array.from(a.gradW.data)).toEqual(Array.from(s.gradW.data));
    await expect(dv.marginSoftmaxAsync(x, w, labels, { kind: 'arcface', margin: 2 })).rejects.toMatchObject({ code: 'E_ARG' });
    await expect(dv.marginSoftmaxAsync(x, w, new Uint32Array(3), o)).rejects.toMatchObject({ code: 'E_SHAPE' });
  });
});

describe('margin: PyTorch fixtures', () => {
  for (const c of fixtures.cases.filter((x) => x.kind === 'marginSoftmax' || x.kind === 'labelSmoothingCrossEntropy')) {
    it(`${c.kind}: ${c.name}`, () => {
      for (const be of [ref, dv]) {
        if (c.kind === 'marginSoftmax') {
          const r = be.marginSoftmax(fm(c.x), fm(c.prototypes), Uint32Array.from(c.labels), c.options);
          close(r.loss, c.loss, 1e-5, 1e-6);
          close(r.logits.data, c.logits, 1e-5, 1e-4);
          closeGrad(r.gradX.data, c.gradX, 1e-4, 1e-5);
          closeGrad(r.gradW.data, c.gradW, 1e-4, 1e-5);
        } else {
          const r = be.labelSmoothingCrossEntropy(fm(c.logits), Uint32Array.from(c.labels), c.epsilon);
          close(r.loss, c.loss, 1e-5, 1e-6);
          closeGrad(r.grad.data, c.grad, 1e-4, 1e-5);
        }
      }
    });
  }
});

describe('margin: error codes', () => {
  it('reports the first applicable code, on both backends', () => {
    const x = randm(3, 4, 41);
    const w = randm(5, 4, 42);
    const labels = new Uint32Array([0, 4, 2]);
    for (const be of [dv, ref]) {
      throwsCode(() => be.marginSoftmax(x, w, [0, 1, 2] as never, { kind: 'cosface' }), 'E_TYPE', /labels/);
      throwsCode(() => be.marginSoftmax(x, w, labels, {} as never), 'E_TYPE', /kind/);
      throwsCode(() => be.marginSoftmax(x, w, labels, { kind: 'cosface', scale: '2' as never }), 'E_TYPE', /scale/);
      throwsCode(() => be.marginSoftmax(x, randm(5, 3, 1), labels, { kind: 'cosface', scale: -1 }), 'E_SHAPE');
      throwsCode(() => be.marginSoftmax(x, w, new Uint32Array(2), { kind: 'nope' as never }), 'E_SHAPE', /labels/);
      throwsCode(() => be.marginSoftmax(x, w, labels, { kind: 'nope' as never }), 'E_ARG', /kind/);
      throwsCode(() => be.marginSoftmax(x, w, labels, { kind: 'normalized', scale: 0 }), 'E_ARG', /scale/);
      throwsCode(() => be.marginSoftmax(x, w, labels, { kind: 'cosface', margin: 1.5 }), 'E_ARG', /margin/);
      throwsCode(() => be.marginSoftmax(x, w, labels, { kind: 'arcface', margin: Math.PI / 2 }), 'E_ARG', /margin/);
      throwsCode(() => be.marginSoftmax(x, w, labels, { kind: 'arcface', margin: -0.1 }), 'E_ARG', /margin/);
      throwsCode(() => be.marginSoftmax(x, w, labels, { kind: 'cosface', labelSmoothing: 1 }), 'E_ARG', /labelSmoothing/);
      throwsCode(() => be.marginSoftmax(x, w, new Uint32Array([0, 5, 1]), { kind: 'cosface' }), 'E_ARG', /labels\[1\]/);
      const z = { data: w.data.slice(), rows: 5, cols: 4 };
      z.data.fill(0, 8, 12);
      throwsCode(() => be.marginSoftmax(x, z, labels, { kind: 'cosface' }), 'E_ARG', /prototypes row 2/);
      const nan = { data: x.data.slice(), rows: 3, cols: 4 };
      nan.data[7] = NaN;
      throwsCode(() => be.marginSoftmax(nan, w, labels, { kind: 'cosface' }), 'E_NON_FINITE', /x/);

      throwsCode(() => be.labelSmoothingCrossEntropy(x, labels, 'a' as never), 'E_TYPE');
      throwsCode(() => be.labelSmoothingCrossEntropy(x, new Uint32Array(2), 0), 'E_SHAPE');
      throwsCode(() => be.labelSmoothingCrossEntropy(x, labels, 1), 'E_ARG', /epsilon/);
      throwsCode(() => be.labelSmoothingCrossEntropy(x, labels, -0.1), 'E_ARG', /epsilon/);
      throwsCode(() => be.labelSmoothingCrossEntropy(x, new Uint32Array([0, 4, 0]), 0), 'E_ARG', /labels/);
      throwsCode(() => be.labelSmoothingCrossEntropy(nan, new Uint32Array(3), 0), 'E_NON_FINITE');

      throwsCode(() => be.normPenalty(x, '1' as never), 'E_TYPE');
      throwsCode(() => be.normPenalty({ data: new Float32Array(3), rows: 2, cols: 2 }, 1), 'E_SHAPE');
      throwsCode(() => be.normPenalty(x, -1), 'E_ARG', /lambda/);
      throwsCode(() => be.l1Penalty(x, NaN), 'E_ARG', /lambda/);
      throwsCode(() => be.l1Penalty(nan, 1), 'E_NON_FINITE');
    }
  });
});
