/** Records that flow out of the model operators (DESIGN §3: plain objects). */

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
  /** Source coordinates (e.g. Kafka topic, partition, offset), passed through untouched. */
  source?: unknown;
}

/** Anything with a key and a surprisal can be scored by {@link perplexity} and {@link anomalies}. */
export interface Scored {
  key: string;
  surprisal: number;
}
