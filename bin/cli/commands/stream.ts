/**
 * `infiniformer stream`: continuous language modelling over an endless log stream. Every line
 * goes through the model of its key (keyed states, fixed memory), and comes out as one JSON
 * line: its surprisal in bits per byte, an anomaly flag, and the bytes the model expects next.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { EMPTY, Subject, filter, map, mergeMap, take, tap } from 'rxjs';
import { initBackend } from '../../../src/backend.js';
import type { KeyStateStore } from '../../../src/state/keyStateStore.js';
import { MemoryKeyStore } from '../../../src/state/memoryKeyStore.js';
import { loadModel } from '../../../src/model/io.js';
import { OnlineLearner } from '../../../src/model/onlineLearner.js';
import { DEFAULT_MAX_LINE_BYTES } from '../../../connectors/file/lines.js';
import { toKafka } from '../../../connectors/kafka/sink.js';
import type { ExactlyOnceOptions } from '../../../connectors/kafka/transactions.js';
import { anomalies } from '../../../operators/anomalies.js';
import { contextMix } from '../../../operators/contextMix.js';
import { infiniteFormer } from '../../../operators/infiniteFormer.js';
import { perplexity } from '../../../operators/perplexity.js';
import { predictNext } from '../../../operators/predictNext.js';
import { recordSurprisal } from '../../../operators/recordSurprisal.js';
import { tokenize } from '../../../operators/tokenize.js';
import type { RecordFailure, TextRecord } from '../../../operators/types.js';
import { CliError, HELP, UsageError, backendOption, intOption, mustExist, numberOption, parse } from '../command.js';
import { StreamStateDir, defaultStateDir, followPosition, modelFingerprint, readFollowPosition, FOLLOW_POSITION_KEY } from '../streamStateDir.js';
import { KafkaStreamState, stateTopicOf } from '../kafkaStreamState.js';
import { Ingest, IngestCounters, KAFKA_VALUES_PER_CAP, checkOutTopic, modelQueueFor, stopOnSignals, watchStdoutClosed, type IngestLine, type SourceSpec } from '../ingest.js';
import { KAFKA_CONNECTION_HELP, KAFKA_CONNECTION_OPTIONS, kafkaConnection } from '../kafkaOptions.js';
import type { Command } from '../command.js';

const DEFAULT_MODEL = fileURLToPath(new URL('../../../models/default', import.meta.url));
const DEMO_LOG = fileURLToPath(new URL('../../../data/gcc-12-test-results/gcc-heldout.txt', import.meta.url));

const usage = `Usage: infiniformer stream [source] [options]

Language modelling over an endless log stream: each line runs through the model state of its
key (a fixed-size memory however long the stream), and comes out as one JSON line on stdout:
  {"key", "line", "bitsPerByte", "bits", "bytes", "anomaly", "threshold", "perplexity",
   "learned", "skipped", "steps", "next": [{"text", "prob"}...], "text", "source", "truncated",
   "continued"}
bitsPerByte is the line's mean surprisal -log2 p(byte | everything before it); anomaly compares
it with --anomaly-threshold, or with the key's running --anomaly-quantile of recent lines.
p mixes the network's prediction with what the stream itself taught so far (n-gram statistics
and a match model over the key's recent bytes, learned as they are read, like an adaptive
compressor): a log the model never saw costs about what xz would spend on it, and less.

Input (every source alike; docs/ingestion.md): lines split on \n only; the model scores the
original bytes (\r, invalid UTF-8 included; "text" shows U+FFFD for invalid bytes); an empty line
is scored as its one \n byte; a line over --max-line-bytes is cut into pieces, each scored, the
cut ones marked "truncated": true, the following ones "continued": true. Empty Kafka values and
tombstones are skipped, oversize records dead-lettered: each kind counted and
logged on stderr (one JSON line, at most one a second per kind), all totals in a final
{"summary": ...} line. First Ctrl-C / SIGTERM: no more input, the lines in hand finish, outputs
flush, Kafka offsets commit, exit 0 (one during the start: the job reads nothing and exits 0);
a second one exits at once.

Source (one; default --demo):
  --demo                  the embedded gcc test log (data/gcc-12-test-results), replayed
                          endlessly at --rate lines per second; no download, no broker
  --follow <file>         follow a growing file like tail -F (rotation, rewrite in place; a
                          file that does not exist yet is waited for)
  --stdin                 lines of standard input (ends at end of input)
  --kafka-topic <topic>   a Kafka topic (consumer group --group), each value one or more lines;
                          offsets are committed at checkpoints (see "What survives" below)

Options:
  --model <dir>           model directory (default: models/default, a general prior for machine text)
${KAFKA_CONNECTION_HELP}  --group <id>            Kafka consumer group (default infiniformer-stream)
  --commit-interval <s>   Kafka: seconds between checkpoints (default 5): the input is held at a
                          record boundary, the lines in flight are written, the state changed
                          since the last one goes to the changelog topic <group>.state (created
                          compacted if missing), then the offsets are committed
  --session-timeout <ms>  Kafka: the group drops a member silent this long and moves its
                          partitions (default 45000; at least 3000)
  --out-topic <topic>     write the JSON lines to a Kafka topic instead of stdout (it must
                          exist, checked at start, unless --create-topics)
  --create-topics         create a missing --out-topic
  --exactly-once          Kafka to Kafka (--kafka-topic and --out-topic): each input partition's
                          outputs, its keys' changelog state and its offset commit in one
                          transaction per checkpoint; read_committed readers of --out-topic see
                          every input record's output exactly once, also through kill -9
  --transactional-id <p>  --exactly-once: prefix of the transactional ids, one per input
                          partition <p>-<topic>-<partition> (default infiniformer-<group>); every
                          process of the group must use the same
  --transaction-timeout <ms>  --exactly-once: the broker aborts a killed process's open
                          transaction after this long (default 60000); a restart may wait for it
  --key-by <field|/re/>   key of a line: a JSON field of JSON lines, or the first group of a
                          regular expression; default the source (file name, stdin, Kafka key)
  --anomaly-threshold <b> flag lines above b bits per byte
  --anomaly-quantile <q>  flag lines above the key's running q-quantile, q in (0, 1) (default 0.99 over
                          the last 1000 lines, after 50; a key with fewer lines is judged against
                          the last 1000 lines of all keys)
  --top-k <k>             next bytes to list (default 3)
  --no-mix                the network alone (no mixing with what the stream taught)
  --no-learn              frozen weights (by default the network learns the stream it reads:
                          each whole segment is scored first, then stepped on, while the
                          stream is not behind; "learned" counts those segments, "skipped"
                          those its divergence guard passed over, "steps" its Adam steps)
  --learning-rate <lr>    of the online learner (default 3e-4)
  --segments-per-step <n> the most keys' segments one learning step takes (default 1: one step per
                          segment, so the steps do not depend on which keys' segments came in
                          together; more is faster with many keys, less reproducible)
  --learn <when>          keep-up (default: learn only while tokens do not pile up) or always
                          (every whole segment, however far behind: reproducible runs)
  --state-dir <dir>       keep what was learned (weights, optimizer, mixing statistics, every
                          key's memory) in <dir>: saved every --save-every seconds and at exit,
                          loaded at start, so a restart continues from the last save. Keys'
                          memories live in an on-disk store there (LMDB; hot ones in RAM), so
                          RAM stays bounded however many keys. Default for --follow: under
                          ~/.cache/infiniformer/state/ by model and file; other sources: none
                          (then keys evicted past --max-keys are kept in RAM)
  --max-keys <n>          key memories live at once (default 1000, ~0.2-0.4 MB each); the
                          least recently used go to the state store and come back exactly
  --no-state              --follow: no state directory
  --save-every <s>        seconds between saves of --state-dir (default 60)
  --max-line-bytes <n>    longer lines are cut into pieces of n bytes (default ${DEFAULT_MAX_LINE_BYTES});
                          Kafka values over ${KAFKA_VALUES_PER_CAP} x n bytes are dead-lettered as oversize
  --max-lines <n>         stop after n lines (default: never)
  --rate <n>              --demo: lines per second (default 20; 0 = as fast as possible)
  --mode <m>              segment (default; tokens wait up to --max-delay-ms to fill a segment)
                          or token (every byte at once: lower latency, lower throughput)
  --max-delay-ms <ms>     segment mode: longest wait of a byte before a partial chunk runs (default 250)
  --backend <name>        auto | tensorflow | wasm | cpu (default auto)
  -h, --help              this text

What survives (docs/kafka.md, "The main job over Kafka"):
  --kafka-topic: every key's model state and mixing context (per key) and the learned weights
    and mixer statistics (shared) are in the topic <group>.state as of the last checkpoint,
    with the offsets committed after it. After a crash (kill -9), a restart, a rebalance or
    scale-out (more processes with the same --group), each partition's keys are restored when
    it is assigned, before its records run; records after the last checkpoint are read again,
    output again (at-least-once) and applied once. With --no-learn --no-mix every key's outputs
    then equal an uninterrupted run's (keys must stay in one partition: the default key does);
    the shared mixer statistics and learned weights depend on the order keys interleave, so
    with them on single lines differ from an uninterrupted run. With learning on every whole
    segment is learned from once through kills (a partial chunk is held in the key's state and
    learned with the rest of its segment; the shared state's manifests go with the checkpoint's
    keys, so both are restored from one checkpoint): one partition and one key give outputs
    equal to an uninterrupted run's; 16 keys over 4 partitions, 3 kills: each record's last
    output within 0.04 bits/byte of an uninterrupted run's mean (one Adam step per segment:
    --segments-per-step), a replayed record's first output is from the learner the kill lost. A
    SIGTERM scores the lines in hand without learning from them. Each process learns its own
    weights (not merged). Checkpoints write only what changed: changed keys, and of the mixer's
    34 MB the bytes changed since the last checkpoint (a delta: 0.04-1.9 MB, mean 0.49 MB
    measured at the default interval; a whole base at a process's first checkpoint and when
    the deltas outgrow it). At-least-once by default; --exactly-once commits each input
    partition's outputs, keys and offset in one transaction (the shared state rides with one
    of them): through 3 kill -9, a read_committed reader saw 640 outputs for 640 records.
  --follow / --stdin with --state-dir: saved every --save-every seconds and at exit, aligned
    the same way; --follow also saves the file position of the last saved line, so a restart
    after a crash continues the file there (later lines scored again, applied once). Without
    a state directory nothing survives the process.

Exit codes: 0 done (end of input, --max-lines, Ctrl-C), 1 runtime failure (e.g. unreachable
broker), 2 bad arguments, a missing model or --out-topic; 130/143 a second Ctrl-C/SIGTERM.

Examples:
  infiniformer stream --max-lines 20
  infiniformer stream --follow /var/log/syslog --key-by '/^\\S+ +\\S+ \\S+ (\\S+)/'
  tail -n 1000 build.log | infiniformer stream --stdin --anomaly-threshold 2
  infiniformer stream --kafka-topic logs --out-topic log-scores --brokers 127.0.0.1:9092
  KAFKA_SASL_PASSWORD=... infiniformer stream --kafka-topic logs --kafka-config client.properties
`;


/** --exactly-once (needs --kafka-topic and --out-topic): transactional ids `<prefix>-<topic>-<partition>`. */
function exactlyOnceOption(values: { 'exactly-once'?: boolean; 'transactional-id'?: string; 'transaction-timeout'?: string; 'kafka-topic'?: string; 'out-topic'?: string }, group: string): ExactlyOnceOptions | undefined {
  if (values['exactly-once'] !== true) {
    if (values['transactional-id'] !== undefined || values['transaction-timeout'] !== undefined) throw new UsageError('--transactional-id and --transaction-timeout need --exactly-once');
    return undefined;
  }
  if (values['kafka-topic'] === undefined || values['out-topic'] === undefined) throw new UsageError('--exactly-once needs --kafka-topic and --out-topic (standard output is not transactional)');
  return { transactionalId: values['transactional-id'] ?? `infiniformer-${group}`, transactionTimeoutMs: intOption('transaction-timeout', values['transaction-timeout'], 60_000, 1000) };
}

/** Builds the key function of --key-by: a JSON field, or the first group of /regex/. */
export function keySelector(spec: string | undefined): ((text: string, fallback: string) => string) | undefined {
  if (spec === undefined) return undefined;
  const re = /^\/(.*)\/([a-z]*)$/s.exec(spec);
  if (re !== null) {
    let regex: RegExp;
    try {
      regex = new RegExp(re[1]!, re[2]);
    } catch (error) {
      throw new UsageError(`--key-by: ${(error as Error).message}`);
    }
    return (text, fallback) => regex.exec(text)?.[1] ?? fallback;
  }
  return (text, fallback) => {
    try {
      const v = (JSON.parse(text) as Record<string, unknown> | null)?.[spec];
      return typeof v === 'string' || typeof v === 'number' ? String(v) : fallback;
    } catch {
      return fallback;
    }
  };
}

const command: Command = {
  name: 'stream',
  summary: 'language modelling over an endless log stream: per-line surprisal, anomaly flags, next bytes',
  usage,
  async run(argv) {
    const { values, positionals } = parse({
      args: argv,
      allowPositionals: true,
      options: {
        ...HELP,
        model: { type: 'string' },
        demo: { type: 'boolean' },
        follow: { type: 'string' },
        stdin: { type: 'boolean' },
        'kafka-topic': { type: 'string' },
        ...KAFKA_CONNECTION_OPTIONS,
        group: { type: 'string' },
        'out-topic': { type: 'string' },
        'create-topics': { type: 'boolean' },
        'exactly-once': { type: 'boolean' },
        'transactional-id': { type: 'string' },
        'transaction-timeout': { type: 'string' },
        'max-line-bytes': { type: 'string' },
        'key-by': { type: 'string' },
        'anomaly-threshold': { type: 'string' },
        'anomaly-quantile': { type: 'string' },
        'top-k': { type: 'string' },
        'max-lines': { type: 'string' },
        rate: { type: 'string' },
        mode: { type: 'string' },
        'max-delay-ms': { type: 'string' },
        backend: { type: 'string' },
        'no-mix': { type: 'boolean' },
        'no-learn': { type: 'boolean' },
        'learning-rate': { type: 'string' },
        'segments-per-step': { type: 'string' },
        learn: { type: 'string' },
        'state-dir': { type: 'string' },
        'no-state': { type: 'boolean' },
        'save-every': { type: 'string' },
        'max-keys': { type: 'string' },
        'commit-interval': { type: 'string' },
        'session-timeout': { type: 'string' },
      },
    });
    if (values.help === true) {
      process.stdout.write(usage);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}' (a file to follow is --follow <file>)`);
    const sources = [values.demo === true, values.follow !== undefined, values.stdin === true, values['kafka-topic'] !== undefined].filter(Boolean).length;
    if (sources > 1) throw new UsageError('give one source: --demo, --follow, --stdin or --kafka-topic');
    if (values['anomaly-threshold'] !== undefined && values['anomaly-quantile'] !== undefined) throw new UsageError('give --anomaly-threshold or --anomaly-quantile, not both');
    const threshold = values['anomaly-threshold'] === undefined ? undefined : numberOption('anomaly-threshold', values['anomaly-threshold'], 0, 0, 1e6);
    const quantile = numberOption('anomaly-quantile', values['anomaly-quantile'], 0.99, 0, 1, true, true);
    const topK = intOption('top-k', values['top-k'], 3, 1);
    const maxLines = values['max-lines'] === undefined ? Infinity : intOption('max-lines', values['max-lines'], 0, 1);
    const rate = numberOption('rate', values.rate, 20, 0, 1e6);
    const mode = values.mode ?? 'segment';
    if (mode !== 'segment' && mode !== 'token') throw new UsageError(`--mode must be segment or token, got ${JSON.stringify(mode)}`);
    const maxDelayMs = intOption('max-delay-ms', values['max-delay-ms'], 250, 1);
    const maxLineBytes = intOption('max-line-bytes', values['max-line-bytes'], DEFAULT_MAX_LINE_BYTES, 1);
    const backend = backendOption(values.backend);
    const keyOf = keySelector(values['key-by']);
    const modelDir = values.model ?? DEFAULT_MODEL;
    mustExist('model', modelDir, 'dir');
    const usesKafka = values['kafka-topic'] !== undefined || values['out-topic'] !== undefined;
    if (!usesKafka && (values.brokers !== undefined || values['kafka-config'] !== undefined)) throw new UsageError('--brokers and --kafka-config need --kafka-topic or --out-topic');
    const kafka = usesKafka ? kafkaConnection(values) : {};
    const kafkaTopic = values['kafka-topic'];
    const group = values.group ?? 'infiniformer-stream';
    const commitIntervalMs = Math.round(1000 * numberOption('commit-interval', values['commit-interval'], 5, 0.05, 3600));
    const sessionTimeoutMs = intOption('session-timeout', values['session-timeout'], 45_000, 3000);
    if (kafkaTopic !== undefined && values['state-dir'] !== undefined) throw new UsageError(`--state-dir is for files and stdin; over Kafka the state lives in the changelog topic ${stateTopicOf(group)}`);
    const exactlyOnce = exactlyOnceOption(values, group);
    // Signals are handled from here on, before the slow start (backend, model, the changelog's
    // restore): one that arrives meanwhile stops the job cleanly once it is up, before it reads.
    let stopRequested = false;
    let onStop = (): void => {
      stopRequested = true;
    };
    const uninstall = stopOnSignals(() => onStop());
    if (values['out-topic'] !== undefined) await checkOutTopic(kafka, values['out-topic'], values['kafka-topic'], values['create-topics'] === true);
    // Without learning the job is inference on small chunks, latency-bound: one thread per
    // native op costs less than waking a pool (measured ~15% less CPU; src/backend.ts). With
    // learning the JavaScript thread (mixing, I/O) keeps a core to itself: on 2 cores one native
    // thread learned apache-error.log in 18.1 s instead of 23.3 (--learn always) and scored it as
    // a backlog in 10.2 s instead of 12.5 (keep-up). INFINIFORMER_NATIVE_THREADS overrides.
    await initBackend({ backend: backend, workload: 'segments', nativeThreads: values['no-learn'] === true ? 1 : Math.max(1, availableParallelism() - 1) });
    const model = await loadModel(modelDir);
    if (model.tokenizer === undefined) throw new CliError(`${modelDir}: the model has no tokenizer (stream needs a byte-level text model)`);
    const tokenizer = model.tokenizer;
    const fingerprint = modelFingerprint(modelDir);
    const note = (event: Record<string, unknown>) => process.stderr.write(`${JSON.stringify(event)}\n`);
    // Over Kafka the state lives in the changelog topic <group>.state: the shared part now, each
    // partition's keys when it is assigned.
    const kafkaState = kafkaTopic === undefined ? undefined : await KafkaStreamState.open(kafka, group, kafkaTopic, fingerprint, note, exactlyOnce?.transactionTimeoutMs);
    const saveEvery = intOption('save-every', values['save-every'], 60, 1);
    const maxKeys = intOption('max-keys', values['max-keys'], 1000, 1);
    const statePath = values['no-state'] === true ? undefined : (values['state-dir'] ?? (values.follow !== undefined ? defaultStateDir(fingerprint, values.follow) : undefined));
    const stateDir = statePath === undefined ? undefined : new StreamStateDir(statePath, fingerprint);
    const loaded = stateDir?.load();
    if (loaded?.note !== undefined) process.stderr.write(`${JSON.stringify({ note: loaded.note })}\n`);
    const saved = loaded?.saved;
    // Every key's model state beyond the live ones: on disk with a state dir, else in RAM.
    const keyStore: KeyStateStore = kafkaState?.state.models ?? stateDir?.openKeyStore() ?? new MemoryKeyStore();
    // --follow resumes the file after the last line the saved key states cover.
    const followFrom = values.follow !== undefined && stateDir !== undefined ? readFollowPosition(keyStore) : undefined;
    if (saved !== undefined) process.stderr.write(`${JSON.stringify({ note: `continuing from ${statePath}`, lines: saved.lines, keys: [...keyStore.keys()].length, ...(followFrom ? { fileOffset: followFrom.offset } : {}) })}\n`);
    const spec: SourceSpec =
      values.follow !== undefined ? { kind: 'follow', path: values.follow, ...(followFrom ? { startAt: followFrom } : {}) }
      : values.stdin === true ? { kind: 'stdin' }
      : kafkaTopic !== undefined ? { kind: 'kafka', connection: kafka, group, topic: kafkaTopic, commitIntervalMs, sessionTimeoutMs, checkpoint: kafkaState!.state.checkpoint(), ...(exactlyOnce ? { exactlyOnce } : {}) }
      : { kind: 'demo', path: DEMO_LOG, rate };

    const counters = new IngestCounters();
    const ingest = new Ingest(spec, { maxLineBytes, keyOf, counters, segmentBytes: model.config.segmentLength });

    // --- the model ---
    const failures = new Subject<RecordFailure<unknown>>();
    failures.subscribe((f) => {
      const line = (f.record as { source?: unknown } | null)?.source as IngestLine | undefined;
      counters.note('failed', { error: f.error.message, key: f.key, line: line?.line });
      line?.fail(f.error); // a Kafka record goes to the dead-letter topic, the stream goes on
    });
    const learnWhen = values.learn ?? 'keep-up';
    if (learnWhen !== 'keep-up' && learnWhen !== 'always') throw new UsageError(`--learn must be keep-up or always, got ${JSON.stringify(learnWhen)}`);
    // Learning costs ~4x a scoring pass: with keep-up it is skipped (scored only) while tokens
    // pile up, so a fast source is never held back by it.
    let backlog = (): number => 0;
    // Once a stop is asked for, the lines in hand are only scored (a learning step is ~4x a
    // scoring pass): the job still exits within about a second.
    let stopping = false;
    const hooks = { shouldLearn: (): boolean => !stopping && (learnWhen === 'always' || backlog() <= 2 * model.config.segmentLength) };
    const savedLearner = saved?.learner ?? kafkaState?.shared.learner;
    const learner: OnlineLearner | undefined =
      savedLearner !== undefined
        ? OnlineLearner.restore(model, savedLearner, hooks) // the adapted weights, even with --no-learn
        : values['no-learn'] === true
          ? undefined
          : new OnlineLearner(model, { learningRate: numberOption('learning-rate', values['learning-rate'], 3e-4, 0, 1, true) }, hooks);
    const lm = infiniteFormer(model, {
      mode,
      maxDelayMs: mode === 'segment' ? maxDelayMs : undefined,
      errors: failures,
      maxQueue: Math.max(1024, modelQueueFor(maxLineBytes)),
      // A few rounds per event-loop turn (each one a forward, maybe a learning step, and the
      // mixing): signals, timers and output stay handled within a fraction of a second.
      roundsPerTick: 4,
      ...(learner && values['no-learn'] !== true ? { learner } : {}),
      maxKeys,
      segmentsPerStep: intOption('segments-per-step', values['segments-per-step'], 1, 1),
      store: keyStore,
    });
    backlog = () => lm.stats().pending;
    const savedMixer = saved?.mix ?? (kafkaState?.shared.mixer !== undefined ? { mixer: kafkaState.shared.mixer } : undefined);
    const mixStore = kafkaState?.state.mixes;
    const mix = values['no-mix'] === true ? undefined : contextMix({ topK, ...(savedMixer ? { initialState: savedMixer } : {}), ...(mixStore ? { restoreKey: (k: string) => mixStore.get(k) } : {}) });
    kafkaState?.state.attach({
      checkpointModel: () => lm.checkpoint(),
      mixSnapshot: () => mix?.snapshot(),
      learnerBytes: () => learner?.saveState(),
      quiesce: () => ingest.quiesce(),
      dropQueued: (topic, partition) => ingest.dropPartition(topic, partition),
      waiting: (keys) => lm.waiting(keys),
      reload: (keys) => {
        const busy = lm.reload(keys);
        mix?.reload(keys.filter((k) => !busy.includes(k)));
        return busy;
      },
    });
    let linesDone = saved?.lines ?? 0;
    /** Every key's model state into the store (flushed), then learner and mixer. */
    const persist = async (): Promise<void> => {
      if (stateDir === undefined) return;
      // Aligned: input held, the lines in flight written, so the learner, the mixer, the key
      // states and the followed file's position are all as of the same line; the position goes
      // into the key store, flushed with the key states it belongs to.
      // With nothing in flight the capture below is synchronous, hence aligned, without a hold
      // (at exit it must be: the operators free their state right after completion).
      const resume = ingest.linesInFlight === 0 ? () => undefined : await ingest.quiesce();
      let m: ReturnType<NonNullable<typeof mix>['snapshot']>;
      let learnerBytes: Uint8Array | undefined;
      const lines = linesDone;
      try {
        m = mix?.snapshot();
        learnerBytes = learner?.saveState();
        const checkpointed = lm.checkpoint();
        const at = ingest.followPosition;
        if (values.follow !== undefined && at !== undefined) keyStore.put(FOLLOW_POSITION_KEY, followPosition(values.follow, at));
        await checkpointed;
        await keyStore.flush();
      } finally {
        resume();
      }
      stateDir.save({ lines, ...(learnerBytes ? { learner: learnerBytes } : {}), ...(m ? { mix: m } : {}) });
    };
    const saver =
      stateDir === undefined
        ? undefined
        : setInterval(() => {
            persist().catch((error: unknown) => process.stderr.write(`${JSON.stringify({ note: `saving ${statePath} failed: ${(error as Error).message}` })}\n`));
          }, saveEvery * 1000);
    // A line its key's restored state already covers is not applied again (nor output).
    const applied$ = ingest.lines$.pipe(
      filter((l) => {
        if (kafkaState === undefined || kafkaState.state.accept(l)) return true;
        l.done();
        return false;
      }),
    );
    const scored$ = applied$.pipe(
      map((l): TextRecord => ({ key: l.key, text: l.bytes, source: l })),
      tokenize({ tokenizer, errors: failures, invalidUtf8: 'keep' }),
      lm,
      mix ?? predictNext({ topK }),
      recordSurprisal(),
      perplexity({ window: 1000 }),
      anomalies(threshold !== undefined ? { threshold } : { quantile, window: 1000, warmup: 50, young: 'allKeys' }),
      take(maxLines),
      map((r) => {
        const l = r.source as IngestLine;
        counters.count('scored');
        linesDone += 1;
        const out = {
          key: r.key,
          line: l.line,
          bitsPerByte: round(r.surprisal),
          bits: round(r.bits),
          bytes: r.tokens,
          anomaly: r.anomaly,
          threshold: round(r.threshold),
          perplexity: round(r.perplexity),
          ...learnerCounts(learner),
          next: (r.last.topK ?? []).map((t) => ({ text: tokenizer.decode([t.token]), prob: round(t.prob) })),
          text: l.text.length > 300 ? `${l.text.slice(0, 300)}…` : l.text,
          ...(l.kafka ? { source: l.kafka } : {}),
          ...(l.truncated ? { truncated: true } : {}),
          ...(l.continued ? { continued: true } : {}),
        };
        return { out, line: l };
      }),
    );

    // --- the output ---
    // The reader of stdout went away (`stream | head`): stop as on a signal, without a stack trace.
    const stdoutClosed = watchStdoutClosed(() => {
      stopping = true;
      ingest.stop();
    });
    const written$ =
      values['out-topic'] !== undefined
        ? scored$.pipe(
            toKafka({
              ...kafka,
              topic: values['out-topic'],
              key: (x) => x.out.key,
              value: (x) => JSON.stringify(x.out),
              onDelivered: (x) => x.line.done(),
              // --exactly-once: in the transaction of the line's input partition, which commits with its offset.
              ...(exactlyOnce ? { exactlyOnce: true, transaction: (x) => x.line.transaction } : {}),
            }),
            mergeMap(() => EMPTY),
          )
        : scored$.pipe(
            tap((x) => {
              // After the reader left, the lines in hand are scored (they are in the state) but not written.
              if (!stdoutClosed()) process.stdout.write(`${JSON.stringify(x.out)}\n`);
              x.line.done();
            }),
            mergeMap(() => EMPTY),
          );

    // Installed until the source is closed: a signal while Kafka commits still stops or exits.
    onStop = () => {
      stopping = true;
      ingest.stop();
    };
    const code = await new Promise<number>((resolve) => {
      written$.subscribe({
        error: (error: unknown) => {
          process.stderr.write(`infiniformer stream: ${(error as Error).message}\n`);
          clearInterval(saver);
          resolve(1);
        },
        complete: () => {
          clearInterval(saver);
          kafkaState?.state.finish(ingest.linesInFlight);
          // While the pipeline's operators still hold their state (the model's keys are
          // already in the store: completion wrote them). Lines still in flight (--max-lines
          // stopped the output) are partly in the states: the last periodic save stands.
          if (ingest.linesInFlight > 0) {
            if (stateDir !== undefined) process.stderr.write(`${JSON.stringify({ note: `${statePath}: not saved at exit (lines in flight when the output stopped); the last save stands` })}\n`);
            resolve(0);
            return;
          }
          persist().then(
            () => resolve(0),
            (error: unknown) => {
              process.stderr.write(`infiniformer stream: saving ${statePath}: ${(error as Error).message}\n`);
              resolve(1);
            },
          );
        },
      });
      if (stopRequested) onStop(); // a signal during the start
    });
    await ingest.close();
    await keyStore.close();
    uninstall();
    if (kafkaState !== undefined) for (const [k, v] of Object.entries(kafkaState.state.counts)) counters.count(k, v);
    process.stderr.write(counters.summary());
    learner?.dispose();
    model.dispose();
    return code;
  },
};

/**
 * The learner's counters on an output: whole segments stepped on ("learned"), skipped by its
 * divergence guard ("skipped"; with "learned", the segments that went through the learner) and
 * its Adam steps ("steps").
 */
const learnerCounts = (learner: OnlineLearner | undefined): { learned: number; skipped: number; steps: number } => {
  const s = learner?.stats();
  return { learned: s?.segmentsLearned ?? 0, skipped: s?.skippedByGuard ?? 0, steps: s?.step ?? 0 };
};

const round = (x: number): number => (Number.isFinite(x) ? Math.round(x * 1e4) / 1e4 : x);

export default command;
