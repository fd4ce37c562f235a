/**
 * Tokenizers turn text into integer ids the model embeds. The model only needs `vocabSize`;
 * everything else (how text maps to ids) lives behind this interface so other schemes (word
 * vocabularies, BPE) can be plugged in without touching the model.
 */

/** A reversible text <-> token id mapping. */
export interface Tokenizer {
  /** Kind name, stored in a model directory so `load` can rebuild the tokenizer. */
  readonly kind: string;
  /** Number of distinct ids; every id is in [0, vocabSize). */
  readonly vocabSize: number;
  /** Special tokens by name (e.g. `pad`, `bos`, `eos`, `sep`) -> id. */
  readonly specials: Readonly<Record<string, number>>;
  /** Text -> ids. */
  encode(text: string): Int32Array;
  /** Raw bytes -> ids, for byte-level tokenizers: every byte kept, valid UTF-8 or not. */
  encodeBytes?(bytes: Uint8Array): Int32Array;
  /** Ids -> text. Special tokens are dropped; invalid byte sequences decode to U+FFFD. */
  decode(ids: ArrayLike<number>): string;
  /** A JSON-serialisable description from which {@link tokenizerFromJSON} rebuilds it. */
  toJSON(): TokenizerJSON;
}

/** Serialised tokenizer: its kind plus kind-specific fields. */
export interface TokenizerJSON {
  kind: string;
  [field: string]: unknown;
}
