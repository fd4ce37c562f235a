/**
 * Aligned checkpoints in exactly-once mode: each owned input partition's transaction (its
 * producer `<transactionalId>-<topic>-<partition>`, so the partition's next owner fences this
 * member) commits the partition's outputs, the changelog records of its keys and its consumed
 * offset together. Shared state (changelog records of the pseudo topic {@link SHARED_STATE_TOPIC},
 * spanning partitions) rides in the transaction of one owned partition, the carrier, which
 * commits before the others: a kill between the commits leaves the shared state newer than some
 * partitions' keys, never older (as in at-least-once mode). A member fenced for the carrier
 * (a zombie) cannot write shared state either.
 *
 * The commits take their place in each partition's transaction queue while the input is held
 * (inside `positions()`): outputs of records applied after the checkpoint go to the next
 * transaction, never into one that commits the older offset.
 */
import type { Message } from 'kafkajs';
import { createLogger } from '../../src/logger.js';
import { CHANGELOG_HEADERS } from './changelog.js';
import { SHARED_STATE_TOPIC } from './changelogStore.js';
import type { OwnedPartition, PartitionLifecycle } from './partitionLifecycle.js';
import type { SourceRuntime } from './sourceRuntime.js';
import type { AlignedCheckpoint } from './sourceTypes.js';
import { isFencedError } from './transactions.js';

const log = createLogger('infiniformer:kafka:source');

const topicOf = (m: Message): string => String((m.headers as Record<string, unknown> | undefined)?.[CHANGELOG_HEADERS.topic] ?? '');

/** A promise and its resolvers. */
function deferred<R>(): { promise: Promise<R>; resolve: (r: R) => void; reject: (e: unknown) => void } {
  let resolve!: (r: R) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<R>((a, b) => {
    resolve = a;
    reject = b;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** One checkpoint: snapshot, then every owned partition's transaction commits (the carrier first). */
export async function commitAlignedTransactions<T, S>(rt: SourceRuntime<T, S>, partitions: PartitionLifecycle<T, S>, checkpoint: AlignedCheckpoint, committed: (p: OwnedPartition<S>, position: number) => void): Promise<void> {
  const groupId = rt.options.raw.groupId;
  const snapshot = deferred<Message[]>();
  const carrierDone = deferred<boolean>();
  let commits: Array<{ p: OwnedPartition<S>; position: number; done: Promise<boolean> }> = [];
  let carrier: OwnedPartition<S> | undefined;
  const snap = checkpoint
    .snapshot(() => {
      const owned = partitions.all().filter((p) => p.tracker !== null && p.txn !== null && !p.revoked);
      carrier = owned[0];
      commits = owned.map((p) => {
        const position = p.tracker!.committable();
        const plan = async () => {
          const messages = await snapshot.promise;
          if (p !== carrier && !(await carrierDone.promise)) return null; // the shared state did not land: keys wait
          const own = messages.filter((m) => m.partition === p.partition && topicOf(m) === p.topic);
          const shared = p === carrier ? messages.filter((m) => topicOf(m) === SHARED_STATE_TOPIC) : [];
          if (own.length === 0 && shared.length === 0 && position <= p.committed && p.txn!.sent === 0) return null;
          return { offset: position, extra: { topic: checkpoint.topic, messages: [...shared, ...own] } };
        };
        return { p, position, done: p.txn!.commitWhen(groupId, p.topic, p.partition, plan) };
      });
      return new Map(commits.map((c) => [c.p.id, c.position]));
    })
    .then(
      (s) => {
        snapshot.resolve([...s.messages, ...(s.seal ?? [])]); // one transaction: the order inside it does not matter
        return s;
      },
      (error: unknown) => {
        snapshot.reject(error);
        carrierDone.resolve(false);
        throw error;
      },
    );
  const settle = async (c: (typeof commits)[number]): Promise<boolean> => {
    try {
      if (await c.done) committed(c.p, c.position);
      return true;
    } catch (error) {
      if (isFencedError(error)) partitions.fencedOut(c.p);
      else if (!c.p.revoked) rt.fail(error, `exactly-once checkpoint of ${c.p.id} failed`);
      return false;
    }
  };
  let s: Awaited<typeof snap>;
  try {
    s = await snap;
  } catch (error) {
    log.warn('checkpoint failed; nothing committed, retried at the next tick', { error: String(error) });
    await Promise.all(commits.map((c) => c.done.catch(() => undefined)));
    return;
  }
  const first = commits.find((c) => c.p === carrier);
  const carried = first === undefined ? true : await settle(first);
  carrierDone.resolve(carried);
  await Promise.all(commits.filter((c) => c !== first).map(settle));
  // The shared state and keys are durable when the carrier committed (other partitions' keys
  // that did not commit are written again next time: they count as changed until then).
  if (carried && (first !== undefined || [...s.messages, ...(s.seal ?? [])].every((m) => topicOf(m) !== SHARED_STATE_TOPIC))) {
    s.written();
    rt.stats.snapshotsWritten += s.messages.length + (s.seal?.length ?? 0);
    rt.stats.transactions++;
  }
}
