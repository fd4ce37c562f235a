// Its own process: the first, automatic backend choice (issue 6: native when it is installed).
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { initBackend, setLogLevel, BadConfigError } from '../../src/index.js';

setLogLevel('warn');
delete process.env['INFINIFORMER_BACKEND']; // the automatic choice is under test, not the override

test.serial('auto picks native tensorflow for segments (the default workload) and training', async (t) => {
  t.is(await initBackend(), 'tensorflow');
  t.is(tf.getBackend(), 'tensorflow');
  t.is(await initBackend({ workload: 'training' }), 'tensorflow');
});

test.serial('an unknown workload is a typed config error naming the option', async (t) => {
  const err = await t.throwsAsync(() => initBackend({ workload: 'inference' as 'tokens' }), { instanceOf: BadConfigError });
  t.is(err?.option, 'workload');
});
