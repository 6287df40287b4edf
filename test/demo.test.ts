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
  const lines = [`label,${Array.from({ length: d }, (_, k) => `f${k}`).join(',')}`];
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    const row = Array.from({ length: d }, (_, k) => (k % 3 === c ? 4 : 0) + z[i * d + k]);
    lines.push([c, ...row.map((v) => v.toFixed(5))].join(','));
  }
  writeFileSync(join(dir, file), `${lines.join('\n')}\n`);
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
    for (const key of [
      'stats raw features',
      'nn median',
      'near-duplicates',
      'ntxent',
      'arcface prototype-accuracy',
      'cosface prototype-accuracy',
      'audit NT-Xent head',
      'procrustes seeds',
    ]) {
      expect(a.out).toContain(key);
    }
    const html = readFileSync(join(dir, 'r.html'), 'utf8');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect((html.match(/<svg /g) ?? []).length).toBeGreaterThanOrEqual(5);
    // The data, seed and options come first, before any section.
    const facts = html.indexOf('<dl class="facts">');
    expect(facts).toBeGreaterThan(0);
    expect(facts).toBeLessThan(html.indexOf('<h2>'));
    expect(html).toMatch(/<dt>seed<\/dt><dd>3<\/dd>/);
    expect(html).toMatch(/<dt>data<\/dt><dd>clusters\.csv: 150 rows × 12 features, 3 classes/);
    for (const id of ['regularizers', 'triangle-ratios', 'hyperbolicity']) expect(html).toContain(`<figure id="${id}">`);
    // Curvature along the data replaces the ambient-sphere column; the anisotropic map sits beside the rotation.
    expect(a.out).toMatch(/audit NT-Xent head: knn=[\d.]+% meancos=-?[\d.]+ aniso-kept=[\d.]+ reldelta=[\d.]+ tri=[\d.]+/);
    expect(a.out).toMatch(/^analogy standardized=[\d.]+% NT-Xent=[\d.]+% ArcFace=[\d.]+% CosFace=[\d.]+%$/m);
    expect(a.out).not.toContain('curv=');
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

  it('reads quoted fields and class names as labels; refuses one-column files, binary files without --dim and an unwritable --out up front', () => {
    const lines = ['"species","a","b","c"'];
    const r0 = randn(60 * 3, 4);
    for (let i = 0; i < 60; i++) {
      const c = i % 2;
      lines.push([`"${c ? 'cat' : 'dog'}"`, ...[0, 1, 2].map((k) => `"${((k === c ? 3 : 0) + r0[i * 3 + k]).toFixed(4)}"`)].join(','));
    }
    writeFileSync(join(dir, 'quoted.csv'), `${lines.join('\n')}\n`);
    const q = run(['--data', 'quoted.csv', '--epochs', '1', '--no-report']);
    expect(q.code, q.err).toBe(0);
    expect(q.out).toMatch(/60 rows × 3 features, 2 classes/);
    expect(q.out).toMatch(/labels: first column \(class names, numbered in sorted order: cat=0, dog=1\)/);
    writeFileSync(join(dir, 'one.csv'), 'x\n1\n2\n3\n4\n5\n');
    const one = run(['--data', 'one.csv', '--no-report']);
    expect(one.code).toBe(1);
    expect(one.err).toMatch(/one\.csv has 1 feature column; the demo needs at least 2/);
    expect(one.err).not.toMatch(/E_ARG|E_SHAPE/);
    const v = randn(40 * 6, 9);
    writeFileSync(join(dir, 'nodim.f32'), Buffer.from(v.buffer));
    const b = run(['--data', 'nodim.f32', '--no-report']);
    expect(b.code).toBe(1);
    expect(b.err).toMatch(/looks like a binary file, not a CSV; for raw little-endian float32 vectors pass --dim N/);
    expect(b.err).toMatch(/^[\x20-\x7e\n]*$/); // nothing binary reaches the terminal
    for (const [out, re] of [
      ['no/such/dir/r.html', /--out no\/such\/dir\/r\.html: cannot write there \(no directory/],
      ['.', /--out \.: is a directory/],
    ] as const) {
      const t0 = Date.now();
      const r = run(['--data', 'clusters.csv', '--out', out]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(re);
      expect(r.out).toBe(''); // refused before any work
      expect(Date.now() - t0).toBeLessThan(20_000);
    }
  }, 120_000);

  it('keeps log lines and the progress bar apart on a terminal', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { progress } = require('../examples/lib/progress.js');
    let written = '';
    const stream = {
      write: (t: string) => {
        written += t;
        return true;
      },
    };
    const bar = progress(true, stream, { minIntervalMs: 0 });
    const b = bar('audit', 3);
    for (let i = 0; i < 3; i++) {
      bar.print(`row ${i}`);
      b.tick();
    }
    b.stop();
    bar.print('after');
    // Replay on a tiny terminal: \r returns, ESC[2K clears the line, \n moves down.
    const screen = [''];
    let col = 0;
    for (let i = 0; i < written.length; i++) {
      if (written.startsWith('\x1b[2K', i)) {
        screen[screen.length - 1] = '';
        i += 3;
        continue;
      }
      const ch = written[i];
      if (ch === '\r') col = 0;
      else if (ch === '\n') {
        screen.push('');
        col = 0;
      } else {
        const l = screen[screen.length - 1];
        screen[screen.length - 1] = l.slice(0, col) + ch + l.slice(col + 1);
        col++;
      }
    }
    expect(screen).toEqual(['row 0', 'row 1', 'row 2', 'after', '']);
    expect(written).toMatch(/audit \[█+░*\] \d\/3/);
    // Disabled (not a terminal, or --quiet): plain lines, no bar.
    let plain = '';
    const off = progress(false, {
      write: (t: string) => {
        plain += t;
        return true;
      },
    });
    off('x', 5).tick();
    off.print('line');
    expect(plain).toBe('line\n');
  });

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
