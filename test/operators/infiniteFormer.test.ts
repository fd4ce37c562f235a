import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { from, lastValueFrom, map, queueScheduler, Subject, take, toArray, VirtualTimeScheduler, Observable, throwError, concat } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { infiniteFormer, keyStateFromBytes, keyStateToBytes, type ModelOutput, type RecordFailure, type TokenInput } from '../../operators/index.js';
import { BadConfigError, BadInputError, InfiniFormer, ModelFileError, OverflowError, setLogSink, type LogEntry } from '../../src/index.js';
import { MemoryKeyStore } from '../../src/state/memoryKeyStore.js';
import { SpillingKeyStore } from '../../src/state/spillingKeyStore.js';
import { backendReady } from '../helpers/backend.js';
import { lcg } from '../helpers/reference64.js';
import { maxAbsDiff, tinyModel, tokens as randomTokens } from '../model/helpers.js';

test.before(async () => {
  await backendReady;
});

const LN2 = Math.LN2;

/** Per-key token streams split into records of 1-3 tokens, interleaved pseudo-randomly. */
function interleaved(streams: Record<string, number[]>, seed: number): { key: string; tokens: number[]; source: string }[] {
  const r = lcg(seed);
  const cursors = Object.fromEntries(Object.keys(streams).map((k) => [k, 0]));
  const out: { key: string; tokens: number[]; source: string }[] = [];
  for (;;) {
    const open = Object.keys(streams).filter((k) => cursors[k]! < streams[k]!.length);
    if (open.length === 0) return out;
    const key = open[Math.floor(r() * open.length)]!;
    const n = 1 + Math.floor(r() * 3);
    const at = cursors[key]!;
    out.push({ key, tokens: streams[key]!.slice(at, at + n), source: `${key}@${at}` });
    cursors[key] = at + n;
  }
}

/** The model called directly, token by token: each token's next-token log-probabilities. */
function directTokens(model: InfiniFormer, toks: number[], seed = 0): Float32Array[] {
  const s = model.createState(seed);
  const out = toks.map((tok) => {
    const logits = model.step([s], [tok]);
    const lp = tf.logSoftmax(logits);
    const row = lp.dataSync().slice() as Float32Array;
    tf.dispose([logits, lp]);
    return row;
  });
  s.dispose();
  return out;
}

/** The model called directly on whole segments (the last one partial): each token's log-probabilities. */
function directSegments(model: InfiniFormer, toks: number[], seed = 0): Float32Array[] {
  const L = model.config.segmentLength;
  const V = model.config.vocabSize;
  const s = model.createState(seed);
  const out: Float32Array[] = [];
  for (let at = 0; at < toks.length; at += L) {
    const chunk = toks.slice(at, at + L);
    const logits = model.run([s], [chunk]);
    const lp = tf.logSoftmax(tf.reshape(logits, [chunk.length, V]));
    const data = lp.dataSync();
    for (let j = 0; j < chunk.length; j++) out.push(data.slice(j * V, (j + 1) * V) as Float32Array);
    tf.dispose([logits, lp]);
  }
  s.dispose();
  return out;
}

const argmax = (a: Float32Array): number => a.reduce((best, v, i) => (v > a[best]! ? i : best), 0);

/** Compares the operator's outputs with direct per-key results; returns the largest difference. */
function compare(t: { is: (a: unknown, b: unknown, m?: string) => void; true: (v: boolean, m?: string) => void }, outputs: ModelOutput[], streams: Record<string, number[]>, direct: Record<string, Float32Array[]>, exact: boolean): number {
  let worst = 0;
  let argmaxSame = true;
  for (const key of Object.keys(streams)) {
    const mine = outputs.filter((o) => o.key === key);
    t.is(mine.length, streams[key]!.length, `key ${key}: one output per token`);
    mine.forEach((o, i) => {
      t.is(o.index, i);
      t.is(o.token, streams[key]![i]);
      const want = direct[key]![i]!;
      const d = maxAbsDiff(o.nextLogProbs, want);
      worst = Math.max(worst, d);
      if (argmax(o.nextLogProbs) !== argmax(want)) argmaxSame = false;
      const wantSurprisal = i === 0 ? Number.NaN : -direct[key]![i - 1]![o.token]! / LN2;
      if (i === 0) t.true(Number.isNaN(o.surprisal), 'the first token has no prediction');
      else worst = Math.max(worst, Math.abs(o.surprisal - wantSurprisal));
    });
  }
  if (exact) t.is(worst, 0, 'bit-identical');
  else t.true(worst <= 1e-5, `max difference ${worst}`);
  t.true(argmaxSame, 'the same most likely next token everywhere');
  return worst;
}

const STREAMS = (V: number): Record<string, number[]> => ({ a: randomTokens(37, V, 1), b: randomTokens(29, V, 2), c: randomTokens(45, V, 3) });

for (const mode of ['token', 'segment'] as const) {
  test(`acceptance 2 (${mode} mode): 3 interleaved keys give the per-key results of calling the model directly`, async (t) => {
    const model = tinyModel({ sticky: true });
    const streams = STREAMS(model.config.vocabSize);
    const records = interleaved(streams, 11);
    const direct = Object.fromEntries(Object.entries(streams).map(([k, toks]) => [k, mode === 'token' ? directTokens(model, toks) : directSegments(model, toks)]));
    // Batching off: every key runs alone, with the same operations as the direct calls.
    const alone = infiniteFormer(model, { mode, batch: false });
    const outAlone = await lastValueFrom(from(records).pipe(alone, toArray()));
    const exact = compare(t, outAlone, streams, direct, true);
    // Batching on: keys ready at the same moment share forward passes.
    const together = infiniteFormer(model, { mode });
    const outTogether = await lastValueFrom(from(records).pipe(together, toArray()));
    const batched = compare(t, outTogether, streams, direct, false);
    const tokens = 37 + 29 + 45;
    t.true(together.stats().forwardPasses < alone.stats().forwardPasses, 'batching saved forward passes');
    t.log(`${mode} mode: batch off max |diff| = ${exact} over ${alone.stats().forwardPasses} passes; batch on max |diff| = ${batched.toExponential(2)} over ${together.stats().forwardPasses} passes (${tokens} tokens)`);
    // Sources and record boundaries pass through: each record's last token ends it.
    for (const rec of records) {
      const outs = outTogether.filter((o) => o.source === rec.source);
      t.is(outs.length, rec.tokens.length);
      t.deepEqual(outs.map((o) => o.endOfRecord), rec.tokens.map((_, i) => i === rec.tokens.length - 1));
    }
    model.dispose();
  });
}

test('property: any interleaving, record sizes, key bound, batching and scheduler give each key its direct per-key results', async (t) => {
  const model = tinyModel({ numLayers: 1, sticky: true });
  const V = model.config.vocabSize;
  const r = lcg(77);
  const cache = new Map<string, Float32Array[]>();
  let worst = 0;
  for (let trial = 0; trial < 8; trial++) {
    const mode = r() < 0.5 ? 'token' : 'segment';
    const streams: Record<string, number[]> = {};
    for (const k of ['p', 'q', 'r']) streams[k] = randomTokens(1 + Math.floor(r() * 20), V, 100 + Math.floor(r() * 5));
    const direct = Object.fromEntries(
      Object.entries(streams).map(([k, toks]) => {
        const id = `${mode}:${toks.join(',')}`;
        if (!cache.has(id)) cache.set(id, mode === 'token' ? directTokens(model, toks) : directSegments(model, toks));
        return [k, cache.get(id)!];
      }),
    );
    const options = {
      mode,
      maxKeys: 1 + Math.floor(r() * 3),
      batch: r() < 0.7,
      maxQueue: mode === 'segment' ? 8 + Math.floor(r() * 8) : 1 + Math.floor(r() * 6),
      scheduler: r() < 0.5 ? queueScheduler : undefined,
      store: new MemoryKeyStore(),
    } as const;
    const out = await lastValueFrom(from(interleaved(streams, 200 + trial)).pipe(infiniteFormer(model, options), toArray()));
    worst = Math.max(worst, compare(t, out, streams, direct, false));
  }
  t.log(`8 random configurations: max |diff| = ${worst.toExponential(2)}`);
  model.dispose();
});

test('LRU eviction: a key spilled into the store (memory or LMDB) and restored continues bit-identically to one never evicted (token and segment mode)', async (t) => {
  const model = tinyModel({ sticky: true });
  const V = model.config.vocabSize;
  const streams = { a: randomTokens(30, V, 4), b: randomTokens(26, V, 5), c: randomTokens(33, V, 6), d: randomTokens(21, V, 7) };
  const records = interleaved(streams, 12);
  const dir = mkdtempSync(join(tmpdir(), 'if-evict-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [mode, kind] of [['token', 'memory'], ['segment', 'memory'], ['token', 'lmdb'], ['segment', 'lmdb']] as const) {
    const never = await lastValueFrom(from(records).pipe(infiniteFormer(model, { mode, batch: false, seed: (k) => k.charCodeAt(0) }), toArray()));
    // The LMDB store keeps no entry in memory: every restore reads the disk.
    const store = kind === 'memory' ? new MemoryKeyStore() : new SpillingKeyStore(join(dir, mode), { maxHotEntries: 0 });
    const lm = infiniteFormer(model, {
      mode,
      batch: false,
      seed: (k) => k.charCodeAt(0),
      maxKeys: 2,
      spillOnComplete: false,
      store,
    });
    const spilled = await lastValueFrom(from(records).pipe(lm, toArray()));
    const stats = lm.stats();
    t.true(stats.evictions >= 10, `${mode}: ${stats.evictions} evictions`);
    t.true(stats.restores >= 10);
    t.is(stats.liveKeys, 0, 'everything freed on completion');
    const byId = new Map(never.map((o) => [`${o.key}:${o.index}`, o]));
    let worst = 0;
    for (const o of spilled) {
      const ref = byId.get(`${o.key}:${o.index}`)!;
      t.is(o.token, ref.token);
      worst = Math.max(worst, maxAbsDiff(o.nextLogProbs, ref.nextLogProbs));
      t.true(Object.is(o.surprisal, ref.surprisal) || o.surprisal === ref.surprisal);
    }
    t.is(spilled.length, never.length);
    t.is(worst, 0);
    t.log(`${mode} mode, ${kind} store: ${stats.evictions} evictions, ${stats.restores} restores, max |diff| vs never evicted = ${worst}`);
    await store.close();
  }
  model.dispose();
});

test('more waiting keys than maxKeys (token mode): a live key is not evicted between its tokens; exactly one eviction per key brought in, outputs as with room for all', async (t) => {
  const model = tinyModel({ sticky: true });
  const V = model.config.vocabSize;
  const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
  const maxKeys = 3;
  // Two waves of one 2-token record per key; the second comes once the first has run.
  const wave = (w: number): TokenInput[] => keys.map((key, i) => ({ key, tokens: randomTokens(2, V, 50 + 10 * w + i) }));
  const run = async (bound: number): Promise<{ out: ModelOutput[]; evictions: number; restores: number }> => {
    const input = new Subject<TokenInput>();
    const lm = infiniteFormer(model, { batch: false, maxKeys: bound, store: new MemoryKeyStore(), spillOnComplete: false });
    const done = lastValueFrom(input.pipe(lm, toArray()));
    for (const r of wave(0)) input.next(r);
    while (lm.stats().pending > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    for (const r of wave(1)) input.next(r);
    input.complete();
    const out = await done;
    return { out, evictions: lm.stats().evictions, restores: lm.stats().restores };
  };
  const roomy = await run(100);
  const tight = await run(maxKeys);
  t.is(roomy.evictions, 0);
  // Wave 1: the first 3 keys run both tokens, then each of the other 7 evicts an idle key.
  // Wave 2: the 3 live keys (k7-k9) run first; each of the 7 others is restored and evicts an idle one.
  t.is(tight.evictions, 2 * (keys.length - maxKeys));
  t.is(tight.restores, keys.length - maxKeys);
  t.is(tight.out.length, 4 * keys.length);
  const want = new Map(roomy.out.map((o) => [`${o.key}:${o.index}`, o]));
  for (const o of tight.out) {
    const ref = want.get(`${o.key}:${o.index}`)!;
    t.is(o.token, ref.token);
    t.is(maxAbsDiff(o.nextLogProbs, ref.nextLogProbs), 0);
    t.true(Object.is(o.surprisal, ref.surprisal));
  }
  model.dispose();
});

test('fair admission: a live key runs at most L tokens ahead of a waiting key out of memory, which then gets its turn (no starvation)', async (t) => {
  const model = tinyModel();
  const L = model.config.segmentLength;
  const V = model.config.vocabSize;
  const records: TokenInput[] = [
    { key: 'hot', tokens: randomTokens(3 * L, V, 8) },
    { key: 'cold', tokens: [1] },
  ];
  const lm = infiniteFormer(model, { maxKeys: 1, store: new MemoryKeyStore(), spillOnComplete: false });
  const out = await lastValueFrom(from(records).pipe(lm, toArray()));
  t.is(out.length, 3 * L + 1);
  // 'hot' keeps its place for L tokens, then 'cold' comes in (evicting 'hot'), then 'hot' comes back.
  t.deepEqual(out.map((o) => o.key).indexOf('cold'), L);
  t.is(lm.stats().evictions, 2);
  t.is(lm.stats().restores, 1);
  model.dispose();
});

test('checkpoint() of a live subscription writes every key to the store; a next run with that store continues exactly', async (t) => {
  const model = tinyModel({ sticky: true });
  const V = model.config.vocabSize;
  const streams = { a: randomTokens(40, V, 8), b: randomTokens(35, V, 9), c: randomTokens(19, V, 10) };
  const records = interleaved(streams, 13);
  const half = Math.floor(records.length / 2);
  const whole = await lastValueFrom(from(records).pipe(infiniteFormer(model, { batch: false }), toArray()));

  // First run: a live subject source on a synchronous scheduler; checkpoint after the first half.
  const input = new Subject<TokenInput>();
  const store = new MemoryKeyStore();
  const lm = infiniteFormer(model, { batch: false, scheduler: queueScheduler, store });
  const first: ModelOutput[] = [];
  const sub = input.pipe(lm).subscribe((o) => first.push(o));
  records.slice(0, half).forEach((r) => input.next(r));
  await lm.checkpoint();
  t.deepEqual([...store.keys()].sort(), ['a', 'b', 'c']);
  const snap = new Map([...store.keys()].map((k) => [k, store.get(k)!]));
  sub.unsubscribe();
  await lm.checkpoint(); // no live subscription: nothing to write
  await t.throwsAsync(infiniteFormer(model).checkpoint(), { instanceOf: BadConfigError, message: /store: checkpoint\(\) needs a store/ });

  // Second run from the store: the rest of the stream.
  const rest = await lastValueFrom(from(records.slice(half)).pipe(infiniteFormer(model, { batch: false, store: new MemoryKeyStore(snap) }), toArray()));
  const expected = whole.filter((o) => !first.some((f) => f.key === o.key && f.index === o.index));
  t.is(first.length + rest.length, whole.length);
  const byId = new Map(expected.map((o) => [`${o.key}:${o.index}`, o]));
  let worst = 0;
  for (const o of rest) {
    const ref = byId.get(`${o.key}:${o.index}`);
    t.truthy(ref, `${o.key}:${o.index} continues the index`);
    worst = Math.max(worst, maxAbsDiff(o.nextLogProbs, ref!.nextLogProbs), Math.abs(o.surprisal - ref!.surprisal));
  }
  t.is(worst, 0);
  t.false(rest.some((o) => Number.isNaN(o.surprisal)), 'the prediction before the first token of the second run was kept');

  // Completion writes every key into the store: the same bytes as the live checkpoint.
  const spilled = new MemoryKeyStore();
  await lastValueFrom(from(records.slice(0, half)).pipe(infiniteFormer(model, { batch: false, store: spilled }), toArray()));
  t.deepEqual([...spilled.keys()].sort(), ['a', 'b', 'c']);
  for (const [k, bytes] of snap) t.deepEqual(spilled.get(k), bytes, `key ${k}: the completion spill equals the live checkpoint`);

  // Bare StreamState bytes restore too (without a prediction: the first surprisal is NaN).
  const bare = keyStateFromBytes(model, snap.get('a')!);
  const fromBare = await lastValueFrom(from([{ key: 'a', token: 1 }]).pipe(infiniteFormer(model, { store: new MemoryKeyStore([['a', bare.state.serialize()]]) }), toArray()));
  t.is(fromBare[0]!.index, bare.state.tokensSeen);
  t.true(Number.isNaN(fromBare[0]!.surprisal));
  t.is(keyStateToBytes(bare).length, snap.get('a')!.length);
  bare.state.dispose();
  model.dispose();
});

test('reload(keys): a key without waiting tokens continues from the state put in the store since (bit-identical to a run of that state\'s input); a key with tokens waiting is left alone and named by waiting()', async (t) => {
  const model = tinyModel();
  const V = model.config.vocabSize;
  const [first, other, next] = [randomTokens(7, V, 21), randomTokens(9, V, 22), randomTokens(5, V, 23)];
  // The state another owner left: key a after `other`, spilled into a store by its own run.
  const elsewhere = new MemoryKeyStore();
  await lastValueFrom(from([{ key: 'a', tokens: other }]).pipe(infiniteFormer(model, { batch: false, store: elsewhere }), toArray()));
  const reference = await lastValueFrom(from([{ key: 'a', tokens: other }, { key: 'a', tokens: next }]).pipe(infiniteFormer(model, { batch: false }), toArray()));

  const scheduler = new VirtualTimeScheduler();
  const store = new MemoryKeyStore();
  const lm = infiniteFormer(model, { batch: false, mode: 'token', scheduler, store, spillOnComplete: false });
  const input = new Subject<TokenInput>();
  const outs: ModelOutput[] = [];
  const sub = input.pipe(lm).subscribe((o) => outs.push(o));
  input.next({ key: 'a', tokens: first });
  input.next({ key: 'b', tokens: first });
  t.deepEqual(lm.waiting(['a', 'b', 'c']), ['a', 'b'], 'tokens of a and b wait for the scheduler');
  t.deepEqual(lm.reload(['a']), ['a'], 'left alone: its tokens wait');
  scheduler.flush();
  t.deepEqual(lm.waiting(['a', 'b']), []);
  t.is(outs.length, 2 * first.length);
  // The other owner's state lands in the store; reload drops the one in memory.
  store.put('a', elsewhere.get('a')!);
  t.deepEqual(lm.reload(['a']), []);
  input.next({ key: 'a', tokens: next });
  scheduler.flush();
  const after = outs.slice(2 * first.length);
  const want = reference.slice(other.length);
  t.is(after.length, next.length);
  let worst = 0;
  after.forEach((o, i) => (worst = Math.max(worst, Math.abs(o.surprisal - want[i]!.surprisal), maxAbsDiff(o.nextLogProbs, want[i]!.nextLogProbs))));
  t.is(worst, 0, 'a continued from the reloaded state, as if it had read `other`');
  t.is(after[0]!.index, other.length, 'and its token count');
  sub.unsubscribe();
});

test('bad records go to the errors side output with a typed error; the stream goes on and the good records are unaffected', async (t) => {
  const model = tinyModel();
  const V = model.config.vocabSize;
  const good = { a: randomTokens(12, V, 14), b: randomTokens(9, V, 15) };
  const records: unknown[] = interleaved(good, 16);
  const bad: [unknown, string][] = [
    [{ key: 'a', token: V }, 'tokens'],
    [{ key: 'a', tokens: [1, 2.5] }, 'tokens'],
    [{ key: 'b', tokens: [1, Number.NaN] }, 'tokens'],
    [{ key: 'b', tokens: [-1] }, 'tokens'],
    [{ key: 'b', tokens: [] }, 'tokens'],
    [{ key: 'b' }, 'tokens'],
    [{ token: 3 }, 'key'],
    [{ key: 7, token: 3 }, 'key'],
    [null, 'key'],
  ];
  bad.forEach(([rec], i) => records.splice(2 + 3 * i, 0, rec));
  const failures: RecordFailure<TokenInput>[] = [];
  const errors = new Subject<RecordFailure<TokenInput>>();
  errors.subscribe((f) => failures.push(f));
  const lm = infiniteFormer(model, { errors });
  const out = await lastValueFrom(from(records as TokenInput[]).pipe(lm, toArray()));
  t.is(failures.length, bad.length);
  failures.forEach((f, i) => {
    t.true(f.error instanceof BadInputError, f.error.message);
    t.is((f.error as BadInputError).argument, bad[i]![1], f.error.message);
    t.is(f.record as unknown, bad[i]![0]);
  });
  t.is(lm.stats().errors, bad.length);
  compare(t, out, good, { a: directTokens(model, good.a), b: directTokens(model, good.b) }, false);
  // Without a side output the bad records are logged (warn) and dropped; the stream still
  // completes. (Synchronous scheduler: the log sink is swapped for this block only.)
  const logged: LogEntry[] = [];
  const previous = setLogSink((entry) => logged.push(entry));
  const quiet: number[] = [];
  let completed = false;
  from([{ key: 'a', token: V }, { key: 'a', token: 1 }] as TokenInput[])
    .pipe(infiniteFormer(model, { scheduler: queueScheduler }))
    .subscribe({ next: (o) => quiet.push(o.token), complete: () => (completed = true) });
  setLogSink(previous);
  t.deepEqual(quiet, [1]);
  t.true(completed);
  t.is(logged.length, 1);
  t.is(logged[0]!.level, 'warn');
  t.regex(String(logged[0]!.fields['error']), /^tokens: token 0 is 23/);
  // Bytes that do not restore: an error record, and the key starts fresh.
  const broken = new Subject<RecordFailure<TokenInput>>();
  const seen: RecordFailure<TokenInput>[] = [];
  broken.subscribe((f) => seen.push(f));
  const fresh = await lastValueFrom(from([{ key: 'z', token: 1 }]).pipe(infiniteFormer(model, { errors: broken, store: new MemoryKeyStore([['z', new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])]]) }), toArray()));
  t.true(seen[0]?.error instanceof ModelFileError);
  t.is(fresh[0]!.index, 0);
  model.dispose();
});

test('queue overflow: block (nothing lost), error-record (the record rejected), drop-oldest (the oldest tokens dropped)', async (t) => {
  const model = tinyModel();
  const V = model.config.vocabSize;
  const toks = randomTokens(10, V, 17);
  const records = toks.map((token, i) => ({ key: 'k', token, source: i }));
  // A synchronous burst of 10 records into a queue of 4 (the model runs on a later tick).
  const run = async (overflow: 'block' | 'error-record' | 'drop-oldest') => {
    const failures: RecordFailure<TokenInput>[] = [];
    const lm = infiniteFormer(model, { overflow, maxQueue: 4, errors: { next: (f) => failures.push(f) } });
    const out = await lastValueFrom(from(records).pipe(lm, toArray()));
    return { out, failures, stats: lm.stats() };
  };
  const block = await run('block');
  t.deepEqual(block.out.map((o) => o.source), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.is(block.failures.length, 0);
  t.is(block.stats.maxQueued, 4, 'the queue never held more than maxQueue');
  t.is(maxAbsDiff(block.out.map((o) => o.nextLogProbs[0]!), directTokens(model, toks).map((r) => r[0]!)) <= 1e-6, true);

  const reject = await run('error-record');
  t.deepEqual(reject.out.map((o) => o.source), [0, 1, 2, 3]);
  t.deepEqual(reject.failures.map((f) => (f.record as { source: number }).source), [4, 5, 6, 7, 8, 9]);
  t.true(reject.failures.every((f) => f.error instanceof OverflowError && f.error.retriable));
  t.is(reject.stats.maxQueued, 4);

  const drop = await run('drop-oldest');
  t.deepEqual(drop.out.map((o) => o.source), [6, 7, 8, 9]);
  t.deepEqual(drop.failures.map((f) => f.token), toks.slice(0, 6));
  t.is(drop.stats.dropped, 6);
  t.is(drop.stats.maxQueued, 4);
  // The model saw exactly the kept tokens, as a fresh stream.
  const kept = directTokens(model, toks.slice(6));
  t.true(drop.out.every((o, i) => maxAbsDiff(o.nextLogProbs, kept[i]!) <= 1e-6 && o.index === i));
  // A record longer than the queue still gets through with 'block'.
  const long = await lastValueFrom(from([{ key: 'k', tokens: toks }]).pipe(infiniteFormer(model, { maxQueue: 3 }), toArray()));
  t.deepEqual(long.map((o) => o.token), toks);
  model.dispose();
});

test('pause/resume: a source that honours the hooks is paused at the high watermark and resumed at the low one', (t) => {
  const model = tinyModel({ numLayers: 1 });
  const V = model.config.vocabSize;
  const scheduler = new VirtualTimeScheduler();
  const keys = ['a', 'b', 'c'];
  const total = 90;
  const events: string[] = [];
  let maxPending = 0;
  let paused = false;
  let sent = 0;
  let burst = (): void => undefined;
  // A source that emits bursts of up to 20 records every 1 ms of virtual time, unless paused.
  const source = new Observable<TokenInput>((subscriber) => {
    burst = () => {
      for (let i = 0; i < 20 && sent < total && !paused; i++, sent++) {
        subscriber.next({ key: keys[sent % 3]!, token: sent % V });
        maxPending = Math.max(maxPending, lm.stats().pending);
      }
      if (sent === total) subscriber.complete();
      else if (!paused) scheduler.schedule(burst, 1);
    };
    scheduler.schedule(burst, 0);
  });
  const lm = infiniteFormer(model, {
    scheduler,
    roundsPerTick: 1, // one round (one token per key) per tick
    highWatermark: 12,
    lowWatermark: 3,
    onPause: () => {
      paused = true;
      events.push(`pause@${lm.stats().pending}`);
    },
    onResume: () => {
      paused = false;
      events.push(`resume@${lm.stats().pending}`);
      scheduler.schedule(burst, 0);
    },
  });
  const out: ModelOutput[] = [];
  let done = false;
  source.pipe(lm).subscribe({ next: (o) => out.push(o), complete: () => (done = true) });
  scheduler.flush();
  t.true(done);
  t.is(out.length, total, 'nothing lost');
  t.log(events.join(' '));
  t.true(lm.stats().pauses >= 5);
  t.is(maxPending, 12, 'the backlog never passed the high watermark');
  events.forEach((ev, i) => t.is(ev, i % 2 === 0 ? 'pause@12' : 'resume@3'));
  // Per key, every token, in order.
  for (const k of keys) t.deepEqual(out.filter((o) => o.key === k).map((o) => o.index), Array.from({ length: total / 3 }, (_, i) => i));
  model.dispose();
});

test('marbles: token mode emits on the tick after arrival; segment mode waits for full segments, maxDelayMs flushes partials, completion flushes the rest', (t) => {
  const model = tinyModel({ numLayers: 1 });
  const L = model.config.segmentLength; // 8
  const sched = new TestScheduler((a, b) => t.deepEqual(a, b));
  const id = map((o: ModelOutput) => `${o.key}${o.index}`);
  const rec = (key: string, n: number, at = 0): TokenInput => ({ key, tokens: Array.from({ length: n }, (_, i) => (at + i) % 20) });
  sched.run(({ cold, expectObservable, expectSubscriptions }) => {
    // Token mode: each record's tokens come out in the frame it arrives (the tick has no delay).
    const src = cold('a 9ms b 9ms |', { a: rec('x', 2), b: rec('y', 1) });
    expectObservable(src.pipe(infiniteFormer(model), id)).toBe('(pq) 6ms r 9ms |', { p: 'x0', q: 'x1', r: 'y0' });
    expectSubscriptions(src.subscriptions).toBe('^ 19ms !');
    // Segment mode: 3 tokens wait; 5 more fill the segment at 10 ms; 2 wait for completion.
    const seg = cold('a 9ms b 19ms c 9ms |', { a: rec('x', 3), b: rec('x', 5, 3), c: rec('x', 2, 8) });
    const all = (from: number, to: number): Record<string, string> => Object.fromEntries(Array.from({ length: to - from }, (_, i) => [String.fromCharCode(97 + from + i), `x${from + i}`]));
    expectObservable(seg.pipe(infiniteFormer(model, { mode: 'segment' }), id)).toBe('10ms (abcdefgh) 20ms (ij|)', all(0, 10));
    // maxDelayMs: a partial chunk runs 5 ms after its first token arrived.
    const slow = cold('a 9ms b 19ms |', { a: rec('x', 3), b: rec('x', 2, 3) });
    expectObservable(slow.pipe(infiniteFormer(model, { mode: 'segment', maxDelayMs: 5 }), id)).toBe('5ms (abc) 5ms (de) 11ms |', all(0, 5));
    t.is(L, 8);
  });
  model.dispose();
});

test('marbles: an upstream error passes through after the waiting tokens ran (or before, if asked); early unsubscribe stops everything', (t) => {
  const model = tinyModel({ numLayers: 1 });
  const sched = new TestScheduler((a, b) => t.deepEqual(a, b));
  const id = map((o: ModelOutput) => `${o.key}${o.index}`);
  sched.run(({ cold, expectObservable, expectSubscriptions }) => {
    const failing = cold('a-#', { a: { key: 'x', tokens: [1, 2, 3] } }, new Error('upstream'));
    expectObservable(failing.pipe(infiniteFormer(model, { mode: 'segment' }), id)).toBe('--(abc#)', { a: 'x0', b: 'x1', c: 'x2' }, new Error('upstream'));
    expectObservable(failing.pipe(infiniteFormer(model, { mode: 'segment', flushOnError: false }), id)).toBe('--#', undefined, new Error('upstream'));
    const long = cold('a-a-a-a-|', { a: { key: 'x', token: 1 } });
    expectObservable(long.pipe(infiniteFormer(model), id), '^--!').toBe('a-b', { a: 'x0', b: 'x1' });
    expectSubscriptions(long.subscriptions).toBe('^--!');
  });
  model.dispose();
});

// Serial: ava runs serial tests before the concurrent ones, so no other test allocates meanwhile.
test.serial('no tensor leaks: completion, upstream error, early unsubscribe, eviction, a throwing hook, in both modes', async (t) => {
  const model = tinyModel({ sticky: true });
  const V = model.config.vocabSize;
  const streams = { a: randomTokens(40, V, 20), b: randomTokens(30, V, 21), c: randomTokens(25, V, 22) };
  const records = interleaved(streams, 23);
  // Warm the shared ridge-operator caches (bounded, one set per config) first.
  await lastValueFrom(from(records).pipe(infiniteFormer(model), toArray()));
  const before = tf.memory().numTensors;
  for (const mode of ['token', 'segment'] as const) {
    await lastValueFrom(from(records).pipe(infiniteFormer(model, { mode }), toArray()));
    t.is(tf.memory().numTensors, before, `${mode}: completion`);
    await lastValueFrom(from(records).pipe(infiniteFormer(model, { mode, maxKeys: 1 }), toArray()));
    t.is(tf.memory().numTensors, before, `${mode}: eviction without a store`);
    await lastValueFrom(from(records).pipe(infiniteFormer(model, { mode, maxKeys: 1, store: new MemoryKeyStore() }), toArray()));
    t.is(tf.memory().numTensors, before, `${mode}: eviction into a store and restores`);
    const disk = new SpillingKeyStore(mkdtempSync(join(tmpdir(), 'if-leak-')), { maxHotEntries: 0 });
    await lastValueFrom(from(records).pipe(infiniteFormer(model, { mode, maxKeys: 1, store: disk }), toArray()));
    await disk.close();
    rmSync(disk.path, { recursive: true, force: true });
    t.is(tf.memory().numTensors, before, `${mode}: eviction into LMDB and restores`);
    await t.throwsAsync(lastValueFrom(concat(from(records.slice(0, 20)), throwError(() => new Error('boom'))).pipe(infiniteFormer(model, { mode }), toArray())), { message: 'boom' });
    t.is(tf.memory().numTensors, before, `${mode}: error`);
    const some = await lastValueFrom(from(records).pipe(infiniteFormer(model, { mode }), take(7), toArray()));
    t.is(some.length, 7);
    t.is(tf.memory().numTensors, before, `${mode}: early unsubscribe`);
    // A store that throws on put errors the stream, and everything is freed.
    const full = new MemoryKeyStore();
    full.put = (): never => {
      throw new Error('spill store full');
    };
    await t.throwsAsync(lastValueFrom(from(records).pipe(infiniteFormer(model, { mode, maxKeys: 1, store: full }), toArray())), { message: 'spill store full' });
    t.is(tf.memory().numTensors, before, `${mode}: a hook threw`);
  }
  t.log(`live tensors before and after every run: ${before}`);
  model.dispose();
});

test('bad options are typed config errors naming the option', (t) => {
  const model = tinyModel();
  const cases: [object, string][] = [
    [{ mode: 'chunk' }, 'mode'],
    [{ maxKeys: 0 }, 'maxKeys'],
    [{ maxQueue: 1.5 }, 'maxQueue'],
    [{ mode: 'segment', maxQueue: 4 }, 'maxQueue'],
    [{ overflow: 'drop-newest' }, 'overflow'],
    [{ highWatermark: 4, lowWatermark: 4 }, 'lowWatermark'],
    [{ maxDelayMs: 10 }, 'maxDelayMs'],
    [{ mode: 'segment', maxDelayMs: -1 }, 'maxDelayMs'],
    [{ roundsPerTick: 0 }, 'roundsPerTick'],
    [{ seed: Number.NaN }, 'seed'],
    [{ onPause: 'yes' }, 'onPause'],
    [{ store: new Map() }, 'store'],
  ];
  for (const [options, option] of cases) {
    const error = t.throws(() => infiniteFormer(model, options as never), { instanceOf: BadConfigError });
    t.is(error.option, option, JSON.stringify(options));
  }
  t.is(t.throws(() => infiniteFormer({} as InfiniFormer), { instanceOf: BadConfigError }).option, 'model');
  t.throws(() => keyStateFromBytes(model, new Uint8Array(20)), { instanceOf: ModelFileError, message: /magic/ });
  model.dispose();
});
