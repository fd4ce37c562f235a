import { Kafka, logLevel, type ITopicConfig, type RetryOptions } from 'kafkajs';
import { ConnectionSecurityError, ConnectorError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
// Every client made here reads transactional topics through the corrected read_committed filter.
import './readCommitted.js';
import { resolveSecurity, securityError, type KafkaSasl, type KafkaSsl } from './security.js';

const kafkaLog = createLogger('infiniformer:kafka:client');

/** How to reach the cluster: an existing kafkajs client, or brokers to build one. */
export interface KafkaConnection {
  /** `host:port` list or comma-separated string. Default: env KAFKA_BROKERS or 127.0.0.1:9092. */
  brokers?: string | string[];
  /** Default 'infiniformer'. */
  clientId?: string;
  /** Reuse a client instead of `brokers`/`clientId`. */
  kafka?: Kafka;
  /** kafkajs retry policy. Default: 30 retries, 300 ms doubling to 5 s (rides out a broker restart). */
  retry?: RetryOptions;
  /** TLS: true for the system's trusted roots, or CA / client certificate as PEM text or file paths. */
  ssl?: boolean | KafkaSsl;
  /** SASL authentication (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); over TLS unless the network is trusted. */
  sasl?: KafkaSasl;
}

/** Parses `brokers` (array, comma-separated string, or env KAFKA_BROKERS). */
export function brokerList(brokers?: string | string[]): string[] {
  const raw = brokers ?? process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';
  return (Array.isArray(raw) ? raw : raw.split(',')).map((b) => b.trim()).filter((b) => b.length > 0);
}

/** Retries of every client, producer and consumer the connectors make, unless `retry` is given. */
export const DEFAULT_RETRY: RetryOptions = { retries: 30, initialRetryTime: 300, maxRetryTime: 5000 };

/**
 * A kafkajs client whose log lines go through the library logger. Throws BadConfigError for
 * invalid `ssl` / `sasl` options or unreadable PEM files.
 */
export function kafkaClient(connection: KafkaConnection = {}): Kafka {
  if (connection.kafka) return connection.kafka;
  return new Kafka({
    clientId: connection.clientId ?? 'infiniformer',
    brokers: brokerList(connection.brokers),
    ...resolveSecurity(connection),
    retry: connection.retry ?? DEFAULT_RETRY,
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, level, log }) => {
      const { message, ...fields } = log;
      const text = `${namespace}: ${String(message)}`;
      if (level <= logLevel.ERROR) kafkaLog.warn(text, fields);
      else kafkaLog.debug(text, fields);
    },
  });
}

/**
 * The typed error for a failed Kafka operation `what`: a ConnectionSecurityError for rejected
 * credentials or certificates, the error itself if already a ConnectorError, else a ConnectorError.
 */
export function kafkaFailure(what: string, error: unknown, connection: KafkaConnection = {}): ConnectorError {
  if (error instanceof ConnectorError) return error;
  const security = securityError(error, connection);
  if (security !== undefined) return new ConnectionSecurityError(`${what}: ${security.message}`, { cause: error });
  return new ConnectorError(`${what}: ${String(error)}`, { cause: error });
}

/** A topic to create when missing, with as many partitions as the widest of `partitionsLike`. */
export interface TopicRequest {
  topic: string;
  compacted: boolean;
  partitionsLike: string[];
  /** Used when `partitionsLike` is empty. */
  numPartitions?: number;
}

/** Creates missing topics (waiting for leaders: single-node auto-creation races with the first produce). */
export async function ensureTopics(kafka: Kafka, requests: TopicRequest[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = requests.filter((r) => !existing.has(r.topic));
    if (missing.length === 0) return;
    const topics: ITopicConfig[] = [];
    for (const request of missing) {
      let numPartitions = request.numPartitions ?? 1;
      const like = request.partitionsLike.filter((t) => existing.has(t));
      if (like.length > 0) {
        const metadata = await admin.fetchTopicMetadata({ topics: like });
        numPartitions = Math.max(...metadata.topics.map((t) => t.partitions.length));
      }
      topics.push({
        topic: request.topic,
        numPartitions,
        configEntries: request.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
      });
    }
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.createTopics({ topics: topics.filter((t) => !existing.has(t.topic)), waitForLeaders: false });
        break;
      } catch (error) {
        // Another member may have created them first, or a busy broker timed the request out after creating them.
        for (const topic of await admin.listTopics()) existing.add(topic);
        if (topics.every((t) => existing.has(t.topic))) break;
        if (attempt >= 3 || !(error as { retriable?: boolean }).retriable) throw error;
        kafkaLog.debug('creating topics failed; retrying', { error: String(error) });
      }
    }
    // kafkajs's own waitForLeaders gives up on UNKNOWN_TOPIC_OR_PARTITION while a new topic's
    // metadata propagates; poll until every partition has a leader instead.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const metadata = await admin.fetchTopicMetadata({ topics: topics.map((t) => t.topic) });
        if (metadata.topics.length === topics.length && metadata.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        kafkaLog.debug('waiting for new topics to have leaders', { error: String(error) });
      }
      if (Date.now() > deadline) throw new Error(`topics ${topics.map((t) => t.topic).join(', ')} have no leaders after 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.disconnect();
  }
}
