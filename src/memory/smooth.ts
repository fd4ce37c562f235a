/**
 * Smoothing of the memory input (DESIGN §2.1; the paper's "convolution, stride 1, width 3").
 *
 * - `gate` (learned, the model's default, as in the reference): X' = X * sigmoid(conv(X)) with
 *   a width-3 convolution e -> e, zero-padded. Written as three shifted untransposed matMuls
 *   rather than conv1d: the same function, fast on wasm, with gradients everywhere.
 * - `fixed`: per-channel weighted moving average with a fixed odd kernel (default
 *   [1/4, 1/2, 1/4]), edges replicated so a constant signal stays constant.
 */
import * as tf from '@tensorflow/tfjs';
import { BadConfigError } from '../errors.js';
import { requireDim, requireFinite, requireFiniteArray, requireTensor } from '../validate.js';

/** Learned gate weights: `kernel` `[3, e, e]` (conv1d layout [width, in, out]), optional `bias` `[e]`. */
export interface SmoothGateOptions {
  kind: 'gate';
  kernel: tf.Tensor;
  bias?: tf.Tensor;
}

/** Fixed smoothing kernel (odd length, default [0.25, 0.5, 0.25]). */
export interface SmoothFixedOptions {
  kind: 'fixed';
  kernel?: readonly number[];
}

export type SmoothOptions = SmoothGateOptions | SmoothFixedOptions;

export const DEFAULT_SMOOTHING_KERNEL: readonly number[] = [0.25, 0.5, 0.25];

/** Shifts along the time axis (-2) by one step, zero-filled: prev[i] = X[i-1], next[i] = X[i+1]. */
function shifted(x: tf.Tensor, by: 1 | -1): tf.Tensor {
  const axis = x.rank - 2;
  const len = x.shape[axis]!;
  const zeros = tf.zerosLike(tf.slice(x, new Array<number>(x.rank).fill(0), x.shape.map((d, i) => (i === axis ? 1 : d))));
  if (len === 1) return zeros;
  const begin = new Array<number>(x.rank).fill(0);
  const size = x.shape.map((d, i) => (i === axis ? len - 1 : d));
  if (by === 1) return tf.concat([zeros, tf.slice(x, begin, size)], axis);
  begin[axis] = 1;
  return tf.concat([tf.slice(x, begin, size), zeros], axis);
}

/** Multiplies the last axis by W `[e, e']` as one rank-2 matMul. */
function project(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  const e = x.shape[x.rank - 1]!;
  const y = tf.matMul(tf.reshape(x, [-1, e]) as tf.Tensor2D, w as tf.Tensor2D);
  return tf.reshape(y, [...x.shape.slice(0, -1), w.shape[1]!]);
}

/** Smooths X `[L, e]` or `[b, L, e]`; same shape out. Differentiable in X and the gate weights. */
export function smooth(x: tf.Tensor, options: SmoothOptions = { kind: 'fixed' }): tf.Tensor {
  requireTensor('X', x, [2, 3]);
  requireFinite('X', x);
  const e = x.shape[x.rank - 1]!;
  if (options.kind === 'gate') {
    requireTensor('kernel', options.kernel, [3]);
    if (options.kernel.shape.join() !== [3, e, e].join()) {
      throw new BadConfigError('kernel', `must have shape [3, ${e}, ${e}], got [${options.kernel.shape.join(', ')}]`);
    }
    if (options.bias !== undefined) {
      requireTensor('bias', options.bias, [1]);
      requireDim('bias', options.bias, 0, e, 'model width e');
    }
    const { kernel, bias } = options;
    return tf.tidy(() => {
      const w = tf.unstack(kernel);
      let conv = tf.add(tf.add(project(shifted(x, 1), w[0]!), project(x, w[1]!)), project(shifted(x, -1), w[2]!));
      if (bias !== undefined) conv = tf.add(conv, bias);
      return tf.mul(x, tf.sigmoid(conv));
    });
  }
  if (options.kind !== 'fixed') throw new BadConfigError('kind', `must be 'gate' or 'fixed', got ${String((options as { kind: unknown }).kind)}`);
  const k = options.kernel ?? DEFAULT_SMOOTHING_KERNEL;
  requireFiniteArray('kernel', k);
  if (k.length % 2 !== 1) throw new BadConfigError('kernel', `must have odd length, got ${k.length}`);
  const half = (k.length - 1) / 2;
  return tf.tidy(() => {
    const axis = x.rank - 2;
    const len = x.shape[axis]!;
    const edge = (at: number): tf.Tensor => tf.slice(x, x.shape.map((_, i) => (i === axis ? at : 0)), x.shape.map((d, i) => (i === axis ? 1 : d)));
    const parts: tf.Tensor[] = [];
    for (let i = 0; i < half; i++) parts.push(edge(0));
    parts.push(x);
    for (let i = 0; i < half; i++) parts.push(edge(len - 1));
    const padded = tf.concat(parts, axis);
    let out: tf.Tensor | undefined;
    k.forEach((w, j) => {
      const term = tf.mul(tf.slice(padded, x.shape.map((_, i) => (i === axis ? j : 0)), x.shape), w);
      out = out === undefined ? term : tf.add(out, term);
    });
    return out!;
  });
}
