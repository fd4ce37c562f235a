/**
 * Acceptance 2 and 3: the processor is SIGKILLed at random points three times and restarted. No
 * input is missing from the output; duplicates are counted; every output (duplicates included)
 * carries the digest of exactly the memory an uninterrupted run has at that record, and the final
 * per-key memory B in the changelog is bit-identical to the uninterrupted run's.
 */
import test from 'ava';
import { backendReady } from '../../helpers/backend.js';
import { committedOffsets, produceRecords, requireBroker, waitFor } from '../../helpers/kafka.js';
import { setUpPipeline, changelogDigests, checkOutputs, outputCount, reference, startProcessor, unexplainedDuplicates } from './fixtures/harness.js';

const RECORDS = 8000;
const PARTITIONS = 4;
const KEYS = 8;

test('three SIGKILLs at random points: no input lost, duplicates only for uncommitted records, per-key memory bit-identical', async (t) => {
  await requireBroker();
  await backendReady;
  const { kafka, topics, processors } = await setUpPipeline(t, 'crash', PARTITIONS);
  await produceRecords(kafka, topics.input, RECORDS, PARTITIONS, (i) => ({ key: `k${i % KEYS}`, value: String(i) }));
  const ref = reference(RECORDS, PARTITIONS, KEYS);

  const killedAt: number[] = [];
  const committedAtKills: Array<Map<number, number>> = [];
  for (let kill = 0; kill < 3; kill++) {
    const before = await outputCount(kafka, topics.output);
    const processor = startProcessor(topics, processors);
    // A random point: 100 to 1500 ms after this processor's first output.
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline && (await outputCount(kafka, topics.output)) <= before) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 1400)));
    processor.child.kill('SIGKILL');
    await processor.exited;
    killedAt.push(await outputCount(kafka, topics.output));
    // The dead processor commits nothing more: this is what a restart resumes from.
    committedAtKills.push(await committedOffsets(kafka, topics.group, topics.input));
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
  const reports = last.lines.map((l) => JSON.parse(l) as { restoredKeys?: number; skipped?: number });
  const restoredKeys = Math.max(...reports.map((r) => r.restoredKeys ?? 0));
  const skipped = Math.max(...reports.map((r) => r.skipped ?? 0));
  t.log(`last processor: restored ${restoredKeys} keys from the changelog, skipped ${skipped} already-applied records`);

  const check = await checkOutputs(kafka, topics.output, ref, RECORDS);
  t.log(`outputs ${check.outputs} for ${RECORDS} inputs: ${check.duplicates} duplicates (uncommitted at a kill), ${check.missing} missing`);
  t.is(check.missing, 0, 'no input is missing from the output');
  t.is(check.wrongDigest, 0, 'every output carries the memory an uninterrupted run has at that record');
  t.deepEqual(unexplainedDuplicates(check.seen, committedAtKills), [], 'duplicates only for records not committed at a kill');
  t.log(`committed at the kills: ${committedAtKills.map((c) => [...c.values()].reduce((a, b) => a + b, 0)).join(', ')} of ${RECORDS}`);
  const finalStates = await changelogDigests(kafka, topics.changelog, KEYS);
  t.is(finalStates.size, KEYS);
  for (const [key, d] of ref.finalDigest) t.is(finalStates.get(key), d, `key ${key}: memory B bit-identical to the uninterrupted run`);
});
