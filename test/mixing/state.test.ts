import test from 'ava';
import { BadInputError, ModelFileError } from '../../src/errors.js';
import { ContextMixer, type StreamContext } from '../../src/mixing/index.js';
import { lcg } from '../helpers/reference64.js';

/** Log-like text: repeated lines with changing numbers (exercises n-grams, the match model, columns, fields). */
function logText(n: number, seed: number): Uint8Array {
  const r = lcg(seed);
  const paths = ['/index.html', '/api/v1/users', '/static/app.js', '/login'];
  let s = '';
  while (s.length < n) s += `2024-05-0${1 + Math.floor(r() * 9)} GET ${paths[Math.floor(r() * 4)]} ${r() < 0.9 ? 200 : 404} ${Math.floor(r() * 5000)}\n`;
  return new TextEncoder().encode(s.slice(0, n));
}

/** A made-up network distribution for position `i` of a stream: a sharp guess at the true next byte half the time. */
function network(text: Uint8Array, i: number): Float32Array | undefined {
  if (i % 3 === 2) return undefined;
  const p = new Float32Array(256).fill(0.2 / 255);
  p[(text[i]! + (i % 2)) & 255] = 0.8;
  return p;
}

function codeRange(m: ContextMixer, s: StreamContext, text: Uint8Array, from: number, to: number): number[] {
  const bits: number[] = [];
  for (let i = from; i < to; i++) bits.push(m.code(s, text[i]!, network(text, i)));
  return bits;
}

/** Byte equality of two (large) arrays; ava's deepEqual walks them element by element, far too slowly for megabytes. */
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));

const SMALL = { tableBits: 16, historyBits: 14, matchIndexBits: 12 };

for (const [name, opts, n] of [
  ['history not yet full (partial ring, sparse index)', SMALL, 3000],
  ['history wrapped around (1 KiB ring)', { ...SMALL, historyBits: 10 }, 3000],
] as const) {
  test(`save + restore after N bytes, then N more: bit-exact with an uninterrupted run; ${name}`, (t) => {
    const text = logText(2 * n, 7);
    const a = new ContextMixer(opts);
    const sa = a.createStream();
    const bitsA = codeRange(a, sa, text, 0, 2 * n);

    const b0 = new ContextMixer(opts);
    const sb0 = b0.createStream();
    codeRange(b0, sb0, text, 0, n);
    const mixerBytes = b0.saveState();
    const streamBytes = b0.saveStream(sb0);
    const b = ContextMixer.restore(mixerBytes);
    const sb = b.restoreStream(streamBytes);
    t.deepEqual(b.options, b0.options);
    const bitsB = codeRange(b, sb, text, n, 2 * n);

    t.deepEqual(bitsB, bitsA.slice(n));
    t.deepEqual(b.distribution(sb, network(text, 0)), a.distribution(sa, network(text, 0)));
    // Everything learned afterwards is the same too: the saved bytes are identical.
    t.true(sameBytes(b.saveState(), a.saveState()));
    t.true(sameBytes(b.saveStream(sb), a.saveStream(sa)));
  });
}

test('two interleaved streams on one mixer continue exactly after a restore, pending distributions included', (t) => {
  const texts = [logText(4000, 1), logText(4000, 2)];
  const r = lcg(5);
  const order = Array.from({ length: 8000 }, () => (r() < 0.5 ? 0 : 1));
  const run = (m: ContextMixer, streams: StreamContext[], pos: number[], steps: number[]): number[] =>
    steps.map((k) => {
      const i = pos[k]!++;
      return i < 4000 ? m.code(streams[k]!, texts[k]![i]!, network(texts[k]!, i)) : NaN;
    });
  const a = new ContextMixer(SMALL);
  const all = run(a, [a.createStream(), a.createStream()], [0, 0], order);

  const b0 = new ContextMixer(SMALL);
  const s0 = [b0.createStream(), b0.createStream()];
  const pos = [0, 0];
  run(b0, s0, pos, order.slice(0, 3500));
  const pendingOf = (k: number): Float32Array => Float32Array.from({ length: 256 }, (_, j) => (j + k + pos[k]!) % 7);
  const saved = { mixer: b0.saveState(), streams: s0.map((s, k) => b0.saveStream(s, pendingOf(k))) };
  const b = ContextMixer.restore(saved.mixer);
  const restored = saved.streams.map((x) => b.readStream(x));
  restored.forEach((x, k) => t.deepEqual(Array.from(x.pending!), Array.from(pendingOf(k))));
  const rest = run(b, restored.map((x) => x.stream), pos, order.slice(3500));
  t.deepEqual(rest, all.slice(3500));
  t.true(sameBytes(b.saveState(), a.saveState()));
  t.is(b.readStream(b.saveStream(restored[0]!.stream)).pending, undefined);
});

function expectCorrupt(t: import('ava').ExecutionContext, f: () => unknown, message: RegExp): void {
  const e = t.throws(f, { instanceOf: ModelFileError });
  t.regex(e?.message ?? '', message);
}

test('corrupt, truncated and foreign bytes are a ModelFileError that says so', (t) => {
  const m = new ContextMixer(SMALL);
  const s = m.createStream();
  codeRange(m, s, logText(500, 3), 0, 500);
  const good = m.saveState();
  const stream = m.saveStream(s);
  const r = lcg(9);
  for (let trial = 0; trial < 20; trial++) {
    const bad = good.slice();
    const at = Math.floor(r() * bad.length);
    bad[at] = bad[at]! ^ (1 + Math.floor(r() * 255));
    expectCorrupt(t, () => ContextMixer.restore(bad), at < 4 ? /magic/ : at < 8 ? /version/ : /checksum/);
  }
  expectCorrupt(t, () => ContextMixer.restore(good.subarray(0, good.length - 1000)), /checksum mismatch \(corrupt or truncated\)/);
  expectCorrupt(t, () => ContextMixer.restore(good.subarray(0, 10)), /truncated/);
  expectCorrupt(t, () => ContextMixer.restore(stream), /bad magic number/);
  expectCorrupt(t, () => m.restoreStream(good), /bad magic number/);
  expectCorrupt(t, () => ContextMixer.restore(new TextEncoder().encode('{"not": "a mixer state"}')), /bad magic number/);
  const flipped = stream.slice();
  flipped[40] = flipped[40]! ^ 0x10;
  expectCorrupt(t, () => m.restoreStream(flipped), /checksum/);
  // A stream made with other options than the mixer's.
  const other = new ContextMixer({ ...SMALL, historyBits: 12 });
  expectCorrupt(t, () => other.restoreStream(stream), /historyBits 14, this mixer has 12/);
  t.throws(() => other.saveStream(s), { instanceOf: BadInputError, message: /other historyBits/ });
  // The good bytes still restore (nothing above mutated them).
  t.true(sameBytes(ContextMixer.restore(good).saveState(), good));
});

test('default options: size of the saved state and save/restore time', (t) => {
  const m = new ContextMixer();
  const s = m.createStream();
  codeRange(m, s, logText(20_000, 4), 0, 20_000);
  let t0 = performance.now();
  const bytes = m.saveState();
  const saveMs = performance.now() - t0;
  t0 = performance.now();
  const back = ContextMixer.restore(bytes);
  const restoreMs = performance.now() - t0;
  // Counters 2^22 x 4 B (probability, count, check byte), order0 / match map 256 x 3 B, confidence 2^14 x 3 B,
  // first-layer mixers 19 inputs x (128 + 256 + 2048) sets x 4 B, final mixer 3 x 512 x 4 B, APMs (256 + 2 x 65536) x 33 knots x 4 B.
  const arrays = 4 * 2 ** 22 + 2 * 3 * 256 + 3 * 2 ** 14 + 19 * (128 + 256 + 2048) * 4 + 3 * 512 * 4 + (256 + 2 * 65536) * 33 * 4;
  t.true(bytes.length >= arrays && bytes.length < arrays + 4096, `${bytes.length} vs ${arrays}`);
  t.true(sameBytes(back.saveState(), bytes));
  t0 = performance.now();
  const sb = m.saveStream(s);
  const streamSaveMs = performance.now() - t0;
  t0 = performance.now();
  m.restoreStream(sb);
  const streamRestoreMs = performance.now() - t0;
  t.log(`mixer state ${bytes.length} B (${(bytes.length / 2 ** 20).toFixed(2)} MiB): save ${saveMs.toFixed(0)} ms, restore ${restoreMs.toFixed(0)} ms`);
  t.log(`stream after 20,000 bytes: ${sb.length} B, save ${streamSaveMs.toFixed(1)} ms, restore ${streamRestoreMs.toFixed(1)} ms`);
  // The stream holds 20,000 history bytes and at most 20,000 index entries (sparse: 8 B each) plus hashes and header.
  t.true(sb.length > 20_000 && sb.length < 20_000 + 8 * 20_000 + 2048);
  t.true(saveMs + restoreMs < 10_000);
});
