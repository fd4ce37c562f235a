import { appendFileSync, mkdtempSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { followFile, followFileLines, type LinePiece } from '../../../connectors/file/index.js';
import { BadConfigError, BadInputError } from '../../../src/errors.js';

const until = async (condition: () => boolean, what: string, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

test('follows growth, holds partial lines, survives truncation and rotation like tail -F, loses no line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'follow-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'app.log');
  writeFileSync(path, 'one\ntwo\r\n');
  const lines: string[] = [];
  const subscription = followFile(path, { pollIntervalMs: 20 }).subscribe((line) => lines.push(line));
  t.teardown(() => subscription.unsubscribe());
  await until(() => lines.length === 2, 'the existing lines');
  t.deepEqual(lines, ['one', 'two'], 'existing lines, \\r\\n trimmed');

  appendFileSync(path, 'thr');
  await new Promise((r) => setTimeout(r, 150));
  t.is(lines.length, 2, 'a partial line is held back');
  appendFileSync(path, 'ee ünïcödé\n');
  await until(() => lines.length === 3, 'the completed line');
  t.is(lines[2], 'three ünïcödé');

  truncateSync(path, 0);
  await new Promise((r) => setTimeout(r, 100));
  appendFileSync(path, 'after truncation\n');
  await until(() => lines.length === 4, 'the line after truncation');
  t.is(lines[3], 'after truncation');

  // Rotation: the last lines written to the old file still arrive, then the new file's.
  appendFileSync(path, 'last of old\n');
  renameSync(path, `${path}.1`);
  appendFileSync(`${path}.1`, 'written after rename\n');
  await new Promise((r) => setTimeout(r, 100));
  writeFileSync(path, 'first of new\n');
  await until(() => lines.length === 7, 'the rotated lines');
  t.deepEqual(lines.slice(4), ['last of old', 'written after rename', 'first of new']);

  // Many lines quickly: all of them, in order.
  const many = Array.from({ length: 5000 }, (_, i) => `line ${i}`);
  appendFileSync(path, `${many.join('\n')}\n`);
  await until(() => lines.length === 7 + many.length, '5000 more lines');
  t.deepEqual(lines.slice(7), many);
});

test('a missing file is waited for; fromStart false starts at the end', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'follow-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'later.log');
  const lines: string[] = [];
  const s1 = followFile(missing, { pollIntervalMs: 20 }).subscribe((l) => lines.push(l));
  t.teardown(() => s1.unsubscribe());
  await new Promise((r) => setTimeout(r, 100));
  writeFileSync(missing, 'hello\n');
  await until(() => lines.length === 1, 'the created file');
  t.deepEqual(lines, ['hello']);

  const existing = join(dir, 'old.log');
  writeFileSync(existing, 'old 1\nold 2\n');
  const tail: string[] = [];
  const s2 = followFile(existing, { pollIntervalMs: 20, fromStart: false }).subscribe((l) => tail.push(l));
  t.teardown(() => s2.unsubscribe());
  await new Promise((r) => setTimeout(r, 100));
  appendFileSync(existing, 'new\n');
  await until(() => tail.length === 1, 'the new line');
  t.deepEqual(tail, ['new']);
});

test('bad arguments are typed errors naming them', (t) => {
  t.is(t.throws(() => followFile(''), { instanceOf: BadInputError })?.argument, 'path');
  t.is(t.throws(() => followFile('/x', { pollIntervalMs: 0 }), { instanceOf: BadConfigError })?.option, 'pollIntervalMs');
  t.is(t.throws(() => followFile('/x', { maxLineBytes: -1 }), { instanceOf: BadConfigError })?.option, 'maxLineBytes');
});

const text = (pieces: LinePiece[]) => pieces.map((p) => Buffer.from(p.bytes).toString('latin1'));

test('a truncate + rewrite within one poll interval, to a larger file, loses no line and emits no partial one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'follow-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'rewritten.log');
  const old = Array.from({ length: 30 }, (_, i) => `old line ${i}`);
  writeFileSync(path, `${old.join('\n')}\n`);
  const pieces: LinePiece[] = [];
  const s = followFileLines(path, { pollIntervalMs: 400 }).subscribe((p) => pieces.push(p));
  t.teardown(() => s.unsubscribe());
  await until(() => pieces.length === 30, 'the old lines');
  // Same inode, rewritten (truncate + write) between two polls, larger than before.
  const fresh = Array.from({ length: 60 }, (_, i) => `new line number ${i}`);
  writeFileSync(path, `${fresh.join('\n')}\n`);
  await until(() => pieces.length >= 90, 'the rewritten file');
  await new Promise((r) => setTimeout(r, 500));
  t.deepEqual(text(pieces), [...old, ...fresh].map((l) => `${l}\n`));
});

test('a rewrite to the same size is seen by content; an unfinished last line is emitted on its own, never glued', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'follow-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'same-size.log');
  writeFileSync(path, 'aaaa\nbbbb\npart');
  const pieces: LinePiece[] = [];
  const s = followFileLines(path, { pollIntervalMs: 300 }).subscribe((p) => pieces.push(p));
  t.teardown(() => s.unsubscribe());
  await until(() => pieces.length === 2, 'the complete lines');
  await new Promise((r) => setTimeout(r, 400));
  t.is(pieces.length, 2, 'the unfinished line is held');
  writeFileSync(path, 'cccc\ndddd\neeee\n'); // one byte longer, same inode, other content
  await until(() => pieces.length === 6, 'the rewritten lines');
  t.deepEqual(text(pieces), ['aaaa\n', 'bbbb\n', 'part', 'cccc\n', 'dddd\n', 'eeee\n']);
});

test('a followed file that does not exist yet is waited for; lines over the cap come in marked pieces', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'follow-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'not-yet.log');
  const pieces: LinePiece[] = [];
  const s = followFileLines(path, { pollIntervalMs: 20, maxLineBytes: 4 }).subscribe((p) => pieces.push(p));
  t.teardown(() => s.unsubscribe());
  await new Promise((r) => setTimeout(r, 200));
  writeFileSync(path, 'abcdefghij\r\nxy\n');
  await until(() => pieces.length === 4, 'the pieces');
  t.deepEqual(text(pieces), ['abcd', 'efgh', 'ij\r\n', 'xy\n']);
  t.deepEqual(pieces.map((p) => [p.truncated, p.continued]), [[true, false], [true, true], [false, true], [false, false]]);
});
