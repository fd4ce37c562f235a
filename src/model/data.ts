/**
 * Training data as segments: each call to `next()` gives one segment of L tokens for each of b
 * parallel streams, in stream order, so the trainer can carry each stream's memory from one
 * segment to the next. Sources are deterministic given their state, which checkpoints save.
 */
import { BadConfigError, BadInputError } from '../errors.js';

/** One training step's worth of data: b rows of L tokens. */
export interface SegmentBatch {
  /** Input tokens, one row of L per stream. */
  inputs: Int32Array[];
  /** Target tokens (usually the inputs shifted by one), one row of L per stream. */
  targets: Int32Array[];
  /** Loss weights per position (default all 1); e.g. 1 only on the answer of a task. */
  weights?: Float32Array[];
  /**
   * Classifier labels per position (one row of L per stream; -1 = unlabelled), for a model with
   * a classifier head (`numLabels` > 0).
   */
  labels?: Int32Array[];
  /** Classifier label of each stream's whole segment (per window; -1 = unlabelled). */
  windowLabels?: Int32Array;
  /** Streams whose state restarts before this segment (a new sequence begins). */
  reset?: boolean[];
}

/** A deterministic, resumable source of segment batches. */
export interface SegmentSource {
  /** Number of parallel streams b. */
  readonly numStreams: number;
  /** The next segment of every stream. */
  next(): SegmentBatch;
  /** JSON-serialisable position, for checkpoints. */
  getState(): unknown;
  /** Restores a position from {@link getState}. */
  setState(state: unknown): void;
}

/** Options of {@link tokenStreamSource}. */
export interface TokenStreamOptions {
  /** Parallel streams b. */
  numStreams: number;
  /** Segment length L (the model's). */
  segmentLength: number;
  /**
   * Classifier labels aligned with `tokens` (-1 = unlabelled): the label of position j is what
   * the classifier head should say having read tokens up to j (e.g. a log line's class at its
   * newline). Default none.
   */
  labels?: ArrayLike<number>;
}

/**
 * Splits one long token sequence into `numStreams` contiguous parallel streams (Transformer-XL
 * batching): stream i reads tokens [i S, (i + 1) S) with S = floor(len / b), L at a time, the
 * targets being the next tokens. At the end of a stream every stream restarts (reset).
 */
export function tokenStreamSource(tokens: ArrayLike<number>, options: TokenStreamOptions): SegmentSource {
  const b = options.numStreams;
  const L = options.segmentLength;
  const labels = options.labels;
  if (labels !== undefined && labels.length !== tokens.length) {
    throw new BadInputError('labels', `expected one label per token (${tokens.length}), got ${labels.length}`);
  }
  if (!Number.isInteger(b) || b < 1) throw new BadConfigError('numStreams', `must be a positive integer, got ${String(b)}`);
  if (!Number.isInteger(L) || L < 1) throw new BadConfigError('segmentLength', `must be a positive integer, got ${String(L)}`);
  const perStream = Math.floor(tokens.length / b);
  const segments = Math.floor((perStream - 1) / L);
  if (segments < 1) throw new BadInputError('tokens', `${tokens.length} tokens are too few for ${b} streams of at least ${L + 1}`);
  let cursor = 0;
  return {
    numStreams: b,
    next() {
      const seg = cursor % segments;
      cursor += 1;
      const inputs: Int32Array[] = [];
      const targets: Int32Array[] = [];
      const rows: Int32Array[] = [];
      for (let i = 0; i < b; i++) {
        const start = i * perStream + seg * L;
        const inp = new Int32Array(L);
        const tgt = new Int32Array(L);
        for (let j = 0; j < L; j++) {
          inp[j] = tokens[start + j]!;
          tgt[j] = tokens[start + j + 1]!;
        }
        inputs.push(inp);
        targets.push(tgt);
        if (labels !== undefined) rows.push(Int32Array.from({ length: L }, (_, j) => labels[start + j]!));
      }
      return { inputs, targets, ...(labels === undefined ? {} : { labels: rows }), reset: new Array<boolean>(b).fill(seg === 0) };
    },
    getState: () => ({ cursor }),
    setState(state) {
      const c = (state as { cursor?: unknown } | null)?.cursor;
      if (typeof c !== 'number' || !Number.isInteger(c) || c < 0) throw new BadInputError('state', 'expected { cursor: non-negative integer }');
      cursor = c;
    },
  };
}
