// `infiniformer stream` over a real Kafka broker: the Kafka rows of docs/ingestion.md, the stop
// that commits, and the output topic check. Run with `npx tsx scripts/kafka.ts run -- ava <this file>`.
import anyTest from 'ava';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InfiniFormer, saveModel } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { BROKERS, committedOffsets, createTopic, deleteTopics, produceRecords, readTopic, requireBroker, testKafka, uniqueName } from '../helpers/kafka.js';
import { DEAD_LETTER_HEADERS } from '../../connectors/kafka/index.js';
import { cli, directBits, events, signalAfterLines, GCC_SLICE, outputs, TINY_CONFIG, type Out } from './helpers.js';

const test = anyTest.serial; // each runs a model process against the shared broker
let root = '';
let modelDir = '';

anyTest.before(async () => {
  await backendReady;
  await requireBroker();
  root = await mkdtemp(join(tmpdir(), 'infiniformer-cli-kafka-'));
  modelDir = join(root, 'model');
  const model = InfiniFormer.create(TINY_CONFIG, { seed: 13 });
  await saveModel(model, modelDir);
  model.dispose();
});

anyTest.after.always(async () => {
  await rm(root, { recursive: true, force: true });
});

const CAP = 16;
/** Record values in offset order (one partition, one key), and the outputs each must give: [text, bytes, truncated, continued]. */
const RECORDS: { row: string; value: Buffer | null; want: [string, number, boolean, boolean][] }[] = [
  { row: 'a Kafka value', value: Buffer.from('PASS: a'), want: [['PASS: a', 8, false, false]] },
  { row: 'empty Kafka value', value: Buffer.alloc(0), want: [] },
  { row: 'tombstone (null value)', value: null, want: [] },
  { row: 'Kafka value over 8 × the cap', value: Buffer.alloc(8 * CAP + 1, 'o'), want: [] },
  { row: 'invalid UTF-8', value: Buffer.from([0x66, 0xff]), want: [['f\uFFFD', 3, false, false]] },
  { row: 'a Kafka value of two lines, \\r\\n kept', value: Buffer.from('two\r\nlines'), want: [['two\r', 5, false, false], ['lines', 6, false, false]] },
  {
    row: 'line over the cap',
    value: Buffer.alloc(2 * CAP + 5, 'L'),
    want: [
      ['L'.repeat(CAP), CAP, true, false],
      ['L'.repeat(CAP), CAP, true, true],
      ['LLLLL', 6, false, true],
    ],
  },
  { row: 'empty line', value: Buffer.from('\n'), want: [['', 1, false, false]] },
];

test('Kafka values: the table rows (empty, tombstone, oversize skipped or dead-lettered and counted; the rest scored as bytes); SIGTERM commits all', async (t) => {
  const kafka = testKafka();
  const input = uniqueName('cli-ingest-in');
  const group = uniqueName('cli-ingest');
  const dlq = `${group}.dlq`;
  t.teardown(() => deleteTopics(kafka, [input, dlq]));
  await createTopic(kafka, input, 1);
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: input, acks: -1, messages: RECORDS.map((r) => ({ key: 'k', value: r.value })) });
  await producer.disconnect();

  const expected = RECORDS.reduce((n, r) => n + r.want.length, 0);
  let seen = 0;
  let signalled = 0;
  const r = await cli(['stream', '--model', modelDir, '--no-mix', '--no-learn', '--kafka-topic', input, '--group', group, '--brokers', BROKERS, '--max-line-bytes', String(CAP), '--mode', 'token'], {
    onStdout: (chunk) => (seen += chunk.split('\n').filter((l) => l.startsWith('{')).length),
    onSpawn: (child) => {
      const started = Date.now();
      const check = setInterval(() => {
        if (seen >= expected) {
          clearInterval(check);
          setTimeout(() => {
            signalled = Date.now();
            child.kill('SIGTERM');
          }, 1500); // past a commit interval: nothing more should come
        } else if (Date.now() - started > 120_000) {
          clearInterval(check);
          child.kill('SIGKILL');
        }
      }, 50);
    },
  });
  t.log(`exit ${Date.now() - signalled} ms after SIGTERM`);
  t.is(r.code, 0, r.stderr);
  const out: Out[] = outputs(r.stdout).sort((a, b) => a.line - b.line || Number(a.continued === true) - Number(b.continued === true));
  const want = RECORDS.flatMap((rec) => rec.want.map((w) => [rec.row, ...w] as const));
  t.deepEqual(
    out.map((o) => [o.text, o.bytes, o.truncated === true, o.continued === true]),
    want.map(([, ...w]) => w),
  );
  t.true(out.every((o) => o.key === 'k'));
  // Bits: the key's state saw exactly the scored bytes, in order.
  const scored = Buffer.concat(RECORDS.filter((rec) => rec.want.length > 0).map((rec) => (rec.value!.at(-1) === 0x0a ? rec.value! : Buffer.concat([rec.value!, Buffer.from('\n')]))));
  t.is(scored.length, out.reduce((n, o) => n + o.bytes, 0));
  const bits = await directBits(modelDir, scored);
  let at = 0;
  for (const [i, o] of out.entries()) {
    const b = bits.slice(at, at + o.bytes).reduce((x, y) => x + y, 0);
    t.true(Math.abs(o.bits - b) <= 1e-3 * b + 1e-3, `${want[i]![0]}: ${o.bits} vs ${b}`);
    at += o.bytes;
  }
  // stderr: one line per kind, and the totals.
  const ev = events(r.stderr);
  for (const kind of ['emptyValue', 'tombstone', 'deadLettered', 'cut', 'invalidUtf8']) t.true(ev.some((e) => e.event === kind), kind);
  t.like(ev.find((e) => e.event === 'deadLettered'), { reason: 'oversize', offset: '3' });
  t.like((ev.find((e) => 'summary' in e) as { summary: Record<string, number> }).summary, { emptyValue: 1, tombstone: 1, deadLettered: 1, cut: 1, invalidUtf8: 1, scored: expected });
  // Every record acknowledged, skipped ones included: the group committed past the last one.
  t.deepEqual([...(await committedOffsets(kafka, group, input)).entries()], [[0, RECORDS.length]]);
  const dead = await readTopic(kafka, dlq, 1, 3000);
  t.deepEqual(dead.map((m) => m.headers?.[DEAD_LETTER_HEADERS.reason]?.toString()), ['oversize']);
});

test('a missing --out-topic fails within seconds saying so; --create-topics creates it', async (t) => {
  const kafka = testKafka();
  const input = uniqueName('cli-ingest-in');
  const output = uniqueName('cli-ingest-out');
  t.teardown(() => deleteTopics(kafka, [input, output, `${input}-g.dlq`]));
  await createTopic(kafka, input, 2);
  const started = Date.now();
  const r = await cli(['stream', '--model', modelDir, '--kafka-topic', input, '--group', `${input}-g`, '--brokers', BROKERS, '--out-topic', output]);
  const ms = Date.now() - started;
  t.log(`failed after ${ms} ms (process start included)`);
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, new RegExp(`--out-topic: topic '${output}' does not exist; create it, or pass --create-topics`));

  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: input, acks: -1, messages: [{ key: 'a', value: 'hello' }] });
  await producer.disconnect();
  const ok = await cli(['stream', '--model', modelDir, '--kafka-topic', input, '--group', `${input}-g`, '--brokers', BROKERS, '--out-topic', output, '--create-topics', '--max-lines', '1']);
  t.is(ok.code, 0, ok.stderr);
  const written = await readTopic(kafka, output, 1, 3000);
  t.is(written.length, 1);
  t.like(JSON.parse(written[0]!.value!.toString()) as Out, { key: 'a', text: 'hello', bytes: 6 });
  const admin = kafka.admin();
  await admin.connect();
  const meta = await admin.fetchTopicMetadata({ topics: [output] });
  await admin.disconnect();
  t.is(meta.topics[0]!.partitions.length, 2, 'as many partitions as the input topic');
});

test('SIGTERM with a Kafka backlog: exit 0 within ~1 s, the offsets of exactly the written lines committed', async (t) => {
  const kafka = testKafka();
  const input = uniqueName('cli-ingest-backlog');
  const group = uniqueName('cli-ingest-backlog');
  t.teardown(() => deleteTopics(kafka, [input, `${group}.dlq`]));
  await createTopic(kafka, input, 1);
  const lines = readFileSync(GCC_SLICE, 'utf8').split('\n').filter((l) => l.length > 0);
  await produceRecords(kafka, input, 5000, 1, (i) => ({ key: 'gcc', value: lines[i % lines.length]! }));
  const stop = signalAfterLines(20, 'SIGTERM');
  const r = await cli(['stream', '--model', modelDir, '--kafka-topic', input, '--group', group, '--brokers', BROKERS, '--anomaly-threshold', '5'], stop.options);
  const signalled = stop.sentAt();
  const ms = Date.now() - signalled;
  t.log(`exit ${ms} ms after SIGTERM`);
  t.is(r.code, 0, r.stderr);
  // The time is logged, not asserted; fewer outputs than the backlog shows the stop was prompt.
  const written = outputs(r.stdout);
  t.true(written.length >= 20 && written.length < 5000);
  // One key, one partition: the lines come out in offset order, and the commit covers exactly them.
  t.deepEqual([...(await committedOffsets(kafka, group, input)).entries()], [[0, written.length]]);
  const summary = (events(r.stderr).find((e) => 'summary' in e) as { summary: Record<string, number> }).summary;
  t.is(summary.scored, written.length);
});
