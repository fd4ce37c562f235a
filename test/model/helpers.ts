// Small shared pieces of the model tests.
import * as tf from '@tensorflow/tfjs';
import { InfiniFormer } from '../../src/index.js';
import type { ModelConfig } from '../../src/index.js';

/** A tiny config: fast enough for exhaustive checks, big enough to exercise every part. */
export const TINY: Partial<ModelConfig> = {
  vocabSize: 23,
  width: 16,
  numHeads: 2,
  numLayers: 2,
  ffnWidth: 32,
  segmentLength: 8,
  numBasis: 8,
  basisWidths: [0.05, 0.1],
  numSamples: 8,
  stickyBins: 16,
  dropout: 0,
};

export function tinyModel(overrides: Partial<ModelConfig> = {}, seed = 1): InfiniFormer {
  return InfiniFormer.create({ ...TINY, ...overrides }, { seed });
}

/** Deterministic pseudo-random tokens. */
export function tokens(count: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: count }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % vocab;
  });
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Runs `segments` whole segments through one stream; returns the logits of each, flattened. */
export function runSegments(model: InfiniFormer, state: ReturnType<InfiniFormer['createState']>, toks: number[]): Float32Array[] {
  const L = model.config.segmentLength;
  const out: Float32Array[] = [];
  for (let s = 0; s * L < toks.length; s++) {
    const logits = model.run([state], [toks.slice(s * L, (s + 1) * L)]);
    out.push(logits.dataSync() as Float32Array);
    logits.dispose();
  }
  return out;
}

export function numTensors(): number {
  return tf.memory().numTensors;
}
