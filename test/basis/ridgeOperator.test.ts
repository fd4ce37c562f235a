import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { identity, inv, matrix, multiply, add, transpose, type Matrix } from 'mathjs';
import { gaussianBasis, ridgeOperator, clearRidgeCache, BadConfigError, BadInputError, type GaussianBasis } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { normalPdf } from '../helpers/reference64.js';

test.before(async () => {
  await backendReady;
});

/** G = F^T (F F^T + lambda I)^{-1} in float64 with mathjs, F[n, i] = psi_n(t_i). */
function mathjsG(basis: GaussianBasis, positions: number[], lambda: number): number[][] {
  const f = matrix(Array.from(basis.centers, (mu, n) => positions.map((t) => normalPdf(t, mu, basis.sigmas[n]! ** 2))));
  const a = add(multiply(f, transpose(f)), multiply(identity(basis.numBasis), lambda)) as Matrix;
  return (multiply(transpose(f), inv(a)) as Matrix).toArray() as number[][];
}

function maxRel(got: number[][], want: number[][]): number {
  let num = 0;
  let den = 0;
  want.forEach((row, i) => row.forEach((w, j) => {
    num = Math.max(num, Math.abs(got[i]![j]! - w));
    den = Math.max(den, Math.abs(w));
  }));
  return num / den;
}

test('G equals F^T (F F^T + lambda I)^-1 computed in float64 by mathjs (no padding)', (t) => {
  const basis = gaussianBasis({ numBasis: 32, widths: [0.03, 0.06] });
  for (const length of [40, 33]) {
    const positions = Array.from({ length }, (_, i) => (i + 0.5) / length);
    const g = ridgeOperator({ basis, length, lambda: 0.5, pad: false });
    t.deepEqual(g.shape, [length, 32]);
    const err = maxRel(g.arraySync(), mathjsG(basis, positions, 0.5));
    t.log(`L=${length}: max |G - G_mathjs| / max |G_mathjs| = ${err.toExponential(2)}`);
    t.true(err < 1e-5);
    g.dispose();
  }
});

test('padding solves on the zero-padded grid over [-1/2, 3/2] and keeps the middle rows', (t) => {
  const basis = gaussianBasis({ numBasis: 32, widths: [0.03, 0.06] });
  for (const length of [40, 33]) {
    const pad = Math.ceil(length / 2);
    // Independent construction of the padded grid: same spacing 1/L, extended on both sides.
    const all = Array.from({ length: length + 2 * pad }, (_, i) => (i - pad + 0.5) / length);
    t.true(Math.abs(all[0]! - (0.5 - pad) / length) < 1e-15);
    t.true(all[0]! <= -0.5 + 1 / length && all[all.length - 1]! >= 1.5 - 1 / length);
    const want = mathjsG(basis, all, 0.5).slice(pad, pad + length);
    const g = ridgeOperator({ basis, length, lambda: 0.5, pad: true });
    const err = maxRel(g.arraySync(), want);
    t.log(`L=${length} padded: relative error ${err.toExponential(2)}`);
    t.true(err < 1e-5);
    // And it is a different operator from the unpadded one.
    const unpadded = ridgeOperator({ basis, length, lambda: 0.5, pad: false });
    t.true(maxRel(g.arraySync(), unpadded.arraySync()) > 1e-2);
    g.dispose();
    unpadded.dispose();
  }
});

test('narrow widths (a sparse band in F F^T) still match mathjs, padded and not, with unsorted positions', (t) => {
  const basis = gaussianBasis({ numBasis: 64, widths: [0.005, 0.01] });
  const r = (i: number): number => ((i * 7919) % 101) / 101; // a fixed shuffle of [0, 1)
  const positions = Array.from({ length: 101 }, (_, i) => r(i) + 0.5 / 101);
  const free = ridgeOperator({ basis, positions, lambda: 0.5, pad: false });
  const errFree = maxRel(free.arraySync(), mathjsG(basis, positions, 0.5));
  const length = 90;
  const pad = Math.ceil(length / 2);
  const all = Array.from({ length: length + 2 * pad }, (_, i) => (i - pad + 0.5) / length);
  const padded = ridgeOperator({ basis, length, lambda: 0.5, pad: true });
  const errPad = maxRel(padded.arraySync(), mathjsG(basis, all, 0.5).slice(pad, pad + length));
  t.log(`unsorted positions ${errFree.toExponential(2)}, padded ${errPad.toExponential(2)}`);
  t.true(errFree < 1e-5);
  t.true(errPad < 1e-5);
  tf.dispose([free, padded]);
});

test('explicit positions give the operator for those positions', (t) => {
  const basis = gaussianBasis({ numBasis: 16, widths: [0.05, 0.1] });
  const positions = [0.01, 0.2, 0.21, 0.5, 0.7, 0.71, 0.72, 0.99, 0.3, 0.4];
  const g = ridgeOperator({ basis, positions, lambda: 1, pad: false });
  t.true(maxRel(g.arraySync(), mathjsG(basis, positions, 1)) < 1e-5);
  g.dispose();
});

test('operators are cached; callers own what they get; no leaks', (t) => {
  const basis = gaussianBasis({ numBasis: 16, widths: [0.05, 0.1] });
  clearRidgeCache();
  const start = tf.memory().numTensors;
  const g1 = ridgeOperator({ basis, length: 20 });
  const cached = tf.memory().numTensors - start - 1; // the cache holds G^T
  t.is(cached, 1);
  g1.dispose();
  const before = tf.memory().numTensors;
  const g2 = ridgeOperator({ basis, length: 20 });
  g2.dispose();
  // A cold cache filled inside a caller's tidy: the cached operator must survive the tidy.
  tf.tidy(() => {
    ridgeOperator({ basis, length: 21 });
  });
  t.is(tf.memory().numTensors, before + 1);
  const again = ridgeOperator({ basis, length: 21 });
  t.is(again.shape[0], 21);
  again.dispose();
  ridgeOperator({ basis, positions: [0.1, 0.5, 0.9] }).dispose(); // uncached path
  t.is(tf.memory().numTensors, before + 1);
  clearRidgeCache();
  t.is(tf.memory().numTensors, start);
});

test('bad options get typed errors naming the option', (t) => {
  const basis = gaussianBasis({ numBasis: 8 });
  t.throws(() => ridgeOperator({ basis, length: 0 }), { instanceOf: BadConfigError, message: /^length:/ });
  t.throws(() => ridgeOperator({ basis, length: 8, lambda: -1 }), { instanceOf: BadConfigError, message: /^lambda:/ });
  t.throws(() => ridgeOperator({ basis, length: 8, lambda: Number.NaN }), { instanceOf: BadConfigError, message: /^lambda:/ });
  t.throws(() => ridgeOperator({ basis, positions: [0.1, Number.NaN] }), { instanceOf: BadInputError, message: /^positions:/ });
  t.throws(() => ridgeOperator({ basis, positions: [] }), { instanceOf: BadInputError, message: /^positions: .*empty/ });
  t.throws(() => ridgeOperator({ basis: undefined as unknown as GaussianBasis, length: 4 }), { instanceOf: BadConfigError, message: /^basis:/ });
});
