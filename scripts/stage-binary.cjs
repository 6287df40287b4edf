// Copies a locally built addon, lib/native/densevec.<platform>.node, into its per-platform
// package npm/<platform>/, ready for `npm pack` / `npm publish`. The main package never ships
// a binary (package.json `files` excludes dist/native/*.node); the binary travels in the
// densevec-<platform> package that the main package lists in optionalDependencies.
//
//   node scripts/stage-binary.cjs              # the host platform, e.g. linux-x64-gnu
//   node scripts/stage-binary.cjs darwin-arm64 # a binary built elsewhere and copied to lib/native
//
// In the release workflow the binaries come from the build jobs' artifacts and `napi artifacts`
// does the same job for every platform at once.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');

/** Whether this Linux process runs on musl libc (same test order as the napi-rs loader). */
function isMusl() {
  if (process.platform !== 'linux') return false;
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
  } catch {
    // fall through to the process report
  }
  const report = process.report && typeof process.report.getReport === 'function' ? process.report.getReport() : null;
  if (!report) return false;
  if (report.header?.glibcVersionRuntime) return false;
  return Array.isArray(report.sharedObjects) && report.sharedObjects.some((f) => f.includes('libc.musl-') || f.includes('ld-musl-'));
}

/** The napi-rs platform name of this process: linux-x64-gnu, darwin-arm64, win32-x64-msvc, … */
function hostPlatform() {
  const { platform, arch } = process;
  if (platform === 'linux') return `${platform}-${arch}-${isMusl() ? 'musl' : 'gnu'}`;
  if (platform === 'win32') return `${platform}-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** Copies lib/native/densevec.<platform>.node into npm/<platform>/ and returns the target path. */
function stageBinary(platform = hostPlatform()) {
  const file = `densevec.${platform}.node`;
  const pkgDir = path.join(root, 'npm', platform);
  const pkgJson = path.join(pkgDir, 'package.json');
  if (!fs.existsSync(pkgJson)) {
    throw new Error(`stage-binary: no per-platform package npm/${platform}/package.json (platforms: ${fs.readdirSync(path.join(root, 'npm')).join(', ')})`);
  }
  const main = JSON.parse(fs.readFileSync(pkgJson, 'utf8')).main;
  if (main !== file) throw new Error(`stage-binary: npm/${platform}/package.json has main ${main}, expected ${file}`);
  const src = path.join(root, 'lib', 'native', file);
  if (!fs.existsSync(src)) throw new Error(`stage-binary: ${path.relative(root, src)} does not exist; run \`npm run build\` first`);
  const dst = path.join(pkgDir, file);
  fs.copyFileSync(src, dst);
  return dst;
}

module.exports = { hostPlatform, isMusl, stageBinary };

if (require.main === module) {
  try {
    const dst = stageBinary(process.argv[2]);
    console.log(`staged ${path.relative(root, dst)}`);
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  }
}
