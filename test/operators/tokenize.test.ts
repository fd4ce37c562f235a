import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { from, lastValueFrom, map, Subject, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { detokenize, tokenize, type DecodedText, type RecordFailure, type TextRecord, type TokenInput, type TokenRecord } from '../../operators/index.js';
import { BadConfigError, BadInputError, ByteTokenizer, type Tokenizer } from '../../src/index.js';
import { lcg } from '../helpers/reference64.js';

const bytes = new ByteTokenizer();
const ALPHABET = ['a', 'b', ' ', '\n', 'é', 'ß', '中', '文', '😀', '🚀', '\u0301', 'z'];

function randomText(r: () => number, n: number): string {
  return Array.from({ length: n }, () => ALPHABET[Math.floor(r() * ALPHABET.length)]!).join('');
}

/** Collects the records a side output receives. */
function sink<T>(): { errors: Subject<RecordFailure<T>>; seen: RecordFailure<T>[] } {
  const errors = new Subject<RecordFailure<T>>();
  const seen: RecordFailure<T>[] = [];
  errors.subscribe((f) => seen.push(f));
  return { errors, seen };
}

test('tokenize: strings, keyed records and UTF-8 bytes become the tokenizer ids, one record out per record in', async (t) => {
  const input: (string | TextRecord)[] = ['héllo', { key: 'web-1', text: 'GET / 200\n', source: { offset: 7 } }, { key: 'db', text: new TextEncoder().encode('中文 ok') }];
  const out = await lastValueFrom(from(input).pipe(tokenize({ key: 'stdin' }), toArray()));
  t.deepEqual(
    out.map((o) => ({ ...o, tokens: Array.from(o.tokens) })),
    [
      { key: 'stdin', tokens: Array.from(bytes.encode('héllo')), text: 'héllo' },
      { key: 'web-1', tokens: Array.from(bytes.encode('GET / 200\n')), text: 'GET / 200\n', source: { offset: 7 } },
      { key: 'db', tokens: Array.from(bytes.encode('中文 ok')), text: '中文 ok' },
    ],
  );
  t.is(out[0]!.tokens.length, 6, 'é is two bytes');
});

test('property: tokens split anywhere (inside characters too) and interleaved across keys detokenize to the original text per key', async (t) => {
  const r = lcg(31);
  for (let trial = 0; trial < 40; trial++) {
    const texts: Record<string, string> = { a: randomText(r, 1 + Math.floor(r() * 30)), b: randomText(r, 1 + Math.floor(r() * 30)), c: randomText(r, Math.floor(r() * 5)) };
    const records: TokenInput[] = [];
    const cursors: Record<string, number> = { a: 0, b: 0, c: 0 };
    const ids = Object.fromEntries(Object.entries(texts).map(([k, s]) => [k, Array.from(bytes.encode(s))]));
    for (;;) {
      const open = Object.keys(ids).filter((k) => cursors[k]! < ids[k]!.length);
      if (open.length === 0) break;
      const key = open[Math.floor(r() * open.length)]!;
      const n = 1 + Math.floor(r() * 4);
      // Half the records one token at a time (as infiniteFormer emits them), half several.
      if (r() < 0.5) for (const token of ids[key]!.slice(cursors[key], cursors[key]! + n)) records.push({ key, token });
      else records.push({ key, tokens: ids[key]!.slice(cursors[key], cursors[key]! + n) });
      cursors[key] = cursors[key]! + n;
    }
    const out = await lastValueFrom(from(records).pipe(detokenize(), toArray()));
    t.is(out.length, records.length, 'one output per record (no dangling bytes at the end)');
    for (const [key, text] of Object.entries(texts)) {
      t.is(out.filter((o) => o.key === key).map((o) => o.text).join(''), text, `trial ${trial}, key ${key}`);
    }
    t.false(out.some((o) => o.text.includes('\uFFFD')));
  }
});

test('detokenize: special tokens are dropped; a character completed by a later record comes out with it', async (t) => {
  const euro = Array.from(bytes.encode('€')); // 3 bytes
  const out = await lastValueFrom(
    from<TokenInput[]>([
      { key: 'k', tokens: [bytes.specials['bos']!, 65, euro[0]!], source: 1 },
      { key: 'k', token: euro[1]!, source: 2 },
      { key: 'k', tokens: [euro[2]!, 66, bytes.specials['eos']!], source: 3 },
    ]).pipe(detokenize(), toArray()),
  );
  t.deepEqual(out, [
    { key: 'k', text: 'A', source: 1 },
    { key: 'k', text: '', source: 2 },
    { key: 'k', text: '€B', source: 3 },
  ]);
});

test('detokenize: incomplete bytes at the end become U+FFFD in a last record (or an error record, if asked)', async (t) => {
  const euro = Array.from(bytes.encode('€'));
  const input: TokenInput[] = [{ key: 'k', tokens: [65, euro[0]!, euro[1]!], source: 1 }];
  const replaced = await lastValueFrom(from(input).pipe(detokenize(), toArray()));
  t.deepEqual(replaced, [
    { key: 'k', text: 'A', source: 1 },
    { key: 'k', text: '\uFFFD' },
  ]);
  const { errors, seen } = sink<TokenInput>();
  const strict = await lastValueFrom(from(input).pipe(detokenize({ invalid: 'error', errors }), toArray()));
  t.deepEqual(strict, [{ key: 'k', text: 'A', source: 1 }]);
  t.is(seen.length, 1);
  t.true(seen[0]!.error instanceof BadInputError);
  t.regex(seen[0]!.error.message, /incomplete UTF-8/);
  t.is(seen[0]!.key, 'k');
});

test('bad records go to the errors side output and the stream goes on', async (t) => {
  const tok = sink<string | TextRecord>();
  const badText: (string | TextRecord)[] = [
    { key: 'a', text: 42 as unknown as string },
    { key: 'a', text: new Uint8Array([0x66, 0xff, 0x66]) },
    { key: 7 as unknown as string, text: 'x' },
    null as unknown as string,
  ];
  const out = await lastValueFrom(from(['ok', ...badText, 'fine']).pipe(tokenize({ errors: tok.errors }), toArray()));
  t.deepEqual(out.map((o: TokenRecord) => o.text), ['ok', 'fine']);
  t.deepEqual(tok.seen.map((f) => (f.error as BadInputError).argument), ['text', 'text', 'key', 'record']);
  t.true(tok.seen.every((f, i) => f.error instanceof BadInputError && f.record === badText[i]));
  t.regex(tok.seen[1]!.error.message, /not valid UTF-8/);

  const det = sink<TokenInput>();
  const badIds: TokenInput[] = [{ key: 'a', token: 260 }, { key: 'a', tokens: [65, 1.5] }, { key: 'a' }, { key: 3 as unknown as string, token: 65 }];
  const strict = sink<TokenInput>();
  const text = await lastValueFrom(from<TokenInput[]>([{ key: 'a', token: 72 }, ...badIds, { key: 'a', token: 73 }]).pipe(detokenize({ errors: det.errors }), toArray()));
  t.deepEqual(text.map((o: DecodedText) => o.text), ['H', 'I']);
  t.deepEqual(det.seen.map((f) => (f.error as BadInputError).argument), ['tokens', 'tokens', 'tokens', 'key']);
  // Invalid UTF-8 mid-stream: U+FFFD by default, an error record with invalid: 'error'.
  const invalid: TokenInput[] = [{ key: 'a', tokens: [0x66, 0xff] }, { key: 'a', token: 0x67 }];
  t.deepEqual((await lastValueFrom(from(invalid).pipe(detokenize(), toArray()))).map((o) => o.text), ['f\uFFFD', 'g']);
  t.deepEqual((await lastValueFrom(from(invalid).pipe(detokenize({ invalid: 'error', errors: strict.errors }), toArray()))).map((o) => o.text), ['g']);
  t.is(strict.seen.length, 1);
  t.regex(strict.seen[0]!.error.message, /not valid UTF-8/);
});

test('another tokenizer: each record is decoded on its own', async (t) => {
  const words = ['<pad>', 'GET', 'POST', '/', '200', '404'];
  const wordTokenizer: Tokenizer = {
    kind: 'words',
    vocabSize: words.length,
    specials: { pad: 0 },
    encode: (text) => Int32Array.from(text.split(' ').map((w) => Math.max(0, words.indexOf(w)))),
    decode: (ids) => Array.from(ids, (i) => words[i]).filter((w) => w !== '<pad>').join(' '),
    toJSON: () => ({ kind: 'words' }),
  };
  const toks = await lastValueFrom(from(['GET / 200', 'POST / 404']).pipe(tokenize({ tokenizer: wordTokenizer }), toArray()));
  t.deepEqual(toks.map((o) => Array.from(o.tokens)), [[1, 3, 4], [2, 3, 5]]);
  const back = await lastValueFrom(from(toks).pipe(detokenize({ tokenizer: wordTokenizer }), toArray()));
  t.deepEqual(back.map((o) => o.text), ['GET / 200', 'POST / 404']);
});

test('marbles: completion, error passthrough, early unsubscribe; no tensors touched', (t) => {
  const before = tf.memory().numTensors;
  const sched = new TestScheduler((a, b) => t.deepEqual(a, b));
  sched.run(({ cold, expectObservable, expectSubscriptions }) => {
    const text = map((o: TokenRecord) => o.text);
    const src = cold('a-b-|', { a: 'x', b: 'y' });
    expectObservable(src.pipe(tokenize(), text)).toBe('a-b-|', { a: 'x', b: 'y' });
    expectObservable(cold('a-#', { a: 'x' }, new Error('up')).pipe(tokenize(), text)).toBe('a-#', { a: 'x' }, new Error('up'));
    const long = cold('a-a-a-|', { a: { key: 'k', token: 65 } });
    expectObservable(long.pipe(detokenize(), map((o) => o.text)), '^--!').toBe('a-a', { a: 'A' });
    expectSubscriptions(long.subscriptions).toBe('^--!');
    expectObservable(cold('a-#', { a: { key: 'k', token: 65 } }, new Error('up')).pipe(detokenize(), map((o) => o.text))).toBe('a-#', { a: 'A' }, new Error('up'));
  });
  t.is(tf.memory().numTensors, before);
});

test('bad options are typed config errors', (t) => {
  t.is(t.throws(() => tokenize({ tokenizer: {} as Tokenizer }), { instanceOf: BadConfigError }).option, 'tokenizer');
  t.is(t.throws(() => tokenize({ key: 5 as unknown as string }), { instanceOf: BadConfigError }).option, 'key');
  t.is(t.throws(() => detokenize({ invalid: 'skip' as 'error' }), { instanceOf: BadConfigError }).option, 'invalid');
  t.is(t.throws(() => detokenize({ maxKeys: 0 }), { instanceOf: BadConfigError }).option, 'maxKeys');
});

test("invalidUtf8: 'keep' scores the original bytes with a byte tokenizer (text shows U+FFFD); other tokenizers still error", async (t) => {
  const bytes = new Uint8Array([0x66, 0xff, 0x0d, 0x0d, 0x0a]);
  const kept = sink<string | TextRecord>();
  const out = await lastValueFrom(from<TextRecord[]>([{ key: 'a', text: bytes, source: 1 }]).pipe(tokenize({ invalidUtf8: 'keep', errors: kept.errors }), toArray()));
  t.deepEqual(Array.from(out[0]!.tokens), [0x66, 0xff, 0x0d, 0x0d, 0x0a]);
  t.is(out[0]!.text, 'f\uFFFD\r\r\n');
  t.is(out[0]!.source, 1);
  t.is(kept.seen.length, 0);
  // A tokenizer without encodeBytes cannot keep them: the record is an error, as by default.
  const plain: Tokenizer = { kind: 'plain', vocabSize: 256, specials: {}, encode: (s) => new ByteTokenizer().encode(s), decode: (ids) => new ByteTokenizer().decode(ids), toJSON: () => ({ kind: 'plain' }) };
  const strict = sink<string | TextRecord>();
  t.deepEqual(await lastValueFrom(from<TextRecord[]>([{ key: 'a', text: bytes }]).pipe(tokenize({ tokenizer: plain, invalidUtf8: 'keep', errors: strict.errors }), toArray())), []);
  t.regex(strict.seen[0]!.error.message, /not valid UTF-8/);
  t.is(t.throws(() => tokenize({ invalidUtf8: 'drop' as 'keep' }), { instanceOf: BadConfigError })?.option, 'invalidUtf8');
});
