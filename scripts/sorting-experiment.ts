/**
 * Sorting-task experiments (DESIGN §8): trains a small InfiniFormer on sorting lines of T
 * symbols and reports held-out accuracy on the 20 target positions next to the baselines,
 * plus the long-term attention's densities (mu, sigma^2) and KL at evaluation.
 *
 *   npx tsx scripts/sorting-experiment.ts '{"config":{...},"steps":400,"lr":3e-3}'
 *
 * Every field of the JSON argument is optional (defaults below). Not a test: prints figures.
 */
import * as tf from '@tensorflow/tfjs';
import { InfiniFormer, Trainer, evaluate, frequencyBlindAccuracy, initBackend, keepChunk, rankCounts, setLogLevel, sortingSequence, sortingTarget, sortingTaskSource, windowCountAccuracy, SORT_VOCAB } from '../src/index.js';
import type { ModelConfig } from '../src/index.js';

interface Args {
  config: Partial<ModelConfig>;
  T: number;
  streams: number;
  /** Training lines (each = ceil((T + 21) / L) segments). */
  lines: number;
  lr: number;
  warmup: number;
  seed: number;
  evalStreams: number;
  evalEvery: number;
  clip: number;
}

const defaults: Args = {
  config: { vocabSize: SORT_VOCAB, width: 32, numHeads: 2, numLayers: 2, ffnWidth: 64, segmentLength: 128, numBasis: 32, basisWidths: [0.05, 0.1], numSamples: 32, tau: 0.75, ridgeLambda: 1, dropout: 0, sigmaEps: 1e-6 },
  T: 512,
  streams: 16,
  lines: 60,
  lr: 3e-3,
  warmup: 20,
  seed: 1,
  evalStreams: 128,
  evalEvery: 0,
  clip: 1,
};

const given = JSON.parse(process.argv[2] ?? '{}') as Partial<Args>;
const a: Args = { ...defaults, ...given, config: { ...defaults.config, ...(given.config ?? {}) } };

setLogLevel('warn');
const backend = await initBackend();
const L = a.config.segmentLength!;
const segmentsPerLine = Math.ceil((a.T + 21) / L);
const EVAL_SEED = 999;

const heldOut = Array.from({ length: a.evalStreams }, (_, i) => sortingSequence(a.T, EVAL_SEED * 1_000_003 + i));
const counts = rankCounts(20_000, a.T, (i) => 7_000_000_000 + i);
const targets = heldOut.map((s) => sortingTarget(s));
console.log(`backend ${backend}; T=${a.T}, L=${L} (${segmentsPerLine} segments per line), streams ${a.streams}, lines ${a.lines}, lr ${a.lr}`);
console.log(
  `baselines on ${a.evalStreams} held-out lines: frequency-blind with exclusion ${frequencyBlindAccuracy(counts, targets, true).toFixed(3)}, position only ${frequencyBlindAccuracy(counts, targets, false).toFixed(3)}; ` +
    `counts of the last ${L} symbols ${windowCountAccuracy(heldOut, L).toFixed(3)}, last ${2 * L} ${windowCountAccuracy(heldOut, 2 * L).toFixed(3)}, all ${windowCountAccuracy(heldOut, a.T).toFixed(3)}`,
);

const model = InfiniFormer.create(a.config, { seed: a.seed });
console.log(`config ${JSON.stringify(model.config)}; ${model.numParameters} parameters`);
const steps = a.lines * segmentsPerLine;
const trainer = new Trainer(model, sortingTaskSource({ numStreams: a.streams, length: a.T, segmentLength: L, seed: a.seed }), {
  learningRate: a.lr,
  warmupSteps: a.warmup * segmentsPerLine,
  totalSteps: steps,
  maxGradNorm: a.clip,
});

/** Held-out accuracy plus the densities of the target segment. */
function evalNow(): string {
  const r = evaluate(model, sortingTaskSource({ numStreams: a.evalStreams, length: a.T, segmentLength: L, seed: EVAL_SEED }), segmentsPerLine);
  // Densities at the target positions: run a fresh batch up to the target segment.
  const src = sortingTaskSource({ numStreams: 16, length: a.T, segmentLength: L, seed: EVAL_SEED });
  const states = Array.from({ length: 16 }, (_, i) => model.createState(i));
  let dens = '';
  for (let s = 0; s < segmentsPerLine; s++) {
    const batch = src.next();
    if (s < segmentsPerLine - 1) {
      model.run(states, batch.inputs).dispose();
      continue;
    }
    let out: ReturnType<InfiniFormer['forwardChunk']> | undefined;
    tf.tidy(() => {
      out = model.forwardChunk(states, batch.inputs);
      keepChunk(out);
    });
    const at = (a.T % L) + 0;
    out!.layers.forEach((lo, li) => {
      if (lo.mu === undefined) return;
      const [mu, sig] = tf.tidy(() => [tf.slice(lo.mu!, [0, 0, at], [-1, -1, 20]).dataSync(), tf.slice(lo.sigmaSq!, [0, 0, at], [-1, -1, 20]).dataSync()]);
      const stats = (x: ArrayLike<number>): string => {
        const arr = Array.from(x);
        const m = arr.reduce((p, q) => p + q, 0) / arr.length;
        const sd = Math.sqrt(arr.reduce((p, q) => p + (q - m) ** 2, 0) / arr.length);
        return `${m.toFixed(3)}±${sd.toFixed(3)}`;
      };
      dens += ` L${li}: mu ${stats(mu!)} sigma² ${stats(sig!)}`;
    });
    model.commit(states, out!);
    tf.dispose([out!.hidden, out!.logits, out!.kl]);
  }
  states.forEach((s) => s.dispose());
  return `acc ${r.accuracy.toFixed(3)} ce ${r.crossEntropy.toFixed(3)}${dens}`;
}

console.log(`init: ${evalNow()}`);
const t0 = performance.now();
let ceSum = 0;
let ceN = 0;
let klLast = NaN;
let gnSum = 0;
for (let line = 1; line <= a.lines; line++) {
  for (let s = 0; s < segmentsPerLine; s++) {
    const r = trainer.step();
    if (Number.isFinite(r.crossEntropy)) {
      ceSum += r.crossEntropy;
      ceN += 1;
      klLast = r.kl;
      gnSum += r.gradNorm;
    }
  }
  if (line % 10 === 0 || line === a.lines) {
    const ev = a.evalEvery > 0 && (line % a.evalEvery === 0 || line === a.lines) ? ` | ${evalNow()}` : '';
    console.log(`line ${line} (${((performance.now() - t0) / 1000).toFixed(0)} s): train ce ${(ceSum / ceN).toFixed(3)} kl ${klLast.toFixed(1)} |g| ${(gnSum / ceN).toFixed(2)}${ev}`);
    ceSum = 0;
    gnSum = 0;
    ceN = 0;
  }
}
console.log(`trained ${((performance.now() - t0) / 1000).toFixed(0)} s`);
if (a.evalEvery === 0) console.log(`final: ${evalNow()}`);
// Ablation: the same trained model with its long-term attention's output zeroed.
if (model.config.longTermMemory) {
  const saved = model.params.layers.map((lp) => tf.keep(lp.ltmWO!.clone()));
  model.params.layers.forEach((lp) => lp.ltmWO!.assign(tf.zerosLike(lp.ltmWO!)));
  const r = evaluate(model, sortingTaskSource({ numStreams: a.evalStreams, length: a.T, segmentLength: L, seed: EVAL_SEED }), segmentsPerLine);
  console.log(`ablation, long-term attention output zeroed: acc ${r.accuracy.toFixed(3)} ce ${r.crossEntropy.toFixed(3)}`);
  model.params.layers.forEach((lp, i) => lp.ltmWO!.assign(saved[i]!));
  tf.dispose(saved);
}
for (const [name, v] of model.params.byName) {
  const [mean, rms] = tf.tidy(() => [tf.mean(v).dataSync()[0]!, tf.sqrt(tf.mean(tf.square(v))).dataSync()[0]!]);
  console.log(`  ${name} ${JSON.stringify(v.shape)} mean ${mean.toFixed(4)} rms ${rms.toFixed(4)}`);
}
trainer.dispose();
model.dispose();
