// Shared state as a base and deltas without a broker: the byte delta round-trips, and a restore
// after a kill at any record of any write finds the newest write whose manifest landed, whole.
import test from 'ava';
import type { Message } from 'kafkajs';
import { CorruptStateError } from '../../../src/errors.js';
import { CHANGELOG_HEADERS, type RestoredState } from '../../../connectors/kafka/changelog.js';
import { applyDelta, encodeDelta } from '../../../connectors/kafka/byteDelta.js';
import { MAX_CHANGELOG_MESSAGE_BYTES, sharedStateMessages } from '../../../connectors/kafka/changelogStore.js';
import { SharedStateLog } from '../../../connectors/kafka/sharedStateLog.js';

/** Byte equality (ava's deepEqual is far too slow for megabytes). */
const same = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a === undefined || b === undefined ? a === b : Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
const header = (m: Message, name: string): string => String((m.headers as Record<string, unknown>)[name]);

/** A compacted partition: the newest record per key (checked to be the one covering the most, which restoreFromChangelog keeps). */
class Partition {
  readonly newest = new Map<string, RestoredState>();

  land(messages: Message[]): void {
    for (const m of messages) {
      const key = header(m, CHANGELOG_HEADERS.key);
      const covered = Number(header(m, CHANGELOG_HEADERS.covered));
      const prev = this.newest.get(key);
      if (prev !== undefined && covered < prev.covered) throw new Error(`${key} written with covered ${covered} after ${prev.covered}: compaction would keep the older`);
      this.newest.set(key, { bytes: m.value === null ? null : new Uint8Array(m.value as Buffer), covered, shadowed: false });
    }
  }

  copy(): Partition {
    const p = new Partition();
    for (const [k, v] of this.newest) p.newest.set(k, v);
    return p;
  }
}

/** A deterministic pseudo-random generator (xorshift32). */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** `bytes` with `n` scattered bytes changed. */
function touched(bytes: Uint8Array, n: number, r: () => number): Uint8Array<ArrayBufferLike> {
  const out = bytes.slice();
  for (let i = 0; i < n; i++) out[Math.floor(r() * out.length)] = Math.floor(r() * 256);
  return out;
}

test('a byte delta turns the old bytes into the new ones, also across length changes, and is small for scattered changes', (t) => {
  const r = rng(7);
  const a = new Uint8Array(1 << 20).map(() => Math.floor(r() * 256));
  const b = touched(a, 1000, r);
  const d = encodeDelta(a, b);
  t.true(same(applyDelta(a, d, 'x'), b));
  // 1000 changed bytes: a varint pair and a byte each, deflated: well under 4 KiB (the whole is 1 MiB).
  t.true(d.length < 4096, `${d.length} bytes`);
  for (const next of [b.subarray(0, 1000), Buffer.concat([b, Uint8Array.of(1, 2, 3)]), new Uint8Array(0), b.map((x) => x ^ 0xff)]) {
    t.true(same(applyDelta(a, encodeDelta(a, next), 'x'), next));
    t.true(same(applyDelta(new Uint8Array(0), encodeDelta(new Uint8Array(0), next), 'x'), next));
  }
  // Unaligned views compare byte by byte and give the same delta.
  t.true(same(applyDelta(a.subarray(1), encodeDelta(a.subarray(1), b.subarray(1)), 'x'), b.subarray(1)));
  t.is(encodeDelta(a, a).length, encodeDelta(a.subarray(0, 8), a.subarray(0, 8)).length);
  const bad = d.slice();
  bad[6] = bad[6]! ^ 0xff;
  t.throws(() => applyDelta(a, bad, 'x'), { instanceOf: CorruptStateError });
});

/** Writes `states` in order through one log; returns the partition after each complete write. */
function run(log: SharedStateLog, p: Partition, states: Uint8Array[], epoch0: number): Array<{ kind: string; bytes: number; messages: Message[] }> {
  return states.map((s, i) => {
    const w = log.write(s, epoch0 + i);
    const messages = [...w.messages, ...w.seal]; // chunks, then the manifest (with the keys, in the CLI)
    p.land(messages);
    w.durable();
    return { ...w, messages };
  });
}

test('deltas after a base; a kill after any record of any write restores the newest write whose manifest landed; a rebase once the deltas outweigh the whole', (t) => {
  const r = rng(11);
  const size = 3 * MAX_CHANGELOG_MESSAGE_BYTES + 17; // a base of 4 chunks
  const states: Uint8Array[] = [new Uint8Array(size).map(() => Math.floor(r() * 256))];
  for (let i = 1; i < 30; i++) states.push(touched(states[i - 1]!, i === 20 ? size : 20_000, r));
  const log = new SharedStateLog('fp/mixer');
  const p = new Partition();
  let durable: Uint8Array | undefined;
  const kinds: string[] = [];
  states.forEach((s, i) => {
    const w0 = log.write(s, 1000 + i);
    const w = { ...w0, messages: [...w0.messages, ...w0.seal] };
    kinds.push(w.kind);
    // A kill after each prefix of this write's records.
    for (let k = 0; k <= w.messages.length; k++) {
      const crashed = p.copy();
      crashed.land(w.messages.slice(0, k));
      const manifestLanded = w.messages.slice(0, k).some((m) => header(m, CHANGELOG_HEADERS.key).includes('/manifest/'));
      const restored = SharedStateLog.restore(crashed.newest, 'fp/mixer', () => undefined);
      t.true(same(restored?.bytes, manifestLanded ? s : durable), `write ${i}, ${k} of ${w.messages.length} records landed`);
    }
    p.land(w.messages);
    w.durable();
    durable = s;
  });
  t.is(kinds[0], 'base');
  t.true(kinds.slice(1, 20).every((k) => k === 'delta'), kinds.join(','));
  // Write 20 changed about every byte (half of them, deflated: more than half the whole): a base.
  t.is(kinds[20], 'base');
  t.true(kinds.slice(21).every((k) => k === 'delta'), kinds.join(','));
});

test('a write that failed (never acknowledged) may have landed: later writes never overwrite what its manifest references', (t) => {
  const r = rng(5);
  const size = 2 * MAX_CHANGELOG_MESSAGE_BYTES;
  let s: Uint8Array = new Uint8Array(size).map(() => Math.floor(r() * 256));
  const log = new SharedStateLog('fp/mixer');
  const p = new Partition();
  run(log, p, [s], 1);
  // Writes 2..6 all fail after landing whole (the acknowledgement was lost), each also killed at every prefix.
  for (let i = 2; i <= 6; i++) {
    s = touched(s, i === 4 ? size : 5000, r); // write 4: a change that would otherwise rebase
    const w0 = log.write(s, i);
    const w = { ...w0, messages: [...w0.messages, ...w0.seal] };
    if (i === 4) t.is(w.kind, 'delta');
    for (let k = 0; k <= w.messages.length; k++) {
      const crashed = p.copy();
      crashed.land(w.messages.slice(0, k));
      t.truthy(SharedStateLog.restore(crashed.newest, 'fp/mixer', () => undefined), `write ${i}, ${k} records`);
    }
    p.land(w.messages);
    t.true(same(SharedStateLog.restore(p.newest, 'fp/mixer', () => undefined)?.bytes, s));
  }
  // Acknowledged again: the next big change rebases into the free slot.
  s = touched(s, 10, r);
  run(log, p, [s], 7);
  s = touched(s, size, r);
  const [w] = run(log, p, [s], 8);
  t.is(w!.kind, 'base');
  t.true(same(SharedStateLog.restore(p.newest, 'fp/mixer', () => undefined)?.bytes, s));
});

test('a new process continues from the restored state under its own id and tombstones the records it restored from once its own manifest is acknowledged', (t) => {
  const r = rng(3);
  let s: Uint8Array = new Uint8Array(100_000).map(() => Math.floor(r() * 256));
  const p = new Partition();
  // The former format: one whole snapshot in slot 1.
  p.land(sharedStateMessages('fp/mixer', 1, s, 5));
  const first = new SharedStateLog('fp/mixer');
  s = touched(s, 100, r);
  run(first, p, [s, touched(s, 100, r)], 10);
  s = touched(s, 100, r);
  const restored = SharedStateLog.restore(p.newest, 'fp/mixer', () => undefined)!;
  t.is(restored.epoch, 11);
  const second = new SharedStateLog('fp/mixer', restored);
  const written = [s, touched(s, 5, r)];
  written.push(touched(written[1]!, 5, r));
  const [a, b, c] = run(second, p, written, 20);
  t.is(a!.kind, 'base');
  t.is(b!.messages.filter((m) => m.value === null).length, restored.stale.length);
  t.is(c!.messages.filter((m) => m.value === null).length, 0);
  const live = [...p.newest].filter(([, v]) => v.bytes !== null).map(([k]) => k);
  t.true(live.every((k) => k.includes(second.writer)), live.join(' '));
  t.true(same(SharedStateLog.restore(p.newest, 'fp/mixer', () => undefined)?.bytes, written[2]));
});
