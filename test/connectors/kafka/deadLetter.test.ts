/** Acceptance 5: bad records land in the dead-letter topic with reasons; every good record gets its output. */
import test from 'ava';
import { filter, map } from 'rxjs';
import { DEAD_LETTER_HEADERS, fromKafka, jsonDecoder, toKafka } from '../../../connectors/kafka/index.js';
import { BadConfigError } from '../../../src/errors.js';
import { committedOffsets, createTopic, deleteTopics, produceRecords, readTopic, requireBroker, testKafka, uniqueName, waitFor } from '../../helpers/kafka.js';

const RECORDS = 2000;
const PARTITIONS = 2;
const MAX_BYTES = 1024;

/** Record i: a good JSON object, except every 10th, cycling through the kinds of bad record. */
function kindOf(i: number): 'good' | 'utf8' | 'json' | 'oversize' | 'null' | 'processing' {
  if (i % 10 !== 3) return 'good';
  return (['utf8', 'json', 'oversize', 'null', 'processing'] as const)[Math.floor(i / 10) % 5] as 'utf8';
}

function valueOf(i: number): Buffer | null {
  switch (kindOf(i)) {
    case 'good':
      return Buffer.from(JSON.stringify({ i }));
    case 'utf8':
      return Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]); // {"\xC3("} : a broken 2-byte sequence
    case 'json':
      return Buffer.from('{"i": 1,');
    case 'oversize':
      return Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(MAX_BYTES) }));
    case 'null':
      return null;
    case 'processing':
      return Buffer.from(JSON.stringify({ i, poison: true }));
  }
}

test('invalid UTF-8, invalid JSON, oversize, null values and processing failures go to the DLQ with reasons; the rest get outputs', async (t) => {
  await requireBroker();
  const kafka = testKafka();
  const input = uniqueName('dlq-in');
  const output = uniqueName('dlq-out');
  const groupId = uniqueName('dlq');
  const dlq = `${groupId}.dlq`;
  t.teardown(() => deleteTopics(kafka, [input, output, dlq]));
  await createTopic(kafka, input, PARTITIONS);
  await createTopic(kafka, output, PARTITIONS);
  await produceRecords(kafka, input, RECORDS, PARTITIONS, (i) => ({ key: `k${i % 7}`, value: valueOf(i) }));

  const source = fromKafka({ groupId, topics: [input], decode: jsonDecoder, maxValueBytes: MAX_BYTES, commitIntervalMs: 100, handleSigterm: false });
  const subscription = source
    .pipe(
      map((r) => {
        const value = r.value as { i: number; poison?: boolean };
        if (value.poison) {
          r.fail(new Error(`poison record ${value.i}`));
          return null;
        }
        return { key: r.key, value: JSON.stringify({ i: value.i, p: r.partition, o: Number(r.offset) }), ack: r.ack };
      }),
      filter((v): v is { key: Buffer | null; value: string; ack: () => void } => v !== null),
      toKafka({ topic: output }),
    )
    .subscribe({ error: (e: unknown) => t.fail(`pipeline failed: ${String(e)}`) });
  try {
    await waitFor(() => source.stats().acked >= RECORDS, 60_000, 'all records acknowledged');
    await source.drain();
  } finally {
    subscription.unsubscribe();
  }

  const expectedBad = new Map<number, string>();
  for (let i = 0; i < RECORDS; i++) if (kindOf(i) !== 'good') expectedBad.set(i, kindOf(i));
  const good = await readTopic(kafka, output, RECORDS - expectedBad.size);
  const goodIds = new Set(good.map((m) => (JSON.parse(m.value?.toString() ?? '{}') as { i: number }).i));
  t.is(good.length, RECORDS - expectedBad.size, 'one output per good record');
  for (let i = 0; i < RECORDS; i++) if (!expectedBad.has(i) && !goodIds.has(i)) t.fail(`good record ${i} has no output`);

  const dead = await readTopic(kafka, dlq, expectedBad.size);
  t.is(dead.length, expectedBad.size, 'one dead letter per bad record');
  const reasons: Record<string, number> = {};
  for (const m of dead) {
    const h = (name: string) => m.headers?.[name]?.toString();
    const partition = Number(h(DEAD_LETTER_HEADERS.partition));
    const offset = Number(h(DEAD_LETTER_HEADERS.offset));
    const i = offset * PARTITIONS + partition; // coordinates point back at the original record
    const reason = h(DEAD_LETTER_HEADERS.reason) ?? 'none';
    reasons[reason] = (reasons[reason] ?? 0) + 1;
    const expected = { utf8: 'decode', json: 'decode', oversize: 'oversize', null: 'null-value', processing: 'processing' }[expectedBad.get(i) as 'utf8'];
    t.is(reason, expected, `record ${i} dead-lettered as ${expected}`);
    t.is(h(DEAD_LETTER_HEADERS.topic), input);
    t.is(m.key?.toString(), `k${i % 7}`, 'the original key is kept');
    t.truthy(h(DEAD_LETTER_HEADERS.error), 'the error text is recorded');
    if (expectedBad.get(i) === 'utf8') t.regex(h(DEAD_LETTER_HEADERS.error) ?? '', /invalid UTF-8/);
    if (expectedBad.get(i) === 'json') t.regex(h(DEAD_LETTER_HEADERS.error) ?? '', /invalid JSON/);
    if (expectedBad.get(i) === 'oversize') {
      t.true(Number(h(DEAD_LETTER_HEADERS.originalSize)) > MAX_BYTES);
      t.is(m.value?.length, MAX_BYTES, 'an oversize value is cut to maxValueBytes');
    }
    if (expectedBad.get(i) === 'null') t.is(m.value, null);
  }
  t.log('dead letters by reason', reasons);
  const committed = await committedOffsets(kafka, groupId, input);
  for (let p = 0; p < PARTITIONS; p++) t.is(committed.get(p), RECORDS / PARTITIONS, 'bad records do not stall commits');
});

test('bad options are typed errors naming the option', (t) => {
  const e1 = t.throws(() => fromKafka({ groupId: 'g', topics: ['x'], highWatermark: 0 }), { instanceOf: BadConfigError });
  t.is(e1?.option, 'highWatermark');
  const e2 = t.throws(() => fromKafka({ groupId: 'g', topics: ['x'], highWatermark: 10, lowWatermark: 10 }), { instanceOf: BadConfigError });
  t.is(e2?.option, 'lowWatermark');
  const e3 = t.throws(() => fromKafka({ groupId: 'g', topics: [] }), { instanceOf: BadConfigError });
  t.is(e3?.option, 'topics');
  const e4 = t.throws(() => toKafka({ topic: '' }), { instanceOf: BadConfigError });
  t.is(e4?.option, 'topic');
  const e5 = t.throws(() => fromKafka({ groupId: 'g', topics: ['x'], maxBlockingMs: -1 }), { instanceOf: BadConfigError });
  t.is(e5?.option, 'maxBlockingMs');
  const e6 = t.throws(() => fromKafka({ groupId: 'g', topics: ['x'], exactlyOnce: { transactionalId: '' } }), { instanceOf: BadConfigError });
  t.is(e6?.option, 'exactlyOnce');
  for (const [option, bad] of [['sessionTimeoutMs', 2], ['rebalanceTimeoutMs', 0], ['partitionsConsumedConcurrently', 1.5]] as const) {
    const e = t.throws(() => fromKafka({ groupId: 'g', topics: ['x'], [option]: bad }), { instanceOf: BadConfigError });
    t.is(e?.option, option);
  }
});
