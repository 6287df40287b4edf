// Child process of test/memory.test.ts (run it directly to see its report):
//
//   node test/memory-child.cjs [--huge] [--loop]
//
// --huge: requests far larger than memory, on the native backend (sync and async twins) and on
//   the reference (densevec/reference, and the async twins under setBackend('reference')). Each
//   must throw (or reject with) a DensevecError with code E_ARG; the process must survive.
//   The parent runs this part under a hard address-space limit, so every one of them is refused
//   by the allocator at once (without a limit, a request that fits in virtual memory but not in
//   RAM would run and meet the kernel's OOM killer instead).
// --loop: synchronous loops of functions that return buffers; the resident set must stay
//   within a bound (results are freed by the garbage collector, without the event loop turning).
//
// The last line is a JSON summary: { ok, huge: [...], loop: [...], failures: [...] }.
'use strict';
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
const dv = require(path.join(dist, 'index.js'));
const ref = require(path.join(dist, 'reference', 'index.js'));

const args = new Set(process.argv.slice(2));
const failures = [];
const huge = [];
const loop = [];

/** Seeded values in (−1, 1), never 0 (so no row is a zero row). */
function values(n, seed) {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 4294967296;
    out[i] = u < 0.5 ? u - 0.51 : u - 0.49;
  }
  return out;
}
const mat = (rows, cols, seed) => ({ data: values(rows * cols, seed), rows, cols });

function checkError(name, e) {
  if (!(e instanceof dv.DensevecError) || e.code !== 'E_ARG') {
    const what = e instanceof Error ? `${e.constructor.name} ${e.code ?? ''}: ${e.message}` : String(e);
    failures.push(`${name}: expected DensevecError E_ARG, got ${what}`);
    return;
  }
  if (!/cannot allocate|more than a typed array holds/.test(e.message)) {
    failures.push(`${name}: E_ARG without the size in its message: ${e.message}`);
    return;
  }
  huge.push({ name, message: e.message });
}

function expectArgSync(name, f) {
  let r;
  try {
    r = f();
  } catch (e) {
    checkError(name, e);
    return;
  }
  failures.push(`${name}: returned ${Object.prototype.toString.call(r)} instead of throwing E_ARG`);
}

async function expectArgAsync(name, f) {
  let p;
  try {
    p = f();
  } catch (e) {
    failures.push(`${name}: threw synchronously instead of rejecting: ${e?.message}`);
    return;
  }
  try {
    await p;
  } catch (e) {
    checkError(name, e);
    return;
  }
  failures.push(`${name}: resolved instead of rejecting with E_ARG`);
}

// The huge requests (each input is small; the output or the scratch is tens of GB).
const N = 100000;
const col = mat(N, 1, 1); // 100,000 × 1
const col2 = mat(N, 1, 2);
const wide = mat(1, N, 3); // 1 × 100,000: d × d = 10^10
const wide2 = mat(1, N, 4);
const WN = 65536; // wassersteinRegularizer's documented maximum
const wa = mat(WN, 1, 5);
const wb = mat(WN, 1, 6);
const col30k = mat(30000, 1, 7); // 30,000 × 30,000 float32 = 3.6 GB
const labels = new Uint32Array(N).map((_, i) => i);
const labels30k = new Uint32Array(30000).map((_, i) => i);

function syncCases(lib, backend) {
  const cases = [
    ['similarityMatrix 1e5 x 1e5', () => lib.similarityMatrix(col, col2, { metric: 'dot' })],
    // Below the typed-array limit of 2^32 values: the native result buffer itself is refused.
    ['similarityMatrix 30000 x 30000', () => lib.similarityMatrix(col30k, col30k, { metric: 'dot' })],
    ['similarityMatrix 1e5 x 1e5 f16 corpus', () => lib.similarityMatrix(col, lib.quantize(col2, 'f16'), { metric: 'dot' })],
    ['topK q.rows * k = 1e10', () => lib.topK(col, col2, N, { metric: 'dot' })],
    ['topK q.rows * k = 1e10, i8 corpus', () => lib.topK(col, lib.quantize(col2, 'i8'), N, { metric: 'dot' })],
    ['matmul (1e5 x 1)(1 x 1e5)', () => lib.matmul(col, wide)],
    ['marginSoftmax N = C = 1e5', () => lib.marginSoftmax(col, col2, labels, { kind: 'normalized' })],
    // Below the typed-array limit: the native logits buffer (the returned one) is refused.
    ['marginSoftmax N = C = 30000', () => lib.marginSoftmax(col30k, col30k, labels30k, { kind: 'normalized' })],
    ['marginGeometry C = 30000', () => lib.marginGeometry(col30k, { kind: 'arcface', margin: 0.5 })],
    ['procrustes 1 x 100000', () => lib.procrustes(wide, wide2)],
    ['wassersteinRegularizer n = 65536', () => lib.wassersteinRegularizer(wa, wb)],
    ['randomUnitVectors n * d = 2^30', () => lib.randomUnitVectors(1 << 20, 1 << 10, 1)],
    ['marginGeometry C = 1e5', () => lib.marginGeometry(col, { kind: 'cosface', margin: 0.2 })],
    ['AliasSampler.sample 1e12', () => new lib.AliasSampler(new Float64Array([1, 2, 3]), 1).sample(1e12)],
    ['AliasSampler.sample 2^31', () => new lib.AliasSampler(new Float64Array([1, 2, 3]), 1).sample(2 ** 31)],
    ['BatchNorm dim 2^40', () => new lib.BatchNorm(2 ** 40)],
  ];
  // The reference's k-NN holds O(rows) memory (it ranks one query at a time): a huge q * k is
  // only slow there, not a memory request, so it is checked on the native backend only.
  if (backend === 'native') {
    cases.push(['knnClassify q.rows * k = 1e10', () => lib.knnClassify(col2, labels, col, N, { metric: 'dot' })]);
  }
  for (const [name, f] of cases) expectArgSync(`${backend} ${name}`, f);
}

async function asyncCases(backend) {
  const cases = [
    ['similarityMatrixAsync 1e5 x 1e5', () => dv.similarityMatrixAsync(col, col2, { metric: 'dot' })],
    ['similarityMatrixAsync 1e5 x 1e5 bf16 corpus', () => dv.similarityMatrixAsync(col, dv.quantize(col2, 'bf16'), { metric: 'dot' })],
    ['topKAsync q.rows * k = 1e10', () => dv.topKAsync(col, col2, N, { metric: 'dot' })],
    ['marginSoftmaxAsync N = C = 1e5', () => dv.marginSoftmaxAsync(col, col2, labels, { kind: 'normalized' })],
    ['procrustesAsync 1 x 100000', () => dv.procrustesAsync(wide, wide2)],
    ['wassersteinRegularizerAsync n = 65536', () => dv.wassersteinRegularizerAsync(wa, wb)],
  ];
  if (backend === 'native') {
    cases.push(['knnClassifyAsync q.rows * k = 1e10', () => dv.knnClassifyAsync(col2, labels, col, N, { metric: 'dot' })]);
  }
  for (const [name, f] of cases) await expectArgAsync(`${backend} ${name}`, f);
}

// Synchronous loops: each returns far more memory in total than the bound, so results kept
// alive until the loop ends (as external buffers whose finalizers wait for the event loop) would
// show; V8-owned results are collected as the loop runs.
function rssLoops() {
  const MB = 1e6;
  const BOUND = 80 * MB; // growth allowed over the warm-up (the collector's external-memory slack)
  const TOTAL = 256 * MB; // bytes returned per loop
  const CAP_MS = 8000; // a loop stops early on a slow (debug) build; it must still return 2 × BOUND
  const v768 = values(768, 7);
  const rows768 = mat(64, 768, 8);
  const q = mat(128, 16, 9);
  const c = mat(512, 16, 10);
  const tq = mat(1024, 1, 11);
  const tc = mat(64, 1, 12);
  const nq = mat(128, 256, 13);
  const nk = mat(128, 256, 14);
  const mx = mat(128, 128, 15);
  const mp = mat(256, 128, 16);
  const ml = new Uint32Array(128).map((_, i) => i);
  const sq = mat(256, 256, 17);
  const nx = mat(512, 64, 18);
  const npos = mat(512, 64, 19);
  const nneg = mat(512 * 5, 64, 20);
  const cases = [
    ['normalize d = 768', () => dv.normalize(v768), 768 * 4],
    ['normalizeRows 64 x 768', () => dv.normalizeRows(rows768).data, 64 * 768 * 4],
    ['similarityMatrix 128 x 512', () => dv.similarityMatrix(q, c).data, 128 * 512 * 4],
    ['topK 1024 queries, k = 64', () => dv.topK(tq, tc, 64, { metric: 'dot' }).scores, 1024 * 64 * 8],
    ['infoNCE gradients 128 x 256', () => dv.infoNCE(nq, nk, { temperature: 0.1 }).gradQ.data, 2 * 128 * 256 * 4],
    ['marginSoftmax 128 x 256 classes', () => dv.marginSoftmax(mx, mp, ml, { kind: 'arcface' }).logits.data, (128 * 256 + 128 * 128 + 256 * 128) * 4],
    ['matmul 256 x 256', () => dv.matmul(sq, sq).data, 256 * 256 * 4],
    // Results of 64 KiB and more live in uninitialized Buffer memory: collected the same way.
    ['negativeSamplingLoss 512 x 5 x 64', () => dv.negativeSamplingLoss(nx, npos, nneg).gradNegatives.data, (512 + 512 + 2560) * 64 * 4],
    ['randomUnitVectors 64 x 1024', () => dv.randomUnitVectors(64, 1024, 1).data, 64 * 1024 * 4],
  ];
  for (const [name, f, bytes] of cases) {
    const iters = Math.ceil(TOTAL / bytes);
    const warm = Math.ceil(iters / 20);
    let sink = 0;
    for (let i = 0; i < warm; i++) sink += f().length;
    const base = process.memoryUsage().rss;
    let peak = base;
    const t0 = Date.now();
    let done = warm;
    while (done < iters) {
      sink += f().length;
      done++;
      if ((done & 63) === 0) {
        peak = Math.max(peak, process.memoryUsage().rss);
        if (Date.now() - t0 > CAP_MS) break;
      }
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    const growth = peak - base;
    const returned = (done - warm) * bytes;
    loop.push({ name, calls: done, returnedMB: Math.round(returned / MB), rssGrowthMB: +(growth / MB).toFixed(1), ms: Date.now() - t0 });
    if (!(sink > 0)) failures.push(`${name}: returned nothing`);
    if (returned < 2 * BOUND) failures.push(`${name}: only ${Math.round(returned / MB)} MB returned in ${CAP_MS} ms, too little to measure`);
    if (growth > BOUND) {
      failures.push(`${name}: RSS grew by ${(growth / MB).toFixed(1)} MB while ${Math.round(returned / MB)} MB were returned (bound ${BOUND / MB} MB)`);
    }
  }
}

/**
 * Calls whose working memory must stay proportional to their inputs and results, so that they
 * succeed under the limit: marginSoftmax with 2 rows against 4M classes (32 MB of logits) forms
 * its logit gradient in blocks of at most its 2 rows, not of a fixed 256 (4 GB).
 */
function fitCases() {
  const C = 4_000_000;
  const x = mat(2, 1, 21);
  const w = mat(C, 1, 22);
  const labels = new Uint32Array([0, C - 1]);
  for (const [name, f] of [['marginSoftmax 2 rows x 4M classes', () => dv.marginSoftmax(x, w, labels, { kind: 'normalized' }).logits.data.length]]) {
    try {
      const n = f();
      if (n !== 2 * C) failures.push(`${name}: ${n} values returned`);
    } catch (e) {
      failures.push(`${name}: threw ${e?.message}`);
    }
  }
}

async function main() {
  if (args.has('--huge')) {
    if (dv.backendInfo().backend !== 'native') {
      failures.push(`the native backend is not loaded: ${dv.backendInfo().nativeError ?? 'unknown reason'}`);
    } else {
      syncCases(dv, 'native');
      await asyncCases('native');
      fitCases();
    }
    syncCases(ref, 'reference');
    dv.setBackend('reference');
    await asyncCases('reference');
    dv.setBackend('native');
  }
  if (args.has('--loop')) {
    if (dv.backendInfo().backend !== 'native') failures.push('the native backend is not loaded');
    else rssLoops();
  }
  const summary = { ok: failures.length === 0, huge, loop, failures };
  for (const h of huge) console.log(`E_ARG  ${h.name}: ${h.message}`);
  for (const l of loop) console.log(`loop   ${l.name}: ${l.calls} calls, ${l.returnedMB} MB returned, RSS +${l.rssGrowthMB} MB, ${l.ms} ms`);
  for (const f of failures) console.log(`FAIL   ${f}`);
  console.log(JSON.stringify(summary));
}

main().catch((e) => {
  console.log(`FAIL   unexpected: ${e?.stack}`);
  console.log(JSON.stringify({ ok: false, huge, loop, failures: [...failures, String(e)] }));
  process.exitCode = 1;
});
