/**
 * What a user gets from `npm install densevec`: the packed main package and the packed
 * per-platform package are installed offline into a fresh project under os.tmpdir(), with no
 * Rust toolchain on PATH and no way to reach this source tree, and used from CommonJS, ESM and
 * TypeScript. A second project installs the main package alone and must fall back to the
 * pure-TypeScript reference. Also checks what each package ships (`npm pack --dry-run`).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { close } from './helpers';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const ref = require(path.join(root, 'dist', 'reference', 'index.js'));
const { hostPlatform, stageBinary } = require(path.join(root, 'scripts', 'stage-binary.cjs')) as {
  hostPlatform: () => string;
  stageBinary: (platform?: string) => string;
};

const platform = hostPlatform();
const binaryFile = `densevec.${platform}.node`;
const platformPkg = `densevec-${platform}`;
const WARNING = 'densevec: native addon unavailable, using the pure-TypeScript reference backend';

/** npm's own entry script, run with this node so that no shell or npm shim is involved. */
function npmCli(): string {
  const fromEnv = process.env.npm_execpath;
  if (fromEnv && /npm-cli\.js$/.test(fromEnv) && fs.existsSync(fromEnv)) return fromEnv;
  const beside = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
  if (fs.existsSync(beside)) return beside;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const cand = path.join(dir, 'npm');
    if (fs.existsSync(cand)) {
      const real = fs.realpathSync(cand);
      if (real.endsWith('.js')) return real;
    }
    const win = path.join(dir, 'node_modules', 'npm', 'bin', 'npm-cli.js');
    if (fs.existsSync(win)) return win;
  }
  throw new Error('cannot find npm-cli.js');
}

let tmp = '';
let npm = '';
let childEnv: NodeJS.ProcessEnv = {};

/** An environment without npm's script variables, with a PATH that has node but no cargo/rustc. */
function makeChildEnv(binDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|vitest|node_options$|node_path$|napi_rs_|densevec_)/i.test(k)) continue;
    env[k] = v;
  }
  if (process.platform === 'win32') {
    // Keep the directories that do not hold a Rust toolchain.
    const pathKey = Object.keys(env).find((k) => k.toUpperCase() === 'PATH') ?? 'PATH';
    const dirs = (env[pathKey] ?? '').split(path.delimiter).filter((d) => !['cargo.exe', 'rustc.exe'].some((f) => fs.existsSync(path.join(d, f))));
    env[pathKey] = [path.dirname(process.execPath), ...dirs].join(path.delimiter);
  } else {
    // Only node: /usr/bin and friends also hold a Debian cargo/rustc on some machines.
    fs.mkdirSync(binDir, { recursive: true });
    fs.symlinkSync(process.execPath, path.join(binDir, 'node'));
    env.PATH = binDir;
  }
  env.npm_config_cache = path.join(tmp, 'npm-cache');
  env.npm_config_userconfig = path.join(tmp, 'npmrc');
  env.npm_config_update_notifier = 'false';
  env.npm_config_fund = 'false';
  env.npm_config_audit = 'false';
  return env;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = childEnv): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 240_000, maxBuffer: 64 << 20 });
}

function ok(r: SpawnSyncReturns<string>, what: string): SpawnSyncReturns<string> {
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${what} exited ${r.status}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string; size: number }[];
}

/** `npm pack` of a package directory (no lifecycle scripts: the output is JSON, and the build under test is packed as it is). */
function pack(dir: string, dest: string | null): PackResult {
  const args = [npm, 'pack', '--json', '--ignore-scripts'];
  if (dest === null) args.push('--dry-run');
  else args.push('--pack-destination', dest);
  const r = ok(run(process.execPath, args, dir, { ...childEnv, PATH: process.env.PATH }), `npm pack in ${dir}`);
  const json = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')));
  return json[0] as PackResult;
}

/**
 * The optionalDependencies `napi prepublish` writes into package.json at release time: one
 * densevec-<platform> per napi target (= per npm/<platform> folder), at the same version. They are
 * not committed: until the platform packages exist on the registry, `npm ci` would reject a lock
 * file that cannot contain them.
 */
function releaseOptionalDependencies(): Record<string, string> {
  const dirs = fs.readdirSync(path.join(root, 'npm')).sort();
  return Object.fromEntries(dirs.map((d) => [`densevec-${d}`, pkg.version as string]));
}

/**
 * The main package as `npm publish` sees it after `napi prepublish`: the files npm would pack
 * from the repository (its `files` allowlist) and package.json with the release optionalDependencies.
 */
function stageMainPackage(dest: string): void {
  for (const f of pack(root, null).files) {
    fs.mkdirSync(path.dirname(path.join(dest, f.path)), { recursive: true });
    fs.copyFileSync(path.join(root, f.path), path.join(dest, f.path));
  }
  const manifest = { ...pkg, optionalDependencies: releaseOptionalDependencies() };
  fs.writeFileSync(path.join(dest, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

// Inputs shared by the consumers (read from inputs.json) and the expectations here.
const COLS = 19;
const inputs = {
  cols: COLS,
  a: Array.from({ length: COLS }, (_, i) => Math.fround(Math.sin(0.7 * i + 0.3))),
  b: Array.from({ length: COLS }, (_, i) => Math.fround(Math.cos(1.3 * i - 0.2))),
  q: Array.from({ length: 3 * COLS }, (_, i) => Math.fround(Math.sin(0.37 * i * i + 1))),
  c: Array.from({ length: 5 * COLS }, (_, i) => Math.fround(Math.cos(0.23 * i * i - 0.5))),
  labels: [0, 3, 1],
};

/**
 * One call per chapter, by the API contract, run when the installed build exports the
 * function. Argument tokens: 'vec:a', 'mat:q' (3 rows), 'mat:c' (5 rows), 'mat:c3' (first 3 rows
 * of c), 'mat:cT' (c's data read as COLS × 5), 'labels'; anything else is passed as is.
 */
const CHAPTER_CALLS: [chapter: string, fn: string, args: unknown[]][] = [
  ['statistics', 'nullCosine', [COLS]],
  ['statistics', 'cosinePValue', [0.3, COLS]],
  ['statistics', 'similarityStats', ['mat:c']],
  ['contrastive', 'softmaxProbabilities', ['vec:a', 'mat:c', 0.5]],
  ['contrastive', 'mismatchScore', ['mat:q', 'mat:c3']],
  ['contrastive', 'infoNCE', ['mat:q', 'mat:c', { temperature: 0.5 }]],
  ['margin', 'marginSoftmax', ['mat:q', 'mat:c', 'labels', { kind: 'cosface', scale: 4 }]],
  ['geometry', 'matmul', ['mat:q', 'mat:cT']],
  ['geometry', 'knnClassify', ['mat:c', 'labels5', 'mat:q', 3]],
  ['regularizers', 'normPenalty', ['mat:q', 0.1]],
  ['regularizers', 'embeddingDrift', ['mat:q', 'mat:c3']],
];

const SHARED = `
const input = JSON.parse(require('node:fs').readFileSync(require('node:path').join(__dirname, 'inputs.json'), 'utf8'));
const F = (x) => Float32Array.from(x);
const M = (data, rows, cols) => ({ data: F(data), rows, cols });
const args = (tok) => {
  if (tok === 'vec:a') return F(input.a);
  if (tok === 'vec:b') return F(input.b);
  if (tok === 'mat:q') return M(input.q, 3, input.cols);
  if (tok === 'mat:c') return M(input.c, 5, input.cols);
  if (tok === 'mat:c3') return M(input.c.slice(0, 3 * input.cols), 3, input.cols);
  if (tok === 'mat:cT') return M(input.c, input.cols, 5);
  if (tok === 'labels') return Uint32Array.from(input.labels);
  if (tok === 'labels5') return Uint32Array.from([0, 1, 0, 1, 1]);
  return tok;
};
const plain = (v) => {
  if (ArrayBuffer.isView(v)) return Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'function') return '[function]';
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
};
const attempt = (f) => { try { return { value: plain(f()) }; } catch (e) { return { error: String(e && e.code) + ' ' + String(e && e.message) }; } };
`;

const CONSUMER_CJS = `'use strict';
${SHARED}
const dv = require('densevec');
const again = require('densevec');
const ref = require('densevec/reference');
const a = args('vec:a'), b = args('vec:b'), q = args('mat:q'), c = args('mat:c');
const out = {
  resolved: { main: require.resolve('densevec'), reference: require.resolve('densevec/reference') },
  sameInstance: dv === again,
  info: dv.backendInfo(),
  exports: Object.keys(dv).sort(),
  similarity: {
    dot: dv.dot(a, b), cosine: dv.cosine(a, b), topK: plain(dv.topK(q, c, 3)),
    refDot: ref.dot(a, b), refCosine: ref.cosine(a, b), refTopK: plain(ref.topK(q, c, 3)),
  },
  chapters: {},
};
for (const [chapter, fn, toks] of JSON.parse(process.argv[2])) {
  if (typeof dv[fn] !== 'function') continue;
  (out.chapters[chapter] ||= {})[fn] = {
    native: attempt(() => dv[fn](...toks.map(args))),
    reference: attempt(() => ref[fn](...toks.map(args))),
  };
}
out.loadedAddons = Object.keys(require.cache).filter((f) => f.endsWith('.node'));
out.loadedFiles = Object.keys(require.cache);
process.stdout.write(JSON.stringify(out));
`;

const CONSUMER_ESM = `import { createRequire } from 'node:module';
import dvDefault, { dot, cosine, topK, backendInfo, DensevecError } from 'densevec';
import * as dv from 'densevec';
import * as ref from 'densevec/reference';
import refDefault from 'densevec/reference';
const require = createRequire(import.meta.url);
const cjs = require('densevec');
const cjsRef = require('densevec/reference');
const a = Float32Array.from([1, 2, 3, 4, 5]);
const b = Float32Array.from([5, 4, 3, 2, -1]);
const q = { data: Float32Array.from([1, 0, 0, 1]), rows: 2, cols: 2 };
const c = { data: Float32Array.from([1, 0.1, 0, 1, -1, 0, 0.5, 0.5]), rows: 4, cols: 2 };
const t = topK(q, c, 2);
process.stdout.write(JSON.stringify({
  resolvedMain: import.meta.resolve('densevec'),
  resolvedReference: import.meta.resolve('densevec/reference'),
  sharesCjsInstance: dv.dot === cjs.dot && dvDefault === cjs && ref.dot === cjsRef.dot && refDefault === cjsRef,
  missingNamed: Object.keys(cjs).filter((n) => !(n in dv)),
  missingNamedReference: Object.keys(cjsRef).filter((n) => !(n in ref)),
  errorClassShared: DensevecError === cjs.DensevecError,
  dot: dot(a, b), cosine: cosine(a, b), refDot: ref.dot(a, b),
  topK: { indices: Array.from(t.indices), scores: Array.from(t.scores) },
  backend: backendInfo().backend,
}));
`;

const CONSUMER_TS = `import { dot, cosine, topK, matrix, backendInfo, setBackend, DensevecError } from 'densevec';
import type { BackendInfo, Matrix, ErrorCode } from 'densevec';
import * as ref from 'densevec/reference';

const a = new Float32Array([1, 2, 3]);
const d: number = dot(a, a) + cosine(a, a);
const m: Matrix = matrix(new Float32Array(6), 3);
const r = topK(m, m, 1, { metric: 'dot' });
const idx: Uint32Array = r.indices;
const s: Float32Array = r.scores;
const info: BackendInfo = backendInfo();
const backend: 'native' | 'cuda' | 'reference' = info.backend;
const code: ErrorCode = 'E_BACKEND';
const rd: number = ref.dot(a, a);
setBackend('auto');
export const used = [d, idx, s, backend, code, rd, DensevecError];
`;

const CONSUMER_MTS = `import { dot, backendInfo } from 'densevec';
import type { Matrix } from 'densevec';
import { cosine } from 'densevec/reference';
const m: Matrix = { data: new Float32Array(4), rows: 2, cols: 2 };
const v: number = dot(m.data, m.data) + cosine(m.data, m.data);
export const used: [number, string] = [v, backendInfo().backend];
`;

// Would compile if the package's types resolved to `any`; must be rejected.
const CONSUMER_BAD = `import { dot } from 'densevec';
export const x: number = dot('not a vector', 1);
`;

function writeConsumer(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2));
  fs.writeFileSync(path.join(dir, 'inputs.json'), JSON.stringify(inputs));
  fs.writeFileSync(path.join(dir, 'consumer.cjs'), CONSUMER_CJS);
  fs.writeFileSync(path.join(dir, 'consumer.mjs'), CONSUMER_ESM);
}

function npmInstall(dir: string, tarballs: string[]): SpawnSyncReturns<string> {
  return ok(run(process.execPath, [npm, 'install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', ...tarballs], dir), `npm install in ${dir}`);
}

function node(dir: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return run(process.execPath, args, dir, { ...childEnv, ...extraEnv });
}

let mainPack: PackResult;
let platformPack: PackResult;
let withNative = '';
let mainOnly = '';
const installLogs: string[] = [];

beforeAll(() => {
  for (const f of ['dist/index.js', 'dist/index.mjs', 'dist/reference/index.mjs', `lib/native/${binaryFile}`]) {
    if (!fs.existsSync(path.join(root, f))) throw new Error(`${f} is missing: run \`npm run build\` first`);
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'densevec-install-'));
  fs.writeFileSync(path.join(tmp, 'npmrc'), '');
  npm = npmCli();
  childEnv = makeChildEnv(path.join(tmp, 'bin'));

  stageBinary(platform);
  const tarballs = path.join(tmp, 'tarballs');
  fs.mkdirSync(tarballs);
  const staged = path.join(tmp, 'densevec');
  stageMainPackage(staged);
  mainPack = pack(staged, tarballs);
  platformPack = pack(path.join(root, 'npm', platform), tarballs);

  withNative = path.join(tmp, 'with-native');
  writeConsumer(withNative);
  installLogs.push(npmInstall(withNative, [path.join(tarballs, mainPack.filename), path.join(tarballs, platformPack.filename)]).stdout);
  mainOnly = path.join(tmp, 'main-only');
  writeConsumer(mainOnly);
  installLogs.push(npmInstall(mainOnly, [path.join(tarballs, mainPack.filename)]).stdout);
}, 300_000);

afterAll(() => {
  if (tmp && !process.env.DENSEVEC_KEEP_INSTALL_TEST) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('what the packages ship', () => {
  it('main package (npm pack --dry-run): dist, types, ESM entries, loader; no binary, sources or tests', () => {
    const files = pack(root, null)
      .files.map((f) => f.path)
      .sort();
    for (const f of [
      'package.json',
      'LICENSE',
      'dist/index.js',
      'dist/index.mjs',
      'dist/index.d.ts',
      'dist/reference/index.js',
      'dist/reference/index.mjs',
      'dist/reference/index.d.ts',
      'dist/native/binding.cjs',
      'dist/native/binding.d.cts',
      'dist/backend.js',
    ]) {
      expect(files, f).toContain(f);
    }
    const stray = files.filter((f) => !/^(package\.json|README\.md|LICENSE)$/.test(f) && !/^dist\/.*\.(js|mjs|cjs|d\.ts|d\.cts)$/.test(f));
    expect(stray).toEqual([]);
    expect(files.filter((f) => f.endsWith('.node'))).toEqual([]);
    // Every export target exists in the package.
    for (const entry of Object.values(pkg.exports as Record<string, string | Record<string, string>>)) {
      for (const target of typeof entry === 'string' ? [entry] : Object.values(entry)) {
        expect(files, target).toContain(target.replace(/^\.\//, ''));
      }
    }
  });

  it('main package.json: zero runtime dependencies, no install-time scripts; optionalDependencies only at release', () => {
    expect(pkg.dependencies ?? {}).toEqual({});
    for (const s of ['preinstall', 'install', 'postinstall']) expect(pkg.scripts?.[s], s).toBeUndefined();
    // Committed without them, so that `npm ci` works before the platform packages are published.
    expect(pkg.optionalDependencies).toBeUndefined();
    const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8'));
    expect(lock.packages[''].optionalDependencies).toBeUndefined();
    const dirs = fs.readdirSync(path.join(root, 'npm')).sort();
    expect(dirs.length).toBe(pkg.napi.targets.length);
    const packed = JSON.parse(fs.readFileSync(path.join(tmp, 'densevec', 'package.json'), 'utf8'));
    expect(packed.optionalDependencies).toEqual(releaseOptionalDependencies());
    expect(Object.keys(packed.optionalDependencies)).toContain(platformPkg);
  });

  it('prepare builds only what is missing or older than its sources', () => {
    const { plan } = require(path.join(root, 'scripts', 'prepare.cjs')) as { plan: (dir: string) => { native: boolean; ts: boolean } };
    const tree = fs.mkdtempSync(path.join(tmp, 'prepare-'));
    const put = (rel: string, secondsAgo: number) => {
      const f = path.join(tree, rel);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, rel);
      const t = new Date(Date.now() - secondsAgo * 1000);
      fs.utimesSync(f, t, t);
    };
    const sources = [
      'crates/densevec-core/src/lib.rs',
      'Cargo.toml',
      'Cargo.lock',
      'lib/index.ts',
      'lib/contract/validate.ts',
      'tsconfig.json',
      'scripts/post-build.cjs',
    ];
    for (const f of sources) put(f, 100);
    // A fresh clone: nothing built.
    expect(plan(tree)).toMatchObject({ native: true, ts: true });
    put(`lib/native/densevec.${platform}.node`, 50);
    put('lib/native/binding.cjs', 50);
    expect(plan(tree)).toMatchObject({ native: false, ts: true });
    for (const f of ['index.js', 'index.mjs', 'index.d.ts', 'reference/index.js', 'native/binding.cjs']) put(`dist/${f}`, 10);
    // A current build: `npm pack` / `npm install` build nothing.
    expect(plan(tree)).toEqual({ native: false, ts: false, reason: 'the addon and dist/ are current' });
    put('lib/contract/validate.ts', 1);
    expect(plan(tree)).toMatchObject({ native: false, ts: true });
    for (const f of ['index.js', 'index.mjs', 'index.d.ts', 'reference/index.js', 'native/binding.cjs']) put(`dist/${f}`, 0);
    put('crates/densevec-core/src/lib.rs', 0);
    expect(plan(tree)).toMatchObject({ native: true, ts: true });
  });

  it('npm pack of a current build runs prepare, which rebuilds nothing', () => {
    // The build under test is current (the tests load it); packing with lifecycle scripts must
    // leave the addon and dist/ untouched.
    const watched = [path.join(root, 'lib', 'native', binaryFile), path.join(root, 'dist', 'index.js')];
    const before = watched.map((f) => fs.statSync(f).mtimeMs);
    const r = ok(run(process.execPath, [npm, 'pack', '--dry-run'], root, { ...childEnv, PATH: process.env.PATH }), 'npm pack --dry-run');
    expect(`${r.stdout}${r.stderr}`).toContain('densevec prepare: the addon and dist/ are current; nothing to build');
    expect(watched.map((f) => fs.statSync(f).mtimeMs)).toEqual(before);
  });

  it('per-platform package.json files agree with napi.targets', () => {
    const triple: Record<string, [string, string, string | null]> = {
      'x86_64-unknown-linux-gnu': ['linux', 'x64', 'glibc'],
      'x86_64-unknown-linux-musl': ['linux', 'x64', 'musl'],
      'aarch64-unknown-linux-gnu': ['linux', 'arm64', 'glibc'],
      'aarch64-unknown-linux-musl': ['linux', 'arm64', 'musl'],
      'x86_64-apple-darwin': ['darwin', 'x64', null],
      'aarch64-apple-darwin': ['darwin', 'arm64', null],
      'x86_64-pc-windows-msvc': ['win32', 'x64', null],
    };
    for (const t of pkg.napi.targets as string[]) {
      const [osName, cpu, libc] = triple[t];
      const plat = `${osName}-${cpu}${libc ? (libc === 'glibc' ? '-gnu' : '-musl') : osName === 'win32' ? '-msvc' : ''}`;
      const p = JSON.parse(fs.readFileSync(path.join(root, 'npm', plat, 'package.json'), 'utf8'));
      expect(p.name).toBe(`densevec-${plat}`);
      expect(p.version).toBe(pkg.version);
      expect(p.os).toEqual([osName]);
      expect(p.cpu).toEqual([cpu]);
      expect(p.libc).toEqual(libc ? [libc] : undefined);
      expect(p.main).toBe(`densevec.${plat}.node`);
      expect(p.files).toEqual([p.main]);
      expect(p.license).toBe(pkg.license);
    }
  });

  it(`${platformPkg}: the binary and its package.json only`, () => {
    const files = platformPack.files.map((f) => f.path).sort();
    expect(files).toEqual(['README.md', binaryFile, 'package.json'].sort());
    const mainFiles = mainPack.files.map((f) => f.path);
    expect(mainFiles.some((f) => f.endsWith('.node'))).toBe(false);
    expect(mainPack.filename).toBe(`densevec-${pkg.version}.tgz`);
    expect(platformPack.filename).toBe(`${platformPkg}-${pkg.version}.tgz`);
  });
});

describe('npm install of the packed tarballs, offline, without Rust', () => {
  it('the child environment has node and npm but no cargo or rustc, and the project is outside the source tree', () => {
    for (const tool of ['cargo', 'rustc']) {
      const r = run(tool, ['--version'], withNative);
      expect(r.error && (r.error as NodeJS.ErrnoException).code, tool).toBe('ENOENT');
    }
    expect(ok(node(withNative, ['-e', 'process.stdout.write(process.version)']), 'node').stdout).toBe(process.version);
    const rel = path.relative(root, withNative);
    expect(rel.startsWith('..') || path.isAbsolute(rel)).toBe(true);
  });

  it('no lifecycle script of the packages ran at install', () => {
    for (const log of installLogs) {
      expect(log).not.toMatch(/densevec(-[a-z0-9-]+)?@[\d.]+ (preinstall|install|postinstall|prepare)/);
    }
    const installed = JSON.parse(fs.readFileSync(path.join(withNative, 'node_modules', 'densevec', 'package.json'), 'utf8'));
    expect(installed.dependencies ?? {}).toEqual({});
    // Nothing beyond the two packages was installed.
    expect(
      fs
        .readdirSync(path.join(withNative, 'node_modules'))
        .filter((d) => !d.startsWith('.'))
        .sort(),
    ).toEqual(['densevec', platformPkg].sort());
    expect(fs.readdirSync(path.join(mainOnly, 'node_modules')).filter((d) => !d.startsWith('.'))).toEqual(['densevec']);
    expect(fs.existsSync(path.join(withNative, 'node_modules', 'densevec', 'dist', 'native', binaryFile))).toBe(false);
  });

  it('CommonJS: native backend from the platform package, results equal the reference, every chapter of this build callable', () => {
    const r = ok(node(withNative, ['consumer.cjs', JSON.stringify(CHAPTER_CALLS)]), 'consumer.cjs');
    expect(r.stderr).not.toContain(WARNING);
    const out = JSON.parse(r.stdout);
    const inside = (f: string) => f.startsWith(fs.realpathSync(withNative) + path.sep) || f.startsWith(withNative + path.sep);
    expect(inside(out.resolved.main)).toBe(true);
    expect(out.resolved.main).toMatch(/node_modules[\\/]densevec[\\/]dist[\\/]index\.js$/);
    expect(out.resolved.reference).toMatch(/node_modules[\\/]densevec[\\/]dist[\\/]reference[\\/]index\.js$/);
    expect(out.loadedFiles.filter((f: string) => !inside(f))).toEqual([]);
    expect(out.sameInstance).toBe(true);

    expect(out.info.backend).toBe('native');
    expect(['avx512', 'avx2', 'neon', 'scalar']).toContain(out.info.isa);
    expect(out.info.threads).toBeGreaterThanOrEqual(1);
    expect(out.info.nativeError).toBeUndefined();
    expect(out.loadedAddons).toHaveLength(1);
    expect(out.loadedAddons[0]).toMatch(new RegExp(`node_modules[\\\\/]${platformPkg}[\\\\/]densevec\\.${platform}\\.node$`));

    // Similarity, against this repository's reference on the same inputs.
    const a = Float32Array.from(inputs.a);
    const b = Float32Array.from(inputs.b);
    const q = { data: Float32Array.from(inputs.q), rows: 3, cols: COLS };
    const c = { data: Float32Array.from(inputs.c), rows: 5, cols: COLS };
    close(out.similarity.dot, ref.dot(a, b), 1e-5, 1e-5);
    close(out.similarity.cosine, ref.cosine(a, b), 1e-5, 1e-6);
    const t = ref.topK(q, c, 3);
    expect(out.similarity.topK.indices).toEqual(Array.from(t.indices));
    close(out.similarity.topK.scores, t.scores, 1e-5, 1e-6);
    expect(out.similarity.refDot).toBe(ref.dot(a, b));

    // Other chapters: whatever this build exports is in the tarball and runs natively.
    for (const [chapter, fn] of CHAPTER_CALLS) {
      const got = out.chapters[chapter]?.[fn];
      if (typeof ref[fn] !== 'function') {
        expect(got, `${fn} is not in this build's reference but was exported`).toBeUndefined();
        continue;
      }
      expect(got, `${chapter}.${fn} missing from the installed package`).toBeDefined();
      expect(got.native.error, `${fn} (native)`).toBeUndefined();
      expect(got.reference.error, `${fn} (reference)`).toBeUndefined();
      expectClose(got.native.value, got.reference.value, `${chapter}.${fn}`);
    }
    expect(out.exports).toContain('backendInfo');
  });

  it('ESM: import of densevec and densevec/reference resolves to the .mjs entries and shares the CommonJS instance', () => {
    const r = ok(node(withNative, ['consumer.mjs']), 'consumer.mjs');
    const out = JSON.parse(r.stdout);
    expect(out.resolvedMain).toMatch(/node_modules\/densevec\/dist\/index\.mjs$/);
    expect(out.resolvedReference).toMatch(/node_modules\/densevec\/dist\/reference\/index\.mjs$/);
    expect(out.sharesCjsInstance).toBe(true);
    expect(out.missingNamed).toEqual([]);
    expect(out.missingNamedReference).toEqual([]);
    expect(out.errorClassShared).toBe(true);
    expect(out.dot).toBe(1 * 5 + 2 * 4 + 3 * 3 + 4 * 2 - 5);
    expect(out.refDot).toBe(out.dot);
    close(out.cosine, 25 / (Math.sqrt(55) * Math.sqrt(55)), 1e-6, 1e-7);
    expect(out.topK.indices).toEqual([0, 3, 1, 3]);
    expect(out.backend).toBe('native');
  });

  it('TypeScript: types for densevec and densevec/reference resolve under nodenext, node16, bundler and node10', () => {
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const dir = path.join(withNative, 'ts');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'consumer.ts'), CONSUMER_TS);
    fs.writeFileSync(path.join(dir, 'consumer-esm.mts'), CONSUMER_MTS);
    fs.writeFileSync(path.join(dir, 'bad.ts'), CONSUMER_BAD);
    const config = (module: string, moduleResolution: string, files: string[]) => ({
      compilerOptions: {
        module,
        moduleResolution,
        target: 'es2022',
        lib: ['es2022'],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: [],
      },
      files,
    });
    // `exports` serves nodenext/node16/bundler; node10 (`"moduleResolution": "node"`) reads
    // `types` and, for the subpath, `typesVersions`.
    const modes: [string, string, string[]][] = [
      ['nodenext', 'nodenext', ['consumer.ts', 'consumer-esm.mts']],
      ['node16', 'node16', ['consumer.ts', 'consumer-esm.mts']],
      ['esnext', 'bundler', ['consumer.ts']],
      ['commonjs', 'node10', ['consumer.ts']],
    ];
    for (const [module, resolution, files] of modes) {
      fs.writeFileSync(path.join(dir, `tsconfig.${resolution}.json`), JSON.stringify(config(module, resolution, files)));
      const good = node(dir, [tsc, '-p', `tsconfig.${resolution}.json`]);
      expect(good.stdout + good.stderr, resolution).toBe('');
      expect(good.status, resolution).toBe(0);
    }
    fs.writeFileSync(path.join(dir, 'tsconfig.bad.json'), JSON.stringify(config('nodenext', 'nodenext', ['bad.ts'])));
    const bad = node(dir, [tsc, '-p', 'tsconfig.bad.json']);
    expect(bad.status).not.toBe(0);
    expect(bad.stdout).toMatch(/bad\.ts\(2,\d+\): error TS2345/);
  });
});

describe('npm install of the main package alone (no binary for this platform)', () => {
  it('falls back to the reference backend, warns once on stderr saying what was tried, results still correct', () => {
    const r = ok(node(mainOnly, ['consumer.cjs', JSON.stringify(CHAPTER_CALLS)]), 'consumer.cjs');
    const out = JSON.parse(r.stdout);
    expect(out.info.backend).toBe('reference');
    expect(out.info.isa).toBeNull();
    expect(out.loadedAddons).toEqual([]);
    expect(r.stderr.split(WARNING).length - 1).toBe(1);
    const line = r.stderr.split('\n').find((l) => l.startsWith(WARNING)) ?? '';
    expect(line).toContain(`./${binaryFile}`);
    expect(line).toContain(`'${platformPkg}'`);
    expect(out.info.nativeError).toContain(`'${platformPkg}'`);
    expect(out.info.nativeError).not.toContain('\n');
    expect(line).toContain(out.info.nativeError);

    const a = Float32Array.from(inputs.a);
    const b = Float32Array.from(inputs.b);
    const q = { data: Float32Array.from(inputs.q), rows: 3, cols: COLS };
    const c = { data: Float32Array.from(inputs.c), rows: 5, cols: COLS };
    expect(out.similarity.dot).toBe(ref.dot(a, b));
    expect(out.similarity.cosine).toBe(ref.cosine(a, b));
    const t = ref.topK(q, c, 3);
    expect(out.similarity.topK).toEqual({ indices: Array.from(t.indices), scores: Array.from(t.scores), corpusRows: t.corpusRows, k: t.k });
    for (const [chapter, fn] of CHAPTER_CALLS) {
      if (typeof ref[fn] !== 'function') continue;
      const got = out.chapters[chapter]?.[fn];
      expect(got?.native.error, `${fn}`).toBeUndefined();
      expect(got.native.value).toEqual(got.reference.value);
    }
  });

  it('warns once per process: CommonJS and ESM entries together, and a second module instance', () => {
    const r = ok(node(mainOnly, ['consumer.mjs']), 'consumer.mjs');
    expect(JSON.parse(r.stdout).backend).toBe('reference');
    expect(r.stderr.split(WARNING).length - 1).toBe(1);
    // A second instance of the module (cleared require cache, bundler duplicates) stays quiet too.
    const twice = ok(
      node(mainOnly, [
        '-e',
        `
      const a = require('densevec');
      for (const k of Object.keys(require.cache)) if (k.includes('node_modules')) delete require.cache[k];
      const b = require('densevec');
      process.stdout.write(String(a !== b && b.backendInfo().backend === 'reference'));`,
      ]),
      'two instances',
    );
    expect(twice.stdout).toBe('true');
    expect(twice.stderr.split(WARNING).length - 1).toBe(1);
  });

  it('NAPI_RS_NATIVE_LIBRARY_PATH loads an addon from an explicit path, and only from there', () => {
    const dir = path.join(tmp, 'override');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'custom-name.node');
    fs.copyFileSync(path.join(root, 'lib', 'native', binaryFile), file);
    const script = `const dv = require('densevec'); process.stdout.write(JSON.stringify({ info: dv.backendInfo(),
      addons: Object.keys(require.cache).filter((f) => f.endsWith('.node')) }))`;
    const r = ok(node(mainOnly, ['-e', script], { NAPI_RS_NATIVE_LIBRARY_PATH: file }), 'override');
    const out = JSON.parse(r.stdout);
    expect(out.info.backend).toBe('native');
    expect(out.addons).toEqual([fs.realpathSync(file)]);
    expect(r.stderr).not.toContain(WARNING);
    // A bad override is not silently replaced by the platform package: the with-native project
    // has one, yet the loader reports the override and falls back to the reference.
    const missing = path.join(dir, 'missing.node');
    const bad = ok(node(withNative, ['-e', script], { NAPI_RS_NATIVE_LIBRARY_PATH: missing }), 'bad override');
    const outBad = JSON.parse(bad.stdout);
    expect(outBad.info.backend).toBe('reference');
    expect(outBad.addons).toEqual([]);
    expect(outBad.info.nativeError).toContain(missing);
    expect(outBad.info.nativeError).not.toContain(`'${platformPkg}'`);
  });

  it('DENSEVEC_BACKEND=reference chooses the fallback silently', () => {
    const r = ok(node(mainOnly, ['-e', "process.stdout.write(require('densevec').backendInfo().backend)"], { DENSEVEC_BACKEND: 'reference' }), 'node -e');
    expect(r.stdout).toBe('reference');
    expect(r.stderr).not.toContain(WARNING);
  });

  it('DENSEVEC_REQUIRE_NATIVE=1 makes require and import throw E_BACKEND', () => {
    const env = { DENSEVEC_REQUIRE_NATIVE: '1' };
    const cjs = node(
      mainOnly,
      [
        '-e',
        `
      try { require('densevec'); process.stdout.write('loaded'); }
      catch (e) { process.stdout.write(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`,
      ],
      env,
    );
    const e1 = JSON.parse(cjs.stdout);
    expect(e1.name).toBe('DensevecError');
    expect(e1.code).toBe('E_BACKEND');
    expect(e1.message).toMatch(/DENSEVEC_REQUIRE_NATIVE=1/);
    expect(e1.message).toContain(`'${platformPkg}'`);
    expect(cjs.stderr).not.toContain(WARNING);
    const esm = node(
      mainOnly,
      [
        '--input-type=module',
        '-e',
        `
      import('densevec').then(() => process.stdout.write('loaded'),
        (e) => process.stdout.write(JSON.stringify({ name: e.name, code: e.code })));`,
      ],
      env,
    );
    expect(JSON.parse(esm.stdout)).toEqual({ name: 'DensevecError', code: 'E_BACKEND' });
    // The reference entry alone does not need the addon.
    const refOnly = ok(
      node(mainOnly, ['-e', "process.stdout.write(String(require('densevec/reference').dot(Float32Array.of(2), Float32Array.of(3))))"], env),
      'reference',
    );
    expect(refOnly.stdout).toBe('6');
  });
});

/** Native vs reference results of one call, within float32 tolerance, recursively. */
function expectClose(got: unknown, want: unknown, where: string): void {
  if (typeof want === 'number') {
    expect(typeof got, where).toBe('number');
    close(got as number, want, 2e-3, 2e-4);
  } else if (Array.isArray(want)) {
    expect(Array.isArray(got), where).toBe(true);
    expect((got as unknown[]).length, where).toBe(want.length);
    want.forEach((w, i) => {
      expectClose((got as unknown[])[i], w, `${where}[${i}]`);
    });
  } else if (want && typeof want === 'object') {
    for (const [k, w] of Object.entries(want)) expectClose((got as Record<string, unknown>)[k], w, `${where}.${k}`);
  } else {
    expect(got, where).toEqual(want);
  }
}
