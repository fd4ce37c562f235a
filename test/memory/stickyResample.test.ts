import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { erf } from 'mathjs';
import { stickyResample, stickyMass, createRng, BadConfigError, BadInputError } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';

test.before(async () => {
  await backendReady;
});

const cdf = (x: number, m: number, s2: number): number => 0.5 * (1 + (erf((x - m) / Math.sqrt(2 * s2)) as number));

/** Upper 0.1 % point of chi-square with k degrees of freedom (Wilson-Hilferty). */
const chi2Critical = (k: number): number => k * (1 - 2 / (9 * k) + 3.0902 * Math.sqrt(2 / (9 * k))) ** 3;

test('the sticky histogram is the normalised sum over heads and queries of normal-CDF differences', (t) => {
  const mu = [[0.2, 0.8], [0.5, 1.1]];
  const v = [[0.001, 0.01], [0.04, 0.02]];
  const d = 32;
  const got = stickyMass(tf.tensor2d(mu), tf.tensor2d(v), d);
  const want = new Float64Array(d);
  mu.flat().forEach((m, i) => {
    const s2 = v.flat()[i]!;
    for (let j = 0; j < d; j++) want[j]! += cdf((j + 1) / d, m, s2) - cdf(j / d, m, s2);
  });
  const total = want.reduce((a, b) => a + b, 0);
  let worst = 0;
  for (let j = 0; j < d; j++) worst = Math.max(worst, Math.abs(got[j]! - want[j]! / total));
  t.log(`worst absolute difference ${worst.toExponential(2)}`);
  t.true(worst < 1e-6);
  t.true(Math.abs(got.reduce((a, b) => a + b, 0) - 1) < 1e-12);
});

test('a seed reproduces positions exactly; another seed does not; RNG state round-trips', (t) => {
  const source = { mass: [0.1, 0.5, 0.2, 0.2] };
  const a = stickyResample(source, { numSamples: 100, rng: createRng(42) });
  const b = stickyResample(source, { numSamples: 100, rng: createRng(42) });
  const c = stickyResample(source, { numSamples: 100, rng: createRng(43) });
  t.deepEqual(Array.from(a), Array.from(b));
  t.notDeepEqual(Array.from(a), Array.from(c));
  const rng = createRng(7);
  rng.next();
  const saved = rng.getState();
  const first = stickyResample(source, { numSamples: 50, rng });
  rng.setState(saved);
  t.deepEqual(Array.from(stickyResample(source, { numSamples: 50, rng })), Array.from(first));
});

test('1e5 samples follow the bin distribution (chi-square) and are uniform inside their bins; sorted, in [0, 1]', (t) => {
  const d = 128;
  const mass = stickyMass(tf.tensor1d([0.3, 0.75, 0.5]), tf.tensor1d([0.003, 0.01, 0.2]), d);
  const n = 100_000;
  const pos = stickyResample({ mass }, { numSamples: n, rng: createRng(2024) });
  t.is(pos.length, n);
  let sorted = true;
  let inRange = true;
  const counts = new Float64Array(d);
  const within = new Float64Array(10);
  for (let i = 0; i < n; i++) {
    const p = pos[i]!;
    if (i > 0 && p < pos[i - 1]!) sorted = false;
    if (!(p >= 0 && p <= 1)) inRange = false;
    const bin = Math.min(d - 1, Math.floor(p * d));
    counts[bin]!++;
    within[Math.min(9, Math.floor((p * d - bin) * 10))]!++;
  }
  t.true(sorted);
  t.true(inRange);
  // Chi-square over bins, merging bins whose expected count is below 5.
  let chi = 0;
  let dof = -1;
  let accObs = 0;
  let accExp = 0;
  for (let j = 0; j < d; j++) {
    accObs += counts[j]!;
    accExp += mass[j]! * n;
    if (accExp >= 5 || j === d - 1) {
      chi += (accObs - accExp) ** 2 / accExp;
      dof++;
      accObs = 0;
      accExp = 0;
    }
  }
  const chiWithin = within.reduce((s, c) => s + (c - n / 10) ** 2 / (n / 10), 0);
  t.log(`bins: chi2 = ${chi.toFixed(1)} with ${dof} dof (0.1 % critical ${chi2Critical(dof).toFixed(1)}); inside bins: chi2 = ${chiWithin.toFixed(1)} with 9 dof (critical ${chi2Critical(9).toFixed(1)})`);
  t.true(chi < chi2Critical(dof));
  t.true(chiWithin < chi2Critical(9), 'positions are spread uniformly inside their bins, not on an edge');
});

test('no mass inside [0, 1] falls back to uniform sampling', (t) => {
  const pos = stickyResample({ mass: [0, 0, 0, 0] }, { numSamples: 4000, rng: createRng(1) });
  const quarter = pos.filter((p) => p < 0.25).length;
  t.true(quarter > 800 && quarter < 1200);
});

test('bad inputs get typed errors naming the argument', (t) => {
  t.throws(() => stickyResample({ mass: [0.5, 0.5] }, { numSamples: 0, rng: createRng(1) }), { instanceOf: BadConfigError, message: /^numSamples:/ });
  t.throws(() => stickyResample({ mass: [0.5, 0.5] }, { numSamples: 2 } as never), { instanceOf: BadConfigError, message: /^rng:/ });
  t.throws(() => stickyResample({ mass: [0.5, Number.NaN] }, { numSamples: 2, rng: createRng(1) }), { instanceOf: BadInputError, message: /^mass:/ });
  t.throws(() => stickyResample({ mass: [] }, { numSamples: 2, rng: createRng(1) }), { instanceOf: BadInputError, message: /^mass: is empty/ });
  t.throws(() => stickyResample({ mass: [0.5, -0.1] }, { numSamples: 2, rng: createRng(1) }), { instanceOf: BadInputError, message: /^mass:/ });
  t.throws(() => stickyResample({ mu: tf.tensor1d([0.5]), sigmaSq: tf.tensor1d([-1]) }, { numSamples: 2, rng: createRng(1) }), { instanceOf: BadConfigError, message: /^sigmaSq:/ });
  t.throws(() => stickyResample({ mu: tf.tensor1d([]), sigmaSq: tf.tensor1d([]) }, { numSamples: 2, rng: createRng(1) }), { instanceOf: BadInputError, message: /^mu: is empty/ });
  t.throws(() => createRng(Number.NaN), { instanceOf: BadConfigError, message: /^seed:/ });
  t.throws(() => createRng(1).setState([1, 2]), { instanceOf: BadConfigError, message: /^state:/ });
});

test('no tensor leaks', (t) => {
  const mu = tf.tensor1d([0.4]);
  const v = tf.tensor1d([0.01]);
  const before = tf.memory().numTensors;
  stickyMass(mu, v, 16);
  stickyResample({ mu, sigmaSq: v }, { numSamples: 8, rng: createRng(1) });
  t.is(tf.memory().numTensors, before);
});
