/**
 * read_committed filtering (connectors/kafka/readCommitted.ts): the pure filter against the
 * ground truth of random interleaved transactions, kafkajs 2.2's own filter as the negative
 * control, and interleaved aborted transactions on the real broker read back by a consumer.
 */
import test from 'ava';
import { createRequire } from 'node:module';
import { ABORTED_PRODUCER_ID, abortedRecordIndices, markAbortedRecords, type AbortedTransaction, type FetchedRecord } from '../../../connectors/kafka/readCommitted.js';
import { createTopic, deleteTopics, readTopic, requireBroker, testKafka, uniqueName } from '../../helpers/kafka.js';

const require = createRequire(import.meta.url);
type KafkajsFilter = (input: { messages: FetchedRecord[]; abortedTransactions: AbortedTransaction[] }) => FetchedRecord[];
const kafkajsFilter = require('kafkajs/src/consumer/filterAbortedMessages.js') as KafkajsFilter;

const marker = (type: 0 | 1): Buffer => {
  const key = Buffer.alloc(4);
  key.writeInt16BE(0, 0);
  key.writeInt16BE(type, 2);
  return key;
};

/** A partition log of interleaved transactions, as a broker writes it, with the truth of each record. */
function simulateLog(rng: () => number, producers: number, steps: number) {
  const records: FetchedRecord[] = [];
  const truth: Array<'committed' | 'aborted' | 'control'> = [];
  const aborted: Array<AbortedTransaction & { markerOffset: number }> = [];
  const open = new Map<string, { firstOffset: number; indices: number[] }>();
  for (let s = 0; s < steps; s++) {
    const producerId = String(1000 + Math.floor(rng() * producers));
    const txn = open.get(producerId);
    const r = rng();
    if (txn !== undefined && r < 0.25) {
      // End the producer's transaction with a marker; abort half of them.
      const abort = rng() < 0.5;
      for (const i of txn.indices) truth[i] = abort ? 'aborted' : 'committed';
      if (abort) aborted.push({ producerId, firstOffset: String(txn.firstOffset), markerOffset: records.length });
      records.push({ offset: String(records.length), key: marker(abort ? 0 : 1), isControlRecord: true, batchContext: { producerId, inTransaction: true } });
      truth.push('control');
      open.delete(producerId);
    } else if (r < 0.35) {
      // A record outside any transaction (an idempotent or plain producer).
      records.push({ offset: String(records.length), key: Buffer.from('k'), isControlRecord: false, batchContext: { producerId: '-1', inTransaction: false } });
      truth.push('committed');
    } else {
      const t = txn ?? { firstOffset: records.length, indices: [] };
      open.set(producerId, t);
      t.indices.push(records.length);
      records.push({ offset: String(records.length), key: Buffer.from('k'), isControlRecord: false, batchContext: { producerId, inTransaction: true } });
      truth.push('committed'); // decided at its marker
    }
  }
  // A read_committed fetch stops at the last stable offset: before the first still-open transaction.
  const lso = Math.min(records.length, ...[...open.values()].map((t) => t.firstOffset));
  // The broker lists the aborted transactions that overlap the fetched range (a marker may lie
  // beyond it), in the order of their markers.
  const list = aborted.filter((a) => Number(a.firstOffset) < lso).sort((a, b) => a.markerOffset - b.markerOffset).map(({ producerId, firstOffset }) => ({ producerId, firstOffset }));
  return { records: records.slice(0, lso), truth: truth.slice(0, lso), aborted: list };
}

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('property: the filter finds exactly the records of aborted transactions in 500 random interleavings; kafkajs 2.2 alone misses some', (t) => {
  let kafkajsLeaks = 0;
  let logsWithLeaks = 0;
  let abortedTotal = 0;
  for (let seed = 1; seed <= 500; seed++) {
    const { records, truth, aborted } = simulateLog(mulberry32(seed), 2 + (seed % 4), 40 + (seed % 60));
    const expected = new Set(truth.flatMap((k, i) => (k === 'aborted' ? [i] : [])));
    abortedTotal += expected.size;
    t.deepEqual(abortedRecordIndices(records, aborted), expected, `seed ${seed}`);
    const copy = () => records.map((r) => ({ ...r, batchContext: { ...r.batchContext } }));
    // kafkajs's own filter on the broker's list: records of aborted transactions it lets through.
    const kept = new Set(kafkajsFilter({ messages: copy(), abortedTransactions: aborted }).map((r) => Number(r.offset)));
    const leaks = [...expected].filter((i) => kept.has(i)).length;
    kafkajsLeaks += leaks;
    if (leaks > 0) logsWithLeaks++;
    // After the rewrite, kafkajs's filter keeps exactly the committed data records.
    const partition = { messages: copy(), abortedTransactions: aborted };
    t.is(markAbortedRecords(partition), aborted.length === 0 ? 0 : expected.size);
    const survivors = kafkajsFilter(partition).filter((r) => r.isControlRecord !== true).map((r) => Number(r.offset));
    t.deepEqual(survivors, truth.flatMap((k, i) => (k === 'committed' ? [i] : [])), `seed ${seed}: kafkajs after the rewrite`);
    t.true(partition.messages.every((r, i) => (r.batchContext.producerId === ABORTED_PRODUCER_ID) === expected.has(i)));
  }
  t.log(`${abortedTotal} aborted records in 500 logs; kafkajs 2.2's filter alone let ${kafkajsLeaks} of them through, in ${logsWithLeaks} logs`);
  // The negative control: the bug is real, so this test would fail without the fix.
  t.true(kafkajsLeaks > 0);
});

test('a fetch without aborted transactions (read_uncommitted, or none aborted) is left untouched', (t) => {
  const records: FetchedRecord[] = [{ offset: '7', key: null, batchContext: { producerId: '5', inTransaction: true } }];
  const partition = { messages: records, abortedTransactions: [] as AbortedTransaction[] };
  t.is(markAbortedRecords(partition), 0);
  t.deepEqual(partition.abortedTransactions, []);
  t.is(records[0]?.batchContext.producerId, '5');
});

test('real broker: transactions that abort in the reverse order of their start are invisible to read_committed, committed ones interleaved with them are read', async (t) => {
  await requireBroker();
  const kafka = testKafka();
  const topic = uniqueName('read-committed');
  t.teardown(() => deleteTopics(kafka, [topic]));
  await createTopic(kafka, topic, 1);
  const producer = (id: string) => kafka.producer({ transactionalId: `${topic}-${id}`, idempotent: true, maxInFlightRequests: 1 });
  const [p1, p2, p3] = [producer('1'), producer('2'), producer('3')];
  await Promise.all([p1.connect(), p2.connect(), p3.connect()]);
  try {
    // p1 starts first, p2 second; p2 aborts before p1: the broker lists [p2, p1] by marker order.
    const t1 = await p1.transaction();
    await t1.send({ topic, messages: [{ value: 'p1-aborted-a' }] });
    const t3 = await p3.transaction();
    await t3.send({ topic, messages: [{ value: 'p3-committed-a' }] });
    const t2 = await p2.transaction();
    await t2.send({ topic, messages: [{ value: 'p2-aborted-a' }] });
    await t1.send({ topic, messages: [{ value: 'p1-aborted-b' }, { value: 'p1-aborted-c' }] });
    await t3.send({ topic, messages: [{ value: 'p3-committed-b' }] });
    await t2.send({ topic, messages: [{ value: 'p2-aborted-b' }] });
    await t2.abort();
    await t1.send({ topic, messages: [{ value: 'p1-aborted-d' }] });
    await t3.commit();
    await t1.abort();
    const t4 = await p3.transaction();
    await t4.send({ topic, messages: [{ value: 'p3-committed-c' }] });
    await t4.commit();
  } finally {
    await Promise.all([p1.disconnect(), p2.disconnect(), p3.disconnect()]);
  }
  const committed = (await readTopic(kafka, topic, 3, 3000)).map((m) => m.value?.toString());
  const everything = (await readTopic(kafka, topic, 9, 3000, 120_000, true)).map((m) => m.value?.toString());
  t.log(`read_uncommitted: ${everything.join(', ')}; read_committed: ${committed.join(', ')}`);
  t.is(everything.length, 9);
  t.deepEqual(committed, ['p3-committed-a', 'p3-committed-b', 'p3-committed-c']);
});
