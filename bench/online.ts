/**
 * Online learning (prequential: score, then train) with the default model on the native
 * backend when present:
 *
 * - cost: one 1 x 128 segment by `model.run` (inference), by the learner scoring only, and by
 *   `scoreThenLearn` with a step (median of BENCH_ONLINE_REPS after warm-up);
 * - lr: prequential bits per byte over the first BENCH_ONLINE_BYTES (default 65,536) of
 *   fail2ban's service logs (data/fail2ban, lines joined by newlines; never in the default
 *   model's training corpus), frozen and at each learning rate of BENCH_ONLINE_LRS.
 *
 * `npm run bench -- online` or `npx tsx bench/online.ts [cost|lr]`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OnlineLearner, initBackend, loadModel, setLogLevel } from '../src/index.js';
import type { InfiniFormer, ScoredSegment } from '../src/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const REPS = Number(process.env['BENCH_ONLINE_REPS'] ?? 20);
const BYTES = Number(process.env['BENCH_ONLINE_BYTES'] ?? 65_536);
const LRS = (process.env['BENCH_ONLINE_LRS'] ?? '3e-5,1e-4,3e-4,1e-3').split(',').map(Number);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function fail2banBytes(limit: number): Uint8Array {
  const lines = readFileSync(join(ROOT, 'data', 'fail2ban', 'lines.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => (JSON.parse(l) as { text: string }).text);
  return new TextEncoder().encode(lines.join('\n') + '\n').subarray(0, limit);
}

async function cost(): Promise<void> {
  const model = await loadModel(join(ROOT, 'models', 'default'));
  const seg = Int32Array.from(fail2banBytes(128 * (REPS + 3) * 4));
  const L = model.config.segmentLength;
  let k = 0;
  const next = (): Int32Array => seg.subarray(L * k, L * ++k);
  const time = (f: () => void): number => {
    for (let i = 0; i < 3; i++) f();
    const ts: number[] = [];
    for (let i = 0; i < REPS; i++) {
      const t0 = performance.now();
      f();
      ts.push(performance.now() - t0);
    }
    return median(ts);
  };
  const state = model.createState();
  const run = time(() => model.run([state], [next()]).dispose());
  const runRead = time(() => {
    const logits = model.run([state], [next()]);
    logits.dataSync();
    logits.dispose();
  });
  state.dispose();
  let learn = false;
  const learner = new OnlineLearner(model, {}, { shouldLearn: () => learn });
  const s2 = model.createState();
  const scoreOnly = time(() => learner.scoreThenLearn([s2], [next()]));
  learn = true;
  const both = time(() => learner.scoreThenLearn([s2], [next()]));
  console.log(`1 x ${L} segment, median of ${REPS}: model.run ${run.toFixed(1)} ms (${runRead.toFixed(1)} ms reading the logits), learner score-only ${scoreOnly.toFixed(1)} ms, scoreThenLearn ${both.toFixed(1)} ms (${(both / scoreOnly).toFixed(2)}x score-only)`);
  s2.dispose();
  learner.dispose();
  model.dispose();
}

/** Prequential bits per byte of one pass over `data` (every byte but the first is scored once). */
function prequential(model: InfiniFormer, data: Uint8Array, learningRate: number | undefined): { bitsPerByte: number; lastQuarter: number; skipped: number; ms: number } {
  const L = model.config.segmentLength;
  const learner = new OnlineLearner(model, { learningRate: learningRate ?? 3e-4 }, { shouldLearn: () => learningRate !== undefined });
  const state = model.createState();
  let previous: ScoredSegment | undefined;
  const bits: number[] = [];
  const t0 = performance.now();
  for (let o = 0; o < data.length; o += L) {
    const r = learner.scoreThenLearn([state], [Int32Array.from(data.subarray(o, o + L))], [previous]);
    previous = r.scores[0]!;
    for (const b of previous.bits) if (!Number.isNaN(b)) bits.push(b);
  }
  const ms = performance.now() - t0;
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const skipped = learner.stats().skippedByGuard;
  state.dispose();
  learner.dispose();
  return { bitsPerByte: mean(bits), lastQuarter: mean(bits.slice(Math.floor((bits.length * 3) / 4))), skipped, ms };
}

async function lrSweep(): Promise<void> {
  const data = fail2banBytes(BYTES);
  console.log(`prequential bits/byte over the first ${data.length} bytes of data/fail2ban (default model, one stream)`);
  console.log('| learning rate | bits/byte | last quarter | segments skipped by guard | s |');
  console.log('|---|---:|---:|---:|---:|');
  for (const lr of [undefined, ...LRS]) {
    const model = await loadModel(join(ROOT, 'models', 'default'));
    const r = prequential(model, data, lr);
    console.log(`| ${lr === undefined ? 'frozen' : lr} | ${r.bitsPerByte.toFixed(3)} | ${r.lastQuarter.toFixed(3)} | ${r.skipped} | ${(r.ms / 1000).toFixed(0)} |`);
    model.dispose();
  }
}

export async function run(): Promise<void> {
  setLogLevel('warn');
  const backend = await initBackend();
  console.log(`backend ${backend}`);
  const parts = process.argv.slice(2).filter((a) => a === 'cost' || a === 'lr');
  if (parts.length === 0 || parts.includes('cost')) await cost();
  if (parts.length === 0 || parts.includes('lr')) await lrSweep();
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
