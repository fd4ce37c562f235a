import type { IHeaders, Message, Producer } from 'kafkajs';
import { Observable, type OperatorFunction } from 'rxjs';
import { BadConfigError, ConnectorError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { DEFAULT_RETRY, kafkaClient, kafkaFailure, type KafkaConnection } from './client.js';
import type { OutputTransaction } from './transactions.js';

const log = createLogger('infiniformer:kafka:sink');

type Bytes = string | Buffer | null;

export interface ToKafkaOptions<T> extends KafkaConnection {
  /** Output topic. */
  topic: string;
  /** The record key of an item. Default: `item.key` when it is a string or Buffer, else null. */
  key?: (item: T) => Bytes;
  /** The record value of an item. Default: `item.value` when it is a string or Buffer, else JSON of the item. */
  value?: (item: T) => Bytes;
  /** Headers of an item. Default none. */
  headers?: (item: T) => IHeaders | undefined;
  /** Called once an item is durably written (acks = all). Default: `item.ack()` when the item has one. */
  onDelivered?: (item: T) => void;
  /** Send at most this many items per request. Default 1000. */
  maxBatch?: number;
  /** Wait this long for a batch to fill. Default 5 ms. */
  lingerMs?: number;
  /** Idempotent producer (no duplicates from producer retries). Default true. */
  idempotent?: boolean;
  /**
   * Exactly-once mode (with `fromKafka({ exactlyOnce })`): every item is produced inside the open
   * transaction of the input partition it came from, which commits with that partition's offset.
   * An item without a transaction errors the stream. Default false.
   */
  exactlyOnce?: boolean;
  /** The transaction of an item in exactly-once mode. Default: `item.transaction` (a {@link KafkaRecord}'s). */
  transaction?: (item: T) => OutputTransaction | undefined;
}

/** What the sink emits per delivered batch. */
export interface DeliveryReport<T> {
  items: T[];
  /** Time the batch took to be acknowledged by the broker, ms. */
  ms: number;
}

function defaultBytes(field: 'key' | 'value') {
  return (item: unknown): Bytes => {
    if (item !== null && typeof item === 'object' && field in item) {
      const v = (item as Record<string, unknown>)[field];
      if (typeof v === 'string' || Buffer.isBuffer(v) || v === null) return v;
    }
    return field === 'value' ? JSON.stringify(item) : null;
  };
}

function defaultTransaction(item: unknown): OutputTransaction | undefined {
  if (item !== null && typeof item === 'object' && 'transaction' in item) {
    const t = (item as { transaction: unknown }).transaction;
    if (t !== null && typeof t === 'object' && typeof (t as OutputTransaction).send === 'function') return t as OutputTransaction;
  }
  return undefined;
}

function defaultDelivered(item: unknown): void {
  if (item !== null && typeof item === 'object' && 'ack' in item) {
    const ack = (item as { ack: unknown }).ack;
    if (typeof ack === 'function') (ack as () => void)();
  }
}

/**
 * Produces every item to `topic` with an idempotent producer, in batches (up to `maxBatch`, after
 * at most `lingerMs`), one request at a time so order is kept. After a batch is acknowledged by
 * the broker each item's `onDelivered` runs — by default `item.ack()`, which lets
 * {@link fromKafka} commit the input offsets the outputs came from. A send that still fails after
 * the client's retries errors the stream with a retriable {@link ConnectorError}; nothing
 * unacknowledged is committed, so a restart re-reads it. With `exactlyOnce: true` items are
 * produced inside their input partition's transaction (`item.transaction`) instead.
 *
 * @example
 * ```ts
 * // Exactly-once read-process-write: outputs, state snapshots and offsets commit together.
 * const source = fromKafka({ groupId: 'scorer', topics: ['logs'], exactlyOnce: { transactionalId: 'scorer' } });
 * source
 *   .pipe(
 *     map((r) => ({ key: r.key, value: score(r.value), ack: r.ack, transaction: r.transaction })),
 *     toKafka({ topic: 'scores', exactlyOnce: true }),
 *   )
 *   .subscribe();
 * ```
 */
export function toKafka<T>(options: ToKafkaOptions<T>): OperatorFunction<T, DeliveryReport<T>> {
  if (!options.topic) throw new BadConfigError('topic', 'an output topic is needed');
  const maxBatch = options.maxBatch ?? 1000;
  const lingerMs = options.lingerMs ?? 5;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new BadConfigError('maxBatch', `must be a positive integer, got ${maxBatch}`);
  const keyOf = options.key ?? (defaultBytes('key') as (item: T) => Bytes);
  const valueOf = options.value ?? (defaultBytes('value') as (item: T) => Bytes);
  const toMessage = (item: T): Message => ({ key: keyOf(item), value: valueOf(item), headers: options.headers?.(item) });
  const delivered = options.onDelivered ?? defaultDelivered;
  const exactlyOnce = options.exactlyOnce ?? false;
  const transactionOf = options.transaction ?? (defaultTransaction as (item: T) => OutputTransaction | undefined);

  /** Exactly-once: the batch's items in runs that share a transaction, order kept. */
  const sendTransactional = async (items: T[]) => {
    let run: T[] = [];
    let current: OutputTransaction | undefined;
    const flushRun = async () => {
      if (run.length === 0 || current === undefined) return;
      await current.send(options.topic, run.map(toMessage));
      run = [];
    };
    for (const item of items) {
      const transaction = transactionOf(item);
      if (transaction === undefined) throw new ConnectorError('exactly-once toKafka got an item without a transaction (pass record.transaction along)', { retriable: false });
      if (transaction !== current) {
        await flushRun();
        current = transaction;
      }
      run.push(item);
    }
    await flushRun();
  };

  return (source) =>
    new Observable<DeliveryReport<T>>((subscriber) => {
      // Exactly-once sends go through the source's per-partition transactional producers.
      const producer: Producer | null = exactlyOnce
        ? null
        : kafkaClient(options).producer({
            idempotent: options.idempotent ?? true,
            maxInFlightRequests: options.idempotent === false ? 5 : 1,
            retry: options.retry ?? DEFAULT_RETRY,
          });
      const connected = producer?.connect() ?? Promise.resolve();
      // Awaited by the first send, which reports the failure; not an unhandled rejection before it.
      connected.catch(() => undefined);
      let pending: T[] = [];
      let timer: ReturnType<typeof setTimeout> | undefined;
      let chain: Promise<void> = Promise.resolve();
      let failed = false;
      let sourceDone = false;
      let inFlightBatches = 0;

      const finishIfDone = () => {
        if (sourceDone && inFlightBatches === 0 && pending.length === 0 && !failed) subscriber.complete();
      };

      const flush = () => {
        if (timer !== undefined) {
          clearTimeout(timer);
          timer = undefined;
        }
        if (pending.length === 0) return;
        const items = pending;
        pending = [];
        inFlightBatches++;
        chain = chain.then(async () => {
          if (failed) return;
          const started = Date.now();
          try {
            await connected;
            if (producer === null) await sendTransactional(items);
            else {
              await producer.send({ topic: options.topic, acks: -1, messages: items.map(toMessage) });
            }
          } catch (error) {
            failed = true;
            subscriber.error(kafkaFailure(`producing to ${options.topic} failed`, error, options));
            return;
          }
          for (const item of items) delivered(item);
          inFlightBatches--;
          subscriber.next({ items, ms: Date.now() - started });
          finishIfDone();
        });
      };

      const subscription = source.subscribe({
        next: (item) => {
          pending.push(item);
          if (pending.length >= maxBatch) flush();
          else if (timer === undefined) timer = setTimeout(flush, lingerMs);
        },
        error: (error: unknown) => {
          flush();
          void chain.then(() => {
            if (!failed) subscriber.error(error);
          });
        },
        complete: () => {
          sourceDone = true;
          flush();
          finishIfDone();
        },
      });

      return () => {
        subscription.unsubscribe();
        if (timer !== undefined) clearTimeout(timer);
        void chain.then(() => producer?.disconnect()).catch((error: unknown) => log.warn('producer disconnect failed', { error: String(error) }));
      };
    });
}
