/**
 * The ingestion layer of `infiniformer stream`: every source (stdin, a followed file, Kafka
 * values, the demo log) becomes one stream of {@link IngestLine}s by one rule (docs/ingestion.md):
 * split on `\n` only, exact bytes, lines cut at one cap, empty Kafka values and tombstones
 * skipped and counted. Lines are released to the model a few KiB at a time (a credit gate), so a
 * stop finishes the lines in hand within about a second however long the backlog is.
 */
import { existsSync, readFileSync } from 'node:fs';
import { BehaviorSubject, Observable, map, timer, type Subscriber, type Subscription } from 'rxjs';
import { followFileLines } from '../../connectors/file/followFile.js';
import { LineSplitter, isUtf8, pieceText, splitMessage, type LinePiece } from '../../connectors/file/lines.js';
import { readLines } from '../../connectors/file/stdin.js';
import { DEFAULT_RETRY, kafkaClient, kafkaFailure, ensureTopics } from '../../connectors/kafka/client.js';
import type { KafkaConnectionSettings } from '../../connectors/kafka/config.js';
import { fromKafka, type KafkaRecord, type KafkaSource } from '../../connectors/kafka/source.js';
import type { AlignedCheckpoint } from '../../connectors/kafka/sourceTypes.js';
import type { ExactlyOnceOptions, OutputTransaction } from '../../connectors/kafka/transactions.js';
import { CliError, UsageError } from './command.js';

/** One line (or piece of a cut line) on its way to the model. */
export interface IngestLine {
  /** The key whose model state scores it. */
  key: string;
  /** Index of the line in the run (the pieces of a cut line share it). */
  line: number;
  /** The original bytes: what the model scores. */
  bytes: Uint8Array;
  /** For display: the bytes without the final `\n`, invalid UTF-8 as U+FFFD. */
  text: string;
  truncated: boolean;
  continued: boolean;
  /** The Kafka record the line came from. */
  kafka?: { topic: string; partition: number; offset: string };
  /** The same object for every line of one fetched Kafka record (a record fetched again is another one). */
  origin?: object;
  /** --exactly-once: the open transaction of the record's input partition (outputs go through it). */
  transaction?: OutputTransaction;
  /** --follow: where the piece ends in the file. */
  fileEnd?: number;
  /** Its output is written: frees its credit; acknowledges its Kafka record once all the record's lines are. Idempotent. */
  done(): void;
  /** It could not be scored: dead-letters its Kafka record. Idempotent. */
  fail(error: unknown): void;
}

/** Where the lines come from. */
export type SourceSpec =
  | { kind: 'stdin' }
  | { kind: 'follow'; path: string; startAt?: { offset: number; head: Uint8Array } }
  | { kind: 'demo'; path: string; rate: number }
  | { kind: 'kafka'; connection: KafkaConnectionSettings; group: string; topic: string; commitIntervalMs?: number; sessionTimeoutMs?: number; checkpoint?: AlignedCheckpoint; exactlyOnce?: ExactlyOnceOptions };

export interface IngestOptions {
  maxLineBytes: number;
  /** The key of a line from its text, or the fallback (the source's own key). */
  keyOf?: (text: string, fallback: string) => string;
  counters: IngestCounters;
  /**
   * The model's segment length in bytes: the budget keeps at least two segments in flight per
   * recently seen key (up to its maximum), so that many keys' chunks fill whole segments (which
   * run batched across keys) instead of each key's few bytes running alone at its
   * `--max-delay-ms` flush (64 keys: 64 instead of 16 lines/s). A stop then finishes more lines.
   * Default 0.
   */
  segmentBytes?: number;
}

/**
 * Bounds of the bytes released to the model and not yet written (what a stop still has to
 * finish). Between them the budget follows the model's measured speed: about
 * {@link STOP_WITHIN_MS} of its work (the default model scores ~2.5 KB per CPU-second, a tiny
 * test model with 16-byte segments much less).
 */
export const IN_FLIGHT_BYTES = { initial: 1024, min: 128, max: 65536 } as const;
/** The in-flight budget is sized to be scored in about this long. */
export const STOP_WITHIN_MS = 600;

/** The model's per-key queue bound that the gate never fills: one whole piece plus the largest budget. */
export const modelQueueFor = (maxLineBytes: number): number => maxLineBytes + 1 + IN_FLIGHT_BYTES.max;
/** The longest a checkpoint holds the input waiting for the lines in flight. */
const QUIESCE_TIMEOUT_MS = 30_000;
/** Lines per window of the keys counted toward the in-flight budget's floor. */
const KEY_WINDOW_LINES = 4096;
/** Lines queued before the source is paused (stdin, files; Kafka pauses itself at its watermark). */
const PAUSE_AT = 1024;
const RESUME_AT = 256;
/** A Kafka value may hold this many line caps; a larger one is dead-lettered as oversize. */
export const KAFKA_VALUES_PER_CAP = 8;

/**
 * Counts everything skipped, cut, dead-lettered or failed; logs each kind on stderr as one JSON
 * line, at most one a second per kind (`suppressed` says how many were not logged since), and a
 * `summary` line at the end.
 */
export class IngestCounters {
  private readonly totals: Record<string, number> = {};
  private readonly logged = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
    private readonly minIntervalMs = 1000,
  ) {}

  /** Counts one `event` silently (lines read, lines scored). */
  count(event: string, n = 1): void {
    this.totals[event] = (this.totals[event] ?? 0) + n;
  }

  /** Counts one `event` and logs it unless one of its kind was logged less than a second ago. */
  note(event: string, detail: Record<string, unknown> = {}, n = 1): void {
    this.count(event, n);
    const now = Date.now();
    const last = this.logged.get(event);
    if (last !== undefined && now - last.at < this.minIntervalMs) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.logged.set(event, { at: now, suppressed: 0 });
    this.write(`${JSON.stringify({ event, total: this.totals[event], ...(suppressed > 0 ? { suppressed } : {}), ...detail })}\n`);
  }

  get(event: string): number {
    return this.totals[event] ?? 0;
  }

  /** The final line: every total. */
  summary(): string {
    return `${JSON.stringify({ summary: { ...this.totals } })}\n`;
  }
}

/** One source's pieces with what they need to be acknowledged. */
interface RawPiece {
  piece: LinePiece & { end?: number };
  fallbackKey: string;
  record?: RecordProgress;
}

/** A Kafka record split into lines: acknowledged once all of them are done, dead-lettered on the first failure. */
class RecordProgress {
  private finished = false;
  constructor(
    readonly record: KafkaRecord<Buffer>,
    private remaining: number,
  ) {}
  done(): void {
    if (!this.finished && --this.remaining === 0) {
      this.finished = true;
      this.record.ack();
    }
  }
  fail(error: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.record.fail(error);
  }
}

/**
 * The lines of one source, gated: `lines$` (subscribe once) releases queued lines while fewer
 * than {@link InFlightBudget} bytes are in flight. `stop()` takes no more input and completes
 * `lines$` (the lines in flight still finish); `close()` ends the source (a Kafka source drains:
 * commits what was acknowledged and leaves its group).
 */
export class Ingest {
  private readonly queue: IngestLine[] = [];
  /** Aligned checkpoints waiting for the lines in flight to be written (feeding is held meanwhile). */
  private readonly quiescing: Array<{ done: () => void; fail: (error: Error) => void }> = [];
  private holds = 0;
  /** The Kafka record of the last line released (a hold waits for its remaining lines). */
  private lastOrigin: object | undefined;
  /** --follow: where the last piece released ends in the file. */
  private releasedEnd: number | undefined;
  private readonly pause = new BehaviorSubject(false);
  private out: Subscriber<IngestLine> | null = null;
  private upstream: Subscription | null = null;
  private kafkaSource: KafkaSource<Buffer, never> | null = null;
  private inFlightBytes = 0;
  private inFlightLines = 0;
  private readonly budget = new InFlightBudget();
  /** Keys of the lines released since the window began, and how many the last window had (the budget's per-key floor counts the larger). */
  private recentKeys = new Set<string>();
  private lastWindowKeys = 0;
  private recentLines = 0;
  private stopped = false;
  private ended = false;
  private lineNo = 0;
  private lastKey = '';
  private pumpScheduled = false;

  constructor(
    private readonly spec: SourceSpec,
    private readonly options: IngestOptions,
  ) {
    if (spec.kind === 'follow' && !existsSync(spec.path)) options.counters.note('waiting', { file: spec.path });
  }

  readonly lines$ = new Observable<IngestLine>((subscriber) => {
    this.out = subscriber;
    this.upstream = this.raw().subscribe({
      next: (raw) => this.enqueue(raw),
      error: (error: unknown) => subscriber.error(error),
      complete: () => {
        this.ended = true;
        this.schedulePump();
      },
    });
    return () => {
      this.out = null;
      this.settleQuiesce(); // a checkpoint waiting for lines that will never be written fails
    };
  });

  /** First Ctrl-C / SIGTERM: no more input; what is queued is left unscored (Kafka: read again later). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.spec.kind !== 'kafka') this.upstream?.unsubscribe();
    if (this.queue.length > 0) this.options.counters.note('unscoredAtStop', { lines: this.queue.length }, this.queue.length);
    this.queue.length = 0;
    this.schedulePump(); // completes once the lines in flight are written
  }

  /** After the output completed: ends the source (Kafka: drain and commit). */
  async close(): Promise<void> {
    this.stopped = true;
    this.queue.length = 0;
    if (this.kafkaSource !== null && !this.ended) await this.kafkaSource.drain().catch(() => undefined);
    this.upstream?.unsubscribe();
  }

  private enqueue(raw: RawPiece): void {
    if (this.stopped) return; // Kafka after a stop: left unacknowledged, read again by the next run
    const { piece } = raw;
    const text = pieceText(piece);
    if (!piece.continued) {
      this.lineNo++;
      this.lastKey = this.options.keyOf?.(text, raw.fallbackKey) ?? raw.fallbackKey;
    }
    const counters = this.options.counters;
    if (piece.truncated && !piece.continued) counters.note('cut', { line: this.lineNo - 1, maxLineBytes: this.options.maxLineBytes });
    if (!piece.truncated && !piece.continued && !isUtf8(piece.bytes)) counters.note('invalidUtf8', { line: this.lineNo - 1 });
    counters.count(piece.continued ? 'pieces' : 'lines');
    let finished = false;
    const release = () => {
      if (finished) return false;
      finished = true;
      this.inFlightBytes -= piece.bytes.length;
      this.inFlightLines--;
      this.budget.done(piece.bytes.length, this.inFlightBytes > 0);
      this.schedulePump();
      return true;
    };
    const record = raw.record;
    this.queue.push({
      key: this.lastKey,
      line: this.lineNo - 1,
      bytes: piece.bytes,
      text,
      truncated: piece.truncated,
      continued: piece.continued,
      ...(record ? { kafka: { topic: record.record.topic, partition: record.record.partition, offset: record.record.offset } } : {}),
      ...(record ? { origin: record } : {}),
      ...(record?.record.transaction ? { transaction: record.record.transaction } : {}),
      ...(piece.end !== undefined ? { fileEnd: piece.end } : {}),
      done: () => {
        if (release()) record?.done();
      },
      fail: (error) => {
        if (release()) record?.fail(error);
      },
    });
    if (this.queue.length >= PAUSE_AT && !this.pause.value) this.pause.next(true);
    this.schedulePump();
  }

  /**
   * Releases on a later turn of the event loop, never from inside the call that wrote a line:
   * a synchronous chain (write -> release -> model -> write ...) would score the whole backlog
   * in one call and keep signals from being handled.
   */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Counts the key toward the budget's floor; windows of {@link KEY_WINDOW_LINES} lines, so keys quiet for two windows stop counting. */
  private noteKey(key: string): void {
    if (++this.recentLines > KEY_WINDOW_LINES) {
      // A new window starts with the last one's count, not from one key.
      this.recentLines = 1;
      this.lastWindowKeys = this.recentKeys.size;
      this.recentKeys = new Set();
    }
    if (this.recentKeys.has(key)) return;
    this.recentKeys.add(key);
    this.budget.keysFloor = Math.min(IN_FLIGHT_BYTES.max, 2 * Math.max(this.lastWindowKeys, this.recentKeys.size) * (this.options.segmentBytes ?? 0));
  }

  /** Releases queued lines while the in-flight budget allows (always one when none is in flight). */
  private pump(): void {
    const out = this.out;
    if (out === null) return;
    while (!this.stopped && this.queue.length > 0 && !this.held() && (this.inFlightLines === 0 || this.inFlightBytes + this.queue[0]!.bytes.length <= this.budget.limit)) {
      const line = this.queue.shift()!;
      this.lastOrigin = line.origin;
      if (line.fileEnd !== undefined) this.releasedEnd = line.fileEnd;
      if (this.inFlightLines === 0) this.budget.busy();
      this.noteKey(line.key);
      this.inFlightBytes += line.bytes.length;
      this.inFlightLines++;
      out.next(line);
    }
    if (this.queue.length <= RESUME_AT && this.pause.value && !this.stopped) this.pause.next(false);
    // Completing the model's input makes it run all it holds in one synchronous call (signals
    // wait): complete only once the lines in flight are written.
    this.settleQuiesce();
    if ((this.ended || this.stopped) && this.queue.length === 0 && this.inFlightLines === 0) out.complete();
  }

  /**
   * Drops the queued (not yet released) lines of a Kafka partition this member no longer owns:
   * its new owner reads them again from the committed offset; scored here they would be output
   * twice and applied to key states that moved away.
   */
  dropPartition(topic: string, partition: number): void {
    const keep = this.queue.filter((l) => l.kafka?.topic !== topic || l.kafka.partition !== partition);
    const dropped = this.queue.length - keep.length;
    if (dropped === 0) return;
    this.queue.length = 0;
    this.queue.push(...keep);
    this.options.counters.note('droppedRevoked', { topic, partition, lines: dropped }, dropped);
    this.schedulePump();
  }

  /** --follow: the file offset after the last piece released (after a {@link quiesce}: after the last written). */
  get followPosition(): number | undefined {
    return this.releasedEnd;
  }

  /** Lines in flight: released to the model, output not written yet. */
  get linesInFlight(): number {
    return this.inFlightLines;
  }

  /**
   * Holds feeding at the next record boundary (the remaining lines of a Kafka record half
   * released still go) and resolves once every line released is written: the model's state
   * then covers exactly the written lines. The returned function lets feeding go on. Rejects
   * when the output ended with lines unwritten (their effect on the state is partial).
   */
  quiesce(timeoutMs = QUIESCE_TIMEOUT_MS): Promise<() => void> {
    this.holds++;
    let released = false;
    const resume = () => {
      if (released) return;
      released = true;
      this.holds--;
      this.schedulePump();
    };
    return new Promise<() => void>((done, fail) => {
      const waiter = {
        done: () => {
          clearTimeout(timer);
          done(resume);
        },
        fail: (error: Error) => {
          clearTimeout(timer);
          resume();
          fail(error);
        },
      };
      // Never a hold for good: lines that are never written (a model error path) fail the checkpoint.
      const timer = setTimeout(() => {
        const at = this.quiescing.indexOf(waiter);
        if (at >= 0) this.quiescing.splice(at, 1);
        waiter.fail(new CliError(`${this.inFlightLines} lines still in flight after ${timeoutMs} ms; no checkpoint`));
      }, timeoutMs);
      this.quiescing.push(waiter);
      this.settleQuiesce();
    });
  }

  /** A hold stops at record boundaries: the next queued line starts another record. */
  private held(): boolean {
    return this.holds > 0 && (this.queue[0]?.origin === undefined || this.queue[0].origin !== this.lastOrigin);
  }

  private settleQuiesce(): void {
    if (this.quiescing.length === 0 || !(this.queue.length === 0 || this.held())) return;
    if (this.inFlightLines === 0) {
      for (const q of this.quiescing.splice(0)) q.done();
    } else if (this.out === null || this.out.closed) {
      const error = new CliError(`${this.inFlightLines} lines were in flight when the output ended; no checkpoint`);
      for (const q of this.quiescing.splice(0)) q.fail(error);
    }
  }

  private raw(): Observable<RawPiece> {
    const { spec, options } = this;
    const cap = options.maxLineBytes;
    const piecesOf = (fallbackKey: string) => map((piece: LinePiece): RawPiece => ({ piece, fallbackKey }));
    switch (spec.kind) {
      case 'stdin':
        return readLines(process.stdin, { maxLineBytes: cap, backpressure: this.pause }).pipe(piecesOf('stdin'));
      case 'follow':
        return followFileLines(spec.path, { maxLineBytes: cap, backpressure: this.pause, ...(spec.startAt ? { startAt: spec.startAt } : {}), onReplaced: (how) => options.counters.note('replaced', { file: spec.path, how }) }).pipe(piecesOf(spec.path));
      case 'demo':
        return demoPieces(spec.path, spec.rate, cap).pipe(piecesOf('gcc.log'));
      case 'kafka':
        return this.kafka(spec);
    }
  }

  private kafka(spec: Extract<SourceSpec, { kind: 'kafka' }>): Observable<RawPiece> {
    const { counters, maxLineBytes } = this.options;
    const source = fromKafka<Buffer>({
      ...spec.connection,
      groupId: spec.group,
      topics: [spec.topic],
      maxValueBytes: KAFKA_VALUES_PER_CAP * maxLineBytes,
      nullValues: 'skip',
      handleSigterm: false, // the command stops on signals itself (stop, then close)
      drainTimeoutMs: 500, // lines left unscored at a stop stay uncommitted and are read again
      ...(spec.commitIntervalMs !== undefined ? { commitIntervalMs: spec.commitIntervalMs } : {}),
      ...(spec.sessionTimeoutMs !== undefined ? { sessionTimeoutMs: spec.sessionTimeoutMs } : {}),
      ...(spec.checkpoint !== undefined ? { checkpoint: spec.checkpoint } : {}),
      ...(spec.exactlyOnce !== undefined ? { exactlyOnce: spec.exactlyOnce } : {}),
      onDropped: (d) => counters.note(d.deadLettered ? 'deadLettered' : d.reason === 'null-value' ? 'tombstone' : 'skipped', { reason: d.reason, topic: d.topic, partition: d.partition, offset: d.offset, error: d.error }),
    });
    this.kafkaSource = source;
    return new Observable<RawPiece>((subscriber) =>
      source.subscribe({
        next: (record) => {
          const pieces = splitMessage(record.value, maxLineBytes);
          if (pieces.length === 0) {
            counters.note('emptyValue', { topic: record.topic, partition: record.partition, offset: record.offset });
            record.ack();
            return;
          }
          const progress = new RecordProgress(record, pieces.length);
          for (const piece of pieces) subscriber.next({ piece, fallbackKey: record.stateKey, record: progress });
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      }),
    );
  }
}

/**
 * How many bytes may be in flight: the bytes the model wrote per second while it had work,
 * times {@link STOP_WITHIN_MS}, measured over windows of a second of busy time.
 */
export class InFlightBudget {
  bytes: number = IN_FLIGHT_BYTES.initial;
  /** At least this many (two segments per active key; see {@link IngestOptions.segmentBytes}). */
  keysFloor = 0;

  /** The bytes that may be in flight now. */
  get limit(): number {
    return Math.max(this.bytes, this.keysFloor);
  }
  private doneBytes = 0;
  private busyMs = 0;
  private busySince: number | null = null;

  /** Work was handed to an idle model. */
  busy(now = Date.now()): void {
    this.busySince ??= now;
  }

  /** `n` bytes were written; `stillBusy`: more are in flight. */
  done(n: number, stillBusy: boolean, now = Date.now()): void {
    this.doneBytes += n;
    if (this.busySince !== null) {
      this.busyMs += now - this.busySince;
      this.busySince = stillBusy ? now : null;
    }
    if (this.busyMs < 1000) return;
    const perMs = this.doneBytes / this.busyMs;
    this.bytes = Math.round(Math.min(IN_FLIGHT_BYTES.max, Math.max(IN_FLIGHT_BYTES.min, perMs * STOP_WITHIN_MS)));
    this.doneBytes = 0;
    this.busyMs = 0;
  }
}

/** The demo log's lines, endlessly, at `rate` lines per second (0: as fast as the event loop turns). */
function demoPieces(path: string, rate: number, maxLineBytes: number): Observable<LinePiece> {
  const splitter = new LineSplitter(maxLineBytes);
  const pieces = [...splitter.push(readFileSync(path)), ...splitter.end()];
  // A timer even at full speed: the event loop keeps turning (signals, output, the model's rounds).
  return timer(0, rate > 0 ? 1000 / rate : 0).pipe(map((i) => pieces[i % pieces.length]!));
}

/**
 * First SIGINT/SIGTERM calls `stop` (finish the lines in hand, flush, exit 0); a second one
 * exits at once (128 + the signal's number). Returns the uninstaller.
 */
export function stopOnSignals(stop: (signal: NodeJS.Signals) => void): () => void {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) process.exit(signal === 'SIGINT' ? 130 : 143);
    process.stderr.write(`${JSON.stringify({ event: 'stopping', signal })}\n`);
    stop(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/**
 * Calls `closed` once when standard output's reader goes away (`stream | head`): EPIPE is then
 * the normal end of the job, not a crash. Returns a test of whether it has happened, so the
 * writer stops writing (each write after it would fail again).
 */
export function watchStdoutClosed(closed: () => void): () => boolean {
  let gone = false;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    if (gone) return;
    gone = true;
    closed();
  });
  return () => gone;
}

/**
 * Checks that the output topic exists, within seconds (a producer would retry for minutes), or
 * creates it with `create` (as many partitions as the input topic).
 */
export async function checkOutTopic(connection: KafkaConnectionSettings, topic: string, inputTopic: string | undefined, create: boolean): Promise<void> {
  const kafka = kafkaClient({ ...connection, clientId: 'infiniformer-stream-check', retry: { ...DEFAULT_RETRY, retries: 3, maxRetryTime: 1000 } });
  if (create) {
    await ensureTopics(kafka, [{ topic, compacted: false, partitionsLike: inputTopic === undefined ? [] : [inputTopic] }]).catch((error: unknown) => {
      throw new CliError(kafkaFailure(`--out-topic: cannot create topic '${topic}'`, error, connection).message, { cause: error });
    });
    return;
  }
  const admin = kafka.admin();
  let topics: string[];
  try {
    await admin.connect();
    topics = await admin.listTopics();
  } catch (error) {
    throw new CliError(kafkaFailure(`cannot reach the Kafka brokers to check --out-topic '${topic}'`, error, connection).message, { cause: error });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  if (!topics.includes(topic)) throw new UsageError(`--out-topic: topic '${topic}' does not exist; create it, or pass --create-topics`);
}
