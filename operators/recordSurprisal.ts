import { Observable, type OperatorFunction } from 'rxjs';
import { BadConfigError } from '../src/errors.js';
import { KeyedState } from './keyedWindow.js';
import type { TokenPrediction } from './types.js';

/** Options of {@link recordSurprisal}. */
export interface RecordSurprisalOptions {
  /** Bound on the keys with an unfinished record (least recently seen dropped first). Default 10,000. */
  maxKeys?: number;
}

/** One input record (e.g. a log line) scored as a whole; `T` is the type of the predictions scored. */
export interface RecordScore<T extends TokenPrediction = TokenPrediction> {
  /** Stream key. */
  key: string;
  /** The record's `source`, passed through. */
  source?: unknown;
  /** Tokens of the record. */
  tokens: number;
  /** Tokens that had a prediction (a key's very first token has none). */
  scored: number;
  /** Sum of the scored tokens' surprisal: -log2 p(record | the key's past), bits. */
  bits: number;
  /** Mean surprisal over the scored tokens, bits per token (NaN when none was scored). */
  surprisal: number;
  /** The prediction after the record's last token (what the model expects next), as it came in. */
  last: T;
}

/**
 * Folds token predictions back into one record per input record (e.g. per log line): the
 * record's total bits and mean surprisal (bits per token), emitted at its last token
 * (`endOfRecord`). Tokens without a prediction (NaN surprisal: a key's first token) are left out
 * of the mean. Feed the result to {@link anomalies} or {@link perplexity} for per-line flags.
 *
 * @example
 * ```ts
 * lines$.pipe(tokenize(), infiniteFormer(model), predictNext(), recordSurprisal(), anomalies({ threshold: 4 }))
 *   .subscribe((line) => line.anomaly && alert(line.source));
 * ```
 */
export function recordSurprisal<T extends TokenPrediction>(options: RecordSurprisalOptions = {}): OperatorFunction<T, RecordScore<T>> {
  const maxKeys = options.maxKeys ?? 10_000;
  if (!Number.isInteger(maxKeys) || maxKeys <= 0) throw new BadConfigError('maxKeys', `must be a positive integer, got ${String(maxKeys)}`);
  return (source) =>
    new Observable<RecordScore<T>>((subscriber) => {
      const open = new KeyedState(maxKeys, () => ({ tokens: 0, scored: 0, bits: 0 }));
      const sub = source.subscribe({
        next(p) {
          if (subscriber.closed) return;
          const acc = open.get(p.key);
          acc.tokens += 1;
          if (Number.isFinite(p.surprisal)) {
            acc.scored += 1;
            acc.bits += p.surprisal;
          }
          if (p.endOfRecord === true) {
            const done: RecordScore<T> = { key: p.key, source: p.source, tokens: acc.tokens, scored: acc.scored, bits: acc.bits, surprisal: acc.scored > 0 ? acc.bits / acc.scored : NaN, last: p };
            acc.tokens = 0;
            acc.scored = 0;
            acc.bits = 0;
            subscriber.next(done);
          }
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => {
        sub.unsubscribe();
        open.clear();
      };
    });
}
