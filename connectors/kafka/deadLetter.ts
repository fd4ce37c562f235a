import type { IHeaders, Message } from 'kafkajs';
import { InfiniformerError } from '../../src/errors.js';

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
