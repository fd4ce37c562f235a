import { type Kafka, type Consumer, type EachBatchPayload, type IHeaders, type KafkaMessage, type Message, type Producer } from 'kafkajs';
import { Observable } from 'rxjs';
import { BadConfigError, ConnectorError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { newKeyEntry, rewriteMessage, snapshotMessage, restoreFromChangelog, type ChangelogOptions, type KeyEntry, type RestoredState } from './changelog.js';
import { deadLetterMessage, type DeadLetterReason } from './deadLetter.js';
import { rawDecoder, type ValueDecoder } from './decode.js';
import { PartitionOffsetTracker } from './offsetTracker.js';
import { DEFAULT_RETRY, ensureTopics, kafkaClient, kafkaFailure, type KafkaConnection } from './client.js';
import { PartitionTransactions, isFencedError, transactionalIdOf, type ExactlyOnceOptions, type OutputTransaction } from './transactions.js';

const log = createLogger('infiniformer:kafka:source');

/** Read and write access to the state of the record's key (one state per key and partition). */
export interface KeyedState<S> {
  /** The key's current state, or undefined on first sight. */
  get(): S | undefined;
  /**
   * Replaces the key's state with the result of applying this record (call at most once per
   * record, in offset order per key). The store takes ownership and disposes the replaced state.
   */
  set(next: S): void;
  /** Deletes the key's state (a tombstone in the changelog). */
  delete(): void;
}

/** One consumed record. Call `ack()` once the outputs derived from it are delivered, or `fail()`. */
export interface KafkaRecord<T, S = never> {
  topic: string;
  partition: number;
  /** Kafka offset (a decimal string, as kafkajs gives it). */
  offset: string;
  key: Buffer | null;
  /** The key that selects the state: the record key as UTF-8, or `<topic>:<partition>` when the record has none. */
  stateKey: string;
  value: T;
  headers: IHeaders;
  /** Broker timestamp, ms since the epoch as a string. */
  timestamp: string;
  /** Marks the record's outputs as delivered; its offset becomes committable (in order). Idempotent. */
  ack(): void;
  /** Sends the record to the dead-letter topic with `error`, then acknowledges it. */
  fail(error: unknown): void;
  /** The key's state (kept in memory; persisted when a changelog is configured). */
  state: KeyedState<S>;
  /**
   * Exactly-once mode only: the open transaction of the record's input partition. Produce the
   * record's outputs through it (`toKafka({ exactlyOnce: true })` does), then `ack()`.
   */
  transaction?: OutputTransaction;
}

/** What to do with records whose value is null (tombstones). */
export type NullValuePolicy = 'dead-letter' | 'skip' | 'delete-state';
/** What to do with records without a key. */
export type MissingKeyPolicy = 'partition' | 'dead-letter';

export interface FromKafkaOptions<T, S> extends KafkaConnection {
  groupId: string;
  topics: string[];
  /** Start from the earliest offset when the group has no committed offset. Default true. */
  fromBeginning?: boolean;
  /** Value decoder; a throw sends the record to the dead-letter topic. Default: raw bytes. */
  decode?: ValueDecoder<T>;
  /** Records with larger values are dead-lettered as `oversize`. Default 1 MiB. */
  maxValueBytes?: number;
  /** Default 'dead-letter'. */
  nullValues?: NullValuePolicy;
  /** Default 'partition': the state key becomes `<topic>:<partition>`. */
  missingKeys?: MissingKeyPolicy;
  /** Dead-letter topic (created when missing). Default `<groupId>.dlq`. */
  deadLetterTopic?: string;
  /** Pause a partition when this many of its records are in flight (emitted, not acknowledged). Default 1000. */
  highWatermark?: number;
  /** Resume a paused partition at or below this many in flight. Default highWatermark / 2. */
  lowWatermark?: number;
  /** How often acknowledged offsets (and due state snapshots) are committed. Default 1000 ms. */
  commitIntervalMs?: number;
  /** Per-key state changelog; without it state lives in memory only. */
  changelog?: ChangelogOptions<S>;
  /** Drain, commit and leave the group on SIGTERM, then complete. Default true. */
  handleSigterm?: boolean;
  /** How long a drain waits for in-flight records to be acknowledged. Default 30 000 ms. */
  drainTimeoutMs?: number;
  /** Consumer session timeout. Default 10 000 ms. */
  sessionTimeoutMs?: number;
  /**
   * Emitting a fetched batch gives the event loop a turn (timers, network: heartbeats, the
   * sink's sends, commit ticks) after this many ms of synchronous downstream processing, so a
   * slow pipeline is not evicted from the group and its outputs leave while the batch goes on.
   * Default 50 ms.
   */
  maxBlockingMs?: number;
  /**
   * Exactly-once mode: per input partition, the outputs (through `record.transaction`), dead
   * letters, state snapshots and the consumed offset commit in one transaction every
   * `commitIntervalMs`; read_committed readers see each input's outputs exactly once, and a
   * crashed or fenced member's open transaction is aborted. Default off (at-least-once).
   */
  exactlyOnce?: ExactlyOnceOptions;
  /**
   * Called for every record not emitted: dead-lettered (`deadLettered: true`) or skipped by
   * `nullValues: 'skip' | 'delete-state'`. For logs and counters; the record is handled already.
   */
  onDropped?: (event: DroppedRecord) => void;
}

/** A record the source did not emit, and why (see `onDropped`). */
export interface DroppedRecord {
  reason: DeadLetterReason;
  deadLettered: boolean;
  topic: string;
  partition: number;
  offset: string;
  /** Why, in words. */
  error: string;
}

/** Counters for monitoring and tests. */
export interface KafkaSourceStats {
  emitted: number;
  acked: number;
  deadLettered: number;
  /** Records skipped because the restored state already covers them (applied and delivered before a restart). */
  skippedAsApplied: number;
  /** Records of the currently assigned partitions emitted and not yet acknowledged. */
  inFlight: number;
  /**
   * Records that were in flight when their partition was revoked: they no longer count as in
   * flight, their late acknowledgements commit nothing, and the partition's new owner reads them again.
   */
  revokedInFlight: number;
  /** The largest number of records in flight at once, over all partitions. */
  maxInFlight: number;
  pauses: number;
  /** Committed offsets by `topic:partition`. */
  committed: Record<string, number>;
  assigned: string[];
  restoredKeys: number;
  snapshotsWritten: number;
  /** Restored snapshots written again because a stale one (covering less input) had been written after them. */
  snapshotsRewritten: number;
  /** Exactly-once mode: transactions committed. */
  transactions: number;
  /** Exactly-once mode: partitions given up because another member fenced this one's transactions (it owns them now). */
  fenced: number;
}

/** The source Observable plus controls. One subscription is one consumer-group member. */
export type KafkaSource<T, S> = Observable<KafkaRecord<T, S>> & {
  stats(): KafkaSourceStats;
  /** Stops fetching, waits for in-flight records to be acknowledged, commits, leaves the group, completes. */
  drain(): Promise<void>;
};

interface PartitionContext<S> {
  topic: string;
  partition: number;
  tracker: PartitionOffsetTracker | null;
  store: Map<string, KeyEntry<S>>;
  restored: Promise<void>;
  /** Paused by backpressure. */
  paused: boolean;
  committed: number;
  revoked: boolean;
  /** Exactly-once: the partition's transactional producer. */
  txn: PartitionTransactions | null;
  /** Exactly-once: a transaction is being committed; no records are emitted meanwhile. */
  committing: boolean;
  /** Records below this offset are committed already (read after fencing the previous owner). */
  minOffset: number;
}

const tp = (topic: string, partition: number) => `${topic}:${partition}`;

/** Notes that the record at `offset` changed the key's state. */
function markApplied<S>(entry: KeyEntry<S>, offset: number): void {
  entry.covered = offset;
  if (entry.dirtySince === null) entry.dirtySince = offset;
  if (entry.pending !== null && entry.pending.nextDirty === null) entry.pending.nextDirty = offset;
}

/**
 * A consumer-group source with at-least-once delivery: an offset is committed only after every
 * record up to it was acknowledged (`record.ack()`, usually by {@link toKafka} once the outputs
 * are delivered), in offset order per partition. Partitions pause at `highWatermark` records in
 * flight and resume at `lowWatermark`. Undecodable, oversize, keyless or null records go to a
 * dead-letter topic with the reason and their coordinates. With a changelog, per-key state is
 * snapshotted to a compacted topic with the input offset it covers and restored on assignment,
 * so a restarted or rebalanced processor continues with exactly the state it would have had.
 */
export function fromKafka<T = Buffer, S = never>(options: FromKafkaOptions<T, S>): KafkaSource<T, S> {
  const high = options.highWatermark ?? 1000;
  const low = options.lowWatermark ?? Math.floor(high / 2);
  if (!Number.isInteger(high) || high < 1) throw new BadConfigError('highWatermark', `must be a positive integer, got ${high}`);
  if (!Number.isInteger(low) || low < 0 || low >= high) throw new BadConfigError('lowWatermark', `must be an integer in [0, highWatermark), got ${low}`);
  if (options.topics.length === 0) throw new BadConfigError('topics', 'at least one topic is needed');
  if (!options.groupId) throw new BadConfigError('groupId', 'a consumer group id is needed');
  const decode = (options.decode ?? (rawDecoder as unknown as ValueDecoder<T>)) as ValueDecoder<T>;
  const maxValueBytes = options.maxValueBytes ?? 1 << 20;
  const nullValues = options.nullValues ?? 'dead-letter';
  const missingKeys = options.missingKeys ?? 'partition';
  const deadLetterTopic = options.deadLetterTopic ?? `${options.groupId}.dlq`;
  const commitIntervalMs = options.commitIntervalMs ?? 1000;
  const drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
  const changelog = options.changelog;
  const maxBlockingMs = options.maxBlockingMs ?? 50;
  if (!(maxBlockingMs >= 0)) throw new BadConfigError('maxBlockingMs', `must be a number >= 0, got ${maxBlockingMs}`);
  const exactlyOnce = options.exactlyOnce;
  if (exactlyOnce !== undefined && !exactlyOnce.transactionalId) throw new BadConfigError('exactlyOnce', 'a transactionalId prefix is needed');

  const stats: KafkaSourceStats = {
    emitted: 0, acked: 0, deadLettered: 0, skippedAsApplied: 0, inFlight: 0, revokedInFlight: 0, maxInFlight: 0, pauses: 0,
    committed: {}, assigned: [], restoredKeys: 0, snapshotsWritten: 0, snapshotsRewritten: 0, transactions: 0, fenced: 0,
  };
  let drainRequest: (() => Promise<void>) | null = null;
  // In flight over the partitions assigned now (a revoked partition's records are not counted).
  let currentInFlight: () => number = () => 0;

  const observable = new Observable<KafkaRecord<T, S>>((subscriber) => {
    const kafka: Kafka = options.kafka ?? kafkaClient(options);
    const consumer: Consumer = kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs ?? 10_000,
      heartbeatInterval: 1000,
      maxWaitTimeInMs: 100,
      // read_committed: inputs written by another exactly-once pipeline count once they commit.
      readUncommitted: false,
      retry: options.retry ?? DEFAULT_RETRY,
    });
    const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: options.retry ?? DEFAULT_RETRY });
    const partitions = new Map<string, PartitionContext<S>>();
    let draining = false;
    let closed = false;
    let commitChain: Promise<void> = Promise.resolve();
    let dlqQueue: Array<{ message: Message; done: () => void }> = [];
    let dlqChain: Promise<void> = Promise.resolve();
    let commitTimer: ReturnType<typeof setInterval> | undefined;

    const totalInFlight = () => {
      let n = 0;
      for (const p of partitions.values()) n += p.tracker?.inFlight ?? 0;
      return n;
    };
    currentInFlight = totalInFlight;

    const newContext = (topic: string, partition: number, restored: Promise<void>): PartitionContext<S> => ({
      topic, partition, tracker: null, store: new Map(), restored, paused: false, committed: -1, revoked: false, txn: null, committing: false, minOffset: 0,
    });

    const failStream = (error: unknown, what: string) => {
      if (closed) return;
      log.warn(what, { error: String(error) });
      subscriber.error(kafkaFailure(what, error, options));
    };

    const disposeStore = (p: PartitionContext<S>) => {
      for (const entry of p.store.values()) if (entry.state !== undefined) changelog?.codec.dispose?.(entry.state);
      p.store.clear();
    };

    /**
     * Stops committing for a partition another member owns now and drops its state; records
     * still in flight may reach the output twice (exactly-once: their transaction is aborted).
     */
    const release = (p: PartitionContext<S>) => {
      const id = tp(p.topic, p.partition);
      if (p.revoked) return;
      p.revoked = true;
      stats.revokedInFlight += p.tracker?.inFlight ?? 0;
      void p.txn?.close();
      disposeStore(p);
      if (partitions.get(id) === p) partitions.delete(id);
    };

    /** Exactly-once: another member fenced this one's producer for the partition, so it owns it now (this member learns at its next rebalance). */
    const fencedOut = (p: PartitionContext<S>) => {
      if (p.revoked) return;
      stats.fenced++;
      log.warn('fenced: another member owns the partition now; dropping it until the next assignment', { partition: tp(p.topic, p.partition) });
      release(p);
      stats.assigned = stats.assigned.filter((id) => id !== tp(p.topic, p.partition));
      try {
        consumer.pause([{ topic: p.topic, partitions: [p.partition] }]);
      } catch (error) {
        log.debug('pause of a fenced partition failed', { error: String(error) });
      }
    };

    let memberId: string | null = null;
    const onAssignment = (assignment: Record<string, number[]>, newMemberId: string) => {
      const next = new Set<string>();
      for (const [topic, list] of Object.entries(assignment)) for (const partition of list) next.add(tp(topic, partition));
      // A new member id means the coordinator dropped this member (its session expired, e.g. the
      // process was frozen) and it joined again: other members may have owned and advanced its
      // partitions meanwhile, so none is kept; each is taken over afresh (fence, offsets, changelog).
      const rejoined = memberId !== null && newMemberId !== memberId;
      memberId = newMemberId;
      if (rejoined) log.warn('this member was dropped from the group and joined again; taking its partitions over afresh', { memberId: newMemberId });
      for (const [id, p] of partitions) {
        if (!next.has(id) || rejoined) {
          release(p);
          log.info('partition revoked', { partition: id });
        }
      }
      const added: Array<{ topic: string; partition: number }> = [];
      for (const id of next) {
        if (partitions.has(id)) continue;
        const sep = id.lastIndexOf(':');
        added.push({ topic: id.slice(0, sep), partition: Number(id.slice(sep + 1)) });
      }
      stats.assigned = [...next].sort();
      if (added.length === 0) return;
      const contexts = added.map(({ topic, partition }) => {
        const context = newContext(topic, partition, Promise.resolve());
        if (exactlyOnce) {
          context.txn = new PartitionTransactions(kafka, transactionalIdOf(exactlyOnce.transactionalId, topic, partition), { transactionTimeoutMs: exactlyOnce.transactionTimeoutMs, retry: options.retry }, (error) => {
            if (isFencedError(error)) fencedOut(context);
            else if (!context.revoked) failStream(error, `exactly-once send for ${tp(topic, partition)} failed`);
          });
        }
        return context;
      });
      // Exactly-once: fence the previous owners first (their open transactions are aborted), then
      // read the committed offsets and the changelog, which are stable from then on.
      const fenced = exactlyOnce
        ? Promise.all(contexts.map((c) => c.txn?.ready)).then(async () => {
            const admin = kafka.admin();
            await admin.connect();
            try {
              for (const topic of new Set(added.map((a) => a.topic))) {
                const [entry] = await admin.fetchOffsets({ groupId: options.groupId, topics: [topic] });
                for (const { partition, offset } of entry?.partitions ?? []) {
                  const context = contexts.find((c) => c.topic === topic && c.partition === partition);
                  if (context !== undefined) context.minOffset = Math.max(0, Number(offset));
                }
              }
            } finally {
              await admin.disconnect();
            }
          })
        : Promise.resolve();
      const restoring = fenced.then(() =>
        changelog
          ? restoreFromChangelog(kafka, changelog.topic, added, options.groupId, changelog.restoreTimeoutMs ?? 60_000, log)
          : new Map<string, Map<string, RestoredState>>(),
      );
      for (const context of contexts) {
        const { topic, partition } = context;
        context.restored = restoring.then(async (restored) => {
          if (context.revoked || !changelog) return;
          const rewrites: Message[] = [];
          for (const [key, snapshot] of restored.get(tp(topic, partition)) ?? []) {
            context.store.set(key, newKeyEntry(snapshot.bytes === null ? undefined : changelog.codec.decode(snapshot.bytes), snapshot.covered, snapshot.covered + 1));
            stats.restoredKeys++;
            if (snapshot.shadowed) rewrites.push(rewriteMessage(topic, partition, key, snapshot));
          }
          // A stale snapshot written after the one restored would be the one compaction keeps:
          // write the restored one again, before this member writes anything newer for the key.
          if (rewrites.length > 0 && !context.revoked) {
            if (context.txn !== null) await context.txn.send(changelog.topic, rewrites);
            else await producer.send({ topic: changelog.topic, acks: -1, messages: rewrites });
            stats.snapshotsRewritten += rewrites.length;
            log.info('rewrote snapshots shadowed by stale ones', { partition: tp(topic, partition), keys: rewrites.length });
          }
        });
        context.restored.catch((error: unknown) => {
          if (isFencedError(error)) fencedOut(context);
          else if (!context.revoked) failStream(error, `taking over ${tp(topic, partition)} failed`);
        });
        partitions.set(tp(topic, partition), context);
        // A partition paused when it was last owned here (backpressure, a fence) starts unpaused.
        if (!draining) consumer.resume([{ topic, partitions: [partition] }]);
        log.info('partition assigned', { partition: tp(topic, partition) });
      }
    };

    const maybeResume = (p: PartitionContext<S>) => {
      if (p.paused && !p.revoked && !p.committing && (p.tracker?.inFlight ?? 0) <= low && !draining) {
        p.paused = false;
        consumer.resume([{ topic: p.topic, partitions: [p.partition] }]);
      }
    };

    const sendDeadLetters = () => {
      dlqChain = dlqChain.then(async () => {
        while (dlqQueue.length > 0 && !closed) {
          const batch = dlqQueue;
          dlqQueue = [];
          for (;;) {
            try {
              await producer.send({ topic: deadLetterTopic, acks: -1, messages: batch.map((b) => b.message) });
              break;
            } catch (error) {
              // Not acknowledged means not committed: retrying is safe, giving up is not.
              log.warn('dead-letter send failed; retrying', { error: String(error) });
              if (closed) return;
              await new Promise((r) => setTimeout(r, 500));
            }
          }
          stats.deadLettered += batch.length;
          for (const b of batch) b.done();
        }
      });
    };

    const entryFor = (p: PartitionContext<S>, key: string): KeyEntry<S> => {
      let entry = p.store.get(key);
      if (entry === undefined) {
        entry = newKeyEntry<S>(undefined, -1, 0);
        p.store.set(key, entry);
      }
      return entry;
    };

    const handleMessage = (p: PartitionContext<S>, tracker: PartitionOffsetTracker, message: KafkaMessage) => {
      const offset = Number(message.offset);
      const stateKey = message.key === null ? tp(p.topic, p.partition) : message.key.toString('utf8');
      const existing = p.store.get(stateKey);
      if (existing !== undefined && existing.covered >= offset) {
        // Applied, snapshotted and delivered before a restart or handover: neither apply nor emit it twice.
        tracker.skip(offset);
        stats.skippedAsApplied++;
        return;
      }
      tracker.emit(offset);
      const entry = entryFor(p, stateKey);
      entry.acks.emit(offset);
      stats.emitted++;
      const inFlight = totalInFlight();
      if (inFlight > stats.maxInFlight) stats.maxInFlight = inFlight;
      let acked = false;
      const ack = () => {
        if (acked) return;
        acked = true;
        if (p.revoked) return;
        if (tracker.ack(offset)) {
          entry.acks.ack(offset);
          stats.acked++;
          maybeResume(p);
        }
      };
      const origin = {
        topic: p.topic, partition: p.partition, offset: message.offset, key: message.key, value: message.value,
        headers: message.headers ?? {}, timestamp: message.timestamp,
      };
      const dropped = (reason: DeadLetterReason, deadLettered: boolean, error: unknown) =>
        options.onDropped?.({ reason, deadLettered, topic: p.topic, partition: p.partition, offset: message.offset, error: error instanceof Error ? error.message : String(error) });
      const deadLetter = (reason: DeadLetterReason, error: unknown) => {
        dropped(reason, true, error);
        const message = deadLetterMessage(origin, reason, error, maxValueBytes);
        if (p.txn !== null) {
          // Exactly-once: the dead letter commits (or aborts) with the partition's transaction.
          p.txn.send(deadLetterTopic, [message]).then(() => {
            stats.deadLettered++;
            ack();
          }, () => undefined);
          return;
        }
        dlqQueue.push({ message, done: ack });
        sendDeadLetters();
      };
      const state: KeyedState<S> = {
        get: () => entry.state,
        set: (next: S) => {
          if (p.revoked) return;
          if (entry.state !== undefined && entry.state !== next) changelog?.codec.dispose?.(entry.state);
          entry.state = next;
          markApplied(entry, offset);
        },
        delete: () => {
          if (p.revoked) return;
          if (entry.state !== undefined) changelog?.codec.dispose?.(entry.state);
          entry.state = undefined;
          markApplied(entry, offset);
        },
      };
      if (message.value === null) {
        if (nullValues === 'dead-letter') deadLetter('null-value', new ConnectorError('null value (tombstone)', { retriable: false }));
        else {
          dropped('null-value', false, 'null value (tombstone)');
          if (nullValues === 'delete-state') state.delete();
          ack();
        }
        return;
      }
      if (message.key === null && missingKeys === 'dead-letter') {
        deadLetter('missing-key', new ConnectorError('record has no key', { retriable: false }));
        return;
      }
      if (message.value.length > maxValueBytes) {
        deadLetter('oversize', new ConnectorError(`value of ${message.value.length} bytes exceeds maxValueBytes ${maxValueBytes}`, { retriable: false }));
        return;
      }
      let value: T;
      try {
        value = decode(message.value);
      } catch (error) {
        deadLetter('decode', error);
        return;
      }
      let failed = false;
      subscriber.next({
        ...origin,
        stateKey,
        value,
        ack,
        fail: (error: unknown) => {
          if (acked || failed) return;
          failed = true;
          deadLetter('processing', error);
        },
        state,
        ...(p.txn !== null ? { transaction: p.txn } : {}),
      });
    };

    const eachBatch = async ({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload) => {
      const p = partitions.get(tp(batch.topic, batch.partition));
      if (p === undefined || p.revoked || draining || closed) return;
      await p.restored;
      if (p.revoked || draining || closed) return;
      let turnStarted = Date.now();
      for (const message of batch.messages) {
        if (!isRunning() || isStale() || draining || closed || p.revoked || p.committing) break;
        const offset = Number(message.offset);
        if (offset < p.minOffset) {
          // Committed by the previous owner's last transaction after this member's fetch began.
          resolveOffset(message.offset);
          continue;
        }
        if (p.tracker === null) {
          p.tracker = new PartitionOffsetTracker(offset);
          p.committed = offset;
        }
        if (offset >= p.tracker.nextOffset) handleMessage(p, p.tracker, message);
        resolveOffset(message.offset);
        if (p.tracker.inFlight >= high && !p.paused) {
          p.paused = true;
          stats.pauses++;
          consumer.pause([{ topic: p.topic, partitions: [p.partition] }]);
          break;
        }
        if (Date.now() - turnStarted >= maxBlockingMs) {
          // A slow pipeline (a model step per record) must not starve the event loop for a whole
          // batch: heartbeats (or the group evicts this member), the sink's batches, commit ticks.
          await new Promise((r) => setTimeout(r, 0));
          await heartbeat();
          turnStarted = Date.now();
        }
      }
      await heartbeat();
    };

    /** Snapshots keys whose records are all delivered, then commits what those snapshots and the acks allow. */
    const commitPartition = async (p: PartitionContext<S>) => {
      const tracker = p.tracker;
      if (tracker === null || p.revoked) return;
      if (changelog) {
        const ready: Array<KeyEntry<S>> = [];
        for (const [key, entry] of p.store) {
          // Take a snapshot of every key applied since its last durable one...
          if (entry.pending === null && entry.dirtySince !== null) {
            entry.pending = { message: snapshotMessage(changelog.codec, p.topic, p.partition, key, entry), covered: entry.covered, nextDirty: null };
          }
          // ...and write it once the outputs of every record it covers are delivered.
          if (entry.pending !== null && entry.acks.committable() > entry.pending.covered) ready.push(entry);
        }
        if (ready.length > 0) {
          try {
            await producer.send({ topic: changelog.topic, acks: -1, messages: ready.map((e) => (e.pending as { message: Message }).message) });
            stats.snapshotsWritten += ready.length;
          } catch (error) {
            log.warn('snapshot send failed; will retry', { partition: tp(p.topic, p.partition), error: String(error) });
            return;
          }
          for (const entry of ready) {
            entry.dirtySince = entry.pending?.nextDirty ?? null;
            entry.pending = null;
          }
        }
      }
      let position = tracker.committable();
      // A key applied past its last snapshot pins the commit: after a crash those records are read again.
      for (const entry of p.store.values()) if (entry.dirtySince !== null && entry.dirtySince < position) position = entry.dirtySince;
      if (position > p.committed && !p.revoked) {
        try {
          await consumer.commitOffsets([{ topic: p.topic, partition: p.partition, offset: String(position) }]);
          p.committed = position;
          stats.committed[tp(p.topic, p.partition)] = position;
        } catch (error) {
          log.warn('offset commit failed; will retry', { partition: tp(p.topic, p.partition), error: String(error) });
        }
      }
    };

    /**
     * Exactly-once: stops emitting the partition's records, waits until every emitted one is
     * acknowledged (its outputs are in the open transaction), then commits snapshots of the keys
     * changed and the consumed offset with them. `wait` false (unsubscribe): a transaction with
     * records still in flight is aborted instead.
     */
    const commitTransaction = async (p: PartitionContext<S>, wait: boolean) => {
      const txn = p.txn;
      const tracker = p.tracker;
      if (txn === null || tracker === null || p.revoked) return;
      const changed = () => [...p.store].filter(([, e]) => e.dirtySince !== null);
      if (tracker.nextOffset <= p.committed && tracker.inFlight === 0 && txn.sent === 0 && changed().length === 0) return;
      p.committing = true;
      consumer.pause([{ topic: p.topic, partitions: [p.partition] }]);
      try {
        const deadline = Date.now() + drainTimeoutMs;
        while (tracker.inFlight > 0 && wait && !p.revoked && !closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
        if (p.revoked || closed) return;
        if (tracker.inFlight > 0) {
          if (!wait) {
            await txn.abort();
            return;
          }
          throw new ConnectorError(`${tracker.inFlight} records of ${tp(p.topic, p.partition)} still unacknowledged after ${drainTimeoutMs} ms; their transaction cannot commit`);
        }
        const entries = changed();
        const snapshots = changelog ? entries.map(([key, entry]) => snapshotMessage(changelog.codec, p.topic, p.partition, key, entry)) : [];
        const position = tracker.committable();
        await txn.commit(options.groupId, p.topic, p.partition, position, changelog ? { topic: changelog.topic, messages: snapshots } : null);
        for (const [, entry] of entries) {
          entry.dirtySince = null;
          entry.pending = null;
        }
        p.committed = position;
        stats.committed[tp(p.topic, p.partition)] = position;
        stats.snapshotsWritten += snapshots.length;
        stats.transactions++;
      } catch (error) {
        // A member that lost the partition was fenced by its new owner, which goes on from the last commit.
        if (isFencedError(error)) fencedOut(p);
        else if (!p.revoked) failStream(error, `exactly-once commit of ${tp(p.topic, p.partition)} failed`);
      } finally {
        p.committing = false;
        if (!p.revoked && !draining && !closed) {
          if (!p.paused) consumer.resume([{ topic: p.topic, partitions: [p.partition] }]);
          else maybeResume(p);
        }
      }
    };

    const commitAll = (wait = true): Promise<void> => {
      commitChain = commitChain.then(async () => {
        // Exactly-once: each partition has its own producer, so their transactions commit side by side.
        if (exactlyOnce) await Promise.all([...partitions.values()].map((p) => commitTransaction(p, wait)));
        else for (const p of [...partitions.values()]) await commitPartition(p);
      });
      return commitChain;
    };

    const shutdown = async (waitForAcks: boolean) => {
      if (draining) return;
      draining = true;
      if (commitTimer !== undefined) clearInterval(commitTimer);
      // Stop fetching but stay in the group, so the final commit is still accepted.
      try {
        consumer.pause(options.topics.map((topic) => ({ topic })));
      } catch (error) {
        log.debug('pause before drain failed (consumer not running)', { error: String(error) });
      }
      if (waitForAcks) {
        const deadline = Date.now() + drainTimeoutMs;
        while (totalInFlight() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        if (totalInFlight() > 0) log.warn('drain timed out; unacknowledged records will be read again', { inFlight: totalInFlight() });
      }
      await dlqChain;
      await commitAll(waitForAcks);
      closed = true;
      await Promise.all([...partitions.values()].map((p) => p.txn?.close()));
      for (const p of partitions.values()) disposeStore(p);
      await consumer.disconnect().catch((error: unknown) => log.warn('consumer disconnect failed', { error: String(error) }));
      await producer.disconnect().catch(() => undefined);
      process.off('SIGTERM', onSigterm);
      log.info('source closed', { emitted: stats.emitted, acked: stats.acked, committed: stats.committed });
    };

    const onSigterm = () => {
      log.info('SIGTERM: draining');
      void drain();
    };
    const drain = async () => {
      await shutdown(true);
      subscriber.complete();
    };
    drainRequest = drain;

    const start = async () => {
      if (draining) return;
      const topicsToEnsure = [{ topic: deadLetterTopic, compacted: false, partitionsLike: options.topics }];
      if (changelog) topicsToEnsure.push({ topic: changelog.topic, compacted: true, partitionsLike: options.topics });
      await ensureTopics(kafka, topicsToEnsure);
      consumer.on(consumer.events.GROUP_JOIN, (event) => onAssignment(event.payload.memberAssignment, event.payload.memberId));
      consumer.on(consumer.events.REBALANCING, () => {
        // Hand over what is done before the partitions move: snapshots and commits for acknowledged work.
        void commitAll();
      });
      consumer.on(consumer.events.CRASH, (event) => {
        if (!event.payload.restart && !draining) subscriber.error(new ConnectorError(`consumer crashed: ${String(event.payload.error)}`, { cause: event.payload.error }));
      });
      await producer.connect();
      if (draining) return;
      await consumer.connect();
      if (draining) return;
      await consumer.subscribe({ topics: options.topics, fromBeginning: options.fromBeginning ?? true });
      if (draining) return;
      await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch });
      if (draining) return;
      commitTimer = setInterval(() => void commitAll(), commitIntervalMs);
    };
    // Installed before anything starts: a SIGTERM during start-up also ends in a clean drain.
    if (options.handleSigterm ?? true) process.on('SIGTERM', onSigterm);
    start().catch((error: unknown) => {
      if (!closed) subscriber.error(kafkaFailure('source failed to start', error, options));
    });

    return () => {
      void shutdown(false);
    };
  });

  return Object.assign(observable, {
    stats: () => ({ ...stats, committed: { ...stats.committed }, assigned: [...stats.assigned], inFlight: currentInFlight() }),
    drain: async () => {
      if (drainRequest === null) throw new ConnectorError('drain() before subscribe()', { retriable: false });
      await drainRequest();
    },
  });
}


