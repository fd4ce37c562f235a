import type { OperatorFunction } from 'rxjs';
import type * as tf from '@tensorflow/tfjs';
import { fitBasis as fitSegment, type FitBasisOptions } from '../src/memory/fitBasis.js';
import { mapFrames, type StageOptions } from './mapFrames.js';
import type { MemoryFrame } from './memoryFrame.js';

/**
 * Fits each segment on its own to the basis (ridge regression): attaches `fit` `[N, e]`, the
 * continuous signal of that segment alone. `contractMemory` uses it for the first segment.
 *
 * @example
 * ```ts
 * segments$.pipe(fitBasis({ basis })).subscribe((f) => console.log(f.fit!.shape)); // [N, e]
 * ```
 */
export function fitBasis(options: FitBasisOptions & StageOptions): OperatorFunction<MemoryFrame | tf.Tensor, MemoryFrame> {
  return mapFrames(options, () => ({
    step: (frame) => {
      const fit = fitSegment(frame.segment, options);
      frame.fit?.dispose();
      return { ...frame, fit };
    },
  }));
}
