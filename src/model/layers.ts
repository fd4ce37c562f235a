/**
 * Building blocks of the trunk: projections, layer norm, GELU feed-forward, head split/merge,
 * rotary embeddings, relative-position bias and the short-term attention mask. Pure tensor
 * functions, no state; callers tidy.
 */
import * as tf from '@tensorflow/tfjs';

/** x `[..., in]` @ W `[in, out]` as one untransposed rank-2 matMul. */
export function project(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  const inner = x.shape[x.rank - 1]!;
  const y = tf.matMul(tf.reshape(x, [-1, inner]) as tf.Tensor2D, w as tf.Tensor2D);
  return tf.reshape(y, [...x.shape.slice(0, -1), w.shape[1]!]);
}

/**
 * Layer norm over the last axis (eps 1e-5). The numbers of `tf.moments` without its extra
 * cast, reshape and second `x - mean` (9 kernels instead of 12: per-kernel cost dominates here).
 */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  const centred = tf.sub(x, tf.mean(x, -1, true));
  const variance = tf.mean(tf.square(centred), -1, true);
  return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, 1e-5))), gamma), beta);
}

const GELU_C = Math.sqrt(2 / Math.PI);

/**
 * Inverted dropout of `x` at `rate` with uniform draws `u` in [0, 1) shaped like `x`: an entry
 * is kept (and scaled by 1 / (1 - rate)) where u + 1 - rate >= 1, as `tf.dropout` computes it.
 */
export function dropoutWith(x: tf.Tensor, rate: number, u: tf.Tensor): tf.Tensor {
  const keep = 1 - rate;
  return tf.mul(x, tf.div(tf.floor(tf.add(u, keep)), keep));
}

/** GELU, tanh approximation. */
export function gelu(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), GELU_C);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

/**
 * Softmax over the last axis from elementwise ops and reductions (exp(x - max) / sum), with
 * softmax's own gradient y (dy - sum(dy y)). Not TensorFlow's Softmax kernel: on the native
 * backend it runs another implementation (oneDNN) in a graph than eagerly, so a compiled
 * forward would differ from the eager one in the last bits; these ops agree bit for bit.
 */
export const softmaxLastAxis = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = args[0] as tf.Tensor;
  const save = args[1] as tf.GradSaveFunc;
  const ex = tf.exp(tf.sub(x, tf.max(x, -1, true)));
  const y = tf.div(ex, tf.sum(ex, -1, true));
  save([y]);
  return { value: y, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(saved[0]!, tf.sub(dy, tf.sum(tf.mul(dy, saved[0]!), -1, true))) };
}) as (x: tf.Tensor) => tf.Tensor;

/** `[b, T, e]` -> `[b, H, T, d]`. */
export function splitHeads(x: tf.Tensor, heads: number): tf.Tensor {
  const [b, t, e] = x.shape as [number, number, number];
  return tf.transpose(tf.reshape(x, [b, t, heads, e / heads]), [0, 2, 1, 3]);
}

/** `[b, H, T, d]` -> `[b, T, e]`. */
export function mergeHeads(x: tf.Tensor): tf.Tensor {
  const [b, h, t, d] = x.shape as [number, number, number, number];
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b, t, h * d]);
}

/**
 * Rotary position embedding (half-split form) of `x` `[..., T, d]` for the window positions
 * `start .. start + T - 1`. Scores between rotated queries and keys depend only on the
 * difference of their positions, so cached keys never need re-rotating within a window. A
 * precomputed `table` (rows = positions) saves building the angles on every call.
 */
export function rotary(x: tf.Tensor, start: number, table?: RotaryTable): tf.Tensor {
  const t = x.shape[x.rank - 2]!;
  const d = x.shape[x.rank - 1]!;
  const half = d / 2;
  let c: tf.Tensor;
  let s: tf.Tensor;
  if (table !== undefined && start + t <= table.cos.shape[0]! && table.cos.shape[1] === half) {
    c = tf.slice(table.cos, [start, 0], [t, half]);
    s = tf.slice(table.sin, [start, 0], [t, half]);
  } else {
    ({ cos: c, sin: s } = rotaryTable(start, t, d));
  }
  const begin = new Array<number>(x.rank).fill(0);
  const size = [...x.shape.slice(0, -1), half];
  const x1 = tf.slice(x, begin, size);
  const x2 = tf.slice(x, [...begin.slice(0, -1), half], size);
  return tf.concat([tf.sub(tf.mul(x1, c), tf.mul(x2, s)), tf.add(tf.mul(x2, c), tf.mul(x1, s))], -1);
}

/*
 * The model rotates as x * cos + rotateHalf(x) * sin with full-width tables: rotateHalf(x) =
 * [-x2, x1] is a matMul with a signed permutation, which is exact, so the numbers equal
 * {@link rotary}'s with 4 kernels instead of 11 (slices, concat).
 */

/** {@link rotaryTable}'s angles with each half repeated (`[positions, d]`), and rotateHalf as a `[d, d]` matrix. */
export interface FullRotaryTable {
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
  rotate: tf.Tensor2D;
}

/** The full-width rotary table of positions 0 .. count - 1 for head width d (the caller owns it). */
export function fullRotaryTable(count: number, d: number): FullRotaryTable {
  const half = d / 2;
  const { cos: c, sin: s } = rotaryTable(0, count, d);
  const [cos, sin] = tf.tidy(() => [tf.concat([c, c], 1), tf.concat([s, s], 1)] as tf.Tensor2D[]);
  tf.dispose([c, s]);
  // x @ R = [-x2, x1]: column j < half takes -x[j + half], column j >= half takes x[j - half].
  const r = new Float32Array(d * d);
  for (let j = 0; j < half; j++) {
    r[(j + half) * d + j] = -1;
    r[j * d + j + half] = 1;
  }
  return { cos: cos!, sin: sin!, rotate: tf.tensor2d(r, [d, d]) };
}

/** Cosines and sines of the rotary angles, `[positions, d / 2]` each. */
export interface RotaryTable {
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
}

/** The rotary angles of positions start .. start + count - 1 for head width d. */
export function rotaryTable(start: number, count: number, d: number): RotaryTable {
  const half = d / 2;
  const cos = new Float32Array(count * half);
  const sin = new Float32Array(count * half);
  for (let i = 0; i < count; i++) {
    for (let k = 0; k < half; k++) {
      const angle = (start + i) * Math.pow(10000, (-2 * k) / d);
      cos[i * half + k] = Math.cos(angle);
      sin[i * half + k] = Math.sin(angle);
    }
  }
  return { cos: tf.tensor2d(cos, [count, half]), sin: tf.tensor2d(sin, [count, half]) };
}

/**
 * Additive causal mask `[b, 1, T, L + pos + T]` for queries at positions pos..pos+T-1 of the
 * current segment over [previous segment (L keys); current segment so far; the chunk]. Keys of
 * the previous segment are hidden for streams that have none.
 */
export function causalMask(hasPrev: readonly boolean[], length: number, pos: number, t: number): tf.Tensor {
  const lk = length + pos + t;
  const data = new Float32Array(hasPrev.length * t * lk);
  hasPrev.forEach((prev, b) => {
    for (let i = 0; i < t; i++) {
      const row = (b * t + i) * lk;
      for (let j = 0; j < lk; j++) {
        const ok = j < length ? prev : j - length <= pos + i;
        if (!ok) data[row + j] = -1e9;
      }
    }
  });
  return tf.tensor4d(data, [hasPrev.length, 1, t, lk]);
}

/**
 * Learned relative-position bias `[1, H, T, L + pos + T]`: entry (h, i, j) is
 * table[h, clamp(query position - key position, 0, 2L - 1)] (future keys are masked anyway).
 */
export function relativeBias(table: tf.Tensor, length: number, pos: number, t: number): tf.Tensor {
  const lk = length + pos + t;
  const idx = new Int32Array(t * lk);
  for (let i = 0; i < t; i++) {
    const q = length + pos + i;
    for (let j = 0; j < lk; j++) idx[i * lk + j] = Math.min(Math.max(q - j, 0), 2 * length - 1);
  }
  const h = table.shape[0]!;
  return tf.reshape(tf.gather(table, tf.tensor1d(idx, 'int32'), 1), [1, h, t, lk]);
}
