import type { OperatorFunction } from 'rxjs';
import * as tf from '@tensorflow/tfjs';
import { continuousAttention as attend, type ContinuousAttentionOptions, type ContinuousAttentionWeights } from '../src/attention/continuousAttention.js';
import { BadInputError } from '../src/errors.js';
import { mapFrames, type StageOptions } from './mapFrames.js';
import type { MemoryFrame } from './memoryFrame.js';
import type { MemoryState } from './memoryState.js';

/** Options of the {@link continuousAttention} operator. */
export interface ContinuousAttentionOperatorOptions extends ContinuousAttentionOptions, StageOptions {
  weights: ContinuousAttentionWeights;
  /**
   * Read this shared memory (the one `contractMemory` updates) as it was before the frame's
   * segment: the ∞-former's order. Default: read the frame's own `memory` (a read-out of the
   * memory after the segment, e.g. with probe queries).
   */
  state?: MemoryState;
}

/**
 * Continuous attention of each frame's `queries` over the long-term memory: attaches `context`
 * `[Q, e]` and the densities `attention: { mu, sigmaSq }` `[H, Q]`. Frames with no memory to read
 * yet (the first segment) pass unchanged.
 *
 * @example
 * ```ts
 * const state = new MemoryState();
 * frames$.pipe(
 *   smooth(),
 *   continuousAttention({ state, basis, numHeads: 4, weights }),
 *   stickyResample({ numSamples: 128, seed: 1 }),
 *   contractMemory({ state, basis, tau: 0.5, numSamples: 128 }),
 * )
 * ```
 */
export function continuousAttention(options: ContinuousAttentionOperatorOptions): OperatorFunction<MemoryFrame | tf.Tensor, MemoryFrame> {
  return mapFrames(options, () => ({
    step: (frame) => {
      const memory = options.state !== undefined ? options.state.memoryBefore(frame.index) : frame.memory;
      if (memory === undefined) return frame;
      if (frame.queries === undefined) throw new BadInputError('queries', `frame ${frame.index} has no queries to attend with`);
      const out = attend(memory, frame.queries, options.weights, options);
      tf.dispose([frame.context, frame.attention?.mu, frame.attention?.sigmaSq].filter((t): t is tf.Tensor => t !== undefined));
      return { ...frame, context: out.context, attention: { mu: out.mu, sigmaSq: out.sigmaSq } };
    },
  }));
}
