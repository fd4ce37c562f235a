import { Observable, asyncScheduler, type OperatorFunction, type SchedulerLike, type Subscriber, type Subscription } from 'rxjs';
import { BadConfigError, BadInputError, InfiniformerError, OverflowError } from '../src/errors.js';
import { InfiniFormer } from '../src/model/model.js';
import type { OnlineLearner } from '../src/model/onlineLearner.js';
import type { KeyStateStore } from '../src/state/keyStateStore.js';
import { ChunkRunner } from './chunkRunner.js';
import { KeyCache } from './keyCache.js';
import { readTokens } from './records.js';
import { reportFailure, type ErrorSideOutput } from './sideOutput.js';
import type { ModelOutput, TokenInput } from './types.js';

/**
 * What happens when a key's queue holds `maxQueue` tokens and more arrive:
 * - `'block'`: the incoming call runs the model (batched rounds over every waiting key) until
 *   the key has room, then returns. Nothing is lost; a synchronous source is throttled by the
 *   call stack itself. (When the call comes back into the operator from inside its own model
 *   rounds, e.g. a downstream that feeds its source synchronously, it cannot wait and the
 *   record is rejected as with `'error-record'`.)
 * - `'error-record'`: the whole record is rejected: an `OverflowError` record on `errors`.
 * - `'drop-oldest'`: the record is queued and the key's oldest waiting tokens are dropped, each
 *   reported on `errors` with an `OverflowError` and its token (the model never sees them).
 */
export type OverflowStrategy = 'block' | 'error-record' | 'drop-oldest';

/** Options of {@link infiniteFormer}. All are optional. */
export interface InfiniteFormerOptions<T> extends ErrorSideOutput<T> {
  /**
   * `'token'` (default): every token runs as soon as it can (one prediction per token, lowest
   * latency). `'segment'`: a key's tokens wait until they fill its segment (L minus its position),
   * then run as one chunk (higher throughput); `maxDelayMs` and completion flush partial chunks.
   * Both give the same outputs to float tolerance.
   */
  mode?: 'token' | 'segment';
  /** Key selector (one model state per key). Default `record.key`; a key that is not a string makes an error record. */
  key?: (record: T) => string | undefined;
  /** Token selector: one id or several. Default `record.tokens ?? record.token`. */
  tokens?: (record: T) => number | ArrayLike<number> | undefined;
  /** What goes into every output's `source`. Default `record.source`. */
  source?: (record: T) => unknown;
  /** Seed of a new key's state (sticky sampling), or a function of the key. Default 0. */
  seed?: number | ((key: string) => number);
  /**
   * Bound on the keys whose state is in memory; least recently run evicted first. Default 10,000.
   * Size it for the keys active at once: below that, rounds keep evicting and restoring keys
   * (correct, but every restore rebuilds the key's caches; in token mode that is per token).
   */
  maxKeys?: number;
  /**
   * The owner of every key's state beyond the `maxKeys` live ones (a `MemoryKeyStore`, a
   * `SpillingKeyStore` on disk, a changelog-backed store): an evicted key's state is put
   * there as bytes and its tensors freed; a key not in memory is looked up there (first sight,
   * after eviction, after a restart) and continues bit for bit. Bytes that do not restore make
   * an error record and the key starts fresh. If the store throws on a put, the stream errors
   * with that error, after every state is freed. The operator never closes the store.
   * Without a store an evicted key starts over when it returns.
   */
  store?: KeyStateStore;
  /** On completion write every key in memory to the store and flush it before completing (so a next run continues every key). Default true. */
  spillOnComplete?: boolean;
  /**
   * Run the keys that are ready at the same moment in one forward pass (one per segment
   * position and chunk length). Default true. False runs each key alone: its outputs are then
   * bit-identical to calling the model on that key alone.
   */
  batch?: boolean;
  /** Bound on the tokens waiting per key. Default max(1024, 2 L); in segment mode at least L. */
  maxQueue?: number;
  /** What a full queue does. Default `'block'`. See {@link OverflowStrategy}. */
  overflow?: OverflowStrategy;
  /** `onPause` is called when this many tokens wait over all keys. Default `maxQueue`. */
  highWatermark?: number;
  /** `onResume` is called once the waiting tokens are back at or below this. Default highWatermark / 2. */
  lowWatermark?: number;
  /** Asks the source to stop emitting (e.g. pause Kafka partitions, a readable stream). */
  onPause?: () => void;
  /** Asks the source to go on. */
  onResume?: () => void;
  /** Segment mode: longest wait (ms) of a key's first waiting token before a partial chunk runs. Default no limit. */
  maxDelayMs?: number;
  /** Model rounds per scheduler tick before yielding to the event loop (timers, I/O, Kafka heartbeats). Default 64. */
  roundsPerTick?: number;
  /** Scheduler of the model rounds and of `maxDelayMs` (default `asyncScheduler`; tests pass a virtual one). */
  scheduler?: SchedulerLike;
  /** Add each token's final hidden state `hidden: Float32Array [e]` to the outputs (for {@link classify}). Default false. */
  emitHidden?: boolean;
  /** On an upstream error, run the waiting tokens before passing the error on. Default true. */
  flushOnError?: boolean;
  /**
   * Learn while streaming (prequential): whole segments (segment mode) are scored with the
   * weights as they are (those scores are the outputs), then `learner` takes a gradient step on
   * them (its budget and guard permitting). The learner must wrap this operator's `model`; the
   * weights it adapts are shared by every key. Partial chunks and token mode only score.
   * Default none (frozen weights).
   */
  learner?: OnlineLearner;
}

/** Counters of a subscription of {@link infiniteFormer}. */
export interface InfiniteFormerStats {
  /** Keys whose state is in memory now. */
  liveKeys: number;
  /** Tokens waiting now, over all keys. */
  pending: number;
  /** The most tokens one key's queue has held. */
  maxQueued: number;
  /** Whether `onPause` was called and `onResume` not yet. */
  paused: boolean;
  /** Tokens run through the model. */
  tokens: number;
  /** Forward passes (a batch of keys is one). */
  forwardPasses: number;
  /** Model rounds (every ready key advances by one token, or one chunk in segment mode). */
  rounds: number;
  evictions: number;
  /** Keys brought back from the store. */
  restores: number;
  /** Records and tokens reported on `errors`. */
  errors: number;
  /** Tokens dropped by `'drop-oldest'`. */
  dropped: number;
  pauses: number;
  /** Segments of keys the learner stepped on (0 without a learner). */
  segmentsLearned: number;
}

/** The operator plus access to its live subscription's state. */
export type InfiniteFormerOperator<T> = OperatorFunction<T, ModelOutput> & {
  /**
   * A checkpoint: writes every key in memory to the store (each key's state after the tokens
   * run so far; tokens still waiting are not in it), then resolves once the store has flushed.
   * With the evicted keys already there, the store then holds every key. Needs the `store`
   * option; resolves at once when no subscription is live; an error when several are.
   */
  checkpoint(): Promise<void>;
  /** Counters of the live subscription (or of the last one, once it ended). */
  stats(): InfiniteFormerStats;
};

interface Pending<T> {
  token: number;
  record: T;
  source: unknown;
  end: boolean;
  /** Scheduler time of arrival (segment mode's maxDelayMs). */
  at: number;
}

/** A key with waiting tokens (or whose state is in memory). Its state itself is in the KeyCache. */
interface Entry<T> {
  key: string;
  queue: Pending<T>[];
  /** Segment position, when known (the state is or was in memory while tokens wait). */
  pos: number | undefined;
  timer: Subscription | undefined;
  flushDue: boolean;
}

interface Item<T> {
  e: Entry<T>;
  take: number;
}

const defaultKey = (r: unknown): string | undefined => (r as TokenInput | null)?.key;
const defaultTokens = (r: unknown): number | ArrayLike<number> | undefined => {
  const x = r as TokenInput | null;
  return x?.tokens ?? x?.token;
};
const defaultSource = (r: unknown): unknown => (r as TokenInput | null)?.source;

/** The checked options, defaults filled in. */
interface Settings<T> {
  mode: 'token' | 'segment';
  maxKeys: number;
  maxQueue: number;
  overflow: OverflowStrategy;
  high: number;
  low: number;
  roundsPerTick: number;
  maxDelay: number | undefined;
  keyOf: (record: T) => string | undefined;
  tokensOf: (record: T) => number | ArrayLike<number> | undefined;
  sourceOf: (record: T) => unknown;
  seedOf: (key: string) => number;
  scheduler: SchedulerLike;
  batch: boolean;
  emitHidden: boolean;
  learner: OnlineLearner | undefined;
  store: KeyStateStore | undefined;
  spillOnComplete: boolean;
  flushOnError: boolean;
}

const posInt = (name: string, v: unknown, min = 1): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new BadConfigError(name, `must be an integer >= ${min}, got ${String(v)}`);
  return v;
};

/** Checks the options (a BadConfigError names the first bad one) and fills in the defaults. */
function settingsOf<T>(model: InfiniFormer, options: InfiniteFormerOptions<T>): Settings<T> {
  if (!(model instanceof InfiniFormer)) throw new BadConfigError('model', 'expected an InfiniFormer');
  const L = model.config.segmentLength;
  const mode = options.mode ?? 'token';
  if (mode !== 'token' && mode !== 'segment') throw new BadConfigError('mode', `must be "token" or "segment", got ${JSON.stringify(mode)}`);
  const maxKeys = posInt('maxKeys', options.maxKeys ?? 10_000);
  const maxQueue = posInt('maxQueue', options.maxQueue ?? Math.max(1024, 2 * L));
  if (mode === 'segment' && maxQueue < L) throw new BadConfigError('maxQueue', `must hold a whole segment (${L}) in segment mode, got ${maxQueue}`);
  const overflow = options.overflow ?? 'block';
  if (!['block', 'error-record', 'drop-oldest'].includes(overflow)) throw new BadConfigError('overflow', `must be "block", "error-record" or "drop-oldest", got ${JSON.stringify(overflow)}`);
  const high = posInt('highWatermark', options.highWatermark ?? maxQueue);
  const low = posInt('lowWatermark', options.lowWatermark ?? Math.floor(high / 2), 0);
  if (low >= high) throw new BadConfigError('lowWatermark', `must be below highWatermark (${high}), got ${low}`);
  const roundsPerTick = posInt('roundsPerTick', options.roundsPerTick ?? 64);
  const maxDelay = options.maxDelayMs;
  if (maxDelay !== undefined) {
    if (mode !== 'segment') throw new BadConfigError('maxDelayMs', 'only applies in segment mode (token mode runs every token at once)');
    if (!(typeof maxDelay === 'number' && maxDelay >= 0 && Number.isFinite(maxDelay))) throw new BadConfigError('maxDelayMs', `must be a non-negative finite number, got ${String(maxDelay)}`);
  }
  const seed = options.seed ?? 0;
  if (typeof seed !== 'function' && !(typeof seed === 'number' && Number.isFinite(seed))) throw new BadConfigError('seed', `must be a number or a function of the key, got ${String(seed)}`);
  for (const hook of ['key', 'tokens', 'source', 'onPause', 'onResume'] as const) {
    if (options[hook] !== undefined && typeof options[hook] !== 'function') throw new BadConfigError(hook, 'must be a function');
  }
  const store = options.store;
  if (store !== undefined && (typeof store !== 'object' || store === null || !(['get', 'put', 'delete', 'keys', 'flush', 'close'] as const).every((m) => typeof store[m] === 'function'))) {
    throw new BadConfigError('store', 'must be a KeyStateStore (get, put, delete, keys, flush, close), e.g. a MemoryKeyStore or SpillingKeyStore');
  }
  const learner = options.learner;
  if (learner !== undefined && learner.model !== model) throw new BadConfigError('learner', 'must wrap the model this operator runs (new OnlineLearner(model))');
  return {
    mode,
    maxKeys,
    maxQueue,
    overflow,
    high,
    low,
    roundsPerTick,
    maxDelay,
    keyOf: options.key ?? (defaultKey as (r: T) => string | undefined),
    tokensOf: options.tokens ?? (defaultTokens as (r: T) => number | ArrayLike<number> | undefined),
    sourceOf: options.source ?? (defaultSource as (r: T) => unknown),
    seedOf: typeof seed === 'function' ? seed : () => seed,
    scheduler: options.scheduler ?? asyncScheduler,
    batch: options.batch ?? true,
    emitHidden: options.emitHidden ?? false,
    learner,
    store,
    spillOnComplete: options.spillOnComplete ?? true,
    flushOnError: options.flushOnError ?? true,
  };
}

const zeroStats = (): InfiniteFormerStats => ({ liveKeys: 0, pending: 0, maxQueued: 0, paused: false, tokens: 0, forwardPasses: 0, rounds: 0, evictions: 0, restores: 0, errors: 0, dropped: 0, pauses: 0, segmentsLearned: 0 });

/** A live subscription's view, for `checkpoint()` and `stats()`. */
interface Session {
  checkpoint(): Promise<void>;
  stats(): InfiniteFormerStats;
}

/**
 * Runs the ∞-former over keyed token streams and emits, per token, a plain {@link ModelOutput}
 * `{ key, index, token, surprisal, nextLogProbs, endOfRecord, source }` (no tensors leave the
 * operator). Each key (log source, user, device) has its own fixed-size `StreamState`, created
 * on first sight; at most `maxKeys` are in memory, every other key's state is owned by the
 * `store` (least recently run evicted into it, brought back from it bit for bit); `checkpoint()`
 * writes the live ones too and flushes the store, so a next run with the same store continues. Records arrive on a queue per key (bounded: `maxQueue`, `overflow`; `onPause` /
 * `onResume` at watermarks so a source can be slowed); on the next scheduler tick every key
 * with waiting tokens advances by one token (token mode) or one chunk (segment mode), such keys
 * batched into one forward pass per segment position; each key runs serially, so its outputs
 * come in order (keys interleave by rounds) and equal calling the model on that key alone
 * (bit-identical with `batch: false`, to float tolerance batched). Bad records (missing key,
 * token outside the vocabulary, not an integer, empty) go to `errors` and the stream goes on.
 * Completion runs what waits, writes every key to the store, flushes it, and frees every tensor;
 * errors and unsubscribe free everything too.
 *
 * @example
 * ```ts
 * const model = await loadModel('my-model');
 * const store = new SpillingKeyStore('./key-states'); // hot keys in RAM, the rest on disk
 * const lm = infiniteFormer(model, { maxKeys: 1000, store });
 * lines$.pipe(tokenize({ tokenizer: model.tokenizer }), lm, predictNext({ topK: 5 }), perplexity({ window: 512 }))
 *   .subscribe((p) => console.log(p.key, p.surprisal.toFixed(2), p.perplexity.toFixed(1)));
 * setInterval(() => void lm.checkpoint(), 60_000); // every key durable; a restart with the same store continues exactly
 * ```
 */
export function infiniteFormer<T = TokenInput>(model: InfiniFormer, options: InfiniteFormerOptions<T> = {}): InfiniteFormerOperator<T> {
  const s = settingsOf(model, options);
  const sessions = new Set<Session>();
  let lastStats: (() => InfiniteFormerStats) | undefined;
  const operator = (upstream: Observable<T>): Observable<ModelOutput> =>
    new Observable<ModelOutput>((subscriber) =>
      runSubscription(model, s, options, upstream, subscriber, {
        opened: (view) => {
          sessions.add(view);
          lastStats = view.stats;
        },
        closed: (view) => sessions.delete(view),
      }),
    );

  /** The one live subscription (undefined when there is none); `what` names the caller. */
  const onlySession = (what: string): Session | undefined => {
    if (sessions.size > 1) throw new InfiniformerError(`infiniteFormer: ${what}() needs one live subscription, there are ${sessions.size}`, 'ERR_AMBIGUOUS');
    const [only] = sessions;
    return only;
  };
  const checkpoint = async (): Promise<void> => {
    if (s.store === undefined) throw new BadConfigError('store', 'checkpoint() needs a store to write to');
    await onlySession('checkpoint')?.checkpoint();
  };
  const stats = (): InfiniteFormerStats => {
    const only = onlySession('stats');
    if (only !== undefined) return only.stats();
    return lastStats?.() ?? zeroStats();
  };
  return Object.assign(operator, { checkpoint, stats });
}

/**
 * One subscription: the per-key queues, the round scheduler (every ready key advances by a
 * token or a chunk, batched by segment position), and the RxJS glue (arrival, completion,
 * errors, teardown). Key states live in a {@link KeyCache}, forward passes in a {@link ChunkRunner}.
 */
function runSubscription<T>(
  model: InfiniFormer,
  s: Settings<T>,
  options: InfiniteFormerOptions<T>,
  upstream: Observable<T>,
  subscriber: Subscriber<ModelOutput>,
  registry: { opened(view: Session): void; closed(view: Session): void },
): () => void {
  const L = model.config.segmentLength;
  const V = model.config.vocabSize;
  const { mode, maxKeys, maxQueue, overflow, high, low, maxDelay, scheduler } = s;
  const entries = new Map<string, Entry<T>>();
  /** Entries with waiting tokens, in the order they get their turn. */
  const waiting = new Map<string, Entry<T>>();
  const counts = { maxQueued: 0, rounds: 0, errors: 0, dropped: 0, pauses: 0 };
  let pending = 0;
  let paused = false;
  let draining = false;
  let closed = false;
  let tick: Subscription | undefined;
  let tickScheduled = false;
  let deferredEnd: (() => void) | undefined;

  const fail = (error: unknown, record: T, key?: string, token?: number): void => {
    counts.errors++;
    reportFailure('infiniteFormer', options, { error, record, key, token });
  };
  const cache = new KeyCache(model, maxKeys, s.store, {
    seedOf: s.seedOf,
    isWaiting: (key) => (entries.get(key)?.queue.length ?? 0) > 0,
    onEvicted: (key) => {
      const e = entries.get(key);
      if (e !== undefined && e.queue.length === 0) {
        e.timer?.unsubscribe();
        entries.delete(key);
      }
    },
    onRestoreError: (key, error) => fail(error, entries.get(key)?.queue[0]?.record as T, key),
  });
  const runner = new ChunkRunner(model, s.learner, s.emitHidden);

  const stats = (): InfiniteFormerStats => ({
    ...counts,
    tokens: runner.tokens,
    forwardPasses: runner.forwardPasses,
    segmentsLearned: runner.segmentsLearned,
    evictions: cache.evictions,
    restores: cache.restores,
    liveKeys: cache.size,
    pending,
    paused,
  });
  const view: Session = {
    stats,
    checkpoint: async () => {
      if (closed) return;
      cache.writeAll();
      await s.store!.flush();
    },
  };
  registry.opened(view);

  const load = (e: Entry<T>, protect: ReadonlySet<string>): void => {
    e.pos = cache.load(e.key, protect).state.pos;
  };

  // ---- one model round ----

  /** The keys that can run now and how many tokens each takes. */
  const select = (flushAll: boolean): Item<T>[] => {
    const items: Item<T>[] = [];
    const chosen = new Set<string>();
    for (const e of waiting.values()) {
      if (items.length >= maxKeys) break;
      let take = 1;
      if (mode === 'segment') {
        if (e.pos === undefined) load(e, chosen);
        const need = L - e.pos!;
        take = e.queue.length >= need ? need : flushAll || e.flushDue ? e.queue.length : 0;
      }
      if (take > 0) {
        items.push({ e, take });
        chosen.add(e.key);
      }
    }
    for (const item of items) load(item.e, chosen);
    return items;
  };

  const runGroup = (group: Item<T>[]): ModelOutput[] => {
    const T = group[0]!.take;
    let outputs: ModelOutput[];
    try {
      outputs = runner.run(group.map((i) => ({ key: i.e.key, ks: cache.get(i.e.key)!, tokens: i.e.queue.slice(0, T) })));
    } catch (error) {
      // Not expected (records are checked on arrival): report the tokens, drop them, go on.
      for (const item of group) {
        for (const p of item.e.queue.splice(0, T)) fail(error, p.record, item.e.key, p.token);
        pending -= T;
      }
      return [];
    }
    for (const item of group) {
      item.e.queue.splice(0, T);
      pending -= T;
      item.e.pos = cache.get(item.e.key)!.state.pos;
    }
    return outputs;
  };

  /** Runs one round; returns false when no key was ready. */
  const round = (flushAll: boolean): boolean => {
    const items = select(flushAll);
    if (items.length === 0) return false;
    counts.rounds++;
    const groups = new Map<string, Item<T>[]>();
    items.forEach((item, n) => {
      const id = s.batch ? `${item.e.pos}:${item.take}` : String(n);
      const group = groups.get(id);
      if (group === undefined) groups.set(id, [item]);
      else group.push(item);
    });
    for (const { e } of items) {
      cache.touch(e.key); // most recently run
      waiting.delete(e.key); // back of the line
      e.timer?.unsubscribe();
      e.timer = undefined;
      e.flushDue = false;
    }
    for (const group of groups.values()) {
      if (closed) return false;
      const outputs = runGroup(group);
      for (const { e } of group) {
        if (e.queue.length > 0) {
          waiting.set(e.key, e);
          armTimer(e);
        }
      }
      for (const rec of outputs) {
        if (closed) return false;
        subscriber.next(rec);
      }
    }
    return true;
  };

  const drain = (maxRounds: number, flushAll: boolean): void => {
    if (draining) return;
    draining = true;
    try {
      for (let r = 0; r < maxRounds && !closed; r++) {
        if (!round(flushAll)) break;
      }
      if (paused && pending <= low && !closed) {
        paused = false;
        options.onResume?.();
      }
    } catch (error) {
      draining = false;
      fatal(error);
      return;
    } finally {
      draining = false;
    }
    // The source ended while the rounds ran (a downstream that completes its own source).
    const end = deferredEnd;
    deferredEnd = undefined;
    if (end !== undefined && !closed) end();
  };

  /** A key can run a round: token mode, its flush is due, or it has a segment's worth queued. */
  const isReady = (e: Entry<T>): boolean => mode === 'token' || e.flushDue || e.pos === undefined || e.queue.length >= L - e.pos;
  const hasReady = (): boolean => {
    for (const e of waiting.values()) if (isReady(e)) return true;
    return false;
  };

  // A synchronous scheduler (queueScheduler) may run an action inside schedule(): keep the
  // subscription only when the action has not run yet.
  const requestTick = (): void => {
    if (tickScheduled || closed) return;
    tickScheduled = true;
    const sub = scheduler.schedule(() => {
      tickScheduled = false;
      tick = undefined;
      drain(s.roundsPerTick, false);
      if (hasReady()) requestTick();
    }, 0);
    if (tickScheduled) tick = sub;
  };

  const armTimer = (e: Entry<T>): void => {
    if (maxDelay === undefined || e.timer !== undefined || e.flushDue || e.queue.length === 0 || closed) return;
    const wait = Math.max(0, e.queue[0]!.at + maxDelay - scheduler.now());
    let fired = false;
    const sub = scheduler.schedule(() => {
      fired = true;
      e.timer = undefined;
      e.flushDue = true;
      requestTick();
    }, wait);
    if (!fired) e.timer = sub;
  };

  // ---- arrival ----

  /** The record's key and token ids, or undefined (an error record was reported). */
  const read = (record: T): { key: string; ids: ArrayLike<number>; source: unknown } | undefined => {
    let key: string;
    try {
      const k = s.keyOf(record);
      if (typeof k !== 'string') throw new BadInputError('key', `missing: expected a string, got ${k === null ? 'null' : typeof k}`);
      key = k;
    } catch (error) {
      fail(error, record);
      return undefined;
    }
    try {
      const raw = s.tokensOf(record);
      const ids = readTokens(typeof raw === 'number' ? { token: raw } : { tokens: raw }, V);
      if (ids.length === 0) throw new BadInputError('tokens', 'is empty');
      return { key, ids, source: s.sourceOf(record) };
    } catch (error) {
      fail(error, record, key);
      return undefined;
    }
  };

  const enqueue = (record: T): void => {
    const r = read(record);
    if (r === undefined) return;
    const { key, ids, source } = r;
    const n = ids.length;
    let e = entries.get(key);
    const queued = e?.queue.length ?? 0;
    if ((overflow === 'error-record' || (overflow === 'block' && draining)) && queued + n > maxQueue) {
      fail(new OverflowError(`the queue of key ${JSON.stringify(key)} holds ${queued} tokens; ${n} more exceed maxQueue ${maxQueue}`), record, key);
      return;
    }
    if (e === undefined) {
      e = { key, queue: [], pos: cache.get(key)?.state.pos, timer: undefined, flushDue: false };
      entries.set(key, e);
    }
    const at = scheduler.now();
    for (let i = 0; i < n; i++) {
      if (overflow === 'block') {
        while (e.queue.length >= maxQueue && !closed) {
          if (!waiting.has(key)) waiting.set(key, e);
          drain(1, false);
        }
        if (closed) return;
      }
      e.queue.push({ token: ids[i]!, record, source, end: i === n - 1, at });
      pending++;
      if (overflow === 'drop-oldest' && e.queue.length > maxQueue) {
        const dropped = e.queue.shift()!;
        pending--;
        counts.dropped++;
        fail(new OverflowError(`the queue of key ${JSON.stringify(key)} is full (maxQueue ${maxQueue}): its oldest token was dropped`), dropped.record, key, dropped.token);
      }
      counts.maxQueued = Math.max(counts.maxQueued, e.queue.length);
    }
    if (!waiting.has(key)) waiting.set(key, e);
    if (!paused && pending >= high) {
      paused = true;
      counts.pauses++;
      options.onPause?.();
    }
    armTimer(e);
    if (isReady(e)) requestTick();
  };

  // ---- the end ----

  const release = (): void => {
    closed = true;
    tick?.unsubscribe();
    tick = undefined;
    tickScheduled = false;
    for (const e of entries.values()) e.timer?.unsubscribe();
    cache.release();
    entries.clear();
    waiting.clear();
    pending = 0;
    registry.closed(view);
  };

  /** A hook threw (a store put, onPause, onResume, seed ...): free everything, error the stream. */
  const fatal = (error: unknown): void => {
    if (closed) return;
    release();
    subscriber.error(error);
  };

  const finish = (flush: boolean, spill: boolean): void => {
    tick?.unsubscribe();
    tick = undefined;
    tickScheduled = false;
    if (flush) {
      for (const e of waiting.values()) {
        e.timer?.unsubscribe();
        e.timer = undefined;
      }
      drain(Number.POSITIVE_INFINITY, true);
    }
    if (closed) return;
    if (spill) cache.evictAll();
  };

  const onError = (err: unknown): void => {
    try {
      finish(s.flushOnError, false);
    } catch (error) {
      fatal(error);
    }
    if (closed) return;
    release();
    subscriber.error(err);
  };
  const onComplete = (): void => {
    const spill = s.spillOnComplete && s.store !== undefined;
    try {
      finish(true, spill);
    } catch (error) {
      fatal(error);
    }
    if (closed) return;
    release();
    if (!spill) {
      subscriber.complete();
      return;
    }
    // Complete once the store holds every key durably.
    s.store!.flush().then(
      () => subscriber.complete(),
      (error: unknown) => subscriber.error(error),
    );
  };
  const sub = upstream.subscribe({
    next(record) {
      if (closed || subscriber.closed) return; // a synchronous source after downstream unsubscribed
      try {
        enqueue(record);
      } catch (error) {
        fatal(error);
      }
    },
    error(err: unknown) {
      if (closed) return;
      if (draining) deferredEnd = () => onError(err);
      else onError(err);
    },
    complete() {
      if (closed) return;
      if (draining) deferredEnd = onComplete;
      else onComplete();
    },
  });
  return () => {
    sub.unsubscribe();
    if (!closed) release();
  };
}
