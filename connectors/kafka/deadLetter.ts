import type { IHeaders, Message, Producer } from 'kafkajs';
import { InfiniformerError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';

const log = createLogger('infiniformer:kafka:dlq');

/** Where a dead letter came from, written into its headers. */
export interface DeadLetterOrigin {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: IHeaders;
  timestamp: string;
}

/** Why a record was dead-lettered. */
export type DeadLetterReason = 'null-value' | 'missing-key' | 'oversize' | 'decode' | 'processing';

/** Header names on dead-letter records (the original headers are kept alongside). */
export const DEAD_LETTER_HEADERS = {
  reason: 'x-dlq-reason',
  error: 'x-dlq-error',
  code: 'x-dlq-error-code',
  topic: 'x-dlq-topic',
  partition: 'x-dlq-partition',
  offset: 'x-dlq-offset',
  timestamp: 'x-dlq-timestamp',
  originalSize: 'x-dlq-original-size',
} as const;

/**
 * Builds the dead-letter message for a failed record: the original key and value (the value cut
 * to `maxValueBytes` so an oversize record still fits), the original headers, the reason, the
 * error text and the record's coordinates. Keyed like the original so a replay keeps key order.
 */
export function deadLetterMessage(origin: DeadLetterOrigin, reason: DeadLetterReason, error: unknown, maxValueBytes: number): Message {
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof InfiniformerError ? error.code : error instanceof Error ? error.name : 'unknown';
  const value = origin.value === null ? null : origin.value.length > maxValueBytes ? origin.value.subarray(0, maxValueBytes) : origin.value;
  return {
    key: origin.key,
    value,
    headers: {
      ...origin.headers,
      [DEAD_LETTER_HEADERS.reason]: reason,
      [DEAD_LETTER_HEADERS.error]: message.slice(0, 2000),
      [DEAD_LETTER_HEADERS.code]: code,
      [DEAD_LETTER_HEADERS.topic]: origin.topic,
      [DEAD_LETTER_HEADERS.partition]: String(origin.partition),
      [DEAD_LETTER_HEADERS.offset]: origin.offset,
      [DEAD_LETTER_HEADERS.timestamp]: origin.timestamp,
      [DEAD_LETTER_HEADERS.originalSize]: String(origin.value?.length ?? -1),
    },
  };
}

/**
 * The at-least-once dead-letter queue: sends queued dead letters in order, in batches, retrying
 * until the broker takes them, and only then calls each one's `done` (which acknowledges the
 * original record, so its offset may commit). Exactly-once mode sends dead letters through the
 * partition's transaction instead.
 */
export class DeadLetterQueue {
  private queue: Array<{ message: Message; done: () => void }> = [];
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  /** @param onSent called with the number of dead letters each successful send wrote. */
  constructor(
    private readonly producer: Producer,
    private readonly topic: string,
    private readonly onSent: (count: number) => void,
    private readonly retryDelayMs = 500,
  ) {}

  /** Queues a dead letter; `done` runs once the broker has it. */
  push(message: Message, done: () => void): void {
    this.queue.push({ message, done });
    this.chain = this.chain.then(() => this.sendQueued());
  }

  /** Resolves once everything queued so far was sent (or the queue closed). */
  flushed(): Promise<void> {
    return this.chain;
  }

  /** Stops retrying: unsent dead letters stay unacknowledged, so their records are read again. */
  close(): void {
    this.closed = true;
  }

  private async sendQueued(): Promise<void> {
    while (this.queue.length > 0 && !this.closed) {
      const batch = this.queue;
      this.queue = [];
      for (;;) {
        try {
          await this.producer.send({ topic: this.topic, acks: -1, messages: batch.map((b) => b.message) });
          break;
        } catch (error) {
          // Not acknowledged means not committed: retrying is safe, giving up is not.
          log.warn('dead-letter send failed; retrying', { error: String(error) });
          if (this.closed) return;
          await new Promise((r) => setTimeout(r, this.retryDelayMs));
        }
      }
      this.onSent(batch.length);
      for (const b of batch) b.done();
    }
  }
}
