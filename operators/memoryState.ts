import * as tf from '@tensorflow/tfjs';
import { BadInputError } from '../src/errors.js';

/**
 * The long-term memory shared by the stage operators of one stream: `contractMemory` writes
 * it, `continuousAttention` reads it. The ∞-former is recurrent (segment k's attention reads
 * the memory built from segments before k, and its densities decide how segment k is absorbed),
 * so the stages need this one handle. It checks frame order: a frame that reaches
 * `continuousAttention` before the previous frame was absorbed is an error, not a wrong answer.
 */
export class MemoryState {
  private current: tf.Tensor | undefined;
  private absorbed = 0;

  /** The memory after the segments absorbed so far (undefined before the first). Owned by the state. */
  get memory(): tf.Tensor | undefined {
    return this.current;
  }

  /** Number of segments absorbed. */
  get segments(): number {
    return this.absorbed;
  }

  /** Memory to read while processing segment `index`: must have absorbed exactly `index` segments. */
  memoryBefore(index: number): tf.Tensor | undefined {
    if (index !== this.absorbed) {
      throw new BadInputError('frame', `segment ${index} reached attention when the memory had absorbed ${this.absorbed} segments; keep the stage operators synchronous and in order`);
    }
    return this.current;
  }

  /** Installs the memory after segment `index` (takes ownership; frees the previous one). */
  absorb(index: number, memory: tf.Tensor): void {
    if (index !== this.absorbed) throw new BadInputError('frame', `segment ${index} absorbed out of order (expected ${this.absorbed})`);
    this.current?.dispose();
    this.current = tf.keep(memory);
    this.absorbed++;
  }

  /** Frees the memory and starts over. */
  reset(): void {
    this.current?.dispose();
    this.current = undefined;
    this.absorbed = 0;
  }
}
