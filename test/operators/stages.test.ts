import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { TestScheduler } from 'rxjs/testing';
import { concatMap, delay, from, lastValueFrom, map, of, Subject, take, toArray } from 'rxjs';
import { smooth, fitBasis, contractMemory, stickyResample, continuousAttention, MemoryState, disposeFrame, type MemoryFrame, type FrameFailure } from '../../operators/index.js';
import * as core from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { lcg } from '../helpers/reference64.js';

test.before(async () => {
  await backendReady;
});

const L = 32;
const E = 8;
const N = 32;
const H = 2;
const basis = core.gaussianBasis({ numBasis: N, widths: [0.02, 0.04] });
const maxDiff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

function segments(count: number, seed: number): tf.Tensor[] {
  const r = lcg(seed);
  return Array.from({ length: count }, () => tf.tensor2d(Array.from({ length: L }, (_, i) => Array.from({ length: E }, (_, c) => Math.sin((i / L) * 6 + c + r() * 3)))));
}

test('smooth -> fitBasis -> contractMemory emits, after every segment, the memory the functions give', async (t) => {
  const xs = segments(6, 1);
  const copies = xs.map((x) => x.clone());
  const frames = await lastValueFrom(from(copies).pipe(smooth(), fitBasis({ basis }), contractMemory({ basis, tau: 0.5, numSamples: 24 }), toArray()));
  let want: tf.Tensor | undefined;
  frames.forEach((f, k) => {
    const s = core.smooth(xs[k]!);
    const next = want === undefined ? core.fitBasis(s, { basis }) : core.contractMemory(want, s, { basis, tau: 0.5, numSamples: 24 });
    want?.dispose();
    want = next;
    t.is(f.index, k);
    t.deepEqual(f.memory!.shape, [N, E]);
    t.true(maxDiff(f.memory!, want) < 1e-6, `segment ${k}`);
    s.dispose();
    disposeFrame(f);
  });
  tf.dispose([...xs, want!]);
});

test('the full sticky loop (gate smooth, attention over the memory before each segment, sticky positions, contraction) equals a hand-written loop', async (t) => {
  const xs = segments(5, 2);
  const qs = segments(5, 3);
  const r = lcg(4);
  const rand = (shape: number[], scale: number): tf.Tensor => tf.tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (r() * 2 - 1) * scale), shape);
  const gate = { kind: 'gate' as const, kernel: rand([3, E, E], 0.3), bias: rand([E], 0.1) };
  const weights = { wK: rand([E, E], 0.5), wV: rand([E, E], 0.5), wMu: rand([N], 0.3), wSigma: rand([N], 0.3) };
  const opts = { basis, tau: 0.5, numSamples: 24 };

  const state = new MemoryState();
  const input = xs.map((x, k): MemoryFrame => ({ index: k, segment: x.clone(), queries: qs[k]!.clone() }));
  const frames = await lastValueFrom(
    from(input).pipe(
      smooth(gate),
      continuousAttention({ state, basis, numHeads: H, weights }),
      stickyResample({ numSamples: 24, numBins: 16, seed: 7 }),
      contractMemory({ ...opts, state }),
      toArray(),
    ),
  );

  // The same loop by hand with the pure functions.
  const rng = core.createRng(7);
  let memory: tf.Tensor | undefined;
  frames.forEach((f, k) => {
    const s = core.smooth(xs[k]!, gate);
    let positions: Float64Array | undefined;
    if (memory !== undefined) {
      const a = core.continuousAttention(memory, qs[k]!, weights, { basis, numHeads: H });
      t.true(maxDiff(f.context!, a.context) < 1e-6);
      positions = core.stickyResample({ mu: a.mu, sigmaSq: a.sigmaSq }, { numSamples: 24, numBins: 16, rng });
      t.deepEqual(Array.from(f.positions!), Array.from(positions));
      tf.dispose([a.context, a.mu, a.sigmaSq]);
    } else t.is(f.attention, undefined);
    const next = memory === undefined ? core.fitBasis(s, { basis }) : core.contractMemory(memory, s, { ...opts, positions });
    memory?.dispose();
    memory = next;
    t.true(maxDiff(f.memory!, memory) < 1e-6, `segment ${k}`);
    s.dispose();
    disposeFrame(f);
  });
  t.is(state.segments, 5);
  t.true(maxDiff(state.memory!, memory!) === 0);
  state.reset();
  tf.dispose([...xs, ...qs, memory!, gate.kernel, gate.bias, ...Object.values(weights)]);
});

test('a bad segment goes to the dead-letter output with its error and the stream goes on; without one, a typed error', async (t) => {
  const failures: FrameFailure[] = [];
  const dead = new Subject<FrameFailure>();
  dead.subscribe((f) => failures.push(f));
  const good = segments(3, 5);
  const bad = tf.fill([L, E], Number.NaN);
  const frames = await lastValueFrom(from([good[0]!, bad, good[1]!, good[2]!]).pipe(smooth({ kind: 'fixed', deadLetter: dead }), toArray()));
  t.deepEqual(frames.map((f) => f.index), [0, 2, 3]);
  t.is(failures.length, 1);
  t.is(failures[0]!.frame.index, 1);
  t.true(failures[0]!.error instanceof core.BadInputError);
  t.regex(String((failures[0]!.error as Error).message), /^X: contains NaN/);
  frames.forEach(disposeFrame);
  disposeFrame(failures[0]!.frame);
  await t.throwsAsync(lastValueFrom(from([tf.zeros([L])]).pipe(fitBasis({ basis }))), { instanceOf: core.BadInputError, message: /^X: expected rank 2/ });
});

test('asynchrony between attention and contraction is detected, not silently wrong', async (t) => {
  const state = new MemoryState();
  const xs = segments(3, 6).map((x, k): MemoryFrame => ({ index: k, segment: x, queries: x.clone() }));
  const weights = { wK: tf.eye(E), wV: tf.eye(E), wMu: tf.ones([N]), wSigma: tf.ones([N]) };
  await t.throwsAsync(
    lastValueFrom(
      from(xs).pipe(
        continuousAttention({ state, basis, numHeads: H, weights }),
        concatMap((f) => of(f).pipe(delay(5))),
        contractMemory({ basis, state }),
      ),
    ),
    { instanceOf: core.BadInputError, message: /keep the stage operators synchronous and in order/ },
  );
  state.reset();
});

test('no tensor leaks over 300 segments, on completion and on early unsubscribe', async (t) => {
  const base = segments(1, 8)[0]!;
  const run = async (count: number): Promise<void> => {
    const src = from(Array.from({ length: Math.max(count, 300) }, () => base.clone()));
    await lastValueFrom(
      src.pipe(
        smooth(),
        fitBasis({ basis }),
        contractMemory({ basis, numSamples: 24 }),
        take(count),
        map((f) => {
          disposeFrame(f);
          return f.index;
        }),
        toArray(),
      ),
    );
  };
  await run(300); // warm the ridge-operator caches (they hold three tensors by design)
  const before = tf.memory().numTensors;
  await run(300);
  const afterComplete = tf.memory().numTensors;
  // take(10) unsubscribes early; `from` still pushes the other 290 clones synchronously, and
  // the stages free what they receive after the close.
  await run(10);
  t.is(afterComplete, before);
  t.is(tf.memory().numTensors, before);
  t.log(`300 segments: live tensors before ${before}, after completion ${afterComplete}`);
  base.dispose();
});

test('marbles: completion, error passthrough, early unsubscribe', (t) => {
  const x = tf.ones([L, E]);
  const sched = new TestScheduler((a, b) => t.deepEqual(a, b));
  sched.run(({ cold, expectObservable, expectSubscriptions }) => {
    const idx = map((f: MemoryFrame) => {
      disposeFrame(f);
      return f.index;
    });
    const fresh = map(() => x.clone()); // frames own their segments: one tensor per emission
    const src = cold('a-a-|');
    expectObservable(src.pipe(fresh, fitBasis({ basis }), idx)).toBe('a-b-|', { a: 0, b: 1 });
    const failing = cold('a-#', undefined, new Error('upstream'));
    expectObservable(failing.pipe(fresh, smooth(), idx)).toBe('a-#', { a: 0 }, new Error('upstream'));
    const long = cold('a-a-a-a-|');
    expectObservable(long.pipe(fresh, contractMemory({ basis, numSamples: 8 }), idx), '^--!').toBe('a-b', { a: 0, b: 1 });
    expectSubscriptions(long.subscriptions).toBe('^--!');
  });
  x.dispose();
});
