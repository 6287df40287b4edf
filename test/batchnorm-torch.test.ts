/**
 * The trainable BatchNorm against PyTorch BatchNorm1d(affine=True) autograd
 * (test/fixtures/batchnorm.json, made by scripts/fixtures/batchnorm.py): the training-mode output,
 * ∂/∂input, ∂/∂weight, ∂/∂bias and the running statistics, on both backends.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { close, dv, ref } from './helpers';

interface Case {
  n: number;
  d: number;
  momentum: number;
  eps: number;
  x: number[];
  weight: number[];
  bias: number[];
  gradOut: number[];
  y: number[];
  gradX: number[];
  gradWeight: number[];
  gradBias: number[];
  runningMean: number[];
  runningVar: number[];
}

const fx = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'batchnorm.json'), 'utf8')) as { source: string; cases: Case[] };

describe(`BatchNorm(affine) against ${fx.source}`, () => {
  it('has cases', () => expect(fx.cases.length).toBeGreaterThanOrEqual(4));
  for (const [name, lib] of [
    ['native', dv],
    ['reference', ref],
  ] as const) {
    for (const c of fx.cases) {
      it(`${name}: n = ${c.n}, d = ${c.d}, momentum ${c.momentum}, eps ${c.eps}`, () => {
        const bn = new lib.BatchNorm(c.d, { affine: true, momentum: c.momentum, eps: c.eps });
        bn.weight!.set(c.weight);
        bn.bias!.set(c.bias);
        const y = bn.forward({ data: Float32Array.from(c.x), rows: c.n, cols: c.d }, { training: true });
        close(y.data, c.y, 2e-5, 2e-5);
        close(bn.runningMean, c.runningMean, 1e-5, 1e-6);
        close(bn.runningVar, c.runningVar, 1e-5, 1e-6);
        const g = bn.backward({ data: Float32Array.from(c.gradOut), rows: c.n, cols: c.d });
        close(g.gradX.data, c.gradX, 1e-4, 1e-5);
        close(g.gradWeight!, c.gradWeight, 1e-4, 1e-5);
        close(g.gradBias!, c.gradBias, 1e-5, 1e-6);
      });
    }
  }
});
