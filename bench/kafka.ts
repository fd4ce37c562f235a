/**
 * End-to-end Kafka figures (`npm run bench -- kafka`): records/s and produce-to-output latency
 * (p50/p99) through fromKafka -> process -> toKafka on the local broker, for an identity pipeline
 * (at-least-once, and exactly-once with transactions every 200 ms), a per-key long-term memory
 * pipeline (fitBasis/contractMemory every L records per key), and the default InfiniFormer in
 * token mode with its per-key StreamState changelogged. The latency reader is read_committed.
 * Env: BENCH_KAFKA_MODES (comma list), BENCH_KAFKA_COMMIT_MS (default 200), BENCH_KAFKA_RECORDS,
 * BENCH_KAFKA_RATE, BENCH_KAFKA_SECONDS, BENCH_KAFKA_MODEL_RECORDS, BENCH_KAFKA_MODEL_RATE.
 * Uses KAFKA_BROKERS when a broker answers there, else starts one and stops it afterwards.
 * Figures are printed side by side from one run; nothing passes or fails on time.
 */
import { Kafka, logLevel, type Message } from 'kafkajs';
import { map, type Observable } from 'rxjs';
import { fromKafka, streamStateCodec, toKafka, type KafkaRecord, type StateCodec } from '../connectors/kafka/index.js';
import { currentBackend, initBackend } from '../src/backend.js';
import { setLogLevel } from '../src/logger.js';
import { brokerAnswers, startBroker, stopBroker } from '../scripts/kafka.js';
import { applyRow, rowOf, type MemoryState } from './kafkaMemoryState.js';
import * as tf from '@tensorflow/tfjs';
import { InfiniFormer, type StreamState } from '../src/model/index.js';

const PARTITIONS = 4;
const BURST = Number(process.env.BENCH_KAFKA_RECORDS ?? 50_000);
const RATE = Number(process.env.BENCH_KAFKA_RATE ?? 2000); // records/s for the latency run
const PACED_SECONDS = Number(process.env.BENCH_KAFKA_SECONDS ?? 8);

type Mode = 'identity' | 'identity-eos' | 'memory' | 'model';
const MODEL_RECORDS = Number(process.env.BENCH_KAFKA_MODEL_RECORDS ?? 1000);
const MODEL_RATE = Number(process.env.BENCH_KAFKA_MODEL_RATE ?? 25);
const COMMIT_MS = Number(process.env.BENCH_KAFKA_COMMIT_MS ?? 200);
const MODES = (process.env.BENCH_KAFKA_MODES ?? 'identity,identity-eos,memory,model').split(',') as Mode[];
let model: InfiniFormer | undefined;

interface Figures {
  recordsPerSecond: number;
  p50: number;
  p99: number;
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function pipeline(kafka: Kafka, brokers: string, mode: Mode, count: number, paced: boolean): Promise<Figures> {
  const id = `${mode}-${paced ? 'paced' : 'burst'}-${process.pid}-${Date.now()}`;
  const input = `bench-in-${id}`;
  const output = `bench-out-${id}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: input, numPartitions: PARTITIONS }, { topic: output, numPartitions: PARTITIONS }], waitForLeaders: true });
  type State = MemoryState | StreamState;
  // The model's per-key StreamState (B, STM cache, position) is changelogged like any state.
  const changelog =
    mode === 'model' && model
      ? { topic: `bench-changelog-${id}`, codec: streamStateCodec(model) as unknown as StateCodec<State> }
      : undefined;
  const exactlyOnce = mode === 'identity-eos';
  const source = fromKafka<Buffer, State>({
    brokers,
    groupId: `bench-${id}`,
    topics: [input],
    handleSigterm: false,
    commitIntervalMs: COMMIT_MS,
    ...(changelog ? { changelog } : {}),
    ...(exactlyOnce ? { exactlyOnce: { transactionalId: `bench-${id}` } } : {}),
  });
  const process$ = (records: Observable<KafkaRecord<Buffer, State>>) =>
    records.pipe(
      map((r) => {
        const [i, sent] = r.value.toString().split(' ').map(Number) as [number, number];
        let out = '';
        if (mode === 'memory') r.state.set(applyRow(r.state.get() as MemoryState | undefined, rowOf(i)));
        if (mode === 'model' && model) {
          // One byte token per record; the output is the model's most likely next byte.
          const state = (r.state.get() as StreamState | undefined) ?? model.createState(0);
          const logits = model.step([state], [97 + (i % 26)]);
          out = String(tf.tidy(() => tf.argMax(logits, 1).dataSync()[0]));
          logits.dispose();
          r.state.set(state);
        }
        return { key: r.key, value: `${i} ${sent} ${out}`, ack: r.ack, transaction: r.transaction };
      }),
    );
  const subscription = source.pipe(process$, toKafka({ brokers, topic: output, exactlyOnce })).subscribe();

  // Latency is measured at a consumer of the output topic, like any downstream reader.
  const latencies: number[] = [];
  let firstOutput = 0;
  let lastOutput = 0;
  const reader = kafka.consumer({ groupId: `bench-reader-${id}`, maxWaitTimeInMs: 20 });
  await reader.connect();
  await reader.subscribe({ topics: [output], fromBeginning: true });
  await reader.run({
    eachBatch: async ({ batch }) => {
      const now = Date.now();
      for (const m of batch.messages) {
        const sent = Number(m.value?.toString().split(' ')[1]);
        latencies.push(now - sent);
      }
      if (firstOutput === 0) firstOutput = now;
      lastOutput = now;
    },
  });
  await new Promise((r) => setTimeout(r, 3000)); // both groups joined

  const producer = kafka.producer();
  await producer.connect();
  const started = Date.now();
  if (paced) {
    const rate = mode === 'model' ? MODEL_RATE : RATE;
    const perTick = Math.max(1, Math.round(rate / 100));
    for (let i = 0; i < count; i += perTick) {
      const messages: Message[] = [];
      for (let j = i; j < Math.min(count, i + perTick); j++) messages.push({ key: `k${j % 16}`, value: `${j} ${Date.now()}`, partition: j % PARTITIONS });
      await producer.send({ topic: input, acks: 1, messages });
      const due = started + ((i + perTick) / rate) * 1000;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    }
  } else {
    for (let i = 0; i < count; i += 5000) {
      const messages: Message[] = [];
      for (let j = i; j < Math.min(count, i + 5000); j++) messages.push({ key: `k${j % 16}`, value: `${j} ${Date.now()}`, partition: j % PARTITIONS });
      await producer.send({ topic: input, acks: 1, messages });
    }
  }
  const deadline = Date.now() + 300_000;
  while (latencies.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await producer.disconnect();
  await source.drain();
  subscription.unsubscribe();
  await reader.disconnect();
  await admin.deleteTopics({ topics: [input, output, `bench-${id}.dlq`, `bench-changelog-${id}`] }).catch(() => undefined);
  await admin.disconnect();
  const sorted = [...latencies].sort((a, b) => a - b);
  const seconds = (lastOutput - started) / 1000;
  return { recordsPerSecond: latencies.length / seconds, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
}

export async function run(): Promise<void> {
  setLogLevel('error');
  await initBackend();
  let brokers = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';
  let started = false;
  if (!(await brokerAnswers(brokers))) {
    const broker = await startBroker({});
    brokers = broker.brokers;
    started = true;
  }
  const kafka = new Kafka({ clientId: 'bench', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
  try {
    const rows: Array<[string, Figures, Figures]> = [];
    model = InfiniFormer.create();
    for (const mode of MODES) {
      const burst = await pipeline(kafka, brokers, mode, mode === 'model' ? MODEL_RECORDS : BURST, false);
      const paced = await pipeline(kafka, brokers, mode, (mode === 'model' ? MODEL_RATE : RATE) * PACED_SECONDS, true);
      rows.push([mode, burst, paced]);
    }
    console.log(`backend ${currentBackend()}; commit interval ${COMMIT_MS} ms; burst: ${BURST} records (model: ${MODEL_RECORDS}) produced at once; paced: ${RATE} records/s (model: ${MODEL_RATE}) for ${PACED_SECONDS} s; ${PARTITIONS} partitions, 16 keys`);
    console.log(`memory: per-key B [16, 4] refit every 8 records; model: InfiniFormer default config (width ${model.config.width}, ${model.config.numLayers} layers, L ${model.config.segmentLength}, N ${model.config.numBasis}) one token per record, per-key StreamState changelogged`);
    console.log('pipeline       burst rec/s  burst p50/p99 ms   paced p50/p99 ms');
    for (const [mode, burst, paced] of rows) {
      console.log(`${mode.padEnd(14)} ${burst.recordsPerSecond.toFixed(0).padStart(11)}  ${`${burst.p50}/${burst.p99}`.padStart(15)}   ${`${paced.p50}/${paced.p99}`.padStart(15)}`);
    }
    model.dispose();
    const identity = rows.find((r) => r[0] === 'identity');
    if (identity) {
      const ratios = rows.filter((r) => r !== identity).map((r) => `${r[0]} ${(r[1].recordsPerSecond / identity[1].recordsPerSecond).toFixed(4)}`);
      if (ratios.length > 0) console.log(`throughput ratios to identity: ${ratios.join(', ')}`);
    }
  } finally {
    if (started) await stopBroker({});
  }
}

if (process.argv[1]?.endsWith('kafka.ts') && process.argv[1].includes('bench')) await run();
