// npm's `prepare` (run by `npm install` in a clone and by `npm pack` / `npm publish`): builds
// only what is missing or older than its sources, so that packing a current build does not
// rebuild it and a fresh clone still gets the release addon and dist/.
//   - the addon (lib/native/densevec.<platform>.node and the generated loader) against crates/,
//     Cargo.toml and Cargo.lock: `npm run build:native` (release), then the TypeScript;
//   - dist/ against lib/**/*.ts, tsconfig.json, scripts/post-build.cjs and the addon it copies:
//     `npm run build:ts`.
// `node scripts/prepare.cjs --dry-run` prints the plan as JSON and builds nothing.
// Installing the published tarball never runs this (npm runs `prepare` of a dependency only for
// git and linked-folder sources) and the package has no install script.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const SKIP_DIRS = new Set(['node_modules', 'target', '.git', 'dist']);

/** Newest modification time (ms) of the files under `p` (a file or a directory); 0 when absent. */
function newest(p, filter = () => true) {
  let st;
  try {
    st = fs.statSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return filter(p) ? st.mtimeMs : 0;
  let t = 0;
  for (const e of fs.readdirSync(p, { withFileTypes: true })) {
    if (e.isDirectory() && SKIP_DIRS.has(e.name)) continue;
    t = Math.max(t, newest(path.join(p, e.name), filter));
  }
  return t;
}

/** Oldest modification time (ms) of `files`; 0 when any is missing. */
function oldest(files) {
  let t = Infinity;
  for (const f of files) {
    try {
      t = Math.min(t, fs.statSync(f).mtimeMs);
    } catch {
      return 0;
    }
  }
  return t === Infinity ? 0 : t;
}

/** The addon files in lib/native (the binary of this platform and its loader). */
function addonFiles(root) {
  const dir = path.join(root, 'lib', 'native');
  let names = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const bins = names.filter((n) => /^densevec\..+\.node$/.test(n));
  if (bins.length === 0) return [];
  return [...bins.map((n) => path.join(dir, n)), path.join(dir, 'binding.cjs')];
}

/** What needs building under `root`: `{ native, ts, reason }`. */
function plan(root) {
  const addon = addonFiles(root);
  const nativeSrc = Math.max(newest(path.join(root, 'crates')), newest(path.join(root, 'Cargo.toml')), newest(path.join(root, 'Cargo.lock')));
  const addonTime = oldest(addon);
  if (addonTime === 0 || addonTime < nativeSrc) {
    return { native: true, ts: true, reason: addonTime === 0 ? 'no addon in lib/native' : 'the Rust sources are newer than the addon' };
  }
  const tsSrc = Math.max(
    newest(path.join(root, 'lib'), (f) => f.endsWith('.ts') && !f.includes(`${path.sep}native${path.sep}`)),
    newest(path.join(root, 'tsconfig.json')),
    newest(path.join(root, 'scripts', 'post-build.cjs')),
    newest(path.join(root, 'lib', 'native')),
  );
  const dist = ['index.js', 'index.mjs', 'index.d.ts', path.join('reference', 'index.js'), path.join('native', 'binding.cjs')];
  const distTime = oldest(dist.map((f) => path.join(root, 'dist', f)));
  if (distTime === 0 || distTime < tsSrc) {
    return { native: false, ts: true, reason: distTime === 0 ? 'no dist/' : 'lib/ or the addon is newer than dist/' };
  }
  return { native: false, ts: false, reason: 'the addon and dist/ are current' };
}

function npmRun(script, root) {
  const npm = process.env.npm_execpath;
  const [cmd, args] = npm ? [process.execPath, [npm, 'run', script]] : [process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', script]];
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: !npm && process.platform === 'win32' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (require.main === module) {
  const root = path.join(__dirname, '..');
  const p = plan(root);
  if (process.argv.includes('--dry-run')) {
    process.stdout.write(`${JSON.stringify(p)}\n`);
  } else {
    console.log(`densevec prepare: ${p.reason}${p.native || p.ts ? '; building' : '; nothing to build'}`);
    if (p.native) npmRun('build:native', root);
    if (p.ts) npmRun('build:ts', root);
  }
}

module.exports = { plan };
