'use strict';
/**
 * A throwaway Redis for the sharded example, its benchmark and its tests: a free loopback port,
 * PING, a redis-server started without persistence, and stopping a child process.
 */
const { spawn } = require('node:child_process');
const net = require('node:net');

/** Whether a Redis server answers PING at host:port within timeoutMs. */
function pingRedis(host, port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts redis-server on a free loopback port (no snapshots, no append-only file) and waits up to
 * 10 s for it to answer. Resolves to { url, port, proc }; rejects when it cannot be started or
 * does not answer (the process is then killed).
 */
async function startRedis() {
  const port = await freePort();
  const proc = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'], {
    stdio: 'ignore',
  });
  const failed = new Promise((_, reject) =>
    proc.on('error', (e) => reject(new Error(`cannot start redis-server (${e.message}); install it or set REDIS_URL`))),
  );
  for (let i = 0; i < 100; i++) {
    if (await Promise.race([pingRedis('127.0.0.1', port, 300), failed])) return { url: `redis://127.0.0.1:${port}`, port, proc };
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill('SIGKILL');
  throw new Error(`redis-server on 127.0.0.1:${port} did not answer`);
}

/** Sends SIGTERM, then SIGKILL after 3 s; resolves when the process has exited. */
function stopProcess(p) {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), 3000);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

module.exports = { pingRedis, freePort, startRedis, stopProcess };
