// The committed default model (models/default/): it loads, its report describes a finished run,
// and on held-out gcc log lines it never saw it predicts bytes far better than chance.
import test from 'ava';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { cli, GCC_SLICE_REL, REPO } from './helpers.js';

const DIR = join(REPO, 'models', 'default');

test.before(async () => {
  await backendReady;
});

test('models/default: a byte-level model of a few MB with its report, loss curve and command', async (t) => {
  const model = await loadModel(DIR);
  t.is(model.tokenizer?.kind, 'byte');
  t.true(model.config.longTermMemory);
  const bytes = statSync(join(DIR, 'weights.bin')).size;
  t.is(bytes, 4 * model.numParameters);
  t.true(bytes < 5e6, `${bytes} bytes`);
  model.dispose();
  // The model's README gives the exact commands that made and measured it.
  const readme = await readFile(join(DIR, 'README.md'), 'utf8');
  t.regex(readme, /^npx infiniformer train --data ~\/\.cache\/infiniformer\/data\/corpus\/train\.txt --out runs\/general /m);
  t.true(model.config.sticky, 'sticky memories, as the paper uses them');
  t.regex(readme, /npx infiniformer eval --model models\/default --data data\/gcc-12-test-results\/gcc-heldout\.txt/);
  t.true(existsSync(join(DIR, 'config.json')));
});

test('models/default on the committed held-out slice: far below chance, with and without its memory', async (t) => {
  const r = await cli(['eval', '--model', 'models/default', '--data', GCC_SLICE_REL, '--max-bytes', '40000', '--json']);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { bytesScored: number; withLtm: { bitsPerByte: number; accuracy: number }; withoutLtm: { bitsPerByte: number } };
  t.log(`held-out slice, ${out.bytesScored} bytes: ${out.withLtm.bitsPerByte.toFixed(4)} bits/byte with LTM, ${out.withoutLtm.bitsPerByte.toFixed(4)} without (uniform: ${Math.log2(260).toFixed(2)})`);
  t.true(out.bytesScored > 30_000);
  // Uniform over 260 symbols is 8.02 bits/byte; an order-0 byte model of this text ~5. The
  // model never saw these lines (models/default/README.md: 0.564 with, 0.802 without LTM here).
  t.true(out.withLtm.bitsPerByte < 0.7);
  t.true(out.withLtm.bitsPerByte < out.withoutLtm.bitsPerByte - 0.03, 'the long-term memory should help');
  t.true(out.withLtm.accuracy > 0.9);
});
