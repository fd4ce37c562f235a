// The compiled graphs with XLA (model.xla, src/graph/graphDef.ts marks the ops): the logits of
// segments (two streams of different ages, batched segment starts) and of tokens after them
// within 1e-5 of the eager ones but not bit for bit (so XLA really compiled them), and the
// Trainer's compiled step within 1e-5 of the eager step.
// Native is required: missing, these tests fail, they never skip.
import test from 'ava';
import { InfiniFormer, initBackend, setLogLevel, tokenStreamSource, Trainer } from '../../src/index.js';
import type { StreamState } from '../../src/index.js';
import { lcgTokens, maxAbsDiff } from './helpers.js';

setLogLevel('warn');
test.before(async () => {
  await initBackend({ backend: 'tensorflow' });
});

function run(model: InfiniFormer, compiled: boolean, states: StreamState[], chunk: number[][]): Float32Array {
  model.compiled = compiled;
  const out = model.run(states, chunk);
  const values = Float32Array.from(out.dataSync());
  out.dispose();
  return values;
}

test.serial('XLA-compiled segments and tokens are within 1e-5 of eager ones (not bit for bit)', (t) => {
  const model = InfiniFormer.create({}, { seed: 4 });
  model.xla = true;
  const L = model.config.segmentLength;
  const a = lcgTokens(7 * L, 1);
  const b = lcgTokens(7 * L, 2);
  const states = { eager: [model.createState(1), model.createState(2)], compiled: [model.createState(1), model.createState(2)] };
  let segments = 0;
  let scale = 0;
  for (let k = 0; k < 6; k++) {
    const pick = (s: StreamState[]): StreamState[] => (k === 0 ? [s[0]!] : s);
    const chunk = k === 0 ? [a.slice(0, L)] : [a.slice(k * L, (k + 1) * L), b.slice(k * L, (k + 1) * L)];
    const e = run(model, false, pick(states.eager), chunk);
    const c = run(model, true, pick(states.compiled), chunk);
    segments = Math.max(segments, maxAbsDiff(e, c));
    scale = Math.max(scale, ...Array.from(e, Math.abs));
  }
  let tokens = 0;
  for (let j = 0; j < 5; j++) {
    const chunk = [[a[6 * L + j]!], [b[6 * L + j]!]];
    tokens = Math.max(tokens, maxAbsDiff(run(model, false, states.eager, chunk), run(model, true, states.compiled, chunk)));
  }
  const stats = model.compiledStats!;
  t.log(`max |eager - XLA| ${segments.toExponential(2)} (logits up to ${scale.toFixed(1)}); token mode ${tokens.toExponential(2)}; ${JSON.stringify(stats)}`);
  t.true(segments <= 1e-5 * Math.max(1, scale), `segments differ by ${segments}`);
  t.true(segments > 0, 'XLA rounds differently from the eager kernels: 0 means it did not compile');
  // Token mode (its graph after the first token has dynamic shapes: not XLA) reads the XLA segment start's caches.
  t.true(tokens <= 1e-5 * Math.max(1, scale), `tokens differ by ${tokens}`);
  t.is(stats.forward.failed + stats.segmentStart.failed, 0);
  t.true(stats.forward.graphRuns >= 4 && stats.segmentStart.graphRuns >= 2, JSON.stringify(stats));
  [...states.eager, ...states.compiled].forEach((s) => s.dispose());
  model.dispose();
});

test.serial('the Trainer step compiled with or without XLA (trainer.xla) stays within 1e-5 of the eager step', (t) => {
  const config = { width: 32, numHeads: 2, ffnWidth: 64, segmentLength: 16, numBasis: 16, numSamples: 16, basisWidths: [0.05, 0.1], dropout: 0.1 };
  const train = (mode: 'eager' | 'plain' | 'xla'): { w: Float32Array; losses: number[]; stats: string } => {
    const model = InfiniFormer.create(config, { seed: 4 });
    const trainer = new Trainer(model, tokenStreamSource(lcgTokens(2 * 5 * 16 + 2, 7), { numStreams: 2, segmentLength: 16 }), { warmupSteps: 1 });
    trainer.compiled = mode !== 'eager';
    trainer.xla = mode === 'xla';
    const losses = Array.from({ length: 5 }, () => trainer.step().loss);
    const w = Float32Array.from([...model.params.byName.values()].flatMap((v) => Array.from(v.dataSync())));
    const stats = JSON.stringify(trainer.compiledStats);
    trainer.dispose();
    model.dispose();
    return { w, losses, stats };
  };
  const eager = train('eager');
  const scale = Math.max(...Array.from(eager.w, Math.abs));
  const diffs: Record<string, number> = {};
  for (const mode of ['plain', 'xla'] as const) {
    const c = train(mode);
    diffs[mode] = maxAbsDiff(eager.w, c.w) / scale;
    t.log(`${mode}: max |eager - compiled| / max |w| ${diffs[mode]!.toExponential(2)}; ${c.stats}`);
    t.true(diffs[mode]! <= 1e-5, `${mode}: weights differ by ${diffs[mode]} relative`);
    eager.losses.forEach((l, k) => t.true(Math.abs(l - c.losses[k]!) <= 1e-5 * Math.max(1, l), `${mode} step ${k}: ${l} vs ${c.losses[k]}`));
    t.true((JSON.parse(c.stats) as { graphRuns: number }).graphRuns >= 3);
  }
});
