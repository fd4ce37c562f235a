import test, { type ExecutionContext } from 'ava';
import * as tf from '@tensorflow/tfjs';
import { BadInputError, ModelFileError, StreamState, clearRidgeCache, type InfiniFormer } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { maxAbsDiff, runSegments, tinyModel, tokens } from './helpers.js';
import { crc32 } from '../../src/model/checksum.js';

test.before(async () => {
  await backendReady;
});

const SEGMENTS = 5; // 4 boundaries; memory is fitted at the 2nd segment and contracted from the 3rd

for (const variant of [
  { name: 'uniform memory, rotary', overrides: { sticky: false } },
  { name: 'sticky memory, rotary', overrides: { sticky: true } },
  { name: 'sticky memory, relative positions', overrides: { sticky: true, positions: 'relative' as const } },
  { name: 'no long-term memory', overrides: { longTermMemory: false } },
]) {
  test(`token mode equals segment mode across ${SEGMENTS - 1} boundaries (${variant.name})`, (t) => {
    const model = tinyModel(variant.overrides);
    const L = model.config.segmentLength;
    const toks = tokens(L * SEGMENTS, model.config.vocabSize, 7);
    const a = model.createState(3);
    const b = model.createState(3);
    const segmentLogits = runSegments(model, a, toks);
    let worst = 0;
    for (let s = 0; s < SEGMENTS; s++) {
      for (let j = 0; j < L; j++) {
        const logits = model.step([b], [toks[s * L + j]!]);
        const row = logits.dataSync();
        logits.dispose();
        worst = Math.max(worst, maxAbsDiff(row, segmentLogits[s]!.subarray(j * model.config.vocabSize, (j + 1) * model.config.vocabSize)));
      }
    }
    t.log(`max |token - segment| = ${worst.toExponential(2)}`);
    t.true(worst <= 1e-4);
    // The memory was really used: after the boundaries both streams hold the same non-zero memory.
    if (model.config.longTermMemory) {
      const ma = a.layers[0]!.memory!;
      const mb = b.layers[0]!.memory!;
      t.true(maxAbsDiff(ma.dataSync(), mb.dataSync()) <= 1e-4);
      t.true(tf.tidy(() => tf.max(tf.abs(ma)).dataSync()[0]!) > 1e-3);
      t.is(a.segmentsSeen, SEGMENTS);
    }
    a.dispose();
    b.dispose();
    model.dispose();
  });
}

test('the long-term memory changes the logits (it is wired in)', (t) => {
  const withLtm = tinyModel({ sticky: false }, 5);
  const L = withLtm.config.segmentLength;
  const toks = tokens(L * 4, withLtm.config.vocabSize, 11);
  const s1 = withLtm.createState();
  const full = runSegments(withLtm, s1, toks);
  // Zero the LTM output projections: the model becomes a plain short-term model.
  for (const lp of withLtm.params.layers) lp.ltmWO!.assign(tf.zerosLike(lp.ltmWO!));
  const s2 = withLtm.createState();
  const noLtm = runSegments(withLtm, s2, toks);
  t.true(maxAbsDiff(full[0]!, noLtm[0]!) < 1e-6, 'first segment has no memory yet');
  t.true(maxAbsDiff(full[3]!, noLtm[3]!) > 1e-4, 'later segments read the memory');
  s1.dispose();
  s2.dispose();
  withLtm.dispose();
});

test('batched streams equal the same streams run one by one (segment and token mode)', (t) => {
  const model = tinyModel({ sticky: true });
  const L = model.config.segmentLength;
  const V = model.config.vocabSize;
  const streams = [tokens(L * 4, V, 1), tokens(L * 4, V, 2), tokens(L * 4, V, 3)];
  const single = streams.map((toks, i) => {
    const s = model.createState(10 + i);
    const out = runSegments(model, s, toks);
    s.dispose();
    return out;
  });
  const states = streams.map((_, i) => model.createState(10 + i));
  let worst = 0;
  for (let seg = 0; seg < 3; seg++) {
    const logits = model.run(states, streams.map((toks) => toks.slice(seg * L, (seg + 1) * L)));
    const data = logits.dataSync();
    logits.dispose();
    streams.forEach((_, i) => (worst = Math.max(worst, maxAbsDiff(data.subarray(i * L * V, (i + 1) * L * V), single[i]![seg]!))));
  }
  // The last segment token by token, batched.
  for (let j = 0; j < L; j++) {
    const logits = model.step(states, streams.map((toks) => toks[3 * L + j]!));
    const data = logits.dataSync();
    logits.dispose();
    streams.forEach((_, i) => (worst = Math.max(worst, maxAbsDiff(data.subarray(i * V, (i + 1) * V), single[i]![3]!.subarray(j * V, (j + 1) * V)))));
  }
  t.log(`max |batched - single| = ${worst.toExponential(2)}`);
  t.true(worst <= 1e-4);
  states.forEach((s) => s.dispose());
  model.dispose();
});

test('token mode batches streams at different segment positions and equals them run alone', (t) => {
  const model = tinyModel({ sticky: true });
  const L = model.config.segmentLength;
  const V = model.config.vocabSize;
  const offsets = [0, 3, 3, L - 1];
  const streams = offsets.map((_, i) => tokens(L * 4, V, 40 + i));
  const alone = offsets.map((_, i) => model.createState(i));
  const together = offsets.map((_, i) => model.createState(i));
  // Bring each stream to its own position first (different positions, different segment counts).
  offsets.forEach((off, i) => {
    for (let j = 0; j < L + off; j++) {
      model.step([alone[i]!], [streams[i]![j]!]).dispose();
      model.step([together[i]!], [streams[i]![j]!]).dispose();
    }
  });
  t.deepEqual(together.map((s) => s.pos), [0, 3, 3, L - 1]);
  let worst = 0;
  for (let k = 0; k < 2 * L; k++) {
    const batch = model.step(together, offsets.map((off, i) => streams[i]![L + off + k]!));
    const data = batch.dataSync();
    batch.dispose();
    offsets.forEach((off, i) => {
      const one = model.step([alone[i]!], [streams[i]![L + off + k]!]);
      worst = Math.max(worst, maxAbsDiff(one.dataSync(), data.subarray(i * V, (i + 1) * V)));
      one.dispose();
    });
  }
  t.log(`max |batched - alone| = ${worst.toExponential(2)}`);
  t.true(worst <= 1e-4);
  [...alone, ...together].forEach((s) => s.dispose());
  model.dispose();
});

test('a stream state serialised mid-segment restores exactly; its size depends only on the config and the position', (t) => {
  const model = tinyModel({ sticky: true });
  const c = model.config;
  const L = c.segmentLength;
  const V = c.vocabSize;
  const toks = tokens(L * 6, V, 9);
  const live = model.createState(4);
  for (let i = 0; i < L * 3 + 3; i++) {
    model.step([live], [toks[i]!]).dispose();
    // From the third segment on every layer holds a memory and a previous segment.
    if (i >= 2 * L) t.is(live.serialize().length, StreamState.byteLength(c, live.pos), `after token ${i}`);
  }
  // By hand: header 48, per layer flags + prevX [L, e] + curX [pos, e] + memory [N, e] + sticky
  // histogram D float64 + densities 2 H pos float32, then the CRC.
  const perLayer = (pos: number): number => 4 + 4 * L * c.width + 4 * pos * c.width + 4 * c.numBasis * c.width + 8 * c.stickyBins + 8 * c.numHeads * pos;
  t.is(StreamState.byteLength(c, 3), 48 + c.numLayers * perLayer(3) + 4);
  const restored = model.restoreState(live.serialize());
  t.is(restored.pos, 3);
  t.is(restored.tokensSeen, L * 3 + 3);
  // Same numbers: restoring rebuilds every cache with the same operations.
  stepBothAlike(t, model, live, restored, toks.slice(L * 3 + 3, L * 6));
  live.dispose();
  restored.dispose();
  model.dispose();
});

/** Steps `live` and `restored` through the same tokens, asserting identical logits at every step. */
function stepBothAlike(t: ExecutionContext, model: InfiniFormer, live: StreamState, restored: StreamState, toks: ArrayLike<number>): void {
  for (let i = 0; i < toks.length; i++) {
    const a = model.step([live], [toks[i]!]);
    const b = model.step([restored], [toks[i]!]);
    t.is(maxAbsDiff(a.dataSync(), b.dataSync()), 0);
    tf.dispose([a, b]);
  }
}

/** Format 1 (before the compact layout): every layer wrote L rows of the current segment and the sticky arrays whole. */
function serializeV1(s: StreamState): Uint8Array {
  const c = s.config;
  const [e, L, N] = [c.width, c.segmentLength, c.numBasis];
  const perLayer = 4 + 8 * L * e + (c.longTermMemory ? 4 * N * e + 8 * c.stickyBins + 8 * c.numHeads * L : 0);
  const bytes = new Uint8Array(48 + c.numLayers * perLayer + 4);
  const v2 = s.serialize();
  bytes.set(v2.subarray(0, 48)); // the header is the same but for the version
  const view = new DataView(bytes.buffer);
  view.setUint32(4, 1, true);
  let o = 48;
  const f32s = (data: ArrayLike<number>, room: number): void => {
    for (let i = 0; i < data.length; i++) view.setFloat32(o + 4 * i, data[i]!, true);
    o += 4 * room;
  };
  for (const l of s.layers) {
    view.setUint32(o, (l.memory ? 1 : 0) | (l.prevX ? 2 : 0) | (l.curX ? 4 : 0), true);
    o += 4;
    f32s(l.prevX?.dataSync() ?? [], L * e);
    f32s(l.curX?.dataSync() ?? [], L * e);
    f32s(l.memory?.dataSync() ?? [], N * e);
    for (const v of l.prevMass) {
      view.setFloat64(o, v, true);
      o += 8;
    }
    f32s(l.curMu, L * c.numHeads);
    f32s(l.curSigmaSq, L * c.numHeads);
  }
  view.setUint32(o, crc32(bytes.subarray(0, o)), true);
  return bytes;
}

test('states saved in format 1 (before the compact layout) still restore bit for bit', (t) => {
  const model = tinyModel({ sticky: true });
  const L = model.config.segmentLength;
  const toks = tokens(L * 4, model.config.vocabSize, 11);
  const live = model.createState(2);
  for (let i = 0; i < 2 * L + 5; i++) model.step([live], [toks[i]!]).dispose();
  const old = serializeV1(live);
  t.true(old.length > live.serialize().length, `format 1: ${old.length} bytes, format 2: ${live.serialize().length}`);
  const restored = model.restoreState(old);
  t.deepEqual(restored.serialize(), live.serialize(), 'the same state, written again in format 2');
  stepBothAlike(t, model, live, restored, toks.slice(2 * L + 5, L * 4));
  live.dispose();
  restored.dispose();
  model.dispose();
});

test('corrupt, truncated or foreign state bytes are typed errors', (t) => {
  const model = tinyModel();
  const other = tinyModel({ width: 8 });
  const s = model.createState();
  model.run([s], [tokens(model.config.segmentLength, model.config.vocabSize, 1)]).dispose();
  const bytes = s.serialize();
  t.throws(() => model.restoreState(bytes.subarray(0, bytes.length - 10)), { instanceOf: ModelFileError, message: /truncated/ });
  const flipped = bytes.slice();
  flipped[200] = flipped[200]! ^ 0x40;
  t.throws(() => model.restoreState(flipped), { instanceOf: ModelFileError, message: /checksum/ });
  t.throws(() => other.restoreState(bytes), { instanceOf: ModelFileError, message: /different model config/ });
  const wrongMagic = bytes.slice();
  wrongMagic[0] = 0;
  t.throws(() => model.restoreState(wrongMagic), { instanceOf: ModelFileError, message: /magic/ });
  const wrongVersion = bytes.slice();
  wrongVersion[4] = 9;
  t.throws(() => model.restoreState(wrongVersion), { instanceOf: ModelFileError, message: /version 9/ });
  s.dispose();
  model.dispose();
  other.dispose();
});

test('bad tokens and mismatched batches are typed errors naming the argument; the state is untouched', (t) => {
  const model = tinyModel();
  const L = model.config.segmentLength;
  const s = model.createState();
  const s2 = model.createState();
  const cases: [unknown[], unknown, string][] = [
    [[s], [[1, 2, model.config.vocabSize]], 'tokens[0]'],
    [[s], [[1, Number.NaN]], 'tokens[0]'],
    [[s], [[1.5]], 'tokens[0]'],
    [[s], [[]], 'tokens'],
    [[s], [new Array(L + 1).fill(0)], 'tokens'],
    [[s, s2], [[1]], 'tokens'],
    [[], [], 'states'],
    [[s, s], [[1], [2]], 'states'],
  ];
  for (const [states, toks, argument] of cases) {
    const error = t.throws(() => model.run(states as StreamState[], toks as number[][]), { instanceOf: BadInputError });
    t.is(error.argument, argument, JSON.stringify(toks));
  }
  model.step([s], [1]).dispose();
  t.is(t.throws(() => model.run([s, s2], [[1], [2]]), { instanceOf: BadInputError }).argument, 'states[1]', 'a chunk needs streams at one position');
  t.is(t.throws(() => model.step([s, s2], [1, 99]), { instanceOf: BadInputError }).argument, 'tokens[0]');
  t.is(s.pos, 1, 'failed calls did not advance the stream');
  t.is(s2.pos, 0);
  const disposed = model.createState();
  disposed.dispose();
  t.is(t.throws(() => model.step([disposed], [1]), { instanceOf: BadInputError }).argument, 'states[0]');
  t.throws(() => model.classify(tf.zeros([1, 1, model.config.width])), { instanceOf: BadInputError });
  s.dispose();
  s2.dispose();
  model.dispose();
});

test('no tensors leak: segment mode, token mode, dispose', (t) => {
  clearRidgeCache();
  const model = tinyModel({ sticky: true });
  const L = model.config.segmentLength;
  const toks = tokens(L * 8, model.config.vocabSize, 5);
  // Warm the ridge-operator caches (they are shared, bounded by the number of configs).
  const warm = model.createState();
  runSegments(model, warm, toks.slice(0, L * 3));
  warm.dispose();
  const before = tf.memory().numTensors;
  const s = model.createState();
  runSegments(model, s, toks.slice(0, L * 4));
  for (let i = L * 4; i < L * 8; i++) model.step([s], [toks[i]!]).dispose();
  s.dispose();
  t.is(tf.memory().numTensors, before);
  model.dispose();
});

test('classifier head: per event and per window shapes, and it reads the trunk', (t) => {
  const model = tinyModel({ numLabels: 3 });
  const L = model.config.segmentLength;
  const s = model.createState();
  const hidden = model.runHidden([s], [tokens(L, model.config.vocabSize, 2)]);
  const perEvent = model.classify(hidden, 'event');
  const perWindow = model.classify(hidden, 'window');
  t.deepEqual(perEvent.shape, [1, L, 3]);
  t.deepEqual(perWindow.shape, [1, 3]);
  // Window logits = head(mean of hidden) = mean of per-event logits (the head is affine).
  const meanEvent = tf.tidy(() => tf.mean(perEvent, 1));
  t.true(maxAbsDiff(meanEvent.dataSync(), perWindow.dataSync()) < 1e-5);
  tf.dispose([hidden, perEvent, perWindow, meanEvent]);
  s.dispose();
  model.dispose();
});
