import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { klRegularizer, BadConfigError, BadInputError } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { normalPdf, simpson } from '../helpers/reference64.js';

test.before(async () => {
  await backendReady;
});

test('equals the mean of KL(N(mu, sigma^2) || N(mu, sigma_0^2)) computed by quadrature', (t) => {
  const variances = [1e-4, 1e-3, 0.0025, 0.01, 0.3];
  const s0 = 0.05;
  const kl = variances.map((v) => {
    const half = 12 * Math.max(Math.sqrt(v), s0);
    return simpson((x) => {
      // log p - log q from the log-densities: the ratio of densities underflows in the tails.
      const logPdf = (var_: number): number => -((x - 0.4) ** 2) / (2 * var_) - 0.5 * Math.log(2 * Math.PI * var_);
      return normalPdf(x, 0.4, v) * (logPdf(v) - logPdf(s0 * s0));
    }, 0.4 - half, 0.4 + half, 200000);
  });
  const want = kl.reduce((a, b) => a + b, 0) / kl.length;
  const got = klRegularizer(tf.tensor1d(variances), { sigma0: s0 }).dataSync()[0]!;
  t.log(`KL per variance ${kl.map((k) => k.toFixed(4)).join(' ')}; mean ${want.toFixed(6)} vs ${got.toFixed(6)}`);
  t.true(Math.abs(got - want) < 1e-5 * Math.abs(want));
  // Zero exactly at sigma = sigma_0, and gradient d/dsigma^2 = (1/sigma_0^2 - 1/sigma^2) / 2 / count.
  t.true(Math.abs(klRegularizer(tf.tensor1d([s0 * s0])).dataSync()[0]!) < 1e-6);
  const g = tf.grad((v: tf.Tensor) => klRegularizer(v))(tf.tensor1d([0.001, 0.01])).dataSync();
  [0.001, 0.01].forEach((v, i) => t.true(Math.abs(g[i]! - (1 / (s0 * s0) - 1 / v) / 4) < 1e-3 * Math.abs(g[i]!)));
});

test('errors and leaks', (t) => {
  t.throws(() => klRegularizer(tf.tensor1d([])), { instanceOf: BadInputError, message: /^sigmaSq: is empty/ });
  t.throws(() => klRegularizer(tf.tensor1d([0.1]), { sigma0: 0 }), { instanceOf: BadConfigError, message: /^sigma0:/ });
  const v = tf.tensor2d([[0.01, 0.02]]);
  const before = tf.memory().numTensors;
  klRegularizer(v).dispose();
  t.is(tf.memory().numTensors, before);
});
