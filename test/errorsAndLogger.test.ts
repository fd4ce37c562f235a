import test from 'ava';
import {
  InfiniformerError,
  BadInputError,
  BadConfigError,
  ModelFileError,
  BackendError,
  ConnectorError,
  OverflowError,
  createLogger,
  setLogSink,
  setLogLevel,
  getLogLevel,
  type LogEntry,
} from '../src/index.js';

test('typed errors carry a stable code, a retriable flag, a cause, and the offending name', (t) => {
  const cause = new Error('disk full');
  const cases: [InfiniformerError, string, boolean][] = [
    [new BadInputError('X', 'contains NaN'), 'ERR_BAD_INPUT', false],
    [new BadConfigError('tau', 'must lie in (0, 1)'), 'ERR_BAD_CONFIG', false],
    [new ModelFileError('truncated weights', { cause }), 'ERR_MODEL_FILE', false],
    [new BackendError('no wasm'), 'ERR_BACKEND', false],
    [new ConnectorError('broker down', { cause }), 'ERR_CONNECTOR', true],
    [new ConnectorError('bad credentials', { retriable: false }), 'ERR_CONNECTOR', false],
    [new OverflowError('queue of key a is full'), 'ERR_OVERFLOW', true],
  ];
  for (const [err, code, retriable] of cases) {
    t.true(err instanceof InfiniformerError);
    t.true(err instanceof Error);
    t.is(err.code, code);
    t.is(err.retriable, retriable);
    t.is(err.name, err.constructor.name);
  }
  t.is(cases[2]![0].cause, cause);
  t.is((cases[0]![0] as BadInputError).argument, 'X');
  t.is(cases[0]![0].message, 'X: contains NaN');
  t.is((cases[1]![0] as BadConfigError).option, 'tau');
});

test('logger: namespaces, levels, structured fields, injectable sink', (t) => {
  const seen: LogEntry[] = [];
  const previousSink = setLogSink((e) => seen.push(e));
  const previousLevel = getLogLevel();
  try {
    setLogLevel('info');
    const log = createLogger('infiniformer').child('kafka').child('source');
    log.debug('hidden');
    log.info('partition paused', { partition: 3, inFlight: 1000 });
    log.error('boom');
    setLogLevel('nothing');
    log.error('silenced');
    t.deepEqual(seen.map((e) => [e.level, e.namespace, e.message]), [
      ['info', 'infiniformer:kafka:source', 'partition paused'],
      ['error', 'infiniformer:kafka:source', 'boom'],
    ]);
    t.deepEqual(seen[0]!.fields, { partition: 3, inFlight: 1000 });
    t.false(Number.isNaN(Date.parse(seen[0]!.timestamp)));
  } finally {
    setLogSink(previousSink);
    setLogLevel(previousLevel);
  }
});
