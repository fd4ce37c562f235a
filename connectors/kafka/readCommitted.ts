/**
 * Correct read_committed filtering for kafkajs 2.2 consumers.
 *
 * A read_committed fetch returns the partition's records up to the last stable offset together
 * with the aborted transactions that overlap them, as (producerId, firstOffset) pairs, which the
 * broker lists in the order of their abort markers. kafkajs (`consumer/filterAbortedMessages.js`)
 * walks the records and starts ignoring a producer when a record reaches the *head* of that list,
 * one entry per record. When transactions interleave (one starts, a second starts and aborts,
 * then the first aborts, as happens when a new owner fences several partitions' producers at
 * once), the list is not sorted by first offset and records of an aborted transaction are handed
 * to the application as if committed. The exactly-once zombie test saw exactly that: 18 outputs
 * of an aborted transaction read back by a read_committed consumer, and the changelog restore
 * uses the same filter.
 *
 * The fix decides abortion the way the Java consumer does (aborted transactions in first-offset
 * order, every one that starts at or before a record is active from it on, a producer's abort
 * marker ends its) and hands kafkajs an equivalent input: each aborted record is moved to a
 * sentinel producer id, and the aborted-transaction list becomes that sentinel alone, so
 * kafkajs's own filter drops exactly those records. Records are never removed from the fetch
 * response (kafkajs advances its fetch position from the last record it decoded).
 */
import { createRequire } from 'node:module';

/** A record as the kafkajs fetch decoder returns it (the fields the filter reads). */
export interface FetchedRecord {
  offset: string;
  key: Buffer | null;
  isControlRecord?: boolean;
  batchContext: { producerId: string; inTransaction: boolean; [field: string]: unknown };
}

/** One aborted transaction of a fetch response. */
export interface AbortedTransaction {
  producerId: string;
  firstOffset: string;
}

/** The producer id given to records of aborted transactions (no real producer has a negative id). */
export const ABORTED_PRODUCER_ID = '-424242';

// Control record key: version (int16) then type (int16); type 0 is ABORT, 1 COMMIT.
const isAbortMarker = (record: FetchedRecord): boolean =>
  record.isControlRecord === true && record.key !== null && record.key.length >= 4 && record.key.readInt16BE(2) === 0;

/**
 * The records of `records` (in offset order) that belong to an aborted transaction, by index.
 * Pure; the reference semantics of read_committed.
 */
export function abortedRecordIndices(records: readonly FetchedRecord[], aborted: readonly AbortedTransaction[]): Set<number> {
  const pending = aborted.map((a) => ({ producerId: a.producerId, first: BigInt(a.firstOffset) })).sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const active = new Set<string>();
  const result = new Set<number>();
  let next = 0;
  records.forEach((record, i) => {
    const offset = BigInt(record.offset);
    for (; next < pending.length && pending[next]!.first <= offset; next++) active.add(pending[next]!.producerId);
    const { producerId, inTransaction } = record.batchContext;
    if (record.isControlRecord === true) {
      if (isAbortMarker(record)) active.delete(producerId);
      return;
    }
    if (inTransaction && active.has(producerId)) result.add(i);
  });
  return result;
}

/**
 * Rewrites one partition of a fetch response so that kafkajs's filter drops exactly the records
 * of aborted transactions (see the module comment). Returns how many records were marked.
 */
export function markAbortedRecords(partition: { messages: FetchedRecord[]; abortedTransactions?: AbortedTransaction[] | null }): number {
  const aborted = partition.abortedTransactions;
  if (!aborted || aborted.length === 0) return 0;
  const indices = abortedRecordIndices(partition.messages, aborted);
  for (const i of indices) {
    const record = partition.messages[i] as FetchedRecord;
    record.batchContext = { ...record.batchContext, producerId: ABORTED_PRODUCER_ID };
  }
  partition.abortedTransactions = [{ producerId: ABORTED_PRODUCER_ID, firstOffset: '-1' }];
  return indices.size;
}

interface FetchResponseModule {
  decode: (raw: Buffer) => Promise<{ responses: Array<{ partitions: Array<{ messages: FetchedRecord[]; abortedTransactions?: AbortedTransaction[] | null }> }> }>;
  infiniformerReadCommittedFix?: true;
}

/**
 * Installs the fix into the kafkajs fetch response decoders (versions 4 to 11, those that carry
 * aborted transactions). Idempotent, and effective whenever it runs before a fetch: kafkajs looks
 * the decoder up on the module object for every request. The Kafka connectors call it on import.
 */
export function installReadCommittedFix(): void {
  const require = createRequire(import.meta.url);
  for (let version = 4; version <= 11; version++) {
    let module: FetchResponseModule;
    try {
      module = require(`kafkajs/src/protocol/requests/fetch/v${version}/response.js`) as FetchResponseModule;
    } catch {
      continue; // another kafkajs layout: nothing to fix here
    }
    if (module.infiniformerReadCommittedFix === true) continue;
    const decode = module.decode;
    module.decode = async (raw: Buffer) => {
      const response = await decode(raw);
      for (const topic of response.responses) for (const partition of topic.partitions) markAbortedRecords(partition);
      return response;
    };
    module.infiniformerReadCommittedFix = true;
  }
}

installReadCommittedFix();
