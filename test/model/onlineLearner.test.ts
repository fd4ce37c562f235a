import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { BadConfigError, BadInputError, InfiniFormer, ModelFileError, OnlineLearner } from '../../src/index.js';
import type { ModelConfig, OnlineResult, ScoredSegment, StreamState } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { TINY, maxAbsDiff, numTensors, tokens, tinyModel } from './helpers.js';

test.before(async () => {
  await backendReady;
});

const L = TINY.segmentLength!;
const V = TINY.vocabSize!;
const seg = (k: number, key = 0): Int32Array => Int32Array.from(tokens(L, V, 1000 * key + k + 1));

function weightsOf(model: InfiniFormer): Float32Array[] {
  return [...model.params.byName.values()].map((v) => v.dataSync() as Float32Array);
}

function sameWeights(a: InfiniFormer, b: InfiniFormer): boolean {
  const wa = weightsOf(a);
  const wb = weightsOf(b);
  return wa.every((x, i) => maxAbsDiff(x, wb[i]!) === 0);
}

test('prequential order: a segment is scored with the weights from before its own step', (t) => {
  const K = 5;
  const learning = tinyModel();
  const frozen = tinyModel();
  const a = new OnlineLearner(learning, { learningRate: 1e-2 });
  const f = new OnlineLearner(frozen, {}, { shouldLearn: () => false });
  const sa = learning.createState();
  const sf = frozen.createState();
  const ref = tinyModel();
  const sr = ref.createState();
  const results: OnlineResult[] = [];
  for (let k = 0; k <= K; k++) {
    results.push(a.scoreThenLearn([sa], [seg(k)]));
    const rf = f.scoreThenLearn([sf], [seg(k)]);
    if (k === 0) {
      // First segment: the learning and the frozen learner saw the same weights.
      t.is(maxAbsDiff(results[0]!.scores[0]!.logProbs, rf.scores[0]!.logProbs), 0);
      // ... and they are the model's ordinary inference predictions (model.run, float tolerance).
      const logits = ref.run([sr], [seg(0)]);
      const logp = tf.tidy(() => tf.logSoftmax(logits).dataSync());
      logits.dispose();
      t.true(maxAbsDiff(rf.scores[0]!.logProbs, logp) < 1e-4);
    }
  }
  t.true(results.every((r) => r.learned));
  t.false(sameWeights(learning, frozen));
  // A model that learned on segments < K only scores segment K exactly as the learner did.
  const b = tinyModel();
  const lb = new OnlineLearner(b, { learningRate: 1e-2 });
  const sb = b.createState();
  for (let k = 0; k < K; k++) lb.scoreThenLearn([sb], [seg(k)]);
  const before = lb.scoreThenLearn([sb], [seg(K)]);
  t.is(maxAbsDiff(before.scores[0]!.logProbs, results[K]!.scores[0]!.logProbs), 0);
  t.deepEqual(before.scores[0]!.bits, results[K]!.scores[0]!.bits);
  // The bits are -log2 of the probability the previous position gave each token.
  const row = results[K]!.scores[0]!;
  t.true(Math.abs(row.bits[3]! + row.logProbs[2 * V + seg(K)[3]!]! / Math.LN2) < 1e-6);
  t.true(Number.isNaN(row.bits[0]!));
  for (const x of [a, f, lb]) x.dispose();
  for (const s of [sa, sf, sr, sb]) s.dispose();
  for (const m of [learning, frozen, ref, b]) m.dispose();
});

test('previous: the first token of a segment is scored by the last row of the one before', (t) => {
  const model = tinyModel();
  const learner = new OnlineLearner(model);
  const state = model.createState();
  const r0 = learner.scoreThenLearn([state], [seg(0)]);
  const r1 = learner.scoreThenLearn([state], [seg(1)], [r0.scores[0]]);
  const expected = -r0.scores[0]!.logProbs[(L - 1) * V + seg(1)[0]!]! / Math.LN2;
  t.is(r1.scores[0]!.bits[0], Math.fround(expected));
  t.throws(() => learner.scoreThenLearn([state], [seg(2)], [{ logProbs: new Float32Array(5), bits: new Float32Array(1) }]), { instanceOf: BadInputError });
  learner.dispose();
  state.dispose();
  model.dispose();
});

test('budget: learnEvery and the shouldLearn hook; partial chunks are scored like model.run and not learned', (t) => {
  const model = tinyModel();
  let allow = true;
  const learner = new OnlineLearner(model, { learnEvery: 3 }, { shouldLearn: () => allow });
  const states = [model.createState(1), model.createState(2)];
  const reasons = Array.from({ length: 6 }, (_, k) => learner.scoreThenLearn(states, [seg(k, 0), seg(k, 1)]).skipped ?? 'learned');
  t.deepEqual(reasons, ['learned', 'budget', 'budget', 'learned', 'budget', 'budget']);
  allow = false;
  t.is(learner.scoreThenLearn(states, [seg(6, 0), seg(6, 1)]).skipped, 'hook');
  t.deepEqual({ ...learner.stats(), runningLoss: 0 }, { segmentsScored: 14, segmentsLearned: 4, skippedByGuard: 0, rollbacks: 0, step: 2, runningLoss: 0 });
  // A 5-token tail: ordinary inference (as model.run on copies of the states), no step.
  const copies = states.map((st) => model.restoreState(st.serialize()));
  const tail = [seg(9, 0).subarray(0, 5), seg(9, 1).subarray(0, 5)];
  const logits = model.run(copies, tail);
  const logp = tf.tidy(() => tf.logSoftmax(logits).dataSync());
  logits.dispose();
  const step = learner.stats().step;
  const r = learner.scoreThenLearn(states, tail);
  t.is(r.skipped, 'partial');
  t.is(states[0]!.pos, 5);
  t.is(learner.stats().step, step);
  t.true(maxAbsDiff([...r.scores[0]!.logProbs, ...r.scores[1]!.logProbs], logp) < 1e-5);
  learner.dispose();
  for (const s of [...states, ...copies]) s.dispose();
  model.dispose();
});

test('saveState/restore: a run cut in two and restored into a fresh model equals the uninterrupted run bit for bit', (t) => {
  const N = 6;
  const opts = { learningRate: 3e-3, snapshotEvery: 4, guardWarmup: 2 };
  const run = (learner: OnlineLearner, states: StreamState[], from: number, to: number, out: ScoredSegment[][]): void => {
    for (let k = from; k < to; k++) out.push(learner.scoreThenLearn(states, [seg(k, 0), seg(k, 1)]).scores);
  };
  const ma = tinyModel();
  const la = new OnlineLearner(ma, opts);
  const sa = [ma.createState(1), ma.createState(2)];
  const outA: ScoredSegment[][] = [];
  run(la, sa, 0, 2 * N, outA);

  const mb = tinyModel();
  let lb = new OnlineLearner(mb, opts);
  let sb = [mb.createState(1), mb.createState(2)];
  run(lb, sb, 0, N, []);
  const bytes = lb.saveState();
  const stateBytes = sb.map((s) => s.serialize());
  const statsBefore = lb.stats();
  lb.dispose();
  sb.forEach((s) => s.dispose());
  mb.dispose();

  const fresh = tinyModel({}, 77); // other initial weights: everything must come from the bytes
  lb = OnlineLearner.restore(fresh, bytes);
  t.deepEqual(lb.stats(), statsBefore);
  t.deepEqual(lb.options, la.options);
  sb = stateBytes.map((b) => fresh.restoreState(b));
  const outB: ScoredSegment[][] = [];
  run(lb, sb, N, 2 * N, outB);
  for (let k = 0; k < N; k++) {
    for (let i = 0; i < 2; i++) {
      t.is(maxAbsDiff(outB[k]![i]!.logProbs, outA[N + k]![i]!.logProbs), 0, `segment ${N + k} key ${i}`);
      t.deepEqual(outB[k]![i]!.bits, outA[N + k]![i]!.bits);
    }
  }
  t.true(sameWeights(fresh, ma));
  t.deepEqual(lb.stats(), la.stats());

  // Corrupt, truncated, foreign bytes: typed errors, model untouched.
  const flipped = bytes.slice();
  flipped[Math.floor(flipped.length / 2)]! ^= 1;
  t.throws(() => OnlineLearner.restore(fresh, flipped), { instanceOf: ModelFileError, message: /checksum/ });
  t.throws(() => OnlineLearner.restore(fresh, bytes.subarray(0, 100)), { instanceOf: ModelFileError });
  t.throws(() => OnlineLearner.restore(fresh, new Uint8Array(3)), { instanceOf: ModelFileError });
  const other = tinyModel({ width: 32 });
  t.throws(() => OnlineLearner.restore(other, bytes), { instanceOf: ModelFileError, message: /another config/ });
  t.true(sameWeights(fresh, ma));
  for (const x of [la, lb]) x.dispose();
  for (const s of [...sa, ...sb]) s.dispose();
  for (const m of [ma, fresh, other]) m.dispose();
});

test('no tensor leaks across calls after warm-up, none left after dispose', (t) => {
  const model = tinyModel();
  const base = numTensors();
  const learner = new OnlineLearner(model, { snapshotEvery: 2 });
  const states = [model.createState(1), model.createState(2)];
  let k = 0;
  const call = (): void => {
    learner.scoreThenLearn(states, [seg(k, 0), seg(k, 1)]);
    k += 1;
  };
  for (let i = 0; i < 4; i++) call();
  const warm = numTensors();
  for (let i = 0; i < 6; i++) call();
  t.is(numTensors(), warm);
  const bytes = learner.saveState();
  t.is(numTensors(), warm);
  learner.dispose();
  states.forEach((s) => s.dispose());
  t.is(numTensors(), base);
  const restored = OnlineLearner.restore(model, bytes);
  restored.dispose();
  t.is(numTensors(), base);
  model.dispose();
});

test('non-finite weights roll back to the last good snapshot and the segment is scored again', (t) => {
  const model = tinyModel();
  const learner = new OnlineLearner(model, { snapshotEvery: 2 });
  const state = model.createState();
  learner.scoreThenLearn([state], [seg(0)]);
  learner.scoreThenLearn([state], [seg(1)]); // snapshot taken after this second step
  const good = weightsOf(model).map((w) => w.slice());
  const [, v] = [...model.params.byName][3]!;
  v.assign(tf.fill(v.shape, NaN));
  const r = learner.scoreThenLearn([state], [seg(2)]);
  t.is(r.skipped, 'nonFinite');
  t.false(r.learned);
  t.true(r.scores[0]!.logProbs.every(Number.isFinite));
  t.is(learner.stats().rollbacks, 1);
  t.true(weightsOf(model).every((w, i) => maxAbsDiff(w, good[i]!) === 0));
  t.true(learner.scoreThenLearn([state], [seg(3)]).learned);
  learner.dispose();
  state.dispose();
  model.dispose();
});

test('bad input and options are typed errors; nothing advances', (t) => {
  const model = tinyModel();
  const learner = new OnlineLearner(model, { learnEvery: 2 });
  const state = model.createState();
  t.throws(() => learner.scoreThenLearn([state], [new Int32Array(0)]), { instanceOf: BadInputError, message: /empty/ });
  t.throws(() => learner.scoreThenLearn([state], [seg(0), seg(1)]), { instanceOf: BadInputError });
  t.throws(() => learner.scoreThenLearn([state, model.createState(3)], [seg(0), seg(1).subarray(0, 4)]), { instanceOf: BadInputError });
  t.throws(() => learner.scoreThenLearn([state], [Int32Array.from({ length: L + 1 })]), { instanceOf: BadInputError, message: /overrun/ });
  t.throws(() => learner.scoreThenLearn([state], [Int32Array.of(V)]), { instanceOf: BadInputError });
  t.is(state.tokensSeen, 0);
  t.is(learner.stats().segmentsScored, 0);
  // Rejected calls do not count against the budget: the first good one still learns.
  t.true(learner.scoreThenLearn([state], [seg(0)]).learned);
  for (const bad of [{ learningRate: NaN }, { learningRate: 0 }, { learnEvery: 0 }, { learnEvery: 1.5 }, { spikeFactor: 0.5 }, { maxGradNorm: -1 }, { beta1: 1 }]) {
    t.throws(() => new OnlineLearner(model, bad), { instanceOf: BadConfigError }, JSON.stringify(bad));
  }
  learner.dispose();
  t.throws(() => learner.scoreThenLearn([state], [seg(0)]), { instanceOf: BadInputError, message: /disposed/ });
  state.dispose();
  model.dispose();
});

// ---- the divergence guard on a real log with a burst of random bytes ----

const BYTE_TINY: Partial<ModelConfig> = { vocabSize: 260, width: 32, numHeads: 2, numLayers: 1, ffnWidth: 64, segmentLength: 64, numBasis: 16, basisWidths: [0.05, 0.1], numSamples: 16, dropout: 0 };

function logBytes(n: number): Int32Array {
  const text = readFileSync(join(import.meta.dirname, '..', '..', 'data', 'fail2ban', 'lines.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { text: string }).text)
    .join('\n');
  return Int32Array.from(new TextEncoder().encode(text).subarray(0, n));
}

test('a burst of random bytes: the guard skips it and bits/byte returns within 10 % of the level before', (t) => {
  const Lb = BYTE_TINY.segmentLength!;
  const text = logBytes(1024);
  const noise = Int32Array.from(tokens(2048, 256, 12345));
  const model = InfiniFormer.create(BYTE_TINY, { seed: 3 });
  const learner = new OnlineLearner(model, { learningRate: 1e-2 });
  const state = model.createState();
  let previous: ScoredSegment | undefined;
  const pass = (data: Int32Array): number[] => {
    const perSegment: number[] = [];
    for (let o = 0; o < data.length; o += Lb) {
      const r = learner.scoreThenLearn([state], [data.subarray(o, o + Lb)], [previous]);
      previous = r.scores[0]!;
      perSegment.push(r.loss / Math.LN2);
    }
    return perSegment;
  };
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  for (let i = 0; i < 5; i++) pass(text);
  const before = mean(pass(text));
  const skippedBefore = learner.stats().skippedByGuard;
  const noisy = mean(pass(noise));
  const skippedNoise = learner.stats().skippedByGuard - skippedBefore;
  const after1 = mean(pass(text));
  const after2 = mean(pass(text));
  t.log(`bits/byte: log before ${before.toFixed(3)}, noise ${noisy.toFixed(3)}, log after ${after1.toFixed(3)} (first pass) ${after2.toFixed(3)} (second); noise segments skipped ${skippedNoise}/${noise.length / Lb}`);
  t.true(noisy > 2 * before);
  t.true(skippedNoise >= (0.9 * noise.length) / Lb);
  // Within 2 x 16 segments after the noise the level is back within 10 %.
  t.true(after2 < 1.1 * before, `after ${after2} vs before ${before}`);
  learner.dispose();
  state.dispose();
  model.dispose();
});

test('a batch of keys at different ages (no memory yet, first fit, contraction) learns; its scores are the frozen forward\'s', (t) => {
  const model = tinyModel({}, 21);
  const frozen = tinyModel({}, 21);
  const learner = new OnlineLearner(model, { learningRate: 1e-2 });
  const seq = tokens(4 * L, V, 8);
  const states = [model.createState(), model.createState(), model.createState()];
  const refs = [frozen.createState(), frozen.createState(), frozen.createState()];
  // Key 0 has read 2 segments (its next segment contracts), key 1 one (it fits), key 2 none.
  for (const [i, n] of [[0, 2], [1, 1]] as const) {
    for (let s = 0; s < n; s++) {
      const seg = seq.slice(s * L, (s + 1) * L);
      model.run([states[i]!], [seg]).dispose();
      frozen.run([refs[i]!], [seg]).dispose();
    }
  }
  const segs = [seq.slice(2 * L, 3 * L), seq.slice(L, 2 * L), seq.slice(0, L)];
  const r = learner.scoreThenLearn(states, segs);
  t.true(r.learned, `skipped: ${String(r.skipped)}`);
  segs.forEach((seg, i) => {
    const logits = frozen.run([refs[i]!], [seg]);
    const lp = tf.tidy(() => tf.logSoftmax(logits).dataSync() as Float32Array);
    logits.dispose();
    t.true(maxAbsDiff(r.scores[i]!.logProbs, lp) < 1e-4, `key ${i}`);
  });
  learner.dispose();
  for (const s of [...states, ...refs]) s.dispose();
  model.dispose();
  frozen.dispose();
});
