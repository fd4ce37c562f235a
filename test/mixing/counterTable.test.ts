import test from 'ava';
import { CounterTable } from '../../src/mixing/counterTable.js';

/** Two context hashes with the same slot pair (same low bits) and different check bytes. */
const SAME_PAIR_A = 0x01000004;
const SAME_PAIR_B = 0x7f000004;

test('a counter learns the running frequency 1/(n + 1.5) until its limit, then keeps fading', (t) => {
  const c = new CounterTable(8, 4);
  // From 0.5: after a 1 with rate 1/1.5 -> 0.5 + 0.5 * 2/3 = 0.8333.
  c.update(3, 1);
  t.true(Math.abs(c.p(3) - 0.8333) < 1e-3, String(c.p(3)));
  for (let i = 0; i < 50; i++) c.update(3, 0);
  // Rate frozen at 1/(4 + 1.5): p after many zeros decays geometrically toward 0, never reaching it.
  t.true(c.p(3) > 0 && c.p(3) < 1e-3, String(c.p(3)));
  t.is(c.counts[3], 4);
});

test('checked table: colliding contexts never read each other, and the less used slot of the pair is replaced', (t) => {
  const c = new CounterTable(8, 30, true);
  t.is(c.find(SAME_PAIR_A), -1, 'nothing claimed yet');
  const a = c.claim(SAME_PAIR_A);
  for (let i = 0; i < 10; i++) c.update(a, 1);
  t.is(c.find(SAME_PAIR_A), a);
  t.is(c.find(SAME_PAIR_B), -1, 'B has the same slot pair but another check: no statistics');
  const b = c.claim(SAME_PAIR_B);
  t.is(b, a ^ 1, 'B takes the other slot of the pair, A (10 updates) keeps its own');
  t.is(c.counts[b], 0);
  t.is(c.p(b), (32768 + 0.5) / 65536);
  c.update(b, 0);
  t.is(c.find(SAME_PAIR_A), a);
  t.is(c.counts[a], 10, 'A untouched by B');
  // A third context of the same pair evicts the less used one (B, 1 update), not A.
  const third = 0x33000004;
  const d = c.claim(third);
  t.is(d, b);
  t.is(c.find(SAME_PAIR_B), -1);
  t.is(c.find(SAME_PAIR_A), a);
});

test('random contexts: a checked table gives a context only its own counts (brute-force reference)', (t) => {
  // Reference: a Map from hash to its update count. Every found slot's count must equal the
  // reference count of the hash that owns it, capped by the limit.
  const c = new CounterTable(6, 255, true);
  const ref = new Map<number, number>();
  let x = 12345;
  for (let i = 0; i < 5000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0;
    const h = (x >>> 0) % 40; // 40 contexts in 64 slots: collisions happen
    const hash = Math.imul(h + 1, 0x9e3779b1);
    const slot = c.claim(hash);
    const fresh = c.counts[slot] === 0;
    if (fresh) ref.set(hash, 0); // claimed anew (or first time): the reference restarts too
    c.update(slot, i & 1);
    ref.set(hash, Math.min(255, ref.get(hash)! + 1));
    const found = c.find(hash);
    t.is(found, slot);
    t.is(c.counts[found], ref.get(hash));
  }
});
