import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamStateDir, packKeys } from '../../bin/cli/streamStateDir.js';

const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

test('a state dir saved before the key store existed (current/model-keys.bin) has its keys moved into the store; another model\'s are not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'state-dir-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const current = join(dir, 'current');
  mkdirSync(current);
  const old = new Map([
    ['host-a', bytes(300, 1)],
    ['host-b', bytes(7, 2)],
  ]);
  writeFileSync(join(current, 'model-keys.bin'), packKeys(old));
  writeFileSync(join(current, 'meta.json'), JSON.stringify({ format: 'infiniformer-stream-state', model: 'fp1', lines: 12, files: ['model-keys.bin'] }));

  const sd = new StreamStateDir(dir, 'fp1');
  t.is(sd.load().saved?.lines, 12);
  const store = sd.openKeyStore();
  t.deepEqual([...store.keys()].sort(), ['host-a', 'host-b']);
  t.deepEqual(store.get('host-a'), bytes(300, 1));
  store.put('host-b', bytes(9, 3)); // newer than the legacy file: a reopen must not bring the old one back
  sd.save({ lines: 20 });
  t.false(existsSync(join(current, 'model-keys.bin')), 'a save no longer writes the keys into current/');
  await store.close();
  const again = sd.openKeyStore();
  t.deepEqual(again.get('host-b'), bytes(9, 3));
  t.deepEqual(again.get('host-a'), bytes(300, 1));
  await again.close();
  t.true(existsSync(join(dir, 'keys-fp1', 'data.mdb')));

  // The same directory opened for another model: its own (empty) store, the legacy keys left out.
  const other = new StreamStateDir(dir, 'fp2');
  const empty = other.openKeyStore();
  t.deepEqual([...empty.keys()], []);
  await empty.close();
});
