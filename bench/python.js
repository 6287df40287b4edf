// Client of the Python anchors (scripts/bench-*.py --serve): one long-lived process per script,
// one JSON command per line. Inputs travel as raw float32/uint32 files in a temporary folder.
// Everything here is optional: without python3 or a package the rows are skipped with a note.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const SCRIPTS = path.join(__dirname, '..', 'scripts');
const PYTHON = process.env.DENSEVEC_BENCH_PYTHON || 'python3';
let tmpDir = null;
let fileSeq = 0;
const live = new Set();

function tmp() {
  if (!tmpDir) {
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'densevec-bench-'));
    process.on('exit', () => {
      for (const p of live) p.kill();
      fs.rmSync(tmpDir, { recursive: true, force: true });
    });
  }
  return tmpDir;
}

/** Writes a typed array to a temporary file and returns the input spec for the Python side. */
function input(arr, shape) {
  const file = path.join(tmp(), `in${fileSeq++}.bin`);
  fs.writeFileSync(file, Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength));
  const dtype = arr instanceof Uint32Array ? 'uint32' : arr instanceof Float64Array ? 'float64' : 'float32';
  return { path: file, dtype, shape };
}

class PyAnchor {
  constructor(script, proc, versions) {
    this.script = script;
    this.proc = proc;
    this.versions = versions;
    this.queue = [];
    this.seq = 0;
  }

  /** Starts `scripts/<script> --serve`; resolves to a PyAnchor or { error }. */
  static async start(script, threads = 1) {
    const env = {
      ...process.env,
      // Idle OpenMP workers must sleep, not spin, while densevec runs between their rounds.
      OMP_WAIT_POLICY: 'PASSIVE',
      OMP_NUM_THREADS: String(threads),
      OPENBLAS_NUM_THREADS: String(threads),
      MKL_NUM_THREADS: String(threads),
      PYTHONWARNINGS: 'ignore',
    };
    let proc;
    try {
      proc = spawn(PYTHON, [path.join(SCRIPTS, script), '--serve'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      return { error: `${PYTHON} could not start: ${e.message}` };
    }
    let stderr = '';
    proc.stderr.on('data', (d) => {
      stderr += d;
      if (stderr.length > 20000) stderr = stderr.slice(-10000);
    });
    const lines = readline.createInterface({ input: proc.stdout });
    const pending = [];
    const waiters = [];
    lines.on('line', (l) => {
      let msg;
      try {
        msg = JSON.parse(l);
      } catch {
        return; // stray output of a library
      }
      const w = waiters.shift();
      if (w) w.resolve(msg);
      else pending.push(msg);
    });
    const closed = new Promise((resolve) => {
      proc.on('error', (e) => resolve({ ready: false, error: e.message }));
      proc.on('close', (code) => {
        const err = { ok: false, ready: false, error: `exited with code ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}` };
        for (const w of waiters.splice(0)) w.resolve(err);
        resolve(err);
      });
    });
    const next = () => (pending.length ? Promise.resolve(pending.shift()) : new Promise((resolve) => waiters.push({ resolve })));
    const hello = await Promise.race([next(), closed]);
    if (!hello.ready) {
      proc.kill();
      return { error: hello.error ?? 'did not start' };
    }
    live.add(proc);
    const a = new PyAnchor(script, proc, hello.versions);
    a.next = next;
    a.closed = closed;
    return a;
  }

  async call(msg) {
    // Commands are strictly sequential: the harness awaits each one.
    this.proc.stdin.write(`${JSON.stringify(msg)}\n`);
    const reply = await Promise.race([this.next(), this.closed]);
    if (!reply.ok) throw new Error(`${this.script} ${msg.cmd} ${msg.workload ?? msg.id ?? ''}: ${reply.error}`);
    return reply;
  }

  /** Prepares a workload; returns { id, value, info }. */
  async setup(workload, params, inputs, threads = 1) {
    const id = `${workload}-${this.seq++}`;
    const r = await this.call({ cmd: 'setup', id, workload, params, inputs, threads });
    return { id, value: r.value, info: r.info };
  }

  /** A harness implementation that runs job `id` with `threads` threads in the Python process. */
  impl(label, id, threads, extra = {}) {
    return {
      name: `${label} ${threads}T`,
      label,
      group: 'anchor',
      threads,
      ...extra,
      run: async (reps) => {
        const r = await this.call({ cmd: 'run', id, reps, threads });
        return { ms: r.ms, cpuMs: r.cpu_ms ?? null };
      },
    };
  }

  async free(id) {
    await this.call({ cmd: 'free', id });
  }

  async stop() {
    try {
      await this.call({ cmd: 'exit' });
    } catch {
      /* already gone */
    }
    this.proc.kill();
    live.delete(this.proc);
  }
}

/** Starts a Python anchor or returns null after adding a note to the suite. */
async function startPython(suite, script, what) {
  const a = await PyAnchor.start(script);
  if (a.error) {
    suite.note(`${what} rows skipped: scripts/${script} unavailable (${a.error})`);
    return null;
  }
  suite.extra.python = { ...(suite.extra.python ?? {}), [script]: a.versions };
  return a;
}

module.exports = { PyAnchor, startPython, input };
