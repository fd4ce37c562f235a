/**
 * One forward pass of {@link infiniteFormer} over a group of keys' chunks (same segment position,
 * same length): scoring, or score-then-learn for whole segments when a learner is on; the states
 * are committed and the per-token outputs built. No RxJS, no queues.
 */
import * as tf from '@tensorflow/tfjs';
import { keepChunk, type ChunkOutput, type InfiniFormer } from '../src/model/model.js';
import type { OnlineLearner } from '../src/model/onlineLearner.js';
import type { StreamState } from '../src/model/state.js';
import type { KeyState } from './keyState.js';
import type { ModelOutput } from './types.js';
import { tidyData } from '../src/tidyData.js';

/** One token as it waits in a key's queue. */
export interface ChunkToken {
  token: number;
  source: unknown;
  end: boolean;
}

/** One key's part of a group. */
export interface ChunkItem {
  key: string;
  ks: KeyState;
  tokens: readonly ChunkToken[];
}

export class ChunkRunner {
  forwardPasses = 0;
  tokens = 0;
  segmentsLearned = 0;

  constructor(
    private readonly model: InfiniFormer,
    private readonly learner: OnlineLearner | undefined,
    private readonly emitHidden: boolean,
  ) {}

  /** Runs the group (all chunks of one length) and returns each key's outputs in order; the states advance. Throws when the model does. */
  run(group: readonly ChunkItem[]): ModelOutput[] {
    const V = this.model.config.vocabSize;
    const width = this.model.config.width;
    const T = group[0]!.tokens.length;
    const states = group.map((i) => i.ks.state);
    const before = states.map((s) => s.tokensSeen);
    const { lp, hidden } = this.forward(states, group.map((i) => i.tokens.map((p) => p.token)));
    this.forwardPasses++;
    this.tokens += group.length * T;
    // Row-major [b, T, V] and [b, T, e]: row i * T + j is key i's j-th token.
    const outputs: ModelOutput[] = [];
    group.forEach((item, i) => {
      let prev = item.ks.nextLogProbs;
      item.tokens.forEach((p, j) => {
        const row = i * T + j;
        const next = lp.slice(row * V, (row + 1) * V);
        const rec: ModelOutput = {
          key: item.key,
          index: before[i]! + j,
          token: p.token,
          surprisal: prev === undefined ? Number.NaN : -prev[p.token]! / Math.LN2,
          nextLogProbs: next,
          endOfRecord: p.end,
        };
        if (hidden !== undefined) rec.hidden = hidden.slice(row * width, (row + 1) * width);
        if (p.source !== undefined) rec.source = p.source;
        outputs.push(rec);
        prev = next;
      });
      item.ks.nextLogProbs = prev;
    });
    return outputs;
  }

  /** Log-probabilities `[b, T, V]` (row-major) and hidden states of a group's chunks, the states committed. */
  private forward(states: StreamState[], chunks: number[][]): { lp: Float32Array; hidden: Float32Array | undefined } {
    const T = chunks[0]!.length;
    const V = this.model.config.vocabSize;
    if (this.learner !== undefined && !this.emitHidden && T === this.model.config.segmentLength && states.every((st) => st.pos === 0)) {
      const r = this.learner.scoreThenLearn(states, chunks);
      if (r.learned) this.segmentsLearned += states.length;
      const lp = new Float32Array(states.length * T * V);
      r.scores.forEach((sc, i) => lp.set(sc.logProbs, i * T * V));
      return { lp, hidden: undefined };
    }
    let out: ChunkOutput | undefined;
    tf.tidy(() => {
      out = this.model.forwardChunk(states, chunks);
      keepChunk(out);
    });
    this.model.commit(states, out!);
    const o = out!;
    const lp = tidyData(() => tf.logSoftmax(o.logits)) as Float32Array;
    const hidden = this.emitHidden ? (o.hidden.dataSync() as Float32Array) : undefined;
    tf.dispose([o.hidden, o.logits, o.kl]);
    return { lp, hidden };
  }
}
