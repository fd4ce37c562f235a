import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { smooth, BadConfigError, BadInputError } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { lcg } from '../helpers/reference64.js';

test.before(async () => {
  await backendReady;
});

test('fixed kernel: equals a direct float64 convolution with replicated edges; constants stay constant', (t) => {
  const r = lcg(3);
  const x = Array.from({ length: 9 }, () => [r(), r() * 5 - 2]);
  const k = [0.1, 0.2, 0.4, 0.2, 0.1];
  const got = smooth(tf.tensor2d(x), { kind: 'fixed', kernel: k }).arraySync() as number[][];
  for (let i = 0; i < 9; i++) {
    for (let c = 0; c < 2; c++) {
      let want = 0;
      k.forEach((w, j) => (want += w * x[Math.min(8, Math.max(0, i + j - 2))]![c]!));
      t.true(Math.abs(got[i]![c]! - want) < 1e-5);
    }
  }
  const flat = smooth(tf.fill([7, 3], 2.5)).dataSync();
  t.true(flat.every((v) => Math.abs(v - 2.5) < 1e-6));
});

test('learned gate: equals X * sigmoid(conv1d(X)) computed with tf.conv1d, and gradients agree', (t) => {
  const x = tf.randomNormal([2, 11, 6], 0, 1, 'float32', 5);
  const kernel = tf.randomNormal([3, 6, 6], 0, 0.5, 'float32', 6);
  const bias = tf.randomNormal([6], 0, 0.5, 'float32', 7);
  const viaConv = (xx: tf.Tensor, kk: tf.Tensor): tf.Tensor => tf.mul(xx, tf.sigmoid(tf.add(tf.conv1d(xx as tf.Tensor3D, kk as tf.Tensor3D, 1, 'same'), bias)));
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(smooth(x, { kind: 'gate', kernel, bias }), viaConv(x, kernel)))).dataSync()[0]!);
  t.true(diff < 1e-5);
  const probe = tf.randomNormal([2, 11, 6], 0, 1, 'float32', 8);
  const [gx1, gk1] = tf.grads((xx: tf.Tensor, kk: tf.Tensor) => tf.sum(tf.mul(smooth(xx, { kind: 'gate', kernel: kk, bias }), probe)))([x, kernel]);
  const [gx2, gk2] = tf.grads((xx: tf.Tensor, kk: tf.Tensor) => tf.sum(tf.mul(viaConv(xx, kk), probe)))([x, kernel]);
  const rel = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! / tf.max(tf.abs(b)).dataSync()[0]!);
  t.true(rel(gx1!, gx2!) < 1e-5);
  t.true(rel(gk1!, gk2!) < 1e-5);
  // Unbatched input gives the first item of the batch.
  const single = tf.tidy(() => tf.max(tf.abs(tf.sub(smooth(tf.squeeze(tf.slice(x, [0, 0, 0], [1, -1, -1]), [0]), { kind: 'gate', kernel, bias }), tf.squeeze(tf.slice(smooth(x, { kind: 'gate', kernel, bias }), [0, 0, 0], [1, -1, -1]), [0])))).dataSync()[0]!);
  t.true(single < 1e-6);
});

test('bad inputs get typed errors naming the argument', (t) => {
  t.throws(() => smooth(tf.zeros([4])), { instanceOf: BadInputError, message: /^X: expected rank 2 or 3/ });
  t.throws(() => smooth(tf.zeros([0, 4])), { instanceOf: BadInputError, message: /^X: is empty/ });
  t.throws(() => smooth(tf.tensor2d([[Number.NaN]])), { instanceOf: BadInputError, message: /^X: contains NaN/ });
  t.throws(() => smooth(tf.zeros([3, 4]), { kind: 'fixed', kernel: [0.5, 0.5] }), { instanceOf: BadConfigError, message: /^kernel: must have odd length/ });
  t.throws(() => smooth(tf.zeros([3, 4]), { kind: 'gate', kernel: tf.zeros([3, 4, 5]) }), { instanceOf: BadConfigError, message: /^kernel: must have shape \[3, 4, 4\]/ });
  t.throws(() => smooth(tf.zeros([3, 4]), { kind: 'gate', kernel: tf.zeros([3, 4, 4]), bias: tf.zeros([5]) }), { instanceOf: BadInputError, message: /^bias:/ });
});

test('no tensor leaks; a one-step segment works', (t) => {
  const x = tf.randomNormal([1, 4]);
  const kernel = tf.randomNormal([3, 4, 4]);
  const before = tf.memory().numTensors;
  smooth(x).dispose();
  smooth(x, { kind: 'gate', kernel }).dispose();
  tf.grad((k: tf.Tensor) => tf.sum(smooth(x, { kind: 'gate', kernel: k })))(kernel).dispose();
  t.is(tf.memory().numTensors, before);
});
