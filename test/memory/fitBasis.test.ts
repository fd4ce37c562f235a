import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { gaussianBasis, fitBasis, reconstruct, centredPositions, BadInputError, BadConfigError } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { relL2, sampleSignal, sineSignals } from '../helpers/reference64.js';

test.before(async () => {
  await backendReady;
});

const L = 128;
const basis = gaussianBasis({ numBasis: 128, widths: [0.01, 0.02] });
const grid = (a: number, b: number, n: number): number[] => Array.from({ length: n }, (_, i) => a + ((b - a) * i) / (n - 1));

function errorOn(b: tf.Tensor, f: (t: number) => number[], ts: number[]): number {
  const got = reconstruct(b, ts, { basis });
  const want = ts.map(f).flat();
  const err = relL2(got.dataSync(), want);
  got.dispose();
  return err;
}

test('fitBasis then reconstruct recovers sums of sines (N = L = 128, widths {0.01, 0.02}, lambda 0.5)', (t) => {
  const whole = grid(0, 1, 1001);
  const middle = grid(0.1, 0.9, 801);
  const ends = [...grid(0, 0.05, 51), ...grid(0.95, 1, 51)];
  for (const [e, seed] of [[8, 1], [16, 2], [32, 3], [64, 4]] as const) {
    const f = sineSignals(e, seed);
    const x = sampleSignal(f, centredPositions(L));
    const bFree = fitBasis(x, { basis, lambda: 0.5, pad: false });
    const bPad = fitBasis(x, { basis, lambda: 0.5, pad: true });
    t.deepEqual(bFree.shape, [128, e]);
    const freeWhole = errorOn(bFree, f, whole);
    const padMiddle = errorOn(bPad, f, middle);
    const padWhole = errorOn(bPad, f, whole);
    const freeEnds = errorOn(bFree, f, ends);
    const padEnds = errorOn(bPad, f, ends);
    // Just outside [0, 1] the padded fit decays toward zero; the unpadded one extrapolates.
    const outside = [-0.02, 1.02];
    const magFree = tf.tidy(() => tf.norm(reconstruct(bFree, outside, { basis })).dataSync()[0]!);
    const magPad = tf.tidy(() => tf.norm(reconstruct(bPad, outside, { basis })).dataSync()[0]!);
    t.log(
      `e=${e}: unpadded whole ${freeWhole.toExponential(2)}; padded [0.1,0.9] ${padMiddle.toExponential(2)}, whole ${padWhole.toExponential(2)}; ` +
        `edge errors (t in [0,0.05] and [0.95,1]) unpadded ${freeEnds.toExponential(2)} padded ${padEnds.toExponential(2)}; ` +
        `|X(-0.02), X(1.02)| unpadded ${magFree.toFixed(3)} padded ${magPad.toFixed(3)} (ratio ${(magFree / magPad).toFixed(2)})`,
    );
    t.true(freeWhole < 1e-2, `unpadded whole-interval error ${freeWhole}`);
    t.true(padMiddle < 1e-2, `padded interior error ${padMiddle}`);
    t.true(padEnds > freeEnds, 'padding pulls the fit toward zero at the ends');
    t.true(magPad < magFree, 'padded reconstruction is smaller just outside [0, 1]');
    tf.dispose([x, bFree, bPad]);
  }
});

test('batched [b, L, e] fits equal per-item fits', (t) => {
  const xs = [sineSignals(8, 7), sineSignals(8, 8), sineSignals(8, 9)].map((f) => sampleSignal(f, centredPositions(L)));
  const batch = tf.stack(xs);
  const together = fitBasis(batch, { basis });
  xs.forEach((x, i) => {
    const alone = fitBasis(x, { basis });
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.squeeze(tf.slice(together, [i, 0, 0], [1, -1, -1]), [0]), alone))).dataSync()[0]!);
    t.true(diff < 1e-5);
    alone.dispose();
  });
  const rec = reconstruct(together, [0.25, 0.5], { basis });
  t.deepEqual(rec.shape, [3, 2, 8]);
  tf.dispose([...xs, batch, together, rec]);
});

test('property: fitting is linear in X (fit(aX + bY) = a fit(X) + b fit(Y))', (t) => {
  for (let trial = 0; trial < 5; trial++) {
    const x = tf.randomNormal([L, 4], 0, 1, 'float32', 10 + trial);
    const y = tf.randomNormal([L, 4], 0, 1, 'float32', 20 + trial);
    const diff = tf.tidy(() => {
      const lhs = fitBasis(tf.add(tf.mul(x, 2.5), tf.mul(y, -1.5)), { basis });
      const rhs = tf.add(tf.mul(fitBasis(x, { basis }), 2.5), tf.mul(fitBasis(y, { basis }), -1.5));
      return tf.max(tf.abs(tf.sub(lhs, rhs))).dataSync()[0]! / tf.max(tf.abs(rhs)).dataSync()[0]!;
    });
    t.true(diff < 1e-5);
    tf.dispose([x, y]);
  }
});

test('bad inputs get typed errors naming the argument', (t) => {
  t.throws(() => fitBasis(tf.zeros([L]), { basis }), { instanceOf: BadInputError, message: /^X: expected rank 2 or 3/ });
  t.throws(() => fitBasis(tf.zeros([0, 4]), { basis }), { instanceOf: BadInputError, message: /^X: is empty/ });
  t.throws(() => fitBasis(tf.tensor2d([[1, Number.NaN]]), { basis }), { instanceOf: BadInputError, message: /^X: contains NaN/ });
  t.throws(() => fitBasis(tf.zeros([4, 4]), { basis, lambda: 0 }), { instanceOf: BadConfigError, message: /^lambda:/ });
  t.throws(() => fitBasis(tf.zeros([4, 4]), {} as never), { instanceOf: BadConfigError, message: /^basis:/ });
  t.throws(() => reconstruct(tf.zeros([64, 4]), [0.5], { basis }), { instanceOf: BadInputError, message: /^B: dimension -2 must be 128/ });
  t.throws(() => reconstruct(tf.zeros([128, 4]), [Number.POSITIVE_INFINITY], { basis }), { instanceOf: BadInputError, message: /^t:/ });
});

test('no tensor leaks (after the operator cache is warm)', (t) => {
  const x = tf.randomNormal([L, 4]);
  fitBasis(x, { basis }).dispose();
  const before = tf.memory().numTensors;
  const b = fitBasis(x, { basis });
  reconstruct(b, [0.1, 0.2], { basis }).dispose();
  fitBasis(tf.stack([x, x]), { basis }).dispose();
  t.throws(() => fitBasis(tf.tensor2d([[Number.NaN]]), { basis }));
  b.dispose();
  t.is(tf.memory().numTensors, before + 2); // the stack's input and the NaN tensor above
});
