import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { randn } from './helpers';

const demo = join(__dirname, '..', 'examples', 'demo.js');
const dir = mkdtempSync(join(tmpdir(), 'densevec-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [demo, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, DENSEVEC_THREADS: '2' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Three well-separated Gaussian clusters in 12 dimensions, labels in the first column. */
function clusters(file: string): void {
  const n = 150;
  const d = 12;
  const z = randn(n * d, 5);
  const lines = ['label,' + Array.from({ length: d }, (_, k) => `f${k}`).join(',')];
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    const row = Array.from({ length: d }, (_, k) => (k % 3 === c ? 4 : 0) + z[i * d + k]);
    lines.push([c, ...row.map((v) => v.toFixed(5))].join(','));
  }
  writeFileSync(join(dir, file), lines.join('\n') + '\n');
}

describe('demo (examples/demo.js)', () => {
  clusters('clusters.csv');

  it('runs the whole pipeline on a small labelled CSV, deterministically for a seed', () => {
    const a = run(['--data', 'clusters.csv', '--quiet', '--seed', '3', '--report', 'r.html']);
    expect(a.err).toMatch(/wrote r\.html/);
    expect(a.code).toBe(0);
    const lines = a.out.trim().split('\n');
    expect(lines[0]).toBe('data clusters.csv 150x12 classes=3 backend=native');
    const knn = /knn5-cosine standardized ([\d.]+)%/.exec(a.out);
    expect(Number(knn?.[1])).toBeGreaterThan(90);
    for (const key of ['stats raw features', 'nn median', 'near-duplicates', 'ntxent', 'arcface prototype-accuracy', 'cosface prototype-accuracy', 'audit NT-Xent head', 'procrustes seeds']) {
      expect(a.out).toContain(key);
    }
    const html = readFileSync(join(dir, 'r.html'), 'utf8');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect((html.match(/<svg /g) ?? []).length).toBeGreaterThanOrEqual(5);
    const b = run(['--data', 'clusters.csv', '--quiet', '--seed', '3']);
    expect(b.out).toBe(a.out);
    const c = run(['--data', 'clusters.csv', '--quiet', '--seed', '4']);
    expect(c.out).not.toBe(a.out);
  }, 120_000);

  it('writes the report by default, to --out, or not with --no-report; --epochs sets the training length', () => {
    rmSync(join(dir, 'densevec-report.html'), { force: true });
    const a = run(['--data', 'clusters.csv', '--epochs', '3']);
    expect(a.code, a.err).toBe(0);
    expect(a.err).toMatch(/wrote densevec-report\.html/);
    expect(existsSync(join(dir, 'densevec-report.html'))).toBe(true);
    // 3 epochs of 112 training rows in batches of 112 (the batch is capped by the rows).
    expect(a.out).toMatch(/NT-Xent head, 3 steps of 112 pairs \(3 epochs\)/);
    expect(a.out).toMatch(/ArcFace head, 3 steps \(3 epochs\)/);
    // Not a terminal: no progress lines or bars in the output.
    expect(a.out).not.toMatch(/^ {2}.*: \d+\/\d+$|\[[█░=-]+\]/m);
    rmSync(join(dir, 'densevec-report.html'));
    const b = run(['--data', 'clusters.csv', '--epochs', '1', '--no-report', '--quiet']);
    expect(b.code, b.err).toBe(0);
    expect(b.err).not.toMatch(/wrote/);
    expect(existsSync(join(dir, 'densevec-report.html'))).toBe(false);
    const c = run(['--data', 'clusters.csv', '--epochs', '1', '--out', 'sub.html', '--quiet']);
    expect(c.code, c.err).toBe(0);
    expect(readFileSync(join(dir, 'sub.html'), 'utf8')).toContain('<figure id="knn-bars">');
    expect(run(['--epochs', '0']).err).toMatch(/--epochs must be an integer >= 1/);
    expect(run(['--out']).err).toMatch(/--out needs a value/);
  }, 120_000);

  it('reads raw float32 files with --dim', () => {
    const v = randn(40 * 6, 9);
    writeFileSync(join(dir, 'v.f32'), Buffer.from(v.buffer));
    const r = run(['--data', 'v.f32', '--dim', '6', '--quiet']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('data v.f32 40x6 backend=native');
    expect(r.out).not.toContain('knn5');
  }, 60_000);

  it('explains bad input and bad options', () => {
    writeFileSync(join(dir, 'ragged.csv'), '1,2,3\n4,5\n');
    writeFileSync(join(dir, 'text.csv'), '1,2,3\n4,x,6\n');
    writeFileSync(join(dir, 'odd.f32'), Buffer.alloc(10));
    const cases: [string[], number, RegExp][] = [
      [['--data', 'missing.csv'], 1, /cannot read missing\.csv: no such file/],
      [['--data', 'ragged.csv'], 1, /ragged\.csv:2: 2 columns, but the first data row has 3/],
      [['--data', 'text.csv'], 1, /text\.csv:2: column 2 is not a finite number: 'x'/],
      [['--data', 'odd.f32', '--dim', '4'], 1, /10 bytes, not a multiple of 4 \* dim = 16/],
      [['--seed', 'x'], 2, /--seed must be a non-negative integer/],
      [['--frobnicate'], 2, /unknown option '--frobnicate'/],
      [['--backend', 'cuda'], 1, /E_BACKEND|not available/],
    ];
    for (const [args, code, re] of cases) {
      const r = run(args);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.err).toMatch(re);
    }
    const h = run(['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/--data FILE/);
  }, 60_000);
});
