/**
 * kafkajs `eachBatch`: emits a fetched batch record by record, giving the event loop a turn every
 * `maxBlockingMs`, stopping at backpressure, a rebalance or a drain.
 */
import type { EachBatchPayload } from 'kafkajs';
import type { PartitionLifecycle } from './partitionLifecycle.js';
import type { RecordEmitter } from './recordEmitter.js';
import type { SourceRuntime } from './sourceRuntime.js';

export class BatchRunner<T, S> {
  constructor(
    private readonly rt: SourceRuntime<T, S>,
    private readonly partitions: PartitionLifecycle<T, S>,
    private readonly emitter: RecordEmitter<T, S>,
  ) {}

  /** The kafkajs handler. */
  readonly eachBatch = (payload: EachBatchPayload): Promise<void> => this.emitBatch(payload);

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
        // batch: heartbeats (or the group evicts this member), the sink's batches, commit ticks.
        await new Promise((r) => setTimeout(r, 0));
        await heartbeat();
        turnStarted = Date.now();
      }
    }
    await heartbeat();
  }
}
