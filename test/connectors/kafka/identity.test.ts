/** Acceptance 1: 100k records over 4 partitions through an identity pipeline on the real broker. */
import test from 'ava';
import { map } from 'rxjs';
import { fromKafka, toKafka, utf8Decoder } from '../../../connectors/kafka/index.js';
import { committedOffsets, createTopic, deleteTopics, produceRecords, readTopic, requireBroker, testKafka, uniqueName, waitFor } from '../../helpers/kafka.js';

const RECORDS = 100_000;
const PARTITIONS = 4;

test('100k records over 4 partitions: every input offset has exactly one output, no gaps; commits reach the end', async (t) => {
  await requireBroker();
  const kafka = testKafka();
  const input = uniqueName('identity-in');
  const output = uniqueName('identity-out');
  const groupId = uniqueName('identity');
  t.teardown(() => deleteTopics(kafka, [input, output, `${groupId}.dlq`]));
  await createTopic(kafka, input, PARTITIONS);
  await createTopic(kafka, output, PARTITIONS);
  await produceRecords(kafka, input, RECORDS, PARTITIONS, (i) => ({ key: `k${i % 16}`, value: String(i) }));

  const source = fromKafka({ groupId, topics: [input], decode: utf8Decoder, highWatermark: 2000, commitIntervalMs: 200, handleSigterm: false });
  const started = Date.now();
  const subscription = source
    .pipe(
      map((r) => ({ key: r.key, value: JSON.stringify({ p: r.partition, o: Number(r.offset), v: r.value }), ack: r.ack })),
      toKafka({ topic: output, maxBatch: 2000 }),
    )
    .subscribe({ error: (e: unknown) => t.fail(`pipeline failed: ${String(e)}`) });
  try {
    await waitFor(() => source.stats().acked >= RECORDS, 180_000, 'all records acknowledged');
    const seconds = (Date.now() - started) / 1000;
    await source.drain();
    const stats = source.stats();
    t.log(`${RECORDS} records in ${seconds.toFixed(1)} s (${Math.round(RECORDS / seconds)} records/s incl. group join); max in flight ${stats.maxInFlight}`);
    t.is(stats.emitted, RECORDS);
    t.is(stats.deadLettered, 0);
  } finally {
    subscription.unsubscribe();
  }

  const out = await readTopic(kafka, output, RECORDS);
  const seen = new Map<string, number>();
  let wrongValue = 0;
  for (const m of out) {
    const { p, o, v } = JSON.parse(m.value?.toString() ?? 'null') as { p: number; o: number; v: string };
    seen.set(`${p}:${o}`, (seen.get(`${p}:${o}`) ?? 0) + 1);
    // Record i went to partition i % 4 at offset floor(i / 4).
    if (v !== String(o * PARTITIONS + p)) wrongValue++;
  }
  t.is(out.length, RECORDS, 'one output per input');
  t.is(wrongValue, 0, 'every output carries the value at its input coordinates');
  let missing = 0;
  let duplicated = 0;
  for (let p = 0; p < PARTITIONS; p++) {
    for (let o = 0; o < RECORDS / PARTITIONS; o++) {
      const n = seen.get(`${p}:${o}`) ?? 0;
      if (n === 0) missing++;
      if (n > 1) duplicated++;
    }
  }
  t.is(missing, 0, 'no input offset without output');
  t.is(duplicated, 0, 'no input offset with two outputs');
  const committed = await committedOffsets(kafka, groupId, input);
  for (let p = 0; p < PARTITIONS; p++) t.is(committed.get(p), RECORDS / PARTITIONS, `partition ${p} committed to its end`);
});
