import type { Subscriber } from 'rxjs';
import { Observable } from 'rxjs';
import { ConnectorError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { BatchRunner } from './batchRunner.js';
import { DEFAULT_RETRY, ensureTopics, kafkaClient, kafkaFailure } from './client.js';
import { Committer } from './committer.js';
import { DeadLetterQueue } from './deadLetter.js';
import { PartitionLifecycle } from './partitionLifecycle.js';
import { RecordEmitter } from './recordEmitter.js';
import { newSourceStats, resolveSourceOptions, type ResolvedSourceOptions, type SourceRuntime } from './sourceRuntime.js';
import type { FromKafkaOptions, KafkaRecord, KafkaSource, KafkaSourceStats } from './sourceTypes.js';

export type { DroppedRecord, FromKafkaOptions, KafkaRecord, KafkaSource, KafkaSourceStats, KeyedState, MissingKeyPolicy, NullValuePolicy } from './sourceTypes.js';

const log = createLogger('infiniformer:kafka:source');

/**
 * One subscription: one consumer-group member. Wires the parts together — partition lifecycle,
 * record emitter, dead-letter queue, batch runner, committer — and runs start-up and shutdown.
 */
class SourceMember<T, S> {
  private readonly rt: SourceRuntime<T, S>;
  readonly partitions: PartitionLifecycle<T, S>;
  private readonly deadLetters: DeadLetterQueue;
  private readonly committer: Committer<T, S>;
  private readonly runner: BatchRunner<T, S>;
  private readonly onSigterm = () => {
    log.info('SIGTERM: draining');
    void this.drain();
  };

  constructor(
    private readonly options: ResolvedSourceOptions<T, S>,
    stats: KafkaSourceStats,
    private readonly subscriber: Subscriber<KafkaRecord<T, S>>,
  ) {
    const raw = options.raw;
    const kafka = raw.kafka ?? kafkaClient(raw);
    const consumer = kafka.consumer({
      groupId: raw.groupId,
      sessionTimeout: options.sessionTimeoutMs,
      rebalanceTimeout: options.rebalanceTimeoutMs,
      heartbeatInterval: options.heartbeatIntervalMs,
      maxWaitTimeInMs: 100,
      // read_committed: inputs written by another exactly-once pipeline count once they commit.
      readUncommitted: false,
      retry: raw.retry ?? DEFAULT_RETRY,
    });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: raw.retry ?? DEFAULT_RETRY });
    const status = { draining: false, closed: false };
    const fail = (error: unknown, what: string) => {
      if (status.closed) return;
      log.warn(what, { error: String(error) });
      subscriber.error(kafkaFailure(what, error, raw));
    };
    this.rt = { options, kafka, consumer, producer, stats, status, fail };
    this.partitions = new PartitionLifecycle(this.rt);
    this.deadLetters = new DeadLetterQueue(producer, options.deadLetterTopic, (n) => (stats.deadLettered += n));
    this.committer = new Committer(this.rt, this.partitions);
    this.runner = new BatchRunner(this.rt, this.partitions, new RecordEmitter(this.rt, this.partitions, this.deadLetters, (r) => subscriber.next(r)));
  }

  /** Joins the group and starts consuming; a failure ends the stream. */
  run(): void {
    // Installed before anything starts: a SIGTERM during start-up also ends in a clean drain.
    if (this.options.raw.handleSigterm ?? true) process.on('SIGTERM', this.onSigterm);
    this.start().catch((error: unknown) => {
      if (!this.rt.status.closed) this.subscriber.error(kafkaFailure('source failed to start', error, this.options.raw));
    });
  }

  private async start(): Promise<void> {
    const { consumer, producer, status } = this.rt;
    const raw = this.options.raw;
    if (status.draining) return;
    const topicsToEnsure = [{ topic: this.options.deadLetterTopic, compacted: false, partitionsLike: raw.topics }];
    const stateTopic = raw.changelog?.topic ?? raw.checkpoint?.topic;
    if (stateTopic !== undefined) topicsToEnsure.push({ topic: stateTopic, compacted: true, partitionsLike: raw.topics });
    await ensureTopics(this.rt.kafka, topicsToEnsure);
    consumer.on(consumer.events.GROUP_JOIN, (event) => this.partitions.onAssignment(event.payload.memberAssignment, event.payload.memberId));
    // Hand over what is done before the partitions move: snapshots and commits for acknowledged work.
    consumer.on(consumer.events.REBALANCING, () => void this.committer.commitAll());
    consumer.on(consumer.events.CRASH, (event) => {
      if (!event.payload.restart && !status.draining) this.subscriber.error(new ConnectorError(`consumer crashed: ${String(event.payload.error)}`, { cause: event.payload.error }));
    });
    await producer.connect();
    if (status.draining) return;
    await consumer.connect();
    if (status.draining) return;
    await consumer.subscribe({ topics: raw.topics, fromBeginning: raw.fromBeginning ?? true });
    if (status.draining) return;
    await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: this.options.concurrency, eachBatch: this.runner.eachBatch });
    if (status.draining) return;
    this.committer.start();
  }

  /** Stops fetching, optionally waits for in-flight records, commits, leaves the group. */
  async shutdown(waitForAcks: boolean): Promise<void> {
    const { consumer, producer, status, stats } = this.rt;
    if (status.draining) return;
    status.draining = true;
    this.committer.stop();
    // Stop fetching but stay in the group, so the final commit is still accepted.
    try {
      consumer.pause(this.options.raw.topics.map((topic) => ({ topic })));
    } catch (error) {
      log.debug('pause before drain failed (consumer not running)', { error: String(error) });
    }
    if (waitForAcks) await this.waitForAcks();
    await this.deadLetters.flushed();
    await this.committer.commitAll(waitForAcks);
    status.closed = true;
    this.deadLetters.close();
    await this.partitions.close();
    await consumer.disconnect().catch((error: unknown) => log.warn('consumer disconnect failed', { error: String(error) }));
    await producer.disconnect().catch(() => undefined);
    process.off('SIGTERM', this.onSigterm);
    log.info('source closed', { emitted: stats.emitted, acked: stats.acked, committed: stats.committed });
  }

  private async waitForAcks(): Promise<void> {
    const deadline = Date.now() + this.options.drainTimeoutMs;
    while (this.partitions.inFlight() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (this.partitions.inFlight() > 0) log.warn('drain timed out; unacknowledged records will be read again', { inFlight: this.partitions.inFlight() });
  }

  async drain(): Promise<void> {
    await this.shutdown(true);
    this.subscriber.complete();
  }
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
  const resolved = resolveSourceOptions(options);
  const stats = newSourceStats();
  let member: SourceMember<T, S> | null = null;
  const observable = new Observable<KafkaRecord<T, S>>((subscriber) => {
    const current = new SourceMember(resolved, stats, subscriber);
    member = current;
    current.run();
    return () => void current.shutdown(false);
  });
  return Object.assign(observable, {
    // In flight over the partitions assigned now (a revoked partition's records are not counted).
    stats: () => ({ ...stats, committed: { ...stats.committed }, assigned: [...stats.assigned], inFlight: member?.partitions.inFlight() ?? 0 }),
    drain: async () => {
      if (member === null) throw new ConnectorError('drain() before subscribe()', { retriable: false });
      await member.drain();
    },
  });
}
