import type { Kafka, Message } from 'kafkajs';
import { ConnectorError } from '../../src/errors.js';
import type { Logger } from '../../src/logger.js';
import { PartitionOffsetTracker } from './offsetTracker.js';

/**
 * Turns one key's state into bytes and back. `encode` must be deterministic and `decode(encode(s))`
 * must behave exactly like `s`: a processor restored from the changelog continues bit for bit.
 */
export interface StateCodec<S> {
  encode(state: S): Uint8Array;
  decode(bytes: Uint8Array): S;
  /** Frees a state the store owns (tensors); called when a state is replaced, revoked or at shutdown. */
  dispose?(state: S): void;
}

/** Per-key state kept in a compacted changelog topic (Kafka Streams' pattern). */
export interface ChangelogOptions<S> {
  /** Compacted topic holding the snapshots; created when missing with as many partitions as the widest input topic. */
  topic: string;
  codec: StateCodec<S>;
  /** Give up restoring a partition after this long (a clear error, never a silent empty state). Default 60 000 ms. */
  restoreTimeoutMs?: number;
}

/** Headers on changelog records: which input partition and key a snapshot belongs to, and the last input offset it covers. */
export const CHANGELOG_HEADERS = { topic: 'x-state-topic', key: 'x-state-key', covered: 'x-state-covered-offset' } as const;

/** One key's state as held by the store. */
export interface KeyEntry<S> {
  state: S | undefined;
  /** The last input offset applied to `state` (-1: none). Records at or below it are not applied again. */
  covered: number;
  /** This key's records emitted and not yet acknowledged (their outputs are not delivered yet). */
  acks: PartitionOffsetTracker;
  /** The first input offset applied and not covered by a durable snapshot; null when the snapshot is current. */
  dirtySince: number | null;
  /**
   * A snapshot taken at a commit tick, written once every record of the key up to `covered` is
   * acknowledged (a key that is never idle still gets snapshots). `nextDirty`: the first offset
   * applied after it was taken.
   */
  pending: { message: Message; covered: number; nextDirty: number | null } | null;
}

/** A fresh entry; `startOffset` is where the key's acknowledgement tracking starts. */
export function newKeyEntry<S>(state: S | undefined, covered: number, startOffset: number): KeyEntry<S> {
  return { state, covered, acks: new PartitionOffsetTracker(startOffset), dirtySince: null, pending: null };
}

/** A restored snapshot. */
export interface RestoredState {
  bytes: Uint8Array | null;
  covered: number;
  /**
   * A snapshot covering less input was written after this one (a member that had lost the
   * partition, or a zombie, writing late). Compaction keeps the last record per key, so the
   * restorer writes this snapshot again to make it the last one.
   */
  shadowed: boolean;
}

/** The changelog key of a state: input topic and state key, so several input topics can share one changelog. */
export function changelogKey(topic: string, key: string): string {
  return `${topic}\u0000${key}`;
}

/** A changelog record: a key's state bytes (null: a tombstone) and the input they cover. */
export function changelogMessage(topic: string, partition: number, key: string, bytes: Uint8Array | null, covered: number): Message {
  return {
    key: changelogKey(topic, key),
    partition,
    value: bytes === null ? null : Buffer.from(bytes),
    headers: { [CHANGELOG_HEADERS.topic]: topic, [CHANGELOG_HEADERS.key]: key, [CHANGELOG_HEADERS.covered]: String(covered) },
  };
}

/** The changelog record that writes a restored snapshot again (see {@link RestoredState.shadowed}). */
export function rewriteMessage(topic: string, partition: number, key: string, snapshot: RestoredState): Message {
  return changelogMessage(topic, partition, key, snapshot.bytes, snapshot.covered);
}

/** The changelog record for one key's snapshot (a tombstone when the state was deleted). */
export function snapshotMessage<S>(codec: StateCodec<S>, topic: string, partition: number, key: string, entry: Pick<KeyEntry<S>, 'state' | 'covered'>): Message {
  return changelogMessage(topic, partition, key, entry.state === undefined ? null : codec.encode(entry.state), entry.covered);
}

/**
 * Reads changelog partitions from the beginning to their current end and returns, per input
 * partition and key, the snapshot covering the most input (not the last one written: a stale
 * writer can never roll a key back). Must run after the partitions' committed input offsets are
 * known: every commit is made after the snapshots that justify it are durable, so a restore that
 * starts later sees state at least as new as the committed position.
 */
export async function restoreFromChangelog(
  kafka: Kafka,
  changelogTopic: string,
  wanted: ReadonlyArray<{ topic: string; partition: number }>,
  groupId: string,
  timeoutMs: number,
  logger: Logger,
): Promise<Map<string, Map<string, RestoredState>>> {
  const result = new Map<string, Map<string, RestoredState>>();
  for (const { topic, partition } of wanted) result.set(`${topic}:${partition}`, new Map());
  if (wanted.length === 0) return result;
  const admin = kafka.admin();
  await admin.connect();
  let ends: Map<number, number>;
  try {
    const offsets = await admin.fetchTopicOffsets(changelogTopic);
    ends = new Map(offsets.map((o) => [o.partition, Number(o.high) - Number(o.low) > 0 ? Number(o.high) : 0]));
  } finally {
    await admin.disconnect();
  }
  const remaining = new Set<number>();
  for (const { partition } of wanted) if ((ends.get(partition) ?? 0) > 0) remaining.add(partition);
  if (remaining.size === 0) return result;
  const byTopic = new Set(wanted.map((w) => `${w.topic}:${w.partition}`));
  // read_committed (the kafkajs default): snapshots of aborted transactions are never restored.
  const consumer = kafka.consumer({ groupId: `${groupId}.restore.${process.pid}.${Date.now()}`, sessionTimeout: 10_000, maxWaitTimeInMs: 100, readUncommitted: false });
  const started = Date.now();
  let records = 0;
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [changelogTopic], fromBeginning: true });
    await new Promise<void>((done, fail) => {
      const timer = setTimeout(
        () => fail(new ConnectorError(`restoring ${changelogTopic} partitions ${[...remaining].join(',')} timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      const progressed = (partition: number, lastOffset: string) => {
        if (Number(lastOffset) >= (ends.get(partition) ?? 0) - 1) remaining.delete(partition);
        if (remaining.size === 0) {
          clearTimeout(timer);
          done();
        }
      };
      // The only progress path: kafkajs emits END_BATCH_PROCESS after every batch, also for
      // fetches that held only transaction markers or aborted records (transactional changelogs),
      // which it resolves without calling eachBatch.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => progressed(payload.partition, payload.lastOffset));
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            const end = ends.get(batch.partition) ?? 0;
            for (const message of batch.messages) {
              const offset = Number(message.offset);
              if (offset >= end) break;
              const topic = message.headers?.[CHANGELOG_HEADERS.topic]?.toString();
              const key = message.headers?.[CHANGELOG_HEADERS.key]?.toString();
              const covered = Number(message.headers?.[CHANGELOG_HEADERS.covered]?.toString() ?? NaN);
              if (topic === undefined || key === undefined || !Number.isFinite(covered)) continue;
              if (!byTopic.has(`${topic}:${batch.partition}`)) continue;
              records++;
              const states = result.get(`${topic}:${batch.partition}`) as Map<string, RestoredState>;
              const previous = states.get(key);
              // A stale writer can never roll a key back: keep the snapshot covering the most input
              // (the state is a function of the key's input up to `covered`, whoever wrote it).
              if (previous === undefined || covered >= previous.covered) {
                states.set(key, { bytes: message.value === null ? null : new Uint8Array(message.value), covered, shadowed: false });
              } else {
                previous.shadowed = true;
              }
            }
          },
        })
        .catch(fail);
    });
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
  logger.info('restored state from changelog', { changelogTopic, partitions: wanted.map((w) => `${w.topic}:${w.partition}`), records, ms: Date.now() - started });
  return result;
}
