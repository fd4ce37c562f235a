/**
 * The quality table of `docs/quality.md`: for each log, the main job's predictor and its
 * ablations, each reading the log as ONE stream from its first byte (prequential), beside the
 * compressors on the same bytes. Every figure is an ideal code length in bits per byte.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { basename } from 'node:path';
import { ContextMixer, InfiniFormer, OnlineLearner, frozenScorer, learningScorer, makeConfig, scorePrequential } from '../../src/index.js';
import type { NextByteScorer, PrequentialResult } from '../../src/index.js';
import { wrapParams } from '../../src/model/params.js';
import { compressorBaselines } from './baselines.js';
import type { BaselineResult } from './baselines.js';
import { withoutLongTermMemory } from './evaluation.js';

/** The predictors of the table, in column order. */
export const COLUMNS = [
  { id: 'frozen', title: 'model frozen, alone' },
  { id: 'frozenMix', title: 'model frozen + mixing' },
  { id: 'learning', title: 'model learning, alone' },
  { id: 'learningMix', title: 'model learning + mixing (main job)' },
  { id: 'learningNoLtmMix', title: 'learning + mixing, LTM off' },
  { id: 'scratchMix', title: 'from scratch (no prior), learning + mixing' },
  { id: 'mix', title: 'mixing alone' },
] as const;

export type ColumnId = (typeof COLUMNS)[number]['id'];

/** One log's row. */
export interface QualityRow {
  name: string;
  bytes: number;
  bits: Partial<Record<ColumnId, number>>;
  /** Seconds each column took. */
  seconds: Partial<Record<ColumnId, number>>;
  /** Segments the learning network stepped on (main job column). */
  segmentsLearned?: number;
  baselines: BaselineResult[];
  /** Per-byte bits of the columns kept for the figure. */
  trace?: Partial<Record<ColumnId, Float32Array>>;
}

let copies = 0;

/** A fresh copy of `model`'s weights (the learner changes weights in place). */
function copyOf(model: InfiniFormer, config = model.config): InfiniFormer {
  const named = new Map([...model.params.byName].map(([k, v]) => [k, tf.variable(v, true, `${k}.copy${copies}`)] as const));
  copies += 1;
  const c = makeConfig({ ...config });
  return new InfiniFormer(c, wrapParams(c, named), model.tokenizer);
}

function learnPass(model: InfiniFormer, bytes: Uint8Array, mix: boolean): PrequentialResult {
  const learner = new OnlineLearner(model);
  const state = model.createState(0);
  const net: NextByteScorer = learningScorer(learner, state);
  try {
    return scorePrequential(bytes, { network: net, mixer: mix ? new ContextMixer() : false });
  } finally {
    net.dispose();
    learner.dispose();
  }
}

/** Scores one file under every column (or those in `only`). */
export async function qualityRow(file: string, prior: InfiniFormer, options: { only?: readonly ColumnId[]; trace?: boolean; log?: (s: string) => void } = {}): Promise<QualityRow> {
  const bytes = new Uint8Array(readFileSync(file));
  const row: QualityRow = { name: basename(file).replace(/\.[^.]+$/, ''), bytes: bytes.length, bits: {}, seconds: {}, baselines: await compressorBaselines(bytes), trace: {} };
  const want = (id: ColumnId): boolean => options.only === undefined || options.only.includes(id);
  const put = (id: ColumnId, r: PrequentialResult, value = r.bitsPerByte): void => {
    row.bits[id] = value;
    row.seconds[id] = r.seconds;
    if (options.trace === true && id !== 'frozen' && id !== 'learning') row.trace![id] = r.bits;
    options.log?.(`${row.name}: ${id} ${value.toFixed(4)} bits/byte (${r.seconds.toFixed(0)} s)`);
  };
  if (want('frozen') || want('frozenMix')) {
    const net = frozenScorer(prior);
    try {
      const r = scorePrequential(bytes, { network: net, mixer: new ContextMixer() });
      put('frozen', r, r.networkBitsPerByte!);
      put('frozenMix', r);
    } finally {
      net.dispose();
    }
  }
  if (want('learning') || want('learningMix')) {
    const m = copyOf(prior);
    const r = learnPass(m, bytes, true);
    put('learning', r, r.networkBitsPerByte!);
    put('learningMix', r);
    row.segmentsLearned = r.segmentsLearned;
    m.dispose();
  }
  if (want('learningNoLtmMix') && prior.config.longTermMemory) {
    const m = copyOf(withoutLongTermMemory(prior));
    put('learningNoLtmMix', learnPass(m, bytes, true));
    m.dispose();
  }
  if (want('scratchMix')) {
    const m = InfiniFormer.create({ ...prior.config }, { seed: 0 });
    put('scratchMix', learnPass(m, bytes, true));
    m.dispose();
  }
  if (want('mix')) put('mix', scorePrequential(bytes, { mixer: new ContextMixer() }));
  return row;
}

const BASELINE_ORDER = ['gzip -9', 'brotli -11', 'xz -9e', 'zstd -19', 'PPMd (7z)', 'order-2 model'];

/** The markdown table: one row per log, the columns that were run, then the baselines; a mean row. */
export function qualityTable(rows: readonly QualityRow[]): string[] {
  const cols = COLUMNS.filter((c) => rows.some((r) => r.bits[c.id] !== undefined));
  const f = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(3));
  const base = (r: QualityRow, name: string): number | undefined => r.baselines.find((b) => b.name === name)?.bitsPerByte;
  const best = (r: QualityRow): number => Math.min(...BASELINE_ORDER.map((n) => base(r, n) ?? Infinity));
  const lines = [
    `| log | bytes | ${cols.map((c) => c.title).join(' | ')} | ${BASELINE_ORDER.join(' | ')} |`,
    `|---|---:|${cols.map(() => '---:').join('|')}|${BASELINE_ORDER.map(() => '---:').join('|')}|`,
  ];
  for (const r of rows) {
    const main = r.bits.learningMix ?? r.bits.frozenMix;
    const cells = cols.map((c) => (c.id === 'learningMix' || (c.id === 'frozenMix' && r.bits.learningMix === undefined) ? `**${f(r.bits[c.id])}**` : f(r.bits[c.id])));
    const mark = main !== undefined && main <= best(r) ? '' : ' ⚠';
    lines.push(`| ${r.name}${mark} | ${r.bytes.toLocaleString('en-US')} | ${cells.join(' | ')} | ${BASELINE_ORDER.map((n) => f(base(r, n))).join(' | ')} |`);
  }
  const mean = (xs: (number | undefined)[]): number | undefined => (xs.every((x) => x !== undefined) ? xs.reduce((a, b) => a! + b!, 0)! / xs.length : undefined);
  lines.push(`| **mean** | | ${cols.map((c) => f(mean(rows.map((r) => r.bits[c.id])))).join(' | ')} | ${BASELINE_ORDER.map((n) => f(mean(rows.map((r) => base(r, n))))).join(' | ')} |`);
  return lines;
}

/** Running mean bits/byte over windows of `window` bytes, as chart points (x = KB read). */
export function windowed(bits: Float32Array, window: number): { step: number; value: number }[] {
  const out: { step: number; value: number }[] = [];
  for (let start = 0; start + window <= bits.length; start += window) {
    let s = 0;
    for (let i = start; i < start + window; i++) s += bits[i]!;
    out.push({ step: (start + window) / 1024, value: s / window });
  }
  return out;
}

/** Compressed size of each prefix of `bytes` ending at a window boundary, as bits per byte of each window. */
export function compressorWindows(bytes: Uint8Array, window: number, size: (prefix: Uint8Array) => number): { step: number; value: number }[] {
  const out: { step: number; value: number }[] = [];
  let prev = 0;
  for (let end = window; end <= bytes.length; end += window) {
    const now = size(bytes.subarray(0, end)) * 8;
    out.push({ step: end / 1024, value: (now - prev) / window });
    prev = now;
  }
  return out;
}
