#!/usr/bin/env node
/**
 * densevec demo: a small embedding pipeline on real data, with numbers.
 *
 *   npm run demo                      # the shipped UCI handwritten digits (1,797 × 64, 10 classes)
 *   node examples/demo.js --data my.csv --seed 7
 *   node examples/demo.js --data vectors.f32 --dim 384
 *
 * Steps: load and standardize the data; report the backend; a seeded held-out split and the
 * kNN accuracy of the raw and standardized features; statistics of the pairwise cosines against
 * the null of random directions (z-score, exact p-values); exact top-k search and
 * near-duplicate detection over the corpus, with timings; learned heads (NT-Xent, ArcFace,
 * CosFace) and their audit. Writes an HTML report with SVG plots (densevec-report.html, --out,
 * --no-report). Everything but the timings is deterministic for a given --seed.
 */
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');
const { rowsOf } = require('./lib/audit.js');

const HELP = `Usage: node examples/demo.js [options]

Options:
  --data FILE      CSV (optionally .gz) with one row per item; a header line is skipped.
                   The label column (integers) is taken from --labels. Default: the shipped
                   UCI handwritten digits, examples/data/digits.csv.gz.
  --dim N          Read FILE as raw little-endian float32 values, N per row (no labels).
  --labels WHERE   Label column of a CSV: last, first or none (default: last for the shipped
                   data; for other files the last, else the first column if it holds small
                   non-negative integers with at least two rows per value, else none).
  --seed N         Seed of the split, the samples and the random baselines (default 42).
  --backend NAME   auto, native, reference or cuda (default auto: native when the addon loads).
  --epochs N       Training epochs (passes over the training rows) of each learned head
                   (default: 300 steps of the NT-Xent head, 200 of the ArcFace/CosFace heads).
  --out FILE       Where to write the HTML report with SVG plots (default
                   densevec-report.html in the current directory). --report [FILE] is an alias.
  --no-report      Do not write the HTML report.
  --quiet          Print only the summary (and no progress bars; these are also off when
                   stdout is not a terminal).
  --help           Show this help.
`;

class UsageError extends Error {}

/** Above these sizes the demo samples, so that large files still finish in about a minute. */
const MAX_EXACT = 6000; // rows for all-pairs statistics (else SAMPLE_PAIRS random pairs)
const SAMPLE_PAIRS = 2_000_000;
const MAX_TEST = 2000; // held-out queries
const MAX_QUERIES = 5000; // corpus rows used as search / near-duplicate queries

function parseArgs(argv) {
  const o = { data: null, dim: null, labels: null, seed: 42, backend: 'auto', quiet: false, help: false, report: 'densevec-report.html', epochs: null };
  const need = (i, flag) => {
    if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) throw new UsageError(`${flag} needs a value`);
    return argv[i + 1];
  };
  const int = (s, flag, min) => {
    if (!/^\d+$/.test(s)) throw new UsageError(`${flag} must be a non-negative integer, got '${s}'`);
    const v = Number(s);
    if (v < min || !Number.isSafeInteger(v)) throw new UsageError(`${flag} must be an integer >= ${min}, got ${s}`);
    return v;
  };
  const oneOf = (s, flag, names) => {
    if (!names.includes(s)) throw new UsageError(`${flag} must be ${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}, got '${s}'`);
    return s;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, null];
    const val = () => {
      if (inline !== null) return inline;
      const v = need(i, flag);
      i++;
      return v;
    };
    switch (flag) {
      case '--data':
        o.data = val();
        break;
      case '--dim':
        o.dim = int(val(), '--dim', 1);
        break;
      case '--labels':
        o.labels = oneOf(val(), '--labels', ['last', 'first', 'none']);
        break;
      case '--seed':
        o.seed = int(val(), '--seed', 0);
        break;
      case '--backend':
        o.backend = oneOf(val(), '--backend', ['auto', 'native', 'reference', 'cuda']);
        break;
      case '--report': {
        if (inline !== null) o.report = inline;
        else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) o.report = argv[++i];
        else o.report = 'densevec-report.html';
        if (o.report === '') throw new UsageError('--report needs a file name');
        break;
      }
      case '--out': {
        o.report = val();
        if (o.report === '') throw new UsageError('--out needs a file name');
        break;
      }
      case '--no-report':
        o.report = null;
        break;
      case '--epochs':
        o.epochs = int(val(), '--epochs', 1);
        break;
      case '--quiet':
        o.quiet = true;
        break;
      case '--help':
      case '-h':
        o.help = true;
        break;
      default:
        throw new UsageError(`unknown option '${a}' (see --help)`);
    }
  }
  if (o.dim !== null && o.labels !== null && o.labels !== 'none') throw new UsageError('--labels applies to CSV files only (raw float32 files have no labels)');
  return o;
}

// ------------------------------------------------------------------------------------------
// Loading
// ------------------------------------------------------------------------------------------

function readFile(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  if (file.endsWith('.gz')) {
    try {
      buf = zlib.gunzipSync(buf);
    } catch (e) {
      throw new UsageError(`${file} is not a valid gzip file: ${e.message}`);
    }
  }
  return buf;
}

/** Splits one CSV line on , ; or tab outside double quotes; "" inside quotes is a quote. */
function splitCsvLine(line) {
  const out = [];
  let cur = '';
  let quoted = false;
  let wasQuoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"' && cur.trim() === '') {
      quoted = true;
      wasQuoted = true;
      cur = '';
    } else if (ch === ',' || ch === ';' || ch === '\t') {
      out.push(wasQuoted ? cur : cur.trim());
      cur = '';
      wasQuoted = false;
    } else if (!(wasQuoted && /\s/.test(ch))) cur += ch;
  }
  out.push(wasQuoted ? cur : cur.trim());
  return out;
}

/** A field as shown in a message: quoted, control characters escaped, at most 40 characters. */
function shown(f) {
  const t = f.length > 40 ? `${f.slice(0, 40)}…` : f;
  return `'${JSON.stringify(t).slice(1, -1).replace(/\\"/g, '"')}'`;
}

const isNum = (f) => f !== '' && Number.isFinite(Number(f));

/** Parses a CSV into rows of fields (strings); a first line with a word where the data has numbers is a header. */
function parseCsv(text, file) {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new UsageError(`${file} is empty`);
  const first = splitCsvLine(lines[0]);
  let start = 0;
  if (lines.length === 1) {
    if (!first.some(isNum)) throw new UsageError(`${file} has a header but no data rows`);
  } else {
    const second = splitCsvLine(lines[1]);
    if (first.some((f, j) => !isNum(f) && isNum(second[j] ?? ''))) start = 1;
    else if (!first.some(isNum)) start = 1;
  }
  const rows = [];
  let width = -1;
  for (let li = start; li < lines.length; li++) {
    const f = splitCsvLine(lines[li]);
    if (width < 0) width = f.length;
    if (f.length !== width) throw new UsageError(`${file}:${li + 1}: ${f.length} columns, but the first data row has ${width}`);
    rows.push({ line: li + 1, f });
  }
  if (rows.length === 0) throw new UsageError(`${file} has a header but no data rows`);
  return rows;
}

function looksLikeLabels(rows, col) {
  const count = new Map();
  for (const r of rows) {
    const v = r[col];
    if (!Number.isInteger(v) || v < 0 || v > 65535) return false;
    count.set(v, (count.get(v) || 0) + 1);
  }
  if (count.size < 2 || count.size > Math.min(1000, rows.length / 2)) return false;
  for (const c of count.values()) if (c < 2) return false;
  return true;
}

/** True when the buffer does not look like text (NUL bytes or many control bytes at the start). */
function looksBinary(buf) {
  const n = Math.min(buf.length, 4096);
  let ctrl = 0;
  for (let i = 0; i < n; i++) {
    const b = buf[i];
    if (b === 0) return true;
    if (b < 32 && b !== 9 && b !== 10 && b !== 13) ctrl++;
  }
  return ctrl > n / 100;
}

/** Loads { x: Matrix, labels: Uint32Array | null, classes, name }. */
function load(opts) {
  const shipped = path.join(__dirname, 'data', 'digits.csv.gz');
  const file = opts.data ?? shipped;
  const buf = readFile(file);
  if (opts.dim !== null) {
    if (buf.length === 0) throw new UsageError(`${file} is empty`);
    if (opts.dim < 2) throw new UsageError(`--dim ${opts.dim}: the demo needs at least 2 values per row`);
    if (buf.length % (4 * opts.dim) !== 0) {
      throw new UsageError(
        `${file} has ${buf.length} bytes, not a multiple of 4 * dim = ${4 * opts.dim} (raw little-endian float32, --dim ${opts.dim} per row)`,
      );
    }
    const n = buf.length / (4 * opts.dim);
    const data = new Float32Array(n * opts.dim);
    for (let i = 0; i < data.length; i++) data[i] = buf.readFloatLE(4 * i);
    const bad = data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new UsageError(`${file}: value ${bad} (row ${Math.floor(bad / opts.dim)}) is ${data[bad]}`);
    return { x: { data, rows: n, cols: opts.dim }, labels: null, name: path.basename(file) };
  }
  if (looksBinary(buf) || /\.(f32|bin|fvecs|npy)$/i.test(file)) {
    throw new UsageError(`${file} looks like a binary file, not a CSV; for raw little-endian float32 vectors pass --dim N (values per row)`);
  }
  const rows = parseCsv(buf.toString('utf8'), file);
  const width = rows[0].f.length;
  // A label column of names (first or last column not numeric in some row).
  const wordy = (j) => rows.some((r) => !isNum(r.f[j]));
  let where = opts.labels;
  let names = null;
  if (where === null) {
    if (width > 1 && wordy(width - 1)) where = 'last';
    else if (width > 1 && wordy(0)) where = 'first';
  }
  const lcOf = (w) => (w === 'last' ? width - 1 : w === 'first' ? 0 : -1);
  if (where !== null && where !== 'none' && wordy(lcOf(where))) {
    const j = lcOf(where);
    names = [...new Set(rows.map((r) => r.f[j]))].sort();
  }
  // Numbers of every other column.
  const num = rows.map((r) =>
    r.f.map((f, j) => {
      if (names && j === lcOf(where)) return NaN;
      const v = f === '' ? NaN : Number(f);
      if (!Number.isFinite(v)) {
        const hint = (j === 0 || j === width - 1) && opts.labels === 'none' ? ' (is this a label column? drop --labels none)' : '';
        throw new UsageError(`${file}:${r.line}: column ${j + 1} is not a finite number: ${shown(f)}${hint}`);
      }
      return v;
    }),
  );
  if (where === null) {
    if (file === shipped || looksLikeLabels(num, width - 1)) where = 'last';
    else if (width > 1 && looksLikeLabels(num, 0)) where = 'first';
    else where = 'none';
  }
  const lc = lcOf(where);
  if (lc >= 0 && width < 2) throw new UsageError(`${file} has one column; nothing is left for features after the label`);
  const cols = lc >= 0 ? width - 1 : width;
  if (cols < 2)
    throw new UsageError(
      `${file} has ${cols} feature column; the demo needs at least 2 (one row per item, one column per feature${lc >= 0 ? ', plus the label' : ''})`,
    );
  const labels = lc >= 0 ? new Uint32Array(rows.length) : null;
  if (lc >= 0) {
    rows.forEach((r, i) => {
      if (names) labels[i] = names.indexOf(r.f[lc]);
      else {
        const v = num[i][lc];
        if (!Number.isInteger(v) || v < 0) {
          throw new UsageError(`${file}:${r.line}: the label ${shown(r.f[lc])} is not a non-negative integer (labels are integers 0, 1, 2, … or class names)`);
        }
        labels[i] = v;
      }
    });
  }
  const data = new Float32Array(rows.length * cols);
  num.forEach((r, i) => {
    let k = 0;
    for (let j = 0; j < width; j++) if (j !== lc) data[i * cols + k++] = r[j];
  });
  return { x: { data, rows: rows.length, cols }, labels, name: path.basename(file), labelColumn: where, labelNames: names, shipped: file === shipped };
}

/** Column-wise z-scores (a constant column becomes 0); the Matrix carries `mu` and `sd`. */
function standardize(m) {
  const { rows: n, cols: d } = m;
  const out = new Float32Array(n * d);
  const mus = new Float64Array(d);
  const sds = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += m.data[i * d + j];
    const mu = s / n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (m.data[i * d + j] - mu) ** 2;
    const sd = Math.sqrt(v / n);
    mus[j] = mu;
    sds[j] = sd;
    for (let i = 0; i < n; i++) out[i * d + j] = sd > 0 ? (m.data[i * d + j] - mu) / sd : 0;
  }
  return { data: out, rows: n, cols: d, mu: mus, sd: sds };
}

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

function timed(f) {
  const t = process.hrtime.bigint();
  const r = f();
  return [r, Number(process.hrtime.bigint() - t) / 1e6];
}

function ms(t) {
  return t < 10 ? `${t.toFixed(2)} ms` : t < 1000 ? `${t.toFixed(1)} ms` : `${(t / 1000).toFixed(2)} s`;
}

function fmtP(p) {
  if (p === 0) return '< 1e-308';
  if (p < 1e-3) return p.toExponential(2);
  return p.toFixed(4);
}

/** Density of the cosine between independent uniform unit vectors in R^d (d ≥ 2). */
function nullDensity(ref, c, d) {
  if (Math.abs(c) >= 1) return d === 2 ? Infinity : d === 3 ? 0.5 : 0;
  const a = (d - 1) / 2;
  const lnB = ref.lnGamma(0.5) + ref.lnGamma(a) - ref.lnGamma(a + 0.5);
  return Math.exp(((d - 3) / 2) * Math.log1p(-c * c) - lnB);
}

/** The cosine s with P(cos ≥ s) = alpha in dimension d (bisection on the exact p-value). */
function threshold(dv, alpha, d) {
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (dv.cosinePValue(mid, d) > alpha) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Seeded Fisher–Yates permutation of 0..n-1 with the documented PRNG. */
function permutation(ref, n, seed) {
  const rng = new ref.SplitMix64(seed);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(rng.uniform() * (i + 1)));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

function accuracy(pred, truth) {
  let c = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === truth[i]) c++;
  return c / pred.length;
}

// ------------------------------------------------------------------------------------------
// Learned embeddings
// ------------------------------------------------------------------------------------------

const LEARNING_FUNCTIONS = [
  'matmul',
  'ntXent',
  'wassersteinRegularizer',
  'normPenalty',
  'temperatureSchedule',
  'mismatchScore',
  'marginSoftmax',
  'knnClassify',
  'randomOrthogonal',
  'procrustes',
  'BatchNorm',
  'embeddingDrift',
  'sparsity',
  'mapDistortion',
  'hyperbolicity',
  'triangleCurvature',
  'analogy',
];

/** Training settings of the heads (small enough for a minute on two cores). */
const TRAIN = {
  // τ is learned (Adam on log τ, from tauStart, within [tauMin, 1]); tauEnd is the cosine
  // schedule drawn next to it for reference.
  contrastive: {
    dim: 32,
    batch: 256,
    steps: 300,
    lr: 0.01,
    tauStart: 0.5,
    tauEnd: 0.1,
    learnTemperature: true,
    tauLr: 0.02,
    tauMin: 0.02,
    mu: 1,
    lambda: 1e-4,
  },
  margin: { dim: 32, batch: 256, steps: 200, lr: 0.01, scale: 16, margin: { arcface: 0.3, cosface: 0.25 }, labelSmoothing: 0.1, lambda: 1e-4, batchNorm: true },
};

function mean(a) {
  return a.reduce((s, v) => s + v, 0) / a.length;
}

function learning(dv, ref, c) {
  const { raw, x, labels, trainIdx, testIdx, seed, say, summary, rep, plots, bar, epochs, knnStages } = c;
  const curves = [];
  const auditRows = [];
  const regularizers = [];
  const missing = LEARNING_FUNCTIONS.filter((f) => typeof dv[f] !== 'function');
  say();
  if (missing.length > 0) {
    say(`Learned embeddings: skipped (this build of densevec lacks ${missing.join(', ')})`);
    return;
  }
  if (raw.cols < 3 || trainIdx.length < 8 || testIdx.length < 3) {
    say('Learned embeddings: skipped (needs at least 3 features, 8 training and 3 test rows)');
    return;
  }
  const { trainContrastive, trainMargin, augmenter } = require('./lib/learn.js');
  const { audit, alignment, analogyTransfer } = require('./lib/audit.js');
  const side = Math.round(Math.sqrt(raw.cols));
  let minV = Infinity;
  let maxV = -Infinity;
  for (const v of raw.data) {
    minV = Math.min(minV, v);
    maxV = Math.max(maxV, v);
  }
  const image = c.shipped || (side * side === raw.cols && side >= 4 && minV >= 0);
  // Class indices 0..C−1 (margin heads index prototypes by label).
  const classList = labels ? [...new Set(labels)].sort((a, b) => a - b) : [];
  const y = labels ? Uint32Array.from(labels, (l) => classList.indexOf(l)) : null;
  const task = {
    raw,
    mu: x.mu,
    sd: x.sd,
    trainIdx,
    y,
    classes: classList.length,
    // Views for the contrastive head: feature dropout, Gaussian noise and (images) shifts.
    augment: { imageSide: image ? side : 0, noise: 0.5, dropout: 0.2, shift: 0.2 },
    // Lighter for the supervised heads: a linear map cannot absorb shifts.
    augmentMargin: { noise: 0.3, dropout: 0.1, shift: 0 },
  };
  // A head is W (d × h), or { W, bn } for a margin head with its trained batch norm (inference mode).
  const embed = (rowsIdx, head) => {
    const z = dv.matmul(subsetRows(x, rowsIdx), head.W ?? head);
    return head.bn ? head.bn.forward(z, { training: false }) : z;
  };
  const train = (head) => embed(trainIdx, head);
  const test = (head) => embed(testIdx, head);
  const yTrain = y ? Uint32Array.from(trainIdx, (i) => y[i]) : null;
  const yTest = y ? Uint32Array.from(testIdx, (i) => y[i]) : null;
  // Heads map to min(32, d) dimensions.
  const o = { ...TRAIN.contrastive, dim: Math.min(TRAIN.contrastive.dim, raw.cols) };
  const mo = { ...TRAIN.margin, dim: o.dim };
  // --epochs N: N passes over the training rows, in batches of min(batch, rows).
  const stepsFor = (batch) => Math.max(1, Math.ceil((epochs * trainIdx.length) / Math.min(batch, trainIdx.length)));
  if (epochs !== null) {
    o.steps = stepsFor(o.batch);
    mo.steps = stepsFor(mo.batch);
  }
  const epochsOf = (steps, batch) => ((steps * Math.min(batch, trainIdx.length)) / trainIdx.length).toFixed(epochs !== null ? 0 : 1);
  // Training with a progress bar (terminal only).
  const withBar = (label, steps, f) => {
    const b = bar(label, steps);
    try {
      return f(() => b.tick());
    } finally {
      b.stop();
    }
  };

  say(
    `Learned embeddings (linear heads ${raw.cols} → ${o.dim}, Adam; contrastive views: ${image ? `a one-pixel shift of the ${side}×${side} image with probability 0.2, ` : ''}` +
      '20% feature dropout and Gaussian noise of 0.5 standard deviations):',
  );
  const [h1, t1] = timed(() => withBar('NT-Xent head', o.steps, (tick) => trainContrastive(dv, ref, task, seed, { ...o, onStep: tick })));
  const first = h1.history.slice(0, 10);
  const last = h1.history.slice(-10);
  const tauLast = h1.history[h1.history.length - 1].tau;
  say(
    `  NT-Xent head, ${o.steps} steps of ${Math.min(o.batch, trainIdx.length)} pairs (${epochsOf(o.steps, o.batch)} epochs), ` +
      (o.learnTemperature ? `τ learned ${o.tauStart} → ${tauLast.toFixed(3)} (Adam on log τ), ` : `τ ${o.tauStart} → ${o.tauEnd} (cosine schedule), `) +
      `Wasserstein weight ${o.mu}, L2 ${o.lambda}: ${ms(t1)}`,
  );
  if (h1.history[0].entropy !== undefined) {
    const fl = (k, n) => `${mean(first.map((h) => h[k])).toFixed(n)} → ${mean(last.map((h) => h[k])).toFixed(n)}`;
    say(
      `    softmax over the 2N − 1 candidates: entropy ${fl('entropy', 2)} nats, p(partner) ${fl('positiveProbability', 3)}, ` +
        `largest negative p ${fl('maxNegativeProbability', 3)}, effective negatives ${fl('effectiveNegatives', 1)}`,
    );
  }
  say(
    `    NT-Xent ${mean(first.map((h) => h.ntxent)).toFixed(3)} → ${mean(last.map((h) => h.ntxent)).toFixed(3)} (means of the first and last 10 steps)` +
      `   Wasserstein ${mean(first.map((h) => h.wasserstein)).toExponential(2)} → ${mean(last.map((h) => h.wasserstein)).toExponential(2)}` +
      `   penalty ${last[last.length - 1].penalty.toExponential(2)}`,
  );
  // Alignment of two augmented views of the test rows: matched vs unmatched cosines.
  const vrng = new ref.SplitMix64(seed + 99);
  const view = augmenter(raw, x.mu, x.sd, vrng, task.augment);
  const va = view(testIdx);
  const vb = view(testIdx);
  const init = dv.randomUnitVectors(o.dim, raw.cols, seed);
  const W0 = { data: new Float32Array(raw.cols * o.dim), rows: raw.cols, cols: o.dim };
  for (let i = 0; i < o.dim; i++) for (let j = 0; j < raw.cols; j++) W0.data[j * o.dim + i] = init.data[i * raw.cols + j];
  const m0 = dv.mismatchScore(dv.matmul(va, W0), dv.matmul(vb, W0));
  const m1 = dv.mismatchScore(dv.matmul(va, h1.W), dv.matmul(vb, h1.W));
  say(
    `    two views of the test rows: matched − unmatched mean cosine M = ${m0.M.toFixed(3)} at init → ${m1.M.toFixed(3)} trained ` +
      `(matched ${m1.muP.toFixed(3)}, unmatched ${m1.muQ.toFixed(3)})`,
  );
  curves.push({ name: 'NT-Xent', xs: h1.history.map((h) => h.step), ys: h1.history.map((h) => h.ntxent) });
  regularizers.push({ name: `NT-Xent: Wasserstein × ${o.mu}`, xs: h1.history.map((h) => h.step), ys: h1.history.map((h) => o.mu * h.wasserstein) });
  regularizers.push({ name: 'NT-Xent: L2 penalty', xs: h1.history.map((h) => h.step), ys: h1.history.map((h) => h.penalty), dash: true });
  summary.push(`ntxent ${mean(first.map((h) => h.ntxent)).toFixed(3)}->${mean(last.map((h) => h.ntxent)).toFixed(3)} M=${m1.M.toFixed(3)}`);

  const heads = [
    ['standardized input', null],
    ['NT-Xent head', h1.W],
  ];
  const geometry = [];
  if (y) {
    for (const kind of ['arcface', 'cosface']) {
      const [h, t] = timed(() =>
        withBar(kind === 'arcface' ? 'ArcFace head' : 'CosFace head', mo.steps, (tick) => trainMargin(dv, ref, task, kind, seed, { ...mo, onStep: tick })),
      );
      const proto = dv.topK(test(h), h.P, 1, { metric: 'cosine' }).indices;
      let hit = 0;
      for (let i = 0; i < proto.length; i++) if (proto[i] === yTest[i]) hit++;
      const f = h.history.slice(0, 10);
      const l = h.history.slice(-10);
      say(
        `  ${kind === 'arcface' ? 'ArcFace' : 'CosFace'} head, ${mo.steps} steps (${epochsOf(mo.steps, mo.batch)} epochs)${mo.batchNorm ? ', affine BatchNorm trained with it' : ''}, s = ${mo.scale}, m = ${mo.margin[kind]}, label smoothing ${mo.labelSmoothing}: ` +
          `loss ${mean(f.map((q) => q.loss)).toFixed(3)} → ${mean(l.map((q) => q.loss)).toFixed(3)} (means of the first and last 10 steps), ` +
          `nearest-prototype test accuracy ${((100 * hit) / proto.length).toFixed(1)}% (${ms(t)})`,
      );
      summary.push(`${kind} prototype-accuracy ${((100 * hit) / proto.length).toFixed(1)}%`);
      heads.push([kind === 'arcface' ? 'ArcFace head' : 'CosFace head', h]);
      if (typeof dv.marginGeometry === 'function' && h.P.rows >= 2) {
        // Realised angular gap between each pair of learned prototypes' decision boundaries.
        const g = dv.marginGeometry(h.P, { kind, margin: mo.margin[kind] });
        const points = [];
        let unmet = 0;
        for (let i = 0; i < h.P.rows; i++) {
          for (let j = i + 1; j < h.P.rows; j++) {
            const gap = g.gaps.data[i * h.P.rows + j];
            if (Number.isNaN(gap)) unmet++;
            else points.push({ x: g.angles.data[i * h.P.rows + j], y: gap });
          }
        }
        geometry.push({ name: kind === 'arcface' ? `ArcFace (m = ${mo.margin[kind]} rad)` : `CosFace (m = ${mo.margin[kind]} in cosine)`, points });
        const gaps = points.map((p) => p.y).sort((a, b) => a - b);
        say(
          `    margin geometry of the ${h.P.rows} prototypes: realised angular gap ` +
            (gaps.length ? `${gaps[0].toFixed(3)}–${gaps[gaps.length - 1].toFixed(3)} rad` : 'none') +
            `${unmet ? `, ${unmet} pair(s) too close for the margin` : ''}`,
        );
      }
      curves.push({ name: kind === 'arcface' ? 'ArcFace' : 'CosFace', xs: h.history.map((q) => q.step), ys: h.history.map((q) => q.loss) });
      regularizers.push({
        name: `${kind === 'arcface' ? 'ArcFace' : 'CosFace'}: L2 penalty`,
        xs: h.history.map((q) => q.step),
        ys: h.history.map((q) => q.penalty),
        dash: true,
      });
    }
  }

  // Audit table.
  say();
  say(
    'Audit (test rows; kNN k = 5 cosine; rot: a randomOrthogonal map; aniso: a random map U·diag(e^N(0,1))·V; ' +
      'kept: fraction of the 10 cosine neighbours kept (mapDistortion); BN: train- vs eval-mode BatchNorm; ' +
      'sparsity of unit rows, |x| ≤ 0.01; rel δ: hyperbolicity 2δ/diameter of the angular 10-NN graph (0 = a tree); ' +
      'tri: median triangle-comparison ratio on that graph (> 1 positively curved)):',
  );
  const cols = [
    'embedding',
    'dim',
    'kNN',
    'mean cos',
    'z',
    'var/null',
    'rot ΔkNN',
    'rot kept',
    'aniso ΔkNN',
    'aniso kept',
    'BN cos',
    'Hoyer',
    '|x|≤.01',
    'rel δ',
    'tri',
  ];
  const widths = [19, 4, 6, 8, 8, 8, 8, 8, 10, 10, 7, 6, 7, 6, 6];
  const line = (vals) => `  ${vals.map((v, i) => String(v).padStart(widths[i])).join(' ')}`;
  const pct = (v) => (v === undefined ? '–' : `${(100 * v).toFixed(1)}%`);
  const fx = (v, n) => (v === undefined || Number.isNaN(v) ? '–' : v.toFixed(n));
  const dKnn = (v, base) => (v === undefined || base === undefined ? '–' : `${(100 * (v - base)).toFixed(1)}`);
  // Audit rows are computed under the progress bar and printed after it, as one table.
  const auditBar = bar('audit', heads.length);
  const embeddings = [];
  const results = [];
  for (const [name, W] of heads) {
    const zTr = W ? train(W) : subsetRows(x, trainIdx);
    const zTe = W ? test(W) : subsetRows(x, testIdx);
    const [a, t] = timed(() => audit(dv, ref, zTr, zTe, yTrain, yTest, seed));
    auditBar.tick();
    embeddings.push({ name, z: zTe, audit: a });
    results.push([name, zTe, a, t]);
  }
  auditBar.stop();
  say(line(cols));
  for (const [name, zTe, a, t] of results) {
    if (a.knn !== undefined && name !== 'standardized input') knnStages.push({ name, value: a.knn });
    // The columns the console table and the report's first table both start with.
    const lead = [name, zTe.cols, pct(a.knn), fx(a.meanCos, 4), fx(a.zScore, 1), fx(a.varRatio, 2)];
    say(
      `${line([
        ...lead,
        dKnn(a.rotKnn, a.knn),
        fx(a.orthKept, 3),
        dKnn(a.anisoKnn, a.knn),
        fx(a.anisoKept, 3),
        fx(a.bnDriftCos, 3),
        fx(a.hoyer, 3),
        pct(a.nearZero),
        fx(a.relDelta, 3),
        fx(a.triRatio, 3),
      ])}  (${ms(t)})`,
    );
    auditRows.push([
      [
        ...lead,
        a.rotKnn === undefined ? '–' : pct(a.rotKnn),
        a.rotRecovered.toExponential(1),
        fx(a.orthKept, 3),
        a.anisoCond === undefined ? '–' : a.anisoCond.toFixed(1),
        fx(a.anisoKept, 3),
        a.anisoKnn === undefined ? '–' : pct(a.anisoKnn),
      ],
      [
        name,
        fx(a.bnDriftCos, 4),
        fx(a.bnDriftL2, 3),
        fx(a.hoyer, 3),
        pct(a.nearZero),
        fx(a.relDelta, 3),
        a.hypSkipped ?? '–',
        fx(a.triRatio, 3),
        fx(a.triPositive, 2),
      ],
    ]);
    summary.push(
      `audit ${name}: knn=${pct(a.knn)} meancos=${fx(a.meanCos, 4)} aniso-kept=${fx(a.anisoKept, 3)} reldelta=${fx(a.relDelta, 3)} tri=${fx(a.triRatio, 3)}`,
    );
  }
  const an = embeddings.find((e) => e.name !== 'standardized input')?.audit;
  if (an && an.anisoCond !== undefined) {
    say(`  the anisotropic map has condition number ${an.anisoCond.toFixed(1)} (${o.dim} dimensions); a rotation keeps every neighbour, it does not`);
  }
  // Analogies between classes: medoid(A) : medoid(B) :: x of class A : ? (3CosAdd).
  let analogies = null;
  if (y) {
    analogies = [];
    for (const e of embeddings) {
      const r = analogyTransfer(dv, ref, e.z, yTest, 200, seed + 13);
      if (r) analogies.push([e.name, r]);
    }
    if (analogies.length > 0) {
      say(
        `  analogy (3CosAdd) "medoid of class A : medoid of class B :: a test row of class A : ?" answered with a row of class B, ` +
          `${analogies[0][1].count} seeded triples: ${analogies.map(([n0, r]) => `${n0} ${pct(r.accuracy)}`).join(', ')} (chance ≈ ${pct(analogies[0][1].chance)})`,
      );
      summary.push(`analogy ${analogies.map(([n0, r]) => `${n0.replace(/ head$/, '').replace(/ input$/, '')}=${pct(r.accuracy)}`).join(' ')}`);
    }
  }

  // Two seeds give different maps; Procrustes finds how far they are from a rotation of each other.
  const [h2, t2] = timed(() => withBar(`NT-Xent head, seed ${seed + 1}`, o.steps, (tick) => trainContrastive(dv, ref, task, seed + 1, { ...o, onStep: tick })));
  const al = alignment(dv, test(h1.W), test(h2.W));
  let agree = '';
  if (y) {
    const p1 = dv.knnClassify(train(h1.W), yTrain, test(h1.W), 5, { metric: 'cosine' });
    const p2 = dv.knnClassify(train(h2.W), yTrain, test(h2.W), 5, { metric: 'cosine' });
    let same = 0;
    for (let i = 0; i < p1.length; i++) if (p1[i] === p2[i]) same++;
    agree = `; kNN predictions agree on ${((100 * same) / p1.length).toFixed(1)}% of test rows`;
  }
  say(
    `  Procrustes between NT-Xent heads of seeds ${seed} and ${seed + 1} (unit rows): relative residual ${al.before.toFixed(3)} → ${al.after.toFixed(3)} after the best rotation${agree} (${ms(t2)})`,
  );
  summary.push(`procrustes seeds ${al.before.toFixed(3)}->${al.after.toFixed(3)}`);

  if (rep) {
    rep.heading('Learned embeddings');
    rep.text(
      `Linear heads ${raw.cols} → ${o.dim} trained with densevec's losses and gradients (Adam in JavaScript). ` +
        'Training loss per step of each head (NT-Xent; ArcFace and CosFace with label smoothing), ' +
        'with its moving average over 10 steps (dashed): the numbers printed in the log are the means of the first and of the last 10 steps, ' +
        'so they sit on the dashed line, not on the first noisy step. The regularizers are orders of magnitude smaller than the losses, ' +
        'so they have their own plot on a log scale (on the loss axis they would be a flat line at 0). ' +
        (o.learnTemperature
          ? "The temperature is learned from ntXent's ∂L/∂τ (the cosine schedule dashed for reference); the softmax diagnostics per step " +
            '(entropy, effective number of negatives, probability of the partner view and of the hardest negative) and the realised angular gap between ' +
            "the ArcFace and CosFace prototypes' decision boundaries against the angle between them (constant m for ArcFace, " +
            '2·asin(m / (2 sin(Δ/2))) for CosFace) have their own plots.'
          : ''),
    );
    const tau = dv.temperatureSchedule({ start: o.tauStart, end: o.tauEnd, steps: o.steps, kind: 'cosine' });
    const movingMean = (ys, w) => ys.map((_, i) => mean(ys.slice(Math.max(0, i - w + 1), i + 1)));
    const figs = curves.map((cv) => ({
      id: `loss-${cv.name.toLowerCase().replace(/[^a-z]/g, '')}`,
      svg: plots.linePlot(
        [
          { name: `${cv.name} loss per step`, xs: cv.xs, ys: cv.ys },
          { name: 'mean of the last 10 steps', xs: cv.xs, ys: movingMean(cv.ys, 10), dash: true, color: '#222' },
        ],
        { title: `Training loss, ${cv.name} head`, xLabel: `step (${cv.xs.length} steps)`, yLabel: 'loss' },
      ),
    }));
    figs.push({
      id: 'regularizers',
      svg: plots.linePlot(
        regularizers.filter((r0) => r0.ys.some((v) => v > 0)),
        { title: 'Regularizer terms (log scale)', xLabel: 'step', yLabel: 'value', logY: true },
      ),
    });
    const tauSeries = o.learnTemperature
      ? [
          { name: 'τ learned (from ∂L/∂τ)', xs: h1.history.map((h) => h.step), ys: h1.history.map((h) => h.tau) },
          { name: 'cosine schedule, for reference', xs: h1.history.map((h) => h.step), ys: h1.history.map((h) => tau(h.step)), dash: true },
        ]
      : [{ name: 'τ (cosine schedule)', xs: h1.history.map((h) => h.step), ys: h1.history.map((h) => tau(h.step)) }];
    figs.push({ id: 'temperature', svg: plots.linePlot(tauSeries, { title: 'Temperature', xLabel: 'step', yLabel: 'τ' }) });
    if (h1.history[0].entropy !== undefined) {
      const xs = h1.history.map((h) => h.step);
      figs.push({
        id: 'diagnostics',
        svg: plots.linePlot(
          [
            { name: 'entropy of p(·|anchor) (nats)', xs, ys: h1.history.map((h) => h.entropy) },
            { name: 'log effective negatives', xs, ys: h1.history.map((h) => Math.log(h.effectiveNegatives)), dash: true },
            { name: 'p(partner)', xs, ys: h1.history.map((h) => h.positiveProbability) },
            { name: 'largest negative p', xs, ys: h1.history.map((h) => h.maxNegativeProbability), dash: true },
          ],
          { title: 'NT-Xent softmax diagnostics per step', xLabel: 'step', yLabel: 'value' },
        ),
      });
    }
    if (geometry.length) {
      figs.push({
        id: 'margin-geometry',
        svg: plots.scatterPlot(geometry, {
          title: "Realised angular gap between prototypes' decision boundaries",
          xLabel: 'angle Δ between prototypes (radians)',
          yLabel: 'gap (radians)',
        }),
      });
    }
    rep.figures(figs);

    // Intrinsic curvature: triangle-comparison ratios of each embedding.
    const withRatios = embeddings.filter((e) => e.audit.triRatios && e.audit.triRatios.length > 0);
    if (withRatios.length > 0) {
      // The 2 %–98 % range of all ratios (the tail of nearly degenerate triangles would squeeze the rest).
      const all = withRatios.flatMap((e) => e.audit.triRatios).sort((p0, q0) => p0 - q0);
      const lo = Math.min(0.98, all[Math.floor(0.02 * (all.length - 1))]);
      const hi = Math.max(1.02, all[Math.ceil(0.98 * (all.length - 1))]);
      rep.heading('Intrinsic curvature of each embedding');
      rep.text(
        `Measured along the data, not on the ambient sphere: geodesic distances on the angular ${withRatios[0].audit.graphK}-nearest-neighbour graph ` +
          'of the test rows (graphGeodesics). Left: per random geodesic triangle, the distance from a vertex to the midpoint of the opposite side ' +
          'over the same distance in the flat triangle with the same sides (triangleCurvature): 1 is flat, above 1 positively curved (like a sphere), ' +
          'below 1 negatively curved (like a tree). Graph paths zigzag, which biases short triangles; compare embeddings with each other. ' +
          'Right: Gromov hyperbolicity relative to the diameter, 2δ/diameter over 1000 sampled quadruples (hyperbolicity): 0 for a tree metric; ' +
          'triangles or quadruples that straddle disconnected parts of the graph (well-separated classes) are skipped.',
      );
      rep.figures([
        {
          id: 'triangle-ratios',
          svg: plots.linePlot(
            withRatios.map((e) => plots.densitySeries(`${e.name} (median ${e.audit.triRatio.toFixed(3)})`, e.audit.triRatios, lo, hi, 40)),
            {
              title: 'Triangle comparison ratios (2–98 % range)',
              xLabel: 'graph distance / flat comparison distance',
              yLabel: 'density',
              xDomain: [lo, hi],
              vlines: [{ x: 1, name: 'flat' }],
            },
          ),
        },
        {
          id: 'hyperbolicity',
          svg: plots.barPlot(
            embeddings.filter((e) => e.audit.relDelta !== undefined).map((e) => ({ name: e.name.replace(/ head$/, ''), value: e.audit.relDelta })),
            { title: 'Relative hyperbolicity 2δ / diameter', yLabel: '2δ / diameter', yDomain: [0, 1], format: (v) => v.toFixed(3) },
          ),
        },
      ]);
    }

    // Cosines of the learned embeddings against the null in their dimension.
    const pick = Array.from({ length: Math.min(600, testIdx.length) }, (_, i) => i);
    const upper = (m) => {
      const mm = subsetRows(m, pick);
      const sm = dv.similarityMatrix(mm, mm);
      const out = [];
      for (let i = 0; i < mm.rows; i++) for (let j = i + 1; j < mm.rows; j++) out.push(sm.data[i * mm.rows + j]);
      return out;
    };
    const grid = Array.from({ length: 401 }, (_, i) => -1 + i / 200);
    const learned = embeddings.filter((e) => e.name !== 'standardized input');
    rep.heading('Pairwise cosines of the learned embeddings');
    rep.text(
      `Density of the pairwise cosines of ${pick.length} test rows in each ${o.dim}-dimensional embedding, against the ` +
        `null density of the cosine between independent uniform directions in d = ${o.dim}, f(s) ∝ (1 − s²)^((d − 3)/2). ` +
        'Mass far to the right of the null comes from rows of one class; the heads spread the classes apart.',
    );
    rep.figures([
      {
        id: 'cosine-hist-embedding',
        svg: plots.linePlot(
          [
            ...learned.map((e) => plots.densitySeries(e.name, upper(e.z), -1, 1, 100)),
            { name: `null, d = ${o.dim}`, xs: grid, ys: grid.map((s0) => c.nullDensity(s0, o.dim)), dash: true, color: '#444' },
          ],
          { title: `Pairwise cosines, learned embeddings (d = ${o.dim})`, xLabel: 'cosine', yLabel: 'density', xDomain: [-1, 1], legend: 'left' },
        ),
      },
    ]);

    // 2-D projections: the top two principal directions of each embedding's unit test rows.
    rep.heading('2-D projections of the test embeddings');
    rep.text(
      'Each point is a test row (unit-normalized), projected on the top two principal directions of that ' +
        'embedding (power iteration with deflation on the covariance), coloured by class.',
    );
    const classes = y ? [...new Set(yTest)].sort((a, b) => a - b) : [0];
    if (y)
      rep.html(
        `<p>${classes.map((cl, k) => `<span style="color:${plots.COLORS[k % plots.COLORS.length]}">● class ${classList[cl]}</span>`).join(' &nbsp; ')}</p>`,
      );
    rep.figures(
      embeddings.map((e) => {
        const p2 = c.project2(dv.normalizeRows(e.z), seed);
        return {
          id: `projection-${e.name
            .toLowerCase()
            .replace(/[^a-z]/g, '')
            .replace(/head$/, '')}`,
          svg: plots.scatterPlot(
            classes.map((cl) => ({
              name: y ? `class ${classList[cl]}` : 'rows',
              points: p2.filter((_, i) => !y || yTest[i] === cl),
            })),
            { title: `${e.name}: top-2 principal directions`, xLabel: 'PC 1', yLabel: 'PC 2', legend: 'none', size: [380, 340] },
          ),
        };
      }),
    );
    rep.heading('Audit');
    rep.text(
      'Accuracy, isotropy, and what maps do: a random rotation (kNN, Procrustes residual after recovering it, neighbours kept) ' +
        'and a random anisotropic map U·diag(e^g)·V, g standard normal (its condition number, the fraction of the 10 cosine neighbours kept ' +
        '(mapDistortion), and kNN after the map).',
    );
    rep.table(
      [
        'embedding',
        'dim',
        'kNN (k=5)',
        'mean cos',
        'z',
        'var / null',
        'kNN rotated',
        'Procrustes (rotated)',
        'kept (rotation)',
        'anisotropic: condition',
        'kept (anisotropic)',
        'kNN (anisotropic)',
      ],
      auditRows.map((r0) => r0[0]),
    );
    rep.text(
      'Mechanisms and intrinsic geometry: BatchNorm train- vs eval-mode drift, sparsity of the unit rows, Gromov hyperbolicity ' +
        '2δ/diameter of the angular 10-NN graph (with the quadruples skipped because they straddle disconnected parts), and the ' +
        'triangle-comparison ratios on that graph (median, and the fraction above 1).',
    );
    rep.table(
      ['embedding', 'BN drift cos', 'BN drift L2', 'Hoyer', '|x| ≤ 0.01', '2δ / diameter', 'quadruples skipped', 'median triangle ratio', 'ratios > 1'],
      auditRows.map((r0) => r0[1]),
    );
    if (analogies && analogies.length > 0) {
      rep.text(
        `Analogies between classes (3CosAdd): "medoid of class A : medoid of class B :: a test row of class A : ?" over ${analogies[0][1].count} seeded triples; ` +
          `the answer has class B in ${analogies.map(([n0, r]) => `${pct(r.accuracy)} (${n0})`).join(', ')}; chance ≈ ${pct(analogies[0][1].chance)}.`,
      );
    }
    rep.text(
      `Procrustes between the NT-Xent heads of seeds ${seed} and ${seed + 1}: relative residual ${al.before.toFixed(3)} before, ` +
        `${al.after.toFixed(3)} after the best orthogonal map.`,
    );
  }
}

/**
 * Projection of the rows of m on its top two principal directions: power iteration on the
 * covariance (d × d, float64), the second after deflating the first. Deterministic for a seed.
 * Returns [{ x, y }] per row.
 */
function project2(ref, m, seed) {
  const { rows: n, cols: d, data } = m;
  const mu = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mu[j] += data[i * d + j] / n;
  const C = new Float64Array(d * d);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < d; a++) {
      const va = data[i * d + a] - mu[a];
      for (let b = 0; b < d; b++) C[a * d + b] += va * (data[i * d + b] - mu[b]);
    }
  }
  const rng = new ref.SplitMix64(seed + 5);
  const dirs = [];
  for (let k = 0; k < Math.min(2, d); k++) {
    let v = Float64Array.from({ length: d }, () => rng.uniform() - 0.5);
    for (let it = 0; it < 200; it++) {
      const w = new Float64Array(d);
      for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) w[a] += C[a * d + b] * v[b];
      for (const u of dirs) {
        let p = 0;
        for (let a = 0; a < d; a++) p += w[a] * u[a];
        for (let a = 0; a < d; a++) w[a] -= p * u[a];
      }
      const nw = Math.hypot(...w) || 1;
      v = w.map((q) => q / nw);
    }
    // Sign convention: the largest component positive.
    let big = 0;
    for (let a = 1; a < d; a++) if (Math.abs(v[a]) > Math.abs(v[big])) big = a;
    if (v[big] < 0) v = v.map((q) => -q);
    dirs.push(v);
  }
  const out = [];
  for (let i = 0; i < n; i++) {
    const p = dirs.map((u) => {
      let s = 0;
      for (let a = 0; a < d; a++) s += (data[i * d + a] - mu[a]) * u[a];
      return s;
    });
    out.push({ x: p[0], y: p.length > 1 ? p[1] : 0 });
  }
  return out;
}

function subsetRows(m, idx) {
  return rowsOf(m, idx);
}

// ------------------------------------------------------------------------------------------
// The pipeline
// ------------------------------------------------------------------------------------------

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`demo: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  if (opts.help) {
    process.stdout.write(HELP);
    return;
  }

  if (opts.report) checkWritable(opts.report);
  const dv = require('../dist/index.js');
  // The reference's public API, plus the documented PRNG (SplitMix64: fast uniforms for the
  // shuffles and augmentations) and lnGamma from its statistics module.
  const ref = { ...require('../dist/reference/index.js'), ...require('../dist/reference/statistics.js') };
  try {
    dv.setBackend(opts.backend);
  } catch (e) {
    throw new UsageError(`--backend ${opts.backend}: ${e.message}`);
  }
  const { Report, linePlot, densitySeries, scatterPlot, barPlot, COLORS } = require('./lib/report.js');
  const { progress } = require('./lib/progress.js');
  const bar = progress(!opts.quiet && Boolean(process.stdout.isTTY));
  const knnStages = [];
  const rep = opts.report ? new Report('densevec demo report') : null;
  const log = [];
  const say = (s = '') => {
    log.push(s);
    if (!opts.quiet) bar.print(s);
  };
  const plots = { linePlot, densitySeries, scatterPlot, barPlot, COLORS };
  const summary = [];
  const total0 = process.hrtime.bigint();

  // 1. Data.
  const [ds, tLoad] = timed(() => load(opts));
  const { x: raw, labels } = ds;
  if (raw.rows < 4) throw new UsageError(`${ds.name} has ${raw.rows} rows; the demo needs at least 4`);
  const [x, tStd] = timed(() => standardize(raw));
  const nClasses = labels ? new Set(labels).size : 0;
  const info = dv.backendInfo();
  say(`densevec demo — ${ds.name}: ${raw.rows} rows × ${raw.cols} features${labels ? `, ${nClasses} classes` : ', no labels'}  (seed ${opts.seed})`);
  say(`backend: ${info.backend}${info.isa ? ` (${info.isa})` : ''}, ${info.threads} thread(s)${info.nativeError ? `; native addon: ${info.nativeError}` : ''}`);
  if (ds.labelColumn && ds.labelColumn !== 'none') {
    const nm = ds.labelNames;
    say(
      `labels: ${ds.labelColumn} column${
        nm
          ? ` (class names, numbered in sorted order: ${nm
              .slice(0, 6)
              .map((v, i) => `${v}=${i}`)
              .join(', ')}${nm.length > 6 ? ', …' : ''})`
          : ''
      }`,
    );
  }
  say(`loaded in ${ms(tLoad)}, standardized (per-feature z-scores) in ${ms(tStd)}`);
  summary.push(`data ${ds.name} ${raw.rows}x${raw.cols}${labels ? ` classes=${nClasses}` : ''} backend=${info.backend}`);
  if (rep) {
    rep.facts([
      [
        'data',
        `${opts.data ?? 'examples/data/digits.csv.gz (UCI handwritten digits, shipped)'}: ${raw.rows} rows × ${raw.cols} features` +
          `${labels ? `, ${nClasses} classes (${ds.labelColumn} column)` : ', no labels'}`,
      ],
      ['seed', String(opts.seed)],
      ['backend', `${info.backend}${info.isa ? ` (${info.isa})` : ''}, ${info.threads} thread(s)`],
      [
        'training',
        opts.epochs === null
          ? `default lengths (${TRAIN.contrastive.steps} steps NT-Xent, ${TRAIN.margin.steps} steps per margin head)`
          : `${opts.epochs} epoch(s) per head`,
      ],
      ['command', `node examples/demo.js ${process.argv.slice(2).join(' ')}`.trim()],
    ]);
  }

  // 2. Held-out split and kNN baselines.
  const perm = permutation(ref, raw.rows, opts.seed);
  const nTest = Math.min(MAX_TEST, Math.max(1, Math.round(raw.rows * 0.25)));
  const testIdx = perm.slice(0, nTest);
  const trainIdx = perm.slice(nTest);
  const trainX = rowsOf(x, trainIdx);
  const testX = rowsOf(x, testIdx);
  let majority = null;
  if (labels) {
    const trainY = Uint32Array.from(trainIdx, (i) => labels[i]);
    const testY = Uint32Array.from(testIdx, (i) => labels[i]);
    const rawTrain = rowsOf(raw, trainIdx);
    const rawTest = rowsOf(raw, testIdx);
    say();
    say(`kNN classification (knnClassify), held-out split ${trainIdx.length} train / ${testIdx.length} test:`);
    const ks = [1, 5, 15].filter((k) => k <= trainIdx.length);
    for (const [label, tr, te] of [
      ['raw', rawTrain, rawTest],
      ['standardized', trainX, testX],
    ]) {
      for (const metric of ['cosine', 'l2sq']) {
        const row = [];
        for (const k of ks) {
          const [pred, t] = timed(() => dv.knnClassify(tr, trainY, te, k, { metric }));
          const acc = accuracy(pred, testY);
          row.push(`k=${k} ${(100 * acc).toFixed(1)}% (${ms(t)})`);
          if (k === 5 && metric === 'cosine') {
            summary.push(`knn5-cosine ${label} ${(100 * acc).toFixed(1)}%`);
            knnStages.push({ name: label, value: acc });
          }
        }
        say(`  ${label.padEnd(12)} ${metric.padEnd(6)}  ${row.join('   ')}`);
      }
    }
    let maj = 0;
    const cnt = new Map();
    for (const l of trainY) cnt.set(l, (cnt.get(l) || 0) + 1);
    for (const v of cnt.values()) maj = Math.max(maj, v);
    const majLabel = [...cnt.entries()].find(([, v]) => v === maj)[0];
    majority = accuracy(new Uint32Array(testY.length).fill(majLabel), testY);
    say(`  (always predicting the most frequent class: ${(100 * majority).toFixed(1)}%)`);
  } else {
    say();
    say('kNN classification: skipped (no labels)');
  }

  // 3. Similarity statistics against the null of random directions.
  const d = x.cols;
  say();
  say(`Pairwise cosine statistics vs the null of independent random directions (variance 1/d = ${(1 / d).toExponential(3)}):`);
  const control = dv.randomUnitVectors(x.rows, d, opts.seed);
  // All pairs up to MAX_EXACT rows, else a seeded sample of pairs.
  const pairStats = (m) => (m.rows <= MAX_EXACT ? dv.similarityStats(m) : dv.similarityStats(m, { sample: { pairs: SAMPLE_PAIRS, seed: opts.seed } }));
  const rows = [
    ['random unit vectors', control],
    ['raw features', raw],
    ['standardized', x],
  ];
  let rawStats = null;
  for (const [label, m] of rows) {
    const [st, t] = timed(() => pairStats(m));
    if (m === raw) rawStats = st;
    say(
      `  ${label.padEnd(20)} mean ${st.mean.toFixed(4).padStart(7)}  sd ${Math.sqrt(st.variance).toFixed(4)}  ` +
        `variance/null ${(st.variance / st.nullVariance).toFixed(2).padStart(6)}  z ${st.zScore.toFixed(1).padStart(8)}  ` +
        `over ${st.pairs}${m.rows > MAX_EXACT ? ' sampled' : ''} pairs (${ms(t)})`,
    );
    if (label !== 'random unit vectors') summary.push(`stats ${label} mean=${st.mean.toFixed(4)} z=${st.zScore.toFixed(1)}`);
  }
  if (labels) {
    let within = 0;
    let wPairs = 0;
    for (const c of [...new Set(labels)].sort((a, b) => a - b)) {
      const idx = [];
      labels.forEach((l, i) => {
        if (l === c) idx.push(i);
      });
      if (idx.length < 2) continue;
      const st = pairStats(rowsOf(x, idx));
      within += st.mean * st.pairs;
      wPairs += st.pairs;
    }
    say(`  standardized, pairs of the same class only: mean ${(within / wPairs).toFixed(4)} over ${wPairs} pairs`);
    summary.push(`stats standardized within-class mean=${(within / wPairs).toFixed(4)}`);
  }
  const [sampled, tSample] = timed(() => dv.similarityStats(x, { sample: { pairs: 20000, seed: opts.seed } }));
  say(`  standardized, sampled 20000 pairs: mean ${sampled.mean.toFixed(4)}, sd ${Math.sqrt(sampled.variance).toFixed(4)} (${ms(tSample)})`);
  say(
    `  p-value of the raw features' mean cosine ${rawStats.mean.toFixed(3)} as a single pair in d = ${d}: ` +
      `P(cos ≥ s) = ${fmtP(dv.cosinePValue(Math.min(1, Math.max(-1, rawStats.mean)), d))}`,
  );

  // Nearest-neighbour cosines of held-out queries: how many beat chance after Bonferroni?
  const [nn, tNN] = timed(() => dv.topK(testX, trainX, 1, { metric: 'cosine' }));
  const top = Float64Array.from(nn.scores).sort();
  const median = top[Math.floor(top.length / 2)];
  const alpha = 0.01 / trainX.rows; // Bonferroni over the corpus searched per query
  let significant = 0;
  for (const s of top) if (dv.cosinePValue(Math.min(1, s), d) < alpha) significant++;
  say(
    `  nearest-neighbour cosine of each test query: median ${median.toFixed(3)}, min ${top[0].toFixed(3)}; ` +
      `p-value of the median ${fmtP(dv.cosinePValue(Math.min(1, median), d))}`,
  );
  say(`  ${significant}/${top.length} queries have a neighbour significant at 0.01 after Bonferroni over ${trainX.rows} candidates (${ms(tNN)})`);
  summary.push(`nn median=${median.toFixed(3)} significant=${significant}/${top.length}`);
  if (rep) {
    const pick = perm.slice(0, Math.min(600, x.rows));
    const upper = (m) => {
      const sm = dv.similarityMatrix(m, m);
      const out = [];
      for (let i = 0; i < m.rows; i++) for (let j = i + 1; j < m.rows; j++) out.push(sm.data[i * m.rows + j]);
      return out;
    };
    const grid = Array.from({ length: 401 }, (_, i) => -1 + i / 200);
    const nullLine = { name: `null, d = ${d}`, xs: grid, ys: grid.map((c) => nullDensity(ref, c, d)), dash: true, color: '#444' };
    const sStar = threshold(dv, alpha, d);
    rep.heading('Cosine similarity against the null of random directions');
    rep.text(
      `Density of the pairwise cosines of ${pick.length} rows (the same rows for each representation), ` +
        `with the exact null density of the cosine between independent uniform directions in d = ${d}. ` +
        `Right: the nearest-neighbour cosine of each test query; the dotted line is the cosine whose p-value is ` +
        `0.01 / ${trainX.rows} (Bonferroni over the candidates).`,
    );
    rep.figures([
      {
        id: 'cosine-hist-input',
        svg: plots.linePlot(
          [
            plots.densitySeries('random unit vectors', upper(rowsOf(control, pick)), -1, 1, 100),
            plots.densitySeries('raw features', upper(rowsOf(raw, pick)), -1, 1, 100),
            plots.densitySeries('standardized', upper(rowsOf(x, pick)), -1, 1, 100),
            nullLine,
          ],
          { title: 'Pairwise cosines', xLabel: 'cosine', yLabel: 'density', xDomain: [-1, 1], legend: 'left' },
        ),
      },
      plots.linePlot([plots.densitySeries('nearest neighbour of a test query', top, -1, 1, 100), nullLine], {
        title: 'Nearest-neighbour cosines',
        xLabel: 'cosine',
        yLabel: 'density',
        xDomain: [-1, 1],
        legend: 'left',
        vlines: [{ x: sStar, name: `p = ${fmtP(alpha)}` }],
      }),
      plots.linePlot(
        [8, d, 768]
          .filter((v, i, a) => a.indexOf(v) === i)
          .map((dd) => {
            const xs = Array.from({ length: 201 }, (_, i) => i / 200);
            return { name: `d = ${dd}`, xs, ys: xs.map((s0) => dv.cosinePValue(s0, dd)) };
          }),
        { title: 'Exact p-value P(cos ≥ s)', xLabel: 's', yLabel: 'p-value', logY: true, yDomain: [1e-40, 1] },
      ),
    ]);
  }

  // 4. Search and near-duplicates over the whole corpus, with timings.
  say();
  say('Exact search (topK, cosine) over the corpus:');
  const k = Math.min(10, x.rows);
  // Every row as a query (up to MAX_QUERIES rows of the seeded permutation).
  const qIdx = x.rows <= MAX_QUERIES ? Array.from({ length: x.rows }, (_, i) => i) : perm.slice(0, MAX_QUERIES);
  const qx = qIdx.length === x.rows ? x : rowsOf(x, qIdx);
  const [res, tTop] = timed(() => dv.topK(qx, x, k, { metric: 'cosine' }));
  say(
    `  ${qIdx.length === x.rows ? `all ${x.rows} rows` : `a sample of ${qIdx.length} of the ${x.rows} rows`} as queries, k = ${k}: ${ms(tTop)} ` +
      `(${((qIdx.length * x.rows) / (tTop / 1000) / 1e6).toFixed(1)} M similarities/s)`,
  );
  if (info.backend !== 'reference') {
    const q = rowsOf(x, perm.slice(0, Math.min(100, x.rows)));
    const [, tNat] = timed(() => dv.topK(q, x, k));
    const [, tRef] = timed(() => ref.topK(q, x, k));
    say(`  ${q.rows} queries: native ${ms(tNat)}, pure-TypeScript reference ${ms(tRef)} (×${(tRef / Math.max(tNat, 1e-3)).toFixed(1)})`);
  }
  if (labels) {
    let agree = 0;
    qIdx.forEach((i, q) => {
      for (let t = 1; t < k; t++) if (labels[res.indices[q * k + t]] === labels[i]) agree++;
    });
    say(`  label agreement of the ${k - 1} nearest other rows: ${((100 * agree) / (qIdx.length * (k - 1))).toFixed(1)}%`);
  }

  // Near-duplicates: the nearest other row at cosine ≥ 0.99 on the raw features (and exact
  // duplicates, l2sq = 0).
  const [nd, tDup] = timed(() => dv.topK(qIdx.length === raw.rows ? raw : rowsOf(raw, qIdx), raw, 2, { metric: 'cosine' }));
  const seen = new Set();
  const pairs = [];
  qIdx.forEach((i, q) => {
    // The nearest row other than i (i itself is usually first, but an exact duplicate may tie).
    const t = nd.indices[q * 2] === i ? 1 : 0;
    const j = nd.indices[q * 2 + t];
    const key = Math.min(i, j) * raw.rows + Math.max(i, j);
    if (j !== i && !seen.has(key)) {
      seen.add(key);
      pairs.push([Math.min(i, j), Math.max(i, j), nd.scores[q * 2 + t]]);
    }
  });
  const thr = 0.99;
  const dups = pairs.filter((p) => p[2] >= thr).sort((a, b) => b[2] - a[2] || a[0] - b[0]);
  let exact = 0;
  for (const [i, j] of dups)
    if (dv.l2sq(raw.data.subarray(i * raw.cols, (i + 1) * raw.cols), raw.data.subarray(j * raw.cols, (j + 1) * raw.cols)) === 0) exact++;
  say(
    `Near-duplicates (nearest other row at cosine ≥ ${thr}, raw features${qIdx.length < raw.rows ? `, for ${qIdx.length} sampled rows` : ''}): ` +
      `${dups.length} pair(s), ${exact} exact (${ms(tDup)})`,
  );
  for (const [i, j, s] of dups.slice(0, 5)) {
    say(`  rows ${i} and ${j}: cosine ${s.toFixed(4)}${labels ? `, labels ${labels[i]} / ${labels[j]}` : ''}`);
  }
  summary.push(`near-duplicates ${dups.length} (exact ${exact})`);

  // 5. Learned embeddings and their audit.
  learning(dv, ref, {
    raw,
    x,
    labels,
    trainIdx,
    testIdx,
    seed: opts.seed,
    say,
    summary,
    shipped: ds.shipped,
    rep,
    plots,
    bar,
    epochs: opts.epochs,
    knnStages,
    nullDensity: (s0, dd) => nullDensity(ref, s0, dd),
    project2: (m, seed) => project2(ref, m, seed),
  });
  if (rep && knnStages.length > 0) {
    rep.heading('kNN accuracy per stage');
    rep.text(
      'Held-out accuracy of knnClassify (k = 5, cosine) on the raw and standardized features and on each learned ' +
        'embedding of the same split. The axis is zoomed onto the bars (its lower end is written under the plot), so that a ' +
        'gain of one or two points is visible.',
    );
    const accs = knnStages.map((s0) => 100 * s0.value);
    // Zoom the axis onto the bars so that differences of a point or two show; say so on the plot.
    const lo = Math.max(0, Math.floor(Math.min(...accs) - Math.max(2, 0.5 * (Math.max(...accs) - Math.min(...accs)))));
    const hi = Math.min(100, Math.ceil(Math.max(...accs) + 1));
    rep.figures([
      {
        id: 'knn-bars',
        svg: barPlot(
          knnStages.map((s0) => ({ name: s0.name, value: 100 * s0.value })),
          {
            title: 'kNN accuracy (k = 5, cosine)',
            yLabel: 'test accuracy (%)',
            yDomain: [lo, hi > lo ? hi : lo + 1],
            format: (v) => v.toFixed(1),
            hline: majority === null ? null : { y: 100 * majority, name: 'majority class' },
            note:
              lo > 0
                ? `the axis starts at ${lo} %${majority !== null && 100 * majority < lo ? `; always predicting the majority class scores ${(100 * majority).toFixed(1)} %` : ''}`
                : '',
          },
        ),
      },
    ]);
  }

  const total = Number(process.hrtime.bigint() - total0) / 1e6;
  say();
  say(`total ${ms(total)}`);
  if (opts.quiet) process.stdout.write(`${summary.join('\n')}\n`);
  if (rep) {
    rep.heading('Run log');
    rep.pre(log);
    try {
      fs.writeFileSync(opts.report, rep.toHtml());
    } catch (e) {
      throw new UsageError(`cannot write the report to ${opts.report}: ${e.message}`);
    }
    process.stderr.write(`demo: wrote ${opts.report}\n`);
  }
}

/** Fails early (before the run) when the report cannot be written to `file`. */
function checkWritable(file) {
  const abs = path.resolve(file);
  let st = null;
  try {
    st = fs.statSync(abs);
  } catch {
    st = null;
  }
  if (st?.isDirectory()) throw new UsageError(`--out ${file}: is a directory; give a file name, e.g. ${path.join(file, 'densevec-report.html')}`);
  const dir = path.dirname(abs);
  try {
    if (!fs.statSync(dir).isDirectory()) throw new Error('not a directory');
    fs.accessSync(st ? abs : dir, fs.constants.W_OK);
  } catch (e) {
    throw new UsageError(
      `--out ${file}: cannot write there (${e.code === 'ENOENT' ? `no directory ${dir}` : e.code === 'EACCES' ? 'permission denied' : e.message})`,
    );
  }
}

// Output piped into `head` and closed early is not an error.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

try {
  main();
} catch (e) {
  if (e instanceof UsageError) {
    process.stderr.write(`demo: ${e.message}\n`);
    process.exit(1);
  }
  if (e && e.name === 'DensevecError') {
    process.stderr.write(`demo: ${e.code}: ${e.message}\n`);
    process.exit(1);
  }
  throw e;
}
