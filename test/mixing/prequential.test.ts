import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { BadInputError, ContextMixer, InfiniFormer, evaluate, frozenScorer, scorePrequential, tokenStreamSource } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { TINY } from '../model/helpers.js';

test.before(async () => {
  await backendReady;
});

const text = new TextEncoder().encode('Dec  6 03:00:01 host CRON[1201]: (root) CMD (run-parts /etc/cron.hourly)\n'.repeat(6));

test('the network alone, prequentially, costs what evaluate() measures on the same bytes', (t) => {
  // vocabSize 256: the softmax over bytes is the model's own, so both paths score the same distribution.
  const model = InfiniFormer.create({ ...TINY, vocabSize: 256 }, { seed: 3 });
  const L = model.config.segmentLength;
  const segments = Math.floor((text.length - 1) / L);
  const direct = evaluate(model, tokenStreamSource(text, { numStreams: 1, segmentLength: L }), segments);
  const net = frozenScorer(model);
  const r = scorePrequential(text, { network: net, mixer: false });
  net.dispose();
  // evaluate() scores bytes 1 .. segments * L (each predicted from the bytes before it).
  let bits = 0;
  for (let i = 1; i <= segments * L; i++) bits += r.bits[i]!;
  const want = (direct.crossEntropy * direct.count) / Math.LN2;
  t.log(`prequential ${bits.toFixed(4)} bits vs evaluate ${want.toFixed(4)} bits over ${direct.count} bytes`);
  t.is(direct.count, segments * L);
  t.true(Math.abs(bits - want) / want < 1e-5);
  t.is(r.bits[0], 8); // the first byte under the uniform guess
  model.dispose();
});

test('mixing the network in costs no more than the mixer alone on a repetitive log, and no tensor leaks', (t) => {
  const model = InfiniFormer.create({ ...TINY, vocabSize: 260 }, { seed: 3 });
  const before = tf.memory().numTensors;
  const net = frozenScorer(model);
  const both = scorePrequential(text, { network: net, mixer: new ContextMixer() });
  net.dispose();
  t.is(tf.memory().numTensors, before);
  const alone = scorePrequential(text, { mixer: new ContextMixer() });
  t.log(`mixer ${alone.bitsPerByte.toFixed(3)}, mixer + untrained network ${both.bitsPerByte.toFixed(3)}, network alone ${both.networkBitsPerByte!.toFixed(3)} bits/byte`);
  t.true(both.networkBitsPerByte! > 6); // an untrained network knows nothing
  t.true(both.bitsPerByte < alone.bitsPerByte + 0.1);
  t.true(alone.bitsPerByte < 2.5);
  model.dispose();
});

test('prequential scoring rejects empty input and a call with no predictor', (t) => {
  t.throws(() => scorePrequential(new Uint8Array(0), {}), { instanceOf: BadInputError });
  t.throws(() => scorePrequential(text, { mixer: false }), { instanceOf: BadInputError, message: /network, a mixer/ });
  const model = InfiniFormer.create({ ...TINY, vocabSize: 260 }, { seed: 3 });
  const net = frozenScorer(model);
  t.throws(() => net.read(new Int32Array(0)), { instanceOf: BadInputError });
  t.throws(() => net.read(new Int32Array(model.config.segmentLength + 1)), { instanceOf: BadInputError });
  net.dispose();
  model.dispose();
});
