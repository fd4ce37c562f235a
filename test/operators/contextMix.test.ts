import test from 'ava';
import { from, lastValueFrom, Subject, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { BadConfigError, BadInputError, ContextMixer } from '../../src/index.js';
import { contextMix, type ModelOutput, type RecordFailure } from '../../operators/index.js';
import { lcg } from '../helpers/reference64.js';

const SMALL = { tableBits: 16, historyBits: 14, matchIndexBits: 12 };

/** A made-up network: log-probabilities favouring byte (seed + index) mod 256. */
function logProbs(favour: number): Float32Array {
  const p = new Float32Array(260).fill(Math.log(0.5 / 259));
  p[favour % 256] = Math.log(0.5);
  return p;
}

const out = (key: string, index: number, token: number, endOfRecord = false): ModelOutput => ({ key, index, token, surprisal: NaN, nextLogProbs: logProbs(token + 1), endOfRecord });

test('contextMix: per key, the surprisal is what a ContextMixer fed the same bytes and network predictions codes (property over interleavings)', async (t) => {
  const r = lcg(11);
  const text: Record<string, string> = { a: 'GET /a 200\nGET /a 200\nGET /b 404\n', b: 'sshd: accepted key for root\nsshd: accepted key for bob\n' };
  const pos: Record<string, number> = { a: 0, b: 0 };
  const records: ModelOutput[] = [];
  while (pos['a']! < text['a']!.length || pos['b']! < text['b']!.length) {
    const key = r() < 0.5 ? 'a' : 'b';
    if (pos[key]! >= text[key]!.length) continue;
    const c = text[key]!.charCodeAt(pos[key]!);
    records.push(out(key, pos[key]!, c, c === 10));
    pos[key]! += 1;
  }
  const mixer = new ContextMixer(SMALL);
  const got = await lastValueFrom(from(records).pipe(contextMix({ mixer, topK: 2 }), toArray()));
  // Independently: one mixer, the two streams, in the same interleaving.
  const ref = new ContextMixer(SMALL);
  const streams = { a: ref.createStream(), b: ref.createStream() };
  const last: Record<string, Float32Array | undefined> = {};
  const want = records.map((rec) => {
    const p = Float32Array.from(rec.nextLogProbs.subarray(0, 256), Math.exp);
    const bits = ref.code(streams[rec.key as 'a' | 'b'], rec.token, last[rec.key]);
    last[rec.key] = p;
    return bits;
  });
  t.deepEqual(got.map((g) => g.surprisal), want);
  t.deepEqual(got.map((g) => [g.key, g.index, g.token]), records.map((x) => [x.key, x.index, x.token]));
  // topK only at record ends, two of them, most likely first, probabilities of a distribution.
  for (const g of got) {
    if (!g.endOfRecord) t.is(g.topK, undefined);
    else {
      t.is(g.topK!.length, 2);
      t.true(g.topK![0]!.prob >= g.topK![1]!.prob && g.topK![0]!.prob + g.topK![1]!.prob <= 1 + 1e-12);
    }
  }
});

test('contextMix: a record without usable log-probabilities goes to errors and the stream goes on', async (t) => {
  const errors = new Subject<RecordFailure<ModelOutput>>();
  const failed: RecordFailure<ModelOutput>[] = [];
  errors.subscribe((f) => failed.push(f));
  const bad = { ...out('a', 1, 66), nextLogProbs: new Float32Array(260).fill(Number.NaN) };
  const short = { ...out('a', 2, 67), nextLogProbs: new Float32Array(10) };
  const got = await lastValueFrom(from([out('a', 0, 65), bad, short, out('a', 3, 68, true)]).pipe(contextMix({ mixer: SMALL, errors }), toArray()));
  t.deepEqual(got.map((g) => g.index), [0, 3]);
  t.is(failed.length, 2);
  t.true(failed.every((f) => f.error instanceof BadInputError && f.key === 'a'));
});

test('contextMix: completion, error passthrough and early unsubscribe (marbles)', (t) => {
  const scheduler = new TestScheduler((actual, expected) => t.deepEqual(actual, expected));
  scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
    const values = { a: out('k', 0, 65), b: out('k', 1, 66, true) };
    const src = cold('-a-b-|', values);
    expectObservable(src.pipe(contextMix({ mixer: SMALL }), toArray())).toBe('-----(x|)', { x: [expect(0), expect(1)] });
    const failing = cold('-a-#', values, new Error('upstream'));
    expectObservable(failing.pipe(contextMix({ mixer: SMALL }))).toBe('-x-#', { x: expect(0) }, new Error('upstream'));
    const endless = cold('-a-b-a-b-a-b', values);
    expectObservable(endless.pipe(contextMix({ mixer: SMALL })), '^--!').toBe('-x-', { x: expect(0) });
    expectSubscriptions(endless.subscriptions).toBe('^--!');
  });

  function expect(i: 0 | 1): unknown {
    // The first byte of a fresh mixer and stream, without a network prediction before it.
    const m = new ContextMixer(SMALL);
    const s = m.createStream();
    const bits0 = m.code(s, 65);
    if (i === 0) return { key: 'k', index: 0, token: 65, surprisal: bits0, endOfRecord: false };
    const bits1 = m.code(s, 66, Float32Array.from(logProbs(66).subarray(0, 256), Math.exp));
    const topK = Array.from(m.distribution(s, Float32Array.from(logProbs(67).subarray(0, 256), Math.exp)))
      .map((prob, token) => ({ token, prob }))
      .sort((x, y) => y.prob - x.prob || x.token - y.token)
      .slice(0, 5);
    return { key: 'k', index: 1, token: 66, surprisal: bits1, endOfRecord: true, topK };
  }
});

test('contextMix: bad options are typed errors', (t) => {
  t.throws(() => contextMix({ topK: 0 }), { instanceOf: BadConfigError, message: /^topK/ });
  t.throws(() => contextMix({ maxKeys: 0 }), { instanceOf: BadConfigError, message: /^maxKeys/ });
  t.throws(() => contextMix({ topKAt: 'sometimes' as 'record' }), { instanceOf: BadConfigError, message: /^topKAt/ });
});
