/**
 * The options of {@link infiniteFormer}: the public types, and their checking (a BadConfigError
 * names the first bad option) with the defaults filled in.
 */
import { asyncScheduler, type OperatorFunction, type SchedulerLike } from 'rxjs';
import { BadConfigError } from '../src/errors.js';
import { InfiniFormer } from '../src/model/model.js';
import type { OnlineLearner } from '../src/model/onlineLearner.js';
import type { KeyStateStore } from '../src/state/keyStateStore.js';
import type { ErrorSideOutput } from './sideOutput.js';
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
   * Size it for the keys active at once: below that, keys take turns in memory (correct, but
   * every restore rebuilds the key's caches). A live key keeps its place for up to L tokens
   * while others wait, then the longest waiting key out of memory comes in.
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
   * weights it adapts are shared by every key. In segment mode a partial chunk (a
   * `maxDelayMs` flush, completion) is scored ahead and its tokens held in the key's state, to be
   * run again with the rest of their segment: every segment is learned from once, however the
   * input was cut (so a run through checkpoints and restarts learns what an uninterrupted one
   * does). Token mode only scores. Default none (frozen weights).
   */
  learner?: OnlineLearner;
  /**
   * With a learner: the most segments one learning step takes. Keys of a round whose segments
   * are ready together are stepped on in slices of this many, in turn (each slice scored with
   * the weights the one before left). Default 1: one Adam step per segment, so the steps the
   * learner takes and their sizes are a function of the segments, not of which keys' segments
   * happened to arrive together (measured, 16 keys over 4 Kafka partitions: batched steps of
   * 1-8 segments gave 291-484 steps for 1,108-1,384 segments, and runs restarted after kills,
   * with smaller batches, took 10-42% more steps than uninterrupted ones, enough to score
   * 0.1-0.37 bits/byte apart). Larger values trade that for fewer, batched passes.
   */
  segmentsPerStep?: number;
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
  /**
   * Drops the in-memory state of each of `keys` that has no tokens waiting, so its next tokens
   * load it from the store: after something else put newer bytes there (a changelog restore when
   * a partition this process owned before comes back). Returns the keys left alone (tokens waiting).
   */
  reload(keys: Iterable<string>): string[];
  /** The keys of `keys` with tokens waiting (not yet run). */
  waiting(keys: Iterable<string>): string[];
  /** Counters of the live subscription (or of the last one, once it ended). */
  stats(): InfiniteFormerStats;
};

const defaultKey = (r: unknown): string | undefined => (r as TokenInput | null)?.key;
const defaultTokens = (r: unknown): number | ArrayLike<number> | undefined => {
  const x = r as TokenInput | null;
  return x?.tokens ?? x?.token;
};
const defaultSource = (r: unknown): unknown => (r as TokenInput | null)?.source;

/** The checked options, defaults filled in. */
export interface Settings<T> {
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
  segmentsPerStep: number;
  store: KeyStateStore | undefined;
  spillOnComplete: boolean;
  flushOnError: boolean;
}

const posInt = (name: string, v: unknown, min = 1): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new BadConfigError(name, `must be an integer >= ${min}, got ${String(v)}`);
  return v;
};

/** Checks the options (a BadConfigError names the first bad one) and fills in the defaults. */
export function settingsOf<T>(model: InfiniFormer, options: InfiniteFormerOptions<T>): Settings<T> {
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
  const segmentsPerStep = posInt('segmentsPerStep', options.segmentsPerStep ?? 1);
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
    segmentsPerStep,
    store,
    spillOnComplete: options.spillOnComplete ?? true,
    flushOnError: options.flushOnError ?? true,
  };
}

export const zeroStats = (): InfiniteFormerStats => ({ liveKeys: 0, pending: 0, maxQueued: 0, paused: false, tokens: 0, forwardPasses: 0, rounds: 0, evictions: 0, restores: 0, errors: 0, dropped: 0, pauses: 0, segmentsLearned: 0 });
