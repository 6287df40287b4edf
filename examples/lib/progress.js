'use strict';
/**
 * Progress display for the demo's long loops. Uses the `cli-progress` package when it can be
 * required (a development dependency), else plain lines; silent when stdout is not a terminal
 * or with --quiet. Progress output never goes into the report or the summary.
 */

let cliProgress = null;
try {
  cliProgress = require('cli-progress');
} catch {
  cliProgress = null;
}

/**
 * Returns a factory: `start(label, total)` → { tick(n = 1), stop() }.
 * enabled: false makes every bar a no-op.
 */
function progress(enabled, stream = process.stdout) {
  const noop = { tick() {}, stop() {} };
  if (!enabled) return () => noop;
  return (label, total) => {
    if (!(total > 0)) return noop;
    if (cliProgress) {
      const bar = new cliProgress.SingleBar({
        format: `  ${label} [{bar}] {value}/{total} {percentage}% eta {eta_formatted}`,
        stream, hideCursor: true, clearOnComplete: true, barsize: 30, etaBuffer: 50,
      }, cliProgress.Presets.shades_classic);
      bar.start(total, 0);
      return { tick(n = 1) { bar.increment(n); }, stop() { bar.stop(); } };
    }
    // Fallback: a line at each tenth of the way.
    let done = 0;
    let shown = 0;
    return {
      tick(n = 1) {
        done += n;
        const tenth = Math.floor((10 * done) / total);
        if (tenth > shown && done < total) {
          shown = tenth;
          stream.write(`  ${label}: ${done}/${total}\n`);
        }
      },
      stop() {},
    };
  };
}

module.exports = { progress };
