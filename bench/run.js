#!/usr/bin/env node
// Runs the benchmark suites: `node bench/run.js [--quick|--smoke] [suite…]` (default: all).
// Each suite prints a table and writes bench/results/<suite>.json. See docs/benchmarks.md.
'use strict';

const SUITES = ['pair', 'similarity', 'topk', 'normalize', 'learning', 'geometry', 'cuda', 'pipelines'];

async function main() {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const smoke = args.includes('--smoke'); // tiny shapes: checks the harness, figures not meaningful
  const unknown = args.filter((a) => a.startsWith('--') && a !== '--quick' && a !== '--smoke');
  if (unknown.length) {
    console.error(`unknown option ${unknown.join(' ')}; usage: node bench/run.js [--quick|--smoke] [${SUITES.join('|')}]…`);
    process.exit(2);
  }
  const names = args.filter((a) => !a.startsWith('--'));
  for (const n of names) {
    if (!SUITES.includes(n)) {
      console.error(`unknown suite '${n}' (have: ${SUITES.join(', ')})`);
      process.exit(2);
    }
  }
  process.env.DENSEVEC_BENCH_MODE = smoke ? 'smoke' : quick ? 'quick' : 'full'; // recorded in the JSON
  const dv = require('../dist/index.js');
  const info = dv.backendInfo();
  console.log(
    `densevec backend ${info.backend}, ISA ${info.isa}, node ${process.version}, ${require('node:os').cpus().length} cores${quick ? ', quick pass' : ''}`,
  );
  require('./machine').machine(); // measured once, before any suite: printed here, recorded in every JSON
  if (info.backend !== 'native')
    console.log(`warning: the native addon is not loaded (${info.nativeError ?? 'reference backend selected'}): figures are for the TypeScript reference`);
  const t0 = Date.now();
  for (const n of names.length ? names : SUITES) {
    const s0 = Date.now();
    await require(`./suites/${n}.js`)({ quick: quick || smoke, smoke });
    console.log(`  (${n}: ${((Date.now() - s0) / 1000).toFixed(0)} s)`);
  }
  console.log(`\nall done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.exit(0); // Python anchors and thread pools must not keep the process alive
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
