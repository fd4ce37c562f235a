// The adaptive order-k byte model against analytic limits (constant and random streams), exact
// normalisation, and an independent brute-force implementation in exact rational arithmetic.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BadConfigError, BadInputError } from '../../src/errors.js';
import { createRng } from '../../src/memory/rng.js';
import { OrderNByteModel, orderNCodeLength } from '../../src/baselines/orderN.js';

function randomBytes(n: number, seed: number): Uint8Array {
  const rng = createRng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rng.next() * 256);
  return out;
}

test('a constant stream: the cost per byte falls towards 0 (O(1/n)), the total stays ~16 bits', (t) => {
  const r = orderNCodeLength(new Uint8Array(100_000).fill(97));
  const mean = (from: number, to: number): number => r.perByte.subarray(from, to).reduce((s, b) => s + b, 0) / (to - from);
  t.is(r.perByte[0], 8); // the first byte: uniform over 256
  t.true(mean(1000, 2000) < 1e-3, `${mean(1000, 2000)}`);
  t.true(mean(50_000, 100_000) < 1e-5, `${mean(50_000, 100_000)}`);
  t.true(mean(50_000, 100_000) < mean(10_000, 20_000) / 4);
  // Bytes 1 and 2 cost 8 bits each: with one (context, byte) pair seen once, Ney's D is 1 (no
  // trust in a single count). From the third byte on the pair has count >= 2 and D drops.
  t.is(r.perByte[1], 8);
  t.true(r.bits - 16 < 0.5, `${r.bits}`);
  t.log(`100,000 x 'a': ${r.bits.toFixed(3)} bits in all`);
});

test('uniformly random bytes cost at least ~7.9 bits per byte (nothing to learn; escapes cost a little more than 8)', (t) => {
  const r = orderNCodeLength(randomBytes(1 << 18, 7));
  t.true(r.bitsPerByte >= 7.9, `${r.bitsPerByte}`);
  t.true(r.bitsPerByte < 9, `${r.bitsPerByte}`);
  t.log(`random: ${r.bitsPerByte.toFixed(4)} bits/byte`);
});

test('the next-byte distribution sums to 1 over the 256 bytes, in every order and context', (t) => {
  for (const order of [0, 1, 2, 3, 5]) {
    const model = new OrderNByteModel({ order, discount: 0.37 });
    // Text with repeats (deep, seen contexts) then random bytes (fresh and sparse contexts).
    const data = new Uint8Array([...new TextEncoder().encode('abcabcabd abcab '.repeat(20)), ...randomBytes(3000, order)]);
    for (let i = 0; i < data.length; i++) {
      if (i % 97 === 0 || i < 40) {
        const p = model.distribution();
        const sum = p.reduce((s, v) => s + v, 0);
        t.true(Math.abs(sum - 1) < 1e-12, `order ${order} at ${i}: sum ${sum}`);
        t.true(p.every((v) => v > 0));
      }
      model.update(data[i]!);
    }
  }
});

// Exact rationals: p_j = (max(c - D, 0) + D d p_{j-1}) / n, counts found by scanning the prefix
// (no hash tables, no incremental state), D = 1/2 or Ney's n1 / (n1 + 2 n2) clamped to [1/20, 1].
interface Q {
  num: bigint;
  den: bigint;
}
const less = (a: Q, b: Q): boolean => a.num * b.den < b.num * a.den;

function bruteDiscount(bytes: Uint8Array, i: number, j: number, adaptive: boolean): Q {
  if (!adaptive) return { num: 1n, den: 2n };
  const pairs = new Map<string, number>();
  for (let t = j; t < i; t++) {
    const key = `${Array.from(bytes.subarray(t - j, t)).join(',')}>${bytes[t]}`;
    pairs.set(key, (pairs.get(key) ?? 0) + 1);
  }
  const n1 = [...pairs.values()].filter((c) => c === 1).length;
  const n2 = [...pairs.values()].filter((c) => c === 2).length;
  if (n1 + n2 === 0) return { num: 1n, den: 2n };
  const d: Q = { num: BigInt(n1), den: BigInt(n1 + 2 * n2) };
  if (less(d, { num: 1n, den: 20n })) return { num: 1n, den: 20n };
  return d;
}

function bruteProbability(bytes: Uint8Array, i: number, x: number, k: number, adaptive: boolean): Q {
  let p: Q = { num: 1n, den: 256n };
  for (let j = 0; j <= Math.min(k, i); j++) {
    const counts = new Map<number, number>();
    for (let t = j; t < i; t++) {
      let same = true;
      for (let m = 1; m <= j; m++) if (bytes[t - m] !== bytes[i - m]) same = false;
      if (same) counts.set(bytes[t]!, (counts.get(bytes[t]!) ?? 0) + 1);
    }
    const n = [...counts.values()].reduce((s, c) => s + c, 0);
    if (n === 0) continue;
    const c = BigInt(counts.get(x) ?? 0);
    const d = BigInt(counts.size);
    const { num: u, den: v } = bruteDiscount(bytes, i, j, adaptive);
    // (max(c - u/v, 0) + (u/v) d a/b) / n = (max(c v - u, 0) b + u d a) / (v b n)
    const over = c * v - u > 0n ? c * v - u : 0n;
    p = { num: over * p.den + u * d * p.num, den: v * p.den * BigInt(n) };
  }
  return p;
}

test('agrees with a brute-force implementation in exact rationals; the exact distribution sums to exactly 1', (t) => {
  const bytes = new TextEncoder().encode('to be or not to be, that is\x00\xff the question: to be\n');
  for (const adaptive of [false, true]) {
    for (const k of [0, 1, 2, 3]) {
      const options = { order: k, discount: adaptive ? ('adaptive' as const) : 0.5 };
      const r = orderNCodeLength(bytes, options);
      const model = new OrderNByteModel(options);
      let total = 0;
      for (let i = 0; i < bytes.length; i++) {
        let sum: Q = { num: 0n, den: 1n };
        const dist = model.distribution();
        for (let x = 0; x < 256; x++) {
          const q = bruteProbability(bytes, i, x, k, adaptive);
          sum = { num: sum.num * q.den + q.num * sum.den, den: sum.den * q.den };
          const exact = Number(q.num) / Number(q.den);
          t.true(Math.abs(dist[x]! - exact) <= 1e-13 * exact, `k ${k}, byte ${i}, x ${x}: ${dist[x]} vs ${exact}`);
          if (x === bytes[i]) total += -Math.log2(exact);
        }
        t.is(sum.num, sum.den, `k ${k}, byte ${i}: the exact probabilities sum to 1`);
        model.update(bytes[i]!);
      }
      t.true(Math.abs(r.bits - total) < 1e-9 * total, `k ${k}: ${r.bits} vs ${total}`);
      const perByteSum = r.perByte.reduce((s, b) => s + b, 0);
      t.true(Math.abs(perByteSum - total) < 1e-5 * total); // perByte is float32
    }
  }
});

test('higher orders help on real text; empty input costs 0 bits; bad options and inputs are typed errors', (t) => {
  const gcc = new Uint8Array(readFileSync(fileURLToPath(new URL('../../data/gcc-12-test-results/gcc-heldout.txt', import.meta.url)))).subarray(0, 50_000);
  const bpb = [0, 1, 2].map((order) => orderNCodeLength(gcc, { order }).bitsPerByte);
  t.true(bpb[0]! > bpb[1]! && bpb[1]! > bpb[2]!, bpb.join(' '));
  const empty = orderNCodeLength(new Uint8Array(0));
  t.is(empty.bits, 0);
  t.is(empty.perByte.length, 0);
  t.true(Number.isNaN(empty.bitsPerByte));
  t.throws(() => new OrderNByteModel({ order: 6 }), { instanceOf: BadConfigError });
  t.throws(() => new OrderNByteModel({ order: 1.5 }), { instanceOf: BadConfigError });
  t.throws(() => new OrderNByteModel({ discount: 0 }), { instanceOf: BadConfigError });
  t.throws(() => orderNCodeLength([1, 2] as unknown as Uint8Array), { instanceOf: BadInputError });
});
