/**
 * The partitions this member owns: assignment and revocation, taking a partition over (fencing
 * the previous owner in exactly-once mode, restoring its keys from the changelog), in-flight
 * accounting and backpressure (pause at the high watermark, resume at the low one).
 */
import type { Message } from 'kafkajs';
import { createLogger } from '../../src/logger.js';
import { newKeyEntry, restoreFromChangelog, rewriteMessage, type KeyEntry, type RestoredState } from './changelog.js';
import { PartitionOffsetTracker } from './offsetTracker.js';
import { tp, type SourceRuntime } from './sourceRuntime.js';
import { PartitionTransactions, isFencedError, transactionalIdOf } from './transactions.js';

const log = createLogger('infiniformer:kafka:source');

/** One owned input partition: its offsets, its keys' state, its pause and ownership status. */
export class OwnedPartition<S> {
  readonly id: string;
  /** Created at the first record fetched (the fetch position is only known then). */
  tracker: PartitionOffsetTracker | null = null;
  readonly store = new Map<string, KeyEntry<S>>();
  /** Resolves once the partition is taken over (previous owner fenced, keys restored). */
  restored: Promise<void> = Promise.resolve();
  /** Paused by backpressure. */
  paused = false;
  committed = -1;
  revoked = false;
  /** Exactly-once: the partition's transactional producer. */
  txn: PartitionTransactions | null = null;
  /** Exactly-once: a transaction is being committed; no records are emitted meanwhile. */
  committing = false;
  /** Records below this offset are committed already (read after fencing the previous owner). */
  minOffset = 0;

  constructor(
    readonly topic: string,
    readonly partition: number,
  ) {
    this.id = tp(topic, partition);
  }

  get inFlight(): number {
    return this.tracker?.inFlight ?? 0;
  }

  /** Starts offset tracking at the first record fetched. */
  trackerFrom(offset: number): PartitionOffsetTracker {
    if (this.tracker === null) {
      this.tracker = new PartitionOffsetTracker(offset);
      this.committed = offset;
    }
    return this.tracker;
  }

  /** The key's entry, created empty on first sight. */
  entryFor(key: string): KeyEntry<S> {
    let entry = this.store.get(key);
    if (entry === undefined) {
      entry = newKeyEntry<S>(undefined, -1, 0);
      this.store.set(key, entry);
    }
    return entry;
  }

  /** Frees every key's state. */
  disposeStore(dispose: ((state: S) => void) | undefined): void {
    for (const entry of this.store.values()) if (entry.state !== undefined) dispose?.(entry.state);
    this.store.clear();
  }
}

export class PartitionLifecycle<T, S> {
  private readonly owned = new Map<string, OwnedPartition<S>>();
  private memberId: string | null = null;

  constructor(private readonly rt: SourceRuntime<T, S>) {}

  get(topic: string, partition: number): OwnedPartition<S> | undefined {
    return this.owned.get(tp(topic, partition));
  }

  all(): Array<OwnedPartition<S>> {
    return [...this.owned.values()];
  }

  /** In flight over the partitions owned now (a revoked partition's records are not counted). */
  inFlight(): number {
    let n = 0;
    for (const p of this.owned.values()) n += p.inFlight;
    return n;
  }

  /** Handles a kafkajs GROUP_JOIN: releases partitions that moved, takes over new ones. */
  onAssignment(assignment: Record<string, number[]>, memberId: string): void {
    this.rt.stats.joins++;
    const next = new Set<string>();
    for (const [topic, list] of Object.entries(assignment)) for (const partition of list) next.add(tp(topic, partition));
    // A new member id means the coordinator dropped this member (its session expired, e.g. the
    // process was frozen) and it joined again: other members may have owned and advanced its
    // partitions meanwhile, so none is kept; each is taken over afresh (fence, offsets, changelog).
    const rejoined = this.memberId !== null && memberId !== this.memberId;
    this.memberId = memberId;
    if (rejoined) log.warn('this member was dropped from the group and joined again; taking its partitions over afresh', { memberId });
    for (const [id, p] of this.owned) {
      if (!next.has(id) || rejoined) {
        this.release(p);
        log.info('partition revoked', { partition: id });
      }
    }
    const added: Array<OwnedPartition<S>> = [];
    for (const id of next) {
      if (this.owned.has(id)) continue;
      const sep = id.lastIndexOf(':');
      added.push(this.newPartition(id.slice(0, sep), Number(id.slice(sep + 1))));
    }
    this.rt.stats.assigned = [...next].sort();
    if (added.length > 0) this.takeOver(added);
  }

  /**
   * Stops committing for a partition another member owns now and drops its state; records
   * still in flight may reach the output twice (exactly-once: their transaction is aborted).
   */
  release(p: OwnedPartition<S>): void {
    if (p.revoked) return;
    p.revoked = true;
    this.rt.stats.revokedInFlight += p.inFlight;
    void p.txn?.close();
    p.disposeStore(this.rt.options.raw.changelog?.codec.dispose);
    if (this.owned.get(p.id) === p) this.owned.delete(p.id);
    this.rt.options.raw.checkpoint?.revoked?.(p.topic, p.partition);
  }

  /** Exactly-once: another member fenced this one's producer for the partition, so it owns it now (this member learns at its next rebalance). */
  fencedOut(p: OwnedPartition<S>): void {
    if (p.revoked) return;
    this.rt.stats.fenced++;
    log.warn('fenced: another member owns the partition now; dropping it until the next assignment', { partition: p.id });
    this.release(p);
    this.rt.stats.assigned = this.rt.stats.assigned.filter((id) => id !== p.id);
    this.pause(p, 'fenced');
  }

  /** Backpressure: pauses the partition once `highWatermark` records are in flight. Returns true when it paused. */
  pauseIfFull(p: OwnedPartition<S>): boolean {
    if (p.paused || p.inFlight < this.rt.options.high) return false;
    p.paused = true;
    this.rt.stats.pauses++;
    this.pause(p, 'backpressure');
    return true;
  }

  /** Resumes a partition paused by backpressure once at most `lowWatermark` records are in flight. */
  maybeResume(p: OwnedPartition<S>): void {
    if (p.paused && !p.revoked && !p.committing && p.inFlight <= this.rt.options.low && !this.rt.status.draining) {
      p.paused = false;
      this.rt.consumer.resume([{ topic: p.topic, partitions: [p.partition] }]);
    }
  }

  /** Pauses fetching of the partition (kafkajs throws when the consumer is not running). */
  pause(p: OwnedPartition<S>, why: string): void {
    try {
      this.rt.consumer.pause([{ topic: p.topic, partitions: [p.partition] }]);
    } catch (error) {
      log.debug(`pause (${why}) failed`, { partition: p.id, error: String(error) });
    }
  }

  /** Frees every partition's state at shutdown. */
  async close(): Promise<void> {
    await Promise.all(this.all().map((p) => p.txn?.close()));
    for (const p of this.owned.values()) p.disposeStore(this.rt.options.raw.changelog?.codec.dispose);
  }

  private newPartition(topic: string, partition: number): OwnedPartition<S> {
    const p = new OwnedPartition<S>(topic, partition);
    const eos = this.rt.options.raw.exactlyOnce;
    if (eos) {
      p.txn = new PartitionTransactions(this.rt.kafka, transactionalIdOf(eos.transactionalId, topic, partition), { transactionTimeoutMs: eos.transactionTimeoutMs, retry: this.rt.options.raw.retry }, (error) => {
        if (isFencedError(error)) this.fencedOut(p);
        else if (!p.revoked) this.rt.fail(error, `exactly-once send for ${p.id} failed`);
      });
    }
    return p;
  }

  /** Registers new partitions; each emits records once its previous owner is fenced and its keys restored. */
  private takeOver(added: Array<OwnedPartition<S>>): void {
    const restoring = this.fencePreviousOwners(added).then(() => this.readChangelog(added));
    for (const p of added) {
      p.restored = restoring.then((restored) => this.restoreKeys(p, restored));
      p.restored.catch((error: unknown) => {
        if (isFencedError(error)) this.fencedOut(p);
        else if (!p.revoked) this.rt.fail(error, `taking over ${p.id} failed`);
      });
      this.owned.set(p.id, p);
      // A partition paused when it was last owned here (backpressure, a fence) starts unpaused.
      if (!this.rt.status.draining) this.rt.consumer.resume([{ topic: p.topic, partitions: [p.partition] }]);
      log.info('partition assigned', { partition: p.id });
    }
  }

  /**
   * Exactly-once: fences the previous owners first (their open transactions are aborted), then
   * reads the committed offsets, which are stable from then on.
   */
  private async fencePreviousOwners(added: Array<OwnedPartition<S>>): Promise<void> {
    if (!this.rt.options.raw.exactlyOnce) return;
    await Promise.all(added.map((p) => p.txn?.ready));
    const admin = this.rt.kafka.admin();
    await admin.connect();
    try {
      for (const topic of new Set(added.map((a) => a.topic))) {
        const [entry] = await admin.fetchOffsets({ groupId: this.rt.options.raw.groupId, topics: [topic] });
        for (const { partition, offset } of entry?.partitions ?? []) {
          const p = added.find((c) => c.topic === topic && c.partition === partition);
          if (p !== undefined) p.minOffset = Math.max(0, Number(offset));
        }
      }
    } finally {
      await admin.disconnect();
    }
  }

  private readChangelog(added: Array<OwnedPartition<S>>): Promise<Map<string, Map<string, RestoredState>>> {
    const { changelog, checkpoint } = this.rt.options.raw;
    const source = changelog ?? checkpoint;
    if (!source) return Promise.resolve(new Map());
    const partitions = added.map(({ topic, partition }) => ({ topic, partition }));
    return restoreFromChangelog(this.rt.kafka, source.topic, partitions, this.rt.options.raw.groupId, source.restoreTimeoutMs ?? 60_000, log);
  }

  private async restoreKeys(p: OwnedPartition<S>, restored: Map<string, Map<string, RestoredState>>): Promise<void> {
    const { changelog, checkpoint } = this.rt.options.raw;
    if (p.revoked || (!changelog && !checkpoint)) return;
    const states = restored.get(p.id) ?? new Map<string, RestoredState>();
    if (checkpoint) await checkpoint.restore(p.topic, p.partition, states);
    const rewrites: Message[] = [];
    for (const [key, snapshot] of states) {
      if (changelog) p.store.set(key, newKeyEntry(snapshot.bytes === null ? undefined : changelog.codec.decode(snapshot.bytes), snapshot.covered, snapshot.covered + 1));
      this.rt.stats.restoredKeys++;
      if (snapshot.shadowed) rewrites.push(rewriteMessage(p.topic, p.partition, key, snapshot));
    }
    // A stale snapshot written after the one restored would be the one compaction keeps:
    // write the restored one again, before this member writes anything newer for the key.
    if (rewrites.length > 0 && !p.revoked) {
      const topic = (changelog ?? checkpoint)!.topic;
      if (p.txn !== null) await p.txn.send(topic, rewrites);
      else await this.rt.producer.send({ topic, acks: -1, messages: rewrites });
      this.rt.stats.snapshotsRewritten += rewrites.length;
      log.info('rewrote snapshots shadowed by stale ones', { partition: p.id, keys: rewrites.length });
    }
  }
}
