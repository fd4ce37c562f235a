/**
 * A network as a source of next-byte distributions for {@link ContextMixer}: it reads a stream
 * a segment at a time (memory carried) and returns, for each byte read, its distribution of
 * the byte that follows.
 */
import * as tf from '@tensorflow/tfjs';
import { BadInputError } from '../errors.js';
import type { InfiniFormer } from '../model/model.js';
import type { OnlineLearner } from '../model/onlineLearner.js';
import type { StreamState } from '../model/state.js';
import { tidyData } from '../tidyData.js';

/** Reads a byte stream segment by segment and predicts each next byte. */
export interface NextByteScorer {
  /** Bytes per call of {@link read} at most (the model's segment length). */
  readonly segmentLength: number;
  /**
   * Reads the next `segment` of the stream (at most `segmentLength` bytes) and returns
   * `[segment.length x 256]` probabilities: row j is p(the byte after segment[j]).
   */
  read(segment: Int32Array): Float32Array;
  /** Segments the network learned from so far (0 for a frozen one). */
  readonly segmentsLearned: number;
  /** Frees what it holds. */
  dispose(): void;
}

/** Next-byte probabilities `[T x 256]` from LM logits `[1, T, V]` (softmax over bytes only). */
export function byteProbabilities(logits: tf.Tensor): Float32Array {
  return tidyData(() => {
    const t = logits.shape[1]!;
    return tf.softmax(logits.slice([0, 0, 0], [1, t, 256]).reshape([t, 256]));
  }) as Float32Array;
}

/** A frozen byte-level model over one stream (weights never change). */
export function frozenScorer(model: InfiniFormer, seed = 0): NextByteScorer {
  if (model.config.vocabSize < 256) throw new BadInputError('model', `a byte-level model needs vocabSize >= 256, got ${model.config.vocabSize}`);
  const state = model.createState(seed);
  return {
    segmentLength: model.config.segmentLength,
    segmentsLearned: 0,
    read(segment) {
      if (segment.length === 0 || segment.length > model.config.segmentLength) throw new BadInputError('segment', `expected 1..${model.config.segmentLength} bytes, got ${segment.length}`);
      const logits = model.run([state], [segment]);
      try {
        return byteProbabilities(logits);
      } finally {
        logits.dispose();
      }
    },
    dispose: () => state.dispose(),
  };
}

/**
 * A byte-level model that learns the stream it reads (prequential, through `learner`): each
 * segment is scored with the weights as they are, then learned from. Only whole segments are
 * learned from; a shorter final one is scored.
 */
export function learningScorer(learner: OnlineLearner, state: StreamState): NextByteScorer {
  const model = learner.model;
  if (model.config.vocabSize < 256) throw new BadInputError('model', `a byte-level model needs vocabSize >= 256, got ${model.config.vocabSize}`);
  const V = model.config.vocabSize;
  return {
    segmentLength: model.config.segmentLength,
    get segmentsLearned() {
      return learner.stats().segmentsLearned;
    },
    read(segment) {
      if (segment.length === 0 || segment.length > model.config.segmentLength) throw new BadInputError('segment', `expected 1..${model.config.segmentLength} bytes, got ${segment.length}`);
      const { logProbs } = learner.scoreThenLearn([state], [segment]).scores[0]!;
      const out = new Float32Array(segment.length * 256);
      for (let j = 0; j < segment.length; j++) for (let b = 0; b < 256; b++) out[j * 256 + b] = Math.exp(logProbs[j * V + b]!);
      return out;
    },
    dispose: () => state.dispose(),
  };
}
