// Learning tests: small models trained for a bounded number of steps must reach targets that
// only real learning reaches. Figures are logged (t.log) for the report.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { ByteTokenizer, InfiniFormer, Trainer, evaluate, tokenStreamSource } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { RECALL_SEGMENTS, RECALL_VOCAB, recallSource } from './recallTask.js';

test.before(async () => {
  await backendReady;
});

test.serial('a test-sized LM overfits 5 KB of real text to < 0.5 bits per byte', async (t) => {
  // About 1 minute on the native backend, 3-5 on wasm (slower backward matMuls).
  t.timeout(10 * 60_000);
  // The first 5,120 bytes of the Apache License 2.0 text (Debian's common-licenses copy).
  const text = readFileSync(new URL('./fixtures/apache-2.0-head.txt', import.meta.url), 'utf8');
  const bytes = new ByteTokenizer().encode(text);
  t.is(bytes.length, 5120);
  const model = InfiniFormer.create({ width: 128, numHeads: 4, numLayers: 2, ffnWidth: 512, segmentLength: 64, numBasis: 32, basisWidths: [0.03, 0.06], numSamples: 32, dropout: 0 }, { seed: 1 });
  const source = (): ReturnType<typeof tokenStreamSource> => tokenStreamSource(bytes, { numStreams: 8, segmentLength: 64 });
  const steps = 340;
  const trainer = new Trainer(model, source(), { learningRate: 3e-3, warmupSteps: 20, totalSteps: steps, minLearningRateRatio: 0.05 });
  const started = performance.now();
  await trainer.run({ steps });
  // Every byte the streams cover (8 streams x 9 segments x 64), memory carried, inference mode.
  const result = evaluate(model, source(), 9);
  t.log(`${steps} steps in ${((performance.now() - started) / 1000).toFixed(0)} s: ${result.bitsPerToken.toFixed(3)} bits per byte over ${result.count} bytes`);
  t.true(result.bitsPerToken < 0.5);
  trainer.dispose();
  model.dispose();
});

test.serial('the long-term memory matters: recall from 5 segments back, with vs without LTM', async (t) => {
  t.timeout(10 * 60_000);
  const L = 16;
  const accuracy = async (longTermMemory: boolean): Promise<number> => {
    const model = InfiniFormer.create(
      { vocabSize: RECALL_VOCAB, width: 32, numHeads: 2, numLayers: 2, ffnWidth: 64, segmentLength: L, numBasis: 16, basisWidths: [0.05, 0.1], numSamples: 16, tau: 0.75, dropout: 0, longTermMemory },
      { seed: 1 },
    );
    const steps = RECALL_SEGMENTS * 70;
    const trainer = new Trainer(model, recallSource({ numStreams: 32, segmentLength: L, seed: 1 }), { learningRate: 1e-2, warmupSteps: 30, totalSteps: steps });
    await trainer.run({ steps });
    // 128 unseen sequences.
    const result = evaluate(model, recallSource({ numStreams: 128, segmentLength: L, seed: 999 }), RECALL_SEGMENTS);
    trainer.dispose();
    model.dispose();
    t.is(result.count, 128);
    return result.accuracy;
  };
  const withLtm = await accuracy(true);
  const without = await accuracy(false);
  t.log(`recall accuracy with LTM ${withLtm.toFixed(3)}, without ${without.toFixed(3)} (chance 0.125)`);
  t.true(withLtm >= 0.8);
  t.true(without <= 0.3);
});
