// The compiled inference forward (src/model/compiledForward.ts) against the eager one on the
// native backend: the same logits (bit for bit) over segments and tokens across boundaries
// (first segment, memory fit, contraction; streams of different ages in one batch), no tensor
// left behind, typed errors that leave the states untouched, and an eager fallback for forwards
// that cannot be one graph. Native is required: missing, these tests fail, they never skip.
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { BadInputError, GraphCompileError, InfiniFormer, initBackend, setLogLevel } from '../../src/index.js';
import type { ChunkOutput, StreamState } from '../../src/index.js';
import { CompiledGraph } from '../../src/graph/compiledGraph.js';
import { GraphCache } from '../../src/graph/graphCache.js';
import { GraphDefBuilder } from '../../src/graph/graphDef.js';
import { nativeBackend } from '../../src/graph/nativeBackend.js';
import { OpTracer } from '../../src/graph/opTrace.js';
import { lcgTokens as tokens, maxAbsDiff } from './helpers.js';

setLogLevel('warn');
test.before(async () => {
  await initBackend({ backend: 'tensorflow' });
});

/** Runs chunks on `model` with the compiled forward on or off; returns each chunk's logits. */
function runChunks(model: InfiniFormer, compiled: boolean, states: StreamState[], chunks: number[][][]): Float32Array[] {
  model.compiled = compiled;
  return chunks.map((chunk) => {
    const out = model.run(states, chunk);
    const values = Float32Array.from(out.dataSync());
    out.dispose();
    return values;
  });
}

for (const sticky of [false, true]) {
test.serial(`compiled and eager forwards give the same logits over segments and tokens across boundaries (sticky ${sticky})`, (t) => {
  const model = InfiniFormer.create({ sticky }, { seed: 4 });
  const L = model.config.segmentLength;
  const a = tokens(7 * L, 1);
  const b = tokens(7 * L, 2);
  // Stream 0 starts at once; stream 1 joins one segment later (first segment, then a fit, while
  // stream 0 contracts): mixed batches. Then token mode through two boundaries (a graph per
  // segment position: the second segment reuses the first's), and odd chunks.
  const plan = (s0: StreamState, s1: StreamState): { states: StreamState[]; chunks: number[][][] }[] => [
    { states: [s0], chunks: [[a.slice(0, L)]] },
    { states: [s0, s1], chunks: [1, 2, 3].map((k) => [a.slice(k * L, (k + 1) * L), b.slice(k * L, (k + 1) * L)]) },
    { states: [s0, s1], chunks: Array.from({ length: 2 * L + 3 }, (_, j) => [[a[4 * L + j]!], [b[4 * L + j]!]]) },
    { states: [s0, s1], chunks: [[a.slice(6 * L + 3, 6 * L + 40), b.slice(6 * L + 3, 6 * L + 40)]] },
  ];
  const results: Record<'eager' | 'compiled', Float32Array[]> = { eager: [], compiled: [] };
  for (const mode of ['eager', 'compiled'] as const) {
    const s0 = model.createState(1);
    const s1 = model.createState(2);
    for (const step of plan(s0, s1)) results[mode].push(...runChunks(model, mode === 'compiled', step.states, step.chunks));
    s0.dispose();
    s1.dispose();
  }
  const worst = Math.max(...results.eager.map((e, i) => maxAbsDiff(e, results.compiled[i]!)));
  t.log(`max |eager - compiled| = ${worst.toExponential(2)} over ${results.eager.length} chunks; ${JSON.stringify(model.compiledStats)}`);
  // Constants are fed, not folded, and no op runs another kernel in a graph: bit for bit.
  t.is(worst, 0, `max |diff| ${worst}`);
  const stats = model.compiledStats!.forward;
  // None failed; token mode past the first token of a segment is one graph whatever the position.
  t.is(stats.failed, 0);
  t.true(stats.graphRuns >= 2 * L - 8, `graph runs ${stats.graphRuns}`);
  t.true(stats.compiled <= 8, `compiled ${stats.compiled}`);
  // Segment starts, one per batch at a boundary: a graph per pattern of the batch's caches
  // (first segment; fit + first; contraction + fit; both contracting), the later boundaries reuse the last.
  const starts = model.compiledStats!.segmentStart;
  t.is(starts.failed, 0);
  t.is(starts.compiled, 4, JSON.stringify(starts));
  t.true(starts.graphRuns >= 3, JSON.stringify(starts));
  model.dispose();
});
}

test.serial('no tensors leak through compiled forwards (tfjs tensors and native handles)', (t) => {
  const model = InfiniFormer.create({}, { seed: 5 });
  const L = model.config.segmentLength;
  const state = model.createState(3);
  const toks = tokens(7 * L, 3);
  const step = (k: number): void => runChunks(model, true, [state], [[toks.slice(k * L, (k + 1) * L)]]).forEach(() => undefined);
  // First segment, fit, then contractions: seen once, traced and compiled, run as graphs.
  for (let k = 0; k < 5; k++) step(k);
  const native = (): number => (tf.backend() as unknown as { getNumOfTFTensors(): number }).getNumOfTFTensors();
  const before = { tensors: tf.memory().numTensors, native: native(), runs: model.compiledStats!.forward.graphRuns, starts: model.compiledStats!.segmentStart.graphRuns };
  step(5);
  step(6);
  t.is(tf.memory().numTensors, before.tensors);
  t.is(native(), before.native);
  // The measured segments ran as graphs (forward and segment start).
  t.is(model.compiledStats!.forward.graphRuns, before.runs + 2);
  t.is(model.compiledStats!.segmentStart.graphRuns, before.starts + 2);
  state.dispose();
  model.dispose();
});

test.serial('after the weights change (a learning step), the compiled graphs compute with the new weights', (t) => {
  const model = InfiniFormer.create({ sticky: true }, { seed: 8 });
  const L = model.config.segmentLength;
  const toks = tokens(6 * L, 5);
  const state = model.createState(2);
  runChunks(model, true, [state], [0, 1, 2, 3, 4].map((k) => [toks.slice(k * L, (k + 1) * L)]));
  const bytes = state.serialize();
  const next = [[toks.slice(5 * L)]];
  const restored: StreamState[] = [];
  const fresh = (): StreamState => restored[restored.push(model.restoreState(bytes)) - 1]!;
  const before = runChunks(model, true, [fresh()], next)[0]!;
  // A stand-in for a learning step: every weight moves (new data ids, as Variable.assign gives).
  tf.tidy(() => {
    for (const v of model.params.byName.values()) v.assign(tf.add(tf.mul(v, 1.05), 0.001));
  });
  const runs = { ...model.compiledStats!.forward };
  const starts = { ...model.compiledStats!.segmentStart };
  const compiled = runChunks(model, true, [fresh()], next)[0]!;
  t.is(model.compiledStats!.forward.graphRuns, runs.graphRuns + 1);
  t.is(model.compiledStats!.segmentStart.graphRuns, starts.graphRuns + 1);
  const eager = runChunks(model, false, [fresh()], next)[0]!;
  t.true(maxAbsDiff(before, eager) > 1e-3, 'the weight change matters');
  const diff = maxAbsDiff(eager, compiled);
  t.log(`max |eager - compiled| after the change = ${diff.toExponential(2)}`);
  t.is(diff, 0, `max |diff| ${diff}`);
  [state, ...restored].forEach((s) => s.dispose());
  model.dispose();
});

test.serial('bad input on the compiled path is a typed error and advances nothing', (t) => {
  const model = InfiniFormer.create({}, { seed: 6 });
  const L = model.config.segmentLength;
  const state = model.createState(1);
  runChunks(model, true, [state], [[tokens(L, 1)], [tokens(L, 2)]]);
  const before = state.tokensSeen;
  const bad = tokens(L, 3);
  bad[5] = model.config.vocabSize;
  const error = t.throws(() => model.run([state], [bad]), { instanceOf: BadInputError });
  t.regex(error.message, /token 5/);
  t.is(state.tokensSeen, before);
  state.dispose();
  model.dispose();
});

/** A model whose forward reads a value back to the host mid-way: it cannot be one graph. */
class HostReadingModel extends InfiniFormer {
  override forwardIds(states: readonly StreamState[], ids: tf.Tensor1D, pos: number, t: number): ChunkOutput {
    const out = super.forwardIds(states, ids, pos, t);
    const scale = tf.max(out.logits).dataSync()[0]! > 1e9 ? 0 : 1;
    return { ...out, logits: tf.mul(out.logits, scale) };
  }
}

/** A model whose forward reads a kept tensor the compiler knows nothing about. */
class ForeignInputModel extends InfiniFormer {
  readonly offset = tf.keep(tf.scalar(0));
  override forwardIds(states: readonly StreamState[], ids: tf.Tensor1D, pos: number, t: number): ChunkOutput {
    const out = super.forwardIds(states, ids, pos, t);
    return { ...out, logits: tf.add(out.logits, this.offset) };
  }
}

for (const Model of [HostReadingModel, ForeignInputModel]) {
  test.serial(`a forward that cannot be compiled runs eagerly with the same numbers (${Model.name})`, (t) => {
    const base = InfiniFormer.create({}, { seed: 7 });
    const model = new Model(base.config, base.params, base.tokenizer);
    const L = model.config.segmentLength;
    const toks = tokens(7 * L, 4);
    const chunks = [0, 1, 2, 3, 4, 5, 6].map((k) => [toks.slice(k * L, (k + 1) * L)]);
    const compiled = runChunks(model, true, [model.createState(1)], chunks);
    const eager = runChunks(base, false, [base.createState(1)], chunks);
    t.true(Math.max(...eager.map((e, i) => maxAbsDiff(e, compiled[i]!))) === 0);
    const stats = model.compiledStats!.forward;
    // The contraction signature (segments 2-6): seen once, then traced three times (every trace
    // fails), then left eager.
    t.is(stats.graphRuns, 0);
    t.is(stats.failed, 3, JSON.stringify(stats));
    t.is(stats.eagerRuns, 7);
    base.dispose();
  });
}

test.serial('a traced program becomes a graph that computes what the eager ops did; a graph TensorFlow refuses is a GraphCompileError', (t) => {
  const backend = nativeBackend()!;
  const x = tf.tensor2d([1, -2, 3, -4, 5, -6], [2, 3]);
  const w = tf.tensor2d([0.5, 1, -1, 2, 0, 3], [3, 2]);
  const { result, trace } = new OpTracer(backend).trace(() => tf.relu(tf.add(tf.matMul(x, w), 1)));
  const idOf = (v: tf.Tensor): number => backend.tensorMap.get(v.dataId)!.id;
  const feeds = [idOf(x), idOf(w)];
  const constants = new Map([...trace.external].filter(([id, e]) => !feeds.includes(id) && e.host !== undefined).map(([id, e]) => [id, e.host!]));
  const builder = new GraphDefBuilder(backend.binding);
  const built = builder.build({ trace, feeds, constants, fetches: [idOf(result)] });
  const graph = CompiledGraph.load(backend, built);
  const x2 = tf.tensor2d([2, 0, 1, 1, -3, 1], [2, 3]);
  const [out] = graph.run([x2, w]);
  // relu(x2 w + 1) by hand: [2,0,1] w = [1, 5], [1,-3,1] w = [3.5, -2].
  t.deepEqual(Array.from(out!.dataSync()), [2, 6, 4.5, 0]);
  graph.dispose();
  const broken = { ...trace, ops: trace.ops.map((o, i) => (i === 0 ? { ...o, op: 'NoSuchOpAnywhere' } : o)) };
  t.throws(() => CompiledGraph.load(backend, builder.build({ trace: broken, feeds, constants, fetches: [idOf(result)] })), { instanceOf: GraphCompileError });
  tf.dispose([x, w, x2, result, out!]);
});

test.serial('GraphCache breakEvenAfter: past that many graphs a new key is compiled only once its eager calls have cost a compile (ski rental), then runs as a graph with the same values', (t) => {
  const cache = GraphCache.create<null>({ breakEvenAfter: 1 })!;
  const x = tf.tensor2d([[1, 2], [3, 4]]);
  const slowMs = 3;
  const call = (key: string, slow: boolean) => ({
    key,
    inputs: new Map([['x', x]]),
    eager: () => {
      if (slow) for (const until = performance.now() + slowMs; performance.now() < until; );
      return { outputs: [tf.add(tf.matMul(x, x), key === 'a' ? 1 : 2)], meta: null };
    },
  });
  const run = (key: string, slow: boolean): number[] => {
    const out = cache.run(call(key, slow)).outputs;
    const values = Array.from(out[0]!.dataSync());
    tf.dispose(out);
    return values;
  };
  run('a', false);
  run('a', false); // the first graph: compiled on its second call, as without the rule
  t.is(cache.stats.compiled, 1);
  // Key b's calls take ~3 ms eagerly; a compile costs more than two of them (tens of ms), so b
  // is not compiled at its second call, but is once its eager time has paid for a compile.
  const expected = [9, 12, 17, 24]; // [[1,2],[3,4]]^2 + 2
  t.deepEqual(run('b', true), expected);
  t.deepEqual(run('b', true), expected);
  t.is(cache.stats.compiled, 1, 'not compiled after two cheap calls');
  let calls = 2;
  while (cache.stats.compiled === 1 && calls < 500) {
    t.deepEqual(run('b', true), expected);
    calls++;
  }
  t.is(cache.stats.compiled, 2, `compiled after ${calls} calls`);
  const runsBefore = cache.stats.graphRuns;
  t.deepEqual(run('b', false), expected);
  t.is(cache.stats.graphRuns, runsBefore + 1, 'then runs as a graph');
  t.log(`key b compiled after ${calls} eager calls of ~${slowMs} ms`);
  cache.dispose();
  x.dispose();
});
