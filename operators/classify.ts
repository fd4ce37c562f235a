import { Observable, type OperatorFunction } from 'rxjs';
import * as tf from '@tensorflow/tfjs';
import { BadConfigError, BadInputError } from '../src/errors.js';
import { KeyedState } from './keyedWindow.js';

/** A classifier head over final hidden states: an `InfiniFormer` with `numLabels > 0` is one. */
export interface ClassifierHead {
  /** Hidden states `[b, T, e]` -> label logits per event `[b, T, C]` or per window (mean over T) `[b, C]`. */
  classify(hidden: tf.Tensor, per?: 'event' | 'window'): tf.Tensor;
  /** Sizes: model width e and number of labels C. */
  readonly config: { readonly width: number; readonly numLabels: number };
}

/** Options of {@link classify}. */
export interface ClassifyOptions {
  /** `'event'` (default): a label per token; `'window'`: a label per window of a key's tokens. */
  per?: 'event' | 'window';
  /** Label names, one per class (default the class numbers as strings). */
  labels?: readonly string[];
  /**
   * Per window: `'record'` (default) ends a window at the last token of each input record
   * (`endOfRecord`, e.g. a log line); a number ends it every that many tokens of the key.
   */
  window?: number | 'record';
  /** Per window: a window that reaches this many tokens is classified as it is. Default 4096. */
  maxWindow?: number;
  /** Per window: bound on keys with an open window (least recently seen dropped first). Default 10,000. */
  maxKeys?: number;
}

/** What {@link classify} reads: a token output of {@link infiniteFormer} run with `emitHidden: true`. */
export interface HiddenRecord {
  key: string;
  index: number;
  /** Final hidden state `[e]`. */
  hidden?: Float32Array;
  endOfRecord?: boolean;
  source?: unknown;
}

/** A label with the probabilities of every class. */
export interface Classification {
  /** The most probable class's name. */
  label: string;
  /** Its number. */
  labelIndex: number;
  /** Softmax probabilities of every class, in class order. */
  scores: number[];
}

/** One window's label (`per: 'window'`). */
export interface WindowClassification extends Classification {
  key: string;
  /** Stream index of the window's first and last token. */
  first: number;
  last: number;
  /** Number of tokens in the window. */
  size: number;
  /** `source` of the window's last token. */
  source?: unknown;
}

/**
 * Labels and class probabilities from the model's classifier head over the hidden states that
 * {@link infiniteFormer} emits with `emitHidden: true`: per event (each token record comes out
 * with `label`, `labelIndex`, `scores`), or per window of a key's tokens (one
 * {@link WindowClassification} per input record, or per `window` tokens; the head averages the
 * window's hidden states, as `model.classify(hidden, 'window')` does). Open windows are
 * classified on completion. Records without a `hidden` vector of the head's width are a typed
 * error.
 *
 * @example
 * ```ts
 * lines$.pipe(tokenize(), infiniteFormer(model, { emitHidden: true }),
 *   classify(model, { per: 'window', labels: ['ok', 'error', 'attack'] }))
 *   .subscribe((w) => console.log(w.key, w.label, w.scores));
 * ```
 */
export function classify<T extends HiddenRecord>(head: ClassifierHead, options: ClassifyOptions & { per: 'window' }): OperatorFunction<T, WindowClassification>;
export function classify<T extends HiddenRecord>(head: ClassifierHead, options?: ClassifyOptions & { per?: 'event' }): OperatorFunction<T, T & Classification>;
export function classify<T extends HiddenRecord>(head: ClassifierHead, options: ClassifyOptions = {}): OperatorFunction<T, (T & Classification) | WindowClassification> {
  if (head === null || typeof head !== 'object' || typeof head.classify !== 'function' || typeof head.config !== 'object') {
    throw new BadConfigError('head', 'expected a classifier head (an InfiniFormer with numLabels > 0)');
  }
  const C = head.config.numLabels;
  const e = head.config.width;
  if (!Number.isInteger(C) || C < 1) throw new BadConfigError('head', 'has no classifier head (config.numLabels is 0)');
  const per = options.per ?? 'event';
  if (per !== 'event' && per !== 'window') throw new BadConfigError('per', `must be "event" or "window", got ${JSON.stringify(per)}`);
  const labels = options.labels;
  if (labels !== undefined && (!Array.isArray(labels) || labels.length !== C || !labels.every((l) => typeof l === 'string'))) {
    throw new BadConfigError('labels', `must be ${C} strings, one per class`);
  }
  const window = options.window ?? 'record';
  if (window !== 'record' && !(Number.isInteger(window) && window >= 1)) throw new BadConfigError('window', `must be "record" or a positive integer, got ${String(window)}`);
  const maxWindow = options.maxWindow ?? 4096;
  if (!Number.isInteger(maxWindow) || maxWindow < 1) throw new BadConfigError('maxWindow', `must be a positive integer, got ${String(maxWindow)}`);
  const maxKeys = options.maxKeys ?? 10_000;
  if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new BadConfigError('maxKeys', `must be a positive integer, got ${String(maxKeys)}`);

  /** Class probabilities of `n` hidden states through the head, and the most likely class. */
  const run = (hidden: Float32Array, n: number): Classification => {
    const probs = tf.tidy(() => tf.softmax(tf.reshape(head.classify(tf.tensor3d(hidden, [1, n, e]), per), [C])));
    const scores = Array.from(probs.dataSync());
    probs.dispose();
    let best = 0;
    for (let i = 1; i < C; i++) if (scores[i]! > scores[best]!) best = i;
    return { label: labels?.[best] ?? String(best), labelIndex: best, scores };
  };

  return (source) =>
    new Observable<(T & Classification) | WindowClassification>((subscriber) => {
      interface Open {
        parts: Float32Array[];
        first: number;
        last: number;
        source: unknown;
      }
      const open = new KeyedState<Open>(maxKeys, () => ({ parts: [], first: 0, last: 0, source: undefined }));
      const close = (key: string, w: Open): void => {
        const n = w.parts.length;
        const flat = new Float32Array(n * e);
        w.parts.forEach((p, i) => flat.set(p, i * e));
        const out: WindowClassification = { key, ...run(flat, n), first: w.first, last: w.last, size: n };
        if (w.source !== undefined) out.source = w.source;
        w.parts = [];
        subscriber.next(out);
      };
      const sub = source.subscribe({
        next(record) {
          if (subscriber.closed) return; // a synchronous source after downstream unsubscribed
          const h = record?.hidden;
          if (!(h instanceof Float32Array) || h.length !== e) {
            subscriber.error(new BadInputError('hidden', `expected a Float32Array of the head's width ${e} (run infiniteFormer with emitHidden: true), got ${h === undefined ? 'none' : `length ${(h as { length?: number }).length}`}`));
            return;
          }
          if (per === 'event') {
            subscriber.next({ ...record, ...run(h, 1) });
            return;
          }
          const w = open.get(record.key);
          if (w.parts.length === 0) w.first = record.index;
          w.parts.push(h);
          w.last = record.index;
          w.source = record.source;
          const full = window === 'record' ? record.endOfRecord === true : w.parts.length >= window;
          if (full || w.parts.length >= maxWindow) close(record.key, w);
        },
        error: (err: unknown) => subscriber.error(err),
        complete() {
          for (const [key, w] of [...open.entries()]) {
            if (subscriber.closed) return;
            if (w.parts.length > 0) close(key, w);
          }
          subscriber.complete();
        },
      });
      return () => {
        sub.unsubscribe();
        open.clear();
      };
    });
}
