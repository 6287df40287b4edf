// Hand-rolled median-of-rounds harness, for the side-by-side rows of batch workloads (the
// single-call rows use benchmark.js: bench/micro.js).
//
// Why not benchmark.js here: it measures one function to completion before moving to the next, so
// on a shared machine a burst of load from another process lands on whichever implementation
// happened to be running. Here every implementation of a row runs once per round, in a rotating order, and
// each reported figure is the median over rounds of the per-call time of one sample (a sample
// repeats the call enough times to last at least `minSampleMs`). Warm-up runs every
// implementation until it has spent `warmupMs` (JIT, page faults, thread pools, caches) and
// calibrates the repetitions per sample from those calls.
//
// An implementation is { name, run(reps) } where run returns the milliseconds that `reps` calls
// took, or { ms, cpuMs } with the CPU time of the process as well (or a promise of either); `local(fn)` builds one around a sync or async function and times it
// with process.hrtime. Implementations that live in another process (Python anchors) time their
// own calls and return the figure, so IPC is not counted; they are still interleaved round by
// round with the rest. `before()` (optional) runs untimed before each sample, e.g. to set the
// thread count of a pool.
'use strict';

const DEBUG = process.env.DENSEVEC_BENCH_DEBUG === '1';
const now = () => Number(process.hrtime.bigint()) / 1e6;

/** Wraps a function (sync, or returning a promise) as an implementation. */
function local(name, fn, extra = {}) {
  return {
    name,
    ...extra,
    async run(reps) {
      const first = fn();
      if (first && typeof first.then === 'function') {
        await first; // settle the first call before timing so async setup does not leak in
        const c0 = process.cpuUsage();
        const t0 = now();
        for (let i = 0; i < reps; i++) await fn();
        return { ms: now() - t0, cpuMs: cpuMs(c0) };
      }
      const c0 = process.cpuUsage();
      const t0 = now();
      for (let i = 0; i < reps; i++) sink(fn());
      return { ms: now() - t0, cpuMs: cpuMs(c0) };
    },
  };
}

// CPU time (user + system, all threads of the process) since c0, in ms.
function cpuMs(c0) {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

// A run reports { ms, cpuMs } or a bare number of ms.
function norm(r) {
  const out = typeof r === 'number' ? { ms: r, cpuMs: null } : r;
  if (!(out && out.ms >= 0)) throw new Error(`harness: a run reported ${JSON.stringify(r)} instead of a time`);
  return out;
}

// Keeps results alive so no call can be optimized away.
let sunk = 0;
function sink(v) {
  if (typeof v === 'number') sunk += v;
  else if (v && v.length !== undefined) sunk += v.length;
  else if (v) sunk += 1;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  const p = (s.length - 1) * q;
  const lo = Math.floor(p);
  const hi = Math.ceil(p);
  return s[lo] + (s[hi] - s[lo]) * (p - lo);
}

/**
 * Runs the implementations interleaved and returns { name: { medianMs, minMs, q1Ms, q3Ms,
 * cpuMedianMs, rounds, reps } } (all per call; cpuMedianMs is process CPU time, all threads).
 */
async function measure(impls, { rounds = 9, minSampleMs = 20, warmupMs = 200, maxReps = 1e6 } = {}) {
  const reps = new Map();
  // Warm-up and calibration: double the repetitions until one sample lasts minSampleMs, then
  // keep going until warmupMs is spent.
  for (const impl of impls) {
    let r = 1;
    let spent = 0;
    let perCall = Infinity;
    for (;;) {
      if (impl.before) await impl.before();
      const t = norm(await impl.run(r)).ms;
      if (DEBUG) console.error(`    warm-up ${impl.name}: ${r} reps ${t.toFixed(2)} ms`);
      spent += t;
      perCall = Math.min(perCall, t / r);
      if (spent >= warmupMs && t >= minSampleMs / 2) break;
      if (t < minSampleMs && r < maxReps) r = Math.min(maxReps, r * 2);
      else if (spent >= warmupMs) break;
    }
    reps.set(impl.name, Math.max(1, Math.min(maxReps, Math.ceil(minSampleMs / perCall))));
  }
  const samples = new Map(impls.map((i) => [i.name, []]));
  const cpu = new Map(impls.map((i) => [i.name, []]));
  for (let round = 0; round < rounds; round++) {
    for (let j = 0; j < impls.length; j++) {
      const impl = impls[(j + round) % impls.length];
      if (impl.before) await impl.before();
      const r = reps.get(impl.name);
      const t = norm(await impl.run(r));
      if (DEBUG) console.error(`    round ${round} ${impl.name}: ${r} reps ${t.ms.toFixed(2)} ms`);
      samples.get(impl.name).push(t.ms / r);
      if (t.cpuMs != null) cpu.get(impl.name).push(t.cpuMs / r);
    }
  }
  const out = {};
  for (const impl of impls) {
    const s = samples.get(impl.name);
    out[impl.name] = {
      medianMs: median(s),
      minMs: Math.min(...s),
      q1Ms: quantile(s, 0.25),
      q3Ms: quantile(s, 0.75),
      cpuMedianMs: cpu.get(impl.name).length ? median(cpu.get(impl.name)) : null,
      rounds: s.length,
      reps: reps.get(impl.name),
    };
  }
  return out;
}

/** Fields of /proc/self/status in bytes (VmRSS, VmHWM, …); {} where there is no /proc. */
function procStatus() {
  const out = {};
  try {
    for (const line of require('node:fs').readFileSync('/proc/self/status', 'utf8').split('\n')) {
      const m = /^(Vm\w+):\s+(\d+) kB/.exec(line);
      if (m) out[m[1]] = Number(m[2]) * 1024;
    }
  } catch {
    /* not Linux */
  }
  return out;
}

/** Resets the kernel's peak-RSS mark (VmHWM) of this process; false where not supported. */
function resetPeakRss() {
  try {
    require('node:fs').writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

module.exports = { procStatus, resetPeakRss, local, measure, median, now, sinkValue: () => sunk };
