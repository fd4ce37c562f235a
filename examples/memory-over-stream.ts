/**
 * The ∞-former's long-term memory over an endless stream, stage by stage, with no model:
 * log lines -> UTF-8 bytes -> fixed random byte embeddings [L, e] per segment -> smooth ->
 * fit (first segment) / contract with sticky resampling (later ones). Every `--report` segments
 * it prints how well the memory still reconstructs recent segments, the memory's size (constant)
 * and the live tensor count (flat).
 *
 *   npx tsx examples/memory-over-stream.ts [--segments 400] [--forever] [--report 50]
 */
import * as tf from '@tensorflow/tfjs';
import {
  centredPositions,
  contractMemory,
  createRng,
  fitBasis,
  gaussianBasis,
  initBackend,
  reconstruct,
  smooth,
  stickyResample,
} from '../src/index.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const forever = args.includes('--forever');
const totalSegments = forever ? Number.POSITIVE_INFINITY : flag('segments', 400);
const every = flag('report', 50);

const L = 64;
const E = 32;
const N = 128;
const TAU = 0.5;
// Byte embeddings are white noise along time: a wide smoothing kernel keeps what N basis
// functions can hold (64 centres over [0, 1], 32 of them on the newest segment's half).
const KERNEL = [1, 2, 3, 2, 1].map((w) => w / 9);

/** An endless, deterministic stream of syslog-like lines (a stand-in until real logs ship). */
function* logLines(seed: number): Generator<string> {
  const rng = createRng(seed);
  const hosts = ['web-1', 'web-2', 'db-1', 'cache-1'];
  const events = ['GET /index.html 200', 'GET /api/items 200', 'POST /api/login 302', 'GET /favicon.ico 404', 'connection reset by peer'];
  for (let i = 0; ; i++) {
    const host = hosts[Math.floor(rng.next() * hosts.length)]!;
    const ev = events[Math.floor(rng.next() * events.length)]!;
    yield `2026-11-23T12:${String(Math.floor(i / 60) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')} ${host} nginx[${1000 + (i % 97)}]: ${ev}\n`;
  }
}

async function main(): Promise<void> {
  const backend = await initBackend();
  const basis = gaussianBasis({ numBasis: N, widths: [0.01, 0.02] });
  const embedding = tf.randomNormal([256, E], 0, 1, 'float32', 7);
  const rng = createRng(1);
  const bytes = (function* () {
    for (const line of logLines(3)) yield* new TextEncoder().encode(line);
  })();

  // Sticky memories: a stand-in attention density that keeps looking at the newest quarter.
  const attended = { mu: tf.tensor1d([0.85]), sigmaSq: tf.tensor1d([0.01]) };
  let memory: tf.Tensor | undefined;
  const recent: tf.Tensor[] = [];
  const startTensors = tf.memory().numTensors;
  const t0 = performance.now();
  for (let s = 0; s < totalSegments; s++) {
    const ids = Int32Array.from({ length: L }, () => bytes.next().value as number);
    const x = tf.tidy(() => smooth(tf.gather(embedding, tf.tensor1d(ids, 'int32')), { kind: 'fixed', kernel: KERNEL }));
    let next: tf.Tensor;
    if (memory === undefined) next = fitBasis(x, { basis });
    else {
      const positions = stickyResample(attended, { numSamples: N, rng });
      next = contractMemory(memory, x, { basis, tau: TAU, numSamples: N, positions });
      memory.dispose();
    }
    memory = next;
    recent.push(x);
    if (recent.length > 1) recent.shift()!.dispose();
    if ((s + 1) % every === 0) {
      const newest = tf.tidy(() => {
        const ts = Array.from(centredPositions(L), (t) => TAU + (1 - TAU) * t);
        const rec = reconstruct(memory!, ts, { basis });
        return tf.norm(tf.sub(rec, recent[0]!)).div(tf.norm(recent[0]!)).dataSync()[0]!;
      });
      const rate = ((s + 1) * L) / ((performance.now() - t0) / 1000);
      console.log(
        JSON.stringify({
          backend,
          segments: s + 1,
          bytes: (s + 1) * L,
          memoryShape: memory.shape,
          newestSegmentRelError: Number(newest.toFixed(4)),
          liveTensors: tf.memory().numTensors - startTensors,
          bytesPerSecond: Math.round(rate),
        }),
      );
    }
  }
  tf.dispose([memory!, ...recent, embedding, attended.mu, attended.sigmaSq]);
}

await main();
