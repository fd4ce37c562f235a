/**
 * The training regulariser of the long-term attention (DESIGN §2.8): the KL divergence from
 * N(mu, sigma^2) to N(mu, sigma_0^2), which keeps densities from collapsing to a point:
 * KL = 1/2 (sigma^2 / sigma_0^2 - ln(sigma^2 / sigma_0^2) - 1), averaged over heads and queries.
 */
import * as tf from '@tensorflow/tfjs';
import { requirePositive, requireTensor } from '../validate.js';

/** Options of {@link klRegularizer}. */
export interface KlRegularizerOptions {
  /** Standard deviation of the reference density. Default 0.05. */
  sigma0?: number;
}

export const DEFAULT_KL_SIGMA0 = 0.05;

/** Mean KL over every element of `sigmaSq` (any shape); a scalar, differentiable. */
export function klRegularizer(sigmaSq: tf.Tensor, options: KlRegularizerOptions = {}): tf.Scalar {
  requireTensor('sigmaSq', sigmaSq, [0, 1, 2, 3, 4]);
  const s0 = requirePositive('sigma0', options.sigma0 ?? DEFAULT_KL_SIGMA0);
  return tf.tidy(() => {
    const ratio = tf.div(sigmaSq, s0 * s0);
    return tf.mean(tf.mul(tf.sub(tf.sub(ratio, tf.log(ratio)), 1), 0.5)) as tf.Scalar;
  });
}
