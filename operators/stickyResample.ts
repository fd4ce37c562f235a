import type { OperatorFunction } from 'rxjs';
import type * as tf from '@tensorflow/tfjs';
import { BadInputError } from '../src/errors.js';
import { createRng, type Rng } from '../src/memory/rng.js';
import { stickyMass, stickyResample as drawPositions, DEFAULT_STICKY_BINS } from '../src/memory/stickyResample.js';
import { mapFrames, type StageOptions } from './mapFrames.js';
import type { MemoryFrame } from './memoryFrame.js';

/** Options of the {@link stickyResample} operator. */
export interface StickyResampleOperatorOptions extends StageOptions {
  /** Positions to draw per segment (M). */
  numSamples: number;
  /** Histogram bins D. Default 128. */
  numBins?: number;
  /** Seed of the stream's sampling; the same seed replays the same positions. Default 0. */
  seed?: number;
  /**
   * A generator to draw from instead of a private one seeded with `seed`, e.g. one shared by
   * the pipelines of several layers, drawn from in the model's order (layer 0, 1, ... per
   * segment), as `InfiniFormer` does with a stream's RNG. The caller owns its state.
   */
  rng?: Rng;
}

/**
 * Sticky memories: turns each frame's `attention` densities into `positions` where the memory
 * should be sampled when this segment is absorbed (more samples where attention looked).
 * Frames without densities (e.g. the first segment) pass unchanged.
 *
 * @example
 * ```ts
 * frames$.pipe(continuousAttention({ state, ... }), stickyResample({ numSamples: 128, seed: 1 }), contractMemory({ state, ... }))
 * ```
 */
export function stickyResample(options: StickyResampleOperatorOptions): OperatorFunction<MemoryFrame | tf.Tensor, MemoryFrame> {
  return mapFrames(options, () => {
    const rng = options.rng ?? createRng(options.seed ?? 0);
    return {
      step: (frame) => {
        if (frame.attention === undefined) return frame;
        const { mu, sigmaSq } = frame.attention;
        if (mu.isDisposed || sigmaSq.isDisposed) throw new BadInputError('attention', 'densities were disposed');
        const mass = stickyMass(mu, sigmaSq, options.numBins ?? DEFAULT_STICKY_BINS);
        return { ...frame, positions: drawPositions({ mass }, { numSamples: options.numSamples, rng }) };
      },
    };
  });
}
