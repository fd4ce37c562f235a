import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { initBackend, currentBackend } from '../src/backend.js';
import { BadConfigError } from '../src/errors.js';
import { backendReady } from './helpers/backend.js';

// These tests switch backends: serial, and each restores the default it found.

/** Runs `compute` on wasm (this file's subject, whatever the default backend) and on cpu. */
async function wasmAndCpu<T>(compute: () => T): Promise<{ wasm: T; cpu: T }> {
  await backendReady;
  const previous = tf.getBackend();
  try {
    requireWasm(await initBackend({ backend: 'wasm' }));
    const wasm = compute();
    await tf.setBackend('cpu');
    const cpu = compute();
    return { wasm, cpu };
  } finally {
    await tf.setBackend(previous);
  }
}

function requireWasm(name: string): void {
  if (name !== 'wasm') throw new Error(`wasm backend could not be selected (got ${name})`);
}

test.serial('a backend is selected and logged once', async (t) => {
  const name = await backendReady;
  t.true(['tensorflow', 'wasm', 'cpu'].includes(name));
  t.is(currentBackend(), name);
  t.is(tf.getBackend(), name);
});

test.serial('an unknown backend name is a typed config error', async (t) => {
  const err = await t.throwsAsync(() => initBackend({ backend: 'gpu' as 'cpu' }), { instanceOf: BadConfigError });
  t.regex(err!.message, /backend/);
});

test.serial('a native thread count that is not a positive integer is a typed config error, and sets nothing', async (t) => {
  const before = process.env['TF_NUM_INTRAOP_THREADS'];
  for (const n of [0, 1.5, -2]) {
    const err = await t.throwsAsync(() => initBackend({ backend: 'cpu', nativeThreads: n }), { instanceOf: BadConfigError });
    t.regex(err!.message, /nativeThreads.*integer >= 1/);
  }
  t.is(process.env['TF_NUM_INTRAOP_THREADS'], before);
});

test.serial('wasm: transposed matMuls (the wrapper around wasm BatchMatMul) equal the cpu backend', async (t) => {
  const compute = (): number[][] => {
    const a = tf.randomNormal([3, 17, 9], 0, 1, 'float32', 1);
    const b = tf.randomNormal([3, 11, 9], 0, 1, 'float32', 2);
    const c = tf.randomNormal([3, 17, 11], 0, 1, 'float32', 3);
    const cases: [tf.Tensor, tf.Tensor, boolean, boolean][] = [
      [a, b, false, true],
      [a, c, true, false],
      [b, c, true, true],
      [tf.reshape(a, [51, 9]), tf.reshape(b, [33, 9]), false, true],
    ];
    const out = cases.map(([x, y, ta, tb]) => Array.from(tf.matMul(x, y, ta, tb).dataSync()));
    tf.dispose([a, b, c]);
    return out;
  };
  const { wasm, cpu } = await wasmAndCpu(compute);
  wasm.forEach((g, i) => {
    const worst = Math.max(...g.map((v, j) => Math.abs(v - cpu[i]![j]!)));
    t.true(worst < 1e-4, `case ${i}: ${worst}`);
  });
});

test.serial('wasm: gradients of gather (UnsortedSegmentSum) and conv1d (Conv2DBackpropFilter) match cpu', async (t) => {
  const compute = (): number[][] => {
    const table = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
    const ids = tf.tensor1d([2, 0, 2, 1], 'int32');
    const gTable = tf.grad((w: tf.Tensor) => tf.gather(w, ids).mul(tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8]])).sum())(table);
    const x = tf.tensor3d(Array.from({ length: 2 * 7 * 3 }, (_, i) => Math.sin(i)), [2, 7, 3]);
    const f = tf.tensor3d(Array.from({ length: 3 * 3 * 4 }, (_, i) => Math.cos(i)), [3, 3, 4]);
    const gF = tf.grad((w: tf.Tensor) => tf.conv1d(x, w as tf.Tensor3D, 1, 'same').square().sum())(f);
    const gF2 = tf.grad((w: tf.Tensor) => tf.conv1d(x, w as tf.Tensor3D, 2, 'valid').square().sum())(f);
    return [Array.from(gTable.dataSync()), Array.from(gF.dataSync()), Array.from(gF2.dataSync())];
  };
  const { wasm, cpu } = await wasmAndCpu(compute);
  t.deepEqual(wasm[0], [3, 4, 7, 8, 6, 8]); // row 0 <- dy[1], row 1 <- dy[3], row 2 <- dy[0] + dy[2]
  for (const k of [1, 2]) {
    wasm[k]!.forEach((v, i) => t.true(Math.abs(v - cpu[k]![i]!) < 1e-3 * (1 + Math.abs(cpu[k]![i]!)), `conv grad ${k}/${i}`));
  }
});
