import type { Kafka, Message, Producer, RetryOptions, Transaction } from 'kafkajs';
import { ConnectorError } from '../../src/errors.js';
import { sendGrouped } from './changelogStore.js';
import { DEFAULT_RETRY } from './client.js';

/**
 * What a record carries in exactly-once mode: sends inside the open transaction of its input
 * partition. {@link toKafka} with `exactlyOnce: true` produces through it.
 */
export interface OutputTransaction {
  /**
   * Produces `messages` to `topic` in the open transaction of the record's input partition.
   * Resolves once the broker has them; read_committed readers see them when the transaction
   * commits, together with the input offsets they came from. Resolves without sending once the
   * partition was revoked (its new owner produces them again from the last committed offset).
   */
  send(topic: string, messages: Message[]): Promise<void>;
}

/** Options of exactly-once mode (transactional read-process-write). */
export interface ExactlyOnceOptions {
  /**
   * Prefix of the transactional ids. Each input partition gets its own transactional producer,
   * `<transactionalId>-<topic>-<partition>`, so the member that takes a partition over fences the
   * previous owner (a zombie's later writes and commits fail, its open transaction is aborted).
   * Every member of the group must use the same prefix.
   */
  transactionalId: string;
  /** The broker aborts a transaction left open longer than this. Default 60 000 ms. */
  transactionTimeoutMs?: number;
}

/**
 * Whether a producer error means another producer now holds the transactional id (the partition
 * moved to another member, which fenced this one): INVALID_PRODUCER_EPOCH (47) or PRODUCER_FENCED
 * (90, unknown to kafkajs 2.2), possibly wrapped by the client's retrier.
 */
export function isFencedError(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e !== null && typeof e === 'object' && depth < 5; depth++) {
    const { type, code, message } = e as { type?: unknown; code?: unknown; message?: unknown };
    if (type === 'INVALID_PRODUCER_EPOCH' || type === 'PRODUCER_FENCED' || code === 47 || code === 90) return true;
    if (typeof message === 'string' && /\bUnknown error code 90\b|PRODUCER_FENCED|old epoch/.test(message)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** The transactional id of an input partition. */
export function transactionalIdOf(prefix: string, topic: string, partition: number): string {
  return `${prefix}-${topic}-${partition}`;
}

/**
 * One input partition's transactional producer: the outputs, dead letters and state snapshots
 * derived from the partition's records, and its consumed offset, commit atomically. Operations
 * run one at a time, in call order.
 */
export class PartitionTransactions implements OutputTransaction {
  private readonly producer: Producer;
  private open: Transaction | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private dropped = false;
  /** Messages sent in the open transaction. */
  sent = 0;
  /**
   * Resolves once the producer holds the partition's transactional id: the previous owner is
   * fenced and its open transaction aborted, so committed offsets and changelog are stable.
   */
  readonly ready: Promise<void>;

  constructor(
    kafka: Kafka,
    transactionalId: string,
    options: { transactionTimeoutMs?: number; retry?: RetryOptions },
    private readonly onError: (error: unknown) => void,
  ) {
    this.producer = kafka.producer({
      transactionalId,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: options.transactionTimeoutMs ?? 60_000,
      retry: options.retry ?? DEFAULT_RETRY,
    });
    // kafkajs initialises the transactional producer id (which fences) on the first transaction.
    this.ready = this.enqueue(async () => {
      await this.producer.connect();
      this.open = await this.producer.transaction();
    });
  }

  private enqueue<R>(task: () => Promise<R>): Promise<R> {
    const run = this.chain.then(task);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async transaction(): Promise<Transaction> {
    if (this.open === null) this.open = await this.producer.transaction();
    return this.open;
  }

  send(topic: string, messages: Message[]): Promise<void> {
    return this.enqueue(async () => {
      if (this.dropped) return;
      await (await this.transaction()).send({ topic, acks: -1, messages });
      this.sent += messages.length;
    }).catch((error: unknown) => {
      if (this.dropped) return;
      // A fenced partition is dropped by the handler: its outputs are its new owner's to produce.
      this.onError(error);
      if (this.dropped) return;
      throw error;
    });
  }

  /**
   * Writes `extra` (state snapshots), adds the consumed position `offset` of the input partition
   * to the transaction for `groupId`, and commits.
   */
  commit(groupId: string, topic: string, partition: number, offset: number, extra: { topic: string; messages: Message[] } | null): Promise<void> {
    return this.commitWhen(groupId, topic, partition, () => Promise.resolve({ offset, extra })).then(() => undefined);
  }

  /**
   * As {@link commit}, with the offset and snapshots known later: the commit takes its place in
   * the queue now (sends called after this go to the next transaction), then waits for `plan`;
   * a null plan commits nothing (the transaction stays open).
   */
  commitWhen(groupId: string, topic: string, partition: number, plan: () => Promise<{ offset: number; extra: { topic: string; messages: Message[] } | null } | null>): Promise<boolean> {
    return this.enqueue(async () => {
      const p = await plan();
      if (p === null) return false;
      if (this.dropped) throw new ConnectorError(`${topic}:${partition} was revoked before its transaction committed`, { retriable: false });
      const transaction = await this.transaction();
      // In requests under the broker's message limit (shared state can be tens of MB).
      if (p.extra !== null && p.extra.messages.length > 0) await sendGrouped(transaction, p.extra.topic, p.extra.messages);
      await transaction.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: [{ partition, offset: String(p.offset) }] }] });
      await transaction.commit();
      this.open = null;
      this.sent = 0;
      return true;
    });
  }

  /** Aborts the open transaction: read_committed readers never see what it holds. */
  abort(): Promise<void> {
    return this.enqueue(async () => {
      const open = this.open;
      this.open = null;
      this.sent = 0;
      if (open !== null && open.isActive()) await open.abort();
    });
  }

  /** Drops further sends, aborts the open transaction (best effort: a new owner may have fenced it already) and disconnects. */
  close(): Promise<void> {
    this.dropped = true;
    return this.enqueue(async () => {
      try {
        if (this.open !== null && this.open.isActive()) await this.open.abort();
      } catch {
        // Fenced by the partition's new owner, which aborted it already.
      } finally {
        this.open = null;
        await this.producer.disconnect().catch(() => undefined);
      }
    });
  }
}
