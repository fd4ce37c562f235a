import type { OperatorFunction } from 'rxjs';
import type * as tf from '@tensorflow/tfjs';
import { smooth as smoothSegment, type SmoothOptions } from '../src/memory/smooth.js';
import { mapFrames, type StageOptions } from './mapFrames.js';
import { replaced, type MemoryFrame } from './memoryFrame.js';

/**
 * Smooths each segment before it enters the memory (the ∞-former's width-3 convolution):
 * the fixed kernel by default, or the learned gate `{ kind: 'gate', kernel, bias }`.
 * In: segments `[L, e]` (tensors or frames). Out: frames whose `segment` is smoothed.
 *
 * @example
 * ```ts
 * segments$.pipe(smooth(), fitBasis({ basis }), contractMemory({ basis, tau: 0.5 }))
 * ```
 */
export function smooth(options: SmoothOptions & StageOptions = { kind: 'fixed' }): OperatorFunction<MemoryFrame | tf.Tensor, MemoryFrame> {
  return mapFrames(options, () => ({
    step: (frame) => ({ ...frame, segment: replaced(frame.segment, smoothSegment(frame.segment, options)) }),
  }));
}
