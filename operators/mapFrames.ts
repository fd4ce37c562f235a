import { Observable, type Observer, type OperatorFunction } from 'rxjs';
import * as tf from '@tensorflow/tfjs';
import { asFrame, disposeFrame, type MemoryFrame } from './memoryFrame.js';

/** A frame that could not be processed, with the reason. */
export interface FrameFailure {
  error: unknown;
  frame: MemoryFrame;
}

/** Options every stage operator takes. */
export interface StageOptions {
  /**
   * Where frames that fail (bad shape, NaN ...) go, with the error; the stream then goes on.
   * The receiver owns the failed frame's tensors. Default: none, and the stream errors.
   */
  deadLetter?: Partial<Observer<FrameFailure>>;
}

/**
 * The shared body of the stage operators: wraps bare tensors into frames, applies `step` to
 * each frame in order, routes failures to the dead-letter observer (or errors), and runs
 * `teardown` on completion, error and unsubscribe.
 */
export function mapFrames(
  options: StageOptions,
  setup: () => { step: (frame: MemoryFrame) => MemoryFrame; teardown?: () => void },
): OperatorFunction<MemoryFrame | tf.Tensor, MemoryFrame> {
  return (source) =>
    new Observable<MemoryFrame>((subscriber) => {
      const { step, teardown } = setup();
      let index = 0;
      const sub = source.subscribe({
        next(input) {
          // A synchronous source keeps emitting until subscribe() returns, even after the
          // downstream unsubscribed (public RxJS operators cannot chain the close upstream).
          // A stage owns what it receives: free it, and do no work for a closed subscriber.
          if (subscriber.closed) {
            if (input instanceof tf.Tensor) input.dispose();
            else if (input !== null && typeof input === 'object') disposeFrame(input);
            return;
          }
          let frame: MemoryFrame;
          try {
            frame = asFrame(input, index++);
          } catch (error) {
            subscriber.error(error);
            return;
          }
          let out: MemoryFrame;
          try {
            out = step(frame);
          } catch (error) {
            if (options.deadLetter?.next !== undefined) options.deadLetter.next({ error, frame });
            else {
              disposeFrame(frame);
              subscriber.error(error);
            }
            return;
          }
          subscriber.next(out);
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => {
        sub.unsubscribe();
        teardown?.();
      };
    });
}
