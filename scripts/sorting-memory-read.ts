/**
 * Does the long-term memory keep what the sorting task needs? Fits the one-hot symbols of
 * sorting lines (T = 512) into the memory segment by segment, exactly as the model does with
 * its layer inputs (fit the first segment, contract the later ones), then reads it with one
 * fixed Gaussian density, and compares the read with the true symbol counts: the correlation,
 * and the accuracy of sorting by the read (not-yet-emitted symbols only). The density
 * N(0.5, 0.693) is what the continuous attention produces at initialisation (mu = sigmoid(0),
 * sigma^2 = softplus(0)). Prints figures; not a test.
 *
 *   npx tsx scripts/sorting-memory-read.ts
 */
import * as tf from '@tensorflow/tfjs';
import { contractMemory, fitBasis, gaussianBasis, initBackend, setLogLevel, sortingSequence, sortingTarget, SORT_SYMBOLS } from '../src/index.js';

setLogLevel('warn');
await initBackend();
const T = 512;
const LINES = 200;
const rows: [number, number, number[], number, boolean, number, number][] = [
  // L, N, widths, tau, pad, read mu, read sigma^2
  [128, 32, [0.05, 0.1], 0.75, true, 0.5, Math.log(2)],
  [128, 32, [0.05, 0.1], 0.75, true, 0.5, 0.05],
  [128, 32, [0.05, 0.1], 0.75, false, 0.5, Math.log(2)],
  [128, 32, [0.05, 0.1], 0.5, true, 0.5, Math.log(2)],
  [128, 64, [0.02, 0.04], 0.75, true, 0.5, Math.log(2)],
];
for (const [L, N, widths, tau, pad, mu, sigmaSq] of rows) {
  const basis = gaussianBasis({ numBasis: N, widths });
  const fit = { basis, lambda: 1, pad };
  let correct = 0;
  let correlation = 0;
  for (let line = 0; line < LINES; line++) {
    const seq = sortingSequence(T, 5_000 + line);
    const oneHot = (from: number): tf.Tensor => tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from(seq.subarray(from, from + L)), 'int32'), SORT_SYMBOLS).toFloat());
    let memory = tf.tidy(() => fitBasis(oneHot(0), fit));
    for (let s = 1; s < T / L; s++) {
      const next = tf.tidy(() => contractMemory(memory, oneHot(s * L), { ...fit, tau, numSamples: N }));
      memory.dispose();
      memory = next;
    }
    const read = Array.from(tf.tidy(() => tf.matMul(basis.expectation(tf.tensor2d([[mu]]), tf.tensor2d([[sigmaSq]])), memory).dataSync()));
    memory.dispose();
    const counts = new Array<number>(SORT_SYMBOLS).fill(0);
    for (const s of seq) counts[s]! += 1;
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const [mr, mc] = [mean(read), mean(counts)];
    let sxy = 0;
    let sxx = 0;
    let syy = 0;
    for (let s = 0; s < SORT_SYMBOLS; s++) {
      sxy += (read[s]! - mr) * (counts[s]! - mc);
      sxx += (read[s]! - mr) ** 2;
      syy += (counts[s]! - mc) ** 2;
    }
    correlation += sxy / Math.sqrt(sxx * syy);
    const emitted = new Set<number>();
    for (const y of sortingTarget(seq)) {
      let best = -1;
      for (let s = 0; s < SORT_SYMBOLS; s++) if (!emitted.has(s) && (best < 0 || read[s]! > read[best]!)) best = s;
      if (best === y) correct += 1;
      emitted.add(y);
    }
  }
  console.log(
    `L ${L}, N ${N}, widths {${widths.join(', ')}}, tau ${tau}, pad ${pad}; read N(${mu}, ${sigmaSq.toFixed(3)}): ` +
      `correlation with the counts ${(correlation / LINES).toFixed(3)}, sorting by the read ${(correct / LINES / SORT_SYMBOLS).toFixed(3)}`,
  );
}
