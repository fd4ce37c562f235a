/**
 * The ∞-former at its default (streaming) configuration, on each backend present:
 * segment-mode throughput (1 and 8 streams), token-mode latency p50/p99 (one stream, token by
 * token across segment boundaries), and resident memory while a stream runs through many
 * tokens (segment mode), with tf.memory() alongside to show nothing grows.
 *
 * `npm run bench -- model`, or `npx tsx bench/model.ts`. Environment: BENCH_MODEL_TOKENS
 * (tokens for the RSS run, default 200,000; the figure is 10^7, which takes about an
 * hour on wasm), BENCH_MODEL_LATENCY_TOKENS (default 1,000), BENCH_MODEL_BACKENDS (default
 * "wasm,tensorflow"; absent backends are reported and skipped).
 */
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_CONFIG, InfiniFormer, createRng, initBackend, setLogLevel } from '../src/index.js';

const RSS_TOKENS = Number(process.env['BENCH_MODEL_TOKENS'] ?? 200_000);
const LATENCY_TOKENS = Number(process.env['BENCH_MODEL_LATENCY_TOKENS'] ?? 1_000);
const BACKENDS = (process.env['BENCH_MODEL_BACKENDS'] ?? 'wasm,tensorflow').split(',') as ('wasm' | 'tensorflow' | 'cpu')[];

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

function randomTokens(count: number, seed: number): Int32Array {
  const rng = createRng(seed);
  return Int32Array.from({ length: count }, () => Math.floor(rng.next() * 256));
}

interface Figures {
  backend: string;
  segment1: number;
  segment8: number;
  p50: number;
  p99: number;
  rss: { tokens: number; rssMiB: number; tensors: number; tfMiB: number }[];
}

function measure(backend: string): Figures {
  const model = InfiniFormer.create({ dropout: 0 }, { seed: 1 });
  const L = model.config.segmentLength;
  const throughput = (streams: number, segments: number): number => {
    const states = Array.from({ length: streams }, (_, i) => model.createState(i));
    const toks = randomTokens(L * segments, 2);
    const rows = (s: number): Int32Array[] => states.map(() => toks.subarray(s * L, (s + 1) * L));
    model.run(states, rows(0)).dispose(); // warm-up (and first fit)
    model.run(states, rows(1)).dispose();
    const t0 = performance.now();
    for (let s = 2; s < segments; s++) {
      const logits = model.run(states, rows(s));
      logits.dataSync();
      logits.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    states.forEach((s) => s.dispose());
    return (streams * L * (segments - 2)) / seconds;
  };
  const segment1 = throughput(1, 12);
  const segment8 = throughput(8, 6);

  const state = model.createState(3);
  const toks = randomTokens(LATENCY_TOKENS + 2 * L, 4);
  for (let i = 0; i < 2 * L; i++) model.step([state], [toks[i]!]).dispose();
  const latencies: number[] = [];
  for (let i = 2 * L; i < toks.length; i++) {
    const t0 = performance.now();
    const logits = model.step([state], [toks[i]!]);
    logits.dataSync();
    logits.dispose();
    latencies.push(performance.now() - t0);
  }
  state.dispose();

  const rss: Figures['rss'] = [];
  const stream = model.createState(5);
  const chunk = randomTokens(L * 64, 6);
  const segments = Math.ceil(RSS_TOKENS / L);
  const every = Math.max(1, Math.floor(segments / 5));
  for (let s = 0; s < segments; s++) {
    const logits = model.run([stream], [chunk.subarray((s % 64) * L, ((s % 64) + 1) * L)]);
    logits.dataSync();
    logits.dispose();
    if ((s + 1) % every === 0 || s === segments - 1) {
      const m = tf.memory();
      rss.push({ tokens: (s + 1) * L, rssMiB: process.memoryUsage().rss / 2 ** 20, tensors: m.numTensors, tfMiB: m.numBytes / 2 ** 20 });
    }
  }
  stream.dispose();
  model.dispose();
  return { backend, segment1, segment8, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), rss };
}

export async function run(): Promise<void> {
  setLogLevel('warn');
  const c = DEFAULT_CONFIG;
  console.log(`default config: e=${c.width}, ${c.numLayers} layers, ${c.numHeads} heads, L=${c.segmentLength}, N=${c.numBasis}, M=${c.numSamples}, FFN ${c.ffnWidth}`);
  const results: Figures[] = [];
  for (const backend of BACKENDS) {
    try {
      await initBackend({ backend });
    } catch (error) {
      console.log(`${backend}: not available (${(error as Error).message})`);
      continue;
    }
    const f = measure(backend);
    results.push(f);
    console.log(`${backend}: segment mode ${f.segment1.toFixed(0)} tokens/s (1 stream), ${f.segment8.toFixed(0)} tokens/s (8 streams); token mode p50 ${f.p50.toFixed(2)} ms, p99 ${f.p99.toFixed(2)} ms over ${LATENCY_TOKENS} tokens`);
    for (const r of f.rss) console.log(`  ${backend} after ${r.tokens} tokens: RSS ${r.rssMiB.toFixed(0)} MiB, ${r.tensors} tensors, ${r.tfMiB.toFixed(2)} MiB in tfjs`);
  }
  if (results.length === 2) {
    const [a, b] = results as [Figures, Figures];
    console.log(`ratios ${a.backend}/${b.backend} time: segment 1 stream ${(b.segment1 / a.segment1).toFixed(2)}, 8 streams ${(b.segment8 / a.segment8).toFixed(2)}, token p50 ${(a.p50 / b.p50).toFixed(2)}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
