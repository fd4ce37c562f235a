/**
 * The changelog side of aligned checkpoints (fromKafka's `checkpoint` option): a
 * {@link KeyStateStore} whose entries are written to a compacted changelog topic at each
 * checkpoint, and shared (not per-key) state split into chunks under reserved keys. Both use the
 * record format of {@link changelogMessage} (key, input partition, covered offset), which the
 * per-record `record.state` changelog uses too, and are read back by {@link restoreFromChangelog}.
 */
import type { Message, Producer } from 'kafkajs';
import { CorruptStateError } from '../../src/errors.js';
import { createHash } from 'node:crypto';
import { MemoryKeyStore } from '../../src/state/memoryKeyStore.js';
import { changelogMessage, type RestoredState } from './changelog.js';

/**
 * Largest changelog message written (values are chunked or grouped under it): below the broker's
 * default `message.max.bytes` (1 MiB) with room for keys and headers.
 */
export const MAX_CHANGELOG_MESSAGE_BYTES = 900 * 1024;

/**
 * A digest telling changed bytes from unchanged. Not a CRC-32: the states end with a CRC-32 of
 * what precedes them, and the CRC-32 of any such buffer is the same constant.
 */
export function digestOf(bytes: Uint8Array): string {
  return createHash('sha1').update(bytes).digest('base64');
}

/** The pseudo input topic under which shared state is written (changelog partition 0). */
export const SHARED_STATE_TOPIC = '\u0000shared';

/**
 * Per-key state of input partitions, written to the changelog at checkpoints: a key is written
 * when its bytes changed since its last durable write, with the offset its partition's input is
 * covered up to. `namespace` separates stores sharing one changelog (e.g. model and mixer states).
 * Entries become durable at the next aligned checkpoint ({@link ChangelogKeyStore.changes}), not at `flush()`.
 */
export class ChangelogKeyStore extends MemoryKeyStore {
  /** The input partition (`topic:partition`) each key's records come from. */
  private readonly owners = new Map<string, { topic: string; partition: number }>();
  /** Digest of each key's last durable bytes (undefined: never written). */
  private readonly durable = new Map<string, string>();
  /** Keys deleted since their last durable write (a tombstone is due). */
  private readonly deleted = new Set<string>();

  constructor(readonly namespace: string) {
    super();
  }

  override put(key: string, value: Uint8Array): void {
    super.put(key, value);
    this.deleted.delete(key);
  }

  override delete(key: string): void {
    const present = this.get(key) !== undefined;
    super.delete(key);
    if (present && this.durable.has(key)) this.deleted.add(key);
  }

  /**
   * Drops `keys` from memory, with no tombstone: a partition taken over whose changelog holds no
   * state of them, so they start empty (what this process put for them, e.g. at a checkpoint
   * after the partition was revoked, is not theirs).
   */
  forget(keys: Iterable<string>): void {
    for (const key of keys) {
      this.owners.delete(key);
      super.delete(key);
      this.durable.delete(key);
      this.deleted.delete(key);
    }
  }

  /** Notes that `key`'s records come from this input partition (its changelog partition). */
  route(key: string, topic: string, partition: number): void {
    const o = this.owners.get(key);
    if (o === undefined || o.topic !== topic || o.partition !== partition) this.owners.set(key, { topic, partition });
  }

  /**
   * The changelog records of every routed key changed since its last durable write, each
   * covering its partition's input up to `positions.get(topic:partition) - 1`; `durable()`
   * marks them written once the caller has sent them.
   */
  changes(positions: ReadonlyMap<string, number>): { messages: Message[]; durable(): void } {
    const messages: Message[] = [];
    const written: Array<[string, string | null]> = [];
    const coveredOf = (key: string): { topic: string; partition: number; covered: number } | undefined => {
      const o = this.owners.get(key);
      const position = o === undefined ? undefined : positions.get(`${o.topic}:${o.partition}`);
      return o === undefined || position === undefined ? undefined : { ...o, covered: position - 1 };
    };
    for (const key of this.keys()) {
      const at = coveredOf(key);
      if (at === undefined) continue;
      const bytes = this.get(key)!;
      const digest = digestOf(bytes);
      if (this.durable.get(key) === digest) continue;
      messages.push(changelogMessage(at.topic, at.partition, this.namespace + key, bytes, at.covered));
      written.push([key, digest]);
    }
    for (const key of this.deleted) {
      const at = coveredOf(key);
      if (at === undefined) continue;
      messages.push(changelogMessage(at.topic, at.partition, this.namespace + key, null, at.covered));
      written.push([key, null]);
    }
    return {
      messages,
      durable: () => {
        for (const [key, digest] of written) {
          if (digest === null) {
            this.durable.delete(key);
            this.deleted.delete(key);
          } else this.durable.set(key, digest);
        }
      },
    };
  }

  /**
   * Installs the restored snapshots of one input partition (those of this store's namespace);
   * returns, per key, the last input offset its state covers.
   */
  restore(topic: string, partition: number, states: ReadonlyMap<string, RestoredState>): Map<string, number> {
    const covered = new Map<string, number>();
    for (const [name, snapshot] of states) {
      if (!name.startsWith(this.namespace)) continue;
      const key = name.slice(this.namespace.length);
      this.owners.set(key, { topic, partition });
      covered.set(key, snapshot.covered);
      if (snapshot.bytes === null) {
        super.delete(key);
        this.durable.delete(key);
        continue;
      }
      super.put(key, snapshot.bytes);
      this.durable.set(key, digestOf(snapshot.bytes));
    }
    return covered;
  }

  /** Drops every key of a partition this member no longer owns (its new owner restores them). */
  release(topic: string, partition: number): void {
    this.forget([...this.owners].filter(([, o]) => o.topic === topic && o.partition === partition).map(([key]) => key));
  }
}

/**
 * Shared state (weights, statistics: not per key) as changelog records on partition 0 under
 * reserved keys `<name>/<slot>/<i>`, chunked under {@link MAX_CHANGELOG_MESSAGE_BYTES}. Each
 * chunk's value starts with the chunk count; all chunks of one write carry the same `epoch` (a
 * millisecond clock) as their covered offset. Writes alternate between two slots, so a crash
 * halfway through one leaves the other complete.
 */
export function sharedStateMessages(name: string, slot: number, bytes: Uint8Array, epoch: number, chunkBytes = MAX_CHANGELOG_MESSAGE_BYTES): Message[] {
  const count = Math.max(1, Math.ceil(bytes.length / chunkBytes));
  const messages: Message[] = [];
  for (let i = 0; i < count; i++) {
    const part = bytes.subarray(i * chunkBytes, Math.min(bytes.length, (i + 1) * chunkBytes));
    const value = new Uint8Array(4 + part.length);
    new DataView(value.buffer).setUint32(0, count, true);
    value.set(part, 4);
    messages.push(changelogMessage(SHARED_STATE_TOPIC, 0, `${name}/${slot}/${i}`, value, epoch));
  }
  return messages;
}

/** The bytes of one slot's write when it is complete (every chunk of the same epoch), else undefined. */
export function assembleSlot(states: ReadonlyMap<string, RestoredState>, name: string, slot: number): { bytes: Uint8Array; epoch: number } | undefined {
  const countOf = (b: Uint8Array): number => (b.length < 4 ? -1 : new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0, true));
  const first = states.get(`${name}/${slot}/0`);
  if (first?.bytes == null) return undefined;
  const count = countOf(first.bytes);
  if (count < 1) throw new CorruptStateError(name, `a shared-state chunk of ${first.bytes.length} bytes`);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const chunk = states.get(`${name}/${slot}/${i}`);
    if (chunk?.bytes == null || chunk.covered !== first.covered || countOf(chunk.bytes) !== count) return undefined;
    parts.push(chunk.bytes.subarray(4));
  }
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { bytes, epoch: first.covered };
}

/** The newest complete write of shared state `name` among restored records (and its slot), or undefined. */
export function assembleSharedState(states: ReadonlyMap<string, RestoredState>, name: string): { bytes: Uint8Array; slot: 0 | 1 } | undefined {
  const a = assembleSlot(states, name, 0);
  const b = assembleSlot(states, name, 1);
  if (a === undefined && b === undefined) return undefined;
  return b === undefined || (a !== undefined && a.epoch >= b.epoch) ? { bytes: a!.bytes, slot: 0 } : { bytes: b.bytes, slot: 1 };
}

/** Sends `messages` to `topic` in requests under {@link MAX_CHANGELOG_MESSAGE_BYTES} each (the broker rejects larger record batches). */
export async function sendGrouped(producer: Pick<Producer, 'send'>, topic: string, messages: Message[]): Promise<void> {
  let group: Message[] = [];
  let bytes = 0;
  const sizeOf = (m: Message): number => (m.value === null || m.value === undefined ? 0 : (m.value as Buffer).length) + String(m.key ?? '').length + 64;
  for (const m of messages) {
    const n = sizeOf(m);
    if (group.length > 0 && bytes + n > MAX_CHANGELOG_MESSAGE_BYTES) {
      await producer.send({ topic, acks: -1, messages: group });
      group = [];
      bytes = 0;
    }
    group.push(m);
    bytes += n;
  }
  if (group.length > 0) await producer.send({ topic, acks: -1, messages: group });
}

