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

test('heartbeats go on while a batch waits for its restore, none once it is done', async (t) => {
  const INTERVAL = 20;
  const WANTED = 5;
  const rt = { options: { heartbeatIntervalMs: INTERVAL, maxBlockingMs: 50 }, status: { draining: false, closed: false } } as unknown as SourceRuntime<Buffer, never>;
  const p = new OwnedPartition<never>('in', 0);
  // The restore ends once WANTED heartbeats arrived during it; without the keepalive none would
  // (the old behaviour: the batch loop beats only after the restore), and the guard ends it.
  let restoring = true;
  let beatsDuringRestore = 0;
  let endRestore: () => void = () => undefined;
  const guard = setTimeout(() => endRestore(), 10_000);
  p.restored = new Promise<void>((done) => {
    endRestore = () => {
      clearTimeout(guard);
      restoring = false;
      done();
    };
  });
  const partitions = { get: () => p, pauseIfFull: () => false } as unknown as PartitionLifecycle<Buffer, never>;
  const handled: number[] = [];
  const emitter = { handle: (_p: unknown, _t: unknown, m: KafkaMessage) => handled.push(Number(m.offset)) } as unknown as RecordEmitter<Buffer, never>;
  const runner = new BatchRunner(rt, partitions, emitter);

  let beats = 0;
  const messages = [0, 1, 2].map((i) => ({ offset: String(i), key: null, value: Buffer.from('x'), headers: {}, timestamp: '0' }) as unknown as KafkaMessage);
  const payload = {
    batch: { topic: 'in', partition: 0, messages },
    resolveOffset: () => undefined,
    heartbeat: async () => {
      beats += 1;
      if (!restoring) return;
      beatsDuringRestore += 1;
      if (beatsDuringRestore === WANTED) endRestore();
    },
    isRunning: () => true,
    isStale: () => false,
  } as unknown as EachBatchPayload;
  await runner.eachBatch(payload);
  t.is(beatsDuringRestore, WANTED, 'heartbeats while the batch waited for its restore');
  t.deepEqual(handled, [0, 1, 2], 'the batch is emitted after the restore');
  const after = beats;
  await sleep(5 * INTERVAL);
  t.is(beats, after, 'no heartbeats from the timer once no batch is in progress');
});
