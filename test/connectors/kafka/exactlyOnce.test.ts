/**
 * Exactly-once mode on the real broker: per input partition, outputs, dead letters, state
 * snapshots and the consumed offset commit in one transaction; read_committed readers see every
 * input's output exactly once.
 */
import test from 'ava';
import { filter, lastValueFrom, map, of } from 'rxjs';
import { ConnectorError } from '../../../src/errors.js';
import { fromKafka, toKafka, utf8Decoder, type StateCodec } from '../../../connectors/kafka/index.js';
import { committedOffsets, createTopic, deleteTopics, produceRecords, readTopic, requireBroker, testKafka, uniqueName, waitFor } from '../../helpers/kafka.js';
import { changelogDigests, checkOutputs, describeDuplicates, modelBackend, progressWatch, reference, setUpPipeline, startProcessor, waitForProgress } from './fixtures/harness.js';

const RECORDS = 2000;
const PARTITIONS = 2;

test('exactly-once toKafka: an item without a transaction is a typed error, nothing is produced', async (t) => {
  const error = await t.throwsAsync(lastValueFrom(of({ key: 'k', value: 'v', ack: () => undefined }).pipe(toKafka({ topic: 'never-created', exactlyOnce: true }))), { instanceOf: ConnectorError });
  t.regex(error?.message ?? '', /without a transaction/);
  t.false(error?.retriable);
});

const countCodec: StateCodec<number> = {
  encode: (n) => Buffer.from(String(n)),
  decode: (b) => Number(Buffer.from(b).toString()),
};

test('in-process exactly-once pipeline: one output per input under read_committed, per-key counts in the changelog, poison records dead-lettered once', async (t) => {
  await requireBroker();
  const kafka = testKafka();
  const input = uniqueName('eos1-in');
  const output = uniqueName('eos1-out');
  const changelog = uniqueName('eos1-changelog');
  const groupId = uniqueName('eos1');
  t.teardown(() => deleteTopics(kafka, [input, output, changelog, `${groupId}.dlq`]));
  await createTopic(kafka, input, PARTITIONS);
  await createTopic(kafka, output, PARTITIONS);
  await createTopic(kafka, changelog, PARTITIONS, true);
  await produceRecords(kafka, input, RECORDS, PARTITIONS, (i) => ({ key: `k${i % 6}`, value: String(i) }));

  const source = fromKafka<string, number>({
    groupId,
    topics: [input],
    decode: utf8Decoder,
    changelog: { topic: changelog, codec: countCodec },
    exactlyOnce: { transactionalId: groupId },
    commitIntervalMs: 100,
    handleSigterm: false,
  });
  const subscription = source
    .pipe(
      map((r) => {
        if (Number(r.value) % 100 === 7) {
          r.fail(new Error(`poison ${r.value}`));
          return null;
        }
        const count = (r.state.get() ?? 0) + 1;
        r.state.set(count);
        return { key: r.key, value: JSON.stringify({ p: r.partition, o: Number(r.offset), count }), ack: r.ack, transaction: r.transaction };
      }),
      filter((v) => v !== null),
      toKafka({ topic: output, exactlyOnce: true }),
    )
    .subscribe({ error: (e: unknown) => t.fail(`pipeline failed: ${String(e)}`) });
  try {
    await waitFor(() => source.stats().acked >= RECORDS, 120_000, 'every record acknowledged');
    await source.drain();
  } finally {
    subscription.unsubscribe();
  }
  const stats = source.stats();
  t.log(`${stats.transactions} transactions, ${stats.snapshotsWritten} snapshots, ${stats.deadLettered} dead letters`);
  t.true(stats.transactions >= PARTITIONS);
  const poison = RECORDS / 100;
  t.is(stats.deadLettered, poison);

  const out = await readTopic(kafka, output, RECORDS - poison, 3000);
  const seen = new Map<string, number>();
  for (const m of out) {
    const { p, o } = JSON.parse(m.value?.toString() ?? '{}') as { p: number; o: number };
    seen.set(`${p}:${o}`, (seen.get(`${p}:${o}`) ?? 0) + 1);
  }
  t.is(out.length, RECORDS - poison, 'one output per good input');
  t.true([...seen.values()].every((n) => n === 1));
  const dlq = await readTopic(kafka, `${groupId}.dlq`, poison, 3000);
  t.is(dlq.length, poison, 'each poison record dead-lettered once');
  const committed = await committedOffsets(kafka, groupId, input);
  t.deepEqual([...committed.entries()].sort(), [...Array(PARTITIONS).keys()].map((p) => [p, RECORDS / PARTITIONS]), 'offsets committed by the transactions');
  // The last count per key in the changelog = that key's good records.
  const snapshots = await readTopic(kafka, changelog, 6, 2000);
  const last = new Map<string, number>();
  for (const m of snapshots) last.set(m.key?.toString().split('\u0000')[1] ?? '', countCodec.decode(m.value as Buffer));
  const truth = new Map<string, number>();
  for (let i = 0; i < RECORDS; i++) if (i % 100 !== 7) truth.set(`k${i % 6}`, (truth.get(`k${i % 6}`) ?? 0) + 1);
  t.deepEqual(new Map([...last].sort()), new Map([...truth].sort()));
});

test('exactly-once with the model: processors SIGKILLed mid-transaction; read_committed output has every input exactly once and per-key state is bit-identical', async (t) => {
  const EOS_RECORDS = 1200;
  const EOS_PARTITIONS = 4;
  const KEYS = 8;
  await requireBroker();
  await modelBackend;
  const { kafka, topics, processors } = await setUpPipeline(t, 'eos', EOS_PARTITIONS);
  await produceRecords(kafka, topics.input, EOS_RECORDS, EOS_PARTITIONS, (i) => ({ key: `k${i % KEYS}`, value: String(i) }));
  const ref = await reference(EOS_RECORDS, EOS_PARTITIONS, KEYS);
  const watch = await progressWatch(kafka, topics);
  t.teardown(() => watch.close());

  const written: number[] = [];
  // Transactions of 500 ms: a kill at a random point almost surely finds one open with outputs in it.
  const env = { EXACTLY_ONCE: '1', COMMIT_MS: '500' };
  for (let kill = 0; kill < 2; kill++) {
    const before = await watch.read();
    const processor = startProcessor(topics, processors, env);
    // A random point after a committed transaction: outputs keep flowing into the next one.
    await waitForProgress(watch, before, 20 + Math.floor(Math.random() * 200), [...Array(EOS_PARTITIONS).keys()]);
    processor.child.kill('SIGKILL');
    await processor.exited;
    written.push((await watch.read()).outputs);
  }
  const last = startProcessor(topics, processors, env);
  const ends = EOS_RECORDS / EOS_PARTITIONS;
  await waitFor(() => last.lines.length > 0, 60_000, 'the last processor to report');
  const deadline = Date.now() + 180_000;
  for (;;) {
    const { committed } = await watch.read();
    if ([...Array(EOS_PARTITIONS).keys()].every((p) => committed.get(p) === ends)) break;
    if (Date.now() > deadline) {
      t.fail(`commits did not reach the end: ${JSON.stringify([...committed])}`);
      break;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  last.child.kill('SIGTERM');
  t.is(await last.exited, 0, 'SIGTERM drains, commits the open transactions and exits cleanly');

  const check = await checkOutputs(kafka, topics.output, ref, EOS_RECORDS);
  const everything = await readTopic(kafka, topics.output, EOS_RECORDS * 2, 3000, 120_000, true);
  const aborted = everything.length - check.outputs;
  t.log(`outputs visible at the kills (last stable offsets, markers included): ${written.join(', ')}; read_uncommitted sees ${everything.length} outputs, read_committed ${check.outputs}: ${aborted} were in transactions the kills left open (aborted)`);
  t.true(aborted > 0, 'the kills hit open transactions');
  t.is(check.missing, 0, 'no input is missing');
  t.is(check.duplicates, 0, 'no input is output twice');
  t.is(check.outputs, EOS_RECORDS);
  t.is(check.wrongDigest, 0, 'every output carries the state an uninterrupted run has');
  const finalStates = await changelogDigests(kafka, topics.changelog, KEYS);
  for (const [key, d] of ref.finalDigest) t.is(finalStates.newest.get(key), d, `key ${key}: serialised StreamState bit-identical`);
  t.true(finalStates.lastIsNewest);
});

test('exactly-once zombie: a processor frozen (SIGSTOP) loses its partitions, wakes up fenced, and the output stays exactly once', async (t) => {
  const Z_RECORDS = 1200;
  const Z_PARTITIONS = 4;
  const KEYS = 8;
  await requireBroker();
  await modelBackend;
  const { kafka, topics, processors } = await setUpPipeline(t, 'zombie', Z_PARTITIONS);
  await produceRecords(kafka, topics.input, Z_RECORDS, Z_PARTITIONS, (i) => ({ key: `k${i % KEYS}`, value: String(i) }));
  const ref = await reference(Z_RECORDS, Z_PARTITIONS, KEYS);
  const watch = await progressWatch(kafka, topics);
  t.teardown(() => watch.close());
  const all = [...Array(Z_PARTITIONS).keys()];
  type Report = { assigned?: string[]; fenced?: number; transactions?: number };
  const lastReport = (p: { lines: string[] }): Report => (p.lines.length > 0 ? (JSON.parse(p.lines.at(-1) as string) as Report) : {});

  const a = startProcessor(topics, processors, { EXACTLY_ONCE: '1' });
  const start = await watch.read();
  await waitForProgress(watch, start, 20 + Math.floor(Math.random() * 100), all, { every: true });
  // Frozen mid-stream: its open transactions stay open, its session expires.
  a.child.kill('SIGSTOP');
  const frozen = await watch.read();
  const b = startProcessor(topics, processors, { EXACTLY_ONCE: '1' });
  await waitFor(() => (lastReport(b).assigned ?? []).length === Z_PARTITIONS, 90_000, 'B to take every partition over');
  await waitForProgress(watch, frozen, 1, all, { every: true });
  // The zombie wakes up: whatever it still sends or commits for its old partitions is fenced.
  a.child.kill('SIGCONT');
  const ends = Z_RECORDS / Z_PARTITIONS;
  const deadline = Date.now() + 180_000;
  for (;;) {
    const { committed } = await watch.read();
    if (all.every((p) => committed.get(p) === ends)) break;
    if (Date.now() > deadline) {
      t.fail(`commits did not reach the end: ${JSON.stringify([...committed])}`);
      break;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 500));
  t.log(`A after waking: ${JSON.stringify(lastReport(a))}; B: ${JSON.stringify(lastReport(b))}`);
  a.child.kill('SIGTERM');
  b.child.kill('SIGTERM');
  t.is(await a.exited, 0, 'the zombie gave its partitions up without failing');
  t.is(await b.exited, 0);

  const check = await checkOutputs(kafka, topics.output, ref, Z_RECORDS);
  const everything = await readTopic(kafka, topics.output, Z_RECORDS * 2, 3000, 120_000, true);
  t.log(`read_uncommitted ${everything.length} outputs, read_committed ${check.outputs} (A ${check.byPid.get(a.child.pid ?? 0) ?? 0}, B ${check.byPid.get(b.child.pid ?? 0) ?? 0})`);
  if (check.duplicates > 0) t.log(`duplicated inputs (partition:offsets by writer pids): ${describeDuplicates(check)}`);
  t.is(check.missing, 0, 'no input is missing');
  t.is(check.duplicates, 0, 'no input is output twice');
  t.is(check.wrongDigest, 0, 'every output carries the state an uninterrupted run has');
  const finalStates = await changelogDigests(kafka, topics.changelog, KEYS);
  for (const [key, d] of ref.finalDigest) t.is(finalStates.newest.get(key), d, `key ${key}: serialised StreamState bit-identical`);
});
