// The library's sticky contraction against a float64 numpy reference written from the paper's
// rule (scripts/fixtures/sticky_contraction.py -> fixtures/stickyContraction.json): read the old
// signal at the sticky positions s_m, lay the values at tau (m - 1/2)/M, the new segment on [tau, 1].
import test from 'ava';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { centredPositions, contractMemory, fitBasis, gaussianBasis, reconstruct } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { maxRelDiff, relL2 } from '../helpers/reference64.js';

test.before(async () => {
  await backendReady;
});

interface Case {
  numBasis: number;
  widths: number[];
  lambda: number;
  tau: number;
  length: number;
  samples: number[];
  newSegment: number[][];
  B1: number[][];
}
interface Fixture {
  ramp: Case & { B0: number[][]; probe: number[]; probeValues: number[] };
  random: Case & { Bpast: number[][] };
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/stickyContraction.json', import.meta.url), 'utf8')) as Fixture;
const TOL = 1e-4;

test('ramp X0(t) = t, sticky samples in [0.45, 0.55]: the window is stretched over [0, tau] as in the reference', (t) => {
  const c = fixture.ramp;
  const basis = gaussianBasis({ numBasis: c.numBasis, widths: c.widths });
  const b0 = fitBasis(tf.tensor2d(Array.from(centredPositions(c.length), (s) => [s])), { basis, lambda: c.lambda });
  const b1 = contractMemory(b0, tf.tensor2d(c.newSegment), { basis, lambda: c.lambda, tau: c.tau, numSamples: c.samples.length, positions: c.samples });
  const errB0 = maxRelDiff(b0.dataSync(), c.B0.flat());
  const errB1 = maxRelDiff(b1.dataSync(), c.B1.flat());
  const probes = Array.from(reconstruct(b1, c.probe, { basis }).dataSync());
  const errProbe = maxRelDiff(probes, c.probeValues);
  t.log(`fit B0 ${errB0.toExponential(2)}, contracted B1 ${errB1.toExponential(2)} (max|diff| / max|ref|), X at probes ${errProbe.toExponential(2)}`);
  t.log(`X(${c.probe.join(', ')}) = ${probes.map((v) => v.toFixed(4)).join(', ')}`);
  t.true(errB0 < TOL);
  t.true(errB1 < TOL);
  t.true(errProbe < TOL);
  // The acceptance: the attended window [0.45, 0.55] fills [0, tau]; nothing else is left.
  for (const v of probes) t.true(v > 0.4 && v < 0.56, `X = ${v}`);
  tf.dispose([b0, b1]);
});

test('random B, new segment and sorted samples (M != L, tau = 0.75): matches the reference', (t) => {
  const c = fixture.random;
  const basis = gaussianBasis({ numBasis: c.numBasis, widths: c.widths });
  const bPast = tf.tensor2d(c.Bpast);
  const x = tf.tensor2d(c.newSegment);
  const opts = { basis, lambda: c.lambda, tau: c.tau, numSamples: c.samples.length };
  const b1 = contractMemory(bPast, x, { ...opts, positions: c.samples });
  const want = c.B1.flat();
  const err = maxRelDiff(b1.dataSync(), want);
  t.log(`max|diff| / max|ref| ${err.toExponential(2)}, relative L2 ${relL2(b1.dataSync(), want).toExponential(2)}`);
  t.true(err < TOL);
  // The batched path (one positions array per stream) gives the same memory.
  const batched = contractMemory(tf.stack([bPast, bPast]), tf.stack([x, x]), { ...opts, positions: [c.samples, c.samples] });
  const errBatched = maxRelDiff(tf.tidy(() => tf.slice(batched, [1, 0, 0], [1, -1, -1]).dataSync()), want);
  t.log(`batched: ${errBatched.toExponential(2)}`);
  t.true(errBatched < TOL);
  tf.dispose([bPast, x, b1, batched]);
});
