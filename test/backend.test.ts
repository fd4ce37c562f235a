import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { initBackend, currentBackend } from '../src/backend.js';
import { BadConfigError } from '../src/errors.js';
import { backendReady } from './helpers/backend.js';

test('a backend is selected and logged once', async (t) => {
  const name = await backendReady;
  t.true(['tensorflow', 'wasm', 'cpu'].includes(name));
  t.is(currentBackend(), name);
  t.is(tf.getBackend(), name);
});

test('an unknown backend name is a typed config error', async (t) => {
  const err = await t.throwsAsync(() => initBackend({ backend: 'gpu' as 'cpu' }), { instanceOf: BadConfigError });
  t.regex(err!.message, /backend/);
});

test('wasm: transposed matMul equals the cpu backend', async (t) => {
  await backendReady;
  const a = tf.randomNormal([3, 17, 9], 0, 1, 'float32', 1);
  const b = tf.randomNormal([3, 11, 9], 0, 1, 'float32', 2);
  const c = tf.randomNormal([3, 17, 11], 0, 1, 'float32', 3);
  const cases: [tf.Tensor, tf.Tensor, boolean, boolean][] = [
    [a, b, false, true],
    [a, c, true, false],
    [b, c, true, true],
  ];
  const got = cases.map(([x, y, ta, tb]) => tf.matMul(x, y, ta, tb).arraySync());
  const backend = tf.getBackend();
  await tf.setBackend('cpu');
  const want = cases.map(([x, y, ta, tb]) => {
    const xc = tf.tensor(x.arraySync() as number[][][]);
    const yc = tf.tensor(y.arraySync() as number[][][]);
    return tf.matMul(xc, yc, ta, tb).arraySync();
  });
  await tf.setBackend(backend);
  const flat = (v: unknown): number[] => (v as number[][][]).flat(2);
  got.forEach((g, i) => {
    const w = flat(want[i]);
    flat(g).forEach((v, j) => t.true(Math.abs(v - w[j]!) < 1e-4, `case ${i} elem ${j}`));
  });
});

test('gradients of gather and conv1d work on the selected backend and match cpu', async (t) => {
  await backendReady;
  const compute = (): number[][] => {
    const table = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
    const ids = tf.tensor1d([2, 0, 2, 1], 'int32');
    const gTable = tf.grad((w: tf.Tensor) => tf.gather(w, ids).mul(tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8]])).sum())(table);
    const x = tf.tensor3d(Array.from({ length: 2 * 7 * 3 }, (_, i) => Math.sin(i)), [2, 7, 3]);
    const f = tf.tensor3d(Array.from({ length: 3 * 3 * 4 }, (_, i) => Math.cos(i)), [3, 3, 4]);
    const gF = tf.grad((w: tf.Tensor) => tf.conv1d(x, w as tf.Tensor3D, 1, 'same').square().sum())(f);
    return [Array.from(gTable.dataSync()), Array.from(gF.dataSync())];
  };
  const got = compute();
  const backend = tf.getBackend();
  await tf.setBackend('cpu');
  const want = compute();
  await tf.setBackend(backend);
  t.deepEqual(got[0], [3, 4, 7, 8, 6, 8]); // row 0 <- dy[1], row 1 <- dy[3], row 2 <- dy[0] + dy[2]
  got[1]!.forEach((v, i) => t.true(Math.abs(v - want[1]![i]!) < 1e-3 * (1 + Math.abs(want[1]![i]!)), `conv grad ${i}`));
});
