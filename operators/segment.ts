import { Observable, asyncScheduler, type OperatorFunction, type SchedulerLike, type Subscription } from 'rxjs';
import { BadConfigError } from '../src/errors.js';

/** Options of {@link segment}. */
export interface SegmentOptions {
  /** Segment length L: a segment is emitted as soon as it holds this many elements. */
  length: number;
  /**
   * Longest time (ms) the first element of a partial segment may wait: then the partial segment
   * is emitted, so a low-rate stream never stalls. Default: no limit.
   */
  maxDelayMs?: number;
  /** Emit the partial segment before passing an upstream error on (default true: no data lost). */
  flushOnError?: boolean;
  /** Scheduler for the time limit (default `asyncScheduler`; tests pass a virtual one). */
  scheduler?: SchedulerLike;
}

/**
 * Groups a stream into segments of `length` elements (the ∞-former's unit of memory update).
 * A partial segment is emitted when `maxDelayMs` has passed since its first element, and on
 * completion. Errors pass through after the partial segment is flushed; unsubscribing clears
 * the timer and drops nothing downstream can still receive.
 *
 * @example
 * ```ts
 * tokens$.pipe(segment({ length: 128, maxDelayMs: 2000 })).subscribe((seg) => model.absorb(seg));
 * ```
 */
export function segment<T>(options: SegmentOptions): OperatorFunction<T, T[]> {
  const length = options?.length;
  if (typeof length !== 'number' || !Number.isInteger(length) || length <= 0) {
    throw new BadConfigError('length', `must be a positive integer, got ${String(length)}`);
  }
  const maxDelay = options.maxDelayMs;
  if (maxDelay !== undefined && !(typeof maxDelay === 'number' && maxDelay >= 0 && Number.isFinite(maxDelay))) {
    throw new BadConfigError('maxDelayMs', `must be a non-negative finite number, got ${String(maxDelay)}`);
  }
  const scheduler = options.scheduler ?? asyncScheduler;
  const flushOnError = options.flushOnError ?? true;

  return (source) =>
    new Observable<T[]>((subscriber) => {
      let buffer: T[] = [];
      let timer: Subscription | undefined;
      const flush = (): void => {
        timer?.unsubscribe();
        timer = undefined;
        if (buffer.length === 0) return;
        const out = buffer;
        buffer = [];
        subscriber.next(out);
      };
      const upstream = source.subscribe({
        next(value) {
          if (subscriber.closed) return; // a synchronous source after downstream unsubscribed
          buffer.push(value);
          if (buffer.length >= length) flush();
          else if (maxDelay !== undefined && timer === undefined) timer = scheduler.schedule(flush, maxDelay);
        },
        error(err: unknown) {
          if (flushOnError) flush();
          subscriber.error(err);
        },
        complete() {
          flush();
          subscriber.complete();
        },
      });
      return () => {
        upstream.unsubscribe();
        timer?.unsubscribe();
        buffer = [];
      };
    });
}
