/**
 * A {@link KeyStateStore} for many keys in bounded RAM: the most recently used entries stay in
 * memory (an LRU bounded in bytes and entries); the rest live in an LMDB database on disk (see
 * docs/state.md for why LMDB). A put only touches memory; an entry pushed out of the LRU, and
 * every changed one at `flush()`, is written to disk. Each value is stored with a CRC-32, so
 * bytes damaged on disk are a {@link CorruptStateError}, never a silently wrong state.
 */
import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { BadConfigError, CorruptStateError, StateStoreError } from '../errors.js';
import { crc32 } from '../model/checksum.js';
import { checkKey, checkOpen, checkValue, type KeyStateStore } from './keyStateStore.js';

/** Options of {@link SpillingKeyStore}. */
export interface SpillingKeyStoreOptions {
  /** Bound on the bytes of the entries kept in memory. Default 64 MiB. */
  maxHotBytes?: number;
  /** Bound on the entries kept in memory. Default 10,000. */
  maxHotEntries?: number;
}

interface Hot {
  value: Uint8Array;
  /** Changed since it was last written to disk. */
  dirty: boolean;
}

/** Counters of a {@link SpillingKeyStore}. */
export interface SpillingKeyStoreStats {
  hotEntries: number;
  hotBytes: number;
  /** Values written to disk (spilled or flushed) so far. */
  writes: number;
  /** Gets served from disk. */
  diskReads: number;
}

export class SpillingKeyStore implements KeyStateStore {
  private readonly db: RootDatabase<Buffer, string> & Database<Buffer, string>;
  private readonly hot = new Map<string, Hot>();
  /** Writes (a value, or null for a delete) handed to LMDB and not yet committed: reads see them first. */
  private readonly pending = new Map<string, Uint8Array | null>();
  private readonly maxHotBytes: number;
  private readonly maxHotEntries: number;
  private hotBytes = 0;
  private closed = false;
  private failure: unknown;
  private readonly counts = { writes: 0, diskReads: 0 };

  /** Opens (or creates) the database in directory `path`. */
  constructor(
    readonly path: string,
    options: SpillingKeyStoreOptions = {},
  ) {
    const maxBytes = options.maxHotBytes ?? 64 * 1024 * 1024;
    const maxEntries = options.maxHotEntries ?? 10_000;
    if (!(Number.isInteger(maxBytes) && maxBytes >= 0)) throw new BadConfigError('maxHotBytes', `must be an integer >= 0, got ${String(maxBytes)}`);
    if (!(Number.isInteger(maxEntries) && maxEntries >= 0)) throw new BadConfigError('maxHotEntries', `must be an integer >= 0, got ${String(maxEntries)}`);
    this.maxHotBytes = maxBytes;
    this.maxHotEntries = maxEntries;
    try {
      mkdirSync(path, { recursive: true });
      // binary: values are our own bytes (the default msgpack encoding would wrap them).
      this.db = open<Buffer, string>({ path, encoding: 'binary' });
    } catch (error) {
      throw new StateStoreError(`${path}: cannot open the state database: ${(error as Error).message}`, { cause: error });
    }
  }

  get(key: string): Uint8Array | undefined {
    this.check('get');
    checkKey(key);
    const h = this.hot.get(key);
    if (h !== undefined) {
      this.hot.delete(key); // most recently used
      this.hot.set(key, h);
      return h.value;
    }
    const p = this.pending.get(key);
    if (p !== undefined) return p ?? undefined;
    const raw = this.db.getBinary(key);
    if (raw === undefined) return undefined;
    this.counts.diskReads++;
    const value = unframe(key, raw);
    this.remember(key, { value, dirty: false });
    return value;
  }

  put(key: string, value: Uint8Array): void {
    this.check('put');
    checkKey(key);
    checkValue(value);
    this.forget(key);
    this.remember(key, { value, dirty: true });
  }

  delete(key: string): void {
    this.check('delete');
    checkKey(key);
    this.forget(key);
    this.pending.set(key, null);
    this.track(key, null, this.db.remove(key));
  }

  keys(): Iterable<string> {
    this.check('keys');
    const inMemory = new Set<string>(this.hot.keys());
    const deleted = new Set<string>();
    for (const [k, v] of this.pending) {
      if (v === null) deleted.add(k);
      else inMemory.add(k);
    }
    const db = this.db;
    return (function* () {
      yield* inMemory;
      for (const k of db.getKeys()) if (!inMemory.has(k) && !deleted.has(k)) yield k;
    })();
  }

  async flush(): Promise<void> {
    this.check('flush');
    for (const [key, h] of this.hot) {
      if (!h.dirty) continue;
      this.write(key, h.value);
      h.dirty = false;
    }
    await this.db.flushed;
    this.rethrow();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      this.hot.clear();
      this.hotBytes = 0;
      await this.db.close();
    }
  }

  stats(): SpillingKeyStoreStats {
    return { hotEntries: this.hot.size, hotBytes: this.hotBytes, ...this.counts };
  }

  private check(what: string): void {
    checkOpen(this.closed, what);
    this.rethrow();
  }

  /** A failed background write fails the next call: the state it held is not on disk. */
  private rethrow(): void {
    if (this.failure === undefined) return;
    const f = this.failure;
    this.failure = undefined;
    throw new StateStoreError(`${this.path}: a write to the state database failed: ${(f as Error).message}`, { cause: f });
  }

  private remember(key: string, h: Hot): void {
    this.hot.set(key, h);
    this.hotBytes += h.value.length;
    // Least recently used first out; a dirty one is written before it leaves memory.
    for (const [k, old] of this.hot) {
      if (this.hotBytes <= this.maxHotBytes && this.hot.size <= this.maxHotEntries) break;
      this.hot.delete(k);
      this.hotBytes -= old.value.length;
      if (old.dirty) this.write(k, old.value);
    }
  }

  private forget(key: string): void {
    const h = this.hot.get(key);
    if (h === undefined) return;
    this.hot.delete(key);
    this.hotBytes -= h.value.length;
  }

  private write(key: string, value: Uint8Array): void {
    this.counts.writes++;
    this.pending.set(key, value);
    // LMDB batches these puts into one transaction per event-loop turn.
    this.track(key, value, this.db.put(key, frame(value)));
  }

  private track(key: string, value: Uint8Array | null, done: Promise<boolean>): void {
    done.then(
      () => {
        if (this.pending.get(key) === value) this.pending.delete(key);
      },
      (error: unknown) => {
        this.failure ??= error;
      },
    );
  }
}

/** CRC-32 (little-endian) then the value. */
function frame(value: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + value.length);
  out.writeUInt32LE(crc32(value), 0);
  out.set(value, 4);
  return out;
}

function unframe(key: string, raw: Uint8Array): Uint8Array {
  if (raw.length < 4) throw new CorruptStateError(key, `${raw.length} bytes on disk, too short to hold a checksum`);
  const value = new Uint8Array(raw.subarray(4)); // a copy: LMDB may reuse its buffer
  const want = new DataView(raw.buffer, raw.byteOffset, raw.byteLength).getUint32(0, true);
  if (crc32(value) !== want) throw new CorruptStateError(key, 'checksum mismatch on disk');
  return value;
}
