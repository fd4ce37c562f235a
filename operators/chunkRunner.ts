/**
 * One forward pass of {@link infiniteFormer} over a group of keys' chunks (same segment position,
 * same length): scoring, or score-then-learn for whole segments when a learner is on; the states
 * are committed and the per-token outputs built. No RxJS, no queues.
 *
 * With a learner in segment mode (`hold`), a partial chunk is scored ahead but not run into the
 * state: its tokens are held ({@link KeyState.held}) and run again, with the rest of their
 * segment, through the learner. So the learner steps on every segment of every key whole, once,
 * whatever cut the input into chunks (a `maxDelayMs` timer, a checkpoint, a restart): without
 * this, a segment cut by timing was never learned from, and how much was learned depended on
 * the timing (measured: restarted runs learned 5-12% fewer segments of the same records).
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
  /** Partial chunks are held (scored ahead, run into the state with the rest of their segment). */
  readonly hold: boolean;

  constructor(
    private readonly model: InfiniFormer,
    private readonly learner: OnlineLearner | undefined,
    private readonly emitHidden: boolean,
    segmentMode = false,
    /** The most segments one learning step takes (a larger group steps in slices, in turn). */
    private readonly segmentsPerStep = 1,
  ) {
    this.hold = learner !== undefined && !emitHidden && segmentMode;
  }

  /**
   * Runs the group (every key at the same state position; its held tokens plus its new ones of
   * one length for all) and returns each key's outputs in order; the states advance. Throws when
   * the model does.
   */
  run(group: readonly ChunkItem[]): ModelOutput[] {
    const V = this.model.config.vocabSize;
    const width = this.model.config.width;
    if (!this.hold) this.settleHeld(group);
    const states = group.map((i) => i.ks.state);
    // Rows of a key's forward: its held tokens, then its new ones (as many rows for every key).
    const chunks = group.map((i) => [...(i.ks.held ?? []), ...i.tokens.map((p) => p.token)]);
    const rows = chunks[0]!.length;
    const before = states.map((s) => s.tokensSeen);
    const { lp, hidden, ahead } = this.forward(states, chunks);
    this.forwardPasses++;
    // Row-major [b, rows, V] and [b, rows, e]: row i * rows + H + j is key i's j-th new token (H held).
    const outputs: ModelOutput[] = [];
    group.forEach((item, i) => {
      const H = rows - item.tokens.length;
      this.tokens += item.tokens.length;
      let prev = H > 0 ? lp.slice((i * rows + H - 1) * V, (i * rows + H) * V) : item.ks.nextLogProbs;
      item.tokens.forEach((p, j) => {
        const row = i * rows + H + j;
        const next = lp.slice(row * V, (row + 1) * V);
        const rec: ModelOutput = {
          key: item.key,
          index: before[i]! + H + j,
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
      if (ahead) item.ks.held = chunks[i]!;
      else delete item.ks.held;
    });
    return outputs;
  }

  /**
   * Log-probabilities `[b, T, V]` (row-major) and hidden states of a group's chunks. A whole
   * segment goes through the learner; a partial chunk is committed, or (`hold`) scored ahead:
   * `ahead`, the states did not move.
   */
  private forward(states: StreamState[], chunks: number[][]): { lp: Float32Array; hidden: Float32Array | undefined; ahead?: boolean } {
    const T = chunks[0]!.length;
    const V = this.model.config.vocabSize;
    const whole = T === this.model.config.segmentLength && states.every((st) => st.pos === 0);
    if (this.learner !== undefined && !this.emitHidden && whole) {
      const lp = new Float32Array(states.length * T * V);
      // One step per slice: how many steps are taken depends on the segments, not on how many
      // keys' segments were ready at once (segmentsPerStep 1).
      for (let s = 0; s < states.length; s += this.segmentsPerStep) {
        const r = this.learner.scoreThenLearn(states.slice(s, s + this.segmentsPerStep), chunks.slice(s, s + this.segmentsPerStep));
        if (r.learned) this.segmentsLearned += r.scores.length;
        r.scores.forEach((sc, i) => lp.set(sc.logProbs, (s + i) * T * V));
      }
      return { lp, hidden: undefined };
    }
    if (this.hold && states.every((st) => st.pos === 0)) return { lp: this.scoreAhead(states, chunks), hidden: undefined, ahead: true };
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

  /**
   * `hold`: scores a partial segment from its start without running it into the states (`run`
   * holds its tokens). The segment-start caches are rebuilt first: made with the weights of an
   * earlier call, they would score with weights other keys' steps have since changed (and a
   * state restored from bytes, which rebuilds them, would score differently).
   */
  private scoreAhead(states: StreamState[], chunks: number[][]): Float32Array {
    for (const s of states) s.clearDerived();
    return tidyData(() => tf.logSoftmax(this.model.forwardChunk(states, chunks).logits)) as Float32Array;
  }

  /** Without `hold` (e.g. a state saved by a learning run, restored without one): runs the held tokens into the states first (rare: one pass per key). */
  private settleHeld(group: readonly ChunkItem[]): void {
    for (const item of group) {
      if (item.ks.held === undefined || item.ks.held.length === 0) continue;
      this.model.run([item.ks.state], [item.ks.held]).dispose();
      delete item.ks.held;
    }
  }
}
