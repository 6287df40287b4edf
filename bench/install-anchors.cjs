// Installs the benchmark anchors into bench/node_modules once. onnxruntime-node's postinstall
// would download GPU binaries; its CPU binaries are in the tarball, so that step is skipped.
'use strict';
const { execSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const dir = __dirname;
const need = ['benchmark', 'onnxruntime-node', 'simsimd', 'usearch'].filter((p) => !fs.existsSync(path.join(dir, 'node_modules', p)));
if (need.length > 0) {
  execSync('npm install --no-audit --no-fund --no-package-lock', {
    cwd: dir,
    stdio: 'inherit',
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
  });
}
