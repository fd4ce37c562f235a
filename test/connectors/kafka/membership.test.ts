/**
 * Membership under a long model step: a member whose event loop is held for 12 s (longer than the
 * former 10 s default session) stays in the group with the default session timeout: no rejoin,
 * no record read twice.
 */
import test from 'ava';
import { fromKafka } from '../../../connectors/kafka/index.js';
import { createTopic, deleteTopics, produceRecords, requireBroker, testKafka, uniqueName, waitFor } from '../../helpers/kafka.js';

const RECORDS = 20;
const FREEZE_MS = 12_000;

/** Holds the event loop without using the CPU (a stand-in for one long synchronous model step). */
function freeze(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

test('a 12 s synchronous step inside the pipeline: the member keeps its session (default 45 s), nothing is read twice', async (t) => {
  await requireBroker();
  const kafka = testKafka();
  const input = uniqueName('membership-in');
  const groupId = uniqueName('membership');
  t.teardown(() => deleteTopics(kafka, [input, `${groupId}.dlq`]));
  await createTopic(kafka, input, 1);
  await produceRecords(kafka, input, RECORDS, 1, (i) => ({ key: `k${i % 4}`, value: String(i) }));

  const source = fromKafka({ groupId, topics: [input], commitIntervalMs: 100, handleSigterm: false });
  const offsets: number[] = [];
  let frozeAt = 0;
  const subscription = source.subscribe({
    next: (r) => {
      offsets.push(Number(r.offset));
      if (r.offset === '5' && frozeAt === 0) {
        frozeAt = Date.now();
        freeze(FREEZE_MS);
      }
      r.ack();
    },
    error: (e: unknown) => t.fail(String(e)),
  });
  t.teardown(() => subscription.unsubscribe());
  await waitFor(() => (source.stats().committed[`${input}:0`] ?? 0) >= RECORDS, 90_000, `offset ${RECORDS} committed`);
  // Time for the coordinator to have dropped the member and for it to have rejoined, had the session expired.
  await new Promise((r) => setTimeout(r, 3000));
  await source.drain();
  const stats = source.stats();
  t.log(`froze ${FREEZE_MS} ms at offset 5; joins ${stats.joins}; emitted ${stats.emitted}`);
  t.true(frozeAt > 0);
  t.is(stats.joins, 1, 'the member joined once: the coordinator did not drop it during the freeze');
  t.deepEqual(offsets, [...Array(RECORDS).keys()], 'every record emitted once, in order');
});
