// The compiled online-learning step (src/model/compiledStep.ts) against the eager one on the
// native backend: over several steps the same weights, Adam moments (through the next steps),
// scores, losses and gradient norms within 1e-5, sticky sampling too; no tensor left behind; and
// the eager path where the step cannot be one graph (a batch with no memory yet). Native is required:
// missing, these tests fail, they never skip.
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { InfiniFormer, initBackend, OnlineLearner, setLogLevel } from '../../src/index.js';
import type { OnlineResult, StreamState } from '../../src/index.js';
import { lcgTokens as tokens, maxAbsDiff } from './helpers.js';

setLogLevel('warn');
test.before(async () => {
  await initBackend({ backend: 'tensorflow' });
});

interface Run {
  results: OnlineResult[];
  /** Every weight after each step, concatenated. */
  weights: Float32Array[];
  learner: OnlineLearner;
  model: InfiniFormer;
  states: StreamState[];
}

/** `segments` steps of two streams (the second joins one segment late) with the compiled step on or off. */
function learn(compiled: boolean, segments: number, config: Record<string, unknown>, options: Record<string, number>): Run {
  const model = InfiniFormer.create(config, { seed: 9 });
  model.compiled = compiled;
  const L = model.config.segmentLength;
  const learner = new OnlineLearner(model, { learningRate: 1e-3, ...options });
  const a = tokens(segments * L, 1);
  const b = tokens(segments * L, 2);
  const s0 = model.createState(1);
  const s1 = model.createState(2);
  const results: OnlineResult[] = [];
  const weights: Float32Array[] = [];
  for (let k = 0; k < segments; k++) {
    const seg = (xs: number[]): number[] => xs.slice(k * L, (k + 1) * L);
    results.push(k === 0 ? learner.scoreThenLearn([s0], [seg(a)]) : learner.scoreThenLearn([s0, s1], [seg(a), seg(b)]));
    weights.push(Float32Array.from([...model.params.byName.values()].flatMap((v) => Array.from(v.dataSync()))));
  }
  return { results, weights, learner, model, states: [s0, s1] };
}

function dispose(r: Run): void {
  r.learner.dispose();
  for (const s of r.states) s.dispose();
  r.model.dispose();
}

for (const [weightDecay, sticky] of [[0, false], [0.01, false], [0, true]] as const) {
  test.serial(`compiled and eager learning steps give the same weights, scores and norms (weight decay ${weightDecay}, sticky ${sticky})`, (t) => {
    const segments = 9;
    const eager = learn(false, segments, { sticky }, { weightDecay });
    const comp = learn(true, segments, { sticky }, { weightDecay });
    let weights = 0;
    let scores = 0;
    for (let k = 0; k < segments; k++) {
      const e = eager.results[k]!;
      const c = comp.results[k]!;
      t.is(c.learned, e.learned, `step ${k}`);
      t.true(e.learned, `step ${k} learned`);
      t.true(Math.abs(c.loss - e.loss) <= 1e-5, `step ${k}: loss ${c.loss} vs ${e.loss}`);
      t.true(Math.abs(c.gradNorm! - e.gradNorm!) <= 1e-5 * Math.max(1, e.gradNorm!), `step ${k}: norm ${c.gradNorm} vs ${e.gradNorm}`);
      e.scores.forEach((s, i) => (scores = Math.max(scores, maxAbsDiff(s.logProbs, c.scores[i]!.logProbs))));
      weights = Math.max(weights, maxAbsDiff(eager.weights[k]!, comp.weights[k]!));
    }
    // The weights moved (the step is not a no-op): the first and last differ by far more than the tolerance.
    t.true(maxAbsDiff(comp.weights[0]!, comp.weights[segments - 1]!) > 1e-3);
    const stats = comp.learner.compiledStats!;
    t.log(`max |eager - compiled|: weights ${weights.toExponential(2)}, log-probs ${scores.toExponential(2)}; ${JSON.stringify(stats)}`);
    t.true(weights <= 1e-5, `weights differ by ${weights}`);
    t.true(scores <= 1e-5, `log-probs differ by ${scores}`);
    // Every compilable batch runs as a graph, its first call too (segments 1.. : mixed ages, then both contracting).
    t.is(stats.failed, 0);
    t.true(stats.graphRuns >= segments - 1, `graph runs ${stats.graphRuns}`);
    t.true(stats.compiled <= 4, `compiled ${stats.compiled}`);
    t.is(comp.learner.stats().step, eager.learner.stats().step);
    // The sticky draws (host side, before the graph) advance each stream's RNG as the eager forward does.
    comp.states.forEach((s, i) => t.deepEqual(s.rngState, eager.states[i]!.rngState));
    if (sticky) {
      const fresh = comp.model.createState(1);
      t.notDeepEqual(comp.states[0]!.rngState, fresh.rngState);
      fresh.dispose();
    }
    dispose(eager);
    dispose(comp);
  });
}

test.serial('the compiled learning step leaves no tensor behind', (t) => {
  const model = InfiniFormer.create({}, { seed: 3 });
  const L = model.config.segmentLength;
  const learner = new OnlineLearner(model, { learningRate: 1e-3 });
  const s = model.createState(1);
  const data = tokens(12 * L, 5);
  const counts: number[] = [];
  for (let k = 0; k < 12; k++) {
    learner.scoreThenLearn([s], [data.slice(k * L, (k + 1) * L)]);
    counts.push(tf.memory().numTensors);
  }
  t.true(learner.compiledStats!.graphRuns >= 6, JSON.stringify(learner.compiledStats));
  // Once the graph runs, every step ends with as many tensors as the one before.
  t.deepEqual(counts.slice(6), new Array<number>(6).fill(counts[6]!));
  learner.dispose();
  s.dispose();
  model.dispose();
});

test.serial('a batch that reaches not every weight (no memory yet) takes the eager step; learner.compiled = false never compiles', (t) => {
  const eager = learn(false, 2, {}, {});
  const comp = learn(true, 2, {}, {});
  // Step 0: one stream, no memory: the memory's weights get no gradient, the fused update does
  // not apply, the eager step runs (the same weights bit for bit).
  t.is(maxAbsDiff(eager.weights[0]!, comp.weights[0]!), 0);
  const step1 = maxAbsDiff(eager.weights[1]!, comp.weights[1]!);
  t.true(step1 <= 1e-6, `step 1 differs by ${step1}`);
  t.is(comp.learner.compiledStats!.failed, 0);
  const model = InfiniFormer.create({}, { seed: 9 });
  const learner = new OnlineLearner(model);
  learner.compiled = false;
  const s = model.createState(1);
  learner.scoreThenLearn([s], [tokens(model.config.segmentLength, 1)]);
  t.is(learner.compiledStats, undefined);
  learner.dispose();
  s.dispose();
  model.dispose();
  dispose(eager);
  dispose(comp);
});
