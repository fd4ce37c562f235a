import { Observable, type OperatorFunction } from 'rxjs';
import { BadConfigError, BadInputError } from '../src/errors.js';
import { KeyedState, Ring } from './keyedWindow.js';
import type { Scored } from './types.js';

/** Options of {@link perplexity}. */
export interface PerplexityOptions {
  /** Number of most recent records per key the metric covers. Default 1000. */
  window?: number;
  /** Bound on the number of keys tracked (least recently seen dropped first). Default 10,000. */
  maxKeys?: number;
}

/** A record with its key's rolling metric attached. */
export type WithPerplexity<T> = T & {
  /** Mean surprisal over the window, in bits per token. */
  bitsPerToken: number;
  /** 2 ^ bitsPerToken. */
  perplexity: number;
  /** How many records the window holds now (smaller than `window` at the start of a key). */
  windowSize: number;
};

/**
 * Rolling per-key perplexity: every record comes out with the mean surprisal (bits per token)
 * and perplexity of the last `window` records of its key, itself included. Records whose
 * surprisal is not a finite non-negative number are an error (a model bug, not bad data).
 *
 * @example
 * ```ts
 * predictions$.pipe(perplexity({ window: 512 })).subscribe((p) => gauge.set(p.perplexity));
 * ```
 */
export function perplexity<T extends Scored>(options: PerplexityOptions = {}): OperatorFunction<T, WithPerplexity<T>> {
  const window = options.window ?? 1000;
  const maxKeys = options.maxKeys ?? 10_000;
  if (!Number.isInteger(window) || window <= 0) throw new BadConfigError('window', `must be a positive integer, got ${String(window)}`);
  if (!Number.isInteger(maxKeys) || maxKeys <= 0) throw new BadConfigError('maxKeys', `must be a positive integer, got ${String(maxKeys)}`);
  return (source) =>
    new Observable<WithPerplexity<T>>((subscriber) => {
      const rings = new KeyedState(maxKeys, () => new Ring(window));
      const sub = source.subscribe({
        next(record) {
          if (subscriber.closed) return; // a synchronous source after downstream unsubscribed
          const s = record.surprisal;
          if (!(typeof s === 'number' && Number.isFinite(s) && s >= 0)) {
            subscriber.error(new BadInputError('surprisal', `must be a finite non-negative number, got ${String(s)} (key ${record.key})`));
            return;
          }
          const ring = rings.get(record.key);
          ring.push(s);
          const bits = ring.sum / ring.length;
          subscriber.next({ ...record, bitsPerToken: bits, perplexity: 2 ** bits, windowSize: ring.length });
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => {
        sub.unsubscribe();
        rings.clear();
      };
    });
}
