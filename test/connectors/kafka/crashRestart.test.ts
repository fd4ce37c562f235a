/**
 * Acceptance 2 and 3 on the model: a processor running every key's InfiniFormer StreamState
 * (tiny model, sticky memories on, token mode) is SIGKILLed at random points three times and
 * restarted. No input is missing from the output; duplicates are counted and each is explained by
 * an offset not committed at a kill; every output (duplicates included) carries the digest of the
 * serialised state an uninterrupted run has after that record; the final state of every key in
 * the changelog (every layer's B, caches, sticky statistics, RNG) is bit-identical to it.
 */
import test from 'ava';
import { committedOffsets, produceRecords, requireBroker, waitFor } from '../../helpers/kafka.js';
import { modelBackend, setUpPipeline, changelogDigests, checkOutputs, progressWatch, reference, reportedRereads, startProcessor, startsAtKills, unexplainedDuplicates, waitForProgress } from './fixtures/harness.js';

const RECORDS = 1600;
const PARTITIONS = 4;
const KEYS = 8;

test('three SIGKILLs at random points: no input lost, duplicates only for uncommitted records, per-key model state bit-identical', async (t) => {
  await requireBroker();
  await modelBackend;
  const { kafka, topics, processors } = await setUpPipeline(t, 'crash', PARTITIONS);
  await produceRecords(kafka, topics.input, RECORDS, PARTITIONS, (i) => ({ key: `k${i % KEYS}`, value: String(i) }));
  const ref = await reference(RECORDS, PARTITIONS, KEYS);

  const watch = await progressWatch(kafka, topics);
  t.teardown(() => watch.close());
  const killedAt: number[] = [];
  const committedAtKills: Array<Map<number, number>> = [];
  for (let kill = 0; kill < 3; kill++) {
    const before = await watch.read();
    const processor = startProcessor(topics, processors);
    // A random point: 100 to 400 more outputs, after a new commit on some partition.
    await waitForProgress(watch, before, 100 + Math.floor(Math.random() * 300), [...Array(PARTITIONS).keys()]);
    processor.child.kill('SIGKILL');
    await processor.exited;
    // The dead processor commits nothing more: this is what a restart resumes from.
    const after = await watch.read();
    killedAt.push(after.outputs);
    committedAtKills.push(after.committed);
  }
  t.log(`killed with ${killedAt.join(', ')} outputs written`);

  const last = startProcessor(topics, processors);
  await waitFor(() => last.lines.length > 0, 60_000, 'the last processor to report');
  const ends = RECORDS / PARTITIONS;
  const deadline = Date.now() + 120_000;
  for (;;) {
    const committed = await committedOffsets(kafka, topics.group, topics.input);
    if ([...Array(PARTITIONS).keys()].every((p) => committed.get(p) === ends)) break;
    if (Date.now() > deadline) t.fail(`commits did not reach the end: ${JSON.stringify([...committed])}`);
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  last.child.kill('SIGTERM');
  t.is(await last.exited, 0, 'SIGTERM drains, commits, leaves the group and exits cleanly');
  // What each restarted processor restored (its last status line), summed over the restarts.
  type Report = { skipped?: number; restored?: { states: number; midSegment: number; withMemory: number } };
  const restored = { states: 0, midSegment: 0, withMemory: 0, skipped: 0 };
  for (const p of processors.slice(1)) {
    const reports = p.lines.map((l) => JSON.parse(l) as Report);
    restored.states += Math.max(0, ...reports.map((r) => r.restored?.states ?? 0));
    restored.midSegment += Math.max(0, ...reports.map((r) => r.restored?.midSegment ?? 0));
    restored.withMemory += Math.max(0, ...reports.map((r) => r.restored?.withMemory ?? 0));
    restored.skipped += Math.max(0, ...reports.map((r) => r.skipped ?? 0));
  }
  t.log(`3 restarts restored ${restored.states} key states from the changelog (${restored.midSegment} in the middle of a segment, ${restored.withMemory} with a long-term memory in every layer); ${restored.skipped} records skipped as already applied`);
  t.true(restored.states > 0, 'the restarts restored states from the changelog');
  t.true(restored.midSegment > 0, 'some states were restored in the middle of a segment');
  t.true(restored.withMemory > 0, 'some restored states had a long-term memory');

  const check = await checkOutputs(kafka, topics.output, ref, RECORDS);
  t.log(`outputs ${check.outputs} for ${RECORDS} inputs: ${check.duplicates} duplicates (uncommitted at a kill), ${check.missing} missing`);
  t.is(check.missing, 0, 'no input is missing from the output');
  t.is(check.wrongDigest, 0, 'every output carries the memory an uninterrupted run has at that record');
  // Under heavy load a processor may also be evicted from the group and re-read a partition: it says so.
  const rereads = reportedRereads(processors);
  if (rereads.length > 0) t.log(`re-reads without a kill (group evictions): ${JSON.stringify(rereads)}`);
  t.deepEqual(unexplainedDuplicates(check, [...startsAtKills(committedAtKills, PARTITIONS), ...rereads]), [], 'duplicates only for records not committed at a kill');
  t.log(`committed at the kills: ${committedAtKills.map((c) => [...c.values()].reduce((a, b) => a + b, 0)).join(', ')} of ${RECORDS}`);
  const finalStates = await changelogDigests(kafka, topics.changelog, KEYS);
  t.is(finalStates.newest.size, KEYS);
  for (const [key, d] of ref.finalDigest) t.is(finalStates.newest.get(key), d, `key ${key}: serialised StreamState bit-identical to the uninterrupted run`);
  t.true(finalStates.lastIsNewest, 'the last snapshot written per key (what compaction keeps) is the newest');
});
