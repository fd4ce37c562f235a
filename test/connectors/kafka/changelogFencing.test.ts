/**
 * Changelog fencing on the real broker: a stale snapshot written after a newer one (by a member
 * that lost the partition, or a zombie) neither wins the restore nor stays the last record of its
 * key (the one compaction would keep).
 */
import test from 'ava';
import { CHANGELOG_HEADERS, changelogKey, fromKafka, utf8Decoder, type StateCodec } from '../../../connectors/kafka/index.js';
import { createTopic, deleteTopics, readTopic, requireBroker, testKafka, uniqueName, waitFor } from '../../helpers/kafka.js';

interface Sum {
  sum: number;
  count: number;
}
const codec: StateCodec<Sum> = {
  encode: (s) => Buffer.from(JSON.stringify(s)),
  decode: (b) => JSON.parse(Buffer.from(b).toString()) as Sum,
};

/** Input partition 0: [key, value] at offsets 0..7. */
const INPUT: Array<[string, number]> = [
  ['a', 1],
  ['c', 10],
  ['a', 2],
  ['c', 20],
  ['a', 3],
  ['a', 4],
  ['a', 5],
  ['a', 6],
];

/** The sum and count of a key's values up to and including `offset` (the truth a snapshot must hold). */
function fold(key: string, offset: number): Sum {
  const values = INPUT.slice(0, offset + 1).filter(([k]) => k === key).map(([, v]) => v);
  return { sum: values.reduce((a, b) => a + b, 0), count: values.length };
}

interface Output {
  offset: number;
  key: string;
  state: Sum;
}

test('a stale snapshot written after a newer one: the restore takes the one covering the most input and writes it back last', async (t) => {
  await requireBroker();
  const kafka = testKafka();
  const input = uniqueName('fence-in');
  const changelog = uniqueName('fence-changelog');
  const groupId = uniqueName('fence');
  t.teardown(() => deleteTopics(kafka, [input, changelog, `${groupId}.dlq`]));
  await createTopic(kafka, input, 1);
  await createTopic(kafka, changelog, 1, true);

  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: input, acks: -1, messages: INPUT.map(([key, v]) => ({ key, value: String(v), partition: 0 })) });
  const snapshot = (key: string, covered: number) => ({
    key: changelogKey(input, key),
    partition: 0,
    value: Buffer.from(codec.encode(fold(key, covered))),
    headers: { [CHANGELOG_HEADERS.topic]: input, [CHANGELOG_HEADERS.key]: key, [CHANGELOG_HEADERS.covered]: String(covered) },
  });
  // The newer snapshots (a up to offset 4, c up to 3) justify committing offset 5; then the stale
  // ones (a up to 2, c up to 1) arrive late, written last.
  await producer.send({ topic: changelog, acks: -1, messages: [snapshot('a', 4), snapshot('c', 3)] });
  await producer.send({ topic: changelog, acks: -1, messages: [snapshot('a', 2), snapshot('c', 1)] });
  const admin = kafka.admin();
  await admin.connect();
  await admin.setOffsets({ groupId, topic: input, partitions: [{ partition: 0, offset: '5' }] });
  await admin.disconnect();

  const run = async (expected: number): Promise<{ outputs: Output[]; stats: ReturnType<ReturnType<typeof fromKafka>['stats']> }> => {
    const source = fromKafka<string, Sum>({ groupId, topics: [input], decode: utf8Decoder, changelog: { topic: changelog, codec }, commitIntervalMs: 100, handleSigterm: false });
    const outputs: Output[] = [];
    const subscription = source.subscribe({
      next: (r) => {
        const previous = r.state.get() ?? { sum: 0, count: 0 };
        const next = { sum: previous.sum + Number(r.value), count: previous.count + 1 };
        r.state.set(next);
        outputs.push({ offset: Number(r.offset), key: r.stateKey, state: next });
        r.ack();
      },
      error: (e: unknown) => t.fail(`source failed: ${String(e)}`),
    });
    try {
      await waitFor(() => source.stats().acked >= expected, 60_000, `${expected} records processed`);
      await source.drain();
    } finally {
      subscription.unsubscribe();
    }
    return { outputs, stats: source.stats() };
  };

  // Offsets 5..7 (all key a) continue from a's snapshot at 4: the stale one at 2 would give sums 3 lower.
  const first = await run(3);
  t.deepEqual(
    first.outputs,
    [5, 6, 7].map((o) => ({ offset: o, key: 'a', state: fold('a', o) })),
  );
  t.is(first.stats.restoredKeys, 2);
  t.is(first.stats.snapshotsRewritten, 2, 'both shadowed snapshots were written again');

  // What compaction would keep is the last record per key: it must be the newest state.
  const records = await readTopic(kafka, changelog, 7, 2000);
  const last = new Map<string, { covered: number; state: Sum }>();
  const sequence: string[] = [];
  for (const m of records) {
    const key = m.headers?.[CHANGELOG_HEADERS.key]?.toString() as string;
    const covered = Number(m.headers?.[CHANGELOG_HEADERS.covered]?.toString());
    sequence.push(`${key}@${covered}`);
    last.set(key, { covered, state: codec.decode(m.value as Buffer) });
  }
  t.log(`changelog in write order: ${sequence.join(' ')}`);
  t.deepEqual(last.get('c'), { covered: 3, state: fold('c', 3) }, "c's newest snapshot was written again after the stale one");
  t.deepEqual(last.get('a'), { covered: 7, state: fold('a', 7) });

  // A later member restores both keys at their newest: one more record of c continues from 30.
  const producer2 = kafka.producer();
  await producer2.connect();
  await producer2.send({ topic: input, acks: -1, messages: [{ key: 'c', value: '5', partition: 0 }] });
  await producer2.disconnect();
  await producer.disconnect();
  const second = await run(1);
  t.deepEqual(second.outputs, [{ offset: 8, key: 'c', state: { sum: 35, count: 3 } }]);
  t.is(second.stats.snapshotsRewritten, 0, 'nothing shadowed any more');
});
