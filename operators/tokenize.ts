import { Observable, type OperatorFunction } from 'rxjs';
import { BadConfigError, BadInputError } from '../src/errors.js';
import { ByteTokenizer } from '../src/tokenize/byteTokenizer.js';
import type { Tokenizer } from '../src/tokenize/tokenizer.js';
import { checkTokenizer } from './records.js';
import { reportFailure, type ErrorSideOutput } from './sideOutput.js';
import type { TextRecord, TokenRecord } from './types.js';

/** Options of {@link tokenize}. */
export interface TokenizeOptions extends ErrorSideOutput<string | TextRecord> {
  /** The tokenizer; pass the model's (`model.tokenizer`). Default the byte tokenizer. */
  tokenizer?: Tokenizer;
  /** Key of bare strings and of records without one. Default `'default'`. */
  key?: string;
  /**
   * Bytes (`text` as a Uint8Array) that are not valid UTF-8: `'error'` (default) sends the record
   * to the `errors` side output; `'keep'` scores the original bytes when the tokenizer is
   * byte-level (`encodeBytes`), the record's `text` showing U+FFFD for them.
   */
  invalidUtf8?: 'error' | 'keep';
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lenientUtf8 = new TextDecoder('utf-8');

/**
 * Text -> tokens: each string or `{ key, text, source }` record becomes one {@link TokenRecord}
 * `{ key, tokens, text, source }` with the tokenizer's ids (one record in, one out, so source
 * offsets stay with their tokens). `text` may also be UTF-8 bytes (a Kafka value): bytes that
 * are not valid UTF-8, a text that is neither a string nor bytes, or a key that is not a string
 * make an error record on the `errors` side output, and the stream goes on.
 *
 * @example
 * ```ts
 * lines$.pipe(
 *   map((line) => ({ key: line.host, text: line.message })),
 *   tokenize({ tokenizer: model.tokenizer }),
 *   infiniteFormer(model),
 * );
 * ```
 */
export function tokenize(options: TokenizeOptions = {}): OperatorFunction<string | TextRecord, TokenRecord> {
  const tokenizer = checkTokenizer(options.tokenizer ?? new ByteTokenizer());
  const defaultKey = options.key ?? 'default';
  if (typeof defaultKey !== 'string') throw new BadConfigError('key', `must be a string, got ${typeof defaultKey}`);
  const invalidUtf8 = options.invalidUtf8 ?? 'error';
  if (invalidUtf8 !== 'error' && invalidUtf8 !== 'keep') throw new BadConfigError('invalidUtf8', `must be 'error' or 'keep', got ${String(invalidUtf8)}`);
  const keepBytes = invalidUtf8 === 'keep' && typeof tokenizer.encodeBytes === 'function';
  return (source) =>
    new Observable<TokenRecord>((subscriber) => {
      const sub = source.subscribe({
        next(record) {
          if (subscriber.closed) return; // a synchronous source after downstream unsubscribed
          let out: TokenRecord;
          try {
            out = encodeRecord(record, tokenizer, defaultKey, keepBytes);
          } catch (error) {
            const key = typeof record === 'object' && record !== null && typeof record.key === 'string' ? record.key : undefined;
            reportFailure('tokenize', options, { error, record, key });
            return;
          }
          subscriber.next(out);
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => sub.unsubscribe();
    });
}

function encodeRecord(record: string | TextRecord, tokenizer: Tokenizer, defaultKey: string, keepBytes: boolean): TokenRecord {
  if (typeof record === 'string') return { key: defaultKey, tokens: tokenizer.encode(record), text: record };
  if (record === null || typeof record !== 'object') throw new BadInputError('record', `expected a string or { key, text }, got ${record === null ? 'null' : typeof record}`);
  const key = record.key ?? defaultKey;
  if (typeof key !== 'string') throw new BadInputError('key', `must be a string, got ${typeof key}`);
  let text: string;
  if (keepBytes && record.text instanceof Uint8Array) {
    const out: TokenRecord = { key, tokens: tokenizer.encodeBytes!(record.text), text: lenientUtf8.decode(record.text) };
    if (record.source !== undefined) out.source = record.source;
    return out;
  }
  if (typeof record.text === 'string') text = record.text;
  else if (record.text instanceof Uint8Array) {
    try {
      text = strictUtf8.decode(record.text);
    } catch (cause) {
      throw new BadInputError('text', `is not valid UTF-8 (${record.text.length} bytes)`, { cause });
    }
  } else throw new BadInputError('text', `expected a string or UTF-8 bytes, got ${record.text === null ? 'null' : typeof record.text}`);
  const out: TokenRecord = { key, tokens: tokenizer.encode(text), text };
  if (record.source !== undefined) out.source = record.source;
  return out;
}
