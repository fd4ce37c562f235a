/** The LM loss: a mean weighted cross-entropy, on host arrays or (for compiled graphs) on tensors. */
import * as tf from '@tensorflow/tfjs';
import { BadInputError } from '../errors.js';

/**
 * Mean weighted cross-entropy (nats) of logits `[b, T, V]` against integer targets, and the
 * weight total. Differentiable in the logits.
 */
export function weightedCrossEntropy(logits: tf.Tensor, targets: readonly Int32Array[], weights?: readonly Float32Array[]): tf.Scalar {
  const flat = flatLossTargets(targets, weights, logits.shape[1]!);
  if (!(flat.total > 0)) throw new BadInputError('weights', 'all loss weights are zero');
  return tf.tidy(() => weightedCrossEntropyOf(logits, tf.tensor1d(flat.targets, 'int32'), tf.tensor1d(flat.weights), flat.total));
}

/** Per-stream rows of `t` targets and weights (default 1) as stream-major `[b * t]` arrays, and the weights' sum. */
export function flatLossTargets(targets: readonly Int32Array[], weights: readonly Float32Array[] | undefined, t: number): { targets: Int32Array; weights: Float32Array; total: number } {
  const flatTargets = new Int32Array(targets.length * t);
  const flatWeights = new Float32Array(targets.length * t).fill(1);
  targets.forEach((row, i) => flatTargets.set(row, i * t));
  weights?.forEach((row, i) => flatWeights.set(row, i * t));
  let total = 0;
  for (const w of flatWeights) total += w;
  return { targets: flatTargets, weights: flatWeights, total };
}

/**
 * {@link weightedCrossEntropy} on targets and weights already in tensors (`[b * T]`), divided
 * by `total` (the weights' sum; a scalar tensor when a compiled graph is fed it): tensor ops
 * only, so a compiled graph can stand in for it.
 */
export function weightedCrossEntropyOf(logits: tf.Tensor, targets: tf.Tensor1D, weights: tf.Tensor1D, total: number | tf.Scalar): tf.Scalar {
  const [b, t, v] = logits.shape as [number, number, number];
  const logp = tf.logSoftmax(tf.reshape(logits, [b * t, v]));
  const picked = tf.sum(tf.mul(logp, tf.oneHot(targets, v)), 1);
  return tf.div(tf.neg(tf.sum(tf.mul(picked, weights))), total) as tf.Scalar;
}
