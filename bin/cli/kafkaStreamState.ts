/**
 * `stream --kafka-topic`: the main job's state in a compacted changelog topic, written at aligned
 * checkpoints (connectors/kafka `checkpoint` option): every --commit-interval the input is held
 * at a record boundary, the lines in flight are written, every key's model state and mixing
 * context changed since the last checkpoint and the shared state (learned weights, mixer
 * statistics) go to the changelog, and only then the offsets are committed. So the state
 * restored after a crash or rebalance is the state as of the committed offsets (or newer: a
 * record its restored key state already covers is recognised and skipped, never applied twice).
 */
import type { Message } from 'kafkajs';
import { restoreFromChangelog, type RestoredState } from '../../connectors/kafka/changelog.js';
import { ChangelogKeyStore, SHARED_STATE_TOPIC } from '../../connectors/kafka/changelogStore.js';
import { ensureTopics, kafkaClient, kafkaFailure } from '../../connectors/kafka/client.js';
import type { KafkaConnectionSettings } from '../../connectors/kafka/config.js';
import { SharedStateLog } from '../../connectors/kafka/sharedStateLog.js';
import type { AlignedCheckpoint } from '../../connectors/kafka/sourceTypes.js';
import { createLogger } from '../../src/logger.js';
import { CliError } from './command.js';
import type { IngestLine } from './ingest.js';

const log = createLogger('infiniformer:stream:kafka-state');

/** The changelog topic of a consumer group's stream state. */
export const stateTopicOf = (group: string): string => `${group}.state`;

/** What the pipeline hands over at a checkpoint. */
export interface StreamParts {
  /** Writes every changed live key state into {@link KafkaStreamState.models} (synchronously, before its first await). */
  checkpointModel(): Promise<void>;
  /** The mixer's snapshot, when it mixes. */
  mixSnapshot(): { mixer: Uint8Array; keys: Map<string, Uint8Array> } | undefined;
  /** The learner's bytes, when there is a learner. */
  learnerBytes(): Uint8Array | undefined;
  /** Holds the input at a record boundary until the lines in flight are written; the result lets it go on. */
  quiesce(): Promise<() => void>;
  /** Drops the in-memory model state and mixing context of `keys` (they load again from the stores); returns the keys with tokens waiting, left alone. */
  reload(keys: string[]): string[];
  /** The keys of `keys` with tokens waiting in the model. */
  waiting(keys: string[]): string[];
  /** Drops the lines of a revoked partition not yet fed to the model. */
  dropQueued(topic: string, partition: number): void;
}

/** Per input partition and key, the last offset applied (or covered by a restored state). */
export class AppliedOffsets {
  private readonly byPartition = new Map<string, Map<string, { offset: number; origin: object | null }>>();

  private partitionOf(topic: string, partition: number): Map<string, { offset: number; origin: object | null }> {
    const id = `${topic}\u0000${partition}`;
    let keys = this.byPartition.get(id);
    if (keys === undefined) this.byPartition.set(id, (keys = new Map()));
    return keys;
  }

  /** The keys of the partition that lines were applied to. */
  keysOf(topic: string, partition: number): string[] {
    return [...this.partitionOf(topic, partition).keys()];
  }

  /** False for a line of a record its key's state already covers (fetched again after a rebalance or restart). */
  accept(topic: string, partition: number, key: string, offset: number, origin: object | null): boolean {
    const keys = this.partitionOf(topic, partition);
    const last = keys.get(key);
    if (last !== undefined && (offset < last.offset || (offset === last.offset && origin !== last.origin))) return false;
    keys.set(key, { offset, origin });
    return true;
  }

  /**
   * The partition is taken over with `covered`, the restored keys and the input each state
   * covers: those are the partition's keys from now on, and nothing else of it counts as
   * applied. Returns the keys whose state in this process's memory is not the restored one:
   * keys it applied other input to (it owned the partition before), including keys the
   * changelog has no state for, whose input it applied but never committed (a fenced
   * zombie's): their records are read again from the committed offset and must be applied and
   * output again, from an empty state.
   */
  takeOver(topic: string, partition: number, covered: ReadonlyMap<string, number>): string[] {
    const keys = this.partitionOf(topic, partition);
    const stale: string[] = [];
    for (const key of keys.keys()) if (!covered.has(key)) stale.push(key);
    for (const key of stale) keys.delete(key);
    for (const [key, offset] of covered) {
      const last = keys.get(key);
      if (last?.offset === offset) continue;
      if (last !== undefined) stale.push(key);
      keys.set(key, { offset, origin: null });
    }
    return stale;
  }
}

/** Retries `f` on retriable Kafka errors (a topic just created has no leader yet) for up to ~10 s. */
async function withRetries<R>(f: () => Promise<R>): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await f();
    } catch (error) {
      if (attempt >= 20 || (error as { retriable?: boolean }).retriable !== true) throw error;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** How long a partition taken over waits for lines of its earlier ownership still in the model. */
const EARLIER_LINES_WAIT_MS = 30_000;

const SHARED_NAMES = ['learner', 'mixer'] as const;
type SharedName = (typeof SHARED_NAMES)[number];

/** The restored shared state at start. */
export interface RestoredShared {
  learner?: Uint8Array;
  mixer?: Uint8Array;
}

export class KafkaStreamState {
  /** Every key's model state (the infiniteFormer store). */
  readonly models: ChangelogKeyStore;
  /** Every key's mixing context. */
  readonly mixes: ChangelogKeyStore;
  readonly topic: string;
  private readonly applied = new AppliedOffsets();
  private parts: StreamParts | undefined;
  /** Taken when the pipeline completed: the final checkpoint uses it. */
  private final: { mix: ReturnType<StreamParts['mixSnapshot']>; learner: Uint8Array | undefined } | undefined;
  /** The learner's and the mixer's shared state: a base and deltas (connectors/kafka/sharedStateLog.ts). */
  private readonly sharedLogs = new Map<SharedName, SharedStateLog>();
  private epoch = 0;
  /** Counters for stderr and tests. */
  readonly counts = { restoredKeys: 0, skippedAsApplied: 0, checkpoints: 0, checkpointBytes: 0, reloadedKeys: 0 };

  private constructor(
    group: string,
    private readonly fingerprint: string,
    private readonly note: (event: Record<string, unknown>) => void,
  ) {
    this.topic = stateTopicOf(group);
    // Keys carry the model's fingerprint: another model's state in the same topic is ignored.
    this.models = new ChangelogKeyStore(`${fingerprint}/m/`);
    this.mixes = new ChangelogKeyStore(`${fingerprint}/x/`);
  }

  /**
   * Creates the changelog topic when missing (compacted, as many partitions as the input) and
   * reads the shared state (weights, mixer) of the last checkpoint. Exactly-once: a killed
   * process's transaction open on the shared partition holds the read back until the broker
   * aborts it (after `transactionTimeoutMs`), hence the longer wait.
   */
  static async open(connection: KafkaConnectionSettings, group: string, inputTopic: string, fingerprint: string, note: (event: Record<string, unknown>) => void, transactionTimeoutMs?: number): Promise<{ state: KafkaStreamState; shared: RestoredShared }> {
    const state = new KafkaStreamState(group, fingerprint, note);
    const kafka = kafkaClient({ ...connection, clientId: 'infiniformer-stream-state' });
    const started = Date.now();
    let restored: Map<string, Map<string, RestoredState>>;
    try {
      await ensureTopics(kafka, [{ topic: state.topic, compacted: true, partitionsLike: [inputTopic] }]);
      restored = await withRetries(() => restoreFromChangelog(kafka, state.topic, [{ topic: SHARED_STATE_TOPIC, partition: 0 }], group, 60_000 + (transactionTimeoutMs ?? 0), log));
    } catch (error) {
      throw new CliError(kafkaFailure(`reading the stream state topic '${state.topic}'`, error, connection).message, { cause: error });
    }
    const states = restored.get(`${SHARED_STATE_TOPIC}:0`) ?? new Map<string, RestoredState>();
    const shared: RestoredShared = {};
    for (const name of SHARED_NAMES) {
      const found = SharedStateLog.restore(states, `${fingerprint}/${name}`, (message) => log.warn(message));
      state.sharedLogs.set(name, new SharedStateLog(`${fingerprint}/${name}`, found));
      if (found === undefined) continue;
      shared[name] = found.bytes;
      state.epoch = Math.max(state.epoch, found.epoch); // later writes must cover more (restore keeps the max)
    }
    if (shared.learner !== undefined || shared.mixer !== undefined) note({ note: `continuing the shared state of ${state.topic}`, learner: shared.learner?.length ?? 0, mixer: shared.mixer?.length ?? 0, ms: Date.now() - started });
    return { state, shared };
  }

  /** Connects the running pipeline. */
  attach(parts: StreamParts): void {
    this.parts = parts;
  }

  /**
   * Whether a line is to be applied: false for a line of a record its key's state already
   * covers. Routes the key's state to the line's input partition.
   */
  accept(line: IngestLine): boolean {
    const k = line.kafka;
    if (k === undefined) return true;
    if (!this.applied.accept(k.topic, k.partition, line.key, Number(k.offset), line.origin ?? null)) {
      this.counts.skippedAsApplied++;
      return false;
    }
    this.models.route(line.key, k.topic, k.partition);
    this.mixes.route(line.key, k.topic, k.partition);
    return true;
  }

  /** The pipeline completed with every line written: the final checkpoint takes this state. */
  finish(linesInFlight: number): void {
    if (this.parts === undefined || linesInFlight > 0) return;
    void this.parts.checkpointModel();
    this.final = { mix: this.parts.mixSnapshot(), learner: this.parts.learnerBytes() };
  }

  /** The source's side of the aligned checkpoints. */
  checkpoint(): AlignedCheckpoint {
    return {
      topic: this.topic,
      snapshot: (positions) => this.snapshot(positions),
      restore: (topic, partition, states) => this.restore(topic, partition, states),
      revoked: (topic, partition) => {
        this.models.release(topic, partition);
        this.mixes.release(topic, partition);
        this.parts?.dropQueued(topic, partition);
        this.note({ event: 'revoked', topic, partition });
      },
    };
  }

  private async snapshot(positionsOf: () => ReadonlyMap<string, number>): Promise<{ messages: Message[]; seal: Message[]; written(): void }> {
    const parts = this.parts;
    if (parts === undefined) throw new CliError('checkpoint before the pipeline runs');
    const resume = this.final === undefined ? await parts.quiesce() : () => undefined;
    try {
      const positions = positionsOf();
      if (this.final === undefined) void parts.checkpointModel(); // synchronous up to its flush, a no-op here
      const mix = this.final?.mix ?? parts.mixSnapshot();
      if (mix !== undefined) for (const [key, bytes] of mix.keys) this.mixes.put(key, bytes);
      const learner = this.final?.learner ?? parts.learnerBytes();
      const a = this.models.changes(positions);
      const b = this.mixes.changes(positions);
      const shared = this.sharedMessages({ learner, mixer: mix?.mixer });
      // The shared state's base or delta chunks first; once they landed, the keys and the
      // manifests that make that shared state current, together (one request when under the
      // size limit: a killed client sends a request whole or not at all), so a kill leaves keys
      // and shared state of one checkpoint. A manifest that landed before its keys restored a
      // learner ahead of them, which learned the replayed records twice (measured: 1,321
      // segments learned for 1,116); keys without their manifest ran ahead of the learner and
      // their replayed records were never learned (1,023 for 1,108). Several requests (more
      // than ~900 KiB of keys) leave that window open; --exactly-once closes it.
      const messages = shared.messages;
      const seal = [...a.messages, ...b.messages, ...shared.seal];
      const bytes = [...messages, ...seal].reduce((n, m) => n + ((m.value as Buffer | null)?.length ?? 0), 0);
      return {
        messages,
        seal,
        written: () => {
          a.durable();
          b.durable();
          shared.durable();
          this.counts.checkpoints++;
          this.counts.checkpointBytes += bytes;
          if (messages.length + seal.length > 0) this.note({ event: 'checkpoint', keys: a.messages.length, mixKeys: b.messages.length, shared: shared.messages.length, bytes, positions: Object.fromEntries(positions), ...shared.summary });
        },
      };
    } finally {
      resume();
    }
  }

  /** Shared state changed since its last durable write: a delta from it, or now and then a whole base. */
  private sharedMessages(values: Record<SharedName, Uint8Array | undefined>): { messages: Message[]; seal: Message[]; durable(): void; summary: Record<string, string> } {
    const messages: Message[] = [];
    const seal: Message[] = [];
    const done: Array<() => void> = [];
    const summary: Record<string, string> = {};
    this.epoch = Math.max(Date.now(), this.epoch + 1);
    for (const name of SHARED_NAMES) {
      const bytes = values[name];
      if (bytes === undefined) continue;
      const w = this.sharedLogs.get(name)!.write(bytes, this.epoch);
      if (w.kind === 'none') continue;
      messages.push(...w.messages);
      seal.push(...w.seal);
      done.push(w.durable);
      summary[name] = `${w.kind}:${w.bytes}`; // e.g. mixer: "delta:712345" on stderr
    }
    return { messages, seal, durable: () => done.forEach((d) => d()), summary };
  }

  /** Resolves once no tokens of `keys` wait in the model, or after {@link EARLIER_LINES_WAIT_MS}. */
  private async untilRun(keys: string[]): Promise<void> {
    const started = Date.now();
    while (this.parts !== undefined && this.parts.waiting(keys).length > 0 && Date.now() - started < EARLIER_LINES_WAIT_MS) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private async restore(topic: string, partition: number, states: ReadonlyMap<string, RestoredState>): Promise<void> {
    // Lines of an earlier ownership of the partition still waiting in the model run first (their
    // outputs are dropped with its transaction): the keys' states are replaced after them, and
    // the partition's records, read again, run on the replaced ones.
    await this.untilRun(this.applied.keysOf(topic, partition));
    const covered = this.models.restore(topic, partition, states);
    const mixCovered = this.mixes.restore(topic, partition, states);
    // A key this process ran before its partition moved away and came back: the restored state
    // (or none) replaces the one in memory (which missed what the other owner applied meanwhile,
    // or holds input that was never committed).
    const stale = this.applied.takeOver(topic, partition, covered);
    // Keys without a restored state start empty, whatever this process stored for them since.
    this.models.forget(stale.filter((key) => !covered.has(key)));
    this.mixes.forget(stale.filter((key) => !mixCovered.has(key)));
    const busy = stale.length > 0 && this.parts !== undefined ? this.parts.reload(stale) : [];
    if (busy.length > 0) log.warn('restored keys still running in this process keep their state in memory', { topic, partition, keys: busy.length });
    this.counts.restoredKeys += covered.size;
    this.counts.reloadedKeys += stale.length - busy.length;
    this.note({ event: 'restored', topic, partition, keys: covered.size, ...(stale.length > 0 ? { reloaded: stale.length - busy.length } : {}) });
  }
}
