import test from 'ava';
import { from, lastValueFrom, Subject, take, tap, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { BadConfigError, BadInputError, ContextMixer, InfiniformerError, ModelFileError } from '../../src/index.js';
import { contextMix, type ContextMixSnapshot, type ModelOutput, type RecordFailure, type TokenPrediction } from '../../operators/index.js';
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

/** Records of keys whose lines interleave at random; key `early` only before record `earlyTo`, `late` only from record `lateFrom`. */
function interleaved(n: number, earlyTo: number, lateFrom: number): ModelOutput[] {
  const r = lcg(21);
  const lines: Record<string, string> = { a: 'GET /a 200 12\nGET /a 200 13\nGET /b 404 9\n', b: 'sshd[42]: accepted key for root\nsshd[43]: accepted key for bob\n', late: 'kernel: eth0 up\nkernel: eth0 down\n', early: 'boot ok\n' };
  const pos: Record<string, number> = { a: 0, b: 0, late: 0, early: 0 };
  const records: ModelOutput[] = [];
  while (records.length < n) {
    const key = records.length >= lateFrom && r() < 0.3 ? 'late' : records.length < earlyTo && r() < 0.2 ? 'early' : r() < 0.5 ? 'a' : 'b';
    const text = lines[key]!;
    const c = text.charCodeAt(pos[key]! % text.length);
    // Every 40th token is special (>= 256): it passes through and still sets the pending prediction.
    const token = pos[key]! % 40 === 39 ? 257 : c;
    records.push({ ...out(key, pos[key]!, token, c === 10), nextLogProbs: logProbs(c + 1 + (pos[key]! % 3)) });
    pos[key]! += 1;
  }
  return records;
}

test('contextMix: a pipeline stopped after record k and restarted from snapshot() gives the uninterrupted outputs (twice, keys unseen in between carried over)', async (t) => {
  const records = interleaved(900, 200, 600);
  const options = { mixer: SMALL, topK: 3, topKAt: 'token' as const };
  const whole = await lastValueFrom(from(records).pipe(contextMix(options), toArray()));
  /** Runs records [from, to) from `state`, stopping (unsubscribing) after the last, and returns the outputs and the snapshot taken then. */
  const leg = async (from_: number, to: number, state: ContextMixSnapshot | undefined): Promise<[TokenPrediction[], ContextMixSnapshot]> => {
    const op = contextMix({ ...options, initialState: state });
    let snap: ContextMixSnapshot | undefined;
    let n = 0;
    const got = await lastValueFrom(
      from(records.slice(from_)).pipe(
        op,
        tap(() => {
          if (++n === to - from_) snap = op.snapshot();
        }),
        take(to - from_),
        toArray(),
      ),
    );
    t.is(op.snapshot(), undefined); // the subscription has ended
    return [got, snap!];
  };
  const [first, s1] = await leg(0, 250, undefined);
  t.deepEqual([...s1.keys.keys()].sort(), ['a', 'b', 'early']);
  // The second leg never sees `early`: its snapshot carries the key's bytes over unchanged.
  const [second, s2] = await leg(250, 400, s1);
  t.deepEqual([...s2.keys.keys()].sort(), ['a', 'b', 'early']);
  t.deepEqual(s2.keys.get('early'), s1.keys.get('early'));
  const [third] = await leg(400, 900, s2);
  t.deepEqual(first, whole.slice(0, 250));
  t.deepEqual(second, whole.slice(250, 400));
  t.deepEqual(third, whole.slice(400));
  // Without the saved pending distributions the next byte of a key would be coded differently: the test can fail.
  const noPending = new Map([...s1.keys].map(([k, b]) => {
    const m = ContextMixer.restore(s1.mixer);
    return [k, m.saveStream(m.restoreStream(b))];
  }));
  const [changed] = await leg(250, 400, { mixer: s1.mixer, keys: noPending });
  t.notDeepEqual(changed.map((o) => o.surprisal), second.map((o) => o.surprisal));
});

test('contextMix: snapshot() with several live subscriptions is an error; a corrupt key restarts fresh with an error record; a corrupt mixer is a ModelFileError', async (t) => {
  const op = contextMix({ mixer: SMALL });
  const feed = new Subject<ModelOutput>();
  const s1 = feed.pipe(op).subscribe();
  const s2 = feed.pipe(op).subscribe();
  t.throws(() => op.snapshot(), { instanceOf: InfiniformerError, message: /needs one live subscription, there are 2/ });
  s2.unsubscribe();
  feed.next(out('a', 0, 65));
  const snap = op.snapshot()!;
  s1.unsubscribe();
  t.deepEqual([...snap.keys.keys()], ['a']);

  const badKey = snap.keys.get('a')!.slice();
  badKey[30] = badKey[30]! ^ 0xff;
  const errors = new Subject<RecordFailure<ModelOutput>>();
  const failed: RecordFailure<ModelOutput>[] = [];
  errors.subscribe((f) => failed.push(f));
  const got = await lastValueFrom(from([out('a', 1, 66)]).pipe(contextMix({ mixer: SMALL, initialState: { mixer: snap.mixer, keys: [['a', badKey]] }, errors }), toArray()));
  t.is(failed.length, 1);
  t.true(failed[0]!.error instanceof ModelFileError && failed[0]!.key === 'a');
  // Fresh stream, restored statistics: what a restored mixer codes for 66 on a new stream without a prediction.
  const m = ContextMixer.restore(snap.mixer);
  t.is(got[0]!.surprisal, m.code(m.createStream(), 66));

  const badMixer = snap.mixer.slice(0, snap.mixer.length - 1);
  t.throws(() => contextMix({ initialState: { mixer: badMixer } }), { instanceOf: ModelFileError, message: /checksum/ });
  t.throws(() => contextMix({ mixer: { ...SMALL, tableBits: 18 }, initialState: { mixer: snap.mixer } }), { instanceOf: BadConfigError, message: /tableBits 16, the mixer option says 18/ });
  t.throws(() => contextMix({ mixer: new ContextMixer(SMALL), initialState: { mixer: snap.mixer } }), { instanceOf: BadConfigError, message: /cannot be combined/ });
});
