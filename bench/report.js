#!/usr/bin/env node
// Prints bench/results/*.json as Markdown (the tables of docs/benchmarks.md):
//   node bench/report.js [suite…]
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { fmtMs } = require('./common');
const { fmtOps } = require('./micro');

const ORDER = ['pair', 'similarity', 'topk', 'normalize', 'learning', 'geometry', 'cuda'];
const dir = path.join(__dirname, 'results');
const want = process.argv.slice(2);
const files = ORDER.filter((s) => (want.length ? want.includes(s) : true)).filter((s) => fs.existsSync(path.join(dir, `${s}.json`)));

// Summary: every target of every row, wall-time and CPU-time ratios side by side.
function summary(results) {
  const lines = [
    '### Summary against the targets',
    '',
    '| suite | workload | densevec (median or mean, 1T) | target | ratio (wall) | ratio (CPU time) | |',
    '|---|---|---:|---|---:|---:|---|',
  ];
  for (const r of results) {
    for (const row of r.rows) {
      const d1 = row.implementations.find((e) => e.group === 'densevec' && e.threads === 1);
      for (const t of row.targets) {
        lines.push(
          `| ${r.suite} | ${row.workload} | ${d1 ? fmtMs(d1.medianMs) : ''} | ${t.what} | ${t.got.toFixed(2)} | ${t.gotCpu != null ? t.gotCpu.toFixed(2) : ''} | ${t.met ? 'met' : `missed by ${Math.max(1, Math.round((1 - t.got / t.min) * 100))} %`} |`,
        );
      }
    }
  }
  return [...lines, ''];
}

const tp = (t) => (t ? `${t.value >= 100 ? t.value.toFixed(0) : t.value.toFixed(t.value < 10 ? 2 : 1)} ${t.unit}` : '');
const all = files.map((s) => JSON.parse(fs.readFileSync(path.join(dir, `${s}.json`), 'utf8')));
const out = summary(all);
for (const r of all) {
  const s = r.suite;
  const mode = r.mode === 'smoke' ? ' (smoke run: shrunken shapes, figures not meaningful)' : r.quick ? ' (quick pass)' : '';
  out.push(`### ${s}${mode}`, '');
  out.push(
    `${r.date.slice(0, 16).replace('T', ' ')} UTC · ISA ${r.densevec.isa} · ${r.machine.cpu} · ${r.machine.cores} cores · load average ${r.machine.loadavg.map((x) => x.toFixed(1)).join(' / ')} · node ${r.machine.node}`,
    '',
  );
  for (const row of r.rows) {
    out.push(`**${row.workload}** \`${JSON.stringify(row.params)}\``, '');
    const micro = row.harness === 'benchmark.js';
    if (micro)
      out.push('| implementation | ops/sec ± margin of error (benchmark.js) | mean per call | throughput | densevec speed-up |', '|---|---:|---:|---:|---:|');
    else
      out.push(
        '| implementation | median (wall) | CPU time | throughput (wall) | per CPU-second | densevec speed-up (wall) |',
        '|---|---:|---:|---:|---:|---:|',
      );
    const dvs = row.implementations.filter((e) => e.group === 'densevec');
    for (const e of row.implementations) {
      let rel = '';
      if (e.group !== 'densevec' && dvs.length) {
        const d = dvs.find((x) => x.threads === e.threads) ?? dvs[0];
        rel = `${(e.medianMs / d.medianMs).toFixed(2)}× (${d.name})`;
      }
      if (micro) {
        out.push(`| ${e.name} | ${fmtOps(e)} | ${fmtMs(e.medianMs)} | ${tp(e.throughput)} | ${rel} |`);
        continue;
      }
      out.push(
        `| ${e.name} | ${fmtMs(e.medianMs)} | ${e.cpuMedianMs != null ? fmtMs(e.cpuMedianMs) : ''} | ${tp(e.throughput)}${e.percentOfPeak != null ? ` (${e.percentOfPeak.toFixed(1)} % of peak)` : ''} | ${tp(e.throughputPerCpuSecond)}${e.percentOfPeakPerCpuSecond != null ? ` (${e.percentOfPeakPerCpuSecond.toFixed(1)} %)` : ''} | ${rel} |`,
      );
    }
    out.push('');
    const extra = [];
    for (const sc of row.scaling) extra.push(`2T/1T ${sc.label} ${sc.speedup2T.toFixed(2)}×`);
    for (const t of row.targets)
      extra.push(
        `target ${t.what}: ${t.got.toFixed(2)} — ${t.met ? 'met' : `**missed** by ${Math.max(1, Math.round((1 - t.got / t.min) * 100))} %`}${t.gotCpu != null ? ` (${t.cpuNote ?? 'CPU-time ratio'} ${t.gotCpu.toFixed(2)})` : ''}`,
      );
    if (extra.length) out.push(...extra.map((x) => `- ${x}`), '');
  }
  if (r.notes.length) out.push(...r.notes.map((n) => `- ${n}`), '');
}
console.log(out.join('\n'));
