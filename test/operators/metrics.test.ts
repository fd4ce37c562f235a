import test from 'ava';
import { TestScheduler } from 'rxjs/testing';
import { from, lastValueFrom, toArray } from 'rxjs';
import { perplexity } from '../../operators/perplexity.js';
import { anomalies, quantileOf } from '../../operators/anomalies.js';
import { BadConfigError, BadInputError } from '../../src/errors.js';
import { lcg } from '../helpers/reference64.js';

const scheduler = (t: { deepEqual: (a: unknown, b: unknown) => void }): TestScheduler => new TestScheduler((actual, expected) => t.deepEqual(actual, expected));
const rec = (key: string, surprisal: number, i = 0): { key: string; surprisal: number; index: number } => ({ key, surprisal, index: i });

test('perplexity: per-key rolling mean of surprisal over the last `window` records, 2^bits', async (t) => {
  const r = lcg(4);
  const input = Array.from({ length: 300 }, (_, i) => rec(['a', 'b', 'c'][i % 3]!, r() * 8, i));
  const out = await lastValueFrom(from(input).pipe(perplexity({ window: 7 }), toArray()));
  t.is(out.length, input.length);
  out.forEach((o, i) => {
    // Brute force: the last 7 records of the same key up to and including this one.
    const same = input.slice(0, i + 1).filter((x) => x.key === o.key).slice(-7);
    const bits = same.reduce((s, x) => s + x.surprisal, 0) / same.length;
    t.true(Math.abs(o.bitsPerToken - bits) < 1e-9);
    t.true(Math.abs(o.perplexity - 2 ** bits) < 1e-9 * 2 ** bits);
    t.is(o.windowSize, same.length);
    t.is(o.index, input[i]!.index); // the record passes through
  });
});

test('perplexity: completion, error passthrough, early unsubscribe (marbles)', (t) => {
  scheduler(t).run(({ cold, expectObservable, expectSubscriptions }) => {
    const src = cold('a-b-|', { a: rec('k', 1), b: rec('k', 3) });
    expectObservable(src.pipe(perplexity({ window: 2 }))).toBe('a-b-|', {
      a: { ...rec('k', 1), bitsPerToken: 1, perplexity: 2, windowSize: 1 },
      b: { ...rec('k', 3), bitsPerToken: 2, perplexity: 4, windowSize: 2 },
    });
    const failing = cold('a-#', { a: rec('k', 1) }, new Error('upstream'));
    expectObservable(failing.pipe(perplexity())).toBe('a-#', { a: { ...rec('k', 1), bitsPerToken: 1, perplexity: 2, windowSize: 1 } }, new Error('upstream'));
    const long = cold('a-a-a-a-|', { a: rec('k', 0) });
    const zero = (n: number): object => ({ ...rec('k', 0), bitsPerToken: 0, perplexity: 1, windowSize: n });
    expectObservable(long.pipe(perplexity()), '^--!').toBe('a-b', { a: zero(1), b: zero(2) });
    expectSubscriptions(long.subscriptions).toBe('^--!');
  });
});

test('anomalies with a fixed threshold flag exactly the records above it', async (t) => {
  const input = [1, 9, 3, 12, 5].map((s, i) => rec('k', s, i));
  const out = await lastValueFrom(from(input).pipe(anomalies({ threshold: 6 }), toArray()));
  t.deepEqual(out.map((o) => o.anomaly), [false, true, false, true, false]);
  t.true(out.every((o) => o.threshold === 6));
});

test('anomalies by quantile: compared with the quantile of the previous window of the same key, after warm-up', async (t) => {
  const r = lcg(9);
  const input = Array.from({ length: 2000 }, (_, i) => rec(i % 2 ? 'x' : 'y', r() < 0.02 ? 20 + r() : r() * 4, i));
  const out = await lastValueFrom(from(input).pipe(anomalies({ quantile: 0.95, window: 200, warmup: 20 }), toArray()));
  out.forEach((o, i) => {
    const past = input.slice(0, i).filter((x) => x.key === o.key).slice(-200).map((x) => x.surprisal);
    if (past.length < 20) {
      t.false(o.anomaly);
      t.true(Number.isNaN(o.threshold));
      return;
    }
    const th = quantileOf(past, 0.95);
    t.true(Math.abs(o.threshold - th) < 1e-12);
    t.is(o.anomaly, o.surprisal > th);
  });
  // Every planted spike after warm-up is flagged; few ordinary records are.
  const spikes = out.filter((o, i) => input[i]!.surprisal >= 20 && i >= 40);
  t.true(spikes.length > 10);
  t.true(spikes.every((o) => o.anomaly));
  const falseAlarms = out.filter((o, i) => input[i]!.surprisal < 20 && o.anomaly).length;
  t.log(`spikes flagged ${spikes.length}/${spikes.length}; ordinary records flagged ${falseAlarms}/${out.length}`);
  t.true(falseAlarms < 0.06 * out.length);
});

test("anomalies by quantile, young: 'allKeys': a key in warm-up is judged by the quantile of every key's previous window; a key past it by its own", async (t) => {
  const r = lcg(11);
  // 300 keys of 6 records each (one key per host), interleaved: no key ever finishes a warm-up
  // of 20, so per-key quantiles never flag; a few planted spikes.
  const input = Array.from({ length: 1800 }, (_, i) => rec(`host${i % 300}`, r() < 0.01 ? 30 + r() : r() * 4, i));
  const run = (young: 'none' | 'allKeys') => lastValueFrom(from(input).pipe(anomalies({ quantile: 0.99, window: 200, warmup: 20, young }), toArray()));
  const [alone, pooled] = await Promise.all([run('none'), run('allKeys')]);
  t.is(alone.filter((o) => o.anomaly).length, 0, 'per key only: never out of warm-up, never flagged');
  pooled.forEach((o, i) => {
    const all = input.slice(0, i).slice(-200).map((x) => x.surprisal);
    if (all.length < 20) {
      t.true(Number.isNaN(o.threshold));
      return;
    }
    const th = quantileOf(all, 0.99);
    t.true(Math.abs(o.threshold - th) < 1e-12, `record ${i}`);
    t.is(o.anomaly, o.surprisal > th);
  });
  const spikes = pooled.filter((o, i) => input[i]!.surprisal >= 30 && i >= 200);
  t.true(spikes.length >= 5, `${spikes.length} spikes`);
  t.true(spikes.filter((o) => o.anomaly).length >= spikes.length - 2, 'spikes flagged (a spike right after another may sit under a quantile the first raised)');
  // A key past its warm-up uses its own window, not the pool.
  const own = [...Array.from({ length: 30 }, (_, i) => rec('busy', 10 + (i % 3), i)), rec('busy', 12.5, 30)];
  const last = (await lastValueFrom(from([...input.slice(0, 300), ...own]).pipe(anomalies({ quantile: 0.99, window: 200, warmup: 20, young: 'allKeys' }), toArray()))).at(-1)!;
  t.true(Math.abs(last.threshold - quantileOf(own.slice(0, 30).map((x) => x.surprisal), 0.99)) < 1e-12);
  t.true(last.anomaly);
  t.throws(() => anomalies({ quantile: 0.9, young: 'some' as never }), { instanceOf: BadConfigError, message: /^young:/ });
});

test('quantileOf matches the definition on small cases', (t) => {
  t.is(quantileOf([3, 1, 2], 0.5), 2);
  t.is(quantileOf([1, 2, 3, 4], 0.5), 2.5);
  t.is(quantileOf([5], 0.9), 5);
  t.is(quantileOf([0, 10], 0.25), 2.5);
});

test('bounded state: keys beyond maxKeys evict the least recently seen', async (t) => {
  // With maxKeys 2, key 'a' is evicted by 'b' then 'c'; its window starts over.
  const input = [rec('a', 4), rec('b', 1), rec('c', 1), rec('a', 2)];
  const out = await lastValueFrom(from(input).pipe(perplexity({ window: 10, maxKeys: 2 }), toArray()));
  t.is(out[3]!.windowSize, 1);
  t.is(out[3]!.bitsPerToken, 2);
});

test('bad options and bad records are typed errors', async (t) => {
  t.throws(() => perplexity({ window: 0 }), { instanceOf: BadConfigError, message: /^window:/ });
  t.throws(() => anomalies({ quantile: 1 }), { instanceOf: BadConfigError, message: /^quantile:/ });
  t.throws(() => anomalies({ threshold: Number.NaN }), { instanceOf: BadConfigError, message: /^threshold:/ });
  t.throws(() => anomalies({ quantile: 0.9, window: 10, warmup: 11 }), { instanceOf: BadConfigError, message: /^warmup:/ });
  t.throws(() => anomalies({} as never), { instanceOf: BadConfigError, message: /^options:/ });
  await t.throwsAsync(lastValueFrom(from([rec('k', Number.NaN)]).pipe(perplexity())), { instanceOf: BadInputError, message: /^surprisal:/ });
  await t.throwsAsync(lastValueFrom(from([rec('k', Number.POSITIVE_INFINITY)]).pipe(anomalies({ threshold: 1 }))), { instanceOf: BadInputError, message: /^surprisal:/ });
});
