import { Observable, type Subscriber, type Subscription } from 'rxjs';
import { BadConfigError, BadInputError, InfiniformerError } from '../src/errors.js';
import type { InfiniFormer } from '../src/model/model.js';
import { BatchScheduler } from './batchScheduler.js';
import { ChunkRunner } from './chunkRunner.js';
import { settingsOf, zeroStats, type InfiniteFormerOperator, type InfiniteFormerOptions, type InfiniteFormerStats, type Settings } from './infiniteFormerSettings.js';
import { KeyCache } from './keyCache.js';
import { readTokens } from './records.js';
import { reportFailure } from './sideOutput.js';
import type { ModelOutput, TokenInput } from './types.js';

export type { InfiniteFormerOperator, InfiniteFormerOptions, InfiniteFormerStats, OverflowStrategy } from './infiniteFormerSettings.js';

/** A live subscription's view, for `checkpoint()` and `stats()`. */
interface Session {
  checkpoint(): Promise<void>;
  reload(keys: Iterable<string>): string[];
  waiting(keys: Iterable<string>): string[];
  stats(): InfiniteFormerStats;
}

interface Registry {
  opened(view: Session): void;
  closed(view: Session): void;
}

/**
 * Runs the ∞-former over keyed token streams and emits, per token, a plain {@link ModelOutput}
 * `{ key, index, token, surprisal, nextLogProbs, endOfRecord, source }` (no tensors leave the
 * operator). Each key (log source, user, device) has its own fixed-size `StreamState`, created
 * on first sight; at most `maxKeys` are in memory, every other key's state is owned by the
 * `store` (least recently run evicted into it, brought back from it bit for bit); `checkpoint()`
 * writes the live ones too and flushes the store, so a next run with the same store continues.
 * Records arrive on a queue per key (bounded: `maxQueue`, `overflow`; `onPause` / `onResume` at
 * watermarks so a source can be slowed); on the next scheduler tick every key with waiting
 * tokens (up to `maxKeys` of them, those in memory first: see {@link BatchScheduler}) advances by
 * one token (token mode) or one chunk (segment mode), such keys batched into one forward pass
 * per segment position; each key runs serially, so its outputs
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
      new FormerSubscription(model, s, options, upstream, subscriber, {
        opened: (view) => {
          sessions.add(view);
          lastStats = () => view.stats();
        },
        closed: (view) => sessions.delete(view),
      }).teardown,
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
  const reload = (keys: Iterable<string>): string[] => onlySession('reload')?.reload(keys) ?? [];
  const waiting = (keys: Iterable<string>): string[] => onlySession('waiting')?.waiting(keys) ?? [];
  return Object.assign(operator, { checkpoint, stats, reload, waiting });
}

/** A record's key and token ids, or undefined (an error record was reported). */
function readRecord<T>(s: Settings<T>, vocabSize: number, record: T, fail: (error: unknown, record: T, key?: string) => void): { key: string; ids: ArrayLike<number>; source: unknown } | undefined {
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
    const ids = readTokens(typeof raw === 'number' ? { token: raw } : { tokens: raw }, vocabSize);
    if (ids.length === 0) throw new BadInputError('tokens', 'is empty');
    return { key, ids, source: s.sourceOf(record) };
  } catch (error) {
    fail(error, record, key);
    return undefined;
  }
}

/**
 * One subscription: the RxJS glue (arrival, completion, errors, teardown) around its
 * {@link BatchScheduler} (queues and rounds), {@link KeyCache} (key states) and {@link ChunkRunner}
 * (forward passes).
 */
class FormerSubscription<T> implements Session {
  private readonly cache: KeyCache;
  private readonly runner: ChunkRunner;
  private readonly queues: BatchScheduler<T>;
  private readonly upstreamSub: Subscription;
  private errors = 0;

  constructor(
    private readonly model: InfiniFormer,
    private readonly s: Settings<T>,
    private readonly options: InfiniteFormerOptions<T>,
    upstream: Observable<T>,
    private readonly subscriber: Subscriber<ModelOutput>,
    private readonly registry: Registry,
  ) {
    this.cache = new KeyCache(model, s.maxKeys, s.store, {
      seedOf: s.seedOf,
      isWaiting: (key) => this.queues.isWaiting(key),
      onEvicted: (key) => this.queues.evicted(key),
      onRestoreError: (key, error) => this.fail(error, this.queues.firstRecord(key) as T, key),
    });
    this.runner = new ChunkRunner(model, s.learner, s.emitHidden, s.mode === 'segment', s.segmentsPerStep);
    this.queues = new BatchScheduler<T>({ ...s, segmentLength: model.config.segmentLength }, this.cache, this.runner, {
      emit: (out) => subscriber.next(out),
      fail: (error, record, key, token) => this.fail(error, record, key, token),
      fatal: (error) => this.fatal(error),
      onPause: () => options.onPause?.(),
      onResume: () => options.onResume?.(),
    });
    registry.opened(this);
    this.upstreamSub = upstream.subscribe({
      next: (record) => this.next(record),
      error: (err: unknown) => this.end(() => this.onError(err)),
      complete: () => this.end(() => this.onComplete()),
    });
  }

  /** The teardown of the subscription. */
  readonly teardown = (): void => {
    this.upstreamSub.unsubscribe();
    if (!this.queues.closed) this.release();
  };

  stats(): InfiniteFormerStats {
    const q = this.queues;
    return {
      ...q.counts,
      errors: this.errors,
      tokens: this.runner.tokens,
      forwardPasses: this.runner.forwardPasses,
      segmentsLearned: this.runner.segmentsLearned,
      evictions: this.cache.evictions,
      restores: this.cache.restores,
      liveKeys: this.cache.size,
      pending: q.pending,
      paused: q.paused,
    };
  }

  reload(keys: Iterable<string>): string[] {
    const busy: string[] = [];
    for (const key of keys) {
      if (this.queues.isWaiting(key)) busy.push(key);
      else this.cache.drop(key);
    }
    return busy;
  }

  waiting(keys: Iterable<string>): string[] {
    return [...keys].filter((key) => this.queues.isWaiting(key));
  }

  async checkpoint(): Promise<void> {
    if (this.queues.closed) return;
    this.cache.writeAll();
    await this.s.store!.flush();
  }

  private fail(error: unknown, record: T, key?: string, token?: number): void {
    this.errors++;
    reportFailure('infiniteFormer', this.options, { error, record, key, token });
  }

  private next(record: T): void {
    if (this.queues.closed || this.subscriber.closed) return; // a synchronous source after downstream unsubscribed
    try {
      const r = readRecord(this.s, this.model.config.vocabSize, record, (error, rec, key) => this.fail(error, rec, key));
      if (r !== undefined) this.queues.enqueue(r.key, r.ids, record, r.source);
    } catch (error) {
      this.fatal(error);
    }
  }

  /** The source ended: now, or after the rounds under way. */
  private end(then: () => void): void {
    if (this.queues.closed) return;
    if (this.queues.draining) this.queues.deferEnd(then);
    else then();
  }

  private release(): void {
    this.queues.close();
    this.cache.release();
    this.registry.closed(this);
  }

  /** A hook threw (a store put, onPause, onResume, seed ...): free everything, error the stream. */
  private fatal(error: unknown): void {
    if (this.queues.closed) return;
    this.release();
    this.subscriber.error(error);
  }

  /** Runs what waits (`flush`), then writes every key to the store (`spill`); false when the stream closed meanwhile. */
  private finish(flush: boolean, spill: boolean): boolean {
    try {
      this.queues.finish(flush);
      if (!this.queues.closed && spill) this.cache.evictAll();
    } catch (error) {
      this.fatal(error);
    }
    if (this.queues.closed) return false;
    this.release();
    return true;
  }

  private onError(err: unknown): void {
    if (this.finish(this.s.flushOnError, false)) this.subscriber.error(err);
  }

  private onComplete(): void {
    const spill = this.s.spillOnComplete && this.s.store !== undefined;
    if (!this.finish(true, spill)) return;
    if (!spill) {
      this.subscriber.complete();
      return;
    }
    // Complete once the store holds every key durably.
    this.s.store!.flush().then(
      () => this.subscriber.complete(),
      (error: unknown) => this.subscriber.error(error),
    );
  }
}
