/**
 * Turns one fetched Kafka message into a {@link KafkaRecord} (or a dead letter / a skip): the
 * per-record acknowledgement that drives commits, `fail()`, and the key's state accessor.
 */
import type { KafkaMessage } from 'kafkajs';
import { ConnectorError } from '../../src/errors.js';
import type { KeyEntry } from './changelog.js';
import { deadLetterMessage, type DeadLetterOrigin, type DeadLetterQueue, type DeadLetterReason } from './deadLetter.js';
import type { OwnedPartition, PartitionLifecycle } from './partitionLifecycle.js';
import type { PartitionOffsetTracker } from './offsetTracker.js';
import type { SourceRuntime } from './sourceRuntime.js';
import type { KafkaRecord, KeyedState } from './sourceTypes.js';

/** Notes that the record at `offset` changed the key's state. */
function markApplied<S>(entry: KeyEntry<S>, offset: number): void {
  entry.covered = offset;
  if (entry.dirtySince === null) entry.dirtySince = offset;
  if (entry.pending !== null && entry.pending.nextDirty === null) entry.pending.nextDirty = offset;
}

/** The key's state as the record sees it; writes after the partition was revoked are ignored. */
function keyedState<S>(p: OwnedPartition<S>, entry: KeyEntry<S>, offset: number, dispose: ((state: S) => void) | undefined): KeyedState<S> {
  return {
    get: () => entry.state,
    set: (next: S) => {
      if (p.revoked) return;
      if (entry.state !== undefined && entry.state !== next) dispose?.(entry.state);
      entry.state = next;
      markApplied(entry, offset);
    },
    delete: () => {
      if (p.revoked) return;
      if (entry.state !== undefined) dispose?.(entry.state);
      entry.state = undefined;
      markApplied(entry, offset);
    },
  };
}

export class RecordEmitter<T, S> {
  constructor(
    private readonly rt: SourceRuntime<T, S>,
    private readonly partitions: PartitionLifecycle<T, S>,
    private readonly deadLetters: DeadLetterQueue,
    private readonly emit: (record: KafkaRecord<T, S>) => void,
  ) {}

  /** Handles a message at or past the partition's tracked position. */
  handle(p: OwnedPartition<S>, tracker: PartitionOffsetTracker, message: KafkaMessage): void {
    const offset = Number(message.offset);
    const stateKey = message.key === null ? p.id : message.key.toString('utf8');
    const existing = p.store.get(stateKey);
    if (existing !== undefined && existing.covered >= offset) {
      // Applied, snapshotted and delivered before a restart or handover: neither apply nor emit it twice.
      tracker.skip(offset);
      this.rt.stats.skippedAsApplied++;
      return;
    }
    tracker.emit(offset);
    const entry = p.entryFor(stateKey);
    entry.acks.emit(offset);
    const stats = this.rt.stats;
    stats.emitted++;
    stats.maxInFlight = Math.max(stats.maxInFlight, this.partitions.inFlight());
    let acked = false;
    const ack = () => {
      if (acked) return;
      acked = true;
      if (p.revoked) return;
      if (tracker.ack(offset)) {
        entry.acks.ack(offset);
        stats.acked++;
        this.partitions.maybeResume(p);
      }
    };
    const origin: DeadLetterOrigin = {
      topic: p.topic, partition: p.partition, offset: message.offset, key: message.key, value: message.value,
      headers: message.headers ?? {}, timestamp: message.timestamp,
    };
    const deadLetter = (reason: DeadLetterReason, error: unknown) => this.deadLetter(p, origin, reason, error, ack);
    const state = keyedState(p, entry, offset, this.rt.options.raw.changelog?.codec.dispose);
    const rejected = this.screen(message, origin, state, ack, deadLetter);
    if (rejected) return;
    let value: T;
    try {
      value = this.rt.options.decode(message.value as Buffer);
    } catch (error) {
      deadLetter('decode', error);
      return;
    }
    let failed = false;
    this.emit({
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
  }

  /** Applies the null-value, missing-key and size policies; true when the record was handled here. */
  private screen(message: KafkaMessage, origin: DeadLetterOrigin, state: KeyedState<S>, ack: () => void, deadLetter: (reason: DeadLetterReason, error: unknown) => void): boolean {
    const { nullValues, missingKeys, maxValueBytes } = this.rt.options;
    if (message.value === null) {
      if (nullValues === 'dead-letter') deadLetter('null-value', new ConnectorError('null value (tombstone)', { retriable: false }));
      else {
        this.dropped(origin, 'null-value', false, 'null value (tombstone)');
        if (nullValues === 'delete-state') state.delete();
        ack();
      }
      return true;
    }
    if (message.key === null && missingKeys === 'dead-letter') {
      deadLetter('missing-key', new ConnectorError('record has no key', { retriable: false }));
      return true;
    }
    if (message.value.length > maxValueBytes) {
      deadLetter('oversize', new ConnectorError(`value of ${message.value.length} bytes exceeds maxValueBytes ${maxValueBytes}`, { retriable: false }));
      return true;
    }
    return false;
  }

  private dropped(origin: DeadLetterOrigin, reason: DeadLetterReason, deadLettered: boolean, error: unknown): void {
    this.rt.options.raw.onDropped?.({
      reason, deadLettered, topic: origin.topic, partition: origin.partition, offset: origin.offset, error: error instanceof Error ? error.message : String(error),
    });
  }

  /** Sends the record to the dead-letter topic, then acknowledges it (exactly-once: in the partition's transaction). */
  private deadLetter(p: OwnedPartition<S>, origin: DeadLetterOrigin, reason: DeadLetterReason, error: unknown, ack: () => void): void {
    this.dropped(origin, reason, true, error);
    const message = deadLetterMessage(origin, reason, error, this.rt.options.maxValueBytes);
    if (p.txn !== null) {
      // Exactly-once: the dead letter commits (or aborts) with the partition's transaction.
      p.txn.send(this.rt.options.deadLetterTopic, [message]).then(() => {
        this.rt.stats.deadLettered++;
        ack();
      }, () => undefined);
      return;
    }
    this.deadLetters.push(message, ack);
  }
}
