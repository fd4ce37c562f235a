import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { BadConfigError, BadInputError, CorruptStateError, StoreClosedError } from '../../src/errors.js';
import { MAX_KEY_BYTES, storeEntries, type KeyStateStore } from '../../src/state/keyStateStore.js';
import { MemoryKeyStore } from '../../src/state/memoryKeyStore.js';
import { SpillingKeyStore } from '../../src/state/spillingKeyStore.js';
import { crc32 } from '../../src/model/checksum.js';

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'keystore-'));
  dirs.push(d);
  return d;
};
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Bytes of key i: length and content both depend on i, so a mix-up between keys shows. */
const valueOf = (i: number): Uint8Array => Uint8Array.from({ length: 10 + (i % 37) * 13 }, (_, j) => (i * 31 + j * 7) & 0xff);

const kinds: [string, () => KeyStateStore][] = [
  ['MemoryKeyStore', () => new MemoryKeyStore()],
  // A tiny LRU: most entries live on disk, so reads go through LMDB.
  ['SpillingKeyStore', () => new SpillingKeyStore(tempDir(), { maxHotEntries: 8, maxHotBytes: 4096 })],
];

for (const [name, make] of kinds) {
  test(`${name}: get/put/delete/keys/flush hold exactly what was put`, async (t) => {
    const store = make();
    const n = 500;
    for (let i = 0; i < n; i++) store.put(`k${i}`, valueOf(i));
    // Overwrite every third, delete every fifth.
    for (let i = 0; i < n; i += 3) store.put(`k${i}`, valueOf(i + 1000));
    for (let i = 0; i < n; i += 5) store.delete(`k${i}`);
    const expected = new Map<string, Uint8Array>();
    for (let i = 0; i < n; i++) if (i % 5 !== 0) expected.set(`k${i}`, valueOf(i % 3 === 0 ? i + 1000 : i));
    const check = (): void => {
      for (let i = 0; i < n; i++) t.deepEqual(store.get(`k${i}`), expected.get(`k${i}`), `k${i}`);
      const keys = [...store.keys()];
      t.is(keys.length, expected.size, 'each key once');
      t.deepEqual(keys.sort(), [...expected.keys()].sort());
      t.deepEqual(new Map([...storeEntries(store)].sort(([a], [b]) => a.localeCompare(b))), new Map([...expected].sort(([a], [b]) => a.localeCompare(b))));
    };
    check();
    await store.flush();
    check();
    t.is(store.get('never-put'), undefined);
    store.delete('never-put'); // absent: no error
    await store.close();
  });

  test(`${name}: bad keys and values are BadInputErrors; a closed store is a StoreClosedError`, async (t) => {
    const store = make();
    t.throws(() => store.put('', new Uint8Array(1)), { instanceOf: BadInputError, message: /key: is empty/ });
    t.throws(() => store.put(3 as unknown as string, new Uint8Array(1)), { instanceOf: BadInputError, message: /key: expected a string, got number/ });
    t.throws(() => store.get('x'.repeat(MAX_KEY_BYTES + 1)), { instanceOf: BadInputError, message: /1025 UTF-8 bytes/ });
    t.throws(() => store.put('k', [1, 2] as unknown as Uint8Array), { instanceOf: BadInputError, message: /value: expected a Uint8Array, got object/ });
    store.put('ok', new Uint8Array([1]));
    await store.close();
    await store.close(); // idempotent
    t.throws(() => store.get('ok'), { instanceOf: StoreClosedError, code: 'ERR_STORE_CLOSED' });
    t.throws(() => store.put('ok', new Uint8Array(1)), { instanceOf: StoreClosedError });
    t.throws(() => store.keys(), { instanceOf: StoreClosedError });
    await t.throwsAsync(async () => store.flush(), { instanceOf: StoreClosedError });
  });
}

test('SpillingKeyStore: what was flushed (and closed) is there after reopening, deletes included', async (t) => {
  const dir = tempDir();
  const a = new SpillingKeyStore(dir, { maxHotEntries: 4 });
  for (let i = 0; i < 100; i++) a.put(`key-${i}`, valueOf(i));
  a.delete('key-7');
  await a.flush();
  const b = new SpillingKeyStore(join(dir)); // a second handle on the same files sees the flushed state
  t.deepEqual(b.get('key-99'), valueOf(99));
  await b.close();
  a.put('key-100', valueOf(100)); // after the flush: close() writes it
  await a.close();
  const c = new SpillingKeyStore(dir);
  t.is(c.get('key-7'), undefined);
  const keys = new Set(c.keys());
  t.is(keys.size, 100);
  for (let i = 0; i <= 100; i++) if (i !== 7) t.deepEqual(c.get(`key-${i}`), valueOf(i), `key-${i}`);
  await c.close();
});

test('SpillingKeyStore: memory stays within its bounds while the rest goes to disk', async (t) => {
  const store = new SpillingKeyStore(tempDir(), { maxHotBytes: 10_000, maxHotEntries: 1000 });
  for (let i = 0; i < 200; i++) store.put(`k${i}`, new Uint8Array(1000).fill(i));
  const s = store.stats();
  t.true(s.hotBytes <= 10_000, `hot bytes ${s.hotBytes}`);
  t.is(s.hotEntries, 10);
  t.is(s.writes, 190, 'every entry pushed out of memory was written');
  await store.flush();
  t.deepEqual(store.get('k0'), new Uint8Array(1000).fill(0));
  t.is(store.stats().diskReads, 1);
  await store.close();
});

test('SpillingKeyStore: bytes damaged on disk are a CorruptStateError, not a wrong state', async (t) => {
  const dir = tempDir();
  const store = new SpillingKeyStore(dir, { maxHotEntries: 0 });
  store.put('good', valueOf(1));
  store.put('bad', valueOf(2));
  await store.close();
  // Overwrite one value behind the store's back: right length, one flipped byte.
  const raw = open<Buffer, string>({ path: dir, encoding: 'binary' });
  const bytes = Buffer.from(raw.getBinary('bad')!);
  t.is(bytes.readUInt32LE(0), crc32(valueOf(2)), 'a CRC-32 of the value precedes it');
  bytes[6] = bytes[6]! ^ 0x40;
  await raw.put('bad', bytes);
  await raw.put('short', Buffer.from([1, 2]));
  await raw.close();
  const again = new SpillingKeyStore(dir);
  t.deepEqual(again.get('good'), valueOf(1));
  t.throws(() => again.get('bad'), { instanceOf: CorruptStateError, code: 'ERR_CORRUPT_STATE', message: /"bad".*checksum mismatch/ });
  t.throws(() => again.get('short'), { instanceOf: CorruptStateError, message: /too short/ });
  await again.close();
});

test('SpillingKeyStore: bad bounds are BadConfigErrors', (t) => {
  t.throws(() => new SpillingKeyStore(tempDir(), { maxHotBytes: -1 }), { instanceOf: BadConfigError, message: /maxHotBytes/ });
  t.throws(() => new SpillingKeyStore(tempDir(), { maxHotEntries: 1.5 }), { instanceOf: BadConfigError, message: /maxHotEntries/ });
});
