/**
 * Native TensorFlow (tfjs-node) against wasm, side by side in one process, on the three
 * workloads that pick a backend: a training step, segment-mode throughput and token-mode
 * latency of the ∞-former at its default (streaming) configuration, plus the bare memory
 * stages at the reference's scale. Each figure is measured on both backends back to back and
 * reported with the ratio wasm time / native time (> 1: native is faster).
 *
 * `npm run bench -- backends` (needs `npm run setup:native`). Options via environment:
 * BENCH_REPEATS (default 3: each workload alternates backends this many times; the median
 * counts), BENCH_QUICK=1 (smaller counts, a smoke run), BENCH_ONLY=text (workloads whose name
 * contains it).
 */
import * as tf from '@tensorflow/tfjs';
import { contractMemory, continuousAttention, createRng, fitBasis, gaussianBasis, initBackend, setLogLevel, stickyResample } from '../src/index.js';
import { InfiniFormer, Trainer, tokenStreamSource } from '../src/model/index.js';

type Backend = 'tensorflow' | 'wasm';
const BACKENDS: readonly Backend[] = ['tensorflow', 'wasm'];
const QUICK = process.env['BENCH_QUICK'] === '1';
const REPEATS = Number(process.env['BENCH_REPEATS'] ?? (QUICK ? 1 : 3));

/** A workload: `prepare` runs untimed on the backend, returns the timed body and a cleanup. */
interface Workload {
  name: string;
  /** What one timed call processes, for the throughput column. */
  unit: { count: number; label: string };
  prepare(): { body: () => void; dispose: () => void };
  calls: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** Synthetic byte text with structure (words from a small vocabulary), deterministic. */
function syntheticBytes(count: number, seed: number): Uint8Array {
  const words = ['error', 'warning', 'disk', 'latency', 'user', 'login', 'failed', 'ok', 'timeout', 'retry', 'GET', '/api/v1', '200', '503'];
  const rng = createRng(seed);
  const out = new Uint8Array(count);
  let i = 0;
  while (i < count) {
    const w = words[Math.floor(rng.next() * words.length)]!;
    for (let j = 0; j < w.length && i < count; j++) out[i++] = w.charCodeAt(j);
    if (i < count) out[i++] = rng.next() < 0.1 ? 10 : 32;
  }
  return out;
}

function modelWorkloads(): Workload[] {
  const L = 128; // DEFAULT_CONFIG.segmentLength
  const tokens = syntheticBytes(64 * 1024, 1);
  const trainStreams = 4;
  const segment = (streams: number): Workload => ({
    name: `segment mode, ${streams} stream${streams > 1 ? 's' : ''} x L=${L}`,
    unit: { count: streams * L, label: 'tokens' },
    calls: QUICK ? 2 : 6,
    prepare() {
      const model = InfiniFormer.create({}, { seed: 1 });
      const states = Array.from({ length: streams }, (_, i) => model.createState(i));
      let offset = 0;
      const next = (): Uint8Array[] => states.map((_, i) => tokens.subarray((offset + i * 4096) % 60_000, ((offset + i * 4096) % 60_000) + L));
      // Two segments first so that the memory is contracted (sticky) on every timed call.
      for (let k = 0; k < 2; k++, offset += L) model.run(states, next()).dispose();
      return {
        body: () => {
          model.run(states, next()).dataSync();
          offset += L;
        },
        dispose: () => {
          for (const s of states) s.dispose();
          model.dispose();
        },
      };
    },
  });
  const token = (streams: number): Workload => ({
    name: `token mode, ${streams} stream${streams > 1 ? 's' : ''}, 1 token each`,
    unit: { count: streams, label: 'tokens' },
    calls: QUICK ? 32 : 160, // crosses a segment boundary (L = 128): the fold is in the average
    prepare() {
      const model = InfiniFormer.create({}, { seed: 1 });
      const states = Array.from({ length: streams }, (_, i) => model.createState(i));
      model.run(states, states.map((_, i) => tokens.subarray(i * 512, i * 512 + L))).dispose(); // a memory to read
      let position = 0;
      return {
        body: () => {
          const ids = states.map((_, i) => tokens[(position + i * 977) % tokens.length]!);
          model.step(states, ids).dataSync();
          position += 1;
        },
        dispose: () => {
          for (const s of states) s.dispose();
          model.dispose();
        },
      };
    },
  });
  return [
    {
      name: `training step, ${trainStreams} streams x L=${L} (forward, backward, Adam)`,
      unit: { count: trainStreams * L, label: 'tokens' },
      calls: QUICK ? 2 : 5,
      prepare() {
        const model = InfiniFormer.create({}, { seed: 1 });
        const trainer = new Trainer(model, tokenStreamSource(tokens, { numStreams: trainStreams, segmentLength: L }), { warmupSteps: 1 });
        trainer.step(); // allocates the Adam moments, compiles kernels
        return {
          body: () => void trainer.step(),
          dispose: () => {
            trainer.dispose();
            model.dispose();
          },
        };
      },
    },
    segment(1),
    segment(8),
    token(1),
    token(4),
    token(8),
  ];
}

const STAGE_UNIFORM = 'stage: contract, uniform samples';
const STAGE_STICKY = 'stage: contract, sticky samples';

/** The bare stages at the reference's scale (N = M = L = 512, e = 256), one call each. */
function stageWorkloads(): Workload[] {
  const n = 512;
  const e = 256;
  const basis = gaussianBasis({ numBasis: n, widths: [0.005, 0.01] });
  const make = (name: string, calls: number, body: (x: tf.Tensor, b: tf.Tensor, q: tf.Tensor, w: Record<string, tf.Tensor>) => tf.Tensor[]): Workload => ({
    name,
    unit: { count: 1, label: 'calls' },
    calls: QUICK ? 2 : calls,
    prepare() {
      const x = tf.randomNormal([n, e], 0, 1, 'float32', 1);
      const b = fitBasis(x, { basis });
      const q = tf.randomNormal([n, e], 0, 1, 'float32', 2);
      const w = {
        wK: tf.randomNormal([e, e], 0, 0.05, 'float32', 3),
        wV: tf.randomNormal([e, e], 0, 0.05, 'float32', 4),
        wMu: tf.randomNormal([n], 0, 0.05, 'float32', 5),
        wSigma: tf.randomNormal([n], 0, 0.05, 'float32', 6),
        wO: tf.randomNormal([e, e], 0, 0.05, 'float32', 7),
      };
      body(x, b, q, w).forEach((t) => t.dispose()); // warm caches and kernels
      return {
        body: () => {
          const outs = body(x, b, q, w);
          outs[0]!.dataSync();
          tf.dispose(outs);
        },
        dispose: () => tf.dispose([x, b, q, ...Object.values(w)]),
      };
    },
  });
  const rng = createRng(3);
  const mass = Float64Array.from({ length: 128 }, (_, i) => 1 + Math.sin(i / 10));
  return [
    make('stage: fitBasis [512, 256]', 10, (x) => [fitBasis(x, { basis })]),
    make(STAGE_UNIFORM, 10, (x, b) => [contractMemory(b, x, { basis })]),
    make(STAGE_STICKY, 10, (x, b) => [contractMemory(b, x, { basis, positions: stickyResample({ mass }, { numSamples: n, rng }) })]),
    make('stage: continuous attention, 512 queries', 10, (_x, b, q, w) => {
      const r = continuousAttention(b, q, { wK: w['wK']!, wV: w['wV']!, wMu: w['wMu']!, wSigma: w['wSigma']!, wO: w['wO']! }, { basis, numHeads: 4 });
      return [r.context, r.mu, r.sigmaSq];
    }),
  ];
}

/** Mean and median ms per call of `workload` on `backend` (after its own warm-up call). */
async function measure(workload: Workload, backend: Backend): Promise<{ mean: number; p50: number }> {
  await tf.setBackend(backend);
  const { body, dispose } = workload.prepare();
  body();
  const each: number[] = [];
  for (let i = 0; i < workload.calls; i++) {
    const t0 = performance.now();
    body();
    each.push(performance.now() - t0);
  }
  dispose();
  return { mean: each.reduce((a, b) => a + b, 0) / each.length, p50: median(each) };
}

export async function run(): Promise<void> {
  setLogLevel('warn');
  await initBackend({ backend: 'wasm' });
  await initBackend({ backend: 'tensorflow' }); // throws with a clear message if not built
  const rows: Record<string, string>[] = [];
  const summary: { name: string; ratio: number }[] = [];
  const means = new Map<string, Record<Backend, number>>();
  const only = process.env['BENCH_ONLY'];
  const workloads = [...modelWorkloads(), ...stageWorkloads()].filter((w) => only === undefined || w.name.includes(only));
  for (const workload of workloads) {
    const times: Record<Backend, { mean: number; p50: number }[]> = { tensorflow: [], wasm: [] };
    for (let r = 0; r < REPEATS; r++) {
      // Alternate the order so neither backend always runs on a warmer machine.
      const order = r % 2 === 0 ? BACKENDS : [...BACKENDS].reverse();
      for (const backend of order) times[backend].push(await measure(workload, backend));
    }
    // Mean per call (throughput, includes occasional segment folds) and median (typical latency).
    const native = median(times.tensorflow.map((x) => x.mean));
    const wasm = median(times.wasm.map((x) => x.mean));
    const nativeP50 = median(times.tensorflow.map((x) => x.p50));
    const wasmP50 = median(times.wasm.map((x) => x.p50));
    const per = (ms: number): string => `${((workload.unit.count / ms) * 1000).toFixed(0)} ${workload.unit.label}/s`;
    rows.push({
      workload: workload.name,
      'native mean ms': native.toFixed(2),
      'wasm mean ms': wasm.toFixed(2),
      'native p50 ms': nativeP50.toFixed(2),
      'wasm p50 ms': wasmP50.toFixed(2),
      'native rate': per(native),
      'wasm rate': per(wasm),
      'wasm / native (mean)': (wasm / native).toFixed(2),
      'wasm / native (p50)': (wasmP50 / nativeP50).toFixed(2),
    });
    summary.push({ name: workload.name, ratio: wasm / native });
    means.set(workload.name, { tensorflow: native, wasm });
    console.log(`  ${workload.name}: mean native ${native.toFixed(2)} ms, wasm ${wasm.toFixed(2)} ms (${(wasm / native).toFixed(2)}); p50 native ${nativeP50.toFixed(2)} ms, wasm ${wasmP50.toFixed(2)} ms (${(wasmP50 / nativeP50).toFixed(2)})`);
  }
  console.table(rows);
  console.log(`(median over ${REPEATS} alternating runs per backend; wasm / native > 1 means native is faster)`);
  for (const { name, ratio } of summary) console.log(`  faster: ${ratio >= 1 ? 'native' : 'wasm'} for ${name}`);
  const [uniform, sticky] = [means.get(STAGE_UNIFORM), means.get(STAGE_STICKY)];
  if (uniform !== undefined && sticky !== undefined) {
    // Sticky reads the old signal at new positions (Psi(s) B) but shares uniform's ridge operator.
    console.log(`  sticky / uniform contraction: native ${(sticky.tensorflow / uniform.tensorflow).toFixed(2)}, wasm ${(sticky.wasm / uniform.wasm).toFixed(2)}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
