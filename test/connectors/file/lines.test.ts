// The one line rule of every source (connectors/file/lines.ts), against the input bytes themselves.
import test from 'ava';
import { LineSplitter, pieceText, splitMessage, type LinePiece } from '../../../connectors/file/index.js';
import { BadConfigError } from '../../../src/errors.js';

const bytes = (s: string | number[]) => (typeof s === 'string' ? new Uint8Array(Buffer.from(s, 'latin1')) : Uint8Array.from(s));
const str = (p: LinePiece) => Buffer.from(p.bytes).toString('latin1');
const join = (pieces: LinePiece[]) => Buffer.concat(pieces.map((p) => p.bytes)).toString('latin1');

/** Splits `input` fed in chunks at the given cut points. */
function split(input: Uint8Array, cuts: number[], cap: number): LinePiece[] {
  const s = new LineSplitter(cap);
  const out: LinePiece[] = [];
  let at = 0;
  for (const c of [...cuts, input.length]) {
    out.push(...s.push(input.subarray(at, c)));
    at = c;
  }
  return [...out, ...s.end()];
}

test('split on \\n only: a lone \\r stays in its line, \\r\\r\\n keeps both \\r, the bytes are the input exactly', (t) => {
  const input = 'a\rb\nc\r\r\n\nd\xff\xfe\r\nlast';
  const pieces = split(bytes(input), [], 100);
  t.deepEqual(pieces.map(str), ['a\rb\n', 'c\r\r\n', '\n', 'd\xff\xfe\r\n', 'last']);
  t.is(join(pieces), input, 'concatenated pieces = the input, byte for byte');
  t.true(pieces.every((p) => !p.truncated && !p.continued));
  // Display text: the final \n dropped, invalid UTF-8 as U+FFFD; trimCr drops one \r for text readers.
  t.deepEqual(pieces.map((p) => pieceText(p)), ['a\rb', 'c\r\r', '', 'd\uFFFD\uFFFD\r', 'last']);
  t.deepEqual(pieces.map((p) => pieceText(p, true)), ['a\rb', 'c\r', '', 'd\uFFFD\uFFFD', 'last']);
});

test('the cap: a longer line is cut into marked pieces of exactly the cap; a line of exactly the cap is not cut', (t) => {
  const cap = 8;
  const long = 'x'.repeat(20);
  const pieces = split(bytes(`${long}\n${'y'.repeat(cap)}\nz\n`), [], cap);
  t.deepEqual(pieces.map(str), ['xxxxxxxx', 'xxxxxxxx', 'xxxx\n', 'yyyyyyyy\n', 'z\n']);
  t.deepEqual(
    pieces.map((p) => [p.truncated, p.continued]),
    [[true, false], [true, true], [false, true], [false, false], [false, false]],
  );
  // An unterminated over-long line at the end: cut pieces, then its rest.
  const tail = split(bytes('abcdefghijk'), [], 4);
  t.deepEqual(tail.map(str), ['abcd', 'efgh', 'ijk']);
  t.deepEqual(tail.map((p) => p.continued), [false, true, true]);
});

test('the pieces do not depend on how the input was chunked; at most the cap is held', (t) => {
  const lines = Array.from({ length: 200 }, (_, i) => 'q'.repeat((i * 37) % 53) + (i % 7 === 0 ? '\r' : ''));
  const input = bytes(`${lines.join('\n')}\n`);
  const whole = split(input, [], 16);
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let trial = 0; trial < 20; trial++) {
    const cuts = Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => Math.floor(rnd() * input.length)).sort((a, b) => a - b);
    const pieces = split(input, cuts, 16);
    t.deepEqual(pieces.map((p) => [str(p), p.truncated, p.continued]), whole.map((p) => [str(p), p.truncated, p.continued]));
  }
  t.is(join(whole), Buffer.from(input).toString('latin1'));
  const s = new LineSplitter(16);
  s.push(bytes('z'.repeat(1000)));
  t.true(s.held <= 16);
});

test('a message (a Kafka value) is its lines; its end closes the last one; an empty one has none', (t) => {
  t.deepEqual(splitMessage(bytes('')), []);
  t.deepEqual(splitMessage(bytes('abc')).map(str), ['abc\n']);
  t.deepEqual(splitMessage(bytes('abc\n')).map(str), ['abc\n']);
  t.deepEqual(splitMessage(bytes('a\r\n\nb')).map(str), ['a\r\n', '\n', 'b\n']);
  t.deepEqual(splitMessage(bytes('\n')).map(str), ['\n']);
  t.deepEqual(splitMessage(bytes([0x61, 0xff])).map((p) => Array.from(p.bytes)), [[0x61, 0xff, 0x0a]]);
  t.deepEqual(splitMessage(bytes('abcdefg'), 3).map(str), ['abc', 'def', 'g\n']);
  t.is(t.throws(() => new LineSplitter(0), { instanceOf: BadConfigError })?.option, 'maxLineBytes');
});
