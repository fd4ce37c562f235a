import { Observable, type OperatorFunction } from 'rxjs';
import { BadConfigError, BadInputError, InfiniformerError } from '../src/errors.js';
import { ContextMixer } from '../src/mixing/contextMixer.js';
import type { ContextMixerOptions } from '../src/mixing/contextMixer.js';
import type { StreamContext } from '../src/mixing/streamContext.js';
import { KeyedState } from './keyedWindow.js';
import { reportFailure, type ErrorSideOutput } from './sideOutput.js';
import type { ModelOutput, TokenPrediction } from './types.js';

/** Options of {@link contextMix}. All are optional. */
export interface ContextMixOptions extends ErrorSideOutput<ModelOutput> {
  /** The mixer (shared statistics; share one between pipelines to pool what they learn). Default a new one with `mixer` options. */
  mixer?: ContextMixer | ContextMixerOptions;
  /** How many of the most likely next bytes to list. Default 5. */
  topK?: number;
  /** When to compute the full next-byte distribution for `topK` (255 bit predictions): `'record'` (default) at each record's last token, `'token'` after every token. */
  topKAt?: 'record' | 'token';
  /** Bound on the keys whose byte history is kept (least recently seen dropped first; what they taught the shared statistics stays). Default 1,000. */
  maxKeys?: number;
  /**
   * State to start from, e.g. a previous run's `snapshot()`: the mixer's bytes (which bring
   * their own options; cannot be combined with a `mixer` instance, and options given in `mixer`
   * must agree) and each key's bytes. Bytes of a key that do not restore make an error record
   * and the key starts fresh; a mixer that does not restore is a ModelFileError right here.
   */
  initialState?: { mixer?: Uint8Array; keys?: Iterable<readonly [string, Uint8Array]> };
  /**
   * Bytes of a key not in memory and not in `initialState`, looked up when the key first
   * appears (e.g. keys restored from a changelog while the stream runs); restored like
   * `initialState` keys.
   */
  restoreKey?: (key: string) => Uint8Array | undefined;
}

/** What {@link ContextMixOperator.snapshot} returns: everything needed to continue exactly. */
export interface ContextMixSnapshot {
  /** The mixer's learned state ({@link ContextMixer.saveState}). */
  mixer: Uint8Array;
  /** Each key's stream and pending network distribution ({@link ContextMixer.saveStream}). */
  keys: Map<string, Uint8Array>;
}

/** The operator plus access to its live subscription's state. */
export type ContextMixOperator = OperatorFunction<ModelOutput, TokenPrediction> & {
  /**
   * The live subscription's state, taken between records (safe from the downstream `next` and
   * `complete` handlers): for `initialState`, so a restarted pipeline fed the records after the
   * last one seen gives exactly the outputs the uninterrupted one would have. Covers the keys
   * in memory plus `initialState` keys not yet seen (keys dropped by `maxKeys` are gone).
   * Undefined when no subscription is live; an error when several are.
   */
  snapshot(): ContextMixSnapshot | undefined;
  /** Forgets the in-memory context of `keys`: on their next record they restore from `restoreKey` (or start fresh). */
  reload(keys: Iterable<string>): void;
};

/** Per-key state: the stream's context and the network's prediction of its next byte. */
interface KeyMix {
  stream: StreamContext;
  next: ArrayLike<number> | undefined;
}

/** Defaults sized for many keys: 256 KiB of history and a 64 K-entry match index per key. */
const KEYED_DEFAULTS: ContextMixerOptions = { historyBits: 18, matchIndexBits: 16 };

/**
 * Mixes the network's next-byte predictions with a {@link ContextMixer} (n-gram statistics and a
 * match model learned from the stream itself, as an adaptive compressor does), key by key: each
 * byte of a key is scored under the mix of what the network predicted after the key's previous
 * byte and what the mixer learned so far, then learned from (prequential). Emits one
 * {@link TokenPrediction} per byte, with `surprisal` under the mix and `topK` from the mixed
 * distribution (at record ends by default). Special tokens (ids >= 256) pass through with the
 * network's own surprisal. Records without finite `nextLogProbs` go to `errors`.
 *
 * @example
 * ```ts
 * const mix = contextMix();
 * lines$.pipe(tokenize(), infiniteFormer(model), mix, recordSurprisal(), anomalies({ quantile: 0.99 }))
 * const saved = mix.snapshot(); // { mixer, keys }: contextMix({ initialState: saved }) continues exactly
 * ```
 */
export function contextMix(options: ContextMixOptions = {}): ContextMixOperator {
  const topK = options.topK ?? 5;
  if (!Number.isInteger(topK) || topK < 1 || topK > 256) throw new BadConfigError('topK', `must be an integer in [1, 256], got ${String(topK)}`);
  const topKAt = options.topKAt ?? 'record';
  if (topKAt !== 'record' && topKAt !== 'token') throw new BadConfigError('topKAt', `must be "record" or "token", got ${JSON.stringify(topKAt)}`);
  const maxKeys = options.maxKeys ?? 1000;
  if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new BadConfigError('maxKeys', `must be a positive integer, got ${String(maxKeys)}`);
  const initial = initialStateOf(options);
  /** The restored mixer, for the first subscription (later ones restore their own copy). */
  let restored = initial.mixer === undefined ? undefined : restoreMixer(initial.mixer, options.mixer);
  const newMixer = (): ContextMixer => {
    if (initial.mixer !== undefined) {
      const m = restored ?? ContextMixer.restore(initial.mixer);
      restored = undefined;
      return m;
    }
    const given = options.mixer;
    return given instanceof ContextMixer ? given : new ContextMixer({ ...KEYED_DEFAULTS, ...given });
  };
  const sessions = new Set<() => ContextMixSnapshot>();
  const forgetters = new Set<(keys: Iterable<string>) => void>();

  const operator = (source: Observable<ModelOutput>): Observable<TokenPrediction> =>
    new Observable<TokenPrediction>((subscriber) => {
      const mixer = newMixer();
      const unseen = new Map(initial.keys);
      let failedRestore: { key: string; error: unknown } | undefined;
      const keys = new KeyedState<KeyMix>(maxKeys, (key) => {
        const bytes = unseen.get(key) ?? options.restoreKey?.(key);
        if (bytes !== undefined) {
          unseen.delete(key);
          try {
            const { stream, pending } = mixer.readStream(bytes);
            return { stream, next: pending };
          } catch (error) {
            failedRestore = { key, error };
          }
        }
        return { stream: mixer.createStream(), next: undefined };
      });
      const snapshot = (): ContextMixSnapshot => {
        const out = new Map(unseen);
        for (const [key, k] of keys.entries()) out.set(key, mixer.saveStream(k.stream, k.next));
        return { mixer: mixer.saveState(), keys: out };
      };
      sessions.add(snapshot);
      const forget = (forgotten: Iterable<string>) => {
        for (const key of forgotten) {
          keys.delete(key);
          unseen.delete(key);
        }
      };
      forgetters.add(forget);
      const sub = source.subscribe({
        next(record) {
          if (subscriber.closed) return;
          const probs = byteProbs(record?.nextLogProbs);
          if (probs === undefined) {
            reportFailure('contextMix', options, { error: new BadInputError('nextLogProbs', `expected finite log-probabilities of at least 256 tokens (key ${record?.key})`), record, key: record?.key });
            return;
          }
          const k = keys.get(record.key);
          if (failedRestore !== undefined) {
            reportFailure('contextMix', options, { ...failedRestore, record });
            failedRestore = undefined;
          }
          let surprisal = record.surprisal;
          if (record.token < 256) surprisal = mixer.code(k.stream, record.token, k.next);
          k.next = probs;
          const out: TokenPrediction = { key: record.key, index: record.index, token: record.token, surprisal, endOfRecord: record.endOfRecord };
          if (topKAt === 'token' || record.endOfRecord) out.topK = mixer.topK(k.stream, probs, topK);
          if (record.source !== undefined) out.source = record.source;
          subscriber.next(out);
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => {
        sub.unsubscribe();
        sessions.delete(snapshot);
        forgetters.delete(forget);
        keys.clear();
        unseen.clear();
      };
    });

  const snapshot = (): ContextMixSnapshot | undefined => {
    if (sessions.size > 1) throw new InfiniformerError(`contextMix: snapshot() needs one live subscription, there are ${sessions.size}`, 'ERR_AMBIGUOUS');
    const [only] = sessions;
    return only?.();
  };
  const reload = (keys: Iterable<string>): void => {
    const list = [...keys];
    for (const forget of forgetters) forget(list);
  };
  return Object.assign(operator, { snapshot, reload });
}

/** The checked `initialState` option. */
function initialStateOf(options: ContextMixOptions): { mixer: Uint8Array | undefined; keys: Map<string, Uint8Array> } {
  const init = options.initialState;
  const keys = new Map<string, Uint8Array>();
  if (init === undefined) return { mixer: undefined, keys };
  if (init === null || typeof init !== 'object') throw new BadConfigError('initialState', 'must be { mixer?, keys? } (e.g. from snapshot())');
  if (init.mixer !== undefined && !(init.mixer instanceof Uint8Array)) throw new BadConfigError('initialState', 'mixer must be a Uint8Array');
  for (const pair of init.keys ?? []) {
    if (!Array.isArray(pair) || typeof pair[0] !== 'string' || !(pair[1] instanceof Uint8Array)) throw new BadConfigError('initialState', 'keys must be [key, bytes] pairs (e.g. the Map from snapshot())');
    keys.set(pair[0], pair[1]);
  }
  return { mixer: init.mixer, keys };
}

/** The mixer of `bytes`, checked against the `mixer` option (a ModelFileError if the bytes are bad). */
function restoreMixer(bytes: Uint8Array, given: ContextMixer | ContextMixerOptions | undefined): ContextMixer {
  if (given instanceof ContextMixer) throw new BadConfigError('initialState', 'a saved mixer cannot be combined with a mixer instance (restore it with ContextMixer.restore and pass that instead)');
  const m = ContextMixer.restore(bytes);
  for (const [k, v] of Object.entries(given ?? {})) {
    if (v !== undefined && m.options[k as keyof ContextMixerOptions] !== v) throw new BadConfigError('initialState', `the saved mixer has ${k} ${m.options[k as keyof ContextMixerOptions]}, the mixer option says ${String(v)}`);
  }
  return m;
}

/** Byte probabilities from natural-log probabilities over a byte vocabulary (undefined if unusable). */
function byteProbs(lp: Float32Array | undefined): Float32Array | undefined {
  if (!(lp instanceof Float32Array) || lp.length < 256) return undefined;
  const p = new Float32Array(256);
  for (let i = 0; i < 256; i++) {
    const v = lp[i]!;
    if (!(v <= 0) && !(v > 0)) return undefined; // NaN
    p[i] = Math.exp(v);
  }
  return p;
}
