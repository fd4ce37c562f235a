import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { BadConfigError, Trainer, type SegmentSource } from '../../src/index.js';
import { tinyModel, tokens } from './helpers.js';

const L = 8;

/** One batch of 2 streams with per-event labels (-1, 0, 1, 2 mixed). */
function source(): SegmentSource {
  const inputs = [Int32Array.from(tokens(L, 23, 1)), Int32Array.from(tokens(L, 23, 2))];
  const labels = [Int32Array.of(-1, 0, 1, -1, 2, 0, -1, 1), Int32Array.of(2, -1, -1, 0, 0, 1, -1, -1)];
  return {
    numStreams: 2,
    next: () => ({ inputs, targets: inputs, labels }),
    getState: () => ({}),
    setState: () => undefined,
  };
}

test('classWeights: the classifier loss is the class-weighted mean of per-event cross-entropies (checked against a direct computation)', (t) => {
  const weights = [0.5, 3, 1.25];
  const model = tinyModel({ numLabels: 3 }, 4);
  const batch = source().next();
  // Direct: the head's log-softmax at every labelled event of the first segment (no memory yet).
  const states = [model.createState(0), model.createState(1)];
  const hidden = model.runHidden(states, batch.inputs);
  const logp = tf.tidy(() => tf.logSoftmax(model.classify(hidden, 'event')).arraySync() as number[][][]);
  let num = 0;
  let den = 0;
  batch.labels!.forEach((row, i) =>
    row.forEach((l, j) => {
      if (l < 0) return;
      num += -logp[i]![j]![l]! * weights[l]!;
      den += weights[l]!;
    }),
  );
  tf.dispose(hidden);
  states.forEach((s) => s.dispose());
  const trainer = new Trainer(model, source(), { classWeights: weights, lmWeight: 0 });
  const r = trainer.step();
  t.log(`weighted classifier CE: trainer ${r.classifierCrossEntropy}, direct ${num / den}`);
  t.true(Math.abs(r.classifierCrossEntropy! - num / den) < 1e-5);
  trainer.dispose();
  model.dispose();
});

test('classWeights: wrong length or non-positive weights are typed errors', (t) => {
  const model = tinyModel({ numLabels: 3 }, 4);
  t.throws(() => new Trainer(model, source(), { classWeights: [1, 0, 1] }), { instanceOf: BadConfigError, message: /^classWeights: must be an array of positive finite numbers/ });
  const trainer = new Trainer(model, source(), { classWeights: [1, 2] });
  t.throws(() => trainer.step(), { instanceOf: BadConfigError, message: /^classWeights: expected 3 weights \(numLabels\), got 2/ });
  trainer.dispose();
  model.dispose();
});
