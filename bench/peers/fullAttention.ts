/**
 * The baseline of the context sweep in tfjs: a causal pre-LN transformer of the ∞-former's width
 * (same e, layers, heads, FFN, rotary positions) with no memory but a KV cache of everything seen.
 * `forward` runs T new tokens against a cache of C tokens, the way a streaming full-attention
 * model must: its cost per token grows with C, the ∞-former's does not. Weights are random (the
 * timing does not depend on them). Built from the library's layer functions.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../../src/index.js';
import { gelu, layerNorm, mergeHeads, project, rotary, rotaryTable, splitHeads } from '../../src/model/layers.js';

interface Layer {
  wQKV: tf.Tensor2D;
  wO: tf.Tensor2D;
  w1: tf.Tensor2D;
  b1: tf.Tensor1D;
  w2: tf.Tensor2D;
  b2: tf.Tensor1D;
  ones: tf.Tensor1D;
  zeros: tf.Tensor1D;
}

/** Per layer: cached keys (rotated) and values `[1, H, C, d]`. */
export type KvCache = { k: tf.Tensor; v: tf.Tensor }[];

export class FullAttentionLM {
  private readonly layers: Layer[];
  private readonly embedding: tf.Tensor2D;
  private readonly e: number;
  private readonly heads: number;

  constructor(c: Readonly<ModelConfig>, seed = 7) {
    this.e = c.width;
    this.heads = c.numHeads;
    let s = seed;
    const r = (rows: number, cols: number): tf.Tensor2D => tf.randomNormal([rows, cols], 0, 0.5 / Math.sqrt(rows), 'float32', ++s);
    this.embedding = r(c.width, c.vocabSize);
    this.layers = Array.from({ length: c.numLayers }, () => ({
      wQKV: r(c.width, 3 * c.width),
      wO: r(c.width, c.width),
      w1: r(c.width, c.ffnWidth),
      b1: tf.zeros([c.ffnWidth]),
      w2: r(c.ffnWidth, c.width),
      b2: tf.zeros([c.width]),
      ones: tf.ones([c.width]),
      zeros: tf.zeros([c.width]),
    }));
  }

  /** A cache holding `context` positions of random keys and values (what they hold does not change the cost). */
  cache(context: number): KvCache {
    const d = this.e / this.heads;
    return this.layers.map((_, i) => ({
      k: tf.randomNormal([1, this.heads, context, d], 0, 1, 'float32', 100 + 2 * i),
      v: tf.randomNormal([1, this.heads, context, d], 0, 1, 'float32', 101 + 2 * i),
    }));
  }

  /**
   * Logits `[1, T, V]` of `tokens` at positions C..C+T-1 given a cache of C positions. The new
   * keys and values are concatenated to the cache (tfjs tensors are immutable: a cache that
   * grows is a copy) but the cache passed in is left as it was, so calls can be repeated.
   */
  forward(cache: KvCache, tokens: Int32Array): tf.Tensor {
    const t = tokens.length;
    const context = cache[0]!.k.shape[2]!;
    const d = this.e / this.heads;
    const table = rotaryTable(context, t, d);
    const maskData = new Float32Array(t * (context + t));
    for (let i = 0; i < t; i++) for (let j = context + i + 1; j < context + t; j++) maskData[i * (context + t) + j] = -1e9;
    const mask = tf.tensor4d(maskData, [1, 1, t, context + t]);
    let h = tf.tidy(() => tf.expandDims(tf.transpose(tf.gather(this.embedding, tf.tensor1d(tokens, 'int32'), 1)), 0));
    // One tidy per layer: the [H, T, C + T] score tensors of a layer are freed before the next
    // (at C = 64k each is 134 MB, and wasm's heap never gives memory back).
    this.layers.forEach((lp, li) => {
      const next = tf.tidy(() => {
        const x = layerNorm(h, lp.ones, lp.zeros);
        const [q, k, v] = tf.split(project(x, lp.wQKV), 3, -1) as [tf.Tensor, tf.Tensor, tf.Tensor];
        const qh = rotary(splitHeads(q, this.heads), 0, table);
        const keys = tf.concat([cache[li]!.k, rotary(splitHeads(k, this.heads), 0, table)], 2);
        const values = tf.concat([cache[li]!.v, splitHeads(v, this.heads)], 2);
        const scores = tf.add(tf.mul(tf.matMul(qh, keys, false, true), 1 / Math.sqrt(d)), mask);
        const y = tf.add(h, project(mergeHeads(tf.matMul(tf.softmax(scores), values)), lp.wO));
        const f = tf.add(project(gelu(tf.add(project(layerNorm(y, lp.ones, lp.zeros), lp.w1), lp.b1)), lp.w2), lp.b2);
        return tf.add(y, f);
      });
      h.dispose();
      h = next;
    });
    const logits = tf.tidy(() => project(h, this.embedding));
    tf.dispose([h, mask, table.cos, table.sin]);
    return logits;
  }

  dispose(): void {
    tf.dispose([this.embedding, ...this.layers.flatMap((l) => Object.values(l) as tf.Tensor[])]);
  }
}
