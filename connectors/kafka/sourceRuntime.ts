/**
 * What the parts of one source subscription share: the resolved options, the kafkajs clients,
 * the counters and the member's run status. Built by {@link fromKafka} per subscription.
 */
import type { Consumer, Kafka, Producer } from 'kafkajs';
import { BadConfigError } from '../../src/errors.js';
import { rawDecoder, type ValueDecoder } from './decode.js';
import type { FromKafkaOptions, KafkaSourceStats, MissingKeyPolicy, NullValuePolicy } from './sourceTypes.js';

/** `topic:partition`, the id of an input partition in maps, stats and logs. */
export const tp = (topic: string, partition: number): string => `${topic}:${partition}`;

/** The options with their defaults applied and checked. */
export interface ResolvedSourceOptions<T, S> {
  raw: FromKafkaOptions<T, S>;
  high: number;
  low: number;
  decode: ValueDecoder<T>;
  maxValueBytes: number;
  nullValues: NullValuePolicy;
  missingKeys: MissingKeyPolicy;
  deadLetterTopic: string;
  commitIntervalMs: number;
  drainTimeoutMs: number;
  maxBlockingMs: number;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  heartbeatIntervalMs: number;
  concurrency: number;
}

const positiveInteger = (name: string, value: number) => {
  if (!Number.isInteger(value) || value < 1) throw new BadConfigError(name, `must be a positive integer, got ${value}`);
  return value;
};

/** Applies the defaults documented on {@link FromKafkaOptions}; a BadConfigError names the bad option. */
export function resolveSourceOptions<T, S>(options: FromKafkaOptions<T, S>): ResolvedSourceOptions<T, S> {
  const high = positiveInteger('highWatermark', options.highWatermark ?? 1000);
  const low = options.lowWatermark ?? Math.floor(high / 2);
  if (!Number.isInteger(low) || low < 0 || low >= high) throw new BadConfigError('lowWatermark', `must be an integer in [0, highWatermark), got ${low}`);
  if (options.topics.length === 0) throw new BadConfigError('topics', 'at least one topic is needed');
  if (!options.groupId) throw new BadConfigError('groupId', 'a consumer group id is needed');
  const maxBlockingMs = options.maxBlockingMs ?? 50;
  if (!(maxBlockingMs >= 0)) throw new BadConfigError('maxBlockingMs', `must be a number >= 0, got ${maxBlockingMs}`);
  if (options.checkpoint !== undefined && options.changelog !== undefined) {
    throw new BadConfigError('checkpoint', 'aligned checkpoints are not combined with a record.state changelog');
  }
  if (options.exactlyOnce !== undefined && !options.exactlyOnce.transactionalId) throw new BadConfigError('exactlyOnce', 'a transactionalId prefix is needed');
  const sessionTimeoutMs = positiveInteger('sessionTimeoutMs', options.sessionTimeoutMs ?? 45_000);
  if (sessionTimeoutMs < 3) throw new BadConfigError('sessionTimeoutMs', `must be at least 3 ms, got ${sessionTimeoutMs}`);
  return {
    raw: options,
    high,
    low,
    decode: options.decode ?? (rawDecoder as unknown as ValueDecoder<T>),
    maxValueBytes: options.maxValueBytes ?? 1 << 20,
    nullValues: options.nullValues ?? 'dead-letter',
    missingKeys: options.missingKeys ?? 'partition',
    deadLetterTopic: options.deadLetterTopic ?? `${options.groupId}.dlq`,
    commitIntervalMs: options.commitIntervalMs ?? 1000,
    drainTimeoutMs: options.drainTimeoutMs ?? 30_000,
    maxBlockingMs,
    sessionTimeoutMs,
    rebalanceTimeoutMs: positiveInteger('rebalanceTimeoutMs', options.rebalanceTimeoutMs ?? 60_000),
    // At most 1 s (a member learns of a rebalance at its next heartbeat; the Java client's 3 s
    // made joins here take seconds longer), at most a third of the session.
    heartbeatIntervalMs: Math.min(1000, Math.floor(sessionTimeoutMs / 3)),
    concurrency: positiveInteger('partitionsConsumedConcurrently', options.partitionsConsumedConcurrently ?? 1),
  };
}

/** A fresh set of counters. */
export function newSourceStats(): KafkaSourceStats {
  return {
    emitted: 0, acked: 0, deadLettered: 0, skippedAsApplied: 0, inFlight: 0, revokedInFlight: 0, maxInFlight: 0, pauses: 0,
    committed: {}, assigned: [], joins: 0, restoredKeys: 0, snapshotsWritten: 0, snapshotsRewritten: 0, transactions: 0, fenced: 0,
  };
}

/** One subscription's shared parts. */
export interface SourceRuntime<T, S> {
  readonly options: ResolvedSourceOptions<T, S>;
  readonly kafka: Kafka;
  readonly consumer: Consumer;
  /** Idempotent producer for dead letters and (at-least-once) changelog snapshots. */
  readonly producer: Producer;
  readonly stats: KafkaSourceStats;
  /** draining: no new records are emitted; closed: the clients are being disconnected. */
  readonly status: { draining: boolean; closed: boolean };
  /** Ends the stream with a ConnectorError (once; not after close). */
  fail(error: unknown, what: string): void;
}
