// The changelog side of aligned checkpoints without a broker: which keys a checkpoint writes,
// with which covered offsets, and how shared state is chunked and assembled from two slots.
import test from 'ava';
import type { Message } from 'kafkajs';
import { crc32 } from '../../../src/model/checksum.js';
import { CHANGELOG_HEADERS, type RestoredState } from '../../../connectors/kafka/changelog.js';
import { ChangelogKeyStore, SHARED_STATE_TOPIC, assembleSharedState, sharedStateMessages, MAX_CHANGELOG_MESSAGE_BYTES } from '../../../connectors/kafka/changelogStore.js';

const header = (m: Message, name: string): string => String((m.headers as Record<string, unknown>)[name]);
/** What restoreFromChangelog would return for these records of one partition (the one covering the most input per key). */
function restored(messages: Message[]): Map<string, RestoredState> {
  const out = new Map<string, RestoredState>();
  for (const m of messages) {
    const key = header(m, CHANGELOG_HEADERS.key);
    const covered = Number(header(m, CHANGELOG_HEADERS.covered));
    const prev = out.get(key);
    if (prev === undefined || covered >= prev.covered) out.set(key, { bytes: m.value === null ? null : new Uint8Array(m.value as Buffer), covered, shadowed: false });
  }
  return out;
}

test('a checkpoint writes the keys changed since the last durable one, each to its input partition with the offset its input is covered to', (t) => {
  const store = new ChangelogKeyStore('m/');
  store.put('a', Uint8Array.of(1));
  store.put('b', Uint8Array.of(2));
  store.route('a', 'in', 0);
  store.route('b', 'in', 3);
  const first = store.changes(new Map([['in:0', 10], ['in:3', 7]]));
  t.deepEqual(
    first.messages.map((m) => [m.key, m.partition, header(m, CHANGELOG_HEADERS.covered)]),
    [['in\u0000m/a', 0, '9'], ['in\u0000m/b', 3, '6']],
  );
  // Not marked durable (the send failed): the next checkpoint writes them again.
  t.is(store.changes(new Map([['in:0', 10], ['in:3', 7]])).messages.length, 2);
  store.changes(new Map([['in:0', 10], ['in:3', 7]])).durable();
  // Same bytes put again: nothing to write; changed bytes: written with the new position.
  store.put('a', Uint8Array.of(1));
  store.put('b', Uint8Array.of(5));
  const next = store.changes(new Map([['in:0', 12], ['in:3', 9]]));
  t.deepEqual(next.messages.map((m) => [m.key, header(m, CHANGELOG_HEADERS.covered)]), [['in\u0000m/b', '8']]);
  // A key with no position (its partition is not owned) is not written.
  store.put('c', Uint8Array.of(3));
  t.is(store.changes(new Map([['in:0', 12]])).messages.length, 0);
});

test('forget drops keys with no tombstone: a durable key and one never written both start empty, and the next checkpoint writes nothing for them', (t) => {
  const store = new ChangelogKeyStore('m/');
  store.put('a', Uint8Array.of(1));
  store.put('b', Uint8Array.of(2));
  store.route('a', 'in', 0);
  store.route('b', 'in', 0);
  store.changes(new Map([['in:0', 3]])).durable();
  store.put('c', Uint8Array.of(3)); // put after the partition moved away (a checkpoint of the live keys)
  store.forget(['a', 'c']);
  t.is(store.get('a'), undefined);
  t.is(store.get('c'), undefined);
  t.deepEqual(store.get('b'), Uint8Array.of(2));
  t.is(store.changes(new Map([['in:0', 9]])).messages.length, 0, 'no tombstone for a, nothing for c');
  // Compare delete: a durable key deleted is due a tombstone.
  store.delete('b');
  t.deepEqual(store.changes(new Map([['in:0', 9]])).messages.map((m) => [m.key, m.value]), [['in\u0000m/b', null]]);
});

test('restore installs the namespace\'s keys with their covered offsets; release drops a partition\'s keys', (t) => {
  const writer = new ChangelogKeyStore('m/');
  writer.put('a', Uint8Array.of(7, 7));
  writer.route('a', 'in', 1);
  const other = new ChangelogKeyStore('x/');
  other.put('a', Uint8Array.of(9));
  other.route('a', 'in', 1);
  const states = restored([...writer.changes(new Map([['in:1', 5]])).messages, ...other.changes(new Map([['in:1', 5]])).messages]);
  const reader = new ChangelogKeyStore('m/');
  t.deepEqual([...reader.restore('in', 1, states)], [['a', 4]]);
  t.deepEqual(reader.get('a'), Uint8Array.of(7, 7));
  // Restored bytes count as durable: nothing to write until they change.
  t.is(reader.changes(new Map([['in:1', 5]])).messages.length, 0);
  reader.release('in', 1);
  t.is(reader.get('a'), undefined);
});

test('shared state: chunked under the message limit, reassembled from the newest complete slot; a half-written slot falls back to the other', (t) => {
  const big = new Uint8Array(2 * MAX_CHANGELOG_MESSAGE_BYTES + 5).map((_, i) => i % 251);
  const older = sharedStateMessages('fp/learner', 0, Uint8Array.of(1, 2, 3), 100);
  const newer = sharedStateMessages('fp/learner', 1, big, 200);
  t.is(newer.length, 3);
  t.true(newer.every((m) => (m.value as Buffer).length <= MAX_CHANGELOG_MESSAGE_BYTES + 4 && m.partition === 0 && header(m, CHANGELOG_HEADERS.topic) === SHARED_STATE_TOPIC));
  const whole = assembleSharedState(restored([...older, ...newer]), 'fp/learner');
  t.is(whole?.slot, 1);
  t.deepEqual(whole?.bytes, big);
  // A crash after the first chunk of a newer write to slot 0: slot 1 is still whole.
  const partial = sharedStateMessages('fp/learner', 0, big, 300).slice(0, 1);
  const fallback = assembleSharedState(restored([...older, ...newer, ...partial]), 'fp/learner');
  t.is(fallback?.slot, 1);
  t.deepEqual(fallback?.bytes, big);
  t.is(assembleSharedState(restored(older), 'fp/mixer'), undefined);
});

test('states that end with their own CRC-32 (every CRC-32 of such bytes is one constant) are still told apart', (t) => {
  const selfChecked = (data: number[]): Uint8Array => {
    const out = new Uint8Array(data.length + 4);
    out.set(data);
    new DataView(out.buffer).setUint32(data.length, crc32(Uint8Array.from(data)), true);
    return out;
  };
  t.is(crc32(selfChecked([1, 2, 3])), crc32(selfChecked([9, 9])), 'the CRC-32 residue');
  const store = new ChangelogKeyStore('m/');
  store.route('a', 'in', 0);
  store.put('a', selfChecked([1, 2, 3]));
  store.changes(new Map([['in:0', 1]])).durable();
  store.put('a', selfChecked([9, 9]));
  t.is(store.changes(new Map([['in:0', 2]])).messages.length, 1);
});
