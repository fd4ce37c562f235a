/**
 * Go/no-go of the compiled forward (src/model/compiledForward.ts): the default model's chunk
 * forward run eagerly (one native dispatch per op) and as one TensorFlow graph, side by side in
 * one process: parity of the logits over segments and tokens across boundaries, then the median
 * time of a segment forward (batch 1, T = L = 128, memory present) and of a token forward
 * (T = 1), each the median of BENCH_GRAPH_RUNS runs (default 40), eager and compiled
 * interleaved so load changes hit both.
 *
 * `npm run bench -- graph`, or `npx tsx bench/graph.ts`. Native backend only.
 */
import * as tf from '@tensorflow/tfjs';
import { CompiledForward } from '../src/model/compiledForward.js';
import { InfiniFormer, initBackend, keepChunk } from '../src/index.js';
import type { ChunkOutput, StreamState } from '../src/index.js';

const RUNS = Number(process.env['BENCH_GRAPH_RUNS'] ?? 40);

function tokensOf(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 37 + seed * 11 + ((i * i) % 13)) % 256);
}

/** One chunk, advancing the state; returns the logits. */
function step(model: InfiniFormer, s: StreamState, tokens: number[], fwd: ((st: StreamState[], tk: number[][]) => ChunkOutput) | undefined): Float32Array {
  let out: ChunkOutput | undefined;
  tf.tidy(() => {
    out = fwd === undefined ? model.forwardChunk([s], [tokens]) : fwd([s], [tokens]);
    keepChunk(out);
  });
  const o = out!;
  const logits = o.logits.dataSync() as Float32Array;
  model.commit([s], o);
  tf.dispose([o.hidden, o.logits, o.kl]);
  return logits;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Median ms of `f` over RUNS runs, for two functions interleaved. */
function timePair(a: () => void, b: () => void): [number, number] {
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < 3; i++) {
    a();
    b();
  }
  for (let i = 0; i < RUNS; i++) {
    let t0 = performance.now();
    a();
    ta.push(performance.now() - t0);
    t0 = performance.now();
    b();
    tb.push(performance.now() - t0);
  }
  const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  return [med(ta), med(tb)];
}

export async function run(): Promise<void> {
  await initBackend({ backend: 'tensorflow' });
  const model = InfiniFormer.create();
  const L = model.config.segmentLength;
  const cf = CompiledForward.create(model);
  if (cf === undefined) throw new Error('the compiled forward needs the native tensorflow backend');
  const fwd = (st: StreamState[], tk: number[][]): ChunkOutput => cf.forward(st, tk);

  // Parity: segments (the first has no previous segment, the second fits a memory, later ones contract).
  const eagerS = model.createState(7);
  const compS = model.createState(7);
  let worst = 0;
  for (let seg = 0; seg < 5; seg++) {
    const toks = tokensOf(L, seg);
    worst = Math.max(worst, maxDiff(step(model, eagerS, toks, undefined), step(model, compS, toks, fwd)));
  }
  console.log(`segment parity over 5 segments: max |logit diff| ${worst.toExponential(2)}`);
  // Token mode across a boundary.
  let worstTok = 0;
  for (let i = 0; i < L + 8; i++) {
    const tok = [tokensOf(1, i)[0]!];
    worstTok = Math.max(worstTok, maxDiff(step(model, eagerS, tok, undefined), step(model, compS, tok, fwd)));
  }
  console.log(`token parity over ${L + 8} tokens: max |logit diff| ${worstTok.toExponential(2)}; stats ${JSON.stringify(cf.stats)}`);

  // Timing: forwards on a state with a memory, not committed (the same chunk each run).
  const seg = model.createState(3);
  for (let k = 0; k < 3; k++) step(model, seg, tokensOf(L, k), undefined);
  const segToks = [tokensOf(L, 9)];
  const eagerSeg = (): void => void tf.tidy(() => model.forwardChunk([seg], segToks).logits.dataSync());
  const compSeg = (): void => void tf.tidy(() => cf.forward([seg], segToks).logits.dataSync());
  const [es, cs] = timePair(eagerSeg, compSeg);
  console.log(`segment forward (b 1, T ${L}): eager ${es.toFixed(2)} ms, compiled ${cs.toFixed(2)} ms, ${(es / cs).toFixed(2)}x`);
  step(model, seg, tokensOf(5, 1), undefined);
  const tokToks = [[42]];
  const eagerTok = (): void => void tf.tidy(() => model.forwardChunk([seg], tokToks).logits.dataSync());
  const compTok = (): void => void tf.tidy(() => cf.forward([seg], tokToks).logits.dataSync());
  const [et, ct] = timePair(eagerTok, compTok);
  console.log(`token forward (b 1, T 1, pos 5): eager ${et.toFixed(3)} ms, compiled ${ct.toFixed(3)} ms, ${(et / ct).toFixed(2)}x`);
  console.log(`stats ${JSON.stringify(cf.stats)}; tensors ${tf.memory().numTensors}`);
  cf.dispose();
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
