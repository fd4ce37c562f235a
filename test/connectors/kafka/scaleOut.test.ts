/**
 * Acceptance 4 (and 3 across processors) on the model: two processors in one consumer group split
 * the partitions; SIGKILLing one moves its partitions to the other, which restores their keys'
 * InfiniFormer StreamState from the changelog; a processor joining mid-stream takes partitions
 * over gracefully. The output is complete and every output and final state is bit-identical to an
 * uninterrupted run.
 */
import test from 'ava';
import { committedOffsets, produceRecords, requireBroker, waitFor } from '../../helpers/kafka.js';
import { modelBackend, setUpPipeline, changelogDigests, checkOutputs, progressWatch, reference, reportedRereads, startProcessor, startsAtKills, unexplainedDuplicates, waitForProgress, type Processor } from './fixtures/harness.js';

const RECORDS = 1600;
const PARTITIONS = 4;
const KEYS = 8;

interface Report {
  pid: number;
  assigned?: string[];
  restoredKeys?: number;
}

const reports = (p: Processor): Report[] => p.lines.map((l) => JSON.parse(l) as Report);

test('two processors split the partitions; after one is SIGKILLed the other takes its partitions and their state over', async (t) => {
  await requireBroker();
  await modelBackend;
  const { kafka, topics, processors } = await setUpPipeline(t, 'scale', PARTITIONS);
  const ref = await reference(RECORDS, PARTITIONS, KEYS);

  const a = startProcessor(topics, processors);
  const b = startProcessor(topics, processors);
  const split = () => {
    const ra = reports(a).at(-1)?.assigned ?? [];
    const rb = reports(b).at(-1)?.assigned ?? [];
    return ra.length > 0 && rb.length > 0 && ra.length + rb.length === PARTITIONS && ra.every((x) => !rb.includes(x));
  };
  await waitFor(split, 60_000, 'both processors to hold partitions');
  const assignedA = reports(a).at(-1)?.assigned ?? [];
  const assignedB = reports(b).at(-1)?.assigned ?? [];
  t.log(`A holds ${assignedA.join(' ')}; B holds ${assignedB.join(' ')}`);

  // Input arrives while both run; A dies half way through, once it committed on each of its partitions.
  const watch = await progressWatch(kafka, topics);
  t.teardown(() => watch.close());
  const before = await watch.read();
  await produceRecords(kafka, topics.input, RECORDS / 2, PARTITIONS, (i) => ({ key: `k${i % KEYS}`, value: String(i) }));
  const partitionsOfA = assignedA.map((id) => Number(id.slice(id.lastIndexOf(':') + 1)));
  await waitForProgress(watch, before, 20 + Math.floor(Math.random() * 200), partitionsOfA, { every: true });
  a.child.kill('SIGKILL');
  await a.exited;
  const committedAtKill = await committedOffsets(kafka, topics.group, topics.input);
  const producer = kafka.producer();
  await producer.connect();
  // The second half, keeping record i on partition i % 4 at offset floor(i / 4).
  const rest = [];
  for (let i = RECORDS / 2; i < RECORDS; i++) rest.push({ key: `k${i % KEYS}`, value: String(i), partition: i % PARTITIONS });
  await producer.send({ topic: topics.input, acks: -1, messages: rest });
  await producer.disconnect();

  await waitFor(() => (reports(b).at(-1)?.assigned ?? []).length === PARTITIONS, 60_000, 'B to take over every partition');
  const ends = RECORDS / PARTITIONS;
  const deadline = Date.now() + 120_000;
  for (;;) {
    const committed = await committedOffsets(kafka, topics.group, topics.input);
    if ([...Array(PARTITIONS).keys()].every((p) => committed.get(p) === ends)) break;
    if (Date.now() > deadline) {
      t.fail(`commits did not reach the end: ${JSON.stringify([...committed])}`);
      break;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  b.child.kill('SIGTERM');
  t.is(await b.exited, 0, 'B drains and exits cleanly');
  const restoredByB = Math.max(...reports(b).map((r) => r.restoredKeys ?? 0));
  t.log(`B restored ${restoredByB} keys from the changelog when it took over`);
  t.true(restoredByB >= (KEYS / PARTITIONS) * assignedA.length, "B restored the state of A's keys");

  const check = await checkOutputs(kafka, topics.output, ref, RECORDS);
  t.log(`outputs ${check.outputs} for ${RECORDS} inputs (A ${check.byPid.get(a.child.pid ?? 0) ?? 0}, B ${check.byPid.get(b.child.pid ?? 0) ?? 0}); ${check.duplicates} duplicates`);
  t.true((check.byPid.get(a.child.pid ?? 0) ?? 0) > 0 && (check.byPid.get(b.child.pid ?? 0) ?? 0) > 0, 'both processors produced output');
  t.is(check.missing, 0, 'the output is complete');
  t.is(check.wrongDigest, 0, 'every output carries the memory an uninterrupted run has');
  // B may hold records A had read before the kill too (uncommitted): one allowance, as for a crash.
  const rereads = reportedRereads(processors);
  if (rereads.length > 0) t.log(`re-reads without a kill (group evictions): ${JSON.stringify(rereads)}`);
  t.deepEqual(unexplainedDuplicates(check, [...startsAtKills([committedAtKill], PARTITIONS), ...rereads]), [], 'duplicates only for records not committed at the kill');
  const finalStates = await changelogDigests(kafka, topics.changelog, KEYS);
  for (const [key, d] of ref.finalDigest) t.is(finalStates.newest.get(key), d, `key ${key}: serialised StreamState bit-identical after the takeover`);
  t.true(finalStates.lastIsNewest, 'the last snapshot written per key is the newest');
});

test('a second processor joining mid-stream takes partitions over gracefully; the handed-over memory continues exactly', async (t) => {
  await requireBroker();
  await modelBackend;
  const { kafka, topics, processors } = await setUpPipeline(t, 'join', PARTITIONS);
  const ref = await reference(RECORDS, PARTITIONS, KEYS);
  await produceRecords(kafka, topics.input, RECORDS / 2, PARTITIONS, (i) => ({ key: `k${i % KEYS}`, value: String(i) }));

  const watch = await progressWatch(kafka, topics);
  t.teardown(() => watch.close());
  const before = await watch.read();
  const a = startProcessor(topics, processors);
  await waitFor(() => (reports(a).at(-1)?.assigned ?? []).length === PARTITIONS, 60_000, 'A to hold every partition');
  // B joins once A has committed (so snapshotted) on every partition: whichever move, their keys have state.
  await waitForProgress(watch, before, 1, [...Array(PARTITIONS).keys()], { every: true });
  const b = startProcessor(topics, processors);
  await waitFor(() => (reports(b).at(-1)?.assigned ?? []).length > 0, 60_000, 'B to get partitions in the rebalance');
  // The second half, keeping record i on partition i % 4 at offset floor(i / 4).
  const producer = kafka.producer();
  await producer.connect();
  const rest = [];
  for (let i = RECORDS / 2; i < RECORDS; i++) rest.push({ key: `k${i % KEYS}`, value: String(i), partition: i % PARTITIONS });
  await producer.send({ topic: topics.input, acks: -1, messages: rest });
  await producer.disconnect();
  const ends = RECORDS / PARTITIONS;
  const deadline = Date.now() + 120_000;
  for (;;) {
    const committed = await committedOffsets(kafka, topics.group, topics.input);
    if ([...Array(PARTITIONS).keys()].every((p) => committed.get(p) === ends)) break;
    if (Date.now() > deadline) {
      t.fail(`commits did not reach the end: ${JSON.stringify([...committed])}`);
      break;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  a.child.kill('SIGTERM');
  b.child.kill('SIGTERM');
  t.is(await a.exited, 0);
  t.is(await b.exited, 0);
  const check = await checkOutputs(kafka, topics.output, ref, RECORDS);
  t.log(`outputs ${check.outputs} (A ${check.byPid.get(a.child.pid ?? 0) ?? 0}, B ${check.byPid.get(b.child.pid ?? 0) ?? 0}); ${check.duplicates} duplicates; B restored ${Math.max(...reports(b).map((r) => r.restoredKeys ?? 0))} keys`);
  t.true((check.byPid.get(b.child.pid ?? 0) ?? 0) > 0, 'B processed the records of the partitions it took over');
  t.true(Math.max(...reports(b).map((r) => r.restoredKeys ?? 0)) > 0, 'B restored their keys from the changelog');
  t.is(check.missing, 0, 'the output is complete');
  t.is(check.wrongDigest, 0, 'every output carries the memory an uninterrupted run has');
  const finalStates = await changelogDigests(kafka, topics.changelog, KEYS);
  for (const [key, d] of ref.finalDigest) t.is(finalStates.newest.get(key), d, `key ${key}: serialised StreamState bit-identical after the handover`);
  t.true(finalStates.lastIsNewest, 'the last snapshot written per key is the newest');
});
