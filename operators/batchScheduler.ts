/**
 * The per-key queues and the round scheduler of {@link infiniteFormer}: tokens wait in a bounded
 * queue per key (overflow strategies, pause/resume watermarks over all keys); on a scheduler tick
 * every ready key advances by one token (token mode) or one chunk (segment mode), the keys of a
 * round batched into one forward pass per segment position and chunk length. Segment mode's
 * `maxDelayMs` timers make a key's partial chunk ready. Key states are in a {@link KeyCache},
 * forward passes in a {@link ChunkRunner}; no RxJS subscription here (the operator is the glue).
 *
 * Fair admission: a round first takes the keys whose state is live and that have run fewer than
 * L tokens since they were brought into memory (running them evicts nobody), then every other
 * waiting key in turn order (the longest waiting first). With more waiting keys than `maxKeys`,
 * a key thus keeps its place in memory for up to L tokens instead of being evicted between two
 * of its tokens, and a key out of memory waits at most about L rounds of the live keys.
 */
import type { SchedulerLike, Subscription } from 'rxjs';
import { OverflowError } from '../src/errors.js';
import type { ChunkRunner } from './chunkRunner.js';
import type { OverflowStrategy } from './infiniteFormerSettings.js';
import type { KeyCache } from './keyCache.js';
import { positionOf } from './keyState.js';
import type { ModelOutput } from './types.js';

/** What the scheduler needs of the checked options. */
export interface SchedulerConfig {
  mode: 'token' | 'segment';
  segmentLength: number;
  maxKeys: number;
  maxQueue: number;
  overflow: OverflowStrategy;
  high: number;
  low: number;
  maxDelay: number | undefined;
  roundsPerTick: number;
  batch: boolean;
  scheduler: SchedulerLike;
}

/** How the scheduler talks back to the operator. */
export interface SchedulerHooks<T> {
  /** One output, in order. */
  emit(output: ModelOutput): void;
  /** A record or token goes to the error side output. */
  fail(error: unknown, record: T, key?: string, token?: number): void;
  /** Something threw inside the rounds (a store put, onResume ...): free everything, error the stream. */
  fatal(error: unknown): void;
  onPause(): void;
  onResume(): void;
}

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
  /** Segment position (the state's, plus the tokens held ahead of it), when known (the state is or was in memory while tokens wait). */
  pos: number | undefined;
  /** Tokens run since the state was last brought into memory (fair admission). */
  ran: number;
  timer: Subscription | undefined;
  flushDue: boolean;
}

interface Item<T> {
  e: Entry<T>;
  take: number;
}

export class BatchScheduler<T> {
  private readonly entries = new Map<string, Entry<T>>();
  /** Entries with waiting tokens, in the order they get their turn. */
  private readonly waiting = new Map<string, Entry<T>>();
  readonly counts = { maxQueued: 0, rounds: 0, dropped: 0, pauses: 0 };
  /** Tokens waiting over all keys. */
  pending = 0;
  paused = false;
  /** Rounds are running (a call back into the operator from inside them cannot wait). */
  draining = false;
  closed = false;
  private tick: Subscription | undefined;
  private tickScheduled = false;
  private deferredEnd: (() => void) | undefined;

  constructor(
    private readonly cfg: SchedulerConfig,
    private readonly cache: KeyCache,
    private readonly runner: ChunkRunner,
    private readonly hooks: SchedulerHooks<T>,
  ) {}

  /** Whether tokens of `key` wait. */
  isWaiting(key: string): boolean {
    return (this.entries.get(key)?.queue.length ?? 0) > 0;
  }

  /** The record of the oldest waiting token of `key` (for an error record). */
  firstRecord(key: string): T | undefined {
    return this.entries.get(key)?.queue[0]?.record;
  }

  /** The cache evicted `key`: forget it unless tokens of it wait. */
  evicted(key: string): void {
    const e = this.entries.get(key);
    if (e !== undefined && e.queue.length === 0) {
      e.timer?.unsubscribe();
      this.entries.delete(key);
    }
  }

  /** Runs `end` after the rounds under way (the source ended from inside them). */
  deferEnd(end: () => void): void {
    this.deferredEnd = end;
  }

  /** Queues a record's tokens under its key, applying the overflow strategy and the watermarks. */
  enqueue(key: string, ids: ArrayLike<number>, record: T, source: unknown): void {
    const { overflow, maxQueue } = this.cfg;
    const n = ids.length;
    let e = this.entries.get(key);
    const queued = e?.queue.length ?? 0;
    if ((overflow === 'error-record' || (overflow === 'block' && this.draining)) && queued + n > maxQueue) {
      this.hooks.fail(new OverflowError(`the queue of key ${JSON.stringify(key)} holds ${queued} tokens; ${n} more exceed maxQueue ${maxQueue}`), record, key);
      return;
    }
    if (e === undefined) {
      const live = this.cache.get(key);
      e = { key, queue: [], pos: live === undefined ? undefined : positionOf(live), ran: 0, timer: undefined, flushDue: false };
      this.entries.set(key, e);
    }
    const at = this.cfg.scheduler.now();
    for (let i = 0; i < n; i++) {
      if (overflow === 'block' && !this.waitForRoom(e)) return;
      e.queue.push({ token: ids[i]!, record, source, end: i === n - 1, at });
      this.pending++;
      if (overflow === 'drop-oldest' && e.queue.length > maxQueue) {
        const dropped = e.queue.shift()!;
        this.pending--;
        this.counts.dropped++;
        this.hooks.fail(new OverflowError(`the queue of key ${JSON.stringify(key)} is full (maxQueue ${maxQueue}): its oldest token was dropped`), dropped.record, key, dropped.token);
      }
      this.counts.maxQueued = Math.max(this.counts.maxQueued, e.queue.length);
    }
    if (!this.waiting.has(key)) this.waiting.set(key, e);
    if (!this.paused && this.pending >= this.cfg.high) {
      this.paused = true;
      this.counts.pauses++;
      this.hooks.onPause();
    }
    this.armTimer(e);
    if (this.isReady(e)) this.requestTick();
  }

  /** `'block'`: runs rounds until the key's queue has room; false when the stream closed meanwhile. */
  private waitForRoom(e: Entry<T>): boolean {
    while (e.queue.length >= this.cfg.maxQueue && !this.closed) {
      if (!this.waiting.has(e.key)) this.waiting.set(e.key, e);
      this.drain(1, false);
    }
    return !this.closed;
  }

  /** Runs up to `maxRounds` rounds (`flushAll`: partial chunks too), then resumes the source below the low watermark. */
  drain(maxRounds: number, flushAll: boolean): void {
    if (this.draining) return;
    this.draining = true;
    try {
      for (let r = 0; r < maxRounds && !this.closed; r++) {
        if (!this.round(flushAll)) break;
      }
      if (this.paused && this.pending <= this.cfg.low && !this.closed) {
        this.paused = false;
        this.hooks.onResume();
      }
    } catch (error) {
      this.draining = false;
      this.hooks.fatal(error);
      return;
    } finally {
      this.draining = false;
    }
    // The source ended while the rounds ran (a downstream that completes its own source).
    const end = this.deferredEnd;
    this.deferredEnd = undefined;
    if (end !== undefined && !this.closed) end();
  }

  /** The end of the input: cancels the tick and, with `flush`, runs everything that waits (partial chunks too). */
  finish(flush: boolean): void {
    this.cancelTick();
    if (!flush) return;
    for (const e of this.waiting.values()) {
      e.timer?.unsubscribe();
      e.timer = undefined;
    }
    this.drain(Number.POSITIVE_INFINITY, true);
  }

  /** Stops everything: no more rounds, ticks or timers; the queues are dropped. */
  close(): void {
    this.closed = true;
    this.cancelTick();
    for (const e of this.entries.values()) e.timer?.unsubscribe();
    this.entries.clear();
    this.waiting.clear();
    this.pending = 0;
  }

  private cancelTick(): void {
    this.tick?.unsubscribe();
    this.tick = undefined;
    this.tickScheduled = false;
  }

  // ---- one model round ----

  /** Runs one round; returns false when no key was ready. */
  private round(flushAll: boolean): boolean {
    const items = this.select(flushAll);
    if (items.length === 0) return false;
    this.counts.rounds++;
    for (const { e } of items) {
      this.cache.touch(e.key); // most recently run
      this.waiting.delete(e.key); // back of the line
      e.timer?.unsubscribe();
      e.timer = undefined;
      e.flushDue = false;
    }
    for (const group of this.groupsOf(items)) {
      if (this.closed) return false;
      const outputs = this.runGroup(group);
      for (const { e } of group) {
        if (e.queue.length > 0) {
          this.waiting.set(e.key, e);
          this.armTimer(e);
        }
      }
      for (const out of outputs) {
        if (this.closed) return false;
        this.hooks.emit(out);
      }
    }
    return true;
  }

  /** The keys that run this round (in turn order) and how many tokens each takes; their states loaded. */
  private select(flushAll: boolean): Item<T>[] {
    const { maxKeys, segmentLength: L } = this.cfg;
    const takes = new Map<Entry<T>, number>();
    const chosen = new Set<string>();
    const consider = (e: Entry<T>): void => {
      const take = this.takeOf(e, flushAll, chosen);
      if (take === 0) return;
      takes.set(e, take);
      chosen.add(e.key);
    };
    // Live keys within their quantum first: running them evicts nobody.
    for (const e of this.waiting.values()) {
      if (takes.size >= maxKeys) break;
      if (e.ran < L && this.cache.get(e.key) !== undefined) consider(e);
    }
    // Then the others in turn order: keys out of memory come in, live keys past their quantum may go.
    for (const e of this.waiting.values()) {
      if (takes.size >= maxKeys) break;
      if (!takes.has(e)) consider(e);
    }
    const items: Item<T>[] = [];
    for (const e of this.waiting.values()) {
      const take = takes.get(e);
      if (take !== undefined) items.push({ e, take });
    }
    for (const item of items) this.load(item.e, chosen);
    return items;
  }

  /** Tokens `e` takes this round: 1 in token mode; in segment mode the rest of its segment, or what waits when flushing (0: not ready). */
  private takeOf(e: Entry<T>, flushAll: boolean, protect: ReadonlySet<string>): number {
    if (this.cfg.mode === 'token') return 1;
    if (e.pos === undefined) this.load(e, protect);
    const need = this.cfg.segmentLength - e.pos!;
    return e.queue.length >= need ? need : flushAll || e.flushDue ? e.queue.length : 0;
  }

  /** Brings the key's state into memory (evicting others, never one in `protect`); a key brought in starts a new quantum. */
  private load(e: Entry<T>, protect: ReadonlySet<string>): void {
    if (this.cache.get(e.key) === undefined) e.ran = 0;
    e.pos = positionOf(this.cache.load(e.key, protect));
  }

  /**
   * One forward pass per state position and length of the chunk run (with `batch`), else one
   * per key. The chunk run is the held tokens and the new ones: keys completing a segment from
   * different held lengths go into one pass (one learning step).
   */
  private groupsOf(items: Item<T>[]): Item<T>[][] {
    const groups = new Map<string, Item<T>[]>();
    items.forEach((item, n) => {
      const ks = this.cache.get(item.e.key)!;
      const held = ks.held?.length ?? 0;
      // Without holding, held tokens (a state saved by a learning run) are run in first.
      const id = !this.cfg.batch ? String(n) : this.runner.hold ? `${ks.state.pos}:${held + item.take}` : `${ks.state.pos + held}:${item.take}`;
      const group = groups.get(id);
      if (group === undefined) groups.set(id, [item]);
      else group.push(item);
    });
    return [...groups.values()];
  }

  /** Runs one group; each key takes its own `take` tokens (with held tokens, takes differ within a group). */
  private runGroup(group: Item<T>[]): ModelOutput[] {
    let outputs: ModelOutput[];
    try {
      outputs = this.runner.run(group.map((i) => ({ key: i.e.key, ks: this.cache.get(i.e.key)!, tokens: i.e.queue.slice(0, i.take) })));
    } catch (error) {
      // Not expected (records are checked on arrival): report the tokens, drop them, go on.
      for (const item of group) {
        for (const p of item.e.queue.splice(0, item.take)) this.hooks.fail(error, p.record, item.e.key, p.token);
        this.pending -= item.take;
      }
      return [];
    }
    for (const item of group) {
      item.e.queue.splice(0, item.take);
      this.pending -= item.take;
      item.e.ran += item.take;
      item.e.pos = positionOf(this.cache.get(item.e.key)!);
    }
    return outputs;
  }

  // ---- ticks and timers ----

  /** A key can run a round: token mode, its flush is due, or it has a segment's worth queued. */
  private isReady(e: Entry<T>): boolean {
    return this.cfg.mode === 'token' || e.flushDue || e.pos === undefined || e.queue.length >= this.cfg.segmentLength - e.pos;
  }

  private hasReady(): boolean {
    for (const e of this.waiting.values()) if (this.isReady(e)) return true;
    return false;
  }

  // A synchronous scheduler (queueScheduler) may run an action inside schedule(): keep the
  // subscription only when the action has not run yet.
  private requestTick(): void {
    if (this.tickScheduled || this.closed) return;
    this.tickScheduled = true;
    const sub = this.cfg.scheduler.schedule(() => {
      this.tickScheduled = false;
      this.tick = undefined;
      this.drain(this.cfg.roundsPerTick, false);
      if (this.hasReady()) this.requestTick();
    }, 0);
    if (this.tickScheduled) this.tick = sub;
  }

  private armTimer(e: Entry<T>): void {
    const { maxDelay, scheduler } = this.cfg;
    if (maxDelay === undefined || e.timer !== undefined || e.flushDue || e.queue.length === 0 || this.closed) return;
    const wait = Math.max(0, e.queue[0]!.at + maxDelay - scheduler.now());
    let fired = false;
    const sub = scheduler.schedule(() => {
      fired = true;
      e.timer = undefined;
      e.flushDue = true;
      this.requestTick();
    }, wait);
    if (!fired) e.timer = sub;
  }
}
