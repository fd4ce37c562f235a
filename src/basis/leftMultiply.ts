import * as tf from '@tensorflow/tfjs';

/**
 * A X for a matrix A `[R, K]` and X `[K, e]` or a batch `[b, K, e]` -> `[R, e]` / `[b, R, e]`.
 * The batch is folded into columns so the product is one untransposed rank-2 matMul (the only
 * fast case on wasm).
 */
export function leftMultiply(a: tf.Tensor2D, x: tf.Tensor): tf.Tensor {
  if (x.rank === 2) return tf.matMul(a, x as tf.Tensor2D);
  const [b, k, e] = x.shape as [number, number, number];
  // One item: the same product on a rank-2 view (2 kernels fewer than the transposes).
  if (b === 1) return tf.tidy(() => tf.reshape(tf.matMul(a, tf.reshape(x, [k, e]) as tf.Tensor2D), [1, a.shape[0], e]));
  return tf.tidy(() => {
    const cols = tf.reshape(tf.transpose(x, [1, 0, 2]), [k, b * e]);
    const y = tf.matMul(a, cols as tf.Tensor2D);
    return tf.transpose(tf.reshape(y, [a.shape[0], b, e]), [1, 0, 2]);
  });
}
