import test from 'ava';
import { BadConfigError, BadInputError, ContextMixer } from '../../src/index.js';

/** Deterministic pseudo-random bytes. */
function randomBytes(n: number, seed: number): Uint8Array {
  let s = seed >>> 0;
  return Uint8Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s >>> 24;
  });
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const SMALL = { tableBits: 16, historyBits: 16, matchIndexBits: 12 };

test('the coded probability of a byte is its entry in the full distribution, which sums to 1', (t) => {
  const cm = new ContextMixer(SMALL);
  const s = cm.createStream();
  const text = enc('GET /index.html 200\nGET /index.html 200\nGET /about.html 404\n'.repeat(3));
  const net = new Float32Array(256).map((_, i) => (i === 0x47 ? 5 : 1));
  let worstSum = 0;
  let worstCode = 0;
  text.forEach((b, i) => {
    const network = i % 2 === 0 ? net : undefined;
    const dist = cm.distribution(s, network);
    worstSum = Math.max(worstSum, Math.abs(dist.reduce((a, x) => a + x, 0) - 1));
    const bits = cm.code(s, b, network);
    worstCode = Math.max(worstCode, Math.abs(bits + Math.log2(dist[b]!)));
  });
  t.log(`worst |sum - 1| ${worstSum.toExponential(2)}, worst |code + log2 p| ${worstCode.toExponential(2)}`);
  t.true(worstSum < 1e-9);
  t.true(worstCode < 1e-9);
});

test('a constant stream costs almost nothing; random bytes cost at least their entropy', (t) => {
  const cm = new ContextMixer(SMALL);
  const s = cm.createStream();
  let constant = 0;
  for (let i = 0; i < 20_000; i++) constant += cm.code(s, 0x61);
  const r = new ContextMixer(SMALL);
  const rs = r.createStream();
  const bytes = randomBytes(40_000, 7);
  let random = 0;
  for (const b of bytes) random += r.code(rs, b);
  t.log(`constant ${(constant / 20_000).toFixed(4)} bits/byte, random ${(random / bytes.length).toFixed(3)} bits/byte`);
  t.true(constant / 20_000 < 0.02);
  // No predictor beats 8 bits/byte on uniform random bytes in expectation; a good one loses little.
  t.true(random / bytes.length > 7.95);
  t.true(random / bytes.length < 8.2);
});

test('copies: an unseen random line costs < 0.5 bits/byte on its 2nd and 3rd occurrence', (t) => {
  const cm = new ContextMixer();
  const s = cm.createStream();
  const code = (line: Uint8Array): number => line.reduce((a, b) => a + cm.code(s, b), 0) / line.length;
  // Some ordinary log lines first, so the line is not the whole history.
  for (let i = 0; i < 50; i++) code(enc(`2026-12-06 03:${String(i % 60).padStart(2, '0')}:00 host cron[${100 + i}]: job ${i} done\n`));
  const printable = randomBytes(80, 99).map((b) => 33 + (b % 94));
  const line = new Uint8Array([...printable, 10]);
  const first = code(line);
  code(enc('2026-12-06 04:00:00 host sshd[1]: Accepted publickey for root\n'));
  const second = code(line);
  code(enc('2026-12-06 04:00:01 host sshd[2]: session opened\n'));
  const third = code(line);
  t.log(`random line: ${first.toFixed(2)}, ${second.toFixed(3)}, ${third.toFixed(3)} bits/byte`);
  t.true(first > 5);
  t.true(second < 0.5);
  t.true(third < 0.5);
});

test('a line repeated with one field changed costs little outside that field', (t) => {
  const cm = new ContextMixer();
  const s = cm.createStream();
  const words = randomBytes(120, 5).map((b) => 97 + (b % 26));
  const line = (field: string): Uint8Array => enc(`${new TextDecoder().decode(words.subarray(0, 60))} id=${field} ${new TextDecoder().decode(words.subarray(60))}\n`);
  for (const b of line('1111')) cm.code(s, b);
  const changed = line('9372');
  const at = new TextDecoder().decode(changed).indexOf('id=') + 3;
  const costs = Array.from(changed, (b) => cm.code(s, b));
  const outside = [...costs.slice(0, at), ...costs.slice(at + 5)];
  const field = costs.slice(at, at + 4);
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  t.log(`outside the field ${mean(outside).toFixed(3)} bits/byte (${outside.length} bytes), the field ${mean(field).toFixed(2)}`);
  t.true(mean(outside) < 0.35);
  t.true(mean(field) > 2);
});

test('a good network is trusted and a misleading one is ignored', (t) => {
  const bytes = randomBytes(30_000, 3);
  const honest = (b: number): Float32Array => new Float32Array(256).fill(0.1 / 255).fill(0.9, b, b + 1);
  // Confident and wrong, and independent of the byte it predicts (a fixed other sequence).
  const decoys = randomBytes(bytes.length, 4);
  let at = 0;
  const liar = (): Float32Array => {
    const d = decoys[at++ % decoys.length]!;
    return new Float32Array(256).fill(0.1 / 255).fill(0.9, d, d + 1);
  };
  const run = (net: (b: number) => Float32Array): number => {
    const cm = new ContextMixer(SMALL);
    const s = cm.createStream();
    let bits = 0;
    for (const b of bytes) bits += cm.code(s, b, net(b));
    return bits / bytes.length;
  };
  const good = run(honest);
  const bad = run(liar);
  // The honest network alone costs -log2 0.9 = 0.152 bits/byte on every byte.
  t.log(`honest network ${good.toFixed(3)} bits/byte (alone 0.152), liar ${bad.toFixed(3)}`);
  t.true(good < 0.3);
  t.true(bad > 7.95 && bad < 8.2);
});

test('the same bytes give the same bits (replayable)', (t) => {
  const text = enc('abc def abc def abd\n'.repeat(20));
  const run = (): number[] => {
    const cm = new ContextMixer(SMALL);
    const s = cm.createStream();
    return Array.from(text, (b) => cm.code(s, b));
  };
  t.deepEqual(run(), run());
});

test('streams share what is learned but not their history', (t) => {
  const cm = new ContextMixer(SMALL);
  const a = cm.createStream();
  const b = cm.createStream();
  const line = enc('kernel: usb 1-1: new high-speed USB device number 2 using xhci_hcd\n');
  for (let i = 0; i < 5; i++) for (const x of line) cm.code(a, x);
  // Stream b never saw the line, but the shared n-gram statistics did.
  const cost = line.reduce((acc, x) => acc + cm.code(b, x), 0) / line.length;
  const fresh = new ContextMixer(SMALL);
  const f = fresh.createStream();
  const freshCost = line.reduce((acc, x) => acc + fresh.code(f, x), 0) / line.length;
  t.log(`other stream ${cost.toFixed(3)} bits/byte vs a fresh mixer ${freshCost.toFixed(3)}`);
  t.true(cost < freshCost / 2);
  t.is(b.history.length, line.length);
});

test('bad bytes, options and network inputs are typed errors', (t) => {
  const cm = new ContextMixer(SMALL);
  const s = cm.createStream();
  for (const bad of [256, -1, 1.5, Number.NaN]) t.throws(() => cm.code(s, bad), { instanceOf: BadInputError });
  t.throws(() => cm.code(s, 1, new Float32Array(10)), { instanceOf: BadInputError, message: /256/ });
  t.throws(() => new ContextMixer({ tableBits: 40 }), { instanceOf: BadConfigError });
  t.throws(() => new ContextMixer({ counterLimit: 0 }), { instanceOf: BadConfigError });
  t.throws(() => new ContextMixer({ mixerRate: Number.NaN }), { instanceOf: BadConfigError });
  t.throws(() => new ContextMixer({ matchMinLength: 2.5 }), { instanceOf: BadConfigError });
  // A failed call changed nothing: the stream goes on.
  t.true(Number.isFinite(cm.code(s, 65)));
});
