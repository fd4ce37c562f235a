/**
 * The sorting grid of docs/results.md (DESIGN §8, issue 14 item 4): for each sequence length T,
 * at a fixed short-term window L = 128, train the same small model three ways (∞-former with
 * sticky memories, with uniform contraction, and with its long-term memory off: a
 * Transformer-XL-style window of the previous segment plus the current one) with the same seed,
 * data and number of training lines, and report accuracy on the 20 target positions of
 * held-out lines next to the counting baselines. Writes JSON (after every run, so a partial grid
 * survives) and a markdown table.
 *
 *   npx tsx scripts/results-sorting.ts [--T 512,1024,2048] [--lines 200,140,100] [--seed 1]
 *     [--variants sticky,uniform,window] [--eval-lines 128] [--out docs/results]
 *   npx tsx scripts/results-sorting.ts --render [--out docs/results]   # table from the JSON only
 *   ... --append   # add these T to the grid in the JSON instead of starting a new one
 *   ... --baselines-only   # only the counting baselines of these T
 *   ... --config '{"width":64,"numHeads":4,"ffnWidth":128}'   # override the base model
 *   ... --resume   # like --append, but keep finished runs of the same T, variant, lines and config
 */
import { cpus, loadavg } from 'node:os';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  InfiniFormer,
  Trainer,
  evaluate,
  frequencyBlindAccuracy,
  initBackend,
  rankCounts,
  setLogLevel,
  sortingSequence,
  sortingTarget,
  sortingTaskSource,
  windowCountAccuracy,
  SORT_SYMBOLS,
  SORT_VOCAB,
} from '../src/index.js';
import type { ModelConfig } from '../src/index.js';

const L = 128;
const EVAL_SEED = 999;
/** The small model of scripts/sorting-experiment.ts (30k parameters), so the grid fits in an hour on two shared cores. */
const BASE: Partial<ModelConfig> = { vocabSize: SORT_VOCAB, width: 32, numHeads: 2, numLayers: 2, ffnWidth: 64, segmentLength: L, numBasis: 32, basisWidths: [0.05, 0.1], numSamples: 32, tau: 0.75, ridgeLambda: 1, dropout: 0, sigmaEps: 1e-6 };
const VARIANTS: Record<string, Partial<ModelConfig>> = {
  sticky: { longTermMemory: true, sticky: true },
  uniform: { longTermMemory: true, sticky: false },
  window: { longTermMemory: false },
};
const LABELS: Record<string, string> = {
  sticky: '∞-former, sticky memories',
  uniform: '∞-former, uniform contraction',
  window: 'LTM off (window: previous + current segment)',
};

interface Run {
  command: string;
  T: number;
  variant: string;
  seed: number;
  lines: number;
  streams: number;
  steps: number;
  parameters: number;
  trainSeconds: number;
  evalSeconds: number;
  accuracy: number;
  crossEntropy: number;
  /** ∞-former only: the same weights with the long-term attention's output zeroed. */
  accuracyLtmZeroed?: number;
  loadBefore: number[];
  loadAfter: number[];
  finishedAt: string;
}
interface Baselines {
  T: number;
  evalLines: number;
  frequencyBlind: number;
  countLastL: number;
  countLast2L: number;
  countAll: number;
}
interface Results {
  command: string;
  backend: string;
  cpus: number;
  config: Partial<ModelConfig>;
  lr: number;
  baselines: Baselines[];
  runs: Run[];
}

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const commandLine = (): string => `npx tsx scripts/results-sorting.ts ${process.argv.slice(2).join(' ')}`.trim();
const numbers = (s: string): number[] => s.split(',').map(Number);
const f3 = (v: number | undefined): string => (v === undefined ? '–' : v.toFixed(3));
const load = (): number[] => loadavg().map((v) => Number(v.toFixed(2)));

function baselinesFor(T: number, evalLines: number, seed: number): Baselines {
  const heldOut = Array.from({ length: evalLines }, (_, i) => sortingSequence(T, EVAL_SEED * 1_000_003 + i));
  // Rank counts from 20,000 lines drawn as the training lines are.
  const counts = rankCounts(20_000, T, (i) => seed * 1_000_003 + i);
  const targets = heldOut.map((s) => sortingTarget(s));
  return {
    T,
    evalLines,
    frequencyBlind: frequencyBlindAccuracy(counts, targets, true),
    countLastL: windowCountAccuracy(heldOut, L),
    countLast2L: windowCountAccuracy(heldOut, 2 * L),
    countAll: windowCountAccuracy(heldOut, T),
  };
}

function trainAndEvaluate(base: Partial<ModelConfig>, T: number, variant: string, lines: number, seed: number, evalLines: number, lr: number): Run {
  const segmentsPerLine = Math.ceil((T + 1 + SORT_SYMBOLS) / L);
  const streams = 16;
  const steps = lines * segmentsPerLine;
  const loadBefore = load();
  const model = InfiniFormer.create({ ...base, ...VARIANTS[variant] }, { seed });
  const trainer = new Trainer(model, sortingTaskSource({ numStreams: streams, length: T, segmentLength: L, seed }), {
    learningRate: lr,
    warmupSteps: Math.min(20, Math.floor(lines / 5)) * segmentsPerLine,
    totalSteps: steps,
    maxGradNorm: 1,
  });
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) trainer.step();
  const trainSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const heldOut = (): ReturnType<typeof sortingTaskSource> => sortingTaskSource({ numStreams: evalLines, length: T, segmentLength: L, seed: EVAL_SEED });
  const r = evaluate(model, heldOut(), segmentsPerLine);
  let accuracyLtmZeroed: number | undefined;
  if (model.config.longTermMemory) {
    model.params.layers.forEach((lp) => lp.ltmWO!.assign(tf.zerosLike(lp.ltmWO!)));
    accuracyLtmZeroed = evaluate(model, heldOut(), segmentsPerLine).accuracy;
  }
  const evalSeconds = (performance.now() - t1) / 1000;
  const run: Run = {
    command: commandLine(), T, variant, seed, lines, streams, steps, parameters: model.numParameters,
    trainSeconds: Math.round(trainSeconds), evalSeconds: Math.round(evalSeconds),
    accuracy: r.accuracy, crossEntropy: r.crossEntropy, accuracyLtmZeroed,
    loadBefore, loadAfter: load(), finishedAt: new Date().toISOString(),
  };
  trainer.dispose();
  model.dispose();
  return run;
}

/** The markdown table: one row per T, accuracy of each variant next to the baselines. */
export function renderTable(res: Results): string {
  const Ts = [...new Set(res.baselines.map((b) => b.T))].sort((a, b) => a - b);
  const variants = Object.keys(VARIANTS);
  const head = ['T', 'lines', ...variants.map((v) => LABELS[v]!), 'frequency-blind', `count last ${L}`, `count last ${2 * L}`, 'count all T (oracle)'];
  const rows = Ts.map((T) => {
    const b = res.baselines.find((x) => x.T === T)!;
    const runs = variants.map((v) => res.runs.find((r) => r.T === T && r.variant === v));
    const lines = runs.find((r) => r !== undefined)?.lines;
    return [String(T), lines === undefined ? '–' : String(lines), ...runs.map((r) => f3(r?.accuracy)), f3(b.frequencyBlind), f3(b.countLastL), f3(b.countLast2L), f3(b.countAll)];
  });
  const timing = ['T', 'variant', 'steps (segments)', 'train s', 'eval s', 'acc', 'acc, LTM output zeroed', 'CE (nats)', 'load avg before', 'load avg after', 'finished (UTC)'];
  const timingRows = res.runs.map((r) => [String(r.T), r.variant, String(r.steps), String(r.trainSeconds), String(r.evalSeconds), f3(r.accuracy), f3(r.accuracyLtmZeroed), f3(r.crossEntropy), r.loadBefore.join(' '), r.loadAfter.join(' '), r.finishedAt.slice(0, 19)]);
  const table = (h: string[], rs: string[][]): string => [`| ${h.join(' | ')} |`, `|${h.map(() => '---').join('|')}|`, ...rs.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  return `${table(head, rows)}\n\nRuns (backend ${res.backend}, ${res.cpus} CPUs, lr ${res.lr}, seed ${res.runs[0]?.seed ?? '–'}; commands: ${res.command.split('; ').map((c) => `\`${c}\``).join(', ')}):\n\n${table(timing, timingRows)}\n`;
}

async function main(): Promise<void> {
  const out = option('out', 'docs/results');
  const jsonPath = join(out, 'sorting.json');
  const mdPath = join(out, 'sorting.md');
  mkdirSync(out, { recursive: true });
  if (process.argv.includes('--render')) {
    writeFileSync(mdPath, renderTable(JSON.parse(readFileSync(jsonPath, 'utf8')) as Results));
    return;
  }
  setLogLevel('warn');
  const backend = await initBackend();
  const Ts = numbers(option('T', '512,1024,2048'));
  const lines = numbers(option('lines', '200,140,100'));
  const seed = Number(option('seed', '1'));
  const evalLines = Number(option('eval-lines', '128'));
  const variants = option('variants', 'sticky,uniform,window').split(',');
  const lr = Number(option('lr', '3e-3'));
  const base: Partial<ModelConfig> = { ...BASE, ...(JSON.parse(option('config', '{}')) as Partial<ModelConfig>) };
  const res: Results = { command: commandLine(), backend, cpus: cpus().length, config: base, lr, baselines: [], runs: [] };
  const resume = process.argv.includes('--resume');
  const sameConfig = (old: Results): boolean => JSON.stringify(old.config) === JSON.stringify(base) && old.lr === lr;
  // --append: add to the grid already in the JSON (e.g. a longer T run later); runs of the same T and variant are replaced.
  if (resume) {
    // --resume: continue an interrupted grid of the same config (finished runs are kept).
    const old = JSON.parse(readFileSync(jsonPath, 'utf8')) as Results;
    if (!sameConfig(old)) throw new Error(`--resume: ${jsonPath} holds another config or lr; start a new grid without --resume`);
    res.baselines = old.baselines;
    res.runs = old.runs;
    res.command = old.command.includes(res.command) ? old.command : `${old.command}; ${res.command}`;
  } else if (process.argv.includes('--append')) {
    const old = JSON.parse(readFileSync(jsonPath, 'utf8')) as Results;
    if (!sameConfig(old)) throw new Error(`--append: ${jsonPath} holds another config or lr; start a new grid`);
    res.baselines = old.baselines.filter((b) => !Ts.includes(b.T));
    res.runs = old.runs.filter((r) => process.argv.includes('--baselines-only') || !(Ts.includes(r.T) && variants.includes(r.variant)));
    res.command = `${old.command}; ${res.command}`;
  }
  const save = (): void => {
    writeFileSync(jsonPath, `${JSON.stringify(res, null, 2)}\n`);
    writeFileSync(mdPath, renderTable(res));
  };
  Ts.forEach((T, i) => {
    if (!res.baselines.some((b) => b.T === T && b.evalLines === evalLines)) {
      res.baselines = res.baselines.filter((b) => b.T !== T);
      res.baselines.push(baselinesFor(T, evalLines, seed));
      res.baselines.sort((x, y) => x.T - y.T);
      save();
    }
    // --baselines-only: the counting baselines of these T (seconds each), no training.
    for (const v of process.argv.includes('--baselines-only') ? [] : variants) {
      if (VARIANTS[v] === undefined) throw new Error(`unknown variant ${v}`);
      const n = lines[i] ?? lines[lines.length - 1]!;
      if (resume && res.runs.some((r) => r.T === T && r.variant === v && r.lines === n && r.seed === seed)) continue;
      const run = trainAndEvaluate(base, T, v, n, seed, evalLines, lr);
      res.runs = res.runs.filter((r) => !(r.T === T && r.variant === v));
      res.runs.push(run);
      res.runs.sort((x, y) => x.T - y.T || Object.keys(VARIANTS).indexOf(x.variant) - Object.keys(VARIANTS).indexOf(y.variant));
      save();
      console.log(`T=${T} ${v}: acc ${run.accuracy.toFixed(3)} (LTM zeroed ${f3(run.accuracyLtmZeroed)}), train ${run.trainSeconds} s, load ${run.loadAfter.join(' ')}`);
    }
  });
}

await main();
