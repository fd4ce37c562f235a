/**
 * The commit loop: every `commitIntervalMs` (and before a rebalance, and at shutdown) each owned
 * partition commits what its acknowledgements allow. At-least-once: snapshots of keys whose
 * records are all delivered, then the offset of the partition's first unacknowledged record.
 * Exactly-once: the partition's transaction with its outputs, dead letters, snapshots and offset.
 */
import type { Message } from 'kafkajs';
import { ConnectorError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { commitAlignedTransactions } from './alignedTransactions.js';
import { snapshotMessage, type KeyEntry } from './changelog.js';
import { sendGrouped } from './changelogStore.js';
import type { OwnedPartition, PartitionLifecycle } from './partitionLifecycle.js';
import type { SourceRuntime } from './sourceRuntime.js';
import type { AlignedCheckpoint } from './sourceTypes.js';
import { isFencedError } from './transactions.js';

const log = createLogger('infiniformer:kafka:source');

export class Committer<T, S> {
  private chain: Promise<void> = Promise.resolve();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly rt: SourceRuntime<T, S>,
    private readonly partitions: PartitionLifecycle<T, S>,
  ) {}

  /** Starts the periodic commits. */
  start(): void {
    this.timer ??= setInterval(() => void this.commitAll(), this.rt.options.commitIntervalMs);
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Commits every owned partition, after any commit already running. `wait` false (unsubscribe):
   * an exactly-once transaction with records in flight is aborted instead of awaited.
   */
  commitAll(wait = true): Promise<void> {
    this.chain = this.chain.then(async () => {
      const checkpoint = this.rt.options.raw.checkpoint;
      if (checkpoint && this.rt.options.raw.exactlyOnce) await commitAlignedTransactions(this.rt, this.partitions, checkpoint, (p, position) => this.recordCommit(p, position));
      else if (checkpoint) await this.commitAligned(checkpoint);
      // Exactly-once: each partition has its own producer, so their transactions commit side by side.
      else if (this.rt.options.raw.exactlyOnce) await Promise.all(this.partitions.all().map((p) => this.commitTransaction(p, wait)));
      else await Promise.all(this.partitions.all().map((p) => this.commitPartition(p)));
    });
    return this.chain;
  }

  private recordCommit(p: OwnedPartition<S>, position: number): void {
    p.committed = position;
    this.rt.stats.committed[p.id] = position;
  }

  /**
   * Aligned checkpoint: the pipeline quiesces and takes its snapshot (asking for the positions
   * once every record applied is acknowledged), the snapshot is written, and only then the
   * positions are committed. A failure commits nothing (the next tick tries again): the state
   * restored is then at least as new as the committed offsets, and the records it covers are
   * recognised by their covered offsets.
   */
  private async commitAligned(checkpoint: AlignedCheckpoint): Promise<void> {
    if (this.rt.status.closed) return;
    let positions = new Map<string, number>();
    try {
      const snap = await checkpoint.snapshot(() => {
        positions = new Map(this.partitions.all().filter((p) => p.tracker !== null && !p.revoked).map((p) => [p.id, p.tracker!.committable()]));
        return positions;
      });
      await sendGrouped(this.rt.producer, checkpoint.topic, snap.messages);
      // Only once every record of the checkpoint is acknowledged.
      if (snap.seal !== undefined && snap.seal.length > 0) await sendGrouped(this.rt.producer, checkpoint.topic, snap.seal);
      snap.written();
      this.rt.stats.snapshotsWritten += snap.messages.length + (snap.seal?.length ?? 0);
    } catch (error) {
      log.warn('checkpoint failed; nothing committed, retried at the next tick', { error: String(error) });
      return;
    }
    const due = this.partitions.all().filter((p) => !p.revoked && (positions.get(p.id) ?? -1) > p.committed);
    if (due.length === 0) return;
    try {
      await this.rt.consumer.commitOffsets(due.map((p) => ({ topic: p.topic, partition: p.partition, offset: String(positions.get(p.id)) })));
      for (const p of due) this.recordCommit(p, positions.get(p.id)!);
    } catch (error) {
      log.warn('offset commit after a checkpoint failed; will retry', { error: String(error) });
    }
  }

  /** Snapshots keys whose records are all delivered, then commits what those snapshots and the acks allow. */
  private async commitPartition(p: OwnedPartition<S>): Promise<void> {
    const tracker = p.tracker;
    if (tracker === null || p.revoked) return;
    if (!(await this.writeSnapshots(p))) return;
    let position = tracker.committable();
    // A key applied past its last snapshot pins the commit: after a crash those records are read again.
    for (const entry of p.store.values()) if (entry.dirtySince !== null && entry.dirtySince < position) position = entry.dirtySince;
    if (position > p.committed && !p.revoked) {
      try {
        await this.rt.consumer.commitOffsets([{ topic: p.topic, partition: p.partition, offset: String(position) }]);
        this.recordCommit(p, position);
      } catch (error) {
        log.warn('offset commit failed; will retry', { partition: p.id, error: String(error) });
      }
    }
  }

  /** At-least-once changelog: takes and writes due snapshots. False when the write failed (nothing commits this tick). */
  private async writeSnapshots(p: OwnedPartition<S>): Promise<boolean> {
    const changelog = this.rt.options.raw.changelog;
    if (!changelog) return true;
    const ready: Array<KeyEntry<S>> = [];
    for (const [key, entry] of p.store) {
      // Take a snapshot of every key applied since its last durable one...
      if (entry.pending === null && entry.dirtySince !== null) {
        entry.pending = { message: snapshotMessage(changelog.codec, p.topic, p.partition, key, entry), covered: entry.covered, nextDirty: null };
      }
      // ...and write it once the outputs of every record it covers are delivered.
      if (entry.pending !== null && entry.acks.committable() > entry.pending.covered) ready.push(entry);
    }
    if (ready.length === 0) return true;
    try {
      await this.rt.producer.send({ topic: changelog.topic, acks: -1, messages: ready.map((e) => (e.pending as { message: Message }).message) });
      this.rt.stats.snapshotsWritten += ready.length;
    } catch (error) {
      log.warn('snapshot send failed; will retry', { partition: p.id, error: String(error) });
      return false;
    }
    for (const entry of ready) {
      entry.dirtySince = entry.pending?.nextDirty ?? null;
      entry.pending = null;
    }
    return true;
  }

  /**
   * Exactly-once: stops emitting the partition's records, waits until every emitted one is
   * acknowledged (its outputs are in the open transaction), then commits snapshots of the keys
   * changed and the consumed offset with them. `wait` false (unsubscribe): a transaction with
   * records still in flight is aborted instead.
   */
  private async commitTransaction(p: OwnedPartition<S>, wait: boolean): Promise<void> {
    const { txn, tracker } = p;
    if (txn === null || tracker === null || p.revoked) return;
    const changed = () => [...p.store].filter(([, e]) => e.dirtySince !== null);
    if (tracker.nextOffset <= p.committed && tracker.inFlight === 0 && txn.sent === 0 && changed().length === 0) return;
    const { drainTimeoutMs, raw } = this.rt.options;
    p.committing = true;
    this.partitions.pause(p, 'transaction commit');
    try {
      const deadline = Date.now() + drainTimeoutMs;
      while (tracker.inFlight > 0 && wait && !p.revoked && !this.rt.status.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      if (p.revoked || this.rt.status.closed) return;
      if (tracker.inFlight > 0) {
        if (!wait) {
          await txn.abort();
          return;
        }
        throw new ConnectorError(`${tracker.inFlight} records of ${p.id} still unacknowledged after ${drainTimeoutMs} ms; their transaction cannot commit`);
      }
      const entries = changed();
      const changelog = raw.changelog;
      const snapshots = changelog ? entries.map(([key, entry]) => snapshotMessage(changelog.codec, p.topic, p.partition, key, entry)) : [];
      const position = tracker.committable();
      await txn.commit(raw.groupId, p.topic, p.partition, position, changelog ? { topic: changelog.topic, messages: snapshots } : null);
      for (const [, entry] of entries) {
        entry.dirtySince = null;
        entry.pending = null;
      }
      this.recordCommit(p, position);
      this.rt.stats.snapshotsWritten += snapshots.length;
      this.rt.stats.transactions++;
    } catch (error) {
      // A member that lost the partition was fenced by its new owner, which goes on from the last commit.
      if (isFencedError(error)) this.partitions.fencedOut(p);
      else if (!p.revoked) this.rt.fail(error, `exactly-once commit of ${p.id} failed`);
    } finally {
      p.committing = false;
      if (!p.revoked && !this.rt.status.draining && !this.rt.status.closed) {
        if (!p.paused) this.rt.consumer.resume([{ topic: p.topic, partitions: [p.partition] }]);
        else this.partitions.maybeResume(p);
      }
    }
  }
}
