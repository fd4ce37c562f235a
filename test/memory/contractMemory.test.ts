import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { gaussianBasis, fitBasis, reconstruct, contractMemory, centredPositions, stickyResample, createRng, BadInputError, BadConfigError } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { relL2, sampleSignal, sineSignals } from '../helpers/reference64.js';

test.before(async () => {
  await backendReady;
});

const L = 128;
const basis = gaussianBasis({ numBasis: 128, widths: [0.01, 0.02] });
const grid = (a: number, b: number, n: number): number[] => Array.from({ length: n }, (_, i) => a + ((b - a) * i) / (n - 1));

test('one contraction keeps the old signal (time-rescaled into [0, tau]) and adds the new one on [tau, 1]', (t) => {
  const tau = 0.5;
  const e = 16;
  const fOld = sineSignals(e, 31, 2);
  const fNew = sineSignals(e, 32, 2);
  const b0 = fitBasis(sampleSignal(fOld, centredPositions(L)), { basis });
  const b1 = contractMemory(b0, sampleSignal(fNew, centredPositions(L)), { basis, tau, numSamples: 128 });
  t.deepEqual(b1.shape, [128, e]);
  // Middle 80 % of [0, tau] and of [tau, 1].
  const oldTs = grid(0.1 * tau, 0.9 * tau, 401);
  const newTs = grid(tau + 0.1 * (1 - tau), tau + 0.9 * (1 - tau), 401);
  const oldErr = relL2(reconstruct(b1, oldTs, { basis }).dataSync(), oldTs.flatMap((s) => fOld(s / tau)));
  const newErr = relL2(reconstruct(b1, newTs, { basis }).dataSync(), newTs.flatMap((s) => fNew((s - tau) / (1 - tau))));
  t.log(`old part ${oldErr.toExponential(2)}, new part ${newErr.toExponential(2)} (relative L2)`);
  t.true(oldErr < 1e-2);
  t.true(newErr < 1e-2);
  tf.dispose([b0, b1]);
});

test('1,000 consecutive contractions: memory stays [N, e], bounded, and no tensors leak', (t) => {
  const e = 8;
  let b = fitBasis(sampleSignal(sineSignals(e, 1, 2), centredPositions(L)), { basis });
  // Pre-sample a pool of smooth segments; cycle through them (fresh signal each step).
  const pool = Array.from({ length: 16 }, (_, i) => sampleSignal(sineSignals(e, 100 + i, 2), centredPositions(L)));
  const warm = contractMemory(b, pool[0]!, { basis, numSamples: 128 });
  warm.dispose();
  const tensors = tf.memory().numTensors;
  const norms: number[] = [];
  const rms: number[] = [];
  const rmsOf = (bb: tf.Tensor): number => tf.tidy(() => tf.sqrt(tf.mean(tf.square(reconstruct(bb, grid(0, 1, 501), { basis })))).dataSync()[0]!);
  for (let step = 0; step < 1000; step++) {
    const next = contractMemory(b, pool[step % pool.length]!, { basis, tau: 0.5, numSamples: 128 });
    b.dispose();
    b = next;
    if (step % 100 === 99) {
      norms.push(tf.tidy(() => tf.norm(b).dataSync()[0]!));
      rms.push(rmsOf(b));
    }
  }
  t.deepEqual(b.shape, [128, e]);
  t.is(tf.memory().numTensors, tensors);
  const segmentRms = tf.tidy(() => tf.sqrt(tf.mean(tf.square(pool[0]!))).dataSync()[0]!);
  t.log(`||B||_F every 100 steps: ${norms.map((n) => n.toFixed(2)).join(' ')}`);
  t.log(`RMS of X(t) on [0, 1] every 100 steps: ${rms.map((n) => n.toFixed(3)).join(' ')}; RMS of one input segment: ${segmentRms.toFixed(3)}`);
  // Bounded: no growth from the first half of the run to the second, and the signal stays on
  // the scale of its inputs.
  const firstHalf = Math.max(...norms.slice(0, 5));
  t.true(norms.every((n) => Number.isFinite(n)));
  t.true(Math.max(...norms.slice(5)) <= 1.05 * firstHalf);
  t.true(rms.every((r) => r < 2 * segmentRms));
  // The last segment is still readable after 1,000 contractions.
  const last = pool[999 % pool.length]!;
  const ts = grid(0.55, 0.95, 101);
  const lastErr = relL2(reconstruct(b, ts, { basis }).dataSync(), tf.tidy(() => reconstruct(fitBasis(last, { basis, pad: false }), ts.map((s) => (s - 0.5) / 0.5), { basis }).dataSync()));
  t.log(`newest segment after 1,000 contractions: relative error ${lastErr.toExponential(2)}`);
  t.true(lastErr < 2e-2);
  tf.dispose([b, ...pool]);
});

test('given positions: contraction at uniform positions passed explicitly equals the default', (t) => {
  const x = sampleSignal(sineSignals(4, 5), centredPositions(L));
  const b0 = fitBasis(x, { basis });
  const byDefault = contractMemory(b0, x, { basis, numSamples: 64 });
  const explicit = contractMemory(b0, x, { basis, numSamples: 64, positions: centredPositions(64) });
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(byDefault, explicit))).dataSync()[0]!);
  t.true(diff < 1e-5);
  tf.dispose([x, b0, byDefault, explicit]);
});

test('sticky positions: the old signal is read at s_m and laid at tau (m - 1/2)/M, stretching the attended region', (t) => {
  // A narrow feature at t = 0.3 (sd 0.015); attention around it (sd 0.05) draws the samples there.
  const e = 4;
  const tau = 0.5;
  const f = (s: number): number[] => Array.from({ length: e }, (_, c) => Math.exp(-((s - 0.3) ** 2) / (2 * 0.015 ** 2)) * (c + 1));
  const b0 = fitBasis(sampleSignal(f, centredPositions(L)), { basis, pad: false });
  const fresh = tf.zeros([L, e]);
  const m = 64;
  const sticky = stickyResample({ mu: tf.tensor1d([0.3]), sigmaSq: tf.tensor1d([0.05 ** 2]) }, { numSamples: m, rng: createRng(3), numBins: 64 });
  const bSticky = contractMemory(b0, fresh, { basis, numSamples: m, tau, positions: sticky });
  const bUniform = contractMemory(b0, fresh, { basis, numSamples: m, tau });
  // The paper's rule, computed from f itself: at the laid position tau (m - 1/2)/M the memory
  // holds f(s_m) (interior of [0, tau], away from the padding and the new segment's edge).
  const inner = Array.from(sticky.keys()).filter((i) => i >= 8 && i < m - 8);
  const laid = inner.map((i) => (tau * (i + 0.5)) / m);
  const err = relL2(reconstruct(bSticky, laid, { basis }).dataSync(), inner.flatMap((i) => f(sticky[i]!)));
  // Share of [0, tau] where channel 0 is above half its peak: sticky stretches the feature.
  const ts = grid(0, tau, 1001);
  const share = (b: tf.Tensor): number => {
    const v = tf.tidy(() => tf.slice(reconstruct(b, ts, { basis }), [0, 0], [-1, 1]).dataSync());
    return v.filter((x) => x > 0.5).length / ts.length;
  };
  const [sU, sS] = [share(bUniform), share(bSticky)];
  // Uniform keeps the geometry: the half-maximum width 2.355 * 0.015 shrinks by tau, a share of
  // ~0.035 (a little more after the ridge fit's smoothing).
  t.log(`sticky read-back error ${err.toExponential(2)} (relative L2); share above half peak: uniform ${sU.toFixed(3)}, sticky ${sS.toFixed(3)}`);
  t.true(err < 0.1);
  t.true(sU > 0.03 && sU < 0.06);
  t.true(sS > 4 * sU);
  tf.dispose([b0, fresh, bUniform, bSticky]);
});

test('batched contraction with per-item positions equals item-by-item contraction', (t) => {
  const xs = [1, 2].map((s) => sampleSignal(sineSignals(4, s), centredPositions(L)));
  const bs = xs.map((x) => fitBasis(x, { basis }));
  const pos = [createRng(1), createRng(2)].map((rng) => stickyResample({ mass: [1, 2, 3, 4] }, { numSamples: 16, rng }));
  const together = contractMemory(tf.stack(bs), tf.stack(xs), { basis, numSamples: 16, positions: pos });
  bs.forEach((b, i) => {
    const alone = contractMemory(b, xs[i]!, { basis, numSamples: 16, positions: pos[i]! });
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.squeeze(tf.slice(together, [i, 0, 0], [1, -1, -1]), [0]), alone))).dataSync()[0]!);
    t.true(diff < 1e-5);
  });
  const uniformTogether = contractMemory(tf.stack(bs), tf.stack(xs), { basis, numSamples: 16 });
  t.deepEqual(uniformTogether.shape, [2, 128, 4]);
});

test('bad inputs get typed errors naming the argument', (t) => {
  const b = tf.zeros([128, 4]);
  const x = tf.zeros([L, 4]);
  t.throws(() => contractMemory(tf.zeros([64, 4]), x, { basis }), { instanceOf: BadInputError, message: /^Bpast: dimension -2 must be 128/ });
  t.throws(() => contractMemory(b, tf.zeros([L, 5]), { basis }), { instanceOf: BadInputError, message: /^X: dimension -1 must be 4/ });
  t.throws(() => contractMemory(b, tf.zeros([L]), { basis }), { instanceOf: BadInputError, message: /^X: expected rank 2/ });
  t.throws(() => contractMemory(b, tf.zeros([0, 4]), { basis }), { instanceOf: BadInputError, message: /^X: is empty/ });
  t.throws(() => contractMemory(b, tf.fill([L, 4], Number.NaN), { basis }), { instanceOf: BadInputError, message: /^X: contains NaN/ });
  t.throws(() => contractMemory(b, x, { basis, tau: 1 }), { instanceOf: BadConfigError, message: /^tau:/ });
  t.throws(() => contractMemory(b, x, { basis, numSamples: -3 }), { instanceOf: BadConfigError, message: /^numSamples:/ });
  t.throws(() => contractMemory(b, x, { basis, numSamples: 3, positions: [0.1, 0.2] }), { instanceOf: BadInputError, message: /^positions: must hold/ });
  t.throws(() => contractMemory(b, x, { basis, numSamples: 2, positions: [0.5, 0.2] }), { instanceOf: BadInputError, message: /^positions: .*sorted/ });
  t.throws(() => contractMemory(b, x, { basis, numSamples: 2, positions: [0.5, 1.2] }), { instanceOf: BadInputError, message: /^positions: .*outside/ });
});
