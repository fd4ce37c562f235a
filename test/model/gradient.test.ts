import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { weightedCrossEntropy } from '../../src/index.js';
import type { InfiniFormer, StreamState } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { tinyModel, tokens } from './helpers.js';

test.before(async () => {
  await backendReady;
});

/**
 * The loss of a training-mode forward of the third segment, after two segments have built a
 * memory: every parameter group is on the path (the gate through the contraction, the memory
 * read, the KL term through sigma^2).
 */
function lossFn(model: InfiniFormer, states: StreamState[], input: number[][], target: Int32Array[]): () => tf.Scalar {
  return () => {
    const out = model.forwardChunk(states, input, { training: true });
    const ce = weightedCrossEntropy(out.logits, target);
    return tf.add(ce, tf.mul(out.kl, model.config.klWeight)) as tf.Scalar;
  };
}

for (const positions of ['rotary', 'relative'] as const) {
  test(`gradients of every parameter group match central finite differences (${positions}, sticky)`, (t) => {
    const model = tinyModel({ vocabSize: 11, width: 8, numHeads: 2, ffnWidth: 16, segmentLength: 4, numBasis: 4, basisWidths: [0.1, 0.2], numSamples: 4, stickyBins: 8, sticky: true, klWeight: 0.05, positions }, 2);
    // Weights far from the small init, so every group has a sizeable gradient to check.
    let k = 1;
    for (const [name, v] of model.params.byName) {
      const isGain = name.endsWith('gamma');
      v.assign(tf.tidy(() => tf.add(tf.randomNormal(v.shape, 0, isGain ? 0.1 : 0.3, 'float32', k++), isGain ? 1 : 0)));
    }
    const L = model.config.segmentLength;
    const toks = tokens(L * 3 + 1, 11, 21);
    const states = [model.createState(1), model.createState(2)];
    for (let s = 0; s < 2; s++) model.run(states, [toks.slice(s * L, s * L + L), toks.slice(s * L + 1, s * L + L + 1)]).dispose();
    const input = [toks.slice(2 * L, 3 * L), toks.slice(2 * L + 1, 3 * L + 1)];
    const target = input.map((row) => Int32Array.from(row, (x) => (x * 3 + 1) % 11));
    const f = lossFn(model, states, input, target);
    const vars = [...model.params.byName.entries()];
    const { value, grads } = tf.variableGrads(f, vars.map(([, v]) => v));
    value.dispose();
    // Central differences in float32: a step of 2e-3 balances rounding and curvature for every
    // group but w_mu, whose effect on the loss is tiny (wide densities) and nearly linear over a
    // large range: there the step is sized so the loss moves by about 2e-4 (rounding noise is
    // ~3e-7), between 0.05 and 1.
    const stepFor = (name: string, analytic: number): number => (name.endsWith('wMu') ? Math.min(1, Math.max(0.05, 2e-4 / Math.abs(analytic))) : 2e-3);
    const failures: string[] = [];
    let seed = 100;
    for (const [name, v] of vars) {
      if (name.startsWith('classifier')) continue;
      const g = grads[v.name];
      t.truthy(g, `${name} has a gradient`);
      // A random direction tilted toward the gradient's signs, so the directional derivative is
      // never vanishingly small by chance (a wrong magnitude or sign still shows).
      const dir = tf.tidy(() => tf.add(tf.randomNormal(v.shape, 0, 1, 'float32', seed++), tf.mul(tf.sign(g!), tf.abs(tf.randomNormal(v.shape, 0, 1, 'float32', seed++)))));
      const analytic = tf.tidy(() => tf.sum(tf.mul(g!, dir)).dataSync()[0]!);
      const original = v.clone();
      const at = (scale: number): number => {
        v.assign(tf.tidy(() => tf.add(original, tf.mul(dir, scale))));
        return tf.tidy(() => f().dataSync()[0]!);
      };
      const eps = stepFor(name, analytic);
      // w_mu's large steps (up to 1) meet curvature: there the 5-point stencil (error O(h^4))
      // instead of the central difference (O(h^2)); measured on the relative/sticky case, the
      // central difference at h = 1 is 4 % low, the 5-point one within 0.7 % at h = 0.25-1.
      const numeric = name.endsWith('wMu') ? (-at(2 * eps) + 8 * at(eps) - 8 * at(-eps) + at(-2 * eps)) / (12 * eps) : (at(eps) - at(-eps)) / (2 * eps);
      v.assign(original);
      tf.dispose([original, dir]);
      const err = Math.abs(numeric - analytic);
      const tol = name.endsWith('wMu') ? 1e-6 : 2e-4;
      const ok = err <= 0.03 * Math.abs(analytic) + tol && Math.abs(analytic) > 5 * tol;
      t.log(`${name.padEnd(22)} analytic ${analytic.toExponential(3)} numeric ${numeric.toExponential(3)}`);
      if (!ok) failures.push(name);
    }
    t.deepEqual(failures, []);
    tf.dispose(Object.values(grads));
    states.forEach((s) => s.dispose());
    model.dispose();
  });
}
