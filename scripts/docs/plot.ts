/**
 * Small, dependency-free SVG charts for the figures of the guides (scripts/docs/figures.ts):
 * a grid of panels with axes, lines, dots, bars, rugs, shaded bands and vertical markers. The
 * tick choice is the loss-curve figure's (`niceTicks` from bin/cli/svg.ts).
 */
import { esc, fmt, niceTicks } from '../../bin/cli/svg.js';

/** One data series of a panel. */
export interface Series {
  /** `line`: a polyline; `dots`: circles; `bars`: bars from 0 of width `barWidth` (data units) centred on x; `rug`: short ticks at the bottom of the panel. */
  kind: 'line' | 'dots' | 'bars' | 'rug';
  x: ArrayLike<number>;
  /** Ignored for `rug`. */
  y?: ArrayLike<number>;
  color: string;
  /** Stroke width (lines, rugs) or radius (dots). */
  width?: number;
  dash?: string;
  opacity?: number;
  /** Bar width in x units (bars). */
  barWidth?: number;
  /** Legend entry; series without one are not listed. */
  label?: string;
}

/** One chart. */
export interface Panel {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  xRange: [number, number];
  /** Default: the data's range (with 0 for bars), widened to round ticks. */
  yRange?: [number, number];
  series: Series[];
  /** Vertical lines at x, optionally labelled at the top. */
  vlines?: { x: number; color?: string; dash?: string; label?: string }[];
  /** Shaded x intervals, optionally labelled at the top. */
  bands?: { from: number; to: number; color: string; label?: string }[];
  /** Horizontal reference lines. */
  hlines?: { y: number; color?: string; dash?: string; label?: string }[];
  /** Where the legend goes. Default top right. */
  legend?: 'top-right' | 'top-left' | 'bottom-right' | 'none';
}

/** Options of {@link figureSvg}. */
export interface FigureOptions {
  title?: string;
  /** Text under the title (one line). */
  subtitle?: string;
  width?: number;
  panelHeight?: number;
  columns?: number;
}

function tickLabel(v: number): string {
  return Number(v.toPrecision(6)).toString(); // (-0).toString() is "0"
}

function dataRange(panel: Panel): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of panel.series) {
    if (s.kind === 'rug' || s.y === undefined) continue;
    for (let i = 0; i < s.y.length; i++) {
      const v = s.y[i]!;
      const x = s.x[i]!;
      if (!Number.isFinite(v) || x < panel.xRange[0] || x > panel.xRange[1]) continue;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    if (s.kind === 'bars') lo = Math.min(lo, 0);
  }
  for (const h of panel.hlines ?? []) {
    lo = Math.min(lo, h.y);
    hi = Math.max(hi, h.y);
  }
  if (!Number.isFinite(lo)) return [0, 1];
  if (hi === lo) return [lo - 1, hi + 1];
  // A little headroom so the highest point does not touch the frame.
  const pad = 0.04 * (hi - lo);
  return [lo < 0 ? lo - pad : lo, hi + pad];
}

let clipCounter = 0;

function panelSvg(panel: Panel, ox: number, oy: number, w: number, h: number): string {
  const m = { left: 58, right: 16, top: panel.title === undefined ? 14 : 30, bottom: panel.xLabel === undefined ? 26 : 42 };
  const pw = w - m.left - m.right;
  const ph = h - m.top - m.bottom;
  const [x0, x1] = panel.xRange;
  let [y0, y1] = panel.yRange ?? dataRange(panel);
  const yTicks = niceTicks(y0, y1, 5);
  if (panel.yRange === undefined) {
    const step = yTicks.length > 1 ? yTicks[1]! - yTicks[0]! : 1;
    y0 = Math.min(y0, yTicks[0]!);
    y1 = Math.max(y1, yTicks[yTicks.length - 1]!);
    if (y1 - y0 < step) y1 = y0 + step;
  }
  const px = (x: number): number => ox + m.left + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number): number => oy + m.top + ph - ((y - y0) / (y1 - y0)) * ph;
  const clip = `clip${clipCounter++}`;
  const out: string[] = [];
  out.push(`<clipPath id="${clip}"><rect x="${fmt(ox + m.left)}" y="${fmt(oy + m.top)}" width="${fmt(pw)}" height="${fmt(ph)}"/></clipPath>`);
  if (panel.title !== undefined) out.push(`<text x="${fmt(ox + m.left)}" y="${fmt(oy + 18)}" font-size="13" font-weight="bold">${esc(panel.title)}</text>`);
  for (const b of panel.bands ?? []) {
    const a = px(Math.max(b.from, x0));
    const z = px(Math.min(b.to, x1));
    out.push(`<rect x="${fmt(a)}" y="${fmt(oy + m.top)}" width="${fmt(Math.max(0, z - a))}" height="${fmt(ph)}" fill="${b.color}"/>`);
    if (b.label !== undefined) out.push(`<text x="${fmt((a + z) / 2)}" y="${fmt(oy + m.top + 12)}" text-anchor="middle" font-size="10" fill="#555">${esc(b.label)}</text>`);
  }
  for (const t of yTicks) {
    if (t < y0 - 1e-12 || t > y1 + 1e-12) continue;
    out.push(`<line x1="${fmt(ox + m.left)}" x2="${fmt(ox + m.left + pw)}" y1="${fmt(py(t))}" y2="${fmt(py(t))}" stroke="#e6e6e6"/>`);
    out.push(`<text x="${fmt(ox + m.left - 6)}" y="${fmt(py(t) + 4)}" text-anchor="end">${tickLabel(t)}</text>`);
  }
  for (const t of niceTicks(x0, x1, 8)) {
    out.push(`<line x1="${fmt(px(t))}" x2="${fmt(px(t))}" y1="${fmt(oy + m.top + ph)}" y2="${fmt(oy + m.top + ph + 4)}" stroke="#888"/>`);
    out.push(`<text x="${fmt(px(t))}" y="${fmt(oy + m.top + ph + 16)}" text-anchor="middle">${tickLabel(t)}</text>`);
  }
  for (const l of panel.hlines ?? []) {
    out.push(`<line x1="${fmt(ox + m.left)}" x2="${fmt(ox + m.left + pw)}" y1="${fmt(py(l.y))}" y2="${fmt(py(l.y))}" stroke="${l.color ?? '#444'}" stroke-dasharray="${l.dash ?? '5 3'}"/>`);
    if (l.label !== undefined) out.push(`<text x="${fmt(ox + m.left + 4)}" y="${fmt(py(l.y) - 4)}" font-size="10" fill="${l.color ?? '#444'}">${esc(l.label)}</text>`);
  }
  const g: string[] = [];
  for (const s of panel.series) {
    const op = s.opacity === undefined ? '' : ` opacity="${s.opacity}"`;
    if (s.kind === 'line') {
      const pts: string[] = [];
      let pen = false;
      for (let i = 0; i < s.x.length; i++) {
        const v = s.y![i]!;
        if (!Number.isFinite(v)) {
          pen = false;
          continue;
        }
        pts.push(`${pen ? 'L' : 'M'}${fmt(px(s.x[i]!))},${fmt(py(v))}`);
        pen = true;
      }
      g.push(`<path d="${pts.join(' ')}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.5}"${s.dash === undefined ? '' : ` stroke-dasharray="${s.dash}"`}${op}/>`);
    } else if (s.kind === 'dots') {
      for (let i = 0; i < s.x.length; i++) {
        if (!Number.isFinite(s.y![i]!)) continue;
        g.push(`<circle cx="${fmt(px(s.x[i]!))}" cy="${fmt(py(s.y![i]!))}" r="${s.width ?? 2}" fill="${s.color}"${op}/>`);
      }
    } else if (s.kind === 'bars') {
      const bw = s.barWidth ?? (x1 - x0) / Math.max(1, s.x.length);
      for (let i = 0; i < s.x.length; i++) {
        const v = s.y![i]!;
        if (!Number.isFinite(v)) continue;
        const a = px(s.x[i]! - bw / 2);
        const z = px(s.x[i]! + bw / 2);
        const top = py(Math.max(v, 0));
        const bottom = py(Math.min(v, 0));
        g.push(`<rect x="${fmt(a)}" y="${fmt(top)}" width="${fmt(Math.max(0.3, z - a))}" height="${fmt(Math.max(0, bottom - top))}" fill="${s.color}"${op}/>`);
      }
    } else {
      const path: string[] = [];
      for (let i = 0; i < s.x.length; i++) path.push(`M${fmt(px(s.x[i]!))},${fmt(oy + m.top + ph)} v-8`);
      g.push(`<path d="${path.join(' ')}" stroke="${s.color}" stroke-width="${s.width ?? 1}"${op}/>`);
    }
  }
  out.push(`<g clip-path="url(#${clip})">${g.join('')}</g>`);
  for (const v of panel.vlines ?? []) {
    if (v.x < x0 || v.x > x1) continue;
    out.push(`<line x1="${fmt(px(v.x))}" x2="${fmt(px(v.x))}" y1="${fmt(oy + m.top)}" y2="${fmt(oy + m.top + ph)}" stroke="${v.color ?? '#666'}" stroke-dasharray="${v.dash ?? '4 3'}"/>`);
    if (v.label !== undefined) out.push(`<text x="${fmt(px(v.x) + 3)}" y="${fmt(oy + m.top + ph - 6)}" font-size="10" fill="${v.color ?? '#666'}">${esc(v.label)}</text>`);
  }
  out.push(`<rect x="${fmt(ox + m.left)}" y="${fmt(oy + m.top)}" width="${fmt(pw)}" height="${fmt(ph)}" fill="none" stroke="#888"/>`);
  if (panel.xLabel !== undefined) out.push(`<text x="${fmt(ox + m.left + pw / 2)}" y="${fmt(oy + h - 8)}" text-anchor="middle">${esc(panel.xLabel)}</text>`);
  if (panel.yLabel !== undefined) out.push(`<text transform="translate(${fmt(ox + 14)} ${fmt(oy + m.top + ph / 2)}) rotate(-90)" text-anchor="middle">${esc(panel.yLabel)}</text>`);
  const entries = panel.series.filter((s) => s.label !== undefined);
  if (entries.length > 0 && panel.legend !== 'none') {
    const where = panel.legend ?? 'top-right';
    const longest = Math.max(...entries.map((s) => s.label!.length));
    const lw = Math.min(pw - 8, 40 + longest * 6.2);
    const lx = where === 'top-left' ? ox + m.left + 8 : ox + m.left + pw - lw - 4;
    const ly = where === 'bottom-right' ? oy + m.top + ph - entries.length * 15 - 6 : oy + m.top + 6;
    out.push(`<rect x="${fmt(lx - 4)}" y="${fmt(ly)}" width="${fmt(lw)}" height="${entries.length * 15 + 6}" fill="white" fill-opacity="0.85" stroke="#ddd"/>`);
    entries.forEach((s, i) => {
      const y = ly + 14 + i * 15;
      if (s.kind === 'dots') out.push(`<circle cx="${fmt(lx + 12)}" cy="${fmt(y - 4)}" r="3" fill="${s.color}"/>`);
      else if (s.kind === 'bars') out.push(`<rect x="${fmt(lx + 4)}" y="${fmt(y - 9)}" width="16" height="9" fill="${s.color}"${s.opacity === undefined ? '' : ` opacity="${s.opacity}"`}/>`);
      else out.push(`<line x1="${fmt(lx)}" x2="${fmt(lx + 24)}" y1="${fmt(y - 4)}" y2="${fmt(y - 4)}" stroke="${s.color}" stroke-width="2"${s.dash === undefined ? '' : ` stroke-dasharray="${s.dash}"`}/>`);
      out.push(`<text x="${fmt(lx + 30)}" y="${fmt(y)}" font-size="11">${esc(s.label!)}</text>`);
    });
  }
  return out.join('\n');
}

/** A figure of panels laid out in `columns` (default 1) as SVG text. */
export function figureSvg(panels: readonly Panel[], options: FigureOptions = {}): string {
  const W = options.width ?? 900;
  const cols = options.columns ?? 1;
  const PH = options.panelHeight ?? 260;
  const rows = Math.ceil(panels.length / cols);
  const head = (options.title === undefined ? 0 : 28) + (options.subtitle === undefined ? 0 : 18);
  const H = head + rows * PH + 6;
  const pw = W / cols;
  const parts: string[] = [];
  clipCounter = 0;
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  if (options.title !== undefined) parts.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(options.title)}</text>`);
  if (options.subtitle !== undefined) parts.push(`<text x="${W / 2}" y="${head - 6}" text-anchor="middle" font-size="11" fill="#555">${esc(options.subtitle)}</text>`);
  panels.forEach((p, i) => {
    const r = Math.floor(i / cols);
    const c = i % cols;
    parts.push(panelSvg(p, c * pw, head + r * PH, pw, PH));
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
