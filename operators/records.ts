import { BadConfigError, BadInputError } from '../src/errors.js';
import type { Tokenizer } from '../src/tokenize/tokenizer.js';

/** Validates a tokenizer option (shared by tokenize and detokenize). */
export function checkTokenizer(tokenizer: unknown): Tokenizer {
  const t = tokenizer as Partial<Tokenizer> | null;
  if (t === null || typeof t !== 'object' || typeof t.encode !== 'function' || typeof t.decode !== 'function' || !Number.isInteger(t.vocabSize)) {
    throw new BadConfigError('tokenizer', 'must implement the Tokenizer interface (encode, decode, vocabSize)');
  }
  return t as Tokenizer;
}

/** The token ids of a `{ token }` or `{ tokens }` record, each checked to lie in [0, V). */
export function readTokens(record: { token?: unknown; tokens?: unknown }, V: number): ArrayLike<number> {
  let ids: ArrayLike<number>;
  if (record.tokens !== undefined) {
    const t = record.tokens as ArrayLike<number> | null;
    if (t === null || typeof t !== 'object' || typeof t.length !== 'number') throw new BadInputError('tokens', 'expected an array of token ids');
    ids = t;
  } else if (record.token !== undefined) ids = [record.token as number];
  else throw new BadInputError('tokens', 'the record has neither `token` nor `tokens`');
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= V) {
      throw new BadInputError('tokens', `token ${i} is ${String(id)}, expected an integer in [0, ${V})`);
    }
  }
  return ids;
}
