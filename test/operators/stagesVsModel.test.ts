// Acceptance 4: a pipeline of only the five stage operators, fed each segment's layer inputs
// and queries, yields the same long-term memory as the model's own update path.
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { from, identity, lastValueFrom, toArray, type OperatorFunction } from 'rxjs';
import { contractMemory, continuousAttention, disposeFrame, fitBasis, MemoryState, smooth, stickyResample, type MemoryFrame } from '../../operators/index.js';
import type { InfiniFormer, ModelConfig } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { maxAbsDiff, tinyModel, tokens as randomTokens } from '../model/helpers.js';

test.before(async () => {
  await backendReady;
});

const SEGMENTS = 6; // 1 fit + 4 contractions compared

/**
 * Runs the model segment by segment and records, per layer, each segment's layer inputs and
 * the memory the layer holds afterwards (the memory read during that segment).
 */
function modelPath(model: InfiniFormer, seed: number): { xs: tf.Tensor[][]; memories: (Float32Array | null)[][] } {
  const c = model.config;
  const L = c.segmentLength;
  const toks = randomTokens(L * SEGMENTS, c.vocabSize, 3);
  const state = model.createState(seed);
  const xs: tf.Tensor[][] = state.layers.map(() => []);
  const memories: (Float32Array | null)[][] = state.layers.map(() => []);
  for (let k = 0; k < SEGMENTS; k++) {
    model.run([state], [toks.slice(k * L, (k + 1) * L)]).dispose();
    state.layers.forEach((ls, li) => {
      xs[li]!.push(ls.prevX!.clone()); // this segment's layer inputs X_k [L, e]
      memories[li]!.push(ls.memory === null ? null : (ls.memory.dataSync().slice() as Float32Array)); // absorbed X_0 .. X_(k-1)
    });
  }
  state.dispose();
  return { xs, memories };
}

/** The five stage operators over one layer's segments, with that layer's weights. */
async function stagePath(model: InfiniFormer, layer: number, xs: tf.Tensor[], seed: number): Promise<Float32Array[]> {
  const c: Readonly<ModelConfig> = model.config;
  const lp = model.params.layers[layer]!;
  const e = c.width;
  const basis = model.basis!;
  const memory = new MemoryState();
  const frames = xs.slice(0, -1).map(
    (x, k): MemoryFrame => ({
      index: k,
      segment: x.clone(),
      // The layer's own queries: the first e columns of its QKV projection (no rotation: the LTM needs no positions).
      queries: tf.tidy(() => tf.matMul(x as tf.Tensor2D, tf.slice(lp.wQKV, [0, 0], [e, e]) as tf.Tensor2D)),
    }),
  );
  // Uniform memories (sticky off) sample the old signal on the uniform grid: no stickyResample.
  const sticky: OperatorFunction<MemoryFrame, MemoryFrame> = c.sticky ? stickyResample({ numSamples: c.numSamples, numBins: c.stickyBins, seed }) : identity;
  const out = await lastValueFrom(
    from(frames).pipe(
      smooth({ kind: 'gate', kernel: lp.gateKernel!, bias: lp.gateBias! }),
      fitBasis({ basis, lambda: c.ridgeLambda, pad: c.ridgePad }),
      continuousAttention({ state: memory, basis, numHeads: c.numHeads, eps: c.sigmaEps, weights: { wK: lp.ltmWK!, wV: lp.ltmWV!, wMu: lp.ltmWMu!, wSigma: lp.ltmWSigma!, wO: lp.ltmWO! } }),
      sticky,
      contractMemory({ state: memory, basis, lambda: c.ridgeLambda, pad: c.ridgePad, tau: c.tau, numSamples: c.numSamples }),
      toArray(),
    ),
  );
  const memories = out.map((f) => {
    const m = f.memory!.dataSync().slice() as Float32Array;
    disposeFrame(f);
    return m;
  });
  memory.reset();
  return memories;
}

for (const variant of [
  // One layer: the model draws each layer's sticky positions from one RNG per stream, so with one
  // layer the stage operator's seeded RNG sees the same draws.
  { name: 'sticky, 1 layer', overrides: { sticky: true, numLayers: 1 } },
  { name: 'uniform, 2 layers', overrides: { sticky: false, numLayers: 2 } },
]) {
  test(`acceptance 4 (${variant.name}): smooth -> fitBasis -> continuousAttention -> ${variant.overrides.sticky ? 'stickyResample -> ' : ''}contractMemory give the model's memory after every segment`, async (t) => {
    const model = tinyModel(variant.overrides);
    const seed = 9;
    const { xs, memories } = modelPath(model, seed);
    let worst = 0;
    let scale = 0;
    for (let layer = 0; layer < model.config.numLayers; layer++) {
      const staged = await stagePath(model, layer, xs[layer]!, seed);
      t.is(memories[layer]![0], null, 'no memory during the first segment');
      t.is(staged.length, SEGMENTS - 1);
      staged.forEach((m, k) => {
        const want = memories[layer]![k + 1]!; // the model's memory after absorbing X_0 .. X_k
        t.is(m.length, model.config.numBasis * model.config.width);
        worst = Math.max(worst, maxAbsDiff(m, want));
        scale = Math.max(scale, ...Array.from(want, Math.abs));
      });
    }
    t.log(`${variant.name}: max |stage operators - model| = ${worst.toExponential(2)} (memory entries up to ${scale.toFixed(2)})`);
    t.true(scale > 0.1, 'the memory is not trivially zero');
    t.true(worst <= 1e-5 * Math.max(1, scale));
    xs.flat().forEach((x) => x.dispose());
    model.dispose();
  });
}
