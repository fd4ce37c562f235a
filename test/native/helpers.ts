// Runs the same computation on the native (tensorflow) and wasm backends of one process and
// compares the outputs. tfjs moves a tensor's data between backends on first use, but these
// helpers build every input inside the computation so each backend starts from plain numbers.
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendName } from '../../src/index.js';

export const BACKENDS = ['tensorflow', 'wasm'] as const satisfies readonly BackendName[];
export type ParityBackend = (typeof BACKENDS)[number];
export type Outputs = Record<string, Float32Array>;

/**
 * Loads wasm, then the native backend; throws (failing the test file) when the native backend
 * is missing, with the command that builds it.
 */
export async function requireBothBackends(): Promise<void> {
  await initBackend({ backend: 'wasm' });
  try {
    await initBackend({ backend: 'tensorflow' });
  } catch (error) {
    throw new Error(`the native tensorflow backend is required by the parity tests and did not load; run \`npm run setup:native\` (${String(error)})`);
  }
}

/** Runs `compute` on each backend; returns the outputs' values per backend, leaving no tensors behind. */
export async function onEach(compute: () => Record<string, tf.Tensor>): Promise<Record<ParityBackend, Outputs>> {
  const result = {} as Record<ParityBackend, Outputs>;
  for (const name of BACKENDS) {
    await tf.setBackend(name);
    const values: Outputs = {};
    tf.tidy(() => {
      for (const [key, tensor] of Object.entries(compute())) values[key] = Float32Array.from(tensor.dataSync());
    });
    result[name] = values;
  }
  return result;
}

/** Per output: the largest |native - wasm|, absolute and relative to the largest |wasm value|. */
export function compare(outputs: Record<ParityBackend, Outputs>): Record<string, { absolute: number; relative: number }> {
  const report: Record<string, { absolute: number; relative: number }> = {};
  const native = outputs.tensorflow;
  const wasm = outputs.wasm;
  const keys = new Set([...Object.keys(native), ...Object.keys(wasm)]);
  for (const key of keys) {
    const a = native[key];
    const b = wasm[key];
    if (a === undefined || b === undefined || a.length !== b.length || a.length === 0) {
      report[key] = { absolute: Infinity, relative: Infinity };
      continue;
    }
    let absolute = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      const d = Math.abs(a[i]! - b[i]!);
      // NaN anywhere must fail, so NaN propagates instead of being ignored by Math.max.
      absolute = Number.isNaN(d) || Number.isNaN(absolute) ? NaN : Math.max(absolute, d);
      scale = Math.max(scale, Math.abs(b[i]!));
    }
    report[key] = { absolute, relative: Number.isNaN(absolute) ? NaN : absolute / Math.max(scale, 1e-30) };
  }
  return report;
}

/** `count` pseudo-random byte tokens from a linear congruential generator seeded with `seed`. */
export function lcgTokens(count: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: count }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s >>> 24;
  });
}

/** Largest |a[i] - b[i]|; Infinity when the lengths differ or both are empty. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length || a.length === 0) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
