// Its own file (own process): the backend is chosen here for the first time.
import test from 'ava';
import { initBackend, setLogSink, setLogLevel, type LogEntry } from '../src/index.js';

test('the backend choice is logged once through the library logger, with what was asked for', async (t) => {
  const seen: LogEntry[] = [];
  setLogSink((e) => seen.push(e));
  setLogLevel('info');
  const first = await initBackend();
  const second = await initBackend();
  t.is(first, second);
  const choices = seen.filter((e) => e.message === 'backend selected');
  t.is(choices.length, 1);
  t.is(choices[0]!.namespace, 'infiniformer:backend');
  t.deepEqual(choices[0]!.fields, { backend: first, requested: process.env['INFINIFORMER_BACKEND'] || 'auto' });
  // An explicit cpu request switches and is logged again.
  t.is(await initBackend({ backend: 'cpu' }), 'cpu');
  t.is(seen.filter((e) => e.message === 'backend selected').length, 2);
});
