// Child process of the learning suite: one infoNCE call at a large batch, reporting the peak
// resident memory it added. Usage: node --expose-gc bench/suites/learning-memory.js B d threads
'use strict';

const { dv, randMatrix, procStatus, resetPeakRss } = require('../common');

const [B, d, threads] = process.argv.slice(2).map(Number);
dv.setThreads(threads);
const q = randMatrix(B, d, 61);
const k = randMatrix(B, d, 62);
global.gc?.();
const rssBytes = procStatus().VmRSS;
console.log(JSON.stringify({ phase: 'ready', rssBytes }));
resetPeakRss();
const t0 = process.hrtime.bigint();
const r = dv.infoNCE(q, k, { temperature: 0.07, normalize: true });
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
const hwm = procStatus().VmHWM;
console.log(JSON.stringify({ finished: true, B, d, threads, ms, loss: r.loss, rssBeforeBytes: rssBytes, peakBytes: hwm, extraBytes: hwm - rssBytes }));
