import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { erf } from 'mathjs';
import { gaussianBasis, binMass, BadConfigError, BadInputError } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { normalPdf, simpson } from '../helpers/reference64.js';

test.before(async () => {
  await backendReady;
});

test('centres are N/|widths| points evenly spaced on [0, 1] inclusive, each with every width', (t) => {
  const basis = gaussianBasis({ numBasis: 12, widths: [0.01, 0.05, 0.1] });
  const centres = [0, 1 / 3, 2 / 3, 1];
  for (let c = 0; c < 4; c++) {
    for (let w = 0; w < 3; w++) {
      t.true(Math.abs(basis.centers[c * 3 + w]! - centres[c]!) < 1e-15);
      t.is(basis.sigmas[c * 3 + w], [0.01, 0.05, 0.1][w]);
    }
  }
});

test('evaluate gives the Gaussian densities psi_n(t)', (t) => {
  const basis = gaussianBasis({ numBasis: 8, widths: [0.05, 0.1] });
  const ts = [-0.1, 0, 0.17, 0.5, 0.93, 1.2];
  const got = basis.evaluate(ts).arraySync();
  ts.forEach((tt, i) => {
    for (let n = 0; n < 8; n++) {
      const want = normalPdf(tt, basis.centers[n]!, basis.sigmas[n]! ** 2);
      t.true(Math.abs(got[i]![n]! - want) <= 1e-5 * Math.max(want, 1e-3), `t=${tt} n=${n}: ${got[i]![n]} vs ${want}`);
    }
  });
});

test('expectation under N(mu, sigma^2) equals numeric quadrature to 1e-5 relative (mu in [0,1], sigma^2 in [1e-4, 1])', (t) => {
  const basis = gaussianBasis({ numBasis: 16, widths: [0.01, 0.05] });
  const mus = Array.from({ length: 11 }, (_, i) => i / 10);
  const variances = Array.from({ length: 9 }, (_, i) => 10 ** (-4 + i / 2));
  const muT: number[] = [];
  const varT: number[] = [];
  for (const m of mus) {
    for (const v of variances) {
      muT.push(m);
      varT.push(v);
    }
  }
  const got = basis.expectation(tf.tensor1d(muT), tf.tensor1d(varT)).arraySync() as number[][];
  let worst = 0;
  let compared = 0;
  muT.forEach((m0, i) => {
    let m = m0;
    // The function sees float32 inputs: integrate at exactly those values, so the comparison
    // measures the closed form's error rather than the rounding of 4/7 or 1e-4 to float32.
    const f = Math.fround;
    m = f(m);
    const v = f(varT[i]!);
    for (let n = 0; n < 16; n++) {
      const mn = f(basis.centers[n]!);
      const vn = f(f(basis.sigmas[n]!) ** 2);
      // The product of the two densities is a Gaussian bump: integrate over +-12 of its std.
      const pv = (v * vn) / (v + vn);
      const pm = (m * vn + mn * v) / (v + vn);
      const half = 12 * Math.sqrt(pv);
      const want = simpson((x) => normalPdf(x, m, v) * normalPdf(x, mn, vn), pm - half, pm + half, 4000);
      if (want < 1e-6) continue; // deep tails: float32 exp cannot be relatively exact there
      compared++;
      worst = Math.max(worst, Math.abs(got[i]![n]! - want) / want);
    }
  });
  t.log(`compared ${compared} values; worst relative error ${worst.toExponential(2)}`);
  t.true(compared > 800);
  t.true(worst < 1e-5, `worst relative error ${worst}`);
});

test('expectation is differentiable in mu and sigma^2 (finite differences in float64 of the closed form)', (t) => {
  const basis = gaussianBasis({ numBasis: 4, widths: [0.1, 0.2] });
  const mu = tf.tensor1d([0.3]);
  const v = tf.tensor1d([0.02]);
  const w = tf.tensor1d([1, -2, 0.5, 3]);
  const [gMu, gV] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(basis.expectation(a, b), w)))([mu, v]);
  const f = (m: number, vv: number): number =>
    [1, -2, 0.5, 3].reduce((s, wn, n) => s + wn * normalPdf(m, basis.centers[n]!, vv + basis.sigmas[n]! ** 2), 0);
  const h = 1e-6;
  const dMu = (f(0.3 + h, 0.02) - f(0.3 - h, 0.02)) / (2 * h);
  const dV = (f(0.3, 0.02 + h) - f(0.3, 0.02 - h)) / (2 * h);
  t.true(Math.abs(gMu!.dataSync()[0]! - dMu) < 1e-3 * Math.abs(dMu));
  t.true(Math.abs(gV!.dataSync()[0]! - dV) < 1e-3 * Math.abs(dV));
});

test('bin masses equal differences of the normal CDF', (t) => {
  const mu = tf.tensor2d([[0.2, 0.5, 0.97], [0, 1.3, -0.1]]);
  const v = tf.tensor2d([[1e-4, 0.01, 0.02], [0.5, 0.04, 1e-3]]);
  const got = binMass(mu, v, 16).arraySync() as number[][][];
  const cdf = (x: number, m: number, s2: number): number => 0.5 * (1 + (erf((x - m) / Math.sqrt(2 * s2)) as number));
  const ms = mu.arraySync();
  const vs = v.arraySync();
  let worst = 0;
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 3; j++) {
      for (let b = 0; b < 16; b++) {
        const want = cdf((b + 1) / 16, ms[i]![j]!, vs[i]![j]!) - cdf(b / 16, ms[i]![j]!, vs[i]![j]!);
        worst = Math.max(worst, Math.abs(got[i]![j]![b]! - want));
      }
    }
  }
  t.log(`worst absolute error ${worst.toExponential(2)}`);
  t.true(worst < 2e-6);
});

test('bad options and inputs get typed errors naming the argument', (t) => {
  t.throws(() => gaussianBasis({ numBasis: 0 }), { instanceOf: BadConfigError, message: /numBasis/ });
  t.throws(() => gaussianBasis({ numBasis: 7, widths: [0.1, 0.2] }), { instanceOf: BadConfigError, message: /numBasis.*multiple/ });
  t.throws(() => gaussianBasis({ numBasis: 4, widths: [0.1, -1] }), { instanceOf: BadConfigError, message: /widths\[1\]/ });
  t.throws(() => gaussianBasis({ numBasis: 4, widths: [] }), { instanceOf: BadConfigError, message: /widths/ });
  const basis = gaussianBasis({ numBasis: 4 });
  t.throws(() => basis.evaluate([0.1, Number.NaN]), { instanceOf: BadInputError, message: /^t: .*NaN/ });
  t.throws(() => basis.evaluate([]), { message: /^t: .*empty/ });
  t.throws(() => basis.evaluate(tf.zeros([2, 2])), { instanceOf: BadInputError, message: /^t: expected rank 1/ });
  t.throws(() => binMass(tf.tensor1d([0.5]), tf.tensor1d([0]), 8), { instanceOf: BadConfigError, message: /sigmaSq/ });
  t.throws(() => binMass(tf.tensor1d([Number.NaN]), tf.tensor1d([0.1]), 8), { instanceOf: BadInputError, message: /^mu:/ });
  t.throws(() => binMass(tf.tensor1d([0.5]), tf.tensor1d([0.1]), 0), { instanceOf: BadConfigError, message: /numBins/ });
  t.throws(() => binMass(tf.tensor1d([0.5]), tf.tensor1d([0.1, 0.2]), 4), { message: /sigmaSq/ });
});

test('no tensor leaks', (t) => {
  const basis = gaussianBasis({ numBasis: 8 });
  const mu = tf.tensor1d([0.3, 0.6]);
  const v = tf.tensor1d([0.01, 0.02]);
  const before = tf.memory().numTensors;
  basis.evaluate([0.1, 0.2]).dispose();
  basis.expectation(mu, v).dispose();
  binMass(mu, v, 8).dispose();
  t.throws(() => basis.evaluate([Number.NaN]));
  t.is(tf.memory().numTensors, before);
});
