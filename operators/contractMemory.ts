import type { OperatorFunction } from 'rxjs';
import * as tf from '@tensorflow/tfjs';
import { contractMemory as contract, type ContractMemoryOptions } from '../src/memory/contractMemory.js';
import { fitBasis as fitSegment } from '../src/memory/fitBasis.js';
import { mapFrames, type StageOptions } from './mapFrames.js';
import type { MemoryFrame } from './memoryFrame.js';
import { MemoryState } from './memoryState.js';

/** Options of the {@link contractMemory} operator. */
export interface ContractMemoryOperatorOptions extends Omit<ContractMemoryOptions, 'positions'>, StageOptions {
  /**
   * The memory to update, shared with `continuousAttention`. Default: a private one per
   * subscription (released on completion, error and unsubscribe). A given state is the
   * caller's to reset.
   */
  state?: MemoryState;
}

/**
 * The unbounded memory: absorbs each segment, fitting the first (or taking its `fit`) and
 * contracting the rest into the old memory at the frame's sticky `positions` (uniform when
 * absent). Emits every frame with `memory` `[N, e]` attached: same size however long the stream.
 *
 * @example
 * ```ts
 * segments$.pipe(smooth(), fitBasis({ basis }), contractMemory({ basis, tau: 0.5 }))
 *   .subscribe((f) => { use(f.memory); disposeFrame(f); });
 * ```
 */
export function contractMemory(options: ContractMemoryOperatorOptions): OperatorFunction<MemoryFrame | tf.Tensor, MemoryFrame> {
  return mapFrames(options, () => {
    const state = options.state ?? new MemoryState();
    return {
      step: (frame) => {
        const past = state.memory;
        const next =
          past === undefined
            ? (frame.fit?.clone() ?? fitSegment(frame.segment, options))
            : contract(past, frame.segment, { ...options, positions: frame.positions });
        state.absorb(frame.index, next);
        frame.memory?.dispose();
        return { ...frame, memory: tf.clone(next) };
      },
      teardown: options.state === undefined ? () => state.reset() : undefined,
    };
  });
}
