import * as tf from '@tensorflow/tfjs';
import { BadInputError } from '../src/errors.js';

/**
 * What the stage operators pass along: one segment and what the stages made of it. A frame owns
 * its tensors, and a stage owns every frame (or bare tensor) it receives: it passes it on, or
 * frees it (after an unsubscribe). An operator that replaces a field disposes the old tensor,
 * and whoever consumes frames at the end of a pipeline frees them with {@link disposeFrame}.
 */
export interface MemoryFrame {
  /** Segment number in the stream, from 0. */
  index: number;
  /** The memory input `[L, e]` (embeddings or a layer's inputs); `smooth` replaces it. */
  segment: tf.Tensor;
  /** This segment's projected queries `[Q, e]`, read by `continuousAttention`. */
  queries?: tf.Tensor;
  /** The basis fit of this segment alone `[N, e]` (`fitBasis`). */
  fit?: tf.Tensor;
  /** Continuous-attention output `[Q, e]` over the memory before this segment. */
  context?: tf.Tensor;
  /** Attention densities of this segment's queries, `[H, Q]` each. */
  attention?: { mu: tf.Tensor; sigmaSq: tf.Tensor };
  /** Sticky sample positions for absorbing this segment (`stickyResample`). */
  positions?: Float64Array;
  /** The memory after absorbing this segment `[N, e]` (`contractMemory`). */
  memory?: tf.Tensor;
}

/** Wraps a bare segment tensor into a frame (the frame takes ownership); frames pass through. */
export function asFrame(input: MemoryFrame | tf.Tensor, index: number): MemoryFrame {
  if (input instanceof tf.Tensor) return { index, segment: input };
  if (input === null || typeof input !== 'object' || !(input.segment instanceof tf.Tensor)) {
    throw new BadInputError('frame', 'expected a tensor or a MemoryFrame with a segment tensor');
  }
  return input;
}

/** Frees every tensor of a frame. */
export function disposeFrame(frame: MemoryFrame): void {
  const ts = [frame.segment, frame.queries, frame.fit, frame.context, frame.attention?.mu, frame.attention?.sigmaSq, frame.memory];
  for (const t of ts) if (t !== undefined && !t.isDisposed) t.dispose();
}

/** Replaces a tensor field, disposing the previous value when it is a different tensor. */
export function replaced(old: tf.Tensor | undefined, next: tf.Tensor): tf.Tensor {
  if (old !== undefined && old !== next && !old.isDisposed) old.dispose();
  return next;
}
