// Acceptance 2 of issue 3: the sorting task (DESIGN §8) at T = 512 with a tiny model. Training
// for a bounded number of steps must reach, on held-out sequences, an accuracy on the 20 target
// positions clearly above the best frequency-blind baseline, which is measured here by counting
// over sampled sequences (src/model/sortingBaseline.ts), not assumed.
import * as tf from '@tensorflow/tfjs';
import test from 'ava';
import { InfiniFormer, SORTING_TINY_CONFIG, SORT_SYMBOLS, Trainer, evaluate, frequencyBlindAccuracy, rankCounts, sortingSequence, sortingTarget, sortingTaskSource, windowCountAccuracy } from '../../src/index.js';
import type { ModelConfig } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';

test.before(async () => {
  await backendReady;
});

const T = 512;
const L = 128;
const SEGMENTS_PER_LINE = Math.ceil((T + 1 + SORT_SYMBOLS) / L);
const STREAMS = 16;
const LINES = 500;
const TRAIN_SEED = 1;
const EVAL_SEED = 999;
const EVAL_LINES = 256;
const EVAL_BATCH = 128;

/** L < T: the short-term window (previous segment + current) holds the last 128 symbols only. */
const SORTING_CONFIG: Partial<ModelConfig> = { ...SORTING_TINY_CONFIG, segmentLength: L };

test.serial('sorting task, T = 512: a tiny ∞-former trained on 500 lines beats the best frequency-blind baseline on held-out lines', async (t) => {
  t.timeout(15 * 60_000);
  // The best frequency-blind predictor, from the rank counts of 20,000 lines drawn as the
  // training lines are (the first 7,200 are the training lines themselves).
  const counts = rankCounts(20_000, T, (i) => TRAIN_SEED * 1_000_003 + i);
  const heldOut = Array.from({ length: EVAL_LINES }, (_, i) => sortingSequence(T, EVAL_SEED * 1_000_003 + i));
  const targets = heldOut.map((s) => sortingTarget(s));
  const blind = frequencyBlindAccuracy(counts, targets, true);
  const positionOnly = frequencyBlindAccuracy(counts, targets, false);

  const model = InfiniFormer.create(SORTING_CONFIG, { seed: 1 });
  const steps = LINES * SEGMENTS_PER_LINE;
  const trainer = new Trainer(model, sortingTaskSource({ numStreams: STREAMS, length: T, segmentLength: L, seed: TRAIN_SEED }), {
    learningRate: 3e-3,
    warmupSteps: 20 * SEGMENTS_PER_LINE,
    totalSteps: steps,
  });
  const started = performance.now();
  await trainer.run({ steps });
  const seconds = (performance.now() - started) / 1000;
  // The held-out lines in groups of 128 (fresh streams per line), so the batch stays small.
  const heldOutSource = (): ReturnType<typeof sortingTaskSource> => sortingTaskSource({ numStreams: EVAL_BATCH, length: T, segmentLength: L, seed: EVAL_SEED });
  const groups = EVAL_LINES / EVAL_BATCH;
  const result = evaluate(model, heldOutSource(), groups * SEGMENTS_PER_LINE);
  // The same weights with the long-term attention's output projections zeroed: what the
  // trained model gets from its memory.
  for (const lp of model.params.layers) lp.ltmWO!.assign(tf.zerosLike(lp.ltmWO!));
  const withoutMemory = evaluate(model, heldOutSource(), groups * SEGMENTS_PER_LINE);
  trainer.dispose();
  model.dispose();

  t.is(result.count, EVAL_LINES * SORT_SYMBOLS);
  t.log(
    `${LINES} lines x ${STREAMS} streams (${steps} segments, ${LINES} updates) in ${seconds.toFixed(0)} s: held-out accuracy ${result.accuracy.toFixed(3)} ` +
      `(cross-entropy ${result.crossEntropy.toFixed(3)} nats) vs best frequency-blind baseline ${blind.toFixed(3)} (position only ${positionOnly.toFixed(3)}); ` +
      `with the long-term attention's output zeroed ${withoutMemory.accuracy.toFixed(3)}; exact counts of the last ${L} symbols would give ${windowCountAccuracy(heldOut, L).toFixed(3)}, of all ${T} ${windowCountAccuracy(heldOut, T).toFixed(3)}`,
  );
  t.true(blind > 0.15 && blind < 0.21, `frequency-blind baseline ${blind} should be near H_20 / 20 = 0.180`);
  t.true(result.accuracy > blind + 0.04, `accuracy ${result.accuracy} is not clearly above the baseline ${blind}`);
  t.true(withoutMemory.accuracy < result.accuracy - 0.02, `zeroing the long-term attention left the accuracy at ${withoutMemory.accuracy} (trained ${result.accuracy})`);
});
