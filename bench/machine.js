// The machine's own limits, measured in the same run as the rows that are compared with them:
// the single-core fp32 FMA peak (bench/peak/fma_peak.c, compiled with the system C compiler) and
// the single-thread copy bandwidth. GEMM-bound rows are printed as a fraction of the peak,
// bandwidth-bound rows as a fraction of the copy bandwidth.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const SRC = path.join(__dirname, 'peak', 'fma_peak.c');

/** Compiles (once per source version) and runs the FMA loop: { avx2, avx512, peak } GFLOP/s, or { error }. */
function fmaPeak() {
  if (process.arch !== 'x64') return { error: `no FMA loop for ${process.arch}` };
  const dir = path.join(os.tmpdir(), `densevec-bench-${process.getuid ? process.getuid() : 'u'}`);
  fs.mkdirSync(dir, { recursive: true });
  const bin = path.join(dir, `fma_peak-${Math.round(fs.statSync(SRC).mtimeMs)}`);
  if (!fs.existsSync(bin)) {
    const cc = process.env.CC || 'cc';
    const r = spawnSync(cc, ['-O2', '-o', bin, SRC], { encoding: 'utf8' });
    if (r.status !== 0) return { error: `could not compile ${path.basename(SRC)} with ${cc}: ${(r.stderr || r.error || '').toString().trim().split('\n')[0]}` };
  }
  const r = spawnSync(bin, [], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) return { error: `fma_peak failed: ${r.stderr || r.error}` };
  return JSON.parse(r.stdout);
}

/** Single-thread copy bandwidth in GB/s (bytes copied per second, best of several 64 MiB copies, CPU time). */
function copyBandwidth() {
  const n = 16 * 1024 * 1024; // 64 MiB of float32, far larger than any cache here
  const src = new Float32Array(n).fill(1);
  const dst = new Float32Array(n);
  dst.set(src);
  let best = 0;
  for (let r = 0; r < 7; r++) {
    const t0 = process.cpuUsage();
    dst.set(src);
    const dt = process.cpuUsage(t0);
    const s = (dt.user + dt.system) / 1e6;
    if (s > 0) best = Math.max(best, (n * 4) / s / 1e9);
  }
  return best;
}

/** Family/model and the SIMD flags that matter here, from /proc/cpuinfo (Linux); null elsewhere. */
function cpuId() {
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n\n')[0];
    const field = (k) => (info.match(new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm')) || [])[1];
    const flags = new Set((field('flags') || '').split(/\s+/));
    return {
      vendor: field('vendor_id'),
      family: Number(field('cpu family')),
      model: Number(field('model')),
      simd: ['avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_bf16', 'f16c'].filter((f) => flags.has(f)),
    };
  } catch {
    return null;
  }
}

let cached = null;

/** { cpu, cpuId, fma: { avx2, avx512, peak } | { error }, peakGflopsPerCore, copyGBs }, measured once per process. */
function machine() {
  if (cached) return cached;
  const fma = fmaPeak();
  cached = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpuId: cpuId(),
    fma,
    peakGflopsPerCore: fma.peak ?? null,
    copyGBs: copyBandwidth(),
  };
  const peak = cached.peakGflopsPerCore
    ? `${cached.peakGflopsPerCore.toFixed(1)} GFLOP/s per core (fp32 FMA, avx2 ${fma.avx2}, avx512 ${fma.avx512})`
    : `not measured (${fma.error})`;
  const id = cached.cpuId ? ` (${cached.cpuId.vendor} family ${cached.cpuId.family} model ${cached.cpuId.model}; ${cached.cpuId.simd.join(' ')})` : '';
  console.log(`machine: ${cached.cpu}${id}; peak ${peak}; copy ${cached.copyGBs.toFixed(1)} GB/s (1 thread)`);
  return cached;
}

module.exports = { machine };
