/** Records that flow out of the model operators (DESIGN §3: plain objects). */
import type { InfiniformerError } from '../src/errors.js';

/** One token's prediction: what came, how surprising it was, and what was expected next. */
export interface TokenPrediction {
  /** Stream key (a log source, a user, a device). */
  key: string;
  /** Position of the token in its key's stream (0-based). */
  index: number;
  /** The token id that arrived. */
  token: number;
  /** -log2 p(token | everything before it): bits. */
  surprisal: number;
  /** The most likely next tokens after this one, most likely first. */
  topK?: { token: number; prob: number }[];
  /** True for the last token of the input record it came from (e.g. the end of a log line). */
  endOfRecord?: boolean;
  /** Source coordinates (e.g. Kafka topic, partition, offset), passed through untouched. */
  source?: unknown;
}

/** Anything with a key and a surprisal can be scored by {@link perplexity} and {@link anomalies}. */
export interface Scored {
  key: string;
  surprisal: number;
}

/** A piece of text of one stream: what {@link tokenize} reads and {@link detokenize} writes. */
export interface TextRecord {
  /** Stream key. Optional on input to {@link tokenize} (its `key` option fills it in). */
  key?: string;
  /** The text. {@link tokenize} also takes UTF-8 bytes. */
  text: string | Uint8Array;
  /** Source coordinates, passed through untouched. */
  source?: unknown;
}

/** The tokens of one input record: what {@link tokenize} emits and {@link infiniteFormer} reads. */
export interface TokenRecord {
  /** Stream key. */
  key: string;
  /** Token ids of the record, in order. */
  tokens: Int32Array;
  /** The text the tokens came from. */
  text: string;
  /** Source coordinates, passed through untouched. */
  source?: unknown;
}

/**
 * What {@link infiniteFormer} reads by default: a key and one token (`token`) or several
 * (`tokens`) per record. Other record shapes work through its `key` and `tokens` selectors.
 */
export interface TokenInput {
  /** Stream key: one model state per key. */
  key?: string;
  /** One token id. */
  token?: number;
  /** Several token ids, processed in order (e.g. a tokenized log line). */
  tokens?: ArrayLike<number>;
  /** Source coordinates, passed through untouched to every output of the record. */
  source?: unknown;
}

/** One token through the model: what {@link infiniteFormer} emits per token (plain data, no tensors). */
export interface ModelOutput {
  /** Stream key. */
  key: string;
  /** Position of the token in its key's stream (0-based; survives eviction and restore). */
  index: number;
  /** The token id that arrived. */
  token: number;
  /**
   * -log2 p(token) under the prediction the model made after the key's previous token: bits.
   * NaN for a key's very first token (nothing predicted it), and for the first token after a
   * state restored from bare `StreamState` bytes (they carry no prediction).
   */
  surprisal: number;
  /** Natural-log probabilities of every next token `[V]` after this one (log-softmax of the logits). */
  nextLogProbs: Float32Array;
  /** The final hidden state `[e]` of this token (only with `emitHidden: true`; for {@link classify}). */
  hidden?: Float32Array;
  /** True for the last token of its input record. */
  endOfRecord: boolean;
  /** The input record's `source`, passed through untouched. */
  source?: unknown;
}

/** A record an operator could not use, with the reason: what goes to the `errors` side output. */
export interface RecordFailure<T> {
  /** Why: a typed error (`BadInputError` for bad records, `OverflowError` for a full queue ...). */
  error: InfiniformerError;
  /** The record as it arrived. */
  record: T;
  /** The record's key, when it had a valid one. */
  key?: string;
  /** For a token dropped from a full queue: the token id. */
  token?: number;
}
