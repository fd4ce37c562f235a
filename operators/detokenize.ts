import { Observable, type OperatorFunction } from 'rxjs';
import { BadConfigError, BadInputError } from '../src/errors.js';
import { ByteTokenizer } from '../src/tokenize/byteTokenizer.js';
import type { Tokenizer } from '../src/tokenize/tokenizer.js';
import { KeyedState } from './keyedWindow.js';
import { reportFailure, type ErrorSideOutput } from './sideOutput.js';
import { checkTokenizer, readTokens } from './records.js';
import type { TokenInput } from './types.js';

/** Options of {@link detokenize}. */
export interface DetokenizeOptions extends ErrorSideOutput<TokenInput> {
  /** The tokenizer the ids came from. Default the byte tokenizer. */
  tokenizer?: Tokenizer;
  /** Key of records without one. Default `'default'`. */
  key?: string;
  /**
   * Byte tokenizer only: what invalid UTF-8 becomes. `'replace'` (default): U+FFFD, as
   * `TextDecoder` does; `'error'`: an error record on the `errors` side output.
   */
  invalid?: 'replace' | 'error';
  /** Bound on the number of keys decoded at once (least recently seen dropped first, with at most 3 pending bytes). Default 10,000. */
  maxKeys?: number;
}

/** Text of one stream, as {@link detokenize} emits it. */
export interface DecodedText {
  /** Stream key. */
  key: string;
  /** The text the record's tokens complete (may be empty while a character's bytes are incomplete). */
  text: string;
  /** The input record's `source` (absent on the end-of-stream flush). */
  source?: unknown;
}

/**
 * Tokens -> text, one output per input record (`{ key, token }` or `{ key, tokens }`: what
 * {@link tokenize}, {@link infiniteFormer} and {@link predictNext} emit). With the byte
 * tokenizer the decoding streams per key: a UTF-8 character whose bytes are split across
 * records comes out whole with the record that completes it (the earlier record's text is
 * shorter, possibly empty); special tokens (pad, bos, eos, sep) are dropped. On completion each
 * key's incomplete bytes come out as U+FFFD in one last record without `source` (or, with
 * `invalid: 'error'`, as an error record). Other tokenizers decode each record on its own.
 * Ids that are not integers in the vocabulary make an error record on the `errors` side output
 * and the stream goes on.
 *
 * @example
 * ```ts
 * predictions$.pipe(detokenize()).subscribe(({ key, text }) => process.stdout.write(`${key}: ${text}`));
 * ```
 */
export function detokenize(options: DetokenizeOptions = {}): OperatorFunction<TokenInput, DecodedText> {
  const tokenizer = checkTokenizer(options.tokenizer ?? new ByteTokenizer());
  const defaultKey = options.key ?? 'default';
  if (typeof defaultKey !== 'string') throw new BadConfigError('key', `must be a string, got ${typeof defaultKey}`);
  const invalid = options.invalid ?? 'replace';
  if (invalid !== 'replace' && invalid !== 'error') throw new BadConfigError('invalid', `must be "replace" or "error", got ${JSON.stringify(invalid)}`);
  const maxKeys = options.maxKeys ?? 10_000;
  if (!Number.isInteger(maxKeys) || maxKeys <= 0) throw new BadConfigError('maxKeys', `must be a positive integer, got ${String(maxKeys)}`);
  const streaming = tokenizer instanceof ByteTokenizer || tokenizer.kind === 'byte';
  const fatal = invalid === 'error';
  const V = tokenizer.vocabSize;

  return (source) =>
    new Observable<DecodedText>((subscriber) => {
      const keys = new KeyedState(maxKeys, () => ({ decoder: new TextDecoder('utf-8', { fatal }), last: undefined as TokenInput | undefined }));
      const fail = (error: unknown, record: TokenInput, key?: string): void =>
        reportFailure('detokenize', options, { error, record, key });
      const sub = source.subscribe({
        next(record) {
          if (subscriber.closed) return; // a synchronous source after downstream unsubscribed
          let key: string;
          let ids: ArrayLike<number>;
          try {
            ({ key, ids } = readRecord(record, defaultKey, V));
          } catch (error) {
            fail(error, record);
            return;
          }
          let text: string;
          if (streaming) {
            const bytes: number[] = [];
            for (let i = 0; i < ids.length; i++) if (ids[i]! < 256) bytes.push(ids[i]!);
            const k = keys.get(key);
            k.last = record;
            try {
              text = k.decoder.decode(Uint8Array.from(bytes), { stream: true });
            } catch (cause) {
              k.decoder = new TextDecoder('utf-8', { fatal });
              fail(new BadInputError('tokens', 'are not valid UTF-8 (with the bytes held from earlier records of the key)', { cause }), record, key);
              return;
            }
          } else {
            try {
              text = tokenizer.decode(ids);
            } catch (error) {
              fail(error, record, key);
              return;
            }
          }
          const out: DecodedText = { key, text };
          if (record.source !== undefined) out.source = record.source;
          subscriber.next(out);
        },
        error: (err: unknown) => subscriber.error(err),
        complete() {
          if (streaming) {
            for (const [key, k] of keys.entries()) {
              let text: string;
              try {
                text = k.decoder.decode();
              } catch (cause) {
                fail(new BadInputError('tokens', 'end with an incomplete UTF-8 character', { cause }), k.last!, key);
                continue;
              }
              if (text !== '') subscriber.next({ key, text });
            }
          }
          subscriber.complete();
        },
      });
      return () => {
        sub.unsubscribe();
        keys.clear();
      };
    });
}

function readRecord(record: TokenInput, defaultKey: string, V: number): { key: string; ids: ArrayLike<number> } {
  if (record === null || typeof record !== 'object') throw new BadInputError('record', `expected { key, token } or { key, tokens }, got ${record === null ? 'null' : typeof record}`);
  const key = record.key ?? defaultKey;
  if (typeof key !== 'string') throw new BadInputError('key', `must be a string, got ${typeof key}`);
  const ids = readTokens(record, V);
  return { key, ids };
}
