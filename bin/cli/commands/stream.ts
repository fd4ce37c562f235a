/**
 * `infiniformer stream`: continuous language modelling over an endless log stream. Every line
 * goes through the model of its key (keyed states, fixed memory), and comes out as one JSON
 * line: its surprisal in bits per byte, an anomaly flag, and the bytes the model expects next.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EMPTY, Observable, Subject, finalize, map, mergeMap, take, tap, timer, type Subscription } from 'rxjs';
import { initBackend } from '../../../src/backend.js';
import { loadModel } from '../../../src/model/io.js';
import { OnlineLearner } from '../../../src/model/onlineLearner.js';
import { followFile } from '../../../connectors/file/followFile.js';
import { fromStdin } from '../../../connectors/file/stdin.js';
import { fromKafka } from '../../../connectors/kafka/source.js';
import { toKafka } from '../../../connectors/kafka/sink.js';
import { utf8Decoder } from '../../../connectors/kafka/decode.js';
import type { KafkaRecord } from '../../../connectors/kafka/source.js';
import { anomalies } from '../../../operators/anomalies.js';
import { contextMix } from '../../../operators/contextMix.js';
import { infiniteFormer } from '../../../operators/infiniteFormer.js';
import { perplexity } from '../../../operators/perplexity.js';
import { predictNext } from '../../../operators/predictNext.js';
import { recordSurprisal } from '../../../operators/recordSurprisal.js';
import { tokenize } from '../../../operators/tokenize.js';
import type { RecordFailure, TextRecord } from '../../../operators/types.js';
import { CliError, HELP, UsageError, backendOption, intOption, mustExist, numberOption, parse } from '../command.js';
import type { Command } from '../command.js';

const DEFAULT_MODEL = fileURLToPath(new URL('../../../models/default', import.meta.url));
const DEMO_LOG = fileURLToPath(new URL('../../../data/gcc-12-test-results/gcc-heldout.txt', import.meta.url));

const usage = `Usage: infiniformer stream [source] [options]

Language modelling over an endless log stream: each line runs through the model state of its
key (a fixed-size memory however long the stream), and comes out as one JSON line on stdout:
  {"key", "line", "bitsPerByte", "bits", "bytes", "anomaly", "threshold", "perplexity",
   "learned", "next": [{"text", "prob"}...], "text", "source"}
bitsPerByte is the line's mean surprisal -log2 p(byte | everything before it); anomaly compares
it with --anomaly-threshold, or with the key's running --anomaly-quantile of recent lines.
p mixes the network's prediction with what the stream itself taught so far (n-gram statistics
and a match model over the key's recent bytes, learned as they are read, like an adaptive
compressor): a log the model never saw costs about what xz would spend on it, and less.

Source (one; default --demo):
  --demo                  the embedded gcc test log (data/gcc-12-test-results), replayed
                          endlessly at --rate lines per second; no download, no broker
  --follow <file>         follow a growing file like tail -F (rotation, truncation)
  --stdin                 lines of standard input (ends at end of input)
  --kafka-topic <topic>   a Kafka topic (consumer group --group), values are UTF-8 lines;
                          offsets are committed once a line's output is written / delivered

Options:
  --model <dir>           model directory (default: models/default, trained on gcc logs)
  --brokers <list>        Kafka brokers, comma-separated (default $KAFKA_BROKERS or 127.0.0.1:9092)
  --group <id>            Kafka consumer group (default infiniformer-stream)
  --out-topic <topic>     write the JSON lines to a Kafka topic instead of stdout
  --key-by <field|/re/>   key of a line: a JSON field of JSON lines, or the first group of a
                          regular expression; default the source (file name, stdin, Kafka key)
  --anomaly-threshold <b> flag lines above b bits per byte
  --anomaly-quantile <q>  flag lines above the key's running q-quantile (default 0.99 over
                          the last 1000 lines, after 50)
  --top-k <k>             next bytes to list (default 3)
  --no-mix                the network alone (no mixing with what the stream taught)
  --no-learn              frozen weights (by default the network learns the stream it reads:
                          each whole segment is scored first, then stepped on, while the
                          stream is not behind; "learned" counts those segments)
  --learning-rate <lr>    of the online learner (default 3e-4)
  --max-lines <n>         stop after n lines (default: never)
  --rate <n>              --demo: lines per second (default 20; 0 = as fast as possible)
  --mode <m>              segment (default; tokens wait up to --max-delay-ms to fill a segment)
                          or token (every byte at once: lower latency, lower throughput)
  --max-delay-ms <ms>     segment mode: longest wait of a byte before a partial chunk runs (default 250)
  --backend <name>        auto | tensorflow | wasm | cpu (default auto)
  -h, --help              this text

Exit codes: 0 done (end of input, --max-lines, Ctrl-C), 1 runtime failure (e.g. unreachable
broker), 2 bad arguments or missing files.

Examples:
  infiniformer stream --max-lines 20
  infiniformer stream --follow /var/log/syslog --key-by '/^\\S+ +\\S+ \\S+ (\\S+)/'
  tail -n 1000 build.log | infiniformer stream --stdin --anomaly-threshold 2
  infiniformer stream --kafka-topic logs --out-topic log-scores --brokers 127.0.0.1:9092
`;


/** A line on its way through the pipeline. */
interface LineIn {
  key: string;
  text: string;
  line: number;
  /** The Kafka record the line came from (acknowledged once its output is written). */
  record?: KafkaRecord<string>;
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

/** The embedded demo log, endlessly, at `rate` lines per second (0: as fast as possible). */
function demoLines(rate: number): Observable<string> {
  const lines = readFileSync(DEMO_LOG, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  // A timer even at full speed: the event loop keeps turning (signals, output, the model's rounds).
  return timer(0, rate > 0 ? 1000 / rate : 0).pipe(map((i) => lines[i % lines.length]!));
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
        brokers: { type: 'string' },
        group: { type: 'string' },
        'out-topic': { type: 'string' },
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
    const quantile = numberOption('anomaly-quantile', values['anomaly-quantile'], 0.99, 0, 1, true);
    if (quantile >= 1) throw new UsageError('--anomaly-quantile must be below 1');
    const topK = intOption('top-k', values['top-k'], 3, 1);
    const maxLines = values['max-lines'] === undefined ? Infinity : intOption('max-lines', values['max-lines'], 0, 1);
    const rate = numberOption('rate', values.rate, 20, 0, 1e6);
    const mode = values.mode ?? 'segment';
    if (mode !== 'segment' && mode !== 'token') throw new UsageError(`--mode must be segment or token, got ${JSON.stringify(mode)}`);
    const maxDelayMs = intOption('max-delay-ms', values['max-delay-ms'], 250, 1);
    const backend = backendOption(values.backend);
    const keyOf = keySelector(values['key-by']);
    const modelDir = values.model ?? DEFAULT_MODEL;
    mustExist('model', modelDir, 'dir');
    if (values.follow !== undefined) mustExist('follow', values.follow, 'file');

    await initBackend({ backend: backend, workload: 'segments' });
    const model = await loadModel(modelDir);
    if (model.tokenizer === undefined) throw new CliError(`${modelDir}: the model has no tokenizer (stream needs a byte-level text model)`);
    const tokenizer = model.tokenizer;

    // --- the lines ---
    let counter = 0;
    const numbered = (key: string) => (text: string): LineIn => ({ key: keyOf?.(text, key) ?? key, text, line: counter++ });
    let kafkaSource: ReturnType<typeof fromKafka<string>> | undefined;
    let lines$: Observable<LineIn>;
    if (values.follow !== undefined) lines$ = followFile(values.follow).pipe(map(numbered(values.follow)));
    else if (values.stdin === true) lines$ = fromStdin().pipe(map(numbered('stdin')));
    else if (values['kafka-topic'] !== undefined) {
      kafkaSource = fromKafka<string>({ brokers: values.brokers, groupId: values.group ?? 'infiniformer-stream', topics: [values['kafka-topic']], decode: utf8Decoder });
      lines$ = kafkaSource.pipe(map((r) => ({ key: keyOf?.(r.value, r.stateKey) ?? r.stateKey, text: r.value, line: counter++, record: r })));
    } else lines$ = demoLines(rate).pipe(map(numbered('gcc.log')));

    // --- the model ---
    const failures = new Subject<RecordFailure<unknown>>();
    failures.subscribe((f) => {
      const rec = ((f.record as { source?: unknown } | null)?.source as LineIn | undefined)?.record;
      process.stderr.write(`${JSON.stringify({ error: f.error.message, key: f.key })}\n`);
      rec?.fail(f.error); // a Kafka record goes to the dead-letter topic, the stream goes on
    });
    // Learning costs ~4x a scoring pass: it is skipped (scored only) while tokens pile up, so a
    // fast source is never held back by it.
    let backlog = (): number => 0;
    const learner: OnlineLearner | undefined =
      values['no-learn'] === true
        ? undefined
        : new OnlineLearner(model, { learningRate: numberOption('learning-rate', values['learning-rate'], 3e-4, 0, 1, true) }, { shouldLearn: (): boolean => backlog() <= 2 * model.config.segmentLength });
    const lm = infiniteFormer(model, { mode, maxDelayMs: mode === 'segment' ? maxDelayMs : undefined, errors: failures, ...(learner ? { learner } : {}) });
    backlog = () => lm.stats().pending;
    const scored$ = lines$.pipe(
      map((l): TextRecord => ({ key: l.key, text: `${l.text}\n`, source: l })),
      tokenize({ tokenizer, errors: failures }),
      lm,
      values['no-mix'] === true ? predictNext({ topK }) : contextMix({ topK }),
      recordSurprisal(),
      perplexity({ window: 1000 }),
      anomalies(threshold !== undefined ? { threshold } : { quantile, window: 1000, warmup: 50 }),
      take(maxLines),
      map((r) => {
        const l = r.source as LineIn;
        const out = {
          key: r.key,
          line: l.line,
          bitsPerByte: round(r.surprisal),
          bits: round(r.bits),
          bytes: r.tokens,
          anomaly: r.anomaly,
          threshold: round(r.threshold),
          perplexity: round(r.perplexity),
          learned: lm.stats().segmentsLearned,
          next: (r.last.topK ?? []).map((t) => ({ text: tokenizer.decode([t.token]), prob: round(t.prob) })),
          text: l.text.length > 300 ? `${l.text.slice(0, 300)}…` : l.text,
          ...(l.record ? { source: { topic: l.record.topic, partition: l.record.partition, offset: l.record.offset } } : {}),
        };
        return { out, record: l.record };
      }),
    );

    // --- the output ---
    const written$ =
      values['out-topic'] !== undefined
        ? scored$.pipe(
            toKafka({ brokers: values.brokers, topic: values['out-topic'], key: (x) => x.out.key, value: (x) => JSON.stringify(x.out), onDelivered: (x) => x.record?.ack() }),
            mergeMap(() => EMPTY),
          )
        : scored$.pipe(
            tap((x) => {
              process.stdout.write(`${JSON.stringify(x.out)}\n`);
              x.record?.ack();
            }),
            mergeMap(() => EMPTY),
          );

    const code = await new Promise<number>((resolve) => {
      let sub: Subscription | undefined = undefined;
      // Ctrl-C / SIGTERM: a Kafka source drains (in-flight lines finish, offsets are committed,
      // the group is left) and completes the pipeline; other sources just stop.
      const onSignal = (): void => {
        if (kafkaSource !== undefined) void kafkaSource.drain().catch(() => sub?.unsubscribe());
        else {
          sub?.unsubscribe();
          resolve(0);
        }
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      sub = written$.pipe(finalize(() => (process.off('SIGINT', onSignal), process.off('SIGTERM', onSignal)))).subscribe({
        error: (error: unknown) => {
          process.stderr.write(`infiniformer stream: ${(error as Error).message}\n`);
          resolve(1);
        },
        complete: () => resolve(0),
      });
    });
    learner?.dispose();
    model.dispose();
    return code;
  },
};

const round = (x: number): number => (Number.isFinite(x) ? Math.round(x * 1e4) / 1e4 : x);

export default command;
