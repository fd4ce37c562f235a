/** Public types of the Kafka source ({@link fromKafka}); re-exported by source.ts. */
import type { IHeaders } from 'kafkajs';
import type { Observable } from 'rxjs';
import type { ChangelogOptions, RestoredState } from './changelog.js';
import type { Message } from 'kafkajs';
import type { KafkaConnection } from './client.js';
import type { DeadLetterReason } from './deadLetter.js';
import type { ValueDecoder } from './decode.js';
import type { ExactlyOnceOptions, OutputTransaction } from './transactions.js';

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

/**
 * The pipeline's side of aligned checkpoints ({@link FromKafkaOptions.checkpoint}). The state it
 * writes at a checkpoint must cover exactly the records acknowledged so far, so the state
 * restored after a crash or rebalance is the state as of the committed offsets.
 */
export interface AlignedCheckpoint {
  /** Compacted changelog topic (created when missing, as many partitions as the widest input topic). */
  topic: string;
  /**
   * Takes a checkpoint: the pipeline stops applying new records, waits until every record it
   * applied is acknowledged, then calls `positions()` (the next offset to commit of every owned
   * `topic:partition`: every record below it is applied and acknowledged, none above it is
   * applied) and returns the changelog records of the state changed since the last checkpoint,
   * each naming its input partition and covering its input up to that position - 1. It may
   * apply records again once it has the records in hand. They are sent (acks all), then `seal`
   * (records valid only with the others landed, sent in one request when under the size
   * limit, so a killed client writes all of them or none), `written()` is called, then the
   * positions are committed.
   */
  snapshot(positions: () => ReadonlyMap<string, number>): Promise<{ messages: Message[]; seal?: Message[]; written(): void }>;
  /**
   * A partition was assigned: its restored snapshots (by changelog record key, each the one
   * covering the most input), before any of its records is emitted (they wait for a promise
   * returned).
   */
  restore(topic: string, partition: number, states: ReadonlyMap<string, RestoredState>): void | Promise<void>;
  /** A partition moved to another member (its new owner restores its state). */
  revoked?(topic: string, partition: number): void;
  /** Give up restoring a partition after this long. Default 60 000 ms. */
  restoreTimeoutMs?: number;
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
  /**
   * Aligned checkpoints of state the pipeline keeps itself (instead of `record.state`): every
   * `commitIntervalMs` the source stops emitting, waits until every emitted record is
   * acknowledged, writes the pipeline's state records to the changelog, and only then commits.
   * Not with `changelog`. With `exactlyOnce` each partition's state records commit in its
   * transaction, with its outputs and offset (connectors/kafka/alignedTransactions.ts).
   */
  checkpoint?: AlignedCheckpoint;
  /** Drain, commit and leave the group on SIGTERM, then complete. Default true. */
  handleSigterm?: boolean;
  /** How long a drain waits for in-flight records to be acknowledged. Default 30 000 ms. */
  drainTimeoutMs?: number;
  /**
   * Consumer session timeout: the coordinator drops a member it has not heard from for this long.
   * Default 45 000 ms (the Java client's): a member whose event loop is held by model work on a
   * loaded machine keeps its partitions; a crashed one's move after this long.
   */
  sessionTimeoutMs?: number;
  /** How long the coordinator waits for every member to rejoin in a rebalance. Default 60 000 ms. */
  rebalanceTimeoutMs?: number;
  /**
   * Fetched batches of this many partitions are emitted side by side (kafkajs
   * `partitionsConsumedConcurrently`). Default 1: batches of different partitions take turns, and
   * downstream keys run independently anyway; 4 changed little at-least-once (kafkaFlow bench)
   * and, in exactly-once mode, slowed the model pipeline's commits (docs/kafka.md).
   */
  partitionsConsumedConcurrently?: number;
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
  /** Group joins of this member (the first, and one per rebalance it took part in). */
  joins: number;
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
