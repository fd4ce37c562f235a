/**
 * The default tokenizer: UTF-8 bytes (ids 0..255) plus a few special tokens after them. No
 * vocabulary file, no unknown tokens, any text round-trips exactly: the natural choice for
 * machine-written streams (logs, events) where a learned vocabulary would go stale.
 */
import { BadConfigError, BadInputError } from '../errors.js';
import type { Tokenizer, TokenizerJSON } from './tokenizer.js';

/** Special tokens of the byte tokenizer, in id order after the 256 bytes. */
export const BYTE_SPECIALS: readonly string[] = ['pad', 'bos', 'eos', 'sep'];

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });

/** UTF-8 bytes as ids 0..255; `pad` = 256, `bos` = 257, `eos` = 258, `sep` = 259. vocabSize 260. */
export class ByteTokenizer implements Tokenizer {
  readonly kind = 'byte';
  readonly vocabSize = 256 + BYTE_SPECIALS.length;
  readonly specials: Readonly<Record<string, number>> = Object.freeze(Object.fromEntries(BYTE_SPECIALS.map((name, i) => [name, 256 + i])));

  encode(text: string): Int32Array {
    if (typeof text !== 'string') throw new BadInputError('text', `expected a string, got ${typeof text}`);
    return Int32Array.from(encoder.encode(text));
  }

  /** The bytes themselves as ids: what the model scores is exactly what arrived. */
  encodeBytes(bytes: Uint8Array): Int32Array {
    if (!(bytes instanceof Uint8Array)) throw new BadInputError('bytes', `expected a Uint8Array, got ${typeof bytes}`);
    return Int32Array.from(bytes);
  }

  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new BadInputError('ids', `element ${i} is ${String(id)}, expected an integer in [0, ${this.vocabSize})`);
      }
      if (id < 256) bytes.push(id);
    }
    return decoder.decode(Uint8Array.from(bytes));
  }

  toJSON(): TokenizerJSON {
    return { kind: this.kind, specials: [...BYTE_SPECIALS] };
  }
}

/** Rebuilds a tokenizer from {@link Tokenizer.toJSON}. Only `byte` is built in. */
export function tokenizerFromJSON(json: unknown): Tokenizer {
  const kind = (json as { kind?: unknown } | null)?.kind;
  if (kind === 'byte') return new ByteTokenizer();
  throw new BadConfigError('tokenizer.kind', `unknown tokenizer kind ${JSON.stringify(kind)}; built in: "byte"`);
}
