/**
 * The training report in an output directory: `report.md` and `loss-curve.svg`, rebuilt from
 * `run.json` (what was run, on what) and `history.jsonl` (one line per step and evaluation), so
 * an interrupted and resumed run reports its whole history.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ModelConfig, ResolvedTrainerOptions } from '../../src/index.js';
import type { BaselineResult } from './baselines.js';
import type { ByteEval, EvalLayout } from './evaluation.js';
import { formatDuration } from './progress.js';
import { lossCurveSvg } from './svg.js';
import type { CurvePoint } from './svg.js';

/** One line of history.jsonl: a training step, or an evaluation (with `eval`). */
export interface HistoryEntry {
  step: number;
  /** Training objective, nats per byte. */
  loss?: number;
  /** LM cross-entropy, nats per byte. */
  crossEntropy?: number;
  learningRate?: number;
  gradNorm?: number;
  tokens?: number;
  /** Wall time of the step itself. */
  seconds?: number;
  eval?: ByteEval;
}

/** Contents of run.json. */
export interface RunRecord {
  format: 'infiniformer-train-run';
  formatVersion: 1;
  commands: { argv: string[]; cwd: string; startedAt: string; backend: string; node: string }[];
  data: {
    files: { path: string; bytes: number; lines: number }[];
    bytes: number;
    sha256: string;
    evalFraction: number;
    trainBytes: number;
    trainLines: number;
    evalBytes: number;
    evalLines: number;
  };
  config: ModelConfig;
  trainer: ResolvedTrainerOptions;
  streams: number;
  steps: number;
  evalEvery: number;
  evalSegments: number;
  checkpointEvery: number;
  evalMaxBytes: number;
  status?: { state: 'running' | 'finished' | 'interrupted'; step: number };
  final?: { step: number; layout: EvalLayout; withLtm: ByteEval; withoutLtm?: ByteEval };
}

/** `/home/me/x` as `~/x`, for reports that travel. */
export function tildePath(p: string): string {
  const home = homedir();
  return home.length > 1 && (p === home || p.startsWith(`${home}/`)) ? `~${p.slice(home.length)}` : p;
}

/** An argv as a shell command line. */
export function shellLine(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./~-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export function readHistory(file: string): HistoryEntry[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as HistoryEntry);
}

const n = (x: number, digits = 3): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
const int = (x: number): string => x.toLocaleString('en-US');

/** Writes report.md and loss-curve.svg into `dir`. */
export function writeReport(dir: string, run: RunRecord): void {
  const history = readHistory(join(dir, 'history.jsonl'));
  const steps = history.filter((h) => h.eval === undefined && h.crossEntropy !== undefined);
  const evals = history.filter((h) => h.eval !== undefined);
  const train: CurvePoint[] = steps.map((h) => ({ step: h.step, value: h.crossEntropy! / Math.LN2 }));
  const evalPoints: CurvePoint[] = evals.map((h) => ({ step: h.step, value: h.eval!.bitsPerByte }));
  writeFileSync(join(dir, 'loss-curve.svg'), lossCurveSvg(train, evalPoints, { title: `Training loss, ${run.config.numLayers} layers, e = ${run.config.width}, L = ${run.config.segmentLength}` }));

  const tokens = steps.reduce((s, h) => s + (h.tokens ?? 0), 0);
  const seconds = steps.reduce((s, h) => s + (h.seconds ?? 0), 0);
  const lastStep = steps.length > 0 ? steps[steps.length - 1]!.step : 0;
  const tail = steps.slice(-Math.max(1, Math.round(steps.length / 20)));
  const tailBits = tail.reduce((s, h) => s + h.crossEntropy! / Math.LN2, 0) / Math.max(1, tail.length);
  const weightsBytes = existsSync(join(dir, 'weights.bin')) ? statSync(join(dir, 'weights.bin')).size : NaN;
  const params = Number.isFinite(weightsBytes) ? weightsBytes / 4 : NaN;
  const c = run.config;
  const L: string[] = [];
  L.push(`# Training report`, '');
  L.push(`Status: **${run.status?.state ?? 'unknown'}** at step ${run.status?.step ?? lastStep} of ${run.steps}.`, '');
  L.push('Produced by (from the repository root):', '', '```sh');
  for (const cmd of run.commands) L.push(`npx infiniformer ${shellLine(cmd.argv.map(tildePath))}`);
  L.push('```', '');
  const cmd0 = run.commands[run.commands.length - 1];
  if (cmd0 !== undefined) L.push(`Backend \`${cmd0.backend}\`, Node ${cmd0.node}, started ${cmd0.startedAt}.`, '');
  L.push('## Data', '', '| file | bytes | lines |', '|---|---:|---:|');
  for (const f of run.data.files) L.push(`| \`${tildePath(f.path)}\` | ${int(f.bytes)} | ${int(f.lines)} |`);
  L.push('');
  L.push(
    `Training split: the first ${int(run.data.trainBytes)} bytes (${int(run.data.trainLines)} lines). ` +
      `Evaluation split: the last ${int(run.data.evalBytes)} bytes (${int(run.data.evalLines)} whole lines, --eval-fraction ${run.data.evalFraction}). ` +
      `SHA-256 of the data: \`${run.data.sha256.slice(0, 16)}…\`.`,
    '',
  );
  L.push('## Model', '');
  L.push(
    `Byte-level ∞-former: ${c.numLayers} layers, width e = ${c.width}, ${c.numHeads} heads, FFN ${c.ffnWidth}, segment length L = ${c.segmentLength}, ` +
      `long-term memory ${c.longTermMemory ? `on (N = ${c.numBasis} basis functions, widths {${c.basisWidths.join(', ')}}, M = ${c.numSamples} samples, tau = ${c.tau}${c.sticky ? ', sticky' : ''})` : 'off'}, ` +
      `${c.positions} positions, vocabulary ${c.vocabSize}.`,
    '',
  );
  if (Number.isFinite(params)) L.push(`${int(params)} parameters; \`weights.bin\` is ${int(weightsBytes)} bytes (${(weightsBytes / 1e6).toFixed(2)} MB, float32).`, '');
  L.push('<details><summary>config.json (model config)</summary>', '', '```json', JSON.stringify(c, null, 2), '```', '', '</details>', '');
  L.push('## Training', '');
  const t = run.trainer;
  L.push(
    `${int(lastStep)} steps of ${run.streams} parallel streams x ${c.segmentLength} bytes = ${int(tokens)} bytes (tokens) trained on, ` +
      `truncated backpropagation through time with the memory carried across segments. AdamW (peak learning rate ${t.learningRate}, ` +
      `${t.warmupSteps} warmup steps, cosine decay to ${t.minLearningRateRatio} x peak at step ${t.totalSteps}, weight decay ${t.weightDecay}), ` +
      `gradient-norm clip ${t.maxGradNorm}, dropout ${c.dropout}, KL weight ${c.klWeight}.`,
    '',
  );
  L.push(
    `Training time (steps only, evaluations and checkpoints excluded): ${formatDuration(seconds)}; ` +
      `**${int(Math.round(tokens / Math.max(seconds, 1e-9)))} tokens/s** on average.`,
    '',
  );
  L.push(`Final training loss (mean of the last ${tail.length} steps): **${n(tailBits)} bits per byte**.`, '');
  L.push('![loss curve](loss-curve.svg)', '');
  if (evals.length > 0) {
    L.push(`Evaluation during training: every ${run.evalEvery} steps, the first ${run.evalSegments} segments of each stream of the evaluation split.`, '');
  }
  if (run.final !== undefined) {
    const f = run.final;
    L.push('## Evaluation split', '');
    L.push(
      `At step ${f.step}, on ${int(f.layout.bytesScored)} bytes of the evaluation split (${f.layout.streams} streams x ${f.layout.segments} segments, ` +
        `memory carried along each stream):`,
      '',
    );
    L.push(...evalTable(f.withLtm, f.withoutLtm), '');
    L.push(WITHOUT_LTM_NOTE, '');
  }
  writeFileSync(join(dir, 'report.md'), `${L.join('\n')}\n`);
}

/** What "without LTM" means, for every report. */
export const WITHOUT_LTM_NOTE =
  '"Without LTM" = the same weights with the long-term memory\'s reads switched off in every layer (Z_LTM = 0; the short-term ' +
  'attention over the previous and current segment is unchanged). That is how the model computes the first segment of every ' +
  'stream, so the difference is what the trained model gains from what its memory holds; it is not the loss of a model trained ' +
  'without a long-term memory.';

/** A markdown table of one or two evaluations. */
export function evalTable(withLtm: ByteEval, withoutLtm?: ByteEval): string[] {
  const rows = ['| | bits per byte | perplexity (per byte) | next-byte accuracy |', '|---|---:|---:|---:|'];
  const row = (name: string, e: ByteEval): string => `| ${name} | ${n(e.bitsPerByte, 4)} | ${n(e.perplexity, 4)} | ${n(e.accuracy, 4)} |`;
  rows.push(row('with LTM', withLtm));
  if (withoutLtm !== undefined) rows.push(row('without LTM', withoutLtm));
  return rows;
}

/** The baselines as terminal lines, laid out as eval's model table: name, bits per byte, compressed bytes, what was run. */
export function baselineLines(rows: readonly BaselineResult[], bytes: number): string[] {
  const out = [`baselines on the same ${int(bytes)} bytes (compressed size in bits per input byte):`, `${''.padEnd(16)}${'bits/byte'.padStart(10)}  ${'compressed bytes'.padStart(16)}  run as`];
  for (const r of rows) {
    if (r.skipped !== undefined) out.push(`${r.name.padEnd(16)}  ${r.skipped}`);
    else out.push(`${r.name.padEnd(16)}${n(r.bitsPerByte!, 4).padStart(10)}  ${int(Math.round(r.compressedBytes!)).padStart(16)}  ${r.command}`);
  }
  return out;
}

/** The baselines as a markdown table. */
export function baselineTable(rows: readonly BaselineResult[], bytes: number): string[] {
  const out = [`Baselines on the same ${int(bytes)} bytes (compressed size in bits per input byte):`, '', '| baseline | bits per byte | compressed bytes | run as |', '|---|---:|---:|---|'];
  for (const r of rows) {
    if (r.skipped !== undefined) out.push(`| ${r.name} | ${r.skipped} | | \`${r.command}\` |`);
    else out.push(`| ${r.name} | ${n(r.bitsPerByte!, 4)} | ${int(Math.round(r.compressedBytes!))} | \`${r.command}\` |`);
  }
  return out;
}
