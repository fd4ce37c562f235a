/** Evaluating the continuous memory signal X(t) = B^T psi(t) at arbitrary positions. */
import * as tf from '@tensorflow/tfjs';
import type { GaussianBasis } from '../basis/gaussianBasis.js';
import { leftMultiply } from '../basis/leftMultiply.js';
import { requireDim, requireFinite, requireTensor } from '../validate.js';

/** Options of {@link reconstruct}. */
export interface ReconstructOptions {
  basis: GaussianBasis;
}

/**
 * X(t) for B `[N, e]` (or `[b, N, e]`) at positions `t` (T numbers or a 1-D tensor):
 * `[T, e]` (or `[b, T, e]`). Positions outside [0, 1] are allowed (the signal decays there).
 */
export function reconstruct(b: tf.Tensor, t: tf.Tensor | ArrayLike<number>, options: ReconstructOptions): tf.Tensor {
  requireTensor('B', b, [2, 3]);
  requireDim('B', b, -2, options.basis.numBasis, 'number of basis functions N');
  requireFinite('B', b);
  return tf.tidy(() => leftMultiply(options.basis.evaluate(t), b));
}
