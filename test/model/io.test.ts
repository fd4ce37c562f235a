import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InfiniFormer, ModelFileError, loadModel, saveModel, ByteTokenizer } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { maxAbsDiff, runSegments, tinyModel, tokens } from './helpers.js';

let root = '';
test.before(async () => {
  await backendReady;
  root = await mkdtemp(join(tmpdir(), 'infiniformer-io-'));
});
test.after.always(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
});

async function savedCopy(name: string, model: InfiniFormer): Promise<string> {
  const dir = join(root, name);
  await saveModel(model, dir);
  return dir;
}

test.serial('load(save(model)) gives identical outputs, config and tokenizer', async (t) => {
  const model = InfiniFormer.create({ width: 16, numHeads: 2, numLayers: 2, ffnWidth: 32, segmentLength: 8, numBasis: 8, basisWidths: [0.05, 0.1], numSamples: 8, sticky: true, stickyBins: 16, numLabels: 2 }, { seed: 3 });
  const dir = await savedCopy('roundtrip', model);
  const loaded = await loadModel(dir);
  t.deepEqual({ ...loaded.config }, { ...model.config });
  t.true(loaded.tokenizer instanceof ByteTokenizer);
  t.is(loaded.numParameters, model.numParameters);
  const toks = tokens(8 * 4, 260, 4);
  const a = model.createState(1);
  const b = loaded.createState(1);
  const outA = runSegments(model, a, toks);
  const outB = runSegments(loaded, b, toks);
  outA.forEach((o, i) => t.is(maxAbsDiff(o, outB[i]!), 0));
  // The state written by one restores into the other.
  const c = loaded.restoreState(a.serialize());
  const x = model.step([a], [5]);
  const y = loaded.step([c], [5]);
  t.is(maxAbsDiff(x.dataSync(), y.dataSync()), 0);
  tf.dispose([x, y]);
  [a, b, c].forEach((s) => s.dispose());
  model.dispose();
  loaded.dispose();
});

test.serial('truncated, corrupted, incomplete or foreign model files are clear ModelFileErrors', async (t) => {
  const model = tinyModel();
  const dir = await savedCopy('errors', model);
  const configText = await readFile(join(dir, 'config.json'), 'utf8');
  const weights = await readFile(join(dir, 'weights.bin'));
  const variant = async (name: string, config: string, w: Uint8Array): Promise<string> => {
    const d = join(root, name);
    await saveModel(model, d);
    await writeFile(join(d, 'config.json'), config);
    await writeFile(join(d, 'weights.bin'), w);
    return d;
  };
  const before = tf.memory().numTensors;
  const json = JSON.parse(configText);
  const cases: [string, string, Uint8Array, RegExp][] = [
    ['truncated', configText, weights.subarray(0, weights.length - 100), /truncated/],
    ['corrupted', configText, (() => { const w = Uint8Array.from(weights); w[17] = w[17]! ^ 0x10; return w; })(), /corrupt/],
    ['missing-field', JSON.stringify({ ...json, config: { ...json.config, tau: undefined } }), weights, /config\.tau: is missing/],
    ['bad-field', JSON.stringify({ ...json, config: { ...json.config, numHeads: 3 } }), weights, /config\.numHeads/],
    ['version', JSON.stringify({ ...json, formatVersion: 2 }), weights, /format version 2 is not supported/],
    ['not-a-model', JSON.stringify({ hello: 1 }), weights, /not an infiniformer model/],
    ['not-json', '{"format": ', weights, /not valid JSON/],
    ['no-manifest', JSON.stringify({ ...json, weights: undefined }), weights, /manifest/],
    ['tensor-missing', JSON.stringify({ ...json, weights: { ...json.weights, tensors: json.weights.tensors.slice(1) } }), weights, /tensor embedding is missing/],
  ];
  for (const [name, config, w, message] of cases) {
    const d = await variant(name, config, w);
    await t.throwsAsync(loadModel(d), { instanceOf: ModelFileError, message }, name);
  }
  await t.throwsAsync(loadModel(join(root, 'does-not-exist')), { instanceOf: ModelFileError, message: /cannot read/ });
  t.is(tf.memory().numTensors, before, 'failed loads free what they allocated');
  model.dispose();
});
