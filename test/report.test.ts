import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';

const demo = join(__dirname, '..', 'examples', 'demo.js');
const dir = mkdtempSync(join(tmpdir(), 'densevec-report-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const WIDTH = 1200;
const HEIGHT = 2000;

/** The Chromium binary: $CHROMIUM, else the first of the usual names on PATH. */
function chromium(): string | null {
  const names = [process.env.CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome'].filter((n): n is string => Boolean(n));
  for (const n of names) {
    const r = spawnSync(n, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return n;
  }
  return null;
}

/**
 * The browser test runs where Chromium is installed; elsewhere it is skipped with a printed reason,
 * so `npm test` passes on a machine with only Rust, Node and a C++ compiler. CI installs Chromium
 * and sets DENSEVEC_REQUIRE_BROWSER=1, which makes a missing browser a failure.
 */
const BROWSER = chromium();
const REQUIRE_BROWSER = process.env.DENSEVEC_REQUIRE_BROWSER === '1';
if (BROWSER === null && !REQUIRE_BROWSER) {
  console.warn(
    'report.test: Chromium not found (apt-get install chromium, or set $CHROMIUM): the screenshot test is skipped; DENSEVEC_REQUIRE_BROWSER=1 makes it mandatory',
  );
}

interface Png {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  rows: Uint8Array[];
}

/** Decodes an 8-bit non-interlaced PNG (RGB or RGBA): chunks, inflate, un-filter every row. */
function decodePng(buf: Buffer): Png {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (!buf.subarray(0, 8).equals(sig)) throw new Error('not a PNG signature');
  let off = 8;
  let ihdr: Buffer | null = null;
  const idat: Buffer[] = [];
  while (off + 8 <= buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') ihdr = data;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  if (!ihdr) throw new Error('no IHDR chunk');
  const width = ihdr.readUInt32BE(0);
  const height = ihdr.readUInt32BE(4);
  const bitDepth = ihdr[8];
  const colorType = ihdr[9];
  if (bitDepth !== 8 || (colorType !== 2 && colorType !== 6) || ihdr[12] !== 0)
    throw new Error(`unsupported PNG: depth ${bitDepth}, colour type ${colorType}, interlace ${ihdr[12]}`);
  const bpp = colorType === 6 ? 4 : 3;
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  if (raw.length !== height * (stride + 1)) throw new Error(`pixel data is ${raw.length} bytes, expected ${height * (stride + 1)}`);
  const rows: Uint8Array[] = [];
  let prev = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const cur = new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? cur[i - bpp] : 0;
      const b = prev[i];
      const c = i >= bpp ? prev[i - bpp] : 0;
      let p: number;
      if (f === 0) p = 0;
      else if (f === 1) p = a;
      else if (f === 2) p = b;
      else if (f === 3) p = (a + b) >> 1;
      else if (f === 4) {
        const q = a + b - c;
        const pa = Math.abs(q - a);
        const pb = Math.abs(q - b);
        const pc = Math.abs(q - c);
        p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else throw new Error(`bad filter type ${f} in row ${y}`);
      cur[i] = (src[i] + p) & 0xff;
    }
    rows.push(cur);
    prev = cur;
  }
  return { width, height, bitDepth, colorType, rows };
}

describe('HTML report of the demo', () => {
  const out = join(dir, 'report.html');
  let html = '';

  it('writes a self-contained page with the SVG plots', () => {
    const r = spawnSync(process.execPath, [demo, '--epochs', '2', '--out', out, '--quiet', '--seed', '5'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, DENSEVEC_THREADS: '2' },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`wrote ${out}`);
    expect(r.stdout).toMatch(/ntxent/);
    // --quiet prints no progress lines or bars.
    expect(r.stdout).not.toMatch(/^ {2}.*: \d+\/\d+$|\[[█░=-]+\]/m);
    html = readFileSync(out, 'utf8');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    // No external assets: nothing is fetched.
    expect(html).not.toMatch(/<script|<link|<img|src=|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    const ids = [
      'cosine-hist-input',
      'loss-ntxent',
      'loss-arcface',
      'loss-cosface',
      'cosine-hist-embedding',
      'knn-bars',
      'projection-standardizedinput',
      'projection-ntxent',
      'projection-arcface',
      'projection-cosface',
    ];
    for (const id of ids) {
      const m = new RegExp(`<figure id="${id}"><svg [^>]*>([\\s\\S]*?)</svg></figure>`).exec(html);
      expect(m, id).not.toBeNull();
    }
    const fig = (id: string) => new RegExp(`<figure id="${id}">([\\s\\S]*?)</figure>`).exec(html)![1];
    // Loss curves: a path with one point per step (2 epochs of 1348 rows in batches of 256 = 11 steps).
    const loss = fig('loss-ntxent');
    const d = /<path d="([^"]+)"/.exec(loss)![1];
    expect(d.match(/[ML]/g)!.length).toBe(11);
    // Histogram of the learned embedding against the null in d = 32.
    expect(fig('cosine-hist-embedding')).toContain('null, d = 32');
    expect(fig('cosine-hist-input')).toContain('null, d = 64');
    // One bar per stage: raw, standardized and the three heads.
    expect(fig('knn-bars').match(/<rect class="bar"/g)!.length).toBe(5);
    // 2-D projection: one dot per test row (449), ten colours.
    const proj = fig('projection-ntxent');
    expect(proj.match(/<circle /g)!.length).toBe(449);
    expect(new Set(proj.match(/fill="#[0-9a-f]{6}" fill-opacity/g)).size).toBe(10);
  }, 120_000);

  it.skipIf(BROWSER === null && !REQUIRE_BROWSER)(
    'renders in headless Chromium to a non-blank screenshot',
    () => {
      expect(html, 'the report was not written').not.toBe('');
      const bin = BROWSER;
      if (bin === null) {
        throw new Error('Chromium is needed to render the report (apt-get install chromium, or set $CHROMIUM to the browser binary)');
      }
      const png = join(dir, 'shot.png');
      const r = spawnSync(
        bin,
        [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--hide-scrollbars',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          `--user-data-dir=${join(dir, 'profile')}`,
          `--screenshot=${png}`,
          `--window-size=${WIDTH},${HEIGHT}`,
          `file://${out}`,
        ],
        { encoding: 'utf8', timeout: 90_000 },
      );
      expect(existsSync(png), `chromium wrote no screenshot (exit ${r.status}): ${r.stderr}`).toBe(true);
      const img = decodePng(readFileSync(png));
      expect([img.width, img.height]).toEqual([WIDTH, HEIGHT]);
      // Not one colour: count distinct pixel values and non-white pixels.
      const bpp = img.colorType === 6 ? 4 : 3;
      const colours = new Set<number>();
      let ink = 0;
      for (const row of img.rows) {
        for (let i = 0; i < row.length; i += bpp) {
          colours.add((row[i] << 16) | (row[i + 1] << 8) | row[i + 2]);
          if (row[i] < 200 || row[i + 1] < 200 || row[i + 2] < 200) ink++;
        }
      }
      expect(colours.size).toBeGreaterThan(20);
      expect(ink / (WIDTH * HEIGHT)).toBeGreaterThan(0.01);
      // Coloured (not only grey) pixels: the plots' series are drawn.
      let coloured = 0;
      for (const row of img.rows) {
        for (let i = 0; i < row.length; i += bpp) if (Math.max(row[i], row[i + 1], row[i + 2]) - Math.min(row[i], row[i + 1], row[i + 2]) > 60) coloured++;
      }
      expect(coloured).toBeGreaterThan(1000);
    },
    120_000,
  );
});
