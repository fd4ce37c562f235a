/**
 * The live key states of {@link infiniteFormer}: at most `maxKeys` `StreamState`s in memory (the
 * least recently run evicted first), every other key's state owned by a {@link KeyStateStore}.
 * An evicted key is written to the store as {@link keyStateToBytes} bytes and its tensors freed;
 * a key not in memory is looked up in the store (bit-identical restore), else starts fresh.
 */
import { InfiniformerError } from '../src/errors.js';
import type { InfiniFormer } from '../src/model/model.js';
import type { KeyStateStore } from '../src/state/keyStateStore.js';
import { keyStateFromBytes, keyStateToBytes, type KeyState } from './keyState.js';

/** How a {@link KeyCache} talks back to its operator. */
export interface KeyCacheHooks {
  /** Seed of a new key's state. */
  seedOf(key: string): number;
  /** Whether tokens of `key` wait (a key with none is evicted first). */
  isWaiting(key: string): boolean;
  /** A key left memory. */
  onEvicted(key: string): void;
  /** A key's bytes could not be restored (it starts fresh). */
  onRestoreError(key: string, error: unknown): void;
}

export class KeyCache {
  /** Live states, least recently run first. */
  private readonly live = new Map<string, KeyState>();
  /** Live keys run (or loaded) since the last {@link writeAll}: the others' bytes in the store are current. */
  private readonly changed = new Set<string>();
  evictions = 0;
  restores = 0;

  constructor(
    private readonly model: InfiniFormer,
    private readonly maxKeys: number,
    private readonly store: KeyStateStore | undefined,
    private readonly hooks: KeyCacheHooks,
  ) {}

  get size(): number {
    return this.live.size;
  }

  get(key: string): KeyState | undefined {
    return this.live.get(key);
  }

  /** Marks `key` the most recently run. */
  touch(key: string): void {
    const ks = this.live.get(key);
    if (ks === undefined) return;
    this.live.delete(key);
    this.live.set(key, ks);
    this.changed.add(key);
  }

  /** The state of `key` in memory: restored from the store or fresh; evicts others (never one in `protect`) to make room. */
  load(key: string, protect: ReadonlySet<string>): KeyState {
    const have = this.live.get(key);
    if (have !== undefined) return have;
    while (this.live.size >= this.maxKeys) {
      this.evictions++;
      this.evict(this.victim(protect));
    }
    let ks: KeyState | undefined;
    try {
      const bytes = this.store?.get(key);
      if (bytes !== undefined) {
        ks = keyStateFromBytes(this.model, bytes);
        this.restores++;
      }
    } catch (error) {
      this.hooks.onRestoreError(key, error);
    }
    ks ??= { state: this.model.createState(this.hooks.seedOf(key)), nextLogProbs: undefined };
    this.live.set(key, ks);
    this.changed.add(key);
    return ks;
  }

  /**
   * Writes every live state changed since the last call to the store (they stay in memory): the
   * operator's half of a checkpoint. The others' bytes in the store are theirs already.
   */
  writeAll(): void {
    if (this.store === undefined) return;
    for (const key of this.changed) {
      const ks = this.live.get(key);
      if (ks !== undefined) this.store.put(key, keyStateToBytes(ks));
    }
    this.changed.clear();
  }

  /** Frees `key`'s live state without writing it (its next load reads the store). */
  drop(key: string): void {
    const ks = this.live.get(key);
    if (ks === undefined) return;
    ks.state.dispose();
    this.live.delete(key);
    this.changed.delete(key);
    this.hooks.onEvicted(key);
  }

  /** Evicts every live key (into the store, when there is one). */
  evictAll(): void {
    for (const key of [...this.live.keys()]) this.evict(key);
  }

  /** Frees every live state without writing it. */
  release(): void {
    for (const ks of this.live.values()) ks.state.dispose();
    this.live.clear();
    this.changed.clear();
  }

  /** The least recently run key with no waiting tokens, else the least recently run one. */
  private victim(protect: ReadonlySet<string>): string {
    let victim: string | undefined;
    for (const key of this.live.keys()) {
      if (protect.has(key)) continue;
      if (!this.hooks.isWaiting(key)) return key;
      victim ??= key;
    }
    if (victim === undefined) throw new InfiniformerError('infiniteFormer: no key can be evicted (internal error)');
    return victim;
  }

  private evict(key: string): void {
    const ks = this.live.get(key)!;
    // Serialise before freeing; if the store throws, the state is still freed and the error goes on.
    try {
      if (this.store !== undefined) this.store.put(key, keyStateToBytes(ks));
    } finally {
      ks.state.dispose();
      this.live.delete(key);
      this.changed.delete(key);
      this.hooks.onEvicted(key);
    }
  }
}
