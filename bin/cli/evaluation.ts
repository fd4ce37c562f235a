/**
 * Bits per byte of a byte-level model over a byte string, with and without its long-term
 * memory, as `infiniformer eval` and the training report print them.
 *
 * "Without LTM" means: the same weights, the short-term attention exactly as usual (previous and
 * current segment), and the long-term memory's contribution Z_LTM switched off in every layer,
 * i.e. the model is run with `longTermMemory: false`. This is precisely how the model computes
 * the first segment of every stream, where its memory is still empty, so it is a state the
 * model was trained in; what it measures is how much the trained model gains from what its
 * memory holds beyond the short-term window. (It is not the loss of a model *trained* without a
 * long-term memory.)
 */
import * as tf from '@tensorflow/tfjs';
import { InfiniFormer, evaluate, keepChunk, makeConfig, tokenStreamSource } from '../../src/index.js';
import type { EvalResult } from '../../src/index.js';
import { wrapParams } from '../../src/model/params.js';
import { UsageError } from './command.js';

/** One evaluation's figures, per byte. */
export interface ByteEval {
  /** Mean cross-entropy, bits per byte. */
  bitsPerByte: number;
  /** 2^bitsPerByte: the per-byte perplexity. */
  perplexity: number;
  /** Mean cross-entropy in nats per byte (what {@link evaluate} returns). */
  crossEntropy: number;
  /** Share of bytes whose most likely prediction was right. */
  accuracy: number;
}

/** The layout of an evaluation pass. */
export interface EvalLayout {
  /** Parallel streams the bytes are cut into (contiguous parts, as in training). */
  streams: number;
  /** Segments of L bytes per stream. */
  segments: number;
  /** Bytes predicted (streams x segments x L). */
  bytesScored: number;
}

/** How `bytes` split into streams of whole segments (at most `maxStreams` streams). */
export function evalLayout(byteCount: number, segmentLength: number, maxStreams: number): EvalLayout {
  const streams = Math.min(maxStreams, Math.floor(byteCount / (segmentLength + 1)));
  if (streams < 1) throw new UsageError(`${byteCount} bytes are too few to evaluate: need at least segment length + 1 = ${segmentLength + 1}`);
  const perStream = Math.floor(byteCount / streams);
  const segments = Math.floor((perStream - 1) / segmentLength);
  return { streams, segments, bytesScored: streams * segments * segmentLength };
}

/** The same weights with the long-term memory's reads switched off (see the module comment). */
export function withoutLongTermMemory(model: InfiniFormer): InfiniFormer {
  const config = makeConfig({ ...model.config, longTermMemory: false });
  return new InfiniFormer(config, wrapParams(config, model.params.byName), model.tokenizer);
}

/** Per-token figures of a byte-level model as per-byte ones. */
export function perByte(r: EvalResult): ByteEval {
  return { bitsPerByte: r.bitsPerToken, perplexity: Math.exp(r.crossEntropy), crossEntropy: r.crossEntropy, accuracy: r.accuracy };
}

/** Evaluates `model` on `bytes` (one pass, memory carried along each stream). */
export function evalBytes(model: InfiniFormer, bytes: Uint8Array, layout: EvalLayout): ByteEval {
  const source = tokenStreamSource(bytes, { numStreams: layout.streams, segmentLength: model.config.segmentLength });
  return perByte(evaluate(model, source, layout.segments));
}

/** With and without the long-term memory (the second only when the model has one). */
export function evalWithAndWithout(model: InfiniFormer, bytes: Uint8Array, layout: EvalLayout): { withLtm: ByteEval; withoutLtm?: ByteEval } {
  const withLtm = evalBytes(model, bytes, layout);
  if (!model.config.longTermMemory) return { withLtm };
  // Shares the weights with `model` (never dispose it: that would free them); its small rotary
  // table lives as long as the process, which for the command line is one evaluation.
  const withoutLtm = evalBytes(withoutLongTermMemory(model), bytes, layout);
  return { withLtm, withoutLtm };
}

/** A named byte string read as one stream. */
export interface ByteStream {
  name: string;
  bytes: Uint8Array;
}

/**
 * Bits per byte of each stream (every byte after a stream's first predicted once), all streams
 * run side by side, each from an empty state; a stream that has ended is fed spaces whose scores
 * are dropped.
 */
export function perStreamBits(model: InfiniFormer, streams: readonly ByteStream[], seed: number): number[] {
  if (streams.some((s) => s.bytes.length < 2)) throw new UsageError('every stream needs at least 2 bytes (the first is not predicted)');
  const L = model.config.segmentLength;
  const V = model.config.vocabSize;
  const states = streams.map((_, i) => model.createState(seed + i));
  const segments = Math.max(...streams.map((s) => Math.ceil((s.bytes.length - 1) / L)));
  const bits = new Float64Array(streams.length);
  for (let k = 0; k < segments; k++) {
    const inputs = streams.map((s) => Int32Array.from({ length: L }, (_, j) => (k * L + j < s.bytes.length ? s.bytes[k * L + j]! : 32)));
    let out: ReturnType<InfiniFormer['forwardChunk']> | undefined;
    tf.tidy(() => {
      out = model.forwardChunk(states, inputs);
      keepChunk(out);
    });
    const logp = tf.tidy(() => tf.logSoftmax(out!.logits).dataSync() as Float32Array);
    streams.forEach((s, i) => {
      for (let j = 0; j < L; j++) {
        const next = k * L + j + 1;
        if (next >= s.bytes.length) break;
        bits[i]! -= logp[(i * L + j) * V + s.bytes[next]!]! / Math.LN2;
      }
    });
    model.commit(states, out!);
    tf.dispose([out!.hidden, out!.logits, out!.kl]);
  }
  states.forEach((s) => s.dispose());
  return streams.map((s, i) => bits[i]! / (s.bytes.length - 1));
}

/** Two-sided 95 % Student-t quantile for `df` degrees of freedom. */
function t95(df: number): number {
  const table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086];
  return df <= table.length ? table[df - 1]! : df <= 30 ? 2.05 : 1.96;
}

/** Mean and 95 % t-interval half-width over the values (streams weigh equally). */
export function meanCi(values: readonly number[]): { mean: number; half: number } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  return { mean, half: (t95(n - 1) * sd) / Math.sqrt(n) };
}
