// perStreamBits (the per-stream bits per byte of docs/results.md's LM table) against evaluate():
// a stream of 1 + kL bytes read alone gives evaluate's bits per byte; run beside a longer stream
// it gives the same figure (the streams do not leak into each other, the padding after its end
// is not scored). meanCi against a t-interval worked by hand.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { InfiniFormer, evaluate, tokenStreamSource } from '../../src/index.js';
import { meanCi, perStreamBits } from '../../bin/cli/evaluation.js';
import { backendReady } from '../helpers/backend.js';
import { GCC_SLICE, TINY_CONFIG } from './helpers.js';

test.before(async () => {
  await backendReady;
});

test('perStreamBits equals evaluate() on a lone stream and is unchanged beside a longer one', (t) => {
  const model = InfiniFormer.create({ ...TINY_CONFIG, sticky: true }, { seed: 5 });
  const L = model.config.segmentLength;
  const text = new Uint8Array(readFileSync(GCC_SLICE));
  const short = text.subarray(0, 1 + 6 * L);
  const long = text.subarray(5000, 5000 + 1 + 9 * L + 7);
  const want = evaluate(model, tokenStreamSource(short, { numStreams: 1, segmentLength: L }), 6).bitsPerToken;
  const [alone] = perStreamBits(model, [{ name: 'short', bytes: short }], 0);
  t.true(Math.abs(alone! - want) < 1e-5, `perStreamBits ${alone} vs evaluate ${want}`);
  const [beside, other] = perStreamBits(model, [{ name: 'short', bytes: short }, { name: 'long', bytes: long }], 0);
  t.true(Math.abs(beside! - alone!) < 1e-5, `beside a longer stream ${beside} vs alone ${alone}`);
  t.true(other! > 0 && Number.isFinite(other!));
  model.dispose();
});

test('meanCi: mean and 95 % t half-width (1..5: 3 ± 2.776 * sqrt(2.5) / sqrt(5))', (t) => {
  const r = meanCi([1, 2, 3, 4, 5]);
  t.is(r.mean, 3);
  t.true(Math.abs(r.half - (2.776 * Math.sqrt(2.5)) / Math.sqrt(5)) < 1e-12);
});
