// Its own process: with the latency-bound token workload, auto prefers wasm even though the
// native backend is installed (docs/backends.md: wasm is faster per token for one stream).
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { initBackend, setLogLevel } from '../../src/index.js';
import { requireBothBackends } from './helpers.js';

setLogLevel('warn');
delete process.env['INFINIFORMER_BACKEND'];

test.serial('auto with workload "tokens" picks wasm; native stays available on request', async (t) => {
  t.is(await initBackend({ workload: 'tokens' }), 'wasm');
  t.is(tf.getBackend(), 'wasm');
  await requireBothBackends(); // fails loudly when native is missing
  t.is(await initBackend({ backend: 'tensorflow' }), 'tensorflow');
});
