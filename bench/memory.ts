/**
 * The memory stages on the current backend, at the library's streaming scale (N = M = 128,
 * L = 128, e = 128) and at the reference's (N = M = L = 512, e = 256): time per call and the
 * ratio of sticky to uniform contraction (both use one cached ridge operator; sticky reads the
 * old signal at fresh positions, Psi(s) B).
 */
import * as tf from '@tensorflow/tfjs';
import { contractMemory, continuousAttention, createRng, fitBasis, gaussianBasis, initBackend, smooth, stickyResample } from '../src/index.js';

function time(fn: () => void, reps: number): number {
  fn(); // warm caches and kernels
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / reps;
}

export async function run(): Promise<void> {
  const backend = await initBackend();
  const rows: Record<string, string | number>[] = [];
  for (const [n, l, e, widths] of [[128, 128, 128, [0.01, 0.02]], [512, 512, 256, [0.005, 0.01]]] as const) {
    const basis = gaussianBasis({ numBasis: n, widths });
    const x = tf.randomNormal([l, e]);
    const b = fitBasis(x, { basis });
    const q = tf.randomNormal([l, e]);
    const w = { wK: tf.randomNormal([e, e], 0, 0.05), wV: tf.randomNormal([e, e], 0, 0.05), wMu: tf.randomNormal([n], 0, 0.05), wSigma: tf.randomNormal([n], 0, 0.05), wO: tf.randomNormal([e, e], 0, 0.05) };
    const rng = createRng(1);
    const mass = new Float64Array(128).map((_, i) => 1 + Math.sin(i / 10));
    const reps = n === 512 ? 5 : 20;
    const tSmooth = time(() => smooth(x).dispose(), reps);
    const tFit = time(() => fitBasis(x, { basis }).dispose(), reps);
    const tUniform = time(() => contractMemory(b, x, { basis, numSamples: n }).dispose(), reps);
    const tSticky = time(() => contractMemory(b, x, { basis, numSamples: n, positions: stickyResample({ mass }, { numSamples: n, rng }) }).dispose(), reps);
    const tAttn = time(() => {
      const r = continuousAttention(b, q, w, { basis, numHeads: 4 });
      tf.dispose([r.context, r.mu, r.sigmaSq]);
    }, reps);
    rows.push({
      backend,
      'N=M': n,
      L: l,
      e,
      'smooth ms': tSmooth.toFixed(2),
      'fitBasis ms': tFit.toFixed(2),
      'contract uniform ms': tUniform.toFixed(2),
      'contract sticky ms': tSticky.toFixed(2),
      'sticky/uniform': (tSticky / tUniform).toFixed(1),
      [`attention (${l} queries) ms`]: tAttn.toFixed(2),
      'attention per query us': ((tAttn / l) * 1000).toFixed(1),
    });
    tf.dispose([x, b, q, ...Object.values(w)]);
  }
  console.table(rows);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
