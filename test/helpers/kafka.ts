/**
 * Helpers for tests against the real broker (never a mock). `npm test` starts one when none
 * answers (scripts/kafka.ts run); a test file run on its own needs `npm run kafka:up` first.
 * Without a broker every Kafka test fails loudly.
 */
import { Kafka, logLevel, type KafkaMessage, type Message } from 'kafkajs';
import { brokerAnswers } from '../../scripts/kafka.js';
// The tests read outputs as a correct read_committed consumer does (kafkajs 2.2's own filter
// lets records of interleaved aborted transactions through; see connectors/kafka/readCommitted.ts).
import '../../connectors/kafka/readCommitted.js';

export const BROKERS = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';

let checked: Promise<void> | null = null;

/** Resolves when the broker answers; rejects with instructions otherwise (the test fails). */
export function requireBroker(brokers = BROKERS): Promise<void> {
  if (brokers === BROKERS && checked) return checked;
  const probe = brokerAnswers(brokers, 10_000).then((up) => {
    if (!up) throw new Error(`No Kafka broker answers on ${brokers}. Run the tests with \`npm test\` (which starts one) or start one with \`npm run kafka:up\`.`);
  });
  if (brokers === BROKERS) checked = probe;
  return probe;
}

export function testKafka(brokers = BROKERS): Kafka {
  // The shared broker can stall for tens of seconds when the machine is overloaded: generous timeouts.
  return new Kafka({ clientId: 'infiniformer-test', brokers: brokers.split(','), logLevel: logLevel.NOTHING, retry: { retries: 10 }, requestTimeout: 90_000, connectionTimeout: 10_000 });
}

let counter = 0;
/** A topic or group name no other run uses. */
export function uniqueName(prefix: string): string {
  counter++;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

export async function createTopic(kafka: Kafka, topic: string, numPartitions: number, compacted = false): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    // An overloaded broker may time the request out after creating the topic: retry, and accept a topic that exists.
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.createTopics({
          topics: [{ topic, numPartitions, configEntries: compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : [] }],
          waitForLeaders: false,
        });
        break;
      } catch (error) {
        if ((await admin.listTopics().catch(() => [] as string[])).includes(topic)) break;
        if (attempt >= 4 || !(error as { retriable?: boolean }).retriable) throw error;
      }
    }
    // kafkajs's own waitForLeaders gives up on UNKNOWN_TOPIC_OR_PARTITION while the new topic's
    // metadata propagates (seen with several test files creating topics at once): poll instead.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
        const partitions = topics[0]?.partitions ?? [];
        if (partitions.length === numPartitions && partitions.every((p) => p.leader >= 0)) break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
      }
      if (Date.now() > deadline) throw new Error(`topic ${topic} has no leaders after 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.disconnect();
  }
}

export async function deleteTopics(kafka: Kafka, topics: string[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const present = topics.filter((t) => existing.has(t));
    if (present.length > 0) await admin.deleteTopics({ topics: present, timeout: 10_000 });
  } catch {
    // Cleanup only; the names are unique per run.
  } finally {
    await admin.disconnect();
  }
}

/**
 * Produces `count` records; record i goes to partition i % numPartitions (so its offset there is
 * floor(i / numPartitions)) with the key and value `message(i)` returns. Large batches, acks all.
 */
export async function produceRecords(
  kafka: Kafka,
  topic: string,
  count: number,
  numPartitions: number,
  message: (i: number) => Pick<Message, 'key' | 'value' | 'headers'>,
  batchSize = 5000,
): Promise<void> {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    for (let start = 0; start < count; start += batchSize) {
      const end = Math.min(count, start + batchSize);
      const byPartition = new Map<number, Message[]>();
      for (let i = start; i < end; i++) {
        const partition = i % numPartitions;
        let list = byPartition.get(partition);
        if (!list) byPartition.set(partition, (list = []));
        list.push({ ...message(i), partition });
      }
      await producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages: [...byPartition.values()].flat() }] });
    }
  } finally {
    await producer.disconnect();
  }
}

export type ReadMessage = KafkaMessage & { partition: number };

/**
 * Reads a topic from the beginning until `expected` records arrived or `idleMs` passed without
 * any. Isolation read_committed (records of aborted transactions are not returned) unless
 * `readUncommitted`.
 */
export async function readTopic(kafka: Kafka, topic: string, expected: number, idleMs = 8000, timeoutMs = 120_000, readUncommitted = false): Promise<ReadMessage[]> {
  const consumer = kafka.consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 200, sessionTimeout: 10_000, readUncommitted });
  const out: ReadMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let last = Date.now();
    const started = Date.now();
    await consumer.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) out.push({ ...m, partition: batch.partition });
        last = Date.now();
      },
    });
    while (out.length < expected && Date.now() - last < idleMs && Date.now() - started < timeoutMs) await new Promise((r) => setTimeout(r, 100));
    // A short grace period shows extra records (duplicates) that arrive after the expected count.
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    await consumer.disconnect();
  }
  return out;
}

/** Committed offsets of a group on a topic, by partition. */
export async function committedOffsets(kafka: Kafka, groupId: string, topic: string): Promise<Map<number, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return new Map((entry?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  } finally {
    await admin.disconnect();
  }
}

/** Polls `condition` every 50 ms until true; throws with `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Kafka client chatter (coordinator loading, rebalances) is expected in these tests; keep failures visible.
import { setLogLevel } from '../../src/logger.js';
setLogLevel((process.env.INFINIFORMER_LOG_LEVEL as 'error' | 'warn' | 'info' | 'debug' | 'nothing' | undefined) ?? 'error');
