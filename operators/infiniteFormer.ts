import { Observable, asyncScheduler, type OperatorFunction, type SchedulerLike, type Subscription } from 'rxjs';
import * as tf from '@tensorflow/tfjs';
import { BadConfigError, BadInputError, InfiniformerError, OverflowError } from '../src/errors.js';
import { InfiniFormer, keepChunk, type ChunkOutput } from '../src/model/model.js';
import type { OnlineLearner } from '../src/model/onlineLearner.js';
import type { StreamState } from '../src/model/state.js';
import { keyStateFromBytes, keyStateToBytes, type KeyState } from './keyState.js';
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
   * Receives an evicted key's state as bytes (spill it to disk, Redis, a compacted topic ...),
   * after which the operator frees it; pair it with `restore` to bring the key back exactly.
   * Without it an evicted key starts over when it returns. Called synchronously; if it throws,
   * the stream errors with that error (as when any hook throws), after every state is freed.
   */
  onEvict?: (key: string, bytes: Uint8Array) => void;
  /**
   * Looks a key up when it is not in memory (first sight, or after eviction): its bytes from
   * `onEvict` / `snapshot()` (or bare `StreamState` bytes), or undefined for a fresh state.
   * Synchronous. Bytes that do not restore make an error record and the key starts fresh.
   */
  restore?: (key: string) => Uint8Array | undefined;
  /** States to start from, e.g. a previous run's `snapshot()`; consulted before `restore`. */
  initialState?: Iterable<readonly [string, Uint8Array]>;
  /** On completion hand every key in memory to `onEvict` (so a next run can continue it). Default true. */
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
  /** Keys brought back by `initialState` or `restore`. */
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
   * Every key's state as bytes (for `initialState` or `restore`), taken between model rounds:
   * each key's state after the tokens run so far (tokens still waiting are not in it). Covers
   * the keys in memory plus `initialState` keys not yet seen; evicted keys are with `onEvict`.
   * Empty when no subscription is live; an error when several are.
   */
  snapshot(): Map<string, Uint8Array>;
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

interface Entry<T> {
  key: string;
  queue: Pending<T>[];
  ks: KeyState | undefined;
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

/**
 * Runs the ∞-former over keyed token streams and emits, per token, a plain {@link ModelOutput}
 * `{ key, index, token, surprisal, nextLogProbs, endOfRecord, source }` (no tensors leave the
 * operator). Each key (log source, user, device) has its own fixed-size `StreamState`, created
 * on first sight; at most `maxKeys` are in memory (least recently run evicted through
 * `onEvict`, brought back through `restore`); `snapshot()` and `initialState` save and restore
 * them all. Records arrive on a queue per key (bounded: `maxQueue`, `overflow`; `onPause` /
 * `onResume` at watermarks so a source can be slowed); on the next scheduler tick every key
 * with waiting tokens advances by one token (token mode) or one chunk (segment mode), such keys
 * batched into one forward pass per segment position; each key runs serially, so its outputs
 * come in order (keys interleave by rounds) and equal calling the model on that key alone
 * (bit-identical with `batch: false`, to float tolerance batched). Bad records (missing key,
 * token outside the vocabulary, not an integer, empty) go to `errors` and the stream goes on.
 * Completion runs what waits, spills every key through `onEvict` and frees every tensor; errors
 * and unsubscribe free everything too.
 *
 * @example
 * ```ts
 * const model = await loadModel('my-model');
 * const lm = infiniteFormer(model, { maxKeys: 1000, onEvict: (k, b) => store.set(k, b), restore: (k) => store.get(k) });
 * lines$.pipe(tokenize({ tokenizer: model.tokenizer }), lm, predictNext({ topK: 5 }), perplexity({ window: 512 }))
 *   .subscribe((p) => console.log(p.key, p.surprisal.toFixed(2), p.perplexity.toFixed(1)));
 * const saved = lm.snapshot(); // Map<key, bytes>: infiniteFormer(model, { initialState: saved }) continues exactly
 * ```
 */
export function infiniteFormer<T = TokenInput>(model: InfiniFormer, options: InfiniteFormerOptions<T> = {}): InfiniteFormerOperator<T> {
  if (!(model instanceof InfiniFormer)) throw new BadConfigError('model', 'expected an InfiniFormer');
  const c = model.config;
  const L = c.segmentLength;
  const V = c.vocabSize;
  const mode = options.mode ?? 'token';
  if (mode !== 'token' && mode !== 'segment') throw new BadConfigError('mode', `must be "token" or "segment", got ${JSON.stringify(mode)}`);
  const posInt = (name: string, v: unknown, min = 1): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new BadConfigError(name, `must be an integer >= ${min}, got ${String(v)}`);
    return v;
  };
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
  for (const hook of ['key', 'tokens', 'source', 'onEvict', 'restore', 'onPause', 'onResume'] as const) {
    if (options[hook] !== undefined && typeof options[hook] !== 'function') throw new BadConfigError(hook, 'must be a function');
  }
  const initialEntries: [string, Uint8Array][] = [];
  if (options.initialState !== undefined) {
    for (const pair of options.initialState) {
      if (!Array.isArray(pair) || typeof pair[0] !== 'string' || !(pair[1] instanceof Uint8Array)) throw new BadConfigError('initialState', 'must be [key, bytes] pairs (e.g. a Map from snapshot())');
      initialEntries.push([pair[0], pair[1]]);
    }
  }
  const keyOf = options.key ?? (defaultKey as (r: T) => string | undefined);
  const tokensOf = options.tokens ?? (defaultTokens as (r: T) => number | ArrayLike<number> | undefined);
  const sourceOf = options.source ?? (defaultSource as (r: T) => unknown);
  const seedOf = typeof seed === 'function' ? seed : () => seed;
  const scheduler = options.scheduler ?? asyncScheduler;
  const batch = options.batch ?? true;
  const emitHidden = options.emitHidden ?? false;
  const learner = options.learner;
  if (learner !== undefined && learner.model !== model) throw new BadConfigError('learner', 'must wrap the model this operator runs (new OnlineLearner(model))');
  const spillOnComplete = options.spillOnComplete ?? true;
  const flushOnError = options.flushOnError ?? true;

  /** A live subscription's view, for `snapshot()` and `stats()`. */
  interface Session {
    snapshot(): Map<string, Uint8Array>;
    stats(): InfiniteFormerStats;
  }
  const sessions = new Set<Session>();
  let lastStats: (() => InfiniteFormerStats) | undefined;

  const operator = (upstream: Observable<T>): Observable<ModelOutput> =>
    new Observable<ModelOutput>((subscriber) => {
      const entries = new Map<string, Entry<T>>();
      /** Entries with waiting tokens, in the order they get their turn. */
      const waiting = new Map<string, Entry<T>>();
      /** Entries whose state is in memory, least recently run first. */
      const live = new Map<string, Entry<T>>();
      const initial = new Map(initialEntries);
      const counts = { maxQueued: 0, tokens: 0, forwardPasses: 0, rounds: 0, evictions: 0, restores: 0, errors: 0, dropped: 0, pauses: 0, segmentsLearned: 0 };
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

      const stats = (): InfiniteFormerStats => ({ ...counts, liveKeys: live.size, pending, paused });
      const session = {
        stats,
        snapshot(): Map<string, Uint8Array> {
          const out = new Map(initial);
          for (const [key, e] of live) out.set(key, keyStateToBytes(e.ks!));
          return out;
        },
      };
      sessions.add(session);
      lastStats = stats;

      // ---- key states: load, evict ----

      const evict = (e: Entry<T>, spill: boolean): void => {
        const ks = e.ks!;
        const bytes = spill && options.onEvict !== undefined ? keyStateToBytes(ks) : undefined;
        ks.state.dispose();
        e.ks = undefined;
        live.delete(e.key);
        if (e.queue.length === 0) {
          e.timer?.unsubscribe();
          entries.delete(e.key);
        }
        if (bytes !== undefined) options.onEvict!(e.key, bytes);
      };

      const ensureLive = (e: Entry<T>, protect: ReadonlySet<Entry<T>>): void => {
        if (e.ks !== undefined) return;
        while (live.size >= maxKeys) {
          // The least recently run key with no waiting tokens, else the least recently run one.
          let victim: Entry<T> | undefined;
          for (const candidate of live.values()) {
            if (protect.has(candidate)) continue;
            if (candidate.queue.length === 0) {
              victim = candidate;
              break;
            }
            victim ??= candidate;
          }
          if (victim === undefined) throw new InfiniformerError('infiniteFormer: no key can be evicted (internal error)');
          counts.evictions++;
          evict(victim, true);
        }
        let bytes = initial.get(e.key);
        initial.delete(e.key);
        let ks: KeyState | undefined;
        try {
          if (bytes === undefined) bytes = options.restore?.(e.key);
          if (bytes !== undefined) {
            ks = keyStateFromBytes(model, bytes);
            counts.restores++;
          }
        } catch (error) {
          fail(error, e.queue[0]!.record, e.key);
        }
        e.ks = ks ?? { state: model.createState(seedOf(e.key)), nextLogProbs: undefined };
        e.pos = e.ks.state.pos;
        live.set(e.key, e);
      };

      // ---- one model round ----

      /** The keys that can run now and how many tokens each takes. */
      const select = (flushAll: boolean): Item<T>[] => {
        const items: Item<T>[] = [];
        const chosen = new Set<Entry<T>>();
        for (const e of waiting.values()) {
          if (items.length >= maxKeys) break;
          let take = 1;
          if (mode === 'segment') {
            if (e.pos === undefined) ensureLive(e, chosen);
            const need = L - e.pos!;
            take = e.queue.length >= need ? need : flushAll || e.flushDue ? e.queue.length : 0;
          }
          if (take > 0) {
            items.push({ e, take });
            chosen.add(e);
          }
        }
        for (const item of items) ensureLive(item.e, chosen);
        return items;
      };

      /** Log-probabilities `[b, T, V]` (row-major) and hidden states of a group's chunks, the states committed. */
      const forward = (states: StreamState[], chunks: number[][]): { lp: Float32Array; hidden: Float32Array | undefined } => {
        const T = chunks[0]!.length;
        if (learner !== undefined && !emitHidden && T === L && states.every((st) => st.pos === 0)) {
          const r = learner.scoreThenLearn(states, chunks);
          if (r.learned) counts.segmentsLearned += states.length;
          const lp = new Float32Array(states.length * T * V);
          r.scores.forEach((sc, i) => lp.set(sc.logProbs, i * T * V));
          return { lp, hidden: undefined };
        }
        let out: ChunkOutput | undefined;
        tf.tidy(() => {
          out = model.forwardChunk(states, chunks);
          keepChunk(out);
        });
        model.commit(states, out!);
        const o = out!;
        const lp = tf.tidy(() => tf.logSoftmax(o.logits).dataSync() as Float32Array);
        const hidden = emitHidden ? (o.hidden.dataSync() as Float32Array) : undefined;
        tf.dispose([o.hidden, o.logits, o.kl]);
        return { lp, hidden };
      };

      const runGroup = (group: Item<T>[]): ModelOutput[] => {
        const T = group[0]!.take;
        const states = group.map((i) => i.e.ks!.state);
        const chunks = group.map((i) => i.e.queue.slice(0, T).map((p) => p.token));
        const before = states.map((s) => s.tokensSeen);
        let lp: Float32Array;
        let hidden: Float32Array | undefined;
        try {
          ({ lp, hidden } = forward(states, chunks));
        } catch (error) {
          // Not expected (records are checked on arrival): report the tokens, drop them, go on.
          for (const item of group) {
            for (const p of item.e.queue.splice(0, T)) fail(error, p.record, item.e.key, p.token);
            pending -= T;
          }
          return [];
        }
        counts.forwardPasses++;
        counts.tokens += group.length * T;
        // Row-major [b, T, V] and [b, T, e]: row i * T + j is key i's j-th token.
        const outputs: ModelOutput[] = [];
        group.forEach((item, i) => {
          const e = item.e;
          const taken = e.queue.splice(0, T);
          pending -= T;
          let prev = e.ks!.nextLogProbs;
          taken.forEach((p, j) => {
            const row = i * T + j;
            const next = lp.slice(row * V, (row + 1) * V);
            const rec: ModelOutput = {
              key: e.key,
              index: before[i]! + j,
              token: p.token,
              surprisal: prev === undefined ? Number.NaN : -prev[p.token]! / Math.LN2,
              nextLogProbs: next,
              endOfRecord: p.end,
            };
            if (hidden !== undefined) rec.hidden = hidden.slice(row * c.width, (row + 1) * c.width);
            if (p.source !== undefined) rec.source = p.source;
            outputs.push(rec);
            prev = next;
          });
          e.ks!.nextLogProbs = prev;
          e.pos = e.ks!.state.pos;
        });
        return outputs;
      };

      /** Runs one round; returns false when no key was ready. */
      const round = (flushAll: boolean): boolean => {
        const items = select(flushAll);
        if (items.length === 0) return false;
        counts.rounds++;
        const groups = new Map<string, Item<T>[]>();
        items.forEach((item, n) => {
          const id = batch ? `${item.e.pos}:${item.take}` : String(n);
          const group = groups.get(id);
          if (group === undefined) groups.set(id, [item]);
          else group.push(item);
        });
        for (const item of items) {
          const e = item.e;
          live.delete(e.key); // most recently run
          live.set(e.key, e);
          waiting.delete(e.key); // back of the line
          e.timer?.unsubscribe();
          e.timer = undefined;
          e.flushDue = false;
        }
        for (const group of groups.values()) {
          if (closed) return false;
          const outputs = runGroup(group);
          for (const item of group) {
            if (item.e.queue.length > 0) {
              waiting.set(item.e.key, item.e);
              armTimer(item.e);
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
        const s = scheduler.schedule(() => {
          tickScheduled = false;
          tick = undefined;
          drain(roundsPerTick, false);
          if (hasReady()) requestTick();
        }, 0);
        if (tickScheduled) tick = s;
      };

      const armTimer = (e: Entry<T>): void => {
        if (maxDelay === undefined || e.timer !== undefined || e.flushDue || e.queue.length === 0 || closed) return;
        const wait = Math.max(0, e.queue[0]!.at + maxDelay - scheduler.now());
        let fired = false;
        const s = scheduler.schedule(() => {
          fired = true;
          e.timer = undefined;
          e.flushDue = true;
          requestTick();
        }, wait);
        if (!fired) e.timer = s;
      };

      // ---- arrival ----

      const enqueue = (record: T): void => {
        let key: string;
        let ids: ArrayLike<number>;
        try {
          const k = keyOf(record);
          if (typeof k !== 'string') throw new BadInputError('key', `missing: expected a string, got ${k === null ? 'null' : typeof k}`);
          key = k;
        } catch (error) {
          fail(error, record);
          return;
        }
        let source: unknown;
        try {
          const raw = tokensOf(record);
          ids = readTokens(typeof raw === 'number' ? { token: raw } : { tokens: raw }, V);
          if (ids.length === 0) throw new BadInputError('tokens', 'is empty');
          source = sourceOf(record);
        } catch (error) {
          fail(error, record, key);
          return;
        }
        const n = ids.length;
        let e = entries.get(key);
        const queued = e?.queue.length ?? 0;
        if ((overflow === 'error-record' || (overflow === 'block' && draining)) && queued + n > maxQueue) {
          fail(new OverflowError(`the queue of key ${JSON.stringify(key)} holds ${queued} tokens; ${n} more exceed maxQueue ${maxQueue}`), record, key);
          return;
        }
        if (e === undefined) {
          e = { key, queue: [], ks: undefined, pos: undefined, timer: undefined, flushDue: false };
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
        for (const e of live.values()) e.ks?.state.dispose();
        entries.clear();
        waiting.clear();
        live.clear();
        initial.clear();
        pending = 0;
        sessions.delete(session);
      };

      /** A hook threw (onEvict, onPause, onResume, seed ...): free everything, error the stream. */
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
        if (spill) for (const e of [...live.values()]) evict(e, true);
      };

      const onError = (err: unknown): void => {
        try {
          finish(flushOnError, false);
        } catch (error) {
          fatal(error);
        }
        if (closed) return;
        release();
        subscriber.error(err);
      };
      const onComplete = (): void => {
        try {
          finish(true, spillOnComplete);
        } catch (error) {
          fatal(error);
        }
        if (closed) return;
        release();
        subscriber.complete();
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
        release();
      };
    });

  /** The one live subscription (undefined when there is none); `what` names the caller. */
  const onlySession = (what: string): Session | undefined => {
    if (sessions.size > 1) throw new InfiniformerError(`infiniteFormer: ${what}() needs one live subscription, there are ${sessions.size}`, 'ERR_AMBIGUOUS');
    const [only] = sessions;
    return only;
  };
  const snapshot = (): Map<string, Uint8Array> => onlySession('snapshot')?.snapshot() ?? new Map();
  const stats = (): InfiniteFormerStats => {
    const only = onlySession('stats');
    if (only !== undefined) return only.stats();
    return lastStats?.() ?? { liveKeys: 0, pending: 0, maxQueued: 0, paused: false, tokens: 0, forwardPasses: 0, rounds: 0, evictions: 0, restores: 0, errors: 0, dropped: 0, pauses: 0, segmentsLearned: 0 };
  };
  return Object.assign(operator, { snapshot, stats });
}
