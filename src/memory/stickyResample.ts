/**
 * Sticky memories (DESIGN §2.5): sample the old signal where the previous step attended, so
 * regions that were read often keep more resolution after contraction. The attention densities
 * N(mu, sigma^2) of all heads and queries are histogrammed into D bins of [0, 1]; M bins are
 * drawn from that histogram and a position is drawn uniformly inside each (the reference always
 * takes the bin's left edge, which collapses each bin to one point).
 */
import * as tf from '@tensorflow/tfjs';
import { binMass } from '../basis/gaussianBasis.js';
import { BadConfigError, BadInputError } from '../errors.js';
import { requireFiniteArray, requirePositiveInt } from '../validate.js';
import type { Rng } from './rng.js';
import { tidyData } from '../tidyData.js';

export const DEFAULT_STICKY_BINS = 128;

/** What the samples follow: a histogram, or the attention densities it comes from. */
export type StickySource =
  | { mass: ArrayLike<number> }
  | { mu: tf.Tensor; sigmaSq: tf.Tensor };

/** Options of {@link stickyResample}. */
export interface StickyResampleOptions {
  /** Number of positions M to draw. */
  numSamples: number;
  /** Number of bins D when the source is mu/sigmaSq. Default 128. */
  numBins?: number;
  /** The seeded generator (see {@link createRng}); it advances by 2M draws. */
  rng: Rng;
}

/**
 * The sticky histogram: mass of every N(mu, sigmaSq) (any shape: heads x queries, batch ...)
 * per bin of [0, 1], summed and normalised to 1. Falls back to uniform when no mass lands in
 * [0, 1] at all.
 */
export function stickyMass(mu: tf.Tensor, sigmaSq: tf.Tensor, numBins: number = DEFAULT_STICKY_BINS): Float64Array {
  const d = requirePositiveInt('numBins', numBins);
  const summed = tidyData(() => tf.sum(tf.reshape(binMass(mu, sigmaSq, d), [-1, d]), 0));
  return normalise(summed);
}

function normalise(mass: ArrayLike<number>): Float64Array {
  const out = Float64Array.from(mass as ArrayLike<number>);
  let total = 0;
  for (const v of out) {
    if (v < 0) throw new BadInputError('mass', 'bin masses must be non-negative');
    total += v;
  }
  if (!(total > 0)) return out.fill(1 / out.length);
  for (let i = 0; i < out.length; i++) out[i]! /= total;
  return out;
}

/** Draws M sorted positions in [0, 1] following the sticky histogram. */
export function stickyResample(source: StickySource, options: StickyResampleOptions): Float64Array {
  if (options?.rng === undefined || typeof options.rng.next !== 'function') throw new BadConfigError('rng', 'a seeded Rng is required (createRng(seed))');
  const m = requirePositiveInt('numSamples', options.numSamples);
  let mass: Float64Array;
  if ('mass' in source) {
    requireFiniteArray('mass', source.mass);
    mass = normalise(source.mass);
  } else if ('mu' in source && 'sigmaSq' in source) {
    mass = stickyMass(source.mu, source.sigmaSq, options.numBins ?? DEFAULT_STICKY_BINS);
  } else {
    throw new BadInputError('source', 'expected { mass } or { mu, sigmaSq }');
  }
  const d = mass.length;
  const cdf = new Float64Array(d);
  let acc = 0;
  for (let j = 0; j < d; j++) cdf[j] = acc += mass[j]!;
  const out = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    // Inverse-CDF draw of a bin (binary search), then a uniform position inside it.
    const u = options.rng.next() * acc;
    let lo = 0;
    let hi = d - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    out[i] = (lo + options.rng.next()) / d;
  }
  return out.sort();
}
