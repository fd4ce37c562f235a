/**
 * The model's trainable parameters: one named `tf.Variable` per tensor, in a fixed order (the
 * order of the weights file). Matrices are stored as `[in, out]` so every projection is an
 * untransposed `x @ W` (the fast case on wasm); the tied embedding is stored `[e, V]` for the
 * same reason: the LM head is `h @ E` and a lookup gathers columns.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from './config.js';

/** One parameter's name, shape and initialiser. */
export interface ParamSpec {
  name: string;
  shape: number[];
  init: 'normal' | 'zeros' | 'ones';
  /** Standard deviation for `normal`. */
  std?: number;
}

/** Parameters of one layer, by role. */
export interface LayerParams {
  ln1Gamma: tf.Variable;
  ln1Beta: tf.Variable;
  /** Query, key and value projections side by side: `[e, 3e]`. */
  wQKV: tf.Variable;
  /** Output projection of the short-term attention `[e, e]`. */
  wO: tf.Variable;
  /** Learned bias per head and distance `[H, 2L]` (relative positions only). */
  relBias?: tf.Variable;
  ltmWK?: tf.Variable;
  ltmWV?: tf.Variable;
  ltmWMu?: tf.Variable;
  ltmWSigma?: tf.Variable;
  ltmWO?: tf.Variable;
  /** Smoothing gate of the memory input `[3, e, e]` and its bias `[e]`. */
  gateKernel?: tf.Variable;
  gateBias?: tf.Variable;
  ln2Gamma: tf.Variable;
  ln2Beta: tf.Variable;
  ffnW1: tf.Variable;
  ffnB1: tf.Variable;
  ffnW2: tf.Variable;
  ffnB2: tf.Variable;
}

/** All parameters of a model. */
export interface ModelParams {
  /** Tied token embedding / LM head, `[e, V]`. */
  embedding: tf.Variable;
  layers: LayerParams[];
  lnFinalGamma: tf.Variable;
  lnFinalBeta: tf.Variable;
  classifierW?: tf.Variable;
  classifierB?: tf.Variable;
  /** Every variable by name, in file order. */
  byName: Map<string, tf.Variable>;
}

/**
 * Gain of the weight initialisation: a matrix with fan-in n starts as N(0, (gain / sqrt n)^2).
 * The gain is GPT-2's: 0.02 at its width 768 (0.02 sqrt 768 = 0.554, about PyTorch's default
 * 1 / sqrt 3 for linear layers). A fixed 0.02 (what GPT-2's code hard-wires) is far too small
 * at the widths this library runs (e = 32..256): at e = 64 the attention scores start ~12x
 * smaller than GPT-2's, attention is uniform and its gradients (products of two small matrices)
 * vanish, and training sits on a plateau. Measured on the sorting task (T = 64, e = 64, 300
 * Adam steps of 16 lines): 0.07 held-out accuracy with std 0.02 (stuck at the uniform guess),
 * 0.22 with this gain; at T = 512 with the long-term memory, see test/model/sortingLearning.
 */
export const INIT_GAIN = 0.02 * Math.sqrt(768);

/** The parameter list a config implies, in file order. */
export function paramSpecs(c: ModelConfig): ParamSpec[] {
  const e = c.width;
  const fanIn = (n: number): number => INIT_GAIN / Math.sqrt(n);
  const std = fanIn(e);
  // Residual output projections shrink with depth (GPT-2's scheme) so the stream stays O(1).
  const residual = 1 / Math.sqrt(2 * c.numLayers);
  const outStd = std * residual;
  // The tied embedding is also the LM head (logits = h E, fan-in e).
  const specs: ParamSpec[] = [{ name: 'embedding', shape: [e, c.vocabSize], init: 'normal', std }];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `layers.${l}.`;
    specs.push(
      { name: `${p}ln1.gamma`, shape: [e], init: 'ones' },
      { name: `${p}ln1.beta`, shape: [e], init: 'zeros' },
      { name: `${p}attn.wQKV`, shape: [e, 3 * e], init: 'normal', std },
      { name: `${p}attn.wO`, shape: [e, e], init: 'normal', std: outStd },
    );
    if (c.positions === 'relative') specs.push({ name: `${p}attn.relBias`, shape: [c.numHeads, 2 * c.segmentLength], init: 'zeros' });
    if (c.longTermMemory) {
      specs.push(
        { name: `${p}ltm.wK`, shape: [e, e], init: 'normal', std },
        { name: `${p}ltm.wV`, shape: [e, e], init: 'normal', std },
        { name: `${p}ltm.wMu`, shape: [c.numBasis], init: 'normal', std: fanIn(c.numBasis) },
        { name: `${p}ltm.wSigma`, shape: [c.numBasis], init: 'normal', std: fanIn(c.numBasis) },
        { name: `${p}ltm.wO`, shape: [e, e], init: 'normal', std: outStd },
        { name: `${p}ltm.gateKernel`, shape: [3, e, e], init: 'normal', std: fanIn(3 * e) },
        { name: `${p}ltm.gateBias`, shape: [e], init: 'zeros' },
      );
    }
    specs.push(
      { name: `${p}ln2.gamma`, shape: [e], init: 'ones' },
      { name: `${p}ln2.beta`, shape: [e], init: 'zeros' },
      { name: `${p}ffn.w1`, shape: [e, c.ffnWidth], init: 'normal', std },
      { name: `${p}ffn.b1`, shape: [c.ffnWidth], init: 'zeros' },
      { name: `${p}ffn.w2`, shape: [c.ffnWidth, e], init: 'normal', std: fanIn(c.ffnWidth) * residual },
      { name: `${p}ffn.b2`, shape: [e], init: 'zeros' },
    );
  }
  specs.push({ name: 'lnFinal.gamma', shape: [e], init: 'ones' }, { name: 'lnFinal.beta', shape: [e], init: 'zeros' });
  if (c.numLabels > 0) {
    specs.push({ name: 'classifier.w', shape: [e, c.numLabels], init: 'normal', std }, { name: 'classifier.b', shape: [c.numLabels], init: 'zeros' });
  }
  return specs;
}

/** Creates the variables, initialised from `seed` (the same seed gives the same weights). */
export function initParams(c: ModelConfig, seed: number): ModelParams {
  const vars = new Map<string, tf.Variable>();
  paramSpecs(c).forEach((s, i) => {
    const value = tf.tidy(() => {
      if (s.init === 'zeros') return tf.zeros(s.shape);
      if (s.init === 'ones') return tf.ones(s.shape);
      // tfjs takes an op seed of 0 for "no seed" (Math.random), so seed 0's first tensor was
      // random: give that one op seed another value, leaving every other seed's weights as they were.
      const opSeed = seed * 7919 + i;
      return tf.mul(tf.truncatedNormal(s.shape, 0, 1, 'float32', opSeed === 0 ? ZERO_SEED_SUBSTITUTE : opSeed), s.std ?? 0.02);
    });
    vars.set(s.name, tf.variable(value, true, `${s.name}#${nextId++}`));
    value.dispose();
  });
  return wrapParams(c, vars);
}

let nextId = 0;
/** Op seed used instead of 0 (which tfjs treats as unseeded); no `seed * 7919 + i` of a small model equals it. */
const ZERO_SEED_SUBSTITUTE = 0x5eed;

/** Groups named variables by role (the names must be those of {@link paramSpecs}). */
export function wrapParams(c: ModelConfig, vars: Map<string, tf.Variable>): ModelParams {
  const get = (name: string): tf.Variable => {
    const v = vars.get(name);
    if (v === undefined) throw new Error(`internal: parameter ${name} missing`);
    return v;
  };
  const opt = (name: string): tf.Variable | undefined => vars.get(name);
  const layers: LayerParams[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `layers.${l}.`;
    layers.push({
      ln1Gamma: get(`${p}ln1.gamma`),
      ln1Beta: get(`${p}ln1.beta`),
      wQKV: get(`${p}attn.wQKV`),
      wO: get(`${p}attn.wO`),
      relBias: opt(`${p}attn.relBias`),
      ltmWK: opt(`${p}ltm.wK`),
      ltmWV: opt(`${p}ltm.wV`),
      ltmWMu: opt(`${p}ltm.wMu`),
      ltmWSigma: opt(`${p}ltm.wSigma`),
      ltmWO: opt(`${p}ltm.wO`),
      gateKernel: opt(`${p}ltm.gateKernel`),
      gateBias: opt(`${p}ltm.gateBias`),
      ln2Gamma: get(`${p}ln2.gamma`),
      ln2Beta: get(`${p}ln2.beta`),
      ffnW1: get(`${p}ffn.w1`),
      ffnB1: get(`${p}ffn.b1`),
      ffnW2: get(`${p}ffn.w2`),
      ffnB2: get(`${p}ffn.b2`),
    });
  }
  return {
    embedding: get('embedding'),
    layers,
    lnFinalGamma: get('lnFinal.gamma'),
    lnFinalBeta: get('lnFinal.beta'),
    classifierW: opt('classifier.w'),
    classifierB: opt('classifier.b'),
    byName: vars,
  };
}
