/**
 * The loss-curve figure of a training report, drawn as a self-contained SVG (no dependencies):
 * training loss per step (faint), its moving average, and evaluation points, in bits per byte.
 */

export interface CurvePoint {
  step: number;
  value: number;
}

export interface LossCurveOptions {
  title?: string;
  width?: number;
  height?: number;
  /** Window of the moving average in steps. Default: 2% of the run, at least 1. */
  smoothing?: number;
  /**
   * `log` draws bits per byte on a logarithmic axis, which keeps a loss falling from 8 to 0.05
   * readable; `auto` (default) picks it when the values span more than a factor of 20.
   */
  yScale?: 'auto' | 'linear' | 'log';
}

/** Tick values of a logarithmic axis over [lo, hi] (lo > 0): 1, 2, 5 x 10^k. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++) {
    for (const m of [1, 2, 5]) {
      const v = Number((m * 10 ** k).toPrecision(6));
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push(v);
    }
  }
  return ticks;
}

/** About `count` round tick values (1, 2, 5 x 10^k) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Trailing moving average over `window` points. */
export function movingAverage(points: readonly CurvePoint[], window: number): CurvePoint[] {
  const out: CurvePoint[] = [];
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    sum += points[i]!.value;
    if (i >= window) sum -= points[i - window]!.value;
    out.push({ step: points[i]!.step, value: sum / Math.min(i + 1, window) });
  }
  return out;
}

/** Bucket means, so a long run draws at most `max` points. */
function thin(points: readonly CurvePoint[], max: number): CurvePoint[] {
  if (points.length <= max) return [...points];
  const per = points.length / max;
  const out: CurvePoint[] = [];
  for (let b = 0; b < max; b++) {
    const slice = points.slice(Math.floor(b * per), Math.floor((b + 1) * per));
    if (slice.length === 0) continue;
    out.push({ step: slice[slice.length - 1]!.step, value: slice.reduce((s, p) => s + p.value, 0) / slice.length });
  }
  return out;
}

/** Text escaped for SVG/XML content and attributes. */
export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Coordinates with one decimal: small files, and stable across backends' float noise. */
export function fmt(v: number): string {
  return Number(v.toFixed(1)).toString();
}

/** The figure as SVG text. Non-finite values are skipped. */
export function lossCurveSvg(train: readonly CurvePoint[], evals: readonly CurvePoint[], options: LossCurveOptions = {}): string {
  const W = options.width ?? 760;
  const H = options.height ?? 420;
  const m = { left: 64, right: 24, top: 44, bottom: 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const finite = (p: CurvePoint): boolean => Number.isFinite(p.value) && Number.isFinite(p.step);
  const tr = train.filter(finite);
  const ev = evals.filter(finite);
  const all = [...tr, ...ev];
  const maxStep = Math.max(1, ...all.map((p) => p.step));
  const maxValue = Math.max(1e-9, ...all.map((p) => p.value));
  const positive = all.filter((p) => p.value > 0).map((p) => p.value);
  const minPositive = positive.length > 0 ? Math.min(...positive) : maxValue;
  const scale = options.yScale ?? 'auto';
  const log = scale === 'log' || (scale === 'auto' && maxValue / minPositive > 20);
  let y: (v: number) => number;
  let yTicks: number[];
  if (log) {
    // Whole 1-2-5 steps around the data; values <= 0 sit on the bottom edge.
    const lo = [1, 2, 5].map((mm) => mm * 10 ** Math.floor(Math.log10(minPositive))).filter((v) => v <= minPositive).pop()!;
    const hi = [1, 2, 5, 10].map((mm) => mm * 10 ** Math.floor(Math.log10(maxValue))).find((v) => v >= maxValue)!;
    yTicks = logTicks(lo, hi);
    const [a, b] = [Math.log10(lo), Math.log10(hi)];
    y = (v: number): number => m.top + ph - ((Math.log10(Math.max(v, lo)) - a) / (b - a)) * ph;
  } else {
    yTicks = niceTicks(0, maxValue, 6);
    const yMax = Math.max(maxValue, yTicks[yTicks.length - 1]!);
    y = (v: number): number => m.top + ph - (v / yMax) * ph;
  }
  const xTicks = niceTicks(0, maxStep, 6);
  const x = (step: number): number => m.left + (step / maxStep) * pw;
  const path = (pts: readonly CurvePoint[]): string => pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${fmt(x(p.step))},${fmt(y(p.value))}`).join(' ');
  const window = options.smoothing ?? Math.max(1, Math.round(tr.length / 50));
  const smooth = thin(movingAverage(tr, window), 800);
  const raw = thin(tr, 800);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  if (options.title !== undefined) parts.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${esc(options.title)}</text>`);
  for (const t of yTicks) {
    parts.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${fmt(y(t))}" y2="${fmt(y(t))}" stroke="#e4e4e4"/>`);
    parts.push(`<text x="${m.left - 8}" y="${fmt(y(t) + 4)}" text-anchor="end">${t}</text>`);
  }
  for (const t of xTicks) {
    parts.push(`<line x1="${fmt(x(t))}" x2="${fmt(x(t))}" y1="${m.top}" y2="${m.top + ph}" stroke="#f0f0f0"/>`);
    parts.push(`<text x="${fmt(x(t))}" y="${m.top + ph + 18}" text-anchor="middle">${t}</text>`);
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${H - 14}" text-anchor="middle">training step</text>`);
  parts.push(`<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">bits per byte${log ? ' (log scale)' : ''}</text>`);
  if (raw.length > 0) parts.push(`<path d="${path(raw)}" fill="none" stroke="#9ecae1" stroke-width="1"/>`);
  if (smooth.length > 0) parts.push(`<path d="${path(smooth)}" fill="none" stroke="#08519c" stroke-width="2"/>`);
  if (ev.length > 0) {
    parts.push(`<path d="${path(ev)}" fill="none" stroke="#e6550d" stroke-width="1.5" stroke-dasharray="4 3"/>`);
    for (const p of ev) parts.push(`<circle cx="${fmt(x(p.step))}" cy="${fmt(y(p.value))}" r="3.5" fill="#e6550d"/>`);
  }
  const lx = m.left + pw - 220;
  const legend: [string, string][] = [
    ['#9ecae1', 'training loss (per step)'],
    ['#08519c', `training loss (mean of ${window} steps)`],
  ];
  if (ev.length > 0) legend.push(['#e6550d', 'evaluation split']);
  legend.forEach(([color, label], i) => {
    const ly = m.top + 16 + i * 18;
    parts.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2.5"/>`);
    parts.push(`<text x="${lx + 30}" y="${ly}">${esc(label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** One line of a {@link seriesSvg} chart. */
export interface Series {
  label: string;
  color: string;
  points: readonly CurvePoint[];
  dashed?: boolean;
}

/** A plain line chart of several series (x = `step`), linear axes from 0, legend top right. */
export function seriesSvg(series: readonly Series[], options: { title: string; xLabel: string; yLabel: string; width?: number; height?: number }): string {
  const W = options.width ?? 960;
  const H = options.height ?? 420;
  // The legend sits in the right margin, off the data.
  const m = { left: 64, right: 300, top: 44, bottom: 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.value) && Number.isFinite(p.step));
  const maxX = Math.max(1, ...all.map((p) => p.step));
  const maxY = Math.max(1e-9, ...all.map((p) => p.value));
  const xTicks = niceTicks(0, maxX, 6);
  const yTicks = niceTicks(0, maxY, 6);
  const xMax = Math.max(maxX, xTicks[xTicks.length - 1]!);
  const yMax = Math.max(maxY, yTicks[yTicks.length - 1]!);
  const x = (v: number): number => m.left + (v / xMax) * pw;
  const y = (v: number): number => m.top + ph - (v / yMax) * ph;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  parts.push(`<text x="${m.left + pw / 2}" y="24" text-anchor="middle" font-size="15">${esc(options.title)}</text>`);
  for (const t of yTicks) parts.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${fmt(y(t))}" y2="${fmt(y(t))}" stroke="#e4e4e4"/>`, `<text x="${m.left - 8}" y="${fmt(y(t) + 4)}" text-anchor="end">${t}</text>`);
  for (const t of xTicks) parts.push(`<text x="${fmt(x(t))}" y="${m.top + ph + 18}" text-anchor="middle">${t}</text>`);
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${H - 14}" text-anchor="middle">${esc(options.xLabel)}</text>`);
  parts.push(`<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(options.yLabel)}</text>`);
  series.forEach((s, i) => {
    const d = s.points.map((p, j) => `${j === 0 ? 'M' : 'L'}${fmt(x(p.step))},${fmt(y(p.value))}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="5 4"' : ''}/>`);
    const lx = m.left + pw + 16;
    const ly = m.top + 12 + i * 20;
    parts.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2.5"${s.dashed === true ? ' stroke-dasharray="5 4"' : ''}/>`, `<text x="${lx + 30}" y="${ly}">${esc(s.label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
