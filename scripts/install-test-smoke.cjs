// Smoke test of released tarballs, as a user gets them: installs every *.tgz of a folder
// (densevec-<version>.tgz and one densevec-<platform>-<version>.tgz) offline into a fresh
// project under the temp dir and checks that the native backend loads from the platform
// package and agrees with the reference on every ISA of this CPU, from CommonJS and ESM.
//
//   node scripts/install-test-smoke.cjs TARBALL_DIR
//
// Needs only node and npm (no Rust, no source tree), so the release workflow runs it on each
// platform, for Linux arm64 and musl inside `docker run --platform … node:20[-alpine]`.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const dir = path.resolve(process.argv[2] || '.');
const tarballs = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.tgz'))
  .map((f) => path.join(dir, f));
if (!tarballs.some((t) => /[\\/]densevec-\d[^\\/]*\.tgz$/.test(t)) || tarballs.length < 2) {
  console.error(`install-test-smoke: ${dir} needs densevec-<version>.tgz and a densevec-<platform>-<version>.tgz, found: ${tarballs.join(', ') || 'none'}`);
  process.exit(2);
}

const project = fs.mkdtempSync(path.join(os.tmpdir(), 'densevec-smoke-'));
fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'smoke', version: '1.0.0', private: true }));

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const install = spawnSync(npm, ['install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', ...tarballs], {
  cwd: project,
  encoding: 'utf8',
  shell: process.platform === 'win32',
  env: { ...process.env, npm_config_cache: path.join(project, '.npm-cache') },
});
process.stdout.write(install.stdout);
process.stderr.write(install.stderr);
if (install.status !== 0) {
  console.error(`install-test-smoke: npm install failed (${install.status})`);
  process.exit(1);
}
if (/densevec[^ ]*@[\d.]+ (preinstall|install|postinstall|prepare)/.test(install.stdout + install.stderr)) {
  console.error('install-test-smoke: a lifecycle script of densevec ran at install');
  process.exit(1);
}

const CHECK_CJS = `'use strict';
const assert = require('node:assert/strict');
const dv = require('densevec');
const ref = require('densevec/reference');
const info = dv.backendInfo();
console.log(JSON.stringify(info));
assert.equal(info.backend, 'native', 'native backend expected: ' + info.nativeError);
assert.ok(['avx512', 'avx2', 'neon', 'scalar'].includes(info.isa), 'isa ' + info.isa);
const addon = Object.keys(require.cache).filter((f) => f.endsWith('.node'));
assert.equal(addon.length, 1);
assert.match(addon[0], /node_modules[\\\\/]densevec-[a-z0-9-]+[\\\\/]densevec\\.[a-z0-9-]+\\.node$/);
let s = 12345;
const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296) * 2 - 1;
const vec = (n) => Float32Array.from({ length: n }, rnd);
const near = (x, y, what) => assert.ok(Math.abs(x - y) <= 1e-4 + 1e-4 * Math.abs(y), what + ': ' + x + ' vs ' + y);
for (const isa of dv.availableIsas()) {
  dv.setIsa(isa);
  for (const n of [1, 7, 31, 64, 257, 1000]) {
    const a = vec(n), b = vec(n);
    near(dv.dot(a, b), ref.dot(a, b), isa + ' dot n=' + n);
    near(dv.cosine(a, b), ref.cosine(a, b), isa + ' cosine n=' + n);
    near(dv.l2sq(a, b), ref.l2sq(a, b), isa + ' l2sq n=' + n);
  }
  const q = { data: vec(5 * 33), rows: 5, cols: 33 };
  const c = { data: vec(40 * 33), rows: 40, cols: 33 };
  const t = dv.topK(q, c, 4), u = ref.topK(q, c, 4);
  assert.deepEqual(Array.from(t.indices), Array.from(u.indices), isa + ' topK indices');
  t.scores.forEach((x, i) => near(x, u.scores[i], isa + ' topK score ' + i));
}
console.log('cjs ok: ' + dv.availableIsas().join(','));
`;

const CHECK_ESM = `import assert from 'node:assert/strict';
import { dot, backendInfo } from 'densevec';
import { dot as refDot } from 'densevec/reference';
const a = Float32Array.from([1, 2, 3]), b = Float32Array.from([4, 5, 6]);
assert.equal(backendInfo().backend, 'native');
assert.equal(dot(a, b), 32);
assert.equal(refDot(a, b), 32);
console.log('esm ok');
`;

fs.writeFileSync(path.join(project, 'check.cjs'), CHECK_CJS);
fs.writeFileSync(path.join(project, 'check.mjs'), CHECK_ESM);
let failed = false;
for (const f of ['check.cjs', 'check.mjs']) {
  const r = spawnSync(process.execPath, [f], { cwd: project, encoding: 'utf8' });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  if (r.status !== 0) failed = true;
}
fs.rmSync(project, { recursive: true, force: true });
if (failed) {
  console.error('install-test-smoke: FAILED');
  process.exit(1);
}
console.log(`install-test-smoke: ${process.platform}-${process.arch} ok`);
