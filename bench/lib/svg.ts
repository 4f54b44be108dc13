// A tiny SVG chart renderer for the benchmark report (no chart library): box plots with the raw samples,
// line charts and grouped horizontal bar charts. Every function returns a standalone SVG document string.
import { percentile } from './stats.js';

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#17becf', '#bcbd22'];
const palette = (i: number): string => PALETTE[i % PALETTE.length] as string;
const CHAR_W = 7.1; // average glyph width of the 12 px sans-serif font, for layout estimates
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
/** The last element of a non-empty array (tick lists always hold at least one value). */
const last = (xs: readonly number[]): number => xs[xs.length - 1] as number;

export interface Series { name: string; values: number[]; color?: string }
export interface LineSeries { name: string; points: Array<[number, number | null | undefined]>; dash?: string; color?: string }
interface LegendItem { name: string; color: string; dash?: string | undefined; width?: number }

export const esc = (s: unknown): string => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const num = (x: number): number => (Number.isFinite(x) ? Math.round(x * 100) / 100 : 0);

/** "Nice" tick values covering [lo, hi] (about `count` of them). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (hi === lo) hi = lo + (lo === 0 ? 1 : Math.abs(lo) * 0.1);
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const start = Math.floor(lo / step) * step;
  const ticks: number[] = [];
  for (let v = start; v <= hi + step * 1e-9; v += step) ticks.push(Math.round(v / step) * step);
  if (last(ticks) < hi) ticks.push(last(ticks) + step);
  return ticks;
}

/** Decade ticks for a log axis. */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo / 1.0001 && v <= hi * 1.0001) ticks.push(v);
    }
  }
  return ticks;
}

const fmtTick = (v: number): string => {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1e6) return `${num(v / 1e6)}M`;
  if (a >= 1e4) return `${num(v / 1e3)}k`;
  if (a >= 100) return String(Math.round(v));
  if (a >= 1) return String(num(v));
  return String(Math.round(v * 1000) / 1000);
};

function frame(width: number, height: number, title: string, subtitle: string, body: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="15" font-weight="600">${esc(title)}</text>`,
    subtitle ? `<text x="${width / 2}" y="37" text-anchor="middle" font-size="11" fill="#555">${esc(subtitle)}</text>` : '',
    body,
    '</svg>',
  ].join('\n');
}

function legend(items: readonly LegendItem[], x: number, y: number, maxWidth: number): { svg: string; bottom: number } {
  // laid out left to right, wrapping
  const out: string[] = [];
  let cx = x;
  let cy = y;
  for (const it of items) {
    const w = 26 + it.name.length * CHAR_W;
    if (cx + w > x + maxWidth && cx > x) { cx = x; cy += 16; }
    out.push(`<line x1="${num(cx)}" y1="${cy - 4}" x2="${num(cx + 18)}" y2="${cy - 4}" stroke="${it.color}" stroke-width="${it.width ?? 3}"${it.dash ? ` stroke-dasharray="${it.dash}"` : ''}/>`);
    out.push(`<text x="${num(cx + 22)}" y="${cy}">${esc(it.name)}</text>`);
    cx += w + 10;
  }
  return { svg: out.join('\n'), bottom: cy };
}

function quantile(sorted: readonly number[], p: number): number {
  return percentile(sorted, p * 100);
}

/**
 * Horizontal box plots, one row per series, with every raw sample drawn as a dot.
 * Box = p25..p75, line = p50, whiskers = min..max, diamond = p95, triangle = p99.
 * series: [{ name, values: number[] }]
 */
export function boxPlot({ title, subtitle = '', series, unit = 'ms', width = 760, xLabel = '' }: { title: string; subtitle?: string; series: ReadonlyArray<{ name: string; values: ReadonlyArray<number | null | undefined>; color?: string }>; unit?: string; width?: number; xLabel?: string }): string {
  const rows = series.map((s, i) => ({ ...s, v: s.values.filter((x): x is number => Number.isFinite(x)).sort((a, b) => a - b), color: s.color ?? PALETTE[i % PALETTE.length] }));
  const left = 24 + Math.min(300, Math.max(...rows.map((r) => r.name.length), 10) * CHAR_W);
  const right = 30;
  const top = subtitle ? 52 : 38;
  const rowH = 46;
  const plotH = rows.length * rowH;
  const height = top + plotH + 64;
  const all = rows.flatMap((r) => r.v);
  const ticks = niceTicks(0, all.length ? Math.max(...all) : 1, 6);
  const xmax = last(ticks);
  const X = (v: number): number => left + (v / xmax) * (width - left - right);
  const out: string[] = [];
  for (const t of ticks) {
    out.push(`<line x1="${num(X(t))}" y1="${top}" x2="${num(X(t))}" y2="${top + plotH}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${num(X(t))}" y="${top + plotH + 16}" text-anchor="middle" fill="#333">${fmtTick(t)}</text>`);
  }
  out.push(`<text x="${num((left + width - right) / 2)}" y="${top + plotH + 34}" text-anchor="middle" fill="#333">${esc(xLabel || unit)}</text>`);
  rows.forEach((r, i) => {
    const cy = top + i * rowH + rowH / 2;
    out.push(`<text x="${left - 8}" y="${cy + 4}" text-anchor="end">${esc(r.name)}</text>`);
    if (!r.v.length) {
      out.push(`<text x="${left + 6}" y="${cy + 4}" fill="#999">no samples</text>`);
      return;
    }
    const q = (p: number): number => quantile(r.v, p);
    const [mn, p25, p50, p75, mx, p95, p99] = [r.v[0] as number, q(0.25), q(0.5), q(0.75), last(r.v), q(0.95), q(0.99)];
    out.push(`<line x1="${num(X(mn))}" y1="${cy}" x2="${num(X(mx))}" y2="${cy}" stroke="${r.color}" stroke-width="1.5"/>`);
    for (const w of [mn, mx]) out.push(`<line x1="${num(X(w))}" y1="${cy - 7}" x2="${num(X(w))}" y2="${cy + 7}" stroke="${r.color}" stroke-width="1.5"/>`);
    out.push(`<rect x="${num(X(p25))}" y="${cy - 12}" width="${num(Math.max(1, X(p75) - X(p25)))}" height="24" fill="${r.color}" fill-opacity="0.18" stroke="${r.color}"/>`);
    out.push(`<line x1="${num(X(p50))}" y1="${cy - 12}" x2="${num(X(p50))}" y2="${cy + 12}" stroke="${r.color}" stroke-width="3"/>`);
    out.push(`<path d="M${num(X(p95))} ${cy - 17} l4 4 l-4 4 l-4 -4 z" fill="${r.color}"/>`);
    out.push(`<path d="M${num(X(p99) - 4)} ${cy + 13} l8 0 l-4 7 z" fill="${r.color}"/>`);
    r.v.forEach((v, j) => {
      const jitter = ((j * 37) % 13) - 6; // deterministic jitter
      out.push(`<circle cx="${num(X(v))}" cy="${num(cy + jitter * 0.8)}" r="2" fill="${r.color}" fill-opacity="0.55"/>`);
    });
    out.push(`<text x="${num(Math.min(X(mx) + 6, width - right - 2))}" y="${cy - 14}" font-size="10" fill="#333" text-anchor="${X(mx) + 90 > width ? 'end' : 'start'}">p50 ${fmtTick(p50)} · p95 ${fmtTick(p95)} · p99 ${fmtTick(p99)} ${esc(unit)} (n=${r.v.length})</text>`);
  });
  out.push(`<text x="${left}" y="${height - 10}" font-size="10" fill="#666">box p25–p75, bar p50, whiskers min–max, ◆ p95, ▼ p99, dots = every sample</text>`);
  return frame(width, height, title, subtitle, out.join('\n'));
}

/**
 * Line chart. series: [{ name, points: [[x, y], ...], dash?, color? }]; hlines: [{ y, name, color? }] (e.g. targets).
 */
export function lineChart({ title, subtitle = '', series, hlines = [], xLabel = '', yLabel = '', width = 760, height = 380, yMin = 0, integerX = false }: {
  title: string; subtitle?: string; series: readonly LineSeries[]; hlines?: ReadonlyArray<{ y: number; name: string; color?: string }>;
  xLabel?: string; yLabel?: string; width?: number; height?: number; yMin?: number; integerX?: boolean;
}): string {
  const left = 62;
  const right = 20;
  const top = subtitle ? 52 : 38;
  const items: LegendItem[] = [...series.map((s, i) => ({ name: s.name, color: s.color ?? palette(i), dash: s.dash })),
    ...hlines.map((h) => ({ name: h.name, color: h.color ?? '#888', dash: '6 4', width: 1.5 }))];
  const legendRows = Math.ceil(items.reduce((a, it) => a + 36 + it.name.length * CHAR_W, 0) / (width - left - right)) || 1;
  const bottom = 48 + legendRows * 16;
  const plotH = height - top - bottom;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = [...series.flatMap((s) => s.points.map((p) => p[1])), ...hlines.map((h) => h.y)].filter((y): y is number => Number.isFinite(y));
  let xt = niceTicks(Math.min(...xs, 0), Math.max(...xs, 1), 8);
  if (integerX && xt.some((t) => !Number.isInteger(t))) xt = niceTicks(Math.min(...xs, 0), Math.max(...xs, 1), Math.max(1, Math.ceil(Math.max(...xs, 1))));
  const yt = niceTicks(yMin, Math.max(...ys, yMin + 1), 5);
  const x0 = xt[0] as number;
  const y0 = yt[0] as number;
  const X = (v: number): number => left + ((v - x0) / (last(xt) - x0)) * (width - left - right);
  const Y = (v: number): number => top + plotH - ((v - y0) / (last(yt) - y0)) * plotH;
  const out: string[] = [];
  for (const t of yt) {
    out.push(`<line x1="${left}" y1="${num(Y(t))}" x2="${width - right}" y2="${num(Y(t))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 6}" y="${num(Y(t) + 4)}" text-anchor="end" fill="#333">${fmtTick(t)}</text>`);
  }
  for (const t of xt) out.push(`<text x="${num(X(t))}" y="${top + plotH + 16}" text-anchor="middle" fill="#333">${fmtTick(t)}</text>`);
  out.push(`<line x1="${left}" y1="${top + plotH}" x2="${width - right}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<text x="${num((left + width - right) / 2)}" y="${top + plotH + 34}" text-anchor="middle" fill="#333">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(14 ${num(top + plotH / 2)}) rotate(-90)" text-anchor="middle" fill="#333">${esc(yLabel)}</text>`);
  for (const h of hlines) {
    out.push(`<line x1="${left}" y1="${num(Y(h.y))}" x2="${width - right}" y2="${num(Y(h.y))}" stroke="${h.color ?? '#888'}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
  }
  series.forEach((s, i) => {
    const color = s.color ?? palette(i);
    const pts = s.points.filter((p): p is [number, number] => Number.isFinite(p[0]) && Number.isFinite(p[1]));
    if (!pts.length) return;
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''} points="${pts.map((p) => `${num(X(p[0]))},${num(Y(p[1]))}`).join(' ')}"/>`);
    if (pts.length <= 60) for (const p of pts) out.push(`<circle cx="${num(X(p[0]))}" cy="${num(Y(p[1]))}" r="2.2" fill="${color}"/>`);
  });
  const lg = legend(items, left, top + plotH + 54, width - left - right);
  out.push(lg.svg);
  return frame(width, Math.max(height, lg.bottom + 10), title, subtitle, out.join('\n'));
}

/**
 * Grouped horizontal bars: one group per category, one bar per series, value labels at the bar ends.
 * categories: string[]; series: [{ name, values: number[] }]; log: logarithmic axis; notes: text per category (e.g. ratios).
 */
export function barChart({ title, subtitle = '', categories, series, unit = '', width = 760, log = false, notes = [], fmt = (v: number): string => fmtTick(v) }: {
  title: string; subtitle?: string; categories: readonly string[]; series: readonly Series[]; unit?: string; width?: number; log?: boolean;
  notes?: readonly string[]; fmt?: (v: number) => string;
}): string {
  const left = 24 + Math.min(260, Math.max(...categories.map((c) => c.length), 8) * CHAR_W);
  const right = 150;
  const top = subtitle ? 52 : 38;
  const barH = 14;
  const groupH = series.length * (barH + 3) + 14;
  const plotH = categories.length * groupH;
  const items: LegendItem[] = series.map((s, i) => ({ name: s.name, color: s.color ?? palette(i), width: 8 }));
  const height = top + plotH + 70;
  const vals = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v) && v > 0);
  const vmax = vals.length ? Math.max(...vals) : 1;
  const vmin = vals.length ? Math.min(...vals) : 1;
  let X: (v: number) => number;
  let ticks: number[];
  if (log) {
    const lo = 10 ** Math.floor(Math.log10(vmin));
    const hi = 10 ** Math.ceil(Math.log10(vmax));
    ticks = logTicks(lo, hi);
    X = (v: number): number => left + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (width - left - right);
  } else {
    ticks = niceTicks(0, vmax, 6);
    X = (v: number): number => left + (v / last(ticks)) * (width - left - right);
  }
  const out: string[] = [];
  for (const t of ticks) {
    out.push(`<line x1="${num(X(t))}" y1="${top}" x2="${num(X(t))}" y2="${top + plotH}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${num(X(t))}" y="${top + plotH + 16}" text-anchor="middle" fill="#333" font-size="11">${fmtTick(t)}</text>`);
  }
  out.push(`<text x="${num((left + width - right) / 2)}" y="${top + plotH + 32}" text-anchor="middle" fill="#333">${esc(unit)}${log ? ' (log scale)' : ''}</text>`);
  categories.forEach((c, gi) => {
    const gy = top + gi * groupH + 7;
    out.push(`<text x="${left - 8}" y="${num(gy + (series.length * (barH + 3)) / 2 + 4)}" text-anchor="end">${esc(c)}</text>`);
    series.forEach((s, si) => {
      const v = s.values[gi];
      const y = gy + si * (barH + 3);
      const color = s.color ?? palette(si);
      if (v === undefined || !Number.isFinite(v)) {
        out.push(`<text x="${left + 4}" y="${y + barH - 3}" font-size="10" fill="#999">${esc(s.name)}: n/a</text>`);
        return;
      }
      out.push(`<rect x="${left}" y="${y}" width="${num(Math.max(1, X(v) - left))}" height="${barH}" fill="${color}" fill-opacity="0.85"/>`);
      out.push(`<text x="${num(X(v) + 4)}" y="${y + barH - 3}" font-size="10" fill="#222">${esc(fmt(v))}</text>`);
    });
    if (notes[gi]) out.push(`<text x="${width - 8}" y="${num(gy + (series.length * (barH + 3)) / 2 + 4)}" text-anchor="end" font-size="11" font-weight="600" fill="#333">${esc(notes[gi])}</text>`);
  });
  const lg = legend(items, left, height - 14, width - left - 10);
  out.push(lg.svg);
  return frame(width, Math.max(height, lg.bottom + 10), title, subtitle, out.join('\n'));
}

/**
 * Stacked horizontal bars: one bar per category, segments per part. parts: [{ name, values: number[] }].
 */
export function stackedBarChart({ title, subtitle = '', categories, parts, unit = '', width = 760, notes = [], fmt = (v: number): string => fmtTick(v), vline = null }: {
  title: string; subtitle?: string; categories: readonly string[]; parts: readonly Series[]; unit?: string; width?: number;
  notes?: readonly string[]; fmt?: (v: number) => string; vline?: { x: number; name: string } | null;
}): string {
  const left = 24 + Math.min(300, Math.max(...categories.map((c) => c.length), 8) * CHAR_W);
  const right = 110;
  const top = subtitle ? 52 : 38;
  const barH = 20;
  const rowH = barH + 10;
  const plotH = categories.length * rowH;
  const items: LegendItem[] = parts.map((p, i) => ({ name: p.name, color: p.color ?? palette(i), width: 8 }));
  if (vline) items.push({ name: vline.name, color: '#d00', dash: '6 4', width: 1.5 });
  const legendRows = Math.ceil(items.reduce((a, it) => a + 36 + it.name.length * CHAR_W, 0) / (width - 20)) || 1;
  const height = top + plotH + 46 + legendRows * 16;
  const valueAt = (p: Series, i: number): number => { const v = p.values[i]; return v !== undefined && Number.isFinite(v) ? v : 0; };
  const totals = categories.map((_, i) => parts.reduce((a, p) => a + valueAt(p, i), 0));
  const ticks = niceTicks(0, Math.max(...totals, vline?.x ?? 0, 1), 6);
  const X = (v: number): number => left + (v / last(ticks)) * (width - left - right);
  const out: string[] = [];
  for (const t of ticks) {
    out.push(`<line x1="${num(X(t))}" y1="${top}" x2="${num(X(t))}" y2="${top + plotH}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${num(X(t))}" y="${top + plotH + 16}" text-anchor="middle" fill="#333" font-size="11">${fmtTick(t)}</text>`);
  }
  out.push(`<text x="${num((left + width - right) / 2)}" y="${top + plotH + 32}" text-anchor="middle" fill="#333">${esc(unit)}</text>`);
  categories.forEach((c, i) => {
    const y = top + i * rowH + 5;
    out.push(`<text x="${left - 8}" y="${y + barH - 5}" text-anchor="end">${esc(c)}</text>`);
    let acc = 0;
    parts.forEach((p, pi) => {
      const v = valueAt(p, i);
      if (v <= 0) return;
      const color = p.color ?? palette(pi);
      out.push(`<rect x="${num(X(acc))}" y="${y}" width="${num(X(acc + v) - X(acc))}" height="${barH}" fill="${color}" fill-opacity="0.85"><title>${esc(`${p.name}: ${fmt(v)} ${unit}`)}</title></rect>`);
      acc += v;
    });
    out.push(`<text x="${num(X(acc) + 4)}" y="${y + barH - 5}" font-size="11" fill="#222">${esc(fmt(acc))}${notes[i] ? `  ${esc(notes[i])}` : ''}</text>`);
  });
  if (vline) out.push(`<line x1="${num(X(vline.x))}" y1="${top - 4}" x2="${num(X(vline.x))}" y2="${top + plotH}" stroke="#d00" stroke-width="1.5" stroke-dasharray="6 4"/>`);
  const lg = legend(items, left, top + plotH + 52, width - left - 10);
  out.push(lg.svg);
  return frame(width, Math.max(height, lg.bottom + 10), title, subtitle, out.join('\n'));
}
