// Shared pieces of the benchmark suites: loading densevec and the anchors, running a row of
// implementations through the interleaved harness, printing the table and writing the JSON.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { measure, local, procStatus, resetPeakRss } = require('./harness');
const { benchmarkJs, measureMicro, fmtOps } = require('./micro');

const RESULTS = path.join(__dirname, 'results');
const { machine } = require('./machine');

/** The single-core fp32 FMA peak measured in this run (GFLOP/s), or null where it could not be. */
function peakGflops() {
  return machine().peakGflopsPerCore;
}

const dv = require('../dist/index.js');

/** Whether this build of densevec exports `name` as a function. */
function has(name) {
  return typeof dv[name] === 'function';
}

/** require() of a bench anchor from bench/node_modules, or null with a note. */
function anchor(name, notes) {
  try {
    return require(path.join(__dirname, 'node_modules', name));
  } catch (e) {
    notes.push(`${name} not installed (${e.message.split('\n')[0]}); its rows are skipped — run \`node bench/install-anchors.cjs\``);
    return null;
  }
}

function anchorVersion(name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return null;
  }
}

/** Deterministic standard-normal Float32Array (xorshift + Box–Muller), cheap enough for 10⁸ values. */
function randn(n, seed = 1) {
  const out = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next()));
    const t = 2 * Math.PI * next();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/** Matrix of rows × cols standard-normal entries. */
function randMatrix(rows, cols, seed) {
  return { data: randn(rows * cols, seed), rows, cols };
}

function unitRows(m) {
  const out = { data: Float32Array.from(m.data), rows: m.rows, cols: m.cols };
  for (let i = 0; i < m.rows; i++) {
    let s = 0;
    const o = i * m.cols;
    for (let j = 0; j < m.cols; j++) s += out.data[o + j] * out.data[o + j];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < m.cols; j++) out.data[o + j] *= inv;
  }
  return out;
}

function fmtMs(ms) {
  if (ms < 0.001) return `${(ms * 1e6).toFixed(0)} ns`;
  if (ms < 1) return `${(ms * 1e3).toFixed(1)} µs`;
  if (ms < 1000) return `${ms.toFixed(2)} ms`;
  return `${(ms / 1000).toFixed(3)} s`;
}

function pad(s, n, right = false) {
  s = String(s);
  return right ? s.padStart(n) : s.padEnd(n);
}

/** Builds an implementation entry: label + thread count + timed function. */
function impl(label, group, threads, fn, extra = {}) {
  const name = threads ? `${label} ${threads}T` : label;
  const it = { ...local(name, fn, extra), fn, label, group, threads: threads ?? null };
  if (extra.scale) {
    // The call does 1/scale of the workload (a subset); report the time scaled to the whole.
    const run = it.run;
    it.run = async (reps) => {
      const r = await run(reps);
      return { ms: r.ms * extra.scale, cpuMs: r.cpuMs * extra.scale };
    };
  }
  return it;
}

/**
 * One benchmark suite: rows are measured with measure() and collected for the JSON file.
 */
class Suite {
  constructor(name, { quick, smoke = false }) {
    this.name = name;
    this.quick = quick;
    this.smoke = smoke;
    this.rows = [];
    this.notes = [];
    this.extra = {};
    this.opts = quick ? { rounds: 5, minSampleMs: 10, warmupMs: 100 } : { rounds: 11, minSampleMs: 40, warmupMs: 400 };
    console.log(`\n=== ${name}${quick ? ' (quick)' : ''} — densevec ${JSON.stringify(dv.backendInfo())}`);
  }

  note(msg) {
    this.notes.push(msg);
    console.log(`  note: ${msg}`);
  }

  /**
   * Measures a row. spec: { workload, params, impls, throughput(ms) → { value, unit } | null,
   * targets: [{ anchor: label, threads, min, what }], opts, micro }. `micro: true` (single-call
   * rows of synchronous functions) measures with benchmark.js (bench/micro.js) instead of the
   * interleaved harness, and also prints ops/sec ± relative margin of error.
   */
  async row(spec) {
    const impls = spec.impls.filter(Boolean);
    console.log(`\n--- ${spec.workload} ${JSON.stringify(spec.params ?? {})}`);
    if (impls.length === 0) {
      console.log('  (nothing to run)');
      return null;
    }
    let res = spec.micro ? measureMicro(impls, { quick: this.quick, smoke: this.smoke }) : null;
    if (spec.micro && res === null && !this.notes.some((n) => n.startsWith('benchmark not installed'))) {
      this.note(`benchmark not installed (${benchmarkJs().error}); single-call rows use the interleaved harness — run \`node bench/install-anchors.cjs\``);
    }
    const harness = res ? 'benchmark.js' : 'interleaved';
    res ??= await measure(impls, { ...this.opts, ...(spec.opts ?? {}) });
    const entries = impls.map((i) => {
      const r = res[i.name];
      const tp = spec.throughput ? spec.throughput(r.medianMs, i) : null;
      // The same figure per second of CPU time (all threads): work per core-second, steadier
      // than wall time when other processes take turns on the cores.
      const tpCpu = spec.throughput && r.cpuMedianMs ? spec.throughput(r.cpuMedianMs, i) : null;
      return { name: i.name, label: i.label, group: i.group, threads: i.threads, ...r, throughput: tp, throughputPerCpuSecond: tpCpu, ...(i.meta ?? {}) };
    });
    const ratios = [];
    for (const d of entries.filter((e) => e.group === 'densevec')) {
      for (const a of entries.filter((e) => e.group !== 'densevec' && (e.threads === d.threads || e.threads === null || d.threads === null))) {
        const cpu = a.cpuMedianMs && d.cpuMedianMs ? a.cpuMedianMs / d.cpuMedianMs : null;
        ratios.push({ densevec: d.name, vs: a.name, speedup: a.medianMs / d.medianMs, cpuTimeRatio: cpu });
      }
    }
    const scaling = [];
    for (const e1 of entries.filter((e) => e.threads === 1)) {
      const e2 = entries.find((e) => e.label === e1.label && e.threads === 2);
      if (e2) scaling.push({ label: e1.label, speedup2T: e1.medianMs / e2.medianMs });
    }
    const targets = [];
    for (const t of spec.targets ?? []) {
      const d = entries.find((e) => e.group === 'densevec' && (t.densevec ? e.label === t.densevec : true) && (t.threads == null || e.threads === t.threads));
      if (t.kind === 'scaling') {
        const s = scaling.find((x) => x.label === (t.label ?? d?.label));
        if (s) targets.push({ what: t.what, min: t.min, got: s.speedup2T, met: s.speedup2T >= t.min });
        continue;
      }
      if (t.kind === 'peak') {
        const peak = peakGflops();
        if (d?.throughput && peak) {
          const frac = d.throughput.value / peak / (d.threads ?? 1);
          const gotCpu = d.throughputPerCpuSecond ? d.throughputPerCpuSecond.value / peak : null;
          targets.push({ what: t.what, min: t.min, got: frac, met: frac >= t.min, gotCpu, cpuNote: 'per CPU-second' });
        }
        continue;
      }
      const a = entries.find((e) => e.label === t.anchor && (t.threads == null || e.threads === t.threads));
      if (d && a) {
        const got = a.medianMs / d.medianMs;
        const gotCpu = a.cpuMedianMs && d.cpuMedianMs ? a.cpuMedianMs / d.cpuMedianMs : null;
        targets.push({ what: t.what ?? `${d.name} ≥ ${t.min}× ${a.name}`, min: t.min, got, met: got >= t.min, gotCpu });
      }
    }
    this.print(entries, ratios, scaling, targets, spec);
    const row = { workload: spec.workload, params: spec.params ?? {}, harness, implementations: entries, ratios, scaling, targets, ...(spec.extra ?? {}) };
    this.rows.push(row);
    return row;
  }

  print(entries, _ratios, scaling, targets, spec) {
    const best = entries.filter((e) => e.group === 'densevec');
    const ref1 = best.find((e) => e.threads === 1) ?? best[0];
    const w = Math.max(28, ...entries.map((e) => e.name.length + 2));
    // benchmark.js rows: the mean per call and mean ∓ margin of error instead of median and IQR.
    const micro = entries.some((e) => e.hz !== undefined);
    console.log(
      `  ${pad('implementation', w)}${pad(micro ? 'mean' : 'median', 12, true)}${pad(micro ? '± margin of error' : 'IQR', 22, true)}${pad('CPU/call', 12, true)}${pad('throughput', 18, true)}${pad('dv speedup', 12, true)}`,
    );
    for (const e of entries) {
      const iqr = `${fmtMs(e.q1Ms)}–${fmtMs(e.q3Ms)}`;
      const tp = e.throughput ? `${e.throughput.value.toFixed(e.throughput.value < 10 ? 2 : 1)} ${e.throughput.unit}` : '';
      let rel = '';
      if (e.group !== 'densevec' && ref1) {
        const d = best.find((x) => x.threads === e.threads) ?? ref1;
        rel = `${(e.medianMs / d.medianMs).toFixed(2)}×`;
      }
      const cpu = e.cpuMedianMs != null ? fmtMs(e.cpuMedianMs) : '';
      console.log(`  ${pad(e.name, w)}${pad(fmtMs(e.medianMs), 12, true)}${pad(iqr, 22, true)}${pad(cpu, 12, true)}${pad(tp, 18, true)}${pad(rel, 12, true)}`);
    }
    for (const e of entries) if (e.hz !== undefined) console.log(`  benchmark.js ${e.name}: ${fmtOps(e)} (${e.samples} runs sampled)`);
    for (const s of scaling) console.log(`  2T/1T ${s.label}: ${s.speedup2T.toFixed(2)}×`);
    for (const t of targets) {
      const miss = t.met ? 'met' : `MISSED by ${Math.max(1, Math.round((1 - t.got / t.min) * 100))} %`;
      const cpu = t.gotCpu != null ? ` [${t.cpuNote ?? 'CPU-time ratio'} ${t.gotCpu.toFixed(2)}]` : '';
      console.log(`  target ${t.what}: ${t.got.toFixed(2)} (≥ ${t.min}) ${miss}${cpu}`);
    }
    if (spec.extraPrint) spec.extraPrint();
  }

  write() {
    fs.mkdirSync(RESULTS, { recursive: true });
    const out = {
      suite: this.name,
      quick: this.quick,
      mode: process.env.DENSEVEC_BENCH_MODE ?? (this.quick ? 'quick' : 'full'),
      date: new Date().toISOString(),
      harness:
        'median of interleaved rounds (bench/harness.js): every implementation runs once per round in rotating order after warm-up; figures are per call. Rows with harness "benchmark.js" (single calls): mean per call from benchmark.js, with hz (ops/sec) and rme (relative margin of error, %)',
      machine: {
        cpu: os.cpus()[0]?.model ?? 'unknown',
        cores: os.cpus().length,
        loadavg: os.loadavg(),
        node: process.version,
        ...machine(),
      },
      densevec: dv.backendInfo(),
      anchors: Object.fromEntries(['simsimd', 'usearch', 'onnxruntime-node'].map((n) => [n, anchorVersion(n)])),
      ...this.extra,
      rows: this.rows,
      notes: this.notes,
    };
    const file = path.join(RESULTS, `${this.name}.json`);
    fs.writeFileSync(file, JSON.stringify(out, null, 2));
    console.log(`\n  wrote ${path.relative(process.cwd(), file)}`);
    return out;
  }
}

/** Sets densevec's pool to n threads (untimed hook for implementations). */
function dvThreads(n) {
  return () => {
    if (dv.backendInfo().threads !== n) dv.setThreads(n);
  };
}

/** onnxruntime session options pinned to n intra-op threads, without spinning workers. */
function ortOptions(n) {
  return {
    intraOpNumThreads: n,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

function modelBytes(name) {
  return fs.readFileSync(path.join(__dirname, 'models', name));
}

module.exports = {
  dv,
  has,
  anchor,
  anchorVersion,
  randn,
  randMatrix,
  unitRows,
  impl,
  Suite,
  dvThreads,
  ortOptions,
  modelBytes,
  fmtMs,
  procStatus,
  resetPeakRss,
  peakGflops,
  machine,
};
