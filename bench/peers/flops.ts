/**
 * Nominal floating-point operations per token of each contender (multiply-adds count 2;
 * elementwise work, softmax and normalisation are not counted). The same formula serves every
 * framework, so achieved GFLOP/s = tokens/s x FLOPs/token compares them on one scale; work an
 * implementation adds or saves (the library recomputes the previous segment's keys at a segment
 * start, the PyTorch peer keeps them) does not change the count. docs/performance.md restates it.
 */
import type { ModelConfig } from '../../src/index.js';

/**
 * The ∞-former in segment mode (T = L tokens per forward), per token:
 *   per layer:  6e^2 (q, k, v) + 4 (2L) e (scores and weighted sum over the 2L-key window, as
 *               computed densely under the causal mask) + 2e^2 (output) + 4eF (feed-forward)
 *             + long-term memory: [4 N e^2 (memory keys, values) + 6 L e^2 (gate, 3 taps)
 *               + 2 M N e (read-out) + 2 N (M + L) e (ridge fit)] / L   once per segment
 *               + 2Ne (scores) + 4NH (mu, sigma^2) + 2Ne (context) + 2e^2 (output)
 *   plus 2eV for the tied LM head.
 */
export function infiniformerFlopsPerToken(c: Readonly<ModelConfig>): number {
  const { width: e, segmentLength: L, numBasis: N, numSamples: M, numHeads: H, ffnWidth: Fw, vocabSize: V } = c;
  const perSegment = 4 * N * e * e + 6 * L * e * e + 2 * M * N * e + 2 * N * (M + L) * e;
  const layer = 6 * e * e + 8 * L * e + 2 * e * e + 4 * e * Fw + perSegment / L + 4 * N * e + 4 * N * H + 2 * e * e;
  return c.numLayers * layer + 2 * e * V;
}

/** A training step costs about three forwards (backward = two products per forward product). */
export function trainingFlopsPerToken(c: Readonly<ModelConfig>): number {
  return 3 * infiniformerFlopsPerToken(c);
}

/**
 * The same-width full-attention transformer running T new tokens against a KV cache of C tokens,
 * per token: per layer 6e^2 + 4 (C + T) e (every new query against C + T keys, dense under the
 * mask) + 2e^2 + 4eF; plus 2eV.
 */
export function fullAttentionFlopsPerToken(c: Readonly<ModelConfig>, context: number, newTokens: number): number {
  const { width: e, ffnWidth: Fw, vocabSize: V } = c;
  return c.numLayers * (6 * e * e + 4 * (context + newTokens) * e + 2 * e * e + 4 * e * Fw) + 2 * e * V;
}

/** One n x n x n matmul. */
export const matmulFlops = (n: number): number => 2 * n ** 3;
