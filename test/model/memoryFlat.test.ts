import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { backendReady } from '../helpers/backend.js';
import { tinyModel, tokens } from './helpers.js';

test.before(async () => {
  await backendReady;
});

test('20,000 tokens in token mode leave tf.memory() numTensors and numBytes flat', (t) => {
  t.timeout(10 * 60_000);
  const model = tinyModel({ numLayers: 1, sticky: true, segmentLength: 16, numBasis: 8, numSamples: 8 });
  const L = model.config.segmentLength;
  const total = 20_000;
  const stream = tokens(total, model.config.vocabSize, 123);
  const state = model.createState(7);
  const samples: { at: number; tensors: number; bytes: number }[] = [];
  const started = performance.now();
  for (let i = 0; i < total; i++) {
    const logits = model.step([state], [stream[i]!]);
    logits.dispose();
    // Sample at the same phase of the segment (right after a boundary), after a warm-up.
    if ((i + 1) % 2000 === 0 && (i + 1) % L === 0) {
      const m = tf.memory();
      samples.push({ at: i + 1, tensors: m.numTensors, bytes: m.numBytes });
    }
  }
  t.log(`${total} tokens in ${((performance.now() - started) / 1000).toFixed(1)} s; tensors ${samples.map((s) => s.tensors).join(' ')}; bytes ${samples.map((s) => s.bytes).join(' ')}`);
  t.is(samples.length, 10);
  t.is(state.tokensSeen, total);
  t.is(state.segmentsSeen, total / L);
  for (const s of samples) {
    t.is(s.tensors, samples[0]!.tensors, `numTensors at ${s.at}`);
    t.is(s.bytes, samples[0]!.bytes, `numBytes at ${s.at}`);
  }
  state.dispose();
  model.dispose();
});
