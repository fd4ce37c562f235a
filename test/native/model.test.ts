// The ∞-former on native TensorFlow against wasm, in one process (serial: the tests switch the
// process-wide backend): the same weights give the same logits in segment and token mode
// (max |diff| <= 1e-4, issue 6), and training on the native backend learns, following the
// wasm run's loss curve. Native is required: missing, these tests fail, they never skip.
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { setLogLevel, clearRidgeCache, InfiniFormer, Trainer, tokenStreamSource, type ModelConfig } from '../../src/index.js';
import { BACKENDS, requireBothBackends, type ParityBackend } from './helpers.js';

setLogLevel('warn');
test.before(requireBothBackends);
test.after.always(() => clearRidgeCache());

const LOGITS_TOL = 1e-4;

/** Deterministic byte-like tokens with structure (a noisy repeating phrase). */
function phraseTokens(count: number, seed: number): number[] {
  const phrase = Array.from('the memory of an unbounded stream ', (c) => c.charCodeAt(0));
  let s = seed >>> 0;
  return Array.from({ length: count }, (_, i) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % 10 === 0 ? 97 + (s % 26) : phrase[i % phrase.length]!;
  });
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length || a.length === 0) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    m = Number.isNaN(d) ? NaN : Math.max(m, d);
  }
  return m;
}

test.serial('default model: segment-mode and token-mode logits agree across backends (sticky memory, 5 segments)', async (t) => {
  // The library's default configuration (e = 128, 2 layers, L = N = 128), sticky memory on so
  // the sampled positions (which depend on the attention densities) are compared too.
  const overrides: Partial<ModelConfig> = { sticky: true };
  const segments = 5;
  const logits: Record<ParityBackend, { segment: Float32Array[]; token: Float32Array[] }> = { tensorflow: { segment: [], token: [] }, wasm: { segment: [], token: [] } };
  for (const backend of BACKENDS) {
    await tf.setBackend(backend);
    const model = InfiniFormer.create(overrides, { seed: 3 });
    const L = model.config.segmentLength;
    const toks = phraseTokens(L * segments + 24, 5);
    const streams = [model.createState(1), model.createState(2)];
    for (let s = 0; s < segments; s++) {
      const out = model.run(streams, [toks.slice(s * L, (s + 1) * L), toks.slice(s * L + 7, (s + 1) * L + 7)]);
      logits[backend].segment.push(Float32Array.from(out.dataSync()));
      out.dispose();
    }
    // Then token mode inside the next segment, reading the memory built above.
    for (let j = 0; j < 16; j++) {
      const out = model.step(streams, [toks[segments * L + j]!, toks[segments * L + j + 7]!]);
      logits[backend].token.push(Float32Array.from(out.dataSync()));
      out.dispose();
    }
    streams.forEach((s) => s.dispose());
    model.dispose();
  }
  let worstSegment = 0;
  let worstToken = 0;
  logits.tensorflow.segment.forEach((v, i) => (worstSegment = Math.max(worstSegment, maxAbsDiff(v, logits.wasm.segment[i]!))));
  logits.tensorflow.token.forEach((v, i) => (worstToken = Math.max(worstToken, maxAbsDiff(v, logits.wasm.token[i]!))));
  t.log(`logits max |native - wasm|: segment mode ${worstSegment.toExponential(2)}, token mode ${worstToken.toExponential(2)}`);
  t.true(worstSegment <= LOGITS_TOL, `segment mode ${worstSegment}`);
  t.true(worstToken <= LOGITS_TOL, `token mode ${worstToken}`);
  // Not vacuous: logits vary (a constant output would agree trivially).
  const first = logits.wasm.segment[segments - 1]!;
  t.true(Math.max(...first) - Math.min(...first) > 1e-2);
});

/** A small model trained on the phrase stream; returns the loss of every step. */
function trainLosses(steps: number): number[] {
  const model = InfiniFormer.create({ width: 32, numHeads: 2, ffnWidth: 64, segmentLength: 16, numBasis: 16, numSamples: 16, basisWidths: [0.05, 0.1], dropout: 0 }, { seed: 4 });
  const trainer = new Trainer(model, tokenStreamSource(phraseTokens(4096, 9), { numStreams: 2, segmentLength: 16 }), { learningRate: 3e-3, warmupSteps: 5, totalSteps: steps });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push(trainer.step().loss);
  trainer.dispose();
  model.dispose();
  return losses;
}

test.serial('training on the native backend learns, and follows the wasm loss curve', async (t) => {
  const curves: Partial<Record<ParityBackend, number[]>> = {};
  for (const backend of BACKENDS) {
    await tf.setBackend(backend);
    curves[backend] = trainLosses(60);
  }
  const native = curves.tensorflow!;
  const wasm = curves.wasm!;
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const early = mean(native.slice(0, 5));
  const late = mean(native.slice(-5));
  t.log(`native loss ${early.toFixed(3)} -> ${late.toFixed(3)} nats/token over ${native.length} steps`);
  t.true(late < early * 0.6, `native training did not learn: ${early} -> ${late}`);
  let worst = 0;
  native.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - wasm[i]!) / Math.abs(wasm[i]!))));
  t.log(`loss curves: max relative |native - wasm| over ${native.length} steps ${worst.toExponential(2)}`);
  t.true(worst < 1e-3);
});
