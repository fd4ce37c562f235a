import test from 'ava';
import { DEFAULT_CONFIG, makeConfig, validateConfig, BadConfigError } from '../../src/index.js';

test('the default config is valid and sized for a small CPU', (t) => {
  const c = makeConfig();
  t.deepEqual({ ...c }, { ...DEFAULT_CONFIG });
  t.true(c.width >= 128 && c.width <= 256);
  t.true(c.numLayers >= 2 && c.numLayers <= 4);
  t.true(c.segmentLength >= 128 && c.segmentLength <= 256);
  t.is(c.numSamples, c.numBasis);
  t.true(Object.isFrozen(c));
});

const bad: [string, Record<string, unknown>][] = [
  ['width', { width: 0 }],
  ['numHeads', { width: 128, numHeads: 3 }],
  ['numHeads', { width: 12, numHeads: 4 }], // rotary needs an even head width
  ['segmentLength', { segmentLength: 1.5 }],
  ['tau', { tau: 1 }],
  ['tau', { tau: 0 }],
  ['numBasis', { numBasis: 127 }],
  ['basisWidths', { basisWidths: [] }],
  ['basisWidths[1]', { basisWidths: [0.01, -1] }],
  ['dropout', { dropout: 1 }],
  ['dropout', { dropout: Number.NaN }],
  ['positions', { positions: 'absolute' }],
  ['sticky', { sticky: 'yes' }],
  ['vocabSize', { vocabSize: 1 }],
  ['ridgeLambda', { ridgeLambda: 0 }],
];
for (const [option, overrides] of bad) {
  test(`config: ${JSON.stringify(overrides)} is rejected naming ${option}`, (t) => {
    const error = t.throws(() => makeConfig(overrides), { instanceOf: BadConfigError });
    t.is(error.option, option);
  });
}

test('config: missing and unknown fields are rejected by name', (t) => {
  const { tau: _tau, ...rest } = DEFAULT_CONFIG;
  t.is(t.throws(() => validateConfig(rest), { instanceOf: BadConfigError }).option, 'tau');
  t.is(t.throws(() => validateConfig({ ...DEFAULT_CONFIG, colour: 'red' }), { instanceOf: BadConfigError }).option, 'colour');
  t.throws(() => validateConfig(null), { instanceOf: BadConfigError });
});

test('config: relative positions allow an odd head width', (t) => {
  t.is(makeConfig({ width: 12, numHeads: 4, positions: 'relative' }).positions, 'relative');
});
