/**
 * BatchRunner's keepalive: heartbeats go on while a batch waits (here for its partition's
 * restore), and stop once no batch is in progress. Fakes for kafkajs and the partition; real timers.
 */
import test from 'ava';
import type { EachBatchPayload, KafkaMessage } from 'kafkajs';
import { BatchRunner } from '../../../connectors/kafka/batchRunner.js';
import { OwnedPartition, type PartitionLifecycle } from '../../../connectors/kafka/partitionLifecycle.js';
import type { RecordEmitter } from '../../../connectors/kafka/recordEmitter.js';
import type { SourceRuntime } from '../../../connectors/kafka/sourceRuntime.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('heartbeats every heartbeatIntervalMs while a batch waits for its restore, none once it is done', async (t) => {
  const INTERVAL = 100;
  const RESTORE_MS = 1000;
  const rt = { options: { heartbeatIntervalMs: INTERVAL, maxBlockingMs: 50 }, status: { draining: false, closed: false } } as unknown as SourceRuntime<Buffer, never>;
  const p = new OwnedPartition<never>('in', 0);
  p.restored = sleep(RESTORE_MS).then(() => undefined);
  const partitions = { get: () => p, pauseIfFull: () => false } as unknown as PartitionLifecycle<Buffer, never>;
  const handled: number[] = [];
  const emitter = { handle: (_p: unknown, _t: unknown, m: KafkaMessage) => handled.push(Number(m.offset)) } as unknown as RecordEmitter<Buffer, never>;
  const runner = new BatchRunner(rt, partitions, emitter);

  const beats: number[] = [];
  const started = Date.now();
  const messages = [0, 1, 2].map((i) => ({ offset: String(i), key: null, value: Buffer.from('x'), headers: {}, timestamp: '0' }) as unknown as KafkaMessage);
  const payload = {
    batch: { topic: 'in', partition: 0, messages },
    resolveOffset: () => undefined,
    heartbeat: async () => void beats.push(Date.now() - started),
    isRunning: () => true,
    isStale: () => false,
  } as unknown as EachBatchPayload;
  await runner.eachBatch(payload);
  const duringRestore = beats.filter((at) => at < RESTORE_MS);
  t.log(`heartbeats at ${beats.join(', ')} ms`);
  // Without the keepalive the batch loop beats only after the restore (the old behaviour: silent for the whole wait).
  t.true(duringRestore.length >= RESTORE_MS / INTERVAL / 2, `${duringRestore.length} heartbeats during a ${RESTORE_MS} ms restore`);
  t.true(duringRestore.length <= RESTORE_MS / INTERVAL + 1);
  t.deepEqual(handled, [0, 1, 2], 'the batch is emitted after the restore');
  const after = beats.length;
  await sleep(5 * INTERVAL);
  t.is(beats.length, after, 'no heartbeats from the timer once no batch is in progress');
});
