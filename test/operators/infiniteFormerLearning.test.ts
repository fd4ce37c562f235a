import test from 'ava';
import { from, lastValueFrom, toArray } from 'rxjs';
import { infiniteFormer } from '../../operators/index.js';
import { BadConfigError, OnlineLearner } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { tinyModel, tokens as randomTokens } from '../model/helpers.js';

test.before(async () => {
  await backendReady;
});

test('infiniteFormer with a learner: outputs are the learner\'s prequential scores, segment by segment, and the weights move', async (t) => {
  const L = 8;
  const toks = randomTokens(4 * L, 23, 5);
  // Reference: the learner called directly on the same segments of one key.
  const refModel = tinyModel({}, 7);
  const refLearner = new OnlineLearner(refModel, { learningRate: 1e-2 });
  const refState = refModel.createState(0);
  const want: Float32Array[] = [];
  for (let s = 0; s < 4; s++) {
    const r = refLearner.scoreThenLearn([refState], [toks.slice(s * L, (s + 1) * L)]);
    for (let j = 0; j < L; j++) want.push(r.scores[0]!.logProbs.slice(j * 23, (j + 1) * 23));
  }
  const model = tinyModel({}, 7);
  const frozen = tinyModel({}, 7);
  const learner = new OnlineLearner(model, { learningRate: 1e-2 });
  const lm = infiniteFormer(model, { mode: 'segment', learner });
  const got = await lastValueFrom(from(toks.map((token) => ({ key: 'k', token }))).pipe(lm, toArray()));
  const flm = infiniteFormer(frozen, { mode: 'segment' });
  const still = await lastValueFrom(from(toks.map((token) => ({ key: 'k', token }))).pipe(flm, toArray()));
  t.is(got.length, 4 * L);
  t.deepEqual(got.map((o) => Array.from(o.nextLogProbs)), want.map((w) => Array.from(w)));
  // The first segment is scored before any step: as the frozen model's; later ones are not.
  const diff = (a: Float32Array, b: Float32Array): number => Math.max(...Array.from(a, (x, i) => Math.abs(x - b[i]!)));
  t.true(diff(got[L - 1]!.nextLogProbs, still[L - 1]!.nextLogProbs) < 1e-4);
  t.true(diff(got[4 * L - 1]!.nextLogProbs, still[4 * L - 1]!.nextLogProbs) > 1e-3);
  t.is(lm.stats().segmentsLearned, 4);
  t.is(learner.stats().segmentsLearned, 4);
  t.throws(() => infiniteFormer(frozen, { learner }), { instanceOf: BadConfigError, message: /^learner/ });
  for (const x of [learner, refLearner]) x.dispose();
  for (const m of [model, frozen, refModel]) m.dispose();
  refState.dispose();
});
