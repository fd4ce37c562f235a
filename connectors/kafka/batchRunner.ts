/**
 * kafkajs `eachBatch`: emits a fetched batch record by record, giving the event loop a turn every
 * `maxBlockingMs`, stopping at backpressure, a rebalance or a drain; and keeps the member's
 * heartbeats going while batches are in progress, however long they wait (a partition's
 * changelog restore, a slow downstream), so the coordinator does not drop a busy member.
 */
import type { EachBatchPayload } from 'kafkajs';
import type { PartitionLifecycle } from './partitionLifecycle.js';
import type { RecordEmitter } from './recordEmitter.js';
import type { SourceRuntime } from './sourceRuntime.js';

export class BatchRunner<T, S> {
  private active = 0;
  private heartbeat: (() => Promise<void>) | null = null;
  private keepalive: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly rt: SourceRuntime<T, S>,
    private readonly partitions: PartitionLifecycle<T, S>,
    private readonly emitter: RecordEmitter<T, S>,
  ) {}

  /** The kafkajs handler (several run at once with `partitionsConsumedConcurrently` > 1). */
  readonly eachBatch = async (payload: EachBatchPayload): Promise<void> => {
    this.heartbeat = payload.heartbeat;
    if (this.active++ === 0) {
      // kafkajs sends a heartbeat only when this many ms passed since the last one, so beating
      // here as well as in the loop below costs nothing extra; errors (a rebalance) reach the
      // loop's own heartbeat, which makes kafkajs rejoin.
      this.keepalive = setInterval(() => void this.heartbeat?.().catch(() => undefined), this.rt.options.heartbeatIntervalMs);
    }
    try {
      await this.emitBatch(payload);
    } finally {
      if (--this.active === 0) {
        clearInterval(this.keepalive);
        this.keepalive = undefined;
      }
    }
  };

  private stopped(): boolean {
    return this.rt.status.draining || this.rt.status.closed;
  }

  private async emitBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const p = this.partitions.get(batch.topic, batch.partition);
    if (p === undefined || p.revoked || this.stopped()) return;
    await p.restored;
    if (p.revoked || this.stopped()) return;
    let turnStarted = Date.now();
    for (const message of batch.messages) {
      if (!isRunning() || isStale() || this.stopped() || p.revoked || p.committing) break;
      const offset = Number(message.offset);
      if (offset < p.minOffset) {
        // Committed by the previous owner's last transaction after this member's fetch began.
        resolveOffset(message.offset);
        continue;
      }
      const tracker = p.trackerFrom(offset);
      if (offset >= tracker.nextOffset) this.emitter.handle(p, tracker, message);
      resolveOffset(message.offset);
      if (this.partitions.pauseIfFull(p)) break;
      if (Date.now() - turnStarted >= this.rt.options.maxBlockingMs) {
        // A slow pipeline (a model step per record) must not starve the event loop for a whole
        // batch: heartbeats (or the group evicts this member), the sink's batches, commit ticks,
        // and the other partitions' batches.
        await new Promise((r) => setTimeout(r, 0));
        await heartbeat();
        turnStarted = Date.now();
      }
    }
    await heartbeat();
  }
}
