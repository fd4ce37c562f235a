/**
 * The compiled inference (src/model/compiledForward.ts) against eager execution, side by side
 * in one process on the native backend, with the default model (batch 1):
 *
 * - parity: the logits of 5 segments and L + 8 tokens across a boundary, eager vs compiled;
 * - forward only: the median time of one chunk forward on a prepared state with a memory
 *   (segment: T = L = 128; token: T = 1 at position 5), eager and compiled in alternating blocks;
 * - whole steps (`model.run`: segment start, forward, commit, logits read back): per segment
 *   and per token, in alternating blocks (eager on one stream, compiled on another), medians of
 *   the block means.
 *
 * - the online learning step (`OnlineLearner.scoreThenLearn` on 4 streams x L tokens: forward,
 *   backward, clip, Adam, scores read back, states committed), eager vs compiled
 *   (src/model/compiledStep.ts), two learners on two copies of the model in alternating
 *   blocks, and how far their weights drift apart;
 * - the offline training step (`Trainer.step` on 4 streams x L tokens, dropout on), eager vs
 *   compiled, likewise (two trainers on two copies of the model, the same data and seed).
 *
 * BENCH_GRAPH_ONLY=xla instead compares the compiled graphs without and with XLA (`model.xla`):
 * segment mode on 1 and BENCH_GRAPH_STREAMS (default 8) streams, and the Trainer step.
 *
 * `npm run bench -- graph`, or `npx tsx bench/graph.ts`. BENCH_GRAPH_RUNS (default 40) sets
 * the forward-only runs and BENCH_GRAPH_BLOCKS (default 6) the blocks; BENCH_GRAPH_ONLY=learn
 * runs the learning step only (=train the training step only), BENCH_GRAPH_STREAMS (default 4) its streams, BENCH_GRAPH_STICKY=1 with
 * sticky sampling (as the default model file).
 */
import * as tf from '@tensorflow/tfjs';
import { loadavg } from 'node:os';
import { InfiniFormer, initBackend, OnlineLearner, setLogLevel, tokenStreamSource, Trainer } from '../src/index.js';
import type { StreamState } from '../src/index.js';

const RUNS = Number(process.env['BENCH_GRAPH_RUNS'] ?? 40);
const BLOCKS = Number(process.env['BENCH_GRAPH_BLOCKS'] ?? 6);

function tokensOf(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 37 + seed * 11 + ((i * i) % 13)) % 256);
}

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

/** One chunk through `model.run` with the compiled path on or off; the logits. */
function step(model: InfiniFormer, compiled: boolean, s: StreamState, tokens: number[]): Float32Array {
  model.compiled = compiled;
  const out = model.run([s], [tokens]);
  const logits = out.dataSync() as Float32Array;
  out.dispose();
  return logits;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Median ms of two functions over RUNS runs each, in alternating blocks of 5 (the first block
 * of each warms up): run for run alternation would measure each path just after the other,
 * whose native thread pools are still spinning.
 */
function timePair(a: () => void, b: () => void): [number, number] {
  const ta: number[] = [];
  const tb: number[] = [];
  for (let block = 0; block <= Math.ceil(RUNS / 5); block++) {
    for (const [f, times] of [[a, ta], [b, tb]] as const) {
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        f();
        if (block > 0) times.push(performance.now() - t0);
      }
    }
  }
  return [median(ta), median(tb)];
}

function parity(model: InfiniFormer): void {
  const L = model.config.segmentLength;
  const eager = model.createState(7);
  const comp = model.createState(7);
  let seg = 0;
  for (let k = 0; k < 5; k++) seg = Math.max(seg, maxDiff(step(model, false, eager, tokensOf(L, k)), step(model, true, comp, tokensOf(L, k))));
  let tok = 0;
  for (let i = 0; i < L + 8; i++) tok = Math.max(tok, maxDiff(step(model, false, eager, [tokensOf(1, i)[0]!]), step(model, true, comp, [tokensOf(1, i)[0]!])));
  console.log(`parity: max |logit diff| ${seg.toExponential(2)} over 5 segments, ${tok.toExponential(2)} over ${L + 8} tokens`);
  eager.dispose();
  comp.dispose();
}

function forwardOnly(model: InfiniFormer): void {
  const L = model.config.segmentLength;
  const s = model.createState(3);
  for (let k = 0; k < 3; k++) step(model, false, s, tokensOf(L, k));
  const fwd = (compiled: boolean, toks: number[][]) => (): void => {
    model.compiled = compiled;
    // A block body: tidy scans a returned value for tensors, slowly for a typed array.
    tf.tidy(() => {
      model.forwardChunk([s], toks).logits.dataSync();
    });
  };
  const seg = [tokensOf(L, 9)];
  const [es, cs] = timePair(fwd(false, seg), fwd(true, seg));
  console.log(`forward only, segment (T ${L}): eager ${es.toFixed(2)} ms, compiled ${cs.toFixed(2)} ms, ${(es / cs).toFixed(2)}x`);
  step(model, false, s, tokensOf(5, 1));
  const [et, ct] = timePair(fwd(false, [[42]]), fwd(true, [[42]]));
  console.log(`forward only, token (pos 5): eager ${et.toFixed(3)} ms, compiled ${ct.toFixed(3)} ms, ${(et / ct).toFixed(2)}x`);
  s.dispose();
}

/** Per-chunk ms of whole steps, eager and compiled, in alternating blocks of `perBlock` chunks. */
function wholeSteps(model: InfiniFormer, t: number, perBlock: number): [number, number] {
  const L = model.config.segmentLength;
  const states = { eager: model.createState(5), compiled: model.createState(5) };
  const means: Record<'eager' | 'compiled', number[]> = { eager: [], compiled: [] };
  let k = 0;
  for (let block = 0; block <= BLOCKS; block++) {
    for (const mode of ['eager', 'compiled'] as const) {
      const t0 = performance.now();
      for (let i = 0; i < perBlock; i++) step(model, mode === 'compiled', states[mode], tokensOf(t, k + i));
      // Block 0 warms up (first segments, memory fit, compiles).
      if (block > 0) means[mode].push((performance.now() - t0) / perBlock);
    }
    k += perBlock;
  }
  void L;
  states.eager.dispose();
  states.compiled.dispose();
  return [median(means.eager), median(means.compiled)];
}

/** Ms per online learning step of 4 streams, eager and compiled, in alternating blocks of 3 steps after 5 warm-up steps. */
function learningSteps(): void {
  const STREAMS = Number(process.env['BENCH_GRAPH_STREAMS'] ?? 4);
  const side = (compiled: boolean) => {
    const model = InfiniFormer.create({ sticky: process.env['BENCH_GRAPH_STICKY'] === '1' }, { seed: 1 });
    const learner = new OnlineLearner(model);
    learner.compiled = compiled;
    return { model, learner, states: Array.from({ length: STREAMS }, (_, i) => model.createState(i + 1)) };
  };
  const sides = { eager: side(false), compiled: side(true) };
  const L = sides.eager.model.config.segmentLength;
  let k = 0;
  const learnOne = (mode: 'eager' | 'compiled', seg: number): void => {
    const s = sides[mode];
    const r = s.learner.scoreThenLearn(s.states, s.states.map((_, i) => tokensOf(L, seg * STREAMS + i)));
    if (!r.learned) throw new Error(`${mode}: step ${seg} not learned (${r.skipped})`);
  };
  for (; k < 5; k++) for (const mode of ['eager', 'compiled'] as const) learnOne(mode, k);
  const means: Record<'eager' | 'compiled', number[]> = { eager: [], compiled: [] };
  for (let block = 0; block < BLOCKS; block++) {
    for (const mode of ['eager', 'compiled'] as const) {
      const t0 = performance.now();
      for (let i = 0; i < 3; i++) learnOne(mode, k + i);
      means[mode].push((performance.now() - t0) / 3);
    }
    k += 3;
  }
  const flat = (m: InfiniFormer): Float32Array => Float32Array.from([...m.params.byName.values()].flatMap((v) => Array.from(v.dataSync())));
  const drift = maxDiff(flat(sides.eager.model), flat(sides.compiled.model));
  const [e, c] = [median(means.eager), median(means.compiled)];
  console.log(`online learning step (${STREAMS} x ${L} tokens, scoreThenLearn): eager ${e.toFixed(1)} ms, compiled ${c.toFixed(1)} ms, ${(e / c).toFixed(2)}x; max |weight diff| after ${k} steps ${drift.toExponential(2)}; ${JSON.stringify(sides.compiled.learner.compiledStats)}`);
  for (const s of Object.values(sides)) {
    s.learner.dispose();
    for (const st of s.states) st.dispose();
    s.model.dispose();
  }
}

/**
 * Ms per offline Trainer step of 4 streams, eager and compiled (`xla`: compiled without and
 * with XLA), in alternating blocks of 3 steps after 3 warm-up steps.
 */
function trainerSteps(xla = false): void {
  const STREAMS = xla ? 4 : Number(process.env['BENCH_GRAPH_STREAMS'] ?? 4);
  const side = (compiled: boolean) => {
    const model = InfiniFormer.create({ sticky: process.env['BENCH_GRAPH_STICKY'] === '1' }, { seed: 1 });
    model.xla = xla && compiled;
    const L = model.config.segmentLength;
    const source = tokenStreamSource(tokensOf(STREAMS * ((4 + 3 * BLOCKS) * L + 1), 3), { numStreams: STREAMS, segmentLength: L });
    const trainer = new Trainer(model, source, { warmupSteps: 1 });
    trainer.compiled = xla || compiled;
    return { model, trainer };
  };
  const sides = { eager: side(false), compiled: side(true) };
  // Warm-up: fresh streams (eager), then the two compiled keys (memory fitted, then contracted).
  for (let k = 0; k < 3; k++) for (const s of Object.values(sides)) s.trainer.step();
  const means: Record<'eager' | 'compiled', number[]> = { eager: [], compiled: [] };
  for (let block = 0; block < BLOCKS; block++) {
    for (const mode of ['eager', 'compiled'] as const) {
      const t0 = performance.now();
      for (let i = 0; i < 3; i++) sides[mode].trainer.step();
      means[mode].push((performance.now() - t0) / 3);
    }
  }
  const flat = (m: InfiniFormer): Float32Array => Float32Array.from([...m.params.byName.values()].flatMap((v) => Array.from(v.dataSync())));
  const drift = maxDiff(flat(sides.eager.model), flat(sides.compiled.model));
  const [e, c] = [median(means.eager), median(means.compiled)];
  const L = sides.eager.model.config.segmentLength;
  const [a, b] = xla ? ['compiled', 'with XLA'] : ['eager', 'compiled'];
  console.log(`training step (${STREAMS} x ${L} tokens, Trainer.step, dropout on): ${a} ${e.toFixed(1)} ms, ${b} ${c.toFixed(1)} ms, ${(e / c).toFixed(2)}x; max |weight diff| after ${3 + 3 * BLOCKS} steps ${drift.toExponential(2)}; ${JSON.stringify(sides.compiled.trainer.compiledStats)}`);
  for (const s of Object.values(sides)) {
    s.trainer.dispose();
    s.model.dispose();
  }
}

/** Ms per segment of `streams` streams (`model.run`, logits read), compiled without and with XLA, in alternating blocks of 4 after 6 warm-up segments. */
function xlaSegments(streams: number): void {
  const side = (xla: boolean) => {
    const model = InfiniFormer.create({}, { seed: 1 });
    model.xla = xla;
    return { model, states: Array.from({ length: streams }, (_, i) => model.createState(i)) };
  };
  const sides = { plain: side(false), xla: side(true) };
  const L = sides.plain.model.config.segmentLength;
  const segment = (mode: 'plain' | 'xla', k: number): Float32Array => {
    const s = sides[mode];
    const out = s.model.run(s.states, s.states.map((_, i) => tokensOf(L, k * streams + i)));
    const logits = out.dataSync() as Float32Array;
    out.dispose();
    return logits;
  };
  let diff = 0;
  let k = 0;
  for (; k < 6; k++) diff = Math.max(diff, maxDiff(segment('plain', k), segment('xla', k)));
  const means: Record<'plain' | 'xla', number[]> = { plain: [], xla: [] };
  for (let block = 0; block < BLOCKS; block++, k += 4) {
    for (const mode of ['plain', 'xla'] as const) {
      const t0 = performance.now();
      for (let i = 0; i < 4; i++) segment(mode, k + i);
      means[mode].push((performance.now() - t0) / 4);
    }
  }
  const [p, x] = [median(means.plain), median(means.xla)];
  console.log(`segment, ${streams} stream(s): compiled ${p.toFixed(2)} ms (${((streams * L) / p * 1000).toFixed(0)} tokens/s), with XLA ${x.toFixed(2)} ms (${((streams * L) / x * 1000).toFixed(0)} tokens/s), ${(p / x).toFixed(2)}x; max |logit diff| over the warm-up ${diff.toExponential(2)}`);
  for (const s of Object.values(sides)) {
    s.states.forEach((st) => st.dispose());
    s.model.dispose();
  }
}

export async function run(): Promise<void> {
  setLogLevel('warn');
  await initBackend({ backend: 'tensorflow' });
  const only = process.env['BENCH_GRAPH_ONLY'];
  if (only === 'xla') {
    console.log(`load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    xlaSegments(1);
    xlaSegments(Number(process.env['BENCH_GRAPH_STREAMS'] ?? 8));
    trainerSteps(true);
    console.log(`load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    return;
  }
  if (only === 'learn' || only === 'train') {
    console.log(`load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    if (only === 'learn') learningSteps();
    else trainerSteps();
    console.log(`load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    return;
  }
  const model = InfiniFormer.create();
  const L = model.config.segmentLength;
  console.log(`load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  parity(model);
  forwardOnly(model);
  const [es, cs] = wholeSteps(model, L, 8);
  console.log(`whole segment steps (run: segment start, forward, commit, read): eager ${es.toFixed(2)} ms, compiled ${cs.toFixed(2)} ms, ${(es / cs).toFixed(2)}x`);
  const [et, ct] = wholeSteps(model, 1, L);
  console.log(`whole token steps (run, one token): eager ${et.toFixed(3)} ms, compiled ${ct.toFixed(3)} ms, ${(et / ct).toFixed(2)}x`);
  learningSteps();
  trainerSteps();
  console.log(`compiled: ${JSON.stringify(model.compiledStats)}; tensors ${tf.memory().numTensors}; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  model.dispose();
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
