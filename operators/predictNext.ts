import { Observable, type OperatorFunction } from 'rxjs';
import { BadConfigError, BadInputError } from '../src/errors.js';
import type { ModelOutput, TokenPrediction } from './types.js';

/** Options of {@link predictNext}. */
export interface PredictNextOptions {
  /** How many of the most likely next tokens to list (clipped to the vocabulary). Default 5. */
  topK?: number;
  /**
   * A key's first token has no prediction before it (its `surprisal` from
   * {@link infiniteFormer} is NaN). `'uniform'` (default): score it under the uniform
   * distribution, log2(V) bits (what an arithmetic coder does for its first symbol), so
   * every token comes out with a finite surprisal; `'drop'`: emit nothing for it.
   */
  first?: 'uniform' | 'drop';
}

/** The `k` largest entries of `values`, largest first (ties: lower index first). */
function topKOf(values: Float32Array, k: number): { index: number; value: number }[] {
  const best: { index: number; value: number }[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (best.length === k && !(v > best[k - 1]!.value)) continue;
    let at = best.length;
    while (at > 0 && v > best[at - 1]!.value) at--;
    best.splice(at, 0, { index: i, value: v });
    if (best.length > k) best.pop();
  }
  return best;
}

/**
 * The model's outputs as predictions: each {@link ModelOutput} of {@link infiniteFormer}
 * becomes a {@link TokenPrediction} `{ key, index, token, surprisal, topK, endOfRecord, source }`
 * with the `topK` most likely next tokens and their probabilities, most likely first. Plain
 * JavaScript over the emitted log-probabilities (no tensors). A record without finite
 * log-probabilities is a typed error (a bug upstream, not bad data).
 *
 * @example
 * ```ts
 * tokens$.pipe(infiniteFormer(model), predictNext({ topK: 3 })).subscribe((p) =>
 *   console.log(p.key, p.surprisal.toFixed(2), p.topK!.map((t) => t.token)));
 * ```
 */
export function predictNext(options: PredictNextOptions = {}): OperatorFunction<ModelOutput, TokenPrediction> {
  const topK = options.topK ?? 5;
  if (!Number.isInteger(topK) || topK < 1) throw new BadConfigError('topK', `must be a positive integer, got ${String(topK)}`);
  const first = options.first ?? 'uniform';
  if (first !== 'uniform' && first !== 'drop') throw new BadConfigError('first', `must be "uniform" or "drop", got ${JSON.stringify(first)}`);
  return (source) =>
    new Observable<TokenPrediction>((subscriber) => {
      const sub = source.subscribe({
        next(record) {
          if (subscriber.closed) return; // a synchronous source after downstream unsubscribed
          const lp = record?.nextLogProbs;
          if (!(lp instanceof Float32Array) || lp.length === 0) {
            subscriber.error(new BadInputError('nextLogProbs', `expected a non-empty Float32Array (key ${record?.key})`));
            return;
          }
          let surprisal = record.surprisal;
          if (Number.isNaN(surprisal)) {
            if (first === 'drop') return;
            surprisal = Math.log2(lp.length);
          }
          const best = topKOf(lp, Math.min(topK, lp.length));
          if (!Number.isFinite(best[0]!.value)) {
            subscriber.error(new BadInputError('nextLogProbs', `holds no finite log-probability (key ${record.key}, index ${record.index})`));
            return;
          }
          const out: TokenPrediction = {
            key: record.key,
            index: record.index,
            token: record.token,
            surprisal,
            topK: best.map((b) => ({ token: b.index, prob: Math.exp(b.value) })),
            endOfRecord: record.endOfRecord,
          };
          if (record.source !== undefined) out.source = record.source;
          subscriber.next(out);
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => sub.unsubscribe();
    });
}
