'use strict';
/**
 * Progress display for the demo's long loops: one bar on the terminal's last line, redrawn in
 * place. Lines printed while a bar is showing go through `print`, which erases the bar, writes
 * the line and draws the bar again below it, so bars and log lines never overwrite each other
 * and no stale bar is left behind. Silent when stdout is not a terminal or with --quiet;
 * progress output never goes into the report or the summary.
 */

const CLEAR = '\r\x1b[2K';

/**
 * Returns a factory `start(label, total)` → { tick(n = 1), stop() }, with
 * `factory.print(line)` to write a line of the log (through the bar when one is showing).
 * enabled: false makes every bar a no-op and `print` a plain write.
 */
function progress(enabled, stream = process.stdout, { width = 30, minIntervalMs = 80 } = {}) {
  const noop = { tick() {}, stop() {} };
  let current = null;
  const factory = (label, total) => {
    if (!enabled || !(total > 0)) return noop;
    if (current) current.stop();
    const t0 = Date.now();
    let done = 0;
    let last = 0;
    const draw = () => {
      const f = Math.min(1, done / total);
      const full = Math.round(f * width);
      const el = (Date.now() - t0) / 1000;
      const eta = done > 0 && done < total ? ` eta ${Math.ceil((el * (total - done)) / done)}s` : '';
      stream.write(`${CLEAR}  ${label} [${'█'.repeat(full)}${'░'.repeat(width - full)}] ${done}/${total} ${Math.round(100 * f)}%${eta}`);
      last = Date.now();
    };
    const bar = {
      draw,
      tick(n = 1) {
        done += n;
        if (done >= total || Date.now() - last >= minIntervalMs) draw();
      },
      stop() {
        if (current !== bar) return;
        stream.write(CLEAR);
        current = null;
      },
    };
    current = bar;
    draw();
    return bar;
  };
  factory.print = (line) => {
    if (current) {
      stream.write(`${CLEAR}${line}\n`);
      current.draw();
    } else {
      stream.write(`${line}\n`);
    }
  };
  return factory;
}

module.exports = { progress, CLEAR };
