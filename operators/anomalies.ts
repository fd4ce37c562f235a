import { Observable, type OperatorFunction } from 'rxjs';
import { BadConfigError, BadInputError } from '../src/errors.js';
import { KeyedState, Ring } from './keyedWindow.js';
import type { Scored } from './types.js';

/** Flag records whose surprisal exceeds a fixed number of bits. */
export interface ThresholdAnomalyOptions {
  threshold: number;
  maxKeys?: number;
}

/**
 * Flag records whose surprisal exceeds the `quantile` of the previous `window` surprisals of
 * the same key (the record itself excluded, so an anomaly cannot hide itself).
 */
export interface QuantileAnomalyOptions {
  /** In (0, 1), e.g. 0.99. */
  quantile: number;
  /** How many past records per key the quantile is taken over. Default 1000. */
  window?: number;
  /** No flags until a key has this many past records. Default 50. */
  warmup?: number;
  /**
   * How a key with fewer than `warmup` past records is judged: `'none'` (not flagged), or
   * `'allKeys'`: against the same quantile of the last `window` records of every key (once
   * those number `warmup`). With many keys of a few records each (one key per host or
   * service), per-key quantiles would almost never be ready. Default 'none'.
   */
  young?: 'none' | 'allKeys';
  maxKeys?: number;
}

export type AnomalyOptions = ThresholdAnomalyOptions | QuantileAnomalyOptions;

export type WithAnomaly<T> = T & {
  anomaly: boolean;
  /** The threshold the record was compared with (NaN during warm-up). */
  threshold: number;
};

/** The q-quantile (linear interpolation between order statistics) of unsorted values. */
export function quantileOf(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

/**
 * Anomaly flags from surprisal: `{ threshold }` flags records above a fixed number of bits;
 * `{ quantile, window }` flags records above their key's running quantile. Every record comes
 * out, flagged or not.
 *
 * @example
 * ```ts
 * lines$.pipe(anomalies({ quantile: 0.99, window: 2000 }), filter((r) => r.anomaly)).subscribe(alert);
 * ```
 */
export function anomalies<T extends Scored>(options: AnomalyOptions): OperatorFunction<T, WithAnomaly<T>> {
  const maxKeys = options.maxKeys ?? 10_000;
  if (!Number.isInteger(maxKeys) || maxKeys <= 0) throw new BadConfigError('maxKeys', `must be a positive integer, got ${String(maxKeys)}`);
  // Validated once; each subscription gets its own per-key state.
  let makeJudge: () => { judge: (key: string, s: number) => number; clear: () => void };
  if ('threshold' in options) {
    const th = options.threshold;
    if (!(typeof th === 'number' && Number.isFinite(th))) throw new BadConfigError('threshold', `must be a finite number of bits, got ${String(th)}`);
    makeJudge = () => ({ judge: () => th, clear: () => undefined });
  } else if ('quantile' in options) {
    const q = options.quantile;
    const window = options.window ?? 1000;
    const warmup = options.warmup ?? 50;
    if (!(typeof q === 'number' && q > 0 && q < 1)) throw new BadConfigError('quantile', `must lie strictly between 0 and 1, got ${String(q)}`);
    if (!Number.isInteger(window) || window <= 0) throw new BadConfigError('window', `must be a positive integer, got ${String(window)}`);
    if (!Number.isInteger(warmup) || warmup < 1 || warmup > window) throw new BadConfigError('warmup', `must be an integer in [1, window], got ${String(warmup)}`);
    const young = options.young ?? 'none';
    if (young !== 'none' && young !== 'allKeys') throw new BadConfigError('young', `must be 'none' or 'allKeys', got ${String(young)}`);
    makeJudge = () => {
      const rings = new KeyedState(maxKeys, () => new Ring(window));
      const pooled = young === 'allKeys' ? new Ring(window) : undefined;
      const thresholdOf = (ring: Ring | undefined): number => (ring !== undefined && ring.length >= warmup ? quantileOf(ring.toArray(), q) : Number.NaN);
      return {
        judge(key, s) {
          const ring = rings.get(key);
          const th = ring.length >= warmup ? thresholdOf(ring) : thresholdOf(pooled);
          ring.push(s);
          pooled?.push(s);
          return th;
        },
        clear: () => rings.clear(),
      };
    };
  } else {
    throw new BadConfigError('options', 'give either { threshold } or { quantile }');
  }
  return (source) =>
    new Observable<WithAnomaly<T>>((subscriber) => {
      const { judge, clear } = makeJudge();
      const sub = source.subscribe({
        next(record) {
          if (subscriber.closed) return; // a synchronous source after downstream unsubscribed
          const s = record.surprisal;
          if (!(typeof s === 'number' && Number.isFinite(s))) {
            subscriber.error(new BadInputError('surprisal', `must be a finite number, got ${String(s)} (key ${record.key})`));
            return;
          }
          const threshold = judge(record.key, s);
          subscriber.next({ ...record, anomaly: Number.isFinite(threshold) && s > threshold, threshold });
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => {
        sub.unsubscribe();
        clear();
      };
    });
}
