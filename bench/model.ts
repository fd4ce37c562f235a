/**
 * The ∞-former at its default (streaming) configuration, on each backend present:
 * segment-mode throughput (1 and 8 streams), token-mode latency p50/p99 (one stream, token by
 * token across segment boundaries), and resident memory while a stream runs through many
 * tokens (segment mode), with tf.memory() alongside to show nothing grows.
 *
 * `npm run bench -- model`, or `npx tsx bench/model.ts`. Environment: BENCH_MODEL_TOKENS
 * (tokens each stream of the RSS run goes through, default 200,000; the figure is 10^7:
 * docs/model-bench.md has the command and the figures), BENCH_MODEL_RSS_STREAMS (streams run
 * side by side in one batch in the RSS run, default 1; every stream sees BENCH_MODEL_TOKENS),
 * BENCH_MODEL_LATENCY_TOKENS (default 1,000), BENCH_MODEL_BACKENDS (default "wasm,tensorflow";
 * absent backends are reported and skipped), BENCH_MODEL_PARTS (default "speed,rss": "rss"
 * alone skips the throughput and latency runs), BENCH_MODEL_YIELD (default "segment": see below).
 *
 * The RSS run prints a line at the start (model and state built, no token yet), after the
 * first segment, at every power of ten of tokens per stream and at every tenth of the run, as
 * it goes, so a long run in the background can be watched and a cut-short run still reports.
 */
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_CONFIG, InfiniFormer, createRng, initBackend, setLogLevel } from '../src/index.js';

const RSS_TOKENS = Number(process.env['BENCH_MODEL_TOKENS'] ?? 200_000);
const LATENCY_TOKENS = Number(process.env['BENCH_MODEL_LATENCY_TOKENS'] ?? 1_000);
const BACKENDS = (process.env['BENCH_MODEL_BACKENDS'] ?? 'wasm,tensorflow').split(',') as ('wasm' | 'tensorflow' | 'cpu')[];
const RSS_STREAMS = Number(process.env['BENCH_MODEL_RSS_STREAMS'] ?? 1);
/**
 * When the RSS run lets the event loop turn: after every segment ("segment", the default, as a
 * stream pipeline fed by I/O does) or only at checkpoints ("checkpoints": one synchronous loop).
 * V8 finishes incremental marking in a task, so a loop that never yields only collects its old
 * generation when the heap hits a hard limit; the second mode shows what that costs.
 */
const YIELD = process.env['BENCH_MODEL_YIELD'] ?? 'segment';
if (YIELD !== 'segment' && YIELD !== 'checkpoints') throw new Error(`BENCH_MODEL_YIELD must be "segment" or "checkpoints", not "${YIELD}"`);
const PARTS = new Set((process.env['BENCH_MODEL_PARTS'] ?? 'speed,rss').split(','));

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
}

function speed(model: InfiniFormer): Pick<Figures, 'segment1' | 'segment8' | 'p50' | 'p99'> {
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
  return { segment1, segment8, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

/**
 * Segment mode over RSS_TOKENS tokens per stream, RSS_STREAMS streams in one batch (each its
 * own state, memory carried); prints each checkpoint as it is reached.
 */
async function rssRun(model: InfiniFormer, backend: string): Promise<void> {
  const L = model.config.segmentLength;
  const streams = Array.from({ length: RSS_STREAMS }, (_, i) => model.createState(5 + i));
  const chunk = randomTokens(L * 64, 6);
  const segments = Math.ceil(RSS_TOKENS / L);
  const marks = new Set<number>();
  for (let p = 1e4; p <= RSS_TOKENS * 10; p *= 10) marks.add(Math.ceil(p / L));
  for (let k = 1; k <= 10; k++) marks.add(Math.ceil((k * segments) / 10));
  marks.add(1);
  marks.add(segments);
  // Count major GCs passively (no forced collection): a growing RSS between them is garbage
  // V8 has not got round to, not a leak, if the heap drops back at each one.
  let majorGcs = 0;
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (((e as { detail?: unknown }).detail as { kind?: number } | undefined)?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) majorGcs++;
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  const t0 = performance.now();
  // Heap "of" total: V8's reserved heap (used + not yet collected + free pages). "external":
  // what V8 tracks outside its heap (ArrayBuffers such as dataSync copies, wasm memory).
  const record = (tokens: number): void => {
    const m = tf.memory();
    const u = process.memoryUsage();
    const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `  ${backend} rss: ${tokens.toExponential(2)} tokens/stream x ${RSS_STREAMS} streams after ${seconds.toFixed(0)} s: RSS ${mib(u.rss)} MiB, JS heap ${mib(u.heapUsed)} of ${mib(u.heapTotal)} MiB, external ${mib(u.external)} MiB, ${majorGcs} major GCs, ${m.numTensors} tensors, ${(m.numBytes / 2 ** 20).toFixed(3)} MiB in tfjs`,
    );
  };
  record(0);
  for (let s = 0; s < segments; s++) {
    const rows = streams.map((_, i) => chunk.subarray(((s + 7 * i) % 64) * L, (((s + 7 * i) % 64) + 1) * L));
    const logits = model.run(streams, rows);
    logits.dataSync();
    logits.dispose();
    // GC observer entries are delivered on the event loop, so checkpoints always yield first.
    if (YIELD === 'segment' || marks.has(s + 1)) await new Promise((resolve) => setImmediate(resolve));
    if (marks.has(s + 1)) record((s + 1) * L);
  }
  streams.forEach((s) => s.dispose());
  gcObserver.disconnect();
}

async function measure(backend: string): Promise<Figures> {
  const model = InfiniFormer.create({ dropout: 0 }, { seed: 1 });
  const f: Figures = { backend, segment1: NaN, segment8: NaN, p50: NaN, p99: NaN };
  if (PARTS.has('speed')) {
    Object.assign(f, speed(model));
    console.log(`${backend}: segment mode ${f.segment1.toFixed(0)} tokens/s (1 stream), ${f.segment8.toFixed(0)} tokens/s (8 streams); token mode p50 ${f.p50.toFixed(2)} ms, p99 ${f.p99.toFixed(2)} ms over ${LATENCY_TOKENS} tokens`);
  }
  if (PARTS.has('rss')) await rssRun(model, backend);
  model.dispose();
  return f;
}

export async function run(): Promise<void> {
  setLogLevel('warn');
  const c = DEFAULT_CONFIG;
  console.log(`default config: e=${c.width}, ${c.numLayers} layers, ${c.numHeads} heads, L=${c.segmentLength}, N=${c.numBasis}, M=${c.numSamples}, FFN ${c.ffnWidth}`);
  if (PARTS.has('rss')) console.log(`RSS run: ${RSS_TOKENS} tokens x ${RSS_STREAMS} streams, event loop yields every ${YIELD === 'segment' ? 'segment' : 'checkpoint only'}`);
  const results: Figures[] = [];
  for (const backend of BACKENDS) {
    try {
      await initBackend({ backend });
    } catch (error) {
      console.log(`${backend}: not available (${(error as Error).message})`);
      continue;
    }
    results.push(await measure(backend));
  }
  if (results.length === 2 && PARTS.has('speed')) {
    const [a, b] = results as [Figures, Figures];
    console.log(`ratios ${a.backend}/${b.backend} time: segment 1 stream ${(b.segment1 / a.segment1).toFixed(2)}, 8 streams ${(b.segment8 / a.segment8).toFixed(2)}, token p50 ${(a.p50 / b.p50).toFixed(2)}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
