// The offline Trainer's compiled step (src/model/compiledStep.ts, dropout drawn on the host and
// fed) against its eager step on the native backend: the same losses, gradient norms and
// weights within 1e-5 over several steps (the data wraps, so fresh states and eager steps come
// between compiled ones), dropout really applied, a resumed run equal to an uninterrupted one
// bit for bit, no tensor left behind, and the off switches.
// Native is required: missing, these tests fail, they never skip.
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InfiniFormer, initBackend, setLogLevel, tokenStreamSource, Trainer } from '../../src/index.js';
import type { StepResult, TrainerOptions } from '../../src/index.js';
import { lcgTokens, maxAbsDiff } from './helpers.js';

setLogLevel('warn');
test.before(async () => {
  await initBackend({ backend: 'tensorflow' });
});

const SMALL = { width: 64, numHeads: 2, ffnWidth: 128, segmentLength: 32, numBasis: 32, numSamples: 32, basisWidths: [0.05, 0.1] };

interface Run {
  results: StepResult[];
  /** Every weight after each step, concatenated. */
  weights: Float32Array[];
  trainer: Trainer;
}

/** `steps` steps of 2 streams over `segments` segments of data (it wraps: every stream restarts). */
function train(compiled: boolean, steps: number, segments: number, config: Record<string, unknown>, options: TrainerOptions = {}): Run {
  const model = InfiniFormer.create({ ...SMALL, ...config }, { seed: 4 });
  const L = model.config.segmentLength;
  const source = tokenStreamSource(lcgTokens(2 * segments * L + 2, 7), { numStreams: 2, segmentLength: L });
  const trainer = new Trainer(model, source, { warmupSteps: 2, seed: 3, ...options });
  trainer.compiled = compiled;
  const results: StepResult[] = [];
  const weights: Float32Array[] = [];
  for (let k = 0; k < steps; k++) {
    results.push(trainer.step());
    weights.push(Float32Array.from([...model.params.byName.values()].flatMap((v) => Array.from(v.dataSync()))));
  }
  return { results, weights, trainer };
}

function dispose(r: Run): void {
  r.trainer.dispose();
  r.trainer.model.dispose();
}

const maxAbs = (xs: Float32Array): number => xs.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

for (const [label, config, options] of [
  ['dropout 0.1', { dropout: 0.1 }, {}],
  ['dropout 0.2, sticky, weight decay', { dropout: 0.2, sticky: true }, { weightDecay: 0.01 }],
] as const) {
  test.serial(`compiled and eager Trainer steps give the same losses, norms and weights (${label})`, (t) => {
    const steps = 9;
    const eager = train(false, steps, 6, config, options);
    const comp = train(true, steps, 6, config, options);
    let weights = 0;
    for (let k = 0; k < steps; k++) {
      const e = eager.results[k]!;
      const c = comp.results[k]!;
      t.true(Math.abs(c.loss - e.loss) <= 1e-5 * Math.max(1, e.loss), `step ${k}: loss ${c.loss} vs ${e.loss}`);
      t.true(Math.abs(c.crossEntropy - e.crossEntropy) <= 1e-5 * Math.max(1, e.crossEntropy), `step ${k}: ce ${c.crossEntropy} vs ${e.crossEntropy}`);
      t.true(Math.abs(c.gradNorm - e.gradNorm) <= 1e-5 * Math.max(1, e.gradNorm), `step ${k}: norm ${c.gradNorm} vs ${e.gradNorm}`);
      t.true(Math.abs(c.kl - e.kl) <= 1e-5 * Math.max(1e-3, Math.abs(e.kl)), `step ${k}: kl ${c.kl} vs ${e.kl}`);
      weights = Math.max(weights, maxAbsDiff(eager.weights[k]!, comp.weights[k]!) / maxAbs(eager.weights[k]!));
    }
    const stats = comp.trainer.compiledStats!;
    t.log(`max |eager - compiled| / max |w|: ${weights.toExponential(2)}; ${JSON.stringify(stats)}`);
    t.true(weights <= 1e-5, `weights differ by ${weights} relative`);
    // The weights moved far more than the tolerance.
    t.true(maxAbsDiff(comp.weights[0]!, comp.weights[steps - 1]!) > 1e-3);
    // Steps 2-6 and 8-9 are compilable (two keys: memory being fitted, then contracted); steps 1
    // and 7 start fresh streams (the data wrapped) and run eagerly.
    t.is(stats.failed, 0);
    t.true(stats.graphRuns >= 7, `graph runs ${stats.graphRuns}`);
    t.true(stats.compiled <= 3, `compiled ${stats.compiled}`);
    t.is(eager.trainer.compiledStats, undefined);
    dispose(eager);
    dispose(comp);
  });
}

test.serial('the compiled Trainer step applies dropout: without it the losses differ', (t) => {
  const withDropout = train(true, 4, 6, { dropout: 0.1 });
  const without = train(true, 4, 6, { dropout: 0 });
  // Step 1 is the same eager first step but for the masks; every compiled step differs too.
  for (let k = 1; k < 4; k++) {
    const d = Math.abs(withDropout.results[k]!.loss - without.results[k]!.loss);
    t.true(d > 1e-3, `step ${k}: losses ${withDropout.results[k]!.loss} and ${without.results[k]!.loss}`);
  }
  t.true(withDropout.trainer.compiledStats!.graphRuns >= 2);
  dispose(withDropout);
  dispose(without);
});

test.serial('a compiled Trainer resumed from a checkpoint reproduces the uninterrupted run bit for bit', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'infiniformer-ckpt-'));
  const source = (): ReturnType<typeof tokenStreamSource> => tokenStreamSource(lcgTokens(2 * 10 * 32 + 2, 5), { numStreams: 2, segmentLength: 32 });
  const flat = (m: InfiniFormer): number[] => [...m.params.byName.values()].flatMap((v) => Array.from(v.dataSync()));
  const make = (): Trainer => new Trainer(InfiniFormer.create({ ...SMALL, dropout: 0.1 }, { seed: 6 }), source(), { warmupSteps: 2, seed: 1 });
  const full = make();
  const uninterrupted = (await full.run({ steps: 8 })).map((r) => r.loss);
  const first = make();
  const head = (await first.run({ steps: 4, checkpointEvery: 4, checkpointDir: dir })).map((r) => r.loss);
  first.dispose();
  first.model.dispose();
  const resumed = await Trainer.resume(dir, source());
  const tail = (await resumed.run({ steps: 4 })).map((r) => r.loss);
  // Steps 5-8 of the resumed run compile anew (the first call of a signature runs the graph too).
  t.true(resumed.compiledStats!.graphRuns >= 3, JSON.stringify(resumed.compiledStats));
  t.deepEqual([...head, ...tail], uninterrupted);
  t.deepEqual(flat(resumed.model), flat(full.model));
  for (const tr of [full, resumed]) {
    tr.dispose();
    tr.model.dispose();
  }
  await rm(dir, { recursive: true, force: true });
});

test.serial('the compiled Trainer step leaves no tensor behind', (t) => {
  const model = InfiniFormer.create({ ...SMALL, dropout: 0.1 }, { seed: 2 });
  const L = model.config.segmentLength;
  const trainer = new Trainer(model, tokenStreamSource(lcgTokens(2 * 13 * L + 2, 9), { numStreams: 2, segmentLength: L }), { warmupSteps: 1 });
  const counts: number[] = [];
  for (let k = 0; k < 12; k++) {
    trainer.step();
    counts.push(tf.memory().numTensors);
  }
  t.true(trainer.compiledStats!.graphRuns >= 9, JSON.stringify(trainer.compiledStats));
  // Once the graphs run, every step ends with as many tensors as the one before.
  t.deepEqual(counts.slice(4), new Array<number>(8).fill(counts[4]!));
  trainer.dispose();
  model.dispose();
});

test.serial('trainer.compiled = false, INFINIFORMER_COMPILED_STEP=0 or model.compiled = false never compile', (t) => {
  const off = train(false, 3, 6, {});
  t.is(off.trainer.compiledStats, undefined);
  const previous = process.env['INFINIFORMER_COMPILED_STEP'];
  process.env['INFINIFORMER_COMPILED_STEP'] = '0';
  const model = InfiniFormer.create(SMALL, { seed: 4 });
  const source = tokenStreamSource(lcgTokens(2 * 6 * 32 + 2, 7), { numStreams: 2, segmentLength: 32 });
  const byEnv = new Trainer(model, source);
  if (previous === undefined) delete process.env['INFINIFORMER_COMPILED_STEP'];
  else process.env['INFINIFORMER_COMPILED_STEP'] = previous;
  t.false(byEnv.compiled);
  for (let k = 0; k < 3; k++) byEnv.step();
  t.is(byEnv.compiledStats, undefined);
  byEnv.dispose();
  model.compiled = false;
  const byModel = new Trainer(model, tokenStreamSource(lcgTokens(2 * 6 * 32 + 2, 7), { numStreams: 2, segmentLength: 32 }));
  for (let k = 0; k < 3; k++) byModel.step();
  t.is(byModel.compiledStats, undefined);
  byModel.dispose();
  model.dispose();
  dispose(off);
});
