/**
 * Continuous attention over the long-term memory (DESIGN §2.6). Keys and values are linear maps
 * of the basis coefficients (K = B W_K, V = B W_V), so attending with a Gaussian density
 * N(mu, sigma^2) over t in [0, 1] has a closed form: E[psi_n] = N(mu; mu_n, sigma^2 + sigma_n^2)
 * and the context is z_h = V_h^T r. Every step is differentiable; autodiff gives exact gradients.
 */
import * as tf from '@tensorflow/tfjs';
import type { GaussianBasis } from '../basis/gaussianBasis.js';
import { BadConfigError } from '../errors.js';
import { requireDim, requireFinite, requirePositive, requirePositiveInt, requireTensor } from '../validate.js';

/** Trainable weights of the long-term attention. */
export interface ContinuousAttentionWeights {
  /** Key projection `[e, e]` (no bias). */
  wK: tf.Tensor;
  /** Value projection `[e, e]` (no bias). */
  wV: tf.Tensor;
  /** Maps the N scores to mu (through a sigmoid) `[N]`, shared by all heads (as trained in the paper). */
  wMu: tf.Tensor;
  /** Maps the N scores to sigma^2 (through softplus) `[N]`, shared by all heads. */
  wSigma: tf.Tensor;
  /** Output projection `[e, e]`; omitted: the concatenated heads are returned. */
  wO?: tf.Tensor;
}

/** Options of {@link continuousAttention}. */
export interface ContinuousAttentionOptions {
  basis: GaussianBasis;
  /** Number of heads H; must divide e. */
  numHeads: number;
  /** Floor of sigma^2. Default 1e-4 (sorting 1e-6). */
  eps?: number;
  /** Skip the argument checks (shape, NaN scans): for trusted hot loops. Default false. */
  unchecked?: boolean;
}

/** Result: the context and the per-head, per-query attention densities. */
export interface ContinuousAttentionResult {
  /** `[Q, e]` or `[b, Q, e]`. */
  context: tf.Tensor;
  /** Density means in (0, 1): `[H, Q]` or `[b, H, Q]`. */
  mu: tf.Tensor;
  /** Density variances: `[H, Q]` or `[b, H, Q]`. */
  sigmaSq: tf.Tensor;
}

export const DEFAULT_SIGMA_EPS = 1e-4;

/** [b, T, e] -> [b, H, T, d] */
function splitHeads(x: tf.Tensor, h: number): tf.Tensor {
  const [b, t, e] = x.shape as [number, number, number];
  return tf.transpose(tf.reshape(x, [b, t, h, e / h]), [0, 2, 1, 3]);
}

/**
 * Attends from `queries` (`[Q, e]` or `[b, Q, e]`, the host layer's own projected queries) to
 * the memory B (`[N, e]` or `[b, N, e]`). The caller owns every returned tensor.
 */
export function continuousAttention(
  b: tf.Tensor,
  queries: tf.Tensor,
  weights: ContinuousAttentionWeights,
  options: ContinuousAttentionOptions,
): ContinuousAttentionResult {
  if (options?.basis === undefined) throw new BadConfigError('basis', 'a GaussianBasis is required');
  const n = options.basis.numBasis;
  const h = requirePositiveInt('numHeads', options.numHeads);
  const eps = requirePositive('eps', options.eps ?? DEFAULT_SIGMA_EPS);
  if (options.unchecked !== true) {
    requireTensor('B', b, [2, 3]);
    requireTensor('queries', queries, [b.rank]);
    requireDim('B', b, -2, n, 'number of basis functions N');
    const e = b.shape[b.rank - 1]!;
    requireDim('queries', queries, -1, e, 'model width e of B');
    if (b.rank === 3) requireDim('queries', queries, 0, b.shape[0]!, 'batch size of B');
    if (e % h !== 0) throw new BadConfigError('numHeads', `must divide the model width ${e}, got ${h}`);
    for (const [name, w, shape] of [['wK', weights?.wK, [e, e]], ['wV', weights?.wV, [e, e]], ['wMu', weights?.wMu, [n]], ['wSigma', weights?.wSigma, [n]]] as const) {
      requireTensor(name, w, [shape.length]);
      shape.forEach((s, i) => requireDim(name, w, i, s, i === 0 && shape.length === 1 ? 'N' : 'e'));
    }
    if (weights.wO !== undefined) {
      requireTensor('wO', weights.wO, [2]);
      requireDim('wO', weights.wO, 0, e, 'e');
    }
    requireFinite('B', b);
    requireFinite('queries', queries);
  }
  const batched = b.rank === 3;
  const [context, mu, sigmaSq] = tf.tidy(() => {
    const bb = batched ? b : tf.expandDims(b, 0);
    const qq = batched ? queries : tf.expandDims(queries, 0);
    const [nb, q, e] = qq.shape as [number, number, number];
    const mem = memoryHeads(bb, weights.wK, weights.wV, h);
    const a = attendHeads(splitHeads(qq, h), mem, weights, options.basis, eps);
    const ctx = tf.reshape(a.context, [nb, q, e]);
    return batched ? [ctx, a.mu, a.sigmaSq] : [tf.squeeze(ctx, [0]), tf.squeeze(a.mu, [0]), tf.squeeze(a.sigmaSq, [0])];
  });
  return { context, mu, sigmaSq };
}

/** A memory's keys and values split into heads, `[b, H, N, d]` each. */
export interface MemoryHeads {
  keys: tf.Tensor;
  values: tf.Tensor;
}

/** Keys B W_K and values B W_V of memories B `[b, N, e]`, split into H heads. Unchecked (hot path). */
export function memoryHeads(b: tf.Tensor, wK: tf.Tensor, wV: tf.Tensor, h: number): MemoryHeads {
  const [nb, n, e] = b.shape as [number, number, number];
  const flat = tf.reshape(b, [nb * n, e]) as tf.Tensor2D;
  const heads = (w: tf.Tensor): tf.Tensor => tf.transpose(tf.reshape(tf.matMul(flat, w as tf.Tensor2D), [nb, n, h, e / h]), [0, 2, 1, 3]);
  return { keys: heads(wK), values: heads(wV) };
}

/**
 * Continuous attention from query heads `qh` `[b, H, Q, d]` (unrotated, unscaled) to memory
 * heads: the context `[b * Q, e]` (through wO when given) and the densities `[b, H, Q]`.
 * Unchecked and without reshapes it can avoid (the model's hot path; per-kernel cost dominates).
 */
export function attendHeads(
  qh: tf.Tensor,
  mem: MemoryHeads,
  weights: Pick<ContinuousAttentionWeights, 'wMu' | 'wSigma' | 'wO'>,
  basis: GaussianBasis,
  eps: number,
): { context: tf.Tensor; mu: tf.Tensor; sigmaSq: tf.Tensor } {
  const [nb, h, q, d] = qh.shape as [number, number, number, number];
  const n = basis.numBasis;
  const scores = tf.div(tf.matMul(qh, mem.keys, false, true), Math.sqrt(d)); // [b, H, Q, N]
  const flat = tf.reshape(scores, [-1, n]) as tf.Tensor2D;
  const muFlat = tf.sigmoid(tf.matMul(flat, tf.reshape(weights.wMu, [n, 1]) as tf.Tensor2D));
  const sigFlat = tf.maximum(tf.softplus(tf.matMul(flat, tf.reshape(weights.wSigma, [n, 1]) as tf.Tensor2D)), eps);
  const r = tf.reshape(basis.expectationOfColumns(muFlat, sigFlat), [nb, h, q, n]);
  const z = tf.matMul(r, mem.values); // [b, H, Q, d]
  let context = tf.reshape(tf.transpose(z, [0, 2, 1, 3]), [nb * q, h * d]);
  if (weights.wO !== undefined) context = tf.matMul(context as tf.Tensor2D, weights.wO as tf.Tensor2D);
  return { context, mu: tf.reshape(muFlat, [nb, h, q]), sigmaSq: tf.reshape(sigFlat, [nb, h, q]) };
}
