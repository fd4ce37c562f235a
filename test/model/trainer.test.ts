import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BadConfigError, BadInputError, Trainer, evaluate, learningRateAt, tokenStreamSource, weightedCrossEntropy } from '../../src/index.js';
import type { ProgressEvent, SegmentSource } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { tinyModel, tokens } from './helpers.js';

let root = '';
test.before(async () => {
  await backendReady;
  root = await mkdtemp(join(tmpdir(), 'infiniformer-trainer-'));
});
test.after.always(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
});

test('learning rate: linear warmup, cosine decay to the floor (closed form)', (t) => {
  const o = { learningRate: 2e-3, warmupSteps: 10, totalSteps: 110, minLearningRateRatio: 0.1 };
  t.is(learningRateAt(1, o), 2e-4);
  t.is(learningRateAt(10, o), 2e-3);
  t.true(Math.abs(learningRateAt(60, o) - 2e-3 * (0.1 + 0.9 * 0.5)) < 1e-12); // half-way: cos = 0
  t.true(Math.abs(learningRateAt(110, o) - 2e-4) < 1e-12);
  t.true(Math.abs(learningRateAt(500, o) - 2e-4) < 1e-12);
  for (let s = 11; s < 110; s++) t.true(learningRateAt(s + 1, o) <= learningRateAt(s, o));
});

test('weighted cross-entropy equals -log softmax at the target, averaged over weighted positions', (t) => {
  const logits = tf.tensor3d([[[1, 2, 3], [0, 0, 0]]]);
  const ce = weightedCrossEntropy(logits, [Int32Array.from([2, 1])], [Float32Array.from([1, 0])]);
  const expected = -(3 - Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)));
  t.true(Math.abs(ce.dataSync()[0]! - expected) < 1e-6);
  const both = weightedCrossEntropy(logits, [Int32Array.from([2, 1])]);
  t.true(Math.abs(both.dataSync()[0]! - (expected + Math.log(3)) / 2) < 1e-6);
  t.throws(() => weightedCrossEntropy(logits, [Int32Array.from([2, 1])], [Float32Array.from([0, 0])]), { instanceOf: BadInputError });
  tf.dispose([logits, ce, both]);
});

const CONFIG = { sticky: true, dropout: 0.1, klWeight: 1e-2 };
// A learnable stream: each token follows from the previous one, except every 4th, which is noise.
const noise = tokens(4000, 23, 77);
const stream: number[] = [];
for (let i = 0; i < 4000; i++) stream.push(i % 4 === 0 ? noise[i]! : ((stream[i - 1] ?? 0) * 5 + 3) % 23);
const data = (): SegmentSource => tokenStreamSource(stream, { numStreams: 3, segmentLength: 8 });

test.serial('a run resumed from a checkpoint follows the uninterrupted loss curve', async (t) => {
  const opts = { learningRate: 1e-2, warmupSteps: 3, totalSteps: 12, seed: 4 };
  const full = new Trainer(tinyModel(CONFIG, 9), data(), opts);
  const fullRun = await full.run({ steps: 12 });
  const uninterrupted = fullRun.map((r) => r.loss);
  const first = new Trainer(tinyModel(CONFIG, 9), data(), opts);
  const head = (await first.run({ steps: 7, checkpointEvery: 7, checkpointDir: join(root, 'ckpt') })).map((r) => r.loss);
  first.dispose();
  first.model.dispose();
  const resumed = await Trainer.resume(join(root, 'ckpt'), data());
  t.is(resumed.stepCount, 7);
  const tail = (await resumed.run({ steps: 5 })).map((r) => r.loss);
  const replay = [...head, ...tail];
  const worst = Math.max(...replay.map((l, i) => Math.abs(l - uninterrupted[i]!)));
  t.log(`cross-entropy ${fullRun.map((r) => r.crossEntropy.toFixed(3)).join(" ")}`);
  t.log(`losses ${uninterrupted.map((l) => l.toFixed(4)).join(' ')}; max |resumed - uninterrupted| = ${worst.toExponential(2)}`);
  t.true(worst <= 1e-5);
  t.true(fullRun[11]!.crossEntropy < fullRun[0]!.crossEntropy - 0.15, 'the cross-entropy goes down');
  full.dispose();
  full.model.dispose();
  resumed.dispose();
  resumed.model.dispose();
});

test.serial('progress events: step, rate, ETA, evaluation; no tensors leak', async (t) => {
  const model = tinyModel(CONFIG, 3);
  const before = tf.memory().numTensors;
  const trainer = new Trainer(model, data(), { warmupSteps: 2, totalSteps: 6 });
  const events: ProgressEvent[] = [];
  await trainer.run({ steps: 6, onProgress: (e) => events.push(e), evalEvery: 3, evalSource: data, evalSegments: 4 });
  t.deepEqual(events.map((e) => e.step), [1, 2, 3, 4, 5, 6]);
  t.true(events.every((e) => e.totalSteps === 6 && e.tokensPerSecond > 0 && Number.isFinite(e.loss)));
  t.is(events[5]!.etaSeconds, 0);
  t.true(events[0]!.etaSeconds > 0);
  const evals = events.filter((e) => e.eval !== undefined);
  t.deepEqual(evals.map((e) => e.step), [3, 6]);
  t.is(evals[0]!.eval!.count, 4 * 3 * 8);
  t.true(Math.abs(evals[0]!.eval!.bitsPerToken - evals[0]!.eval!.crossEntropy / Math.LN2) < 1e-12);
  trainer.dispose();
  t.is(tf.memory().numTensors, before);
  model.dispose();
});

test.serial('bad trainer options and bad batches are typed errors', async (t) => {
  const model = tinyModel();
  t.is(t.throws(() => new Trainer(model, data(), { learningRate: -1 }), { instanceOf: BadConfigError }).option, 'learningRate');
  t.is(t.throws(() => new Trainer(model, data(), { beta1: 1 }), { instanceOf: BadConfigError }).option, 'beta1');
  const short: SegmentSource = { numStreams: 1, next: () => ({ inputs: [Int32Array.from([1, 2])], targets: [Int32Array.from([2, 3])] }), getState: () => null, setState: () => undefined };
  const trainer = new Trainer(model, short);
  t.is(t.throws(() => trainer.step(), { instanceOf: BadInputError }).argument, 'inputs[0]');
  await t.throwsAsync(trainer.run({ steps: 1.5 }), { instanceOf: BadConfigError });
  trainer.dispose();
  model.dispose();
});

test.serial('the classifier head trains on the same trunk: per-event and per-window labels', async (t) => {
  // Per event: is this token's value below 8 (a property of the token); per window: does the
  // segment contain token 0 (needs pooling over the segment).
  const L = 8;
  const labelled = (seed: number, streams: number): SegmentSource => {
    const base = tokenStreamSource(tokens(60_000, 23, seed), { numStreams: streams, segmentLength: L });
    return {
      numStreams: streams,
      next() {
        const batch = base.next();
        return {
          ...batch,
          labels: batch.inputs.map((row) => Int32Array.from(row, (x) => (x < 8 ? 1 : 0))),
          windowLabels: Int32Array.from(batch.inputs, (row) => (row.includes(0) ? 1 : 0)),
        };
      },
      getState: () => base.getState(),
      setState: (s) => base.setState(s),
    };
  };
  const model = tinyModel({ numLabels: 2 }, 4);
  const trainer = new Trainer(model, labelled(1, 8), { learningRate: 1e-2, warmupSteps: 5, totalSteps: 60, lmWeight: 0 });
  const steps = await trainer.run({ steps: 60 });
  t.true(steps.every((s) => Number.isNaN(s.crossEntropy) && s.classifierCrossEntropy !== undefined));
  t.true(steps[59]!.classifierCrossEntropy! < 0.75 * steps[0]!.classifierCrossEntropy!);
  const result = evaluate(model, labelled(99, 8), 10);
  t.log(`per-event accuracy ${result.classifierAccuracy?.toFixed(3)}; classifier cross-entropy ${steps[0]!.classifierCrossEntropy!.toFixed(3)} -> ${steps[59]!.classifierCrossEntropy!.toFixed(3)}`);
  t.true(result.classifierAccuracy! > 0.95);
  trainer.dispose();
  const noHead = tinyModel();
  const bad = new Trainer(noHead, labelled(1, 2));
  t.is(t.throws(() => bad.step(), { instanceOf: BadInputError }).argument, 'labels');
  bad.dispose();
  noHead.dispose();
  model.dispose();
});
