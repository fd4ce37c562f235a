/**
 * Kafka flow figures (`npm run bench -- kafkaFlow`): commit lag and per-partition progress with
 * one slow key. 4 partitions, 16 keys (4 per partition), records produced at a steady rate;
 * every key's records are processed in order, the other keys' with a little synchronous work
 * (BENCH_FLOW_BUSY_MS, standing in for a model step) and key k0 (partition 0) with an extra
 * asynchronous delay per record (BENCH_FLOW_SLOW_MS) that does not block the other keys.
 * Commit lag, sampled every 100 ms per partition: records = newest delivered output's offset + 1
 * - committed offset; age = how long the oldest delivered output not covered by a commit has
 * waited. Runs once with `partitionsConsumedConcurrently: 1` (the default) and once with 4. Env: BENCH_FLOW_RATE (records/s, default 400), BENCH_FLOW_SECONDS (15),
 * BENCH_FLOW_SLOW_MS (30), BENCH_FLOW_BUSY_MS (1), BENCH_FLOW_COMMIT_MS (200).
 * Uses KAFKA_BROKERS when a broker answers there, else starts one and stops it afterwards.
 */
import { loadavg } from 'node:os';
import { Kafka, logLevel, type Message } from 'kafkajs';
import { concatMap, groupBy, map, mergeMap, of, timer } from 'rxjs';
import { fromKafka, toKafka } from '../connectors/kafka/index.js';
import { setLogLevel } from '../src/logger.js';
import { brokerAnswers, startBroker, stopBroker } from '../scripts/kafka.js';

const PARTITIONS = 4;
const KEYS = 16;
const RATE = Number(process.env.BENCH_FLOW_RATE ?? 400);
const SECONDS = Number(process.env.BENCH_FLOW_SECONDS ?? 15);
const SLOW_MS = Number(process.env.BENCH_FLOW_SLOW_MS ?? 30);
const BUSY_MS = Number(process.env.BENCH_FLOW_BUSY_MS ?? 1);
const COMMIT_MS = Number(process.env.BENCH_FLOW_COMMIT_MS ?? 200);
const SLOW_KEY = 'k0';

interface PartitionFigures {
  lagRecords: number[];
  lagAgeMs: number[];
  outputsPerSecond: number;
}
interface RunFigures {
  partitions: PartitionFigures[];
  /** Produce-to-delivery latency, ms: the slow key's and the other keys' of partition 0. */
  slowKeyP99: number;
  fastKeysOnSlowPartitionP99: number;
  fastKeysElsewhereP99: number;
}

const percentile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
};

function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** Per partition: delivered outputs (offset, time) not yet covered by a commit, and counts. */
class Deliveries {
  readonly pending = new Map<number, number>();
  newest = -1;
  count = 0;
  first = 0;
  last = 0;

  deliver(offset: number, now: number): void {
    this.pending.set(offset, now);
    this.newest = Math.max(this.newest, offset);
    this.count++;
    if (this.first === 0) this.first = now;
    this.last = now;
  }

  /** Commit lag at `now` given the committed offset (the next offset to read). */
  lag(committed: number, now: number): { records: number; ageMs: number } {
    let oldest = now;
    for (const [offset, at] of this.pending) {
      if (offset < committed) this.pending.delete(offset);
      else oldest = Math.min(oldest, at);
    }
    return { records: Math.max(0, this.newest + 1 - committed), ageMs: now - oldest };
  }
}

async function flowRun(kafka: Kafka, brokers: string, concurrency: number): Promise<RunFigures> {
  const id = `flow-${concurrency}-${process.pid}-${Date.now()}`;
  const input = `bench-in-${id}`;
  const output = `bench-out-${id}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: input, numPartitions: PARTITIONS }, { topic: output, numPartitions: PARTITIONS }], waitForLeaders: true });
  const source = fromKafka({
    brokers, groupId: `bench-${id}`, topics: [input], handleSigterm: false, commitIntervalMs: COMMIT_MS, partitionsConsumedConcurrently: concurrency,
  });
  const deliveries = Array.from({ length: PARTITIONS }, () => new Deliveries());
  const latency = { slow: [] as number[], fastSame: [] as number[], fastOther: [] as number[] };
  const subscription = source
    .pipe(
      // Each key in order; keys independent of each other (what a keyed operator does).
      groupBy((r) => r.stateKey),
      mergeMap((byKey) =>
        byKey.pipe(
          concatMap((r) => {
            busy(BUSY_MS);
            return r.stateKey === SLOW_KEY ? timer(SLOW_MS).pipe(map(() => r)) : of(r);
          }),
        ),
      ),
      map((r) => ({
        key: r.key,
        value: r.value,
        ack: () => {
          const now = Date.now();
          deliveries[r.partition]?.deliver(Number(r.offset), now);
          const sent = Number(r.value.toString().split(' ')[1]);
          (r.stateKey === SLOW_KEY ? latency.slow : r.partition === 0 ? latency.fastSame : latency.fastOther).push(now - sent);
          r.ack();
        },
      })),
      toKafka({ brokers, topic: output }),
    )
    .subscribe();

  const samples = Array.from({ length: PARTITIONS }, () => ({ records: [] as number[], ages: [] as number[] }));
  const sampler = setInterval(() => {
    const now = Date.now();
    const committed = source.stats().committed;
    deliveries.forEach((d, p) => {
      if (d.count === 0) return;
      const lag = d.lag(committed[`${input}:${p}`] ?? 0, now);
      samples[p]?.records.push(lag.records);
      samples[p]?.ages.push(lag.ageMs);
    });
  }, 100);

  await new Promise((r) => setTimeout(r, 3000)); // the group joined
  const producer = kafka.producer();
  await producer.connect();
  const count = RATE * SECONDS;
  const perTick = Math.max(1, Math.round(RATE / 100));
  const started = Date.now();
  for (let i = 0; i < count; i += perTick) {
    const messages: Message[] = [];
    for (let j = i; j < Math.min(count, i + perTick); j++) messages.push({ key: `k${j % KEYS}`, value: `${j} ${Date.now()}`, partition: j % PARTITIONS });
    await producer.send({ topic: input, acks: 1, messages });
    const due = started + ((i + perTick) / RATE) * 1000;
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
  }
  const deadline = Date.now() + 120_000;
  while (deliveries.reduce((n, d) => n + d.count, 0) < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  clearInterval(sampler);
  await producer.disconnect();
  await source.drain();
  subscription.unsubscribe();
  await admin.deleteTopics({ topics: [input, output, `bench-${id}.dlq`] }).catch(() => undefined);
  await admin.disconnect();
  return {
    partitions: deliveries.map((d, p) => ({
      lagRecords: samples[p]?.records ?? [],
      lagAgeMs: samples[p]?.ages ?? [],
      outputsPerSecond: d.count / Math.max(1e-3, (d.last - d.first) / 1000),
    })),
    slowKeyP99: percentile(latency.slow, 0.99),
    fastKeysOnSlowPartitionP99: percentile(latency.fastSame, 0.99),
    fastKeysElsewhereP99: percentile(latency.fastOther, 0.99),
  };
}

function report(label: string, f: RunFigures): void {
  console.log(`${label}`);
  console.log('  partition  lag records p50/p99  lag age ms p50/p99  outputs/s');
  f.partitions.forEach((p, i) => {
    const records = `${percentile(p.lagRecords, 0.5)}/${percentile(p.lagRecords, 0.99)}`;
    const ages = `${percentile(p.lagAgeMs, 0.5)}/${percentile(p.lagAgeMs, 0.99)}`;
    console.log(`  ${String(i).padStart(9)}  ${records.padStart(20)}  ${ages.padStart(18)}  ${p.outputsPerSecond.toFixed(1).padStart(9)}`);
  });
  console.log(`  produce-to-delivery p99 ms: slow key ${f.slowKeyP99}, other keys of partition 0 ${f.fastKeysOnSlowPartitionP99}, keys of partitions 1-3 ${f.fastKeysElsewhereP99}`);
}

export async function run(): Promise<void> {
  setLogLevel('error');
  let brokers = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';
  let started = false;
  if (!(await brokerAnswers(brokers))) {
    brokers = (await startBroker({})).brokers;
    started = true;
  }
  const kafka = new Kafka({ clientId: 'bench-flow', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
  try {
    const before = loadavg();
    const one = await flowRun(kafka, brokers, 1);
    const four = await flowRun(kafka, brokers, 4);
    const after = loadavg();
    console.log(`${PARTITIONS} partitions, ${KEYS} keys, ${RATE} records/s for ${SECONDS} s; key ${SLOW_KEY} +${SLOW_MS} ms async per record, every record ${BUSY_MS} ms sync work; commit interval ${COMMIT_MS} ms`);
    console.log(`load average (1 min) before ${before[0]?.toFixed(2)}, after ${after[0]?.toFixed(2)}`);
    report('partitionsConsumedConcurrently 1 (default)', one);
    report('partitionsConsumedConcurrently 4', four);
  } finally {
    if (started) await stopBroker({});
  }
}

if (process.argv[1]?.endsWith('kafkaFlow.ts')) await run();
