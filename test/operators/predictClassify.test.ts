import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { from, lastValueFrom, map, queueScheduler, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { classify, infiniteFormer, predictNext, type ModelOutput, type TokenInput } from '../../operators/index.js';
import { BadConfigError, BadInputError, type InfiniFormer } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { tinyModel, tokens as randomTokens } from '../model/helpers.js';

test.before(async () => {
  await backendReady;
});

/** Float64 softmax of a logits row. */
function softmax64(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  const ex = Array.from(logits, (v) => Math.exp(v - max));
  const z = ex.reduce((a, b) => a + b, 0);
  return ex.map((v) => v / z);
}

/** Direct model calls for one key: per token, the next-token logits and the final hidden state. */
function direct(model: InfiniFormer, toks: number[]): { logits: Float32Array[]; hidden: Float32Array[] } {
  const s = model.createState();
  const logits: Float32Array[] = [];
  const hidden: Float32Array[] = [];
  for (const tok of toks) {
    // runHidden and run advance the state: take both from one forward on a copy of the state.
    const copy = model.restoreState(s.serialize());
    const l = model.run([s], [[tok]]);
    const h = model.runHidden([copy], [[tok]]);
    logits.push(l.dataSync().slice() as Float32Array);
    hidden.push(h.dataSync().slice() as Float32Array);
    tf.dispose([l, h]);
    copy.dispose();
  }
  s.dispose();
  return { logits, hidden };
}

test('predictNext: topK and surprisal equal a float64 softmax of the model called directly', async (t) => {
  const model = tinyModel();
  const V = model.config.vocabSize;
  const streams: Record<string, number[]> = { a: randomTokens(20, V, 41), b: randomTokens(14, V, 42) };
  const records: TokenInput[] = [];
  for (let i = 0; i < 20; i++) for (const k of ['a', 'b']) if (i < streams[k]!.length) records.push({ key: k, token: streams[k]![i]!, source: `${k}${i}` });
  const out = await lastValueFrom(from(records).pipe(infiniteFormer(model), predictNext({ topK: 4 }), toArray()));
  t.is(out.length, records.length);
  let worstProb = 0;
  let worstBits = 0;
  for (const key of ['a', 'b']) {
    const ref = direct(model, streams[key]!);
    const mine = out.filter((p) => p.key === key);
    mine.forEach((p, i) => {
      t.is(p.index, i);
      t.is(p.source, `${key}${i}`);
      const probs = softmax64(ref.logits[i]!);
      const order = probs.map((prob, token) => ({ token, prob })).sort((x, y) => y.prob - x.prob);
      t.deepEqual(p.topK!.map((x) => x.token), order.slice(0, 4).map((x) => x.token));
      p.topK!.forEach((x, j) => (worstProb = Math.max(worstProb, Math.abs(x.prob - order[j]!.prob))));
      // Surprisal: bits of this token under the previous prediction; uniform for the first.
      const want = i === 0 ? Math.log2(V) : -Math.log2(softmax64(ref.logits[i - 1]!)[p.token]!);
      worstBits = Math.max(worstBits, Math.abs(p.surprisal - want));
    });
  }
  t.log(`max |prob - float64| = ${worstProb.toExponential(2)}, max |surprisal - float64| = ${worstBits.toExponential(2)} bits`);
  t.true(worstProb < 1e-6);
  t.true(worstBits < 1e-5);
  // 'drop' leaves out each key's first token; topK is clipped to the vocabulary.
  const dropped = await lastValueFrom(from(records).pipe(infiniteFormer(model), predictNext({ first: 'drop', topK: 1000 }), toArray()));
  t.deepEqual(dropped.map((p) => `${p.key}${p.index}`), out.filter((p) => p.index > 0).map((p) => `${p.key}${p.index}`));
  t.true(dropped.every((p) => p.topK!.length === V && Math.abs(p.topK!.reduce((s, x) => s + x.prob, 0) - 1) < 1e-5));
  model.dispose();
});

test('predictNext: marbles (completion, error passthrough, early unsubscribe), bad records and options', async (t) => {
  const rec = (index: number, lp: number[]): ModelOutput => ({ key: 'k', index, token: 1, surprisal: index === 0 ? Number.NaN : 1, nextLogProbs: Float32Array.from(lp), endOfRecord: true });
  const a = rec(0, [Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
  const b = rec(1, [Math.log(0.1), Math.log(0.2), Math.log(0.7)]);
  const sched = new TestScheduler((x, y) => t.deepEqual(x, y));
  sched.run(({ cold, expectObservable, expectSubscriptions }) => {
    const top = map((p: { topK?: { token: number }[]; surprisal: number }) => `${p.topK![0]!.token}:${p.surprisal.toFixed(3)}`);
    expectObservable(cold('a-b-|', { a, b }).pipe(predictNext({ topK: 1 }), top)).toBe('a-b-|', { a: `0:${Math.log2(3).toFixed(3)}`, b: '2:1.000' });
    expectObservable(cold('a-#', { a }, new Error('up')).pipe(predictNext(), top)).toBe('a-#', { a: `0:${Math.log2(3).toFixed(3)}` }, new Error('up'));
    const long = cold('b-b-b-|', { b });
    expectObservable(long.pipe(predictNext(), top), '^--!').toBe('a-a', { a: '2:1.000' });
    expectSubscriptions(long.subscriptions).toBe('^--!');
  });
  await t.throwsAsync(lastValueFrom(from([{ ...a, nextLogProbs: undefined as unknown as Float32Array }]).pipe(predictNext())), { instanceOf: BadInputError, message: /^nextLogProbs:/ });
  await t.throwsAsync(lastValueFrom(from([rec(1, [Number.NaN, Number.NaN])]).pipe(predictNext())), { instanceOf: BadInputError, message: /no finite/ });
  t.is(t.throws(() => predictNext({ topK: 0 }), { instanceOf: BadConfigError }).option, 'topK');
  t.is(t.throws(() => predictNext({ first: 'skip' as 'drop' }), { instanceOf: BadConfigError }).option, 'first');
});

test('classify per event: label and scores equal the classifier head on the hidden state of a direct model call', async (t) => {
  const model = tinyModel({ numLabels: 3 });
  const V = model.config.vocabSize;
  const toks = randomTokens(19, V, 43);
  const labels = ['ok', 'warn', 'error'];
  const out = await lastValueFrom(from(toks.map((token) => ({ key: 'k', token }))).pipe(infiniteFormer(model, { emitHidden: true }), classify(model, { labels }), toArray()));
  const ref = direct(model, toks);
  let worst = 0;
  out.forEach((o, i) => {
    const want = tf.tidy(() => tf.softmax(tf.reshape(model.classify(tf.tensor3d(ref.hidden[i]!, [1, 1, model.config.width]), 'event'), [3])).dataSync());
    want.forEach((w, c) => (worst = Math.max(worst, Math.abs(o.scores[c]! - w))));
    const best = o.scores.indexOf(Math.max(...o.scores));
    t.is(o.labelIndex, best);
    t.is(o.label, labels[best]!);
    t.is(o.index, i); // the token record passes through
    t.true(Math.abs(o.scores.reduce((s, x) => s + x, 0) - 1) < 1e-5);
  });
  t.log(`max |score - direct| = ${worst.toExponential(2)}`);
  t.true(worst < 1e-5);
  model.dispose();
});

test('classify per window: one label per input record (or per N tokens) from the mean hidden state; open windows flushed on completion', async (t) => {
  const model = tinyModel({ numLabels: 3 });
  const V = model.config.vocabSize;
  const streams: Record<string, number[]> = { a: randomTokens(13, V, 44), b: randomTokens(10, V, 45) };
  // Records of 4, 5 and 4 tokens for a; 3, 3 and 4 for b, interleaved.
  const cuts: Record<string, number[]> = { a: [0, 4, 9, 13], b: [0, 3, 6, 10] };
  const records: TokenInput[] = [];
  for (let r = 0; r < 3; r++) for (const k of ['a', 'b']) records.push({ key: k, tokens: streams[k]!.slice(cuts[k]![r], cuts[k]![r + 1]), source: `${k}#${r}` });
  const refs = Object.fromEntries(Object.entries(streams).map(([k, toks]) => [k, direct(model, toks)]));
  // Independent truth: the head is affine, so window logits = the mean of per-event logits.
  const expected = (key: string, first: number, last: number): number[] =>
    Array.from(
      tf.tidy(() => {
        const hs = tf.tensor3d(Float32Array.from(refs[key]!.hidden.slice(first, last + 1).flatMap((h) => Array.from(h))), [1, last - first + 1, model.config.width]);
        return tf.softmax(tf.mean(model.classify(hs, 'event'), 1)).dataSync();
      }),
    );
  const byRecord = await lastValueFrom(from(records).pipe(infiniteFormer(model, { emitHidden: true }), classify(model, { per: 'window' }), toArray()));
  t.is(byRecord.length, 6);
  let worst = 0;
  for (const w of byRecord) {
    const r = Number(String(w.source).split('#')[1]);
    t.is(w.first, cuts[w.key]![r]!);
    t.is(w.last, cuts[w.key]![r + 1]! - 1);
    t.is(w.size, w.last - w.first + 1);
    expected(w.key, w.first, w.last).forEach((p, c) => (worst = Math.max(worst, Math.abs(w.scores[c]! - p))));
    t.is(w.label, String(w.labelIndex));
  }
  const byCount = await lastValueFrom(from(records).pipe(infiniteFormer(model, { emitHidden: true }), classify(model, { per: 'window', window: 4 }), toArray()));
  t.deepEqual(
    byCount.map((w) => `${w.key}:${w.first}-${w.last}`).sort(),
    ['a:0-3', 'a:4-7', 'a:8-11', 'a:12-12', 'b:0-3', 'b:4-7', 'b:8-9'].sort(),
  );
  for (const w of byCount) expected(w.key, w.first, w.last).forEach((p, c) => (worst = Math.max(worst, Math.abs(w.scores[c]! - p))));
  t.log(`max |window score - mean of event logits| = ${worst.toExponential(2)}`);
  t.true(worst < 1e-5);
  model.dispose();
});

test.serial('classify: no tensor leaks; bad heads, options and records are typed errors', async (t) => {
  const model = tinyModel({ numLabels: 2 });
  const plain = tinyModel();
  const toks = randomTokens(30, model.config.vocabSize, 46).map((token, i) => ({ key: `k${i % 3}`, token }));
  const run = (): Promise<unknown[]> =>
    lastValueFrom(from(toks).pipe(infiniteFormer(model, { emitHidden: true, scheduler: queueScheduler }), classify(model, { per: 'window', window: 3 }), toArray()));
  await run(); // warm the shared caches
  const before = tf.memory().numTensors;
  await run();
  await lastValueFrom(from(toks).pipe(infiniteFormer(model, { emitHidden: true }), classify(model), toArray()));
  t.is(tf.memory().numTensors, before);
  t.is(t.throws(() => classify(plain), { instanceOf: BadConfigError }).option, 'head');
  t.is(t.throws(() => classify({} as InfiniFormer), { instanceOf: BadConfigError }).option, 'head');
  t.is(t.throws(() => classify(model, { labels: ['one'] }), { instanceOf: BadConfigError }).option, 'labels');
  t.is(t.throws(() => classify(model, { per: 'window', window: 0 }), { instanceOf: BadConfigError }).option, 'window');
  t.is(t.throws(() => classify(model, { per: 'line' as 'event' }), { instanceOf: BadConfigError }).option, 'per');
  await t.throwsAsync(lastValueFrom(from(toks).pipe(infiniteFormer(model), classify(model))), { instanceOf: BadInputError, message: /^hidden: .*emitHidden/ });
  t.is(tf.memory().numTensors, before);
  model.dispose();
  plain.dispose();
});
