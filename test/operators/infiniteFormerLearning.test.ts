import test from 'ava';
import { from, lastValueFrom, Observable, toArray, VirtualTimeScheduler } from 'rxjs';
import { infiniteFormer, keyStateFromBytes, keyStateToBytes, type ModelOutput, type TokenInput } from '../../operators/index.js';
import { BadConfigError, MemoryKeyStore, OnlineLearner, type InfiniFormer, type KeyStateStore } from '../../src/index.js';
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

/**
 * Runs `records` (one every 10 ms of virtual time) through a segment-mode operator with a learner
 * and returns the outputs. `maxDelayMs` 5: a record that leaves a partial segment is flushed
 * before the next arrives, so the input is cut at every record; undefined: never (completion
 * flushes the tail).
 */
function runTimed(model: InfiniFormer, learner: OnlineLearner, records: TokenInput[], maxDelayMs: number | undefined, store?: KeyStateStore): { outs: ModelOutput[]; segmentsLearned: number } {
  const scheduler = new VirtualTimeScheduler();
  const source = new Observable<TokenInput>((subscriber) => {
    records.forEach((r, i) => scheduler.schedule(() => subscriber.next(r), 10 * i));
    scheduler.schedule(() => subscriber.complete(), 10 * records.length);
  });
  const lm = infiniteFormer(model, { mode: 'segment', learner, scheduler, ...(maxDelayMs !== undefined ? { maxDelayMs } : {}), ...(store ? { store } : {}) });
  const outs: ModelOutput[] = [];
  source.pipe(lm).subscribe((o) => outs.push(o));
  scheduler.flush();
  return { outs, segmentsLearned: lm.stats().segmentsLearned };
}

const weightsOf = (model: InfiniFormer): Float32Array[] => [...model.params.byName.values()].map((v) => v.dataSync() as Float32Array);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => (a.length !== b.length ? Infinity : Math.max(0, ...Array.from(a, (x, i) => Math.abs(x - b[i]!))));

test('with a learner, every segment is learned from once however the input was chunked: partial chunks flushed by maxDelayMs are held and learned with the rest of their segment', (t) => {
  const L = 8;
  const toks = randomTokens(6 * L + 3, 23, 11);
  // Records of 5 tokens: most end mid-segment.
  const records = Array.from({ length: Math.ceil(toks.length / 5) }, (_, i): TokenInput => ({ key: 'k', tokens: toks.slice(5 * i, 5 * i + 5) }));
  const modelA = tinyModel({}, 7);
  const learnerA = new OnlineLearner(modelA, { learningRate: 1e-2 });
  const whole = runTimed(modelA, learnerA, records, undefined);
  const modelB = tinyModel({}, 7);
  const learnerB = new OnlineLearner(modelB, { learningRate: 1e-2 });
  const cut = runTimed(modelB, learnerB, records, 5);
  t.is(whole.outs.length, toks.length);
  t.is(cut.outs.length, toks.length);
  // 6 whole segments; the last 3 tokens only scored.
  t.is(whole.segmentsLearned, 6);
  t.is(cut.segmentsLearned, 6, 'a segment cut by a timer is still learned from');
  t.deepEqual(cut.outs.map((o) => o.index), toks.map((_, i) => i));
  // One key: the same steps on the same segments, so the same weights and the same scores (the
  // tokens scored ahead with the weights the whole segment is later scored with).
  const w = weightsOf(modelA);
  weightsOf(modelB).forEach((x, i) => t.true(maxDiff(x, w[i]!) < 1e-5, `weights ${i} differ by ${maxDiff(x, w[i]!)}`));
  const worst = Math.max(...cut.outs.map((o, i) => (i === 0 ? 0 : Math.abs(o.surprisal - whole.outs[i]!.surprisal))));
  t.true(worst < 1e-4, `surprisal differs by ${worst}`);
  for (const x of [learnerA, learnerB]) x.dispose();
  for (const m of [modelA, modelB]) m.dispose();
});

test('with a learner, a restart at a checkpoint (key states with held tokens in a store, learner bytes) continues as an uninterrupted run would: same outputs, same weights', async (t) => {
  const L = 8;
  const toks = randomTokens(8 * L + 5, 23, 3);
  const records = Array.from({ length: Math.ceil(toks.length / 5) }, (_, i): TokenInput => ({ key: i % 3 === 2 ? 'b' : 'a', tokens: toks.slice(5 * i, 5 * i + 5) }));
  const modelA = tinyModel({}, 5);
  const learnerA = new OnlineLearner(modelA, { learningRate: 1e-2 });
  // Per-key outputs in order; one key at a time here (records arrive 10 ms apart), so the order of steps is fixed.
  const ref = runTimed(modelA, learnerA, records, 5);
  const k = 7; // the checkpoint: after record 7 (both keys mid-segment, tokens held)
  const store = new MemoryKeyStore();
  const model1 = tinyModel({}, 5);
  const learner1 = new OnlineLearner(model1, { learningRate: 1e-2 });
  const first = runTimed(model1, learner1, records.slice(0, k), 5, store);
  const saved = learner1.saveState();
  const held = [...store.keys()].map((key) => keyStateFromBytes(model1, store.get(key)!));
  t.true(held.some((ks) => (ks.held?.length ?? 0) > 0), 'the checkpoint holds tokens ahead of a state');
  // The held tokens survive the bytes.
  for (const ks of held) {
    t.deepEqual(keyStateFromBytes(model1, keyStateToBytes(ks)).held, ks.held);
    ks.state.dispose();
  }
  // The same checkpoint continued without a learner: the held tokens are run into the state first.
  const copy = new MemoryKeyStore();
  for (const key of store.keys()) copy.put(key, store.get(key)!);
  const model3 = tinyModel({}, 5);
  OnlineLearner.restore(model3, saved).dispose();
  const frozen = await lastValueFrom(from(records.slice(k)).pipe(infiniteFormer(model3, { mode: 'segment', store: copy }), toArray()));
  for (const key of ['a', 'b']) {
    const idx = frozen.filter((o) => o.key === key).map((o) => o.index);
    t.deepEqual(idx, ref.outs.filter((o) => o.key === key).map((o) => o.index).slice(-idx.length), `key ${key}: indices continue`);
  }
  t.true(frozen.every((o) => Number.isFinite(o.surprisal)));
  model3.dispose();
  const model2 = tinyModel({}, 5);
  const learner2 = OnlineLearner.restore(model2, saved);
  t.deepEqual(learner2.saveState(), saved, 'the restored learner is the saved one, byte for byte');
  const second = runTimed(model2, learner2, records.slice(k), 5, store);
  const got = [...first.outs, ...second.outs];
  t.is(got.length, ref.outs.length);
  for (const key of ['a', 'b']) {
    const a = ref.outs.filter((o) => o.key === key);
    const b = got.filter((o) => o.key === key);
    t.deepEqual(b.map((o) => o.index), a.map((o) => o.index));
    const worst = Math.max(...b.map((o, i) => (Number.isNaN(o.surprisal) && Number.isNaN(a[i]!.surprisal) ? 0 : Math.abs(o.surprisal - a[i]!.surprisal))));
    t.true(worst < 1e-4, `key ${key}: surprisal differs by ${worst}`);
  }
  t.is(learner2.stats().segmentsLearned, learnerA.stats().segmentsLearned);
  const w = weightsOf(modelA);
  weightsOf(model2).forEach((x, i) => t.true(maxDiff(x, w[i]!) < 1e-5, `weights ${i} differ by ${maxDiff(x, w[i]!)}`));
  for (const x of [learnerA, learner1, learner2]) x.dispose();
  for (const m of [modelA, model1, model2]) m.dispose();
});

test('with a learner and segmentsPerStep 2, keys completing their segments from different held lengths in one round take one batched step, each key its own tokens', (t) => {
  const L = 8;
  const [a, b] = [randomTokens(L, 23, 41), randomTokens(L, 23, 42)];
  // t=0: a 3 tokens, b 5 (flushed ahead at 5 ms, held); t=10: the rest of both segments arrive together.
  const scheduler = new VirtualTimeScheduler();
  const model = tinyModel({}, 9);
  const learner = new OnlineLearner(model, { learningRate: 1e-2 });
  const source = new Observable<TokenInput>((subscriber) => {
    scheduler.schedule(() => {
      subscriber.next({ key: 'a', tokens: a.slice(0, 3) });
      subscriber.next({ key: 'b', tokens: b.slice(0, 5) });
    }, 0);
    scheduler.schedule(() => {
      subscriber.next({ key: 'a', tokens: a.slice(3) });
      subscriber.next({ key: 'b', tokens: b.slice(5) });
      subscriber.complete();
    }, 10);
  });
  const lm = infiniteFormer(model, { mode: 'segment', learner, scheduler, maxDelayMs: 5, segmentsPerStep: 2 });
  const outs: ModelOutput[] = [];
  source.pipe(lm).subscribe((o) => outs.push(o));
  scheduler.flush();
  // Reference: one learner step on both whole segments, batched.
  const refModel = tinyModel({}, 9);
  const refLearner = new OnlineLearner(refModel, { learningRate: 1e-2 });
  const states = [refModel.createState(0), refModel.createState(0)];
  const r = refLearner.scoreThenLearn(states, [a, b]);
  t.is(lm.stats().segmentsLearned, 2);
  t.is(learner.stats().step, 1, 'one step for both keys');
  for (const [k, key] of ['a', 'b'].entries()) {
    const got = outs.filter((o) => o.key === key);
    t.deepEqual(got.map((o) => o.index), Array.from({ length: L }, (_, i) => i));
    t.deepEqual(got.map((o) => o.token), Array.from(k === 0 ? a : b));
    // Each token's prediction (the held ones scored ahead with the same weights).
    const worst = Math.max(...got.map((o, j) => maxDiff(o.nextLogProbs, r.scores[k]!.logProbs.subarray(j * 23, (j + 1) * 23))));
    t.true(worst < 1e-4, `key ${key}: predictions differ by ${worst}`);
  }
  const w = weightsOf(refModel);
  weightsOf(model).forEach((x, i) => t.true(maxDiff(x, w[i]!) < 1e-5, `weights ${i} differ by ${maxDiff(x, w[i]!)}`));
  for (const s of states) s.dispose();
  for (const x of [learner, refLearner]) x.dispose();
  for (const m of [model, refModel]) m.dispose();
});

test('with a learner, keys whose segments are ready in one round step in slices of segmentsPerStep (default 1: one step per segment), each slice scored with the weights the one before left', async (t) => {
  const L = 8;
  const segs = [41, 42, 43].map((seed) => randomTokens(L, 23, seed));
  const keys = ['a', 'b', 'c'];
  for (const [perStep, slices] of [[undefined, [[0], [1], [2]]], [2, [[0, 1], [2]]]] as const) {
    // Reference: the learner called on the slices in turn.
    const refModel = tinyModel({}, 9);
    const refLearner = new OnlineLearner(refModel, { learningRate: 1e-2 });
    const want: Float32Array[] = [];
    for (const slice of slices) {
      const states = slice.map(() => refModel.createState(0));
      const r = refLearner.scoreThenLearn(states, slice.map((i) => segs[i]!));
      slice.forEach((i, j) => (want[i] = r.scores[j]!.logProbs));
      for (const st of states) st.dispose();
    }
    const model = tinyModel({}, 9);
    const learner = new OnlineLearner(model, { learningRate: 1e-2 });
    // Every key's segment arrives before the first round: one group of three.
    const lm = infiniteFormer(model, { mode: 'segment', learner, ...(perStep !== undefined ? { segmentsPerStep: perStep } : {}) });
    const outs = await lastValueFrom(from(keys.map((key, i) => ({ key, tokens: segs[i]! }))).pipe(lm, toArray()));
    t.is(lm.stats().forwardPasses, 1, 'one group');
    t.is(learner.stats().step, slices.length, `${slices.length} steps of at most ${perStep ?? 1} segments`);
    t.is(learner.stats().segmentsLearned, 3);
    keys.forEach((key, k) => {
      const got = outs.filter((o) => o.key === key);
      const worst = Math.max(...got.map((o, j) => maxDiff(o.nextLogProbs, want[k]!.subarray(j * 23, (j + 1) * 23))));
      t.true(worst < 1e-4, `segmentsPerStep ${perStep}, key ${key}: predictions differ by ${worst}`);
    });
    const w = weightsOf(refModel);
    weightsOf(model).forEach((x, i) => t.true(maxDiff(x, w[i]!) < 1e-5, `weights ${i} differ by ${maxDiff(x, w[i]!)}`));
    for (const x of [learner, refLearner]) x.dispose();
    for (const m of [model, refModel]) m.dispose();
  }
  t.throws(() => infiniteFormer(tinyModel({}, 9), { mode: 'segment', segmentsPerStep: 0 }), { instanceOf: BadConfigError, message: /^segmentsPerStep/ });
});
