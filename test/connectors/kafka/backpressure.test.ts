/** Acceptance 7: with 1M records waiting and a slow consumer, records in flight stay bounded. */
import test from 'ava';
import { fromKafka } from '../../../connectors/kafka/index.js';
import { committedOffsets, createTopic, deleteTopics, produceRecords, requireBroker, testKafka, uniqueName, waitFor } from '../../helpers/kafka.js';

const RECORDS = 1_000_000;
const PARTITIONS = 4;
const HIGH = 500;
const LOW = 250;

test('1M records waiting, a consumer that acknowledges each record 20 ms later: in flight never passes 4 x highWatermark', async (t) => {
  await requireBroker();
  const kafka = testKafka();
  const input = uniqueName('backpressure-in');
  const groupId = uniqueName('backpressure');
  t.teardown(() => deleteTopics(kafka, [input, `${groupId}.dlq`]));
  await createTopic(kafka, input, PARTITIONS);
  const produceStart = Date.now();
  await produceRecords(kafka, input, RECORDS, PARTITIONS, (i) => ({ key: null, value: String(i) }), 5000);
  t.log(`produced ${RECORDS} records in ${((Date.now() - produceStart) / 1000).toFixed(1)} s`);

  const source = fromKafka({ groupId, topics: [input], highWatermark: HIGH, lowWatermark: LOW, commitIntervalMs: 200, handleSigterm: false });
  let heapPeak = 0;
  // The slow consumer takes everything it is given and acknowledges it 20 ms later: only the
  // source's pausing bounds what is in flight (RxJS itself has no backpressure).
  const subscription = source.subscribe({
    next: (record) => {
      setTimeout(record.ack, 20);
      const heap = process.memoryUsage().heapUsed;
      if (heap > heapPeak) heapPeak = heap;
    },
    error: (e: unknown) => t.fail(`source failed: ${String(e)}`),
  });
  try {
    await waitFor(() => source.stats().acked >= 30_000, 60_000, '30k records acknowledged');
    await source.drain();
  } finally {
    subscription.unsubscribe();
  }
  const stats = source.stats();
  t.log(`emitted ${stats.emitted}, max in flight ${stats.maxInFlight} (bound ${PARTITIONS * HIGH}), pauses ${stats.pauses}, heap peak ${(heapPeak / 2 ** 20).toFixed(0)} MiB`);
  t.true(stats.maxInFlight <= PARTITIONS * HIGH, `max in flight ${stats.maxInFlight} <= ${PARTITIONS * HIGH}`);
  t.true(stats.maxInFlight >= HIGH, 'the watermark was actually reached');
  t.true(stats.pauses > 0, 'partitions were paused');
  t.true(stats.emitted < RECORDS / 2, 'most records stayed in Kafka');
  t.is(stats.acked, stats.emitted, 'the drain waited for every acknowledgement');
  const committed = await committedOffsets(kafka, groupId, input);
  let committedTotal = 0;
  for (const offset of committed.values()) committedTotal += offset;
  t.is(committedTotal, stats.emitted, 'after the drain everything emitted is committed, nothing more');
});
