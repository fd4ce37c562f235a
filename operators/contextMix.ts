import { Observable, type OperatorFunction } from 'rxjs';
import { BadConfigError, BadInputError } from '../src/errors.js';
import { ContextMixer } from '../src/mixing/contextMixer.js';
import type { ContextMixerOptions } from '../src/mixing/contextMixer.js';
import type { StreamContext } from '../src/mixing/streamContext.js';
import { KeyedState } from './keyedWindow.js';
import { reportFailure, type ErrorSideOutput } from './sideOutput.js';
import type { ModelOutput, TokenPrediction } from './types.js';

/** Options of {@link contextMix}. All are optional. */
export interface ContextMixOptions extends ErrorSideOutput<ModelOutput> {
  /** The mixer (shared statistics; share one between pipelines to pool what they learn). Default a new one with `mixer` options. */
  mixer?: ContextMixer | ContextMixerOptions;
  /** How many of the most likely next bytes to list. Default 5. */
  topK?: number;
  /** When to compute the full next-byte distribution for `topK` (255 bit predictions): `'record'` (default) at each record's last token, `'token'` after every token. */
  topKAt?: 'record' | 'token';
  /** Bound on the keys whose byte history is kept (least recently seen dropped first; what they taught the shared statistics stays). Default 1,000. */
  maxKeys?: number;
}

/** Per-key state: the stream's context and the network's prediction of its next byte. */
interface KeyMix {
  stream: StreamContext;
  next: Float32Array | undefined;
}

/** Defaults sized for many keys: 256 KiB of history and a 64 K-entry match index per key. */
const KEYED_DEFAULTS: ContextMixerOptions = { historyBits: 18, matchIndexBits: 16 };

/**
 * Mixes the network's next-byte predictions with a {@link ContextMixer} (n-gram statistics and a
 * match model learned from the stream itself, as an adaptive compressor does), key by key: each
 * byte of a key is scored under the mix of what the network predicted after the key's previous
 * byte and what the mixer learned so far, then learned from (prequential). Emits one
 * {@link TokenPrediction} per byte, with `surprisal` under the mix and `topK` from the mixed
 * distribution (at record ends by default). Special tokens (ids >= 256) pass through with the
 * network's own surprisal. Records without finite `nextLogProbs` go to `errors`.
 *
 * @example
 * ```ts
 * lines$.pipe(tokenize(), infiniteFormer(model), contextMix(), recordSurprisal(), anomalies({ quantile: 0.99 }))
 * ```
 */
export function contextMix(options: ContextMixOptions = {}): OperatorFunction<ModelOutput, TokenPrediction> {
  const topK = options.topK ?? 5;
  if (!Number.isInteger(topK) || topK < 1 || topK > 256) throw new BadConfigError('topK', `must be an integer in [1, 256], got ${String(topK)}`);
  const topKAt = options.topKAt ?? 'record';
  if (topKAt !== 'record' && topKAt !== 'token') throw new BadConfigError('topKAt', `must be "record" or "token", got ${JSON.stringify(topKAt)}`);
  const maxKeys = options.maxKeys ?? 1000;
  if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new BadConfigError('maxKeys', `must be a positive integer, got ${String(maxKeys)}`);
  const given = options.mixer;
  return (source) =>
    new Observable<TokenPrediction>((subscriber) => {
      const mixer = given instanceof ContextMixer ? given : new ContextMixer({ ...KEYED_DEFAULTS, ...given });
      const keys = new KeyedState<KeyMix>(maxKeys, () => ({ stream: mixer.createStream(), next: undefined }));
      const dist = new Float64Array(256);
      const sub = source.subscribe({
        next(record) {
          if (subscriber.closed) return;
          const probs = byteProbs(record?.nextLogProbs);
          if (probs === undefined) {
            reportFailure('contextMix', options, { error: new BadInputError('nextLogProbs', `expected finite log-probabilities of at least 256 tokens (key ${record?.key})`), record, key: record?.key });
            return;
          }
          const k = keys.get(record.key);
          let surprisal = record.surprisal;
          if (record.token < 256) surprisal = mixer.code(k.stream, record.token, k.next);
          k.next = probs;
          const out: TokenPrediction = { key: record.key, index: record.index, token: record.token, surprisal, endOfRecord: record.endOfRecord };
          if (topKAt === 'token' || record.endOfRecord) out.topK = topKOf(mixer.distribution(k.stream, probs, dist), topK);
          if (record.source !== undefined) out.source = record.source;
          subscriber.next(out);
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => {
        sub.unsubscribe();
        keys.clear();
      };
    });
}

/** Byte probabilities from natural-log probabilities over a byte vocabulary (undefined if unusable). */
function byteProbs(lp: Float32Array | undefined): Float32Array | undefined {
  if (!(lp instanceof Float32Array) || lp.length < 256) return undefined;
  const p = new Float32Array(256);
  for (let i = 0; i < 256; i++) {
    const v = lp[i]!;
    if (!(v <= 0) && !(v > 0)) return undefined; // NaN
    p[i] = Math.exp(v);
  }
  return p;
}

/** The `k` most likely bytes, most likely first. */
function topKOf(dist: Float64Array, k: number): { token: number; prob: number }[] {
  const order = Array.from({ length: 256 }, (_, i) => i).sort((a, b) => dist[b]! - dist[a]! || a - b);
  return order.slice(0, k).map((i) => ({ token: i, prob: dist[i]! }));
}
