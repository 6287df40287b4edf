// Suite 5 — contrastive and margin losses, forward + backward, against PyTorch CPU autograd
// (scripts/bench-torch.py, served in one Python process, runs interleaved with densevec):
//   infoNCE   B = 4096, d = 768, normalize: true, τ = 0.07, positives i → i
//   ntXent    N = 4096 pairs (8192 views), d = 768, τ = 0.1
//   marginSoftmax arcface (s = 30, m = 0.5), N = 4096, C = 10,000, d = 512
//   negativeSamplingLoss (word2vec) n = 4096 anchors, k = 5 negatives each, d = 300
// 1 and 2 threads on both sides (torch.set_num_threads). GFLOP/s counts the three GEMMs of
// forward + backward (6·rows·cols·d) as nominal work. Then the memory of one infoNCE call at
// B = 65,536 in a child process (VmHWM minus VmRSS before the call).
'use strict';

const path = require('node:path');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const { dv, has, impl, Suite, randMatrix, randn, dvThreads } = require('../common');
const { startPython, input } = require('../python');

function labelsFor(n, classes, seed) {
  const u = randn(n, seed);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor((0.5 + 0.5 * Math.tanh(u[i])) * classes) % classes;
  return out;
}

async function lossRow(suite, py, spec) {
  const { name, fn, workload, params, inputs, flop, torchParams } = spec;
  const label = spec.label ?? name;
  if (!has(name)) {
    suite.note(`${name}: not available in this build`);
    return;
  }
  const impls = [];
  for (const t of [1, 2]) impls.push(impl('densevec', 'densevec', t, fn, { before: dvThreads(t) }));
  dv.setThreads(1);
  const mine = fn().loss;
  let theirs = null;
  if (py) {
    try {
      const job = await py.setup(workload, torchParams, inputs);
      theirs = job.value;
      for (const t of [1, 2]) impls.push(py.impl('PyTorch', job.id, t));
      const jobs = [job];
      // bf16 rows: PyTorch under torch.autocast('cpu', dtype=torch.bfloat16) as a second anchor.
      if (spec.autocast) {
        const ac = await py.setup(workload, { ...torchParams, autocast: true }, inputs);
        jobs.push(ac);
        for (const t of [1, 2]) impls.push(py.impl('PyTorch bf16 autocast', ac.id, t));
      }
      spec.cleanup = () => Promise.all(jobs.map((j) => py.free(j.id)));
    } catch (e) {
      suite.note(`PyTorch ${workload} skipped: ${e.message}`);
    }
  }
  const row = await suite.row({
    workload: `${label} fwd+bwd`,
    params,
    impls,
    throughput: (ms) => ({ value: flop / ms / 1e6, unit: 'GFLOP/s' }),
    targets:
      spec.targets ??
      [
        { anchor: 'PyTorch', threads: 1, min: spec.target, what: `1T ≥ ${spec.target}× PyTorch` },
        { anchor: 'PyTorch', threads: 2, min: spec.target, what: `2T ≥ ${spec.target}× PyTorch` },
        { kind: 'scaling', label: 'densevec', min: 1.8, what: 'densevec 2T/1T ≥ 1.8' },
        // GFLOP/s counts the three GEMMs, so its fraction of the measured peak is the fraction of
        // the three-GEMM floor (the time those GEMMs alone would take at peak) that a call reaches.
        spec.gemmFloor !== false && {
          kind: 'peak',
          threads: 1,
          densevec: 'densevec',
          min: 0.85,
          what: '1T ≥ 85 % of the three-GEMM floor at the measured peak',
        },
      ].filter(Boolean),
    extra: { loss: { densevec: mine, pytorch: theirs } },
    opts: suite.quick ? { rounds: 3 } : {}, // calls of seconds: three interleaved rounds in a quick pass
  });
  if (theirs !== null) suite.note(`${label}: loss densevec ${mine.toPrecision(7)} vs PyTorch ${theirs.toPrecision(7)}`);
  if (spec.cleanup) await spec.cleanup();
  return row;
}

/**
 * A bf16 row (precision: 'bf16'): anchors PyTorch f32 and PyTorch bf16 autocast; targets from
 * PERF.md (≥ 2.5× PyTorch f32, ≥ 1.2× PyTorch bf16 autocast, one thread, side by side).
 */
function bf16Spec(spec) {
  return {
    ...spec,
    label: `${spec.name} bf16`,
    autocast: true,
    targets: [
      { anchor: 'PyTorch', threads: 1, min: 2.5, what: '1T ≥ 2.5× PyTorch f32' },
      { anchor: 'PyTorch bf16 autocast', threads: 1, min: 1.2, what: '1T ≥ 1.2× PyTorch bf16 autocast' },
      { kind: 'scaling', label: 'densevec', min: 1.8, what: 'densevec 2T/1T ≥ 1.8' },
    ],
  };
}

/**
 * A loss's f32 row and its bf16 row ({@link bf16Spec}): `call(o)` runs the loss with `o` merged
 * into its options ({} for f32, { precision: 'bf16' }); the bf16 row's params add the precision.
 */
async function lossRows(suite, py, spec) {
  const { call, ...rest } = spec;
  await lossRow(suite, py, { ...rest, fn: () => call({}) });
  const bf16 = { precision: 'bf16' };
  await lossRow(suite, py, bf16Spec({ ...rest, fn: () => call(bf16), params: { ...rest.params, ...bf16 } }));
}

/** Runs bench/suites/learning-memory.js in a child; resolves to its report (or a partial one). */
function memoryChild(B, d, threads, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', path.join(__dirname, 'learning-memory.js'), String(B), String(d), String(threads)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    let ready = null;
    child.stdout.on('data', (x) => {
      out += x;
      for (const l of out.split('\n')) {
        try {
          const m = JSON.parse(l);
          if (m.phase === 'ready') ready = m;
        } catch {
          /* partial line */
        }
      }
    });
    const timer = setTimeout(() => {
      let hwm = null;
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        hwm = m ? Number(m[1]) * 1024 : null;
      } catch {
        /* gone */
      }
      child.kill();
      resolve({ finished: false, timeoutMs, ready, peakSoFarExtraBytes: ready && hwm ? hwm - ready.rssBytes : null });
    }, timeoutMs);
    child.on('close', () => {
      clearTimeout(timer);
      const lines = out.trim().split('\n');
      try {
        resolve(JSON.parse(lines[lines.length - 1]));
      } catch {
        resolve({ finished: false, error: out.slice(-500) });
      }
    });
  });
}

module.exports = async function learning({ quick, smoke }) {
  const suite = new Suite('learning', { quick });
  const py = await startPython(suite, 'bench-torch.py', 'PyTorch');
  const S = smoke ? 8 : 1;

  {
    const B = 4096 / S;
    const d = 768;
    const q = randMatrix(B, d, 51);
    const k = randMatrix(B, d, 52);
    await lossRows(suite, py, {
      name: 'infoNCE',
      workload: 'infonce',
      call: (o) => dv.infoNCE(q, k, { temperature: 0.07, normalize: true, ...o }),
      params: { B, d, temperature: 0.07, normalize: true },
      torchParams: { temperature: 0.07, normalize: true },
      inputs: py ? { q: input(q.data, [B, d]), keys: input(k.data, [B, d]) } : {},
      flop: 6 * B * B * d,
      target: 1.3, // PERF.md (f32, one run, side by side)
    });
    const a = randMatrix(B, d, 53);
    const b = randMatrix(B, d, 54);
    await lossRows(suite, py, {
      name: 'ntXent',
      workload: 'ntxent',
      call: (o) => dv.ntXent(a, b, { temperature: 0.1, ...o }),
      params: { N: B, d, temperature: 0.1 },
      torchParams: { temperature: 0.1 },
      inputs: py ? { a: input(a.data, [B, d]), b: input(b.data, [B, d]) } : {},
      flop: 6 * (2 * B) * (2 * B) * d,
      target: 1.5, // PERF.md (f32, one run, side by side)
    });
  }
  {
    const N = 4096 / S;
    const C = 10000 / S;
    const d = 512;
    const x = randMatrix(N, d, 55);
    const w = randMatrix(C, d, 56);
    const labels = labelsFor(N, C, 57);
    const opts = { kind: 'arcface', scale: 30, margin: 0.5 };
    await lossRows(suite, py, {
      name: 'marginSoftmax',
      workload: 'margin',
      call: (o) => dv.marginSoftmax(x, w, labels, { ...opts, ...o }),
      params: { N, C, d, ...opts },
      torchParams: opts,
      inputs: py ? { x: input(x.data, [N, d]), prototypes: input(w.data, [C, d]), labels: input(labels, [N]) } : {},
      flop: 6 * N * C * d,
      target: 1.5, // PERF.md (f32, one run, side by side)
    });
  }
  {
    const n = 4096 / S;
    const k = 5;
    const d = 300;
    const x = randMatrix(n, d, 58);
    const yp = randMatrix(n, d, 59);
    const yn = randMatrix(n * k, d, 60);
    await lossRow(suite, py, {
      name: 'negativeSamplingLoss',
      workload: 'negsampling',
      fn: () => dv.negativeSamplingLoss(x, yp, yn, { k }),
      params: { n, k, d },
      torchParams: { n, k, d },
      inputs: py ? { x: input(x.data, [n, d]), positives: input(yp.data, [n, d]), negatives: input(yn.data, [n * k, d]) } : {},
      // Forward dots and the three gradient updates: 2 + 2 + 2 flops per scored row and column.
      flop: 6 * n * (k + 1) * d,
      target: 1.0,
      gemmFloor: false, // bandwidth-bound row dots: no GEMM floor to compare with
    });
  }
  if (py) await py.stop();

  if (has('infoNCE')) {
    const B = smoke ? 8192 : 65536;
    const d = 768;
    const timeoutMs = smoke ? 120e3 : quick ? 480e3 : 900e3;
    console.log(`\n--- infoNCE memory, B = ${B}, d = ${d}, 2 threads (child process, up to ${timeoutMs / 1000} s)`);
    const m = await memoryChild(B, d, 2, timeoutMs);
    const inputBytes = 2 * B * d * 4;
    const outputBytes = 2 * B * d * 4;
    m.inputBytes = inputBytes;
    m.gradientBytes = outputBytes;
    suite.extra.memory = { B, d, ...m };
    const mib = (x) => `${(x / 2 ** 20).toFixed(0)} MiB`;
    if (m.finished) {
      suite.note(
        `infoNCE B=${B}: peak extra ${mib(m.extraBytes)} over the ${mib(inputBytes)} of inputs (of which ${mib(outputBytes)} are the returned gradients; the B×B logits would be ${mib(B * B * 4)}), ${(m.ms / 1000).toFixed(1)} s, ${m.extraBytes < 2 ** 30 ? 'under' : 'OVER'} 1 GiB`,
      );
    } else {
      suite.note(
        `infoNCE B=${B}: did not finish within ${timeoutMs / 1000} s; peak extra so far ${m.peakSoFarExtraBytes == null ? 'unknown' : mib(m.peakSoFarExtraBytes)}${m.error ? ` (${m.error})` : ''}`,
      );
    }
  } else {
    suite.note('infoNCE memory at B = 65,536: not available in this build');
  }
  return suite.write();
};
