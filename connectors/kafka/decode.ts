import { BadInputError } from '../../src/errors.js';

/** Turns a record's value bytes into the value the pipeline sees; throws to dead-letter it. */
export type ValueDecoder<T> = (value: Buffer) => T;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Raw bytes, unchanged. */
export const rawDecoder: ValueDecoder<Buffer> = (value) => value;

/** Strict UTF-8: invalid byte sequences are an error (never silently replaced by U+FFFD). */
export const utf8Decoder: ValueDecoder<string> = (value) => {
  try {
    return strictUtf8.decode(value);
  } catch (cause) {
    throw new BadInputError('value', 'invalid UTF-8', { cause });
  }
};

/** Strict UTF-8, then JSON. */
export const jsonDecoder: ValueDecoder<unknown> = (value) => {
  const text = utf8Decoder(value);
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new BadInputError('value', `invalid JSON: ${(cause as Error).message}`, { cause });
  }
};
