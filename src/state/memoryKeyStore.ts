/** A {@link KeyStateStore} in a Map: unbounded, not durable. For tests, snapshots and few keys. */
import { checkKey, checkOpen, checkValue, type KeyStateStore } from './keyStateStore.js';

export class MemoryKeyStore implements KeyStateStore {
  private readonly map = new Map<string, Uint8Array>();
  private closed = false;

  /** Optionally starts from `[key, bytes]` pairs (a Map, another store's entries). */
  constructor(entries?: Iterable<readonly [string, Uint8Array]>) {
    if (entries !== undefined) for (const [k, v] of entries) this.put(k, v);
  }

  /** Keys held. */
  get size(): number {
    return this.map.size;
  }

  get(key: string): Uint8Array | undefined {
    checkOpen(this.closed, 'get');
    checkKey(key);
    return this.map.get(key);
  }

  put(key: string, value: Uint8Array): void {
    checkOpen(this.closed, 'put');
    checkKey(key);
    checkValue(value);
    this.map.set(key, value);
  }

  delete(key: string): void {
    checkOpen(this.closed, 'delete');
    checkKey(key);
    this.map.delete(key);
  }

  keys(): Iterable<string> {
    checkOpen(this.closed, 'keys');
    return [...this.map.keys()];
  }

  flush(): Promise<void> {
    checkOpen(this.closed, 'flush');
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
