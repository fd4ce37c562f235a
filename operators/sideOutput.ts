import type { Observer } from 'rxjs';
import { InfiniformerError } from '../src/errors.js';
import { createLogger } from '../src/logger.js';
import type { RecordFailure } from './types.js';

const log = createLogger('infiniformer:operators');

/** Options of the operators that route bad records to a side output. */
export interface ErrorSideOutput<T> {
  /**
   * Receives every record the operator could not use, with a typed error; the stream goes on.
   * A `Subject` works, as does any partial observer. Default: none, and such records are
   * logged (warn) and dropped; the stream goes on either way.
   */
  errors?: Partial<Observer<RecordFailure<T>>>;
}

/**
 * Sends a failure to the side output, or logs it when there is none. Anything thrown becomes an
 * {@link InfiniformerError}; an undefined key or token is left out of the failure.
 */
export function reportFailure<T>(
  where: string,
  side: ErrorSideOutput<T>,
  { error, record, key, token }: { error: unknown; record: T; key?: string | undefined; token?: number | undefined },
): void {
  const failure: RecordFailure<T> = { error: asInfiniformerError(error), record };
  if (key !== undefined) failure.key = key;
  if (token !== undefined) failure.token = token;
  if (side.errors?.next !== undefined) {
    side.errors.next(failure);
    return;
  }
  log.warn(`${where}: record dropped`, { key: failure.key, code: failure.error.code, error: failure.error.message });
}

/** Wraps anything thrown into an {@link InfiniformerError} (typed errors pass through). */
function asInfiniformerError(error: unknown): InfiniformerError {
  if (error instanceof InfiniformerError) return error;
  return new InfiniformerError(error instanceof Error ? error.message : String(error), 'ERR_INFINIFORMER', { cause: error });
}
