/**
 * Basis fitting (DESIGN §2.3): the continuous signal X(t) = B^T psi(t) whose coefficients
 * B = G^T X are the multivariate ridge regression of the L samples X on the basis.
 */
import * as tf from '@tensorflow/tfjs';
import type { GaussianBasis } from '../basis/gaussianBasis.js';
import { leftMultiply } from '../basis/leftMultiply.js';
import { ridgeTransposed } from '../basis/ridgeOperator.js';
import { BadConfigError } from '../errors.js';
import { requireFinite, requireTensor } from '../validate.js';

/** Options of {@link fitBasis}. */
export interface FitBasisOptions {
  basis: GaussianBasis;
  /** Ridge penalty. Default 0.5. */
  lambda?: number;
  /** Zero-padding as in the reference (default true); see {@link RidgeOptions.pad}. */
  pad?: boolean;
}

/**
 * Fits `X` (`[L, e]`, or a batch `[b, L, e]`) sampled at t_i = (i - 1/2)/L: returns
 * B `[N, e]` (or `[b, N, e]`). The caller owns B.
 */
export function fitBasis(x: tf.Tensor, options: FitBasisOptions): tf.Tensor {
  requireTensor('X', x, [2, 3]);
  if (options?.basis === undefined) throw new BadConfigError('basis', 'a GaussianBasis is required');
  requireFinite('X', x);
  return fitUnchecked(x, options);
}

/** {@link fitBasis} without its checks (a NaN scan is a host round trip): the model's hot path. */
export function fitUnchecked(x: tf.Tensor, options: FitBasisOptions): tf.Tensor {
  const length = x.shape[x.rank - 2]!;
  const gt = ridgeTransposed({ basis: options.basis, length, lambda: options.lambda, pad: options.pad });
  return leftMultiply(gt, x);
}
