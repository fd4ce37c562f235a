/** The changelog codec of the model's StreamState: exact round trip, typed errors, no leaked tensors. */
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { streamStateCodec } from '../../../connectors/kafka/index.js';
import { ModelFileError } from '../../../src/errors.js';
import { backendReady } from '../../helpers/backend.js';
import { createModel, tokenOf } from './fixtures/modelState.js';

test('decode(encode(state)) continues bit for bit; corrupt bytes are a ModelFileError; dispose frees every tensor', async (t) => {
  await backendReady;
  const model = createModel();
  const codec = streamStateCodec(model);
  // Warm the model's lazily built constants (kept for its lifetime) before counting.
  const warm = model.createState(0);
  for (let i = 0; i < 8 * 2 + 1; i++) model.step([warm], [tokenOf(i)]).dispose();
  codec.decode(codec.encode(warm)).dispose();
  warm.dispose();
  const before = tf.memory().numTensors;
  const live = model.createState(5);
  // 3 segments and 3 tokens: memory, sticky histogram and a half-filled segment are all in play.
  for (let i = 0; i < 8 * 3 + 3; i++) model.step([live], [tokenOf(i)]).dispose();
  const bytes = codec.encode(live);
  const restored = codec.decode(bytes);
  t.deepEqual(Buffer.from(codec.encode(restored)), Buffer.from(bytes), 'the restored state serialises to the same bytes');
  for (let i = 27; i < 40; i++) {
    const a = model.step([live], [tokenOf(i)]);
    const b = model.step([restored], [tokenOf(i)]);
    t.deepEqual(a.dataSync(), b.dataSync(), `token ${i}: identical logits`);
    tf.dispose([a, b]);
  }
  t.deepEqual(Buffer.from(codec.encode(restored)), Buffer.from(codec.encode(live)), 'and identical states after 13 more tokens');
  const corrupt = Uint8Array.from(bytes);
  corrupt[100] = (corrupt[100] as number) ^ 0xff;
  t.throws(() => codec.decode(corrupt), { instanceOf: ModelFileError, message: /checksum/ });
  t.throws(() => codec.decode(bytes.subarray(0, 50)), { instanceOf: ModelFileError });
  codec.dispose?.(live);
  codec.dispose?.(restored);
  t.is(tf.memory().numTensors, before, 'no tensor outlives the disposed states');
  model.dispose();
});
