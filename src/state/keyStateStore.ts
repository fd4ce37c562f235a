/**
 * The keyed state store: the one owner of per-key state (Kafka Streams' split: processors
 * process, stores own state). An operator keeps a bounded cache of live states and hands every
 * other key's bytes to the store; a checkpoint writes the live ones too and `flush()`es, after
 * which everything put so far survives a crash (for a durable store).
 *
 * Reads and writes are synchronous (the operator runs between model rounds and cannot wait);
 * only `flush()` and `close()` are asynchronous, so a store backed by a network log (a compacted
 * Kafka changelog) buffers puts and makes them durable in `flush()`.
 */
import { BadInputError, StoreClosedError } from '../errors.js';

export interface KeyStateStore {
  /** The bytes last put under `key`, or undefined. The caller must not mutate them. */
  get(key: string): Uint8Array | undefined;
  /** Stores `value` under `key` (replacing what was there). The store keeps the array: do not mutate it afterwards. */
  put(key: string, value: Uint8Array): void;
  /** Removes `key` (nothing happens when it is absent). */
  delete(key: string): void;
  /** Every key present, each once, in no particular order; keys put or deleted while iterating may or may not appear. */
  keys(): Iterable<string>;
  /** Makes every put and delete so far durable (a checkpoint); resolves when they are. */
  flush(): Promise<void>;
  /** Flushes, then frees the store's resources; any later call throws a {@link StoreClosedError}. Idempotent. */
  close(): Promise<void>;
}

/** Longest key, in UTF-8 bytes (LMDB's default key limit is 1978 bytes; Kafka keys may be longer, hashed keys are not). */
export const MAX_KEY_BYTES = 1024;

const encoder = new TextEncoder();

/** Throws a BadInputError for a key that is not a non-empty string of at most MAX_KEY_BYTES UTF-8 bytes. */
export function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new BadInputError('key', `expected a string, got ${key === null ? 'null' : typeof key}`);
  if (key.length === 0) throw new BadInputError('key', 'is empty');
  const n = encoder.encode(key).length;
  if (n > MAX_KEY_BYTES) throw new BadInputError('key', `is ${n} UTF-8 bytes, at most ${MAX_KEY_BYTES} are allowed`);
}

/** Throws a BadInputError for a value that is not a Uint8Array. */
export function checkValue(value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new BadInputError('value', `expected a Uint8Array, got ${value === null ? 'null' : typeof value}`);
}

/** Throws a StoreClosedError when `closed`. */
export function checkOpen(closed: boolean, what: string): void {
  if (closed) throw new StoreClosedError(`${what}: the store is closed`);
}

/** Every `[key, bytes]` of a store (read lazily, key by key). */
export function* storeEntries(store: KeyStateStore): Generator<[string, Uint8Array]> {
  for (const key of store.keys()) {
    const v = store.get(key);
    if (v !== undefined) yield [key, v];
  }
}
