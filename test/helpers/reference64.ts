// Independent float64 references for the tests: plain loops, no tfjs.
import * as tf from '@tensorflow/tfjs';

export const normalPdf = (t: number, mu: number, variance: number): number =>
  Math.exp(-((t - mu) ** 2) / (2 * variance)) / Math.sqrt(2 * Math.PI * variance);

/** Composite Simpson's rule of f over [a, b] with `intervals` (even) sub-intervals. */
export function simpson(f: (t: number) => number, a: number, b: number, intervals: number): number {
  const n = intervals % 2 === 0 ? intervals : intervals + 1;
  const h = (b - a) / n;
  let s = f(a) + f(b);
  for (let i = 1; i < n; i++) s += (i % 2 === 1 ? 4 : 2) * f(a + i * h);
  return (s * h) / 3;
}

/** A small deterministic generator for test data (independent of the library's Rng). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

export function toArray2(x: tf.Tensor): number[][] {
  return x.arraySync() as number[][];
}

/** max |a - b| / max |b| over two equal-shaped arrays. */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs((a[i] as number) - (b[i] as number)));
    den = Math.max(den, Math.abs(b[i] as number));
  }
  return num / den;
}

/** Relative L2 error ||a - b|| / ||b||. */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += ((a[i] as number) - (b[i] as number)) ** 2;
    den += (b[i] as number) ** 2;
  }
  return Math.sqrt(num / den);
}

/**
 * Smooth test signals: channel c is a sum of sines with 1 to `maxPeriods` periods on [0, 1]
 * and random amplitudes and phases.
 */
export function sineSignals(channels: number, seed: number, maxPeriods = 3): (t: number) => number[] {
  const rand = lcg(seed);
  const terms = Array.from({ length: channels }, () =>
    Array.from({ length: maxPeriods }, (_, k) => ({ k: k + 1, a: 0.3 + rand(), phi: 2 * Math.PI * rand() })),
  );
  return (t) => terms.map((ts) => ts.reduce((s, { k, a, phi }) => s + a * Math.sin(2 * Math.PI * k * t + phi), 0));
}

export function sampleSignal(f: (t: number) => number[], positions: ArrayLike<number>): tf.Tensor2D {
  return tf.tensor2d(Array.from(positions as ArrayLike<number>, (t) => f(t)));
}
