'use strict';
/**
 * A self-contained HTML report with inline SVG plots (no dependencies, no scripts): the demo
 * collects sections as it runs and writes them with --report.
 */

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

function niceTicks(lo, hi, n = 5) {
  const span = hi - lo || 1;
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12 * span; v += step) out.push(Math.abs(v) < 1e-12 * span ? 0 : v);
  return out;
}

function fmtTick(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(4)));
}

/** Width in pixels of a legend entry (swatch, gap, text at ~6.5 px per character). */
function legendItemWidth(name) {
  return 30 + Math.ceil(6.5 * String(name).length) + 14;
}

/** Lays the legend entries out in rows below the plot: [{ k, x, row }] and the row count. */
function legendLayout(names, left, right) {
  const out = [];
  let x = left;
  let row = 0;
  names.forEach((name, k) => {
    const w = legendItemWidth(name);
    if (x > left && x + w > right) {
      row++;
      x = left;
    }
    out.push({ k, x, row });
    x += w;
  });
  return { items: out, rows: names.length ? row + 1 : 0 };
}

let clipId = 0;

/**
 * A line plot. series: [{ name, xs, ys, dash?, color? }]; options: title, xLabel, yLabel, logY,
 * xDomain, yDomain, padX (fraction of the x range added on both sides when xDomain is not
 * given), vlines: [{ x, name }], legend ('none' to omit it). The legend sits below the frame,
 * never over the data, and every series is clipped to the frame.
 */
function linePlot(series, o = {}) {
  const [W, H0] = o.size || [560, 300];
  const showLegend = o.legend !== 'none' && series.length > 0;
  const lay = showLegend
    ? legendLayout(
        series.map((q) => q.name),
        58,
        W - 14,
      )
    : { items: [], rows: 0 };
  const H = H0 + (lay.rows ? 14 * lay.rows + 6 : 0);
  const m = { l: 58, r: 14, t: 28, b: 42 + (lay.rows ? 14 * lay.rows + 6 : 0) };
  const tf = o.logY ? (v) => Math.log10(v) : (v) => v;
  let [x0, x1] = o.xDomain || [Infinity, -Infinity];
  let [y0, y1] = o.yDomain || [Infinity, -Infinity];
  for (const s of series) {
    s.xs.forEach((x, i) => {
      const y = s.ys[i];
      if (!Number.isFinite(x) || !Number.isFinite(tf(y))) return;
      if (!o.xDomain) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
      }
      if (!o.yDomain) {
        y0 = Math.min(y0, tf(y));
        y1 = Math.max(y1, tf(y));
      }
    });
  }
  if (o.yDomain && o.logY) [y0, y1] = o.yDomain.map(Math.log10);
  if (!(x1 > x0)) [x0, x1] = [x0 - 1, x0 + 1];
  if (!o.xDomain && o.padX) {
    const pad = o.padX * (x1 - x0);
    [x0, x1] = [x0 - pad, x1 + pad];
  }
  if (!(y1 > y0)) [y0, y1] = [y0 - 1, y0 + 1];
  if (!o.yDomain && !o.logY) {
    const pad = 0.05 * (y1 - y0);
    y0 = y0 >= 0 && y0 - pad < 0 ? 0 : y0 - pad;
    y1 += pad;
  } else if (!o.yDomain) {
    const pad = 0.05 * (y1 - y0);
    y0 -= pad;
    y1 += pad;
  }
  const px = (x) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const py = (y) => H - m.b - ((tf(y) - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
  );
  if (o.title) parts.push(`<text x="${W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${esc(o.title)}</text>`);
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#999"/>`);
  for (const t of niceTicks(x0, x1)) {
    parts.push(
      `<line x1="${px(t)}" y1="${H - m.b}" x2="${px(t)}" y2="${H - m.b + 4}" stroke="#666"/><text x="${px(t)}" y="${H - m.b + 16}" text-anchor="middle">${fmtTick(t)}</text>`,
    );
  }
  for (const t of niceTicks(y0, y1)) {
    const yv = o.logY ? 10 ** t : t;
    if (o.logY && !Number.isInteger(t)) continue;
    const y = py(yv);
    parts.push(
      `<line x1="${m.l - 4}" y1="${y}" x2="${W - m.r}" y2="${y}" stroke="#eee"/><text x="${m.l - 6}" y="${y + 4}" text-anchor="end">${o.logY ? `1e${t}` : fmtTick(t)}</text>`,
    );
  }
  if (o.xLabel) parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - m.b + 32}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  if (o.yLabel) parts.push(`<text transform="translate(14 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  for (const v of o.vlines || []) {
    if (v.x < x0 || v.x > x1) continue;
    parts.push(
      `<line x1="${px(v.x)}" y1="${m.t}" x2="${px(v.x)}" y2="${H - m.b}" stroke="#444" stroke-dasharray="2 3"/><text x="${px(v.x) - 3}" y="${H - m.b - 6}" text-anchor="end">${esc(v.name)}</text>`,
    );
  }
  const legend = [];
  const clip = `clip${++clipId}`;
  parts.push(`<clipPath id="${clip}"><rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}"/></clipPath>`);
  parts.push(`<g clip-path="url(#${clip})">`);
  const legendTop = H - 6 - 14 * lay.rows + 10;
  series.forEach((s, k) => {
    const color = s.color || COLORS[k % COLORS.length];
    let d = '';
    let pen = false;
    s.xs.forEach((x, i) => {
      const y = s.ys[i];
      const ty = tf(y);
      if (!Number.isFinite(x) || !Number.isFinite(ty) || x < x0 || x > x1 || (o.logY && (ty < y0 - 1e-9 || ty > y1 + 1e-9))) {
        pen = false;
        return;
      }
      const yy = Math.min(H - m.b, Math.max(m.t, py(y)));
      d += `${pen ? 'L' : 'M'}${px(x).toFixed(1)} ${yy.toFixed(1)}`;
      pen = true;
    });
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6"${s.dash ? ' stroke-dasharray="5 3"' : ''}/>`);
    if (showLegend) {
      const it = lay.items[k];
      const ly = legendTop + 14 * it.row;
      legend.push(
        `<line x1="${it.x}" y1="${ly - 4}" x2="${it.x + 22}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${s.dash ? ' stroke-dasharray="5 3"' : ''}/><text x="${it.x + 26}" y="${ly}">${esc(s.name)}</text>`,
      );
    }
  });
  parts.push('</g>');
  parts.push(...legend);
  parts.push('</svg>');
  return parts.join('');
}

/** Density histogram of `values` on [lo, hi] with `bins` bins, as a step series. */
function densitySeries(name, values, lo, hi, bins) {
  const counts = new Float64Array(bins);
  let n = 0;
  for (const v of values) {
    if (v < lo || v > hi) continue;
    counts[Math.min(bins - 1, Math.floor(((v - lo) / (hi - lo)) * bins))]++;
    n++;
  }
  const w = (hi - lo) / bins;
  const xs = [];
  const ys = [];
  for (let b = 0; b < bins; b++) {
    const dens = n > 0 ? counts[b] / (n * w) : 0;
    xs.push(lo + b * w, lo + (b + 1) * w);
    ys.push(dens, dens);
  }
  return { name, xs, ys };
}

/** Scatter plot: points [{ x, y }] per series. */
function scatterPlot(series, o = {}) {
  const lines = series.map((s) => ({ name: s.name, xs: [], ys: [] }));
  let svg = linePlot(
    lines.map((l, k) => ({ ...l, xs: series[k].points.map((p) => p.x), ys: series[k].points.map((p) => p.y) })),
    { padX: 0.04, ...o },
  );
  // Replace the connecting paths by dots: redraw as circles.
  svg = svg.replace(/<path d="([^"]*)" fill="none" stroke="([^"]+)"[^>]*\/>/g, (_all, d, color) => {
    const pts = d.match(/[ML][\d.-]+ [\d.-]+/g) || [];
    return pts
      .map((p) => {
        const [x, y] = p.slice(1).split(' ');
        return `<circle cx="${x}" cy="${y}" r="1.8" fill="${color}" fill-opacity="0.6"/>`;
      })
      .join('');
  });
  return svg;
}

/**
 * A bar chart: bars [{ name, value }]; options: title, yLabel, yDomain (default [0, max]),
 * hline: { y, name } (a dashed reference line).
 */
function barPlot(bars, o = {}) {
  const W = 560;
  const H = 300;
  const m = { l: 58, r: 14, t: 28, b: 58 };
  const [y0, y1] = o.yDomain || [0, Math.max(...bars.map((b) => b.value), o.hline ? o.hline.y : 0) * 1.05 || 1];
  const hline = o.hline && o.hline.y >= y0 && o.hline.y <= y1 ? o.hline : null;
  const py = (v) => H - m.b - ((Math.min(Math.max(v, y0), y1) - y0) / (y1 - y0)) * (H - m.t - m.b);
  const slot = (W - m.l - m.r) / Math.max(1, bars.length);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
  ];
  if (o.title) parts.push(`<text x="${W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${esc(o.title)}</text>`);
  for (const t of niceTicks(y0, y1)) {
    parts.push(
      `<line x1="${m.l - 4}" y1="${py(t)}" x2="${W - m.r}" y2="${py(t)}" stroke="#eee"/><text x="${m.l - 6}" y="${py(t) + 4}" text-anchor="end">${fmtTick(t)}</text>`,
    );
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#999"/>`);
  if (o.yLabel) parts.push(`<text transform="translate(14 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  bars.forEach((b, k) => {
    const x = m.l + k * slot + slot * 0.15;
    const w = slot * 0.7;
    const top = py(b.value);
    parts.push(
      `<rect class="bar" x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${w.toFixed(1)}" height="${(H - m.b - top).toFixed(1)}" fill="${b.color || COLORS[k % COLORS.length]}"/>`,
    );
    parts.push(
      `<text x="${(x + w / 2).toFixed(1)}" y="${(top - 4).toFixed(1)}" text-anchor="middle">${esc(o.format ? o.format(b.value) : Number(b.value.toFixed(1)))}</text>`,
    );
    parts.push(`<text x="${(x + w / 2).toFixed(1)}" y="${H - m.b + 16}" text-anchor="middle">${esc(b.name)}</text>`);
  });
  if (hline) {
    const yy = py(hline.y);
    parts.push(
      `<line x1="${m.l}" y1="${yy}" x2="${W - m.r}" y2="${yy}" stroke="#444" stroke-dasharray="5 3"/><text x="${W - m.r - 4}" y="${yy - 4}" text-anchor="end">${esc(hline.name)}</text>`,
    );
  }
  if (o.note) parts.push(`<text x="${m.l}" y="${H - 8}" font-style="italic">${esc(o.note)}</text>`);
  parts.push('</svg>');
  return parts.join('');
}

function table(head, rows) {
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c, i) => `<td${i > 0 ? ' class="num"' : ''}>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

class Report {
  constructor(title) {
    this.title = title;
    this.parts = [];
  }
  heading(text) {
    this.parts.push(`<h2>${esc(text)}</h2>`);
  }
  text(text) {
    this.parts.push(`<p>${esc(text)}</p>`);
  }
  pre(lines) {
    this.parts.push(`<pre>${esc(lines.join('\n'))}</pre>`);
  }
  html(h) {
    this.parts.push(h);
  }
  /** A definition list of [term, value] pairs (the run's data, seed and options). */
  facts(pairs) {
    this.parts.push(`<dl class="facts">${pairs.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`);
  }
  figures(svgs) {
    // Each entry: an SVG string, or { id, svg } (the id names the figure in the page).
    this.parts.push(
      `<div class="figs">${svgs.map((s) => (typeof s === 'string' ? `<figure>${s}</figure>` : `<figure id="${esc(s.id)}">${s.svg}</figure>`)).join('')}</div>`,
    );
  }
  table(head, rows) {
    this.parts.push(`<div class="table">${table(head, rows)}</div>`);
  }
  toHtml() {
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(this.title)}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 12px; white-space: pre-wrap; }
.table { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; } th, td { padding: 3px 8px; border-bottom: 1px solid #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } th { text-align: right; } th:first-child { text-align: left; }
.figs { display: flex; flex-wrap: wrap; gap: 12px; } figure { margin: 0; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; background: #f6f6f6; padding: 0.8em; font-size: 13px; }
dl.facts dt { font-weight: bold; } dl.facts dd { margin: 0; }
</style></head><body>
<h1>${esc(this.title)}</h1>
${this.parts.join('\n')}
</body></html>
`;
  }
}

module.exports = { Report, linePlot, densitySeries, scatterPlot, barPlot, COLORS };
