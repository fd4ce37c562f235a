/** Acceptance 6: the broker restarts mid-stream; the pipeline reconnects and finishes with no loss. */
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { map } from 'rxjs';
import { fromKafka, toKafka, utf8Decoder } from '../../../connectors/kafka/index.js';
import { startBroker, stopBroker, type BrokerOptions } from '../../../scripts/kafka.js';
import { committedOffsets, createTopic, produceRecords, readTopic, testKafka, uniqueName, waitFor } from '../../helpers/kafka.js';

const RECORDS = 20_000;
const PARTITIONS = 2;

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => done(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

test('a broker restart mid-stream: the pipeline reconnects and every input gets its output', async (t) => {
  // A private broker: restarting the shared one would disturb the other tests.
  const dataDir = mkdtempSync(join(tmpdir(), 'kafka-restart-'));
  const options: BrokerOptions = { port: await freePort(), controllerPort: await freePort(), dataDir, heap: '384m' };
  t.teardown(async () => {
    await stopBroker(options, false, 5000);
    rmSync(dataDir, { recursive: true, force: true });
  });
  const broker = await startBroker(options);
  const kafka = testKafka(broker.brokers);
  const input = uniqueName('restart-in');
  const output = uniqueName('restart-out');
  const groupId = uniqueName('restart');
  await createTopic(kafka, input, PARTITIONS);
  await createTopic(kafka, output, PARTITIONS);
  await produceRecords(kafka, input, RECORDS, PARTITIONS, (i) => ({ key: `k${i % 5}`, value: String(i) }));

  const source = fromKafka({ brokers: broker.brokers, groupId, topics: [input], decode: utf8Decoder, highWatermark: 200, commitIntervalMs: 100, handleSigterm: false });
  let failure: unknown = null;
  let delivered = 0;
  const subscription = source
    .pipe(
      map((r) => ({ key: r.key, value: JSON.stringify({ p: r.partition, o: Number(r.offset) }), ack: r.ack })),
      // Slow enough that the restart lands mid-stream.
      toKafka({ brokers: broker.brokers, topic: output, maxBatch: 100, lingerMs: 5 }),
    )
    .subscribe({ next: (report) => (delivered += report.items.length), error: (e: unknown) => (failure = e) });
  t.teardown(() => subscription.unsubscribe());

  await waitFor(() => delivered >= 2000 || failure !== null, 60_000, '2000 outputs before the restart');
  t.is(failure, null);
  const restartStarted = Date.now();
  await stopBroker(options, true);
  const atStop = delivered;
  await new Promise((r) => setTimeout(r, 1000));
  await startBroker(options, true);
  t.log(`broker down and back in ${((Date.now() - restartStarted) / 1000).toFixed(1)} s; ${atStop} outputs delivered before the stop`);

  const ends = RECORDS / PARTITIONS;
  const deadline = Date.now() + 150_000;
  for (;;) {
    if (failure !== null) break;
    const committed = await committedOffsets(kafka, groupId, input).catch(() => new Map<number, number>());
    if ([...Array(PARTITIONS).keys()].every((p) => committed.get(p) === ends)) break;
    if (Date.now() > deadline) {
      t.fail(`commits did not reach the end after the restart: ${JSON.stringify([...committed])}`);
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  t.is(failure, null, 'the pipeline did not fail');
  await source.drain();

  const out = await readTopic(kafka, output, RECORDS);
  const seen = new Set(out.map((m) => m.value?.toString() ?? ''));
  let missing = 0;
  for (let i = 0; i < RECORDS; i++) if (!seen.has(JSON.stringify({ p: i % PARTITIONS, o: Math.floor(i / PARTITIONS) }))) missing++;
  t.log(`outputs ${out.length} for ${RECORDS} inputs (${out.length - seen.size} duplicates)`);
  t.is(missing, 0, 'no input lost across the restart');
});
