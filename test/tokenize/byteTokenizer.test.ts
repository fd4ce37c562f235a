import test from 'ava';
import { ByteTokenizer, tokenizerFromJSON, BadInputError, BadConfigError } from '../../src/index.js';

test('byte tokenizer: ids are the UTF-8 bytes, any text round-trips', (t) => {
  const tok = new ByteTokenizer();
  t.is(tok.vocabSize, 260);
  const text = 'naïve café ∞-former 🚀\n\tend';
  const ids = tok.encode(text);
  t.deepEqual(Array.from(ids), Array.from(Buffer.from(text, 'utf8')));
  t.is(tok.decode(ids), text);
  t.true(ids.every((id) => id >= 0 && id < 256));
});

test('byte tokenizer: specials follow the bytes and are dropped when decoding', (t) => {
  const tok = new ByteTokenizer();
  t.deepEqual({ ...tok.specials }, { pad: 256, bos: 257, eos: 258, sep: 259 });
  t.is(tok.decode([tok.specials['bos']!, 104, 105, tok.specials['eos']!]), 'hi');
  t.is(tok.encode('').length, 0);
});

test('byte tokenizer: JSON round-trip; bad ids and unknown kinds are typed errors', (t) => {
  const tok = tokenizerFromJSON(JSON.parse(JSON.stringify(new ByteTokenizer().toJSON())));
  t.is(tok.decode(tok.encode('abc')), 'abc');
  const e1 = t.throws(() => tok.decode([65, 300]), { instanceOf: BadInputError });
  t.is(e1.argument, 'ids');
  t.throws(() => tok.decode([1.5]), { instanceOf: BadInputError });
  t.throws(() => tok.encode(42 as unknown as string), { instanceOf: BadInputError });
  const e2 = t.throws(() => tokenizerFromJSON({ kind: 'bpe' }), { instanceOf: BadConfigError });
  t.is(e2.option, 'tokenizer.kind');
});

test('byte tokenizer: invalid UTF-8 decodes to U+FFFD instead of throwing', (t) => {
  t.is(new ByteTokenizer().decode([0xff, 0x41]), '\uFFFDA');
});
