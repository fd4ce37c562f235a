/**
 * Live prediction on Kafka topics: produce -> model -> output topic -> consume.
 *
 * 1. Creates an input and an output topic (2 partitions each, names unique to this run).
 * 2. A producer writes real log lines (the held-out GCC test-suite log,
 *    data/gcc-12-test-results/gcc-heldout.txt) into the input topic at a steady rate, each keyed
 *    by the test-suite directory of the test it belongs to (`gcc.dg/tls`, `c-c++-common/tm`, ...;
 *    a line that names none keeps the key of the line before).
 * 3. The pipeline: `fromKafka` (consumer group, UTF-8 values) -> `tokenize` -> `infiniteFormer`
 *    with the committed default model (models/default, one fixed-size memory per record key) ->
 *    `predictNext` -> `recordSurprisal` -> `anomalies` (the key's running 95 % quantile) ->
 *    `toKafka`: one JSON prediction per line (bits per byte, anomaly flag, the top-3 bytes the
 *    model expects next) on the output topic. A line's input record is acknowledged only once
 *    its prediction is delivered (acks = all), so the committed input offsets never run ahead
 *    of the outputs (at-least-once).
 * 4. A separate consumer reads the output topic and prints what arrives, with the time from the
 *    input record's broker timestamp to its prediction's arrival.
 * Once every line's prediction has been read back, the source drains (commits, leaves the
 * group), the topics are deleted and the program exits 0.
 *
 *   npm run example:kafka [-- --short] [-- --lines 901 --rate 20 --from 0 --json]
 *
 * `--short` (or INFINIFORMER_EXAMPLE_SHORT=1): 40 lines from line 131, where the stream moves
 * from one test directory to the next, at 40 lines per second. `--json` prints every record read
 * back from the output topic as one JSON line (topic, partition, offset, key, value).
 * Needs a broker (default 127.0.0.1:9092, or --brokers / KAFKA_BROKERS; `npm run kafka:up`).
 * A secured cluster: `--kafka-config client.properties` and/or the KAFKA_SSL* / KAFKA_SASL_*
 * variables (docs/kafka.md, "Security"); every client below gets the same TLS / SASL settings.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EMPTY, map, mergeMap } from 'rxjs';
import { initBackend, loadModel, setLogLevel } from '../src/index.js';
import { anomalies, infiniteFormer, predictNext, recordSurprisal, tokenize, type TextRecord } from '../operators/index.js';
import { brokerList, ensureTopics, fromKafka, kafkaClient, loadKafkaSettings, toKafka, utf8Decoder, type KafkaRecord } from '../connectors/kafka/index.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const short = args.includes('--short') || process.env['INFINIFORMER_EXAMPLE_SHORT'] === '1';
const json = args.includes('--json');
const settings = loadKafkaSettings(args.includes('--kafka-config') ? flag('kafka-config', '') : undefined).connection;
const brokers = flag('brokers', settings.brokers ?? '127.0.0.1:9092');
const connection = { ...settings, brokers };
const from = Number(flag('from', short ? '130' : '0'));
const rate = Number(flag('rate', short ? '40' : '20'));
const MODEL = fileURLToPath(new URL('../models/default', import.meta.url));
const LOG = fileURLToPath(new URL('../data/gcc-12-test-results/gcc-heldout.txt', import.meta.url));

/** The log's lines (without their `\n`), each with the test-suite directory it belongs to. */
function keyedLines(): { key: string; text: string; line: number }[] {
  const lines = readFileSync(LOG, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const dir = /(?:testsuite\/|^[A-Z]+: )([\w+.-]+\/[\w+.-]+)\//;
  let current = lines.map((l) => dir.exec(l)?.[1]).find((k) => k !== undefined) ?? 'gcc.log';
  return lines.map((text, i) => {
    current = dir.exec(text)?.[1] ?? current;
    return { key: current, text, line: i + 1 };
  });
}

/** What the pipeline writes to the output topic for each line. */
interface Prediction {
  key: string;
  /** Where the line came from: input topic coordinates and its line number in the log file. */
  input: { partition: number; offset: string; line: number | null };
  /** Mean surprisal of the line's bytes (its newline included): -log2 p(byte | the key's past). */
  bitsPerByte: number;
  bytes: number;
  anomaly: boolean;
  /** The key's running 95 % quantile of bits per byte it was compared with (null while warming up). */
  threshold: number | null;
  /** The bytes the model expects after the line, most likely first. */
  next: { text: string; prob: number }[];
  text: string;
}

const round = (x: number): number => Math.round(x * 1e4) / 1e4;

async function main(): Promise<void> {
  setLogLevel('warn');
  const all = keyedLines();
  const count = Number(flag('lines', short ? '40' : String(all.length - from)));
  const lines = all.slice(from, from + count);
  if (lines.length === 0) throw new Error(`no lines: --from ${from} --lines ${count} (the log has ${all.length})`);

  const backend = await initBackend({ workload: 'segments' });
  const model = await loadModel(MODEL);
  const tokenizer = model.tokenizer!;
  const kafka = kafkaClient({ ...connection, clientId: 'infiniformer-example' });
  const run = `${Date.now().toString(36)}-${process.pid}`;
  const inTopic = `example-logs-${run}`;
  const outTopic = `example-predictions-${run}`;
  const groupId = `example-scorer-${run}`;
  const deadLetters = `${groupId}.dlq`;
  await ensureTopics(kafka, [
    { topic: inTopic, compacted: false, partitionsLike: [], numPartitions: 2 },
    { topic: outTopic, compacted: false, partitionsLike: [], numPartitions: 2 },
  ]);
  console.log(`backend ${backend}; default model (${model.numParameters} parameters); brokers ${brokerList(brokers).join(',')}`);
  console.log(`topics ${inTopic} -> ${outTopic} (2 partitions each); ${lines.length} log lines from line ${from + 1}, ${rate} per second\n`);

  // --- the pipeline: input topic -> model -> output topic ---
  const source = fromKafka<string>({ ...connection, groupId, topics: [inTopic], decode: utf8Decoder, commitIntervalMs: 500 });
  const lineOf = (r: KafkaRecord<string>): number | null => {
    const h = r.headers['line'];
    return h === undefined ? null : Number(String(h));
  };
  const pipeline = source.pipe(
    map((r): TextRecord => ({ key: r.stateKey, text: `${r.value}\n`, source: r })),
    tokenize({ tokenizer }),
    infiniteFormer(model, { mode: 'segment', maxDelayMs: 50 }),
    predictNext({ topK: 3 }),
    recordSurprisal(),
    anomalies({ quantile: 0.95, window: 500, warmup: 10 }),
    map((s) => {
      const r = s.source as KafkaRecord<string>;
      const out: Prediction = {
        key: s.key,
        input: { partition: r.partition, offset: r.offset, line: lineOf(r) },
        bitsPerByte: round(s.surprisal),
        bytes: s.tokens,
        anomaly: s.anomaly,
        threshold: Number.isFinite(s.threshold) ? round(s.threshold) : null,
        next: (s.last.topK ?? []).map((t) => ({ text: tokenizer.decode([t.token]), prob: round(t.prob) })),
        text: r.value.length > 200 ? `${r.value.slice(0, 200)}…` : r.value,
      };
      return { out, record: r };
    }),
    toKafka({ ...connection, topic: outTopic, key: (x) => x.out.key, value: (x) => JSON.stringify(x.out), onDelivered: (x) => x.record.ack() }),
    mergeMap(() => EMPTY),
  );
  const pipelineDone = new Promise<void>((resolve, reject) => pipeline.subscribe({ error: reject, complete: resolve }));

  // --- a consumer of the output topic ---
  const reader = kafka.consumer({ groupId: `example-reader-${run}`, maxWaitTimeInMs: 100 });
  await reader.connect();
  await reader.subscribe({ topics: [outTopic], fromBeginning: true });
  const received: Prediction[] = [];
  const inputTime = new Map<string, number>();
  const latencies: number[] = [];
  let allRead: () => void = () => undefined;
  const readBack = new Promise<void>((resolve) => (allRead = resolve));
  await reader.run({
    eachMessage: async ({ partition, message }) => {
      const p = JSON.parse(message.value!.toString('utf8')) as Prediction;
      received.push(p);
      const sent = inputTime.get(`${p.input.partition}:${p.input.offset}`);
      if (sent !== undefined) latencies.push(Date.now() - sent);
      if (json) console.log(JSON.stringify({ topic: outTopic, partition, offset: message.offset, key: message.key?.toString('utf8') ?? null, value: p }));
      else {
        const next = p.next.map((n) => `${JSON.stringify(n.text)} ${n.prob.toFixed(2)}`).join(', ');
        const text = p.text.length > 60 ? `${p.text.slice(0, 59)}…` : p.text;
        console.log(`${p.key.padEnd(22)} line ${String(p.input.line).padStart(3)} ${p.bitsPerByte.toFixed(2).padStart(5)} bits/byte${p.anomaly ? ' ANOMALY' : '        '}  next ${next.padEnd(30)} | ${text}`);
      }
      if (received.length >= lines.length) allRead();
    },
  });

  // --- the producer: one line every 1000 / rate ms ---
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const started = Date.now();
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const sentAt = Date.now();
    const [meta] = await producer.send({ topic: inTopic, acks: -1, messages: [{ key: l.key, value: l.text, headers: { line: String(l.line) } }] });
    if (meta !== undefined) inputTime.set(`${meta.partition}:${meta.baseOffset ?? ''}`, sentAt);
    const due = started + ((i + 1) * 1000) / Math.max(rate, 1e-9);
    if (rate > 0 && due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
  }
  await producer.disconnect();
  const produceSeconds = (Date.now() - started) / 1000;

  // Stop once every line's prediction is back (or a minute after the last line went in).
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000).unref());
  const outcome = await Promise.race([readBack.then(() => 'ok' as const), pipelineDone.then(() => 'ended' as const), timeout]);
  await source.drain();
  await pipelineDone;
  const stats = source.stats();
  await reader.disconnect();
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [inTopic, outTopic, deadLetters], timeout: 10_000 }).catch(() => undefined);
  await admin.disconnect();
  model.dispose();

  const keys = [...new Set(received.map((p) => p.key))];
  const flagged = received.filter((p) => p.anomaly).length;
  const meanBits = received.reduce((a, p) => a + p.bitsPerByte * p.bytes, 0) / Math.max(1, received.reduce((a, p) => a + p.bytes, 0));
  latencies.sort((a, b) => a - b);
  const committed = Object.values(stats.committed).reduce((a, b) => a + b, 0);
  console.log(
    `\nproduced ${lines.length} lines in ${produceSeconds.toFixed(1)} s; read back ${received.length} predictions from ${outTopic} ` +
      `(keys ${keys.join(', ')}); ${flagged} flagged as anomalies; mean ${meanBits.toFixed(3)} bits/byte`,
  );
  if (latencies.length > 0) console.log(`produce -> prediction read back: median ${latencies[Math.floor(latencies.length / 2)]} ms, max ${latencies.at(-1)} ms`);
  console.log(`input records acknowledged ${stats.acked}, committed input offsets ${JSON.stringify(stats.committed)} (${committed} in total); topics deleted`);
  if (outcome !== 'ok' || received.length !== lines.length) {
    console.error(`expected ${lines.length} predictions, read ${received.length} (${outcome})`);
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
