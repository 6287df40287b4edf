// Single-call micro-benchmarks with benchmark.js (`benchmark`, installed into bench/node_modules
// by bench/install-anchors.cjs): one call of sub-microsecond to microseconds, reported as
// ops/sec ± relative margin of error (the 95 % confidence interval of the mean, Student's t over
// benchmark.js's samples), the format Node users know. Every implementation of a row is one
// Benchmark in one Benchmark.Suite, run one after the other. Side-by-side rows of batch
// workloads keep the interleaved harness (bench/harness.js; see docs/benchmarks.md for why).
'use strict';

const path = require('node:path');

let loaded;
// Keeps the results alive so that no call can be optimized away.
let sunk = 0;
/** benchmark.js from bench/node_modules, or null with the reason. */
function benchmarkJs() {
  if (loaded === undefined) {
    try {
      loaded = { Benchmark: require(path.join(__dirname, 'node_modules', 'benchmark')), error: null };
    } catch (e) {
      loaded = { Benchmark: null, error: e.message.split('\n')[0] };
    }
  }
  return loaded;
}

/** benchmark.js options per mode: seconds per implementation and the fewest samples. */
function options({ quick, smoke }) {
  if (smoke) return { minTime: 0.005, maxTime: 0.02, minSamples: 3 };
  if (quick) return { maxTime: 0.5, minSamples: 20 };
  return { maxTime: 3, minSamples: 50 };
}

/**
 * Measures synchronous implementations ({ name, fn }) with benchmark.js. Returns, per name, the
 * harness's record shape (per-call ms: the mean, with q1/q3 standing for mean ∓ margin of error)
 * plus `hz` (ops/sec), `rme` (relative margin of error, %) and `samples`; null when benchmark.js
 * is not installed.
 */
function measureMicro(impls, mode) {
  const { Benchmark } = benchmarkJs();
  if (!Benchmark) return null;
  const suite = new Benchmark.Suite();
  for (const i of impls) {
    const fn = i.fn;
    suite.add(
      i.name,
      () => {
        sunk += Number(fn()) || 1;
      },
      options(mode),
    );
  }
  suite.run({ async: false });
  const out = {};
  suite.forEach((b) => {
    if (b.error) throw b.error;
    const meanMs = b.stats.mean * 1e3;
    const moeMs = b.stats.moe * 1e3;
    out[b.name] = {
      medianMs: meanMs,
      minMs: meanMs - moeMs,
      q1Ms: meanMs - moeMs,
      q3Ms: meanMs + moeMs,
      cpuMedianMs: null,
      rounds: b.stats.sample.length,
      reps: b.count,
      hz: b.hz,
      rme: b.stats.rme,
      samples: b.stats.sample.length,
    };
  });
  return out;
}

/** "12,345,678 ops/sec ±0.85%" (benchmark.js's own format). */
function fmtOps(r) {
  return `${Math.round(r.hz).toLocaleString('en-US')} ops/sec ±${r.rme.toFixed(2)}%`;
}

module.exports = { benchmarkJs, measureMicro, fmtOps, sinkValue: () => sunk };
