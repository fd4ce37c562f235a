import test from 'ava';
import { from, lastValueFrom, Subject, toArray } from 'rxjs';
import { BadConfigError } from '../../src/index.js';
import { recordSurprisal, type TokenPrediction } from '../../operators/index.js';
import { lcg } from '../helpers/reference64.js';

const p = (key: string, surprisal: number, endOfRecord: boolean, source?: unknown): TokenPrediction => ({ key, index: 0, token: 0, surprisal, endOfRecord, source });

test('recordSurprisal: per key, the bits and mean surprisal of each record, emitted at its last token; NaN tokens left out', async (t) => {
  const out = await lastValueFrom(
    from([p('a', NaN, false), p('b', 2, false), p('a', 1, false), p('b', 4, true, 'b0'), p('a', 3, true, 'a0'), p('a', 0.5, true, 'a1')]).pipe(recordSurprisal(), toArray()),
  );
  t.deepEqual(
    out.map((r) => [r.key, r.source, r.tokens, r.scored, r.bits, r.surprisal]),
    [
      ['b', 'b0', 2, 2, 6, 3],
      ['a', 'a0', 3, 2, 4, 2],
      ['a', 'a1', 1, 1, 0.5, 0.5],
    ],
  );
});

test('recordSurprisal: over random interleavings the record bits add up to the token bits of every key (property)', async (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const r = lcg(seed);
    const keys = ['x', 'y', 'z'];
    const preds: TokenPrediction[] = [];
    const total = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const key = keys[Math.floor(r() * 3)]!;
      const s = r() < 0.05 ? NaN : r() * 8;
      if (Number.isFinite(s)) total.set(key, (total.get(key) ?? 0) + s);
      preds.push(p(key, s, r() < 0.2));
    }
    for (const k of keys) preds.push(p(k, 1, true));
    for (const k of keys) total.set(k, (total.get(k) ?? 0) + 1);
    const out = await lastValueFrom(from(preds).pipe(recordSurprisal(), toArray()));
    for (const k of keys) {
      const bits = out.filter((o) => o.key === k).reduce((a, o) => a + o.bits, 0);
      t.true(Math.abs(bits - total.get(k)!) < 1e-9, `seed ${seed} key ${k}`);
    }
    t.is(out.length, preds.filter((x) => x.endOfRecord).length);
  }
});

test('recordSurprisal: errors pass through; a bad maxKeys is a typed error', async (t) => {
  const s = new Subject<TokenPrediction>();
  const got: unknown[] = [];
  s.pipe(recordSurprisal()).subscribe({ next: (x) => got.push(x), error: (e: unknown) => got.push(e) });
  s.next(p('a', 1, true));
  s.error(new Error('upstream'));
  t.is(got.length, 2);
  t.is((got[1] as Error).message, 'upstream');
  t.throws(() => recordSurprisal({ maxKeys: 0 }), { instanceOf: BadConfigError, message: /^maxKeys: must be a positive integer/ });
});
