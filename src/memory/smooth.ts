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

/**
 * The learned gate X * sigmoid(conv(X)) of X `[b, L, e]` without checks (the model's hot path):
 * one zero-padded copy and two slices give the shifted inputs (the zero-filled shifts
 * prev[i] = X[i-1] and next[i] = X[i+1], in 3 kernels instead of 8), and the three products run on rank-2 views.
 */
export function gateUnchecked(x: tf.Tensor, kernel: tf.Tensor | readonly tf.Tensor[], bias: tf.Tensor | undefined): tf.Tensor {
  return tf.tidy(() => {
    const x3 = x.rank === 3 ? x : tf.expandDims(x, 0);
    const [b, len, e] = x3.shape as [number, number, number];
    // The kernel [3, e, e], or its three [e, e] parts already split (the model keeps them).
    const w = kernel instanceof tf.Tensor ? tf.unstack(kernel) : kernel;
    const padded = tf.pad(x3, [[0, 0], [1, 1], [0, 0]]);
    const flat = (t: tf.Tensor): tf.Tensor2D => tf.reshape(t, [b * len, e]);
    const prev = flat(tf.slice(padded, [0, 0, 0], [b, len, e]));
    const next = flat(tf.slice(padded, [0, 2, 0], [b, len, e]));
    const xf = flat(x3);
    let conv = tf.add(tf.add(tf.matMul(prev, w[0]! as tf.Tensor2D), tf.matMul(xf, w[1]! as tf.Tensor2D)), tf.matMul(next, w[2]! as tf.Tensor2D));
    if (bias !== undefined) conv = tf.add(conv, bias);
    return tf.reshape(tf.mul(xf, tf.sigmoid(conv)), x.shape);
  });
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
    return gateUnchecked(x, options.kernel, options.bias);
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
