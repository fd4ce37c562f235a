/**
 * Learning while streaming (prequential: test, then train). One {@link OnlineLearner} owns the
 * weights of a model that adapt to the stream; every key keeps its own {@link StreamState}
 * (held by the caller). For each batch of keys' segments the learner
 *
 * 1. scores the segment with the current weights (what users see), in a training-mode forward
 *    without dropout that runs inside the gradient tape, so the scores and the gradient come
 *    from one forward;
 * 2. takes one Adam step on those same segments (when the budget and the divergence guard
 *    allow), and only then
 * 3. commits the stream states from that same forward: memories absorbed with the weights
 *    the segment was scored with, detached as in the Trainer (truncated BPTT).
 *
 * Targets: the loss is next-token cross-entropy over the L - 1 targets inside each segment; the
 * last token's target is the next segment's first token, unknown when the step is taken, and is
 * not trained on (1/L of the signal, and no gradient across segments). It is still scored: pass
 * the previous result as `previous` and the first token's bits come from its last row.
 *
 * Only whole segments at a segment boundary (position 0, L tokens) are learned from; a partial
 * chunk (a stream's tail, or a state left mid-segment by token mode) is scored and committed
 * by the ordinary inference forward, with no step.
 */
import * as tf from '@tensorflow/tfjs';
import { BadConfigError, BadInputError, ModelFileError } from '../errors.js';
import { Adam } from './adam.js';
import type { MomentsManifest } from './adam.js';
import { crc32, fingerprint } from './checksum.js';
import { decodeWeights, encodeWeights } from './io.js';
import type { WeightEntry } from './io.js';
import { CompiledStep } from './compiledStep.js';
import type { GraphCacheStats } from '../graph/graphCache.js';
import { keepChunk } from './model.js';
import type { ChunkOutput, InfiniFormer } from './model.js';
import type { StreamState } from './state.js';
import { weightedCrossEntropy } from './loss.js';
import { tidyData } from '../tidyData.js';

/** Options of an {@link OnlineLearner}; every numeric field has a default. */
export interface OnlineLearnerOptions {
  /**
   * Constant learning rate. Default 3e-4. Measured with the default model, prequential
   * bits/byte over the first 64 KB of fail2ban logs (`npx tsx bench/online.ts lr`): frozen 6.91,
   * 3e-5 4.64, 1e-4 4.08, 3e-4 3.70, 1e-3 3.58, 3e-3 4.01; over the last quarter 3e-4 is the
   * best (3.60 against 3.70 for 1e-3), and a long stream lives in that regime.
   */
  learningRate?: number;
  /** Adam beta1, beta2, epsilon. Defaults 0.9, 0.98, 1e-8. */
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** Decoupled weight decay on matrices. Default 0. */
  weightDecay?: number;
  /** Global gradient-norm clip. Default 1; 0 disables. */
  maxGradNorm?: number;
  /** Learn on every k-th call (1 = every one). Default 1. */
  learnEvery?: number;
  /**
   * Divergence guard: a batch whose loss exceeds `spikeFactor` x the running average of the
   * losses learned from is scored but not learned from (e.g. a burst of random bytes). Default
   * 2; 0 turns the spike check off (non-finite values are always caught).
   */
  spikeFactor?: number;
  /** Half-life, in learned batches, of the running average loss. Default 32. */
  guardHalfLife?: number;
  /** Batches learned from before the spike check starts judging. Default 8. */
  guardWarmup?: number;
  /**
   * After this many consecutive spikes the current level is taken as the new normal (a lasting
   * change of the stream, not a burst). Default 1024 (128 KB at L = 128).
   */
  guardPatience?: number;
  /** Learned batches between snapshots of the last good weights. Default 64. */
  snapshotEvery?: number;
}

/** Options with every default filled in (saved with the learner). */
export type ResolvedOnlineOptions = Required<OnlineLearnerOptions>;

/** Callbacks (not saved): the caller's say on whether to learn now, e.g. "not behind". */
export interface OnlineLearnerHooks {
  shouldLearn?: () => boolean;
}

/** One key's scores for one segment (plain arrays; no tensors escape). */
export interface ScoredSegment {
  /** Natural log-probabilities of the token after each position, row-major `[t, V]`. */
  logProbs: Float32Array;
  /**
   * Surprisal in bits of each token of the segment given everything before it: `bits[j]` for
   * j >= 1 from row j - 1; `bits[0]` from the last row of `previous` (NaN without one).
   */
  bits: Float32Array;
}

/** Why a batch was not learned from. */
export type NoStepReason = 'budget' | 'hook' | 'partial' | 'spike' | 'nonFinite';

/** What {@link OnlineLearner.scoreThenLearn} returns. */
export interface OnlineResult {
  scores: ScoredSegment[];
  /** Whether a gradient step was taken after scoring. */
  learned: boolean;
  /** Set when no step was taken. */
  skipped?: NoStepReason;
  /** Mean in-segment next-token cross-entropy (nats per token) of the scoring pass; NaN for 1-token chunks. */
  loss: number;
  /** Global gradient norm before clipping (when a gradient was computed). */
  gradNorm?: number;
}

/** Counters of an {@link OnlineLearner}. */
export interface OnlineStats {
  segmentsScored: number;
  segmentsLearned: number;
  skippedByGuard: number;
  /** Times the weights were restored from the last good snapshot. */
  rollbacks: number;
  /** Adam updates taken. */
  step: number;
  /** Running average of the losses learned from (nats per token; NaN before the first). */
  runningLoss: number;
}

interface GuardState {
  average: number;
  learned: number;
  consecutiveSpikes: number;
}

interface Snapshot {
  weights: Map<string, tf.Tensor>;
  moments: Map<string, { m: tf.Tensor; v: tf.Tensor }>;
  updates: number;
}

const MAGIC = 0x4c4f4649; // "IFOL" little-endian
const FORMAT_VERSION = 1;

const DEFAULTS: ResolvedOnlineOptions = {
  learningRate: 3e-4,
  beta1: 0.9,
  beta2: 0.98,
  epsilon: 1e-8,
  weightDecay: 0,
  maxGradNorm: 1,
  learnEvery: 1,
  spikeFactor: 2,
  guardHalfLife: 32,
  guardWarmup: 8,
  guardPatience: 1024,
  snapshotEvery: 64,
};

function resolveOptions(o: OnlineLearnerOptions): ResolvedOnlineOptions {
  if (o === null || typeof o !== 'object') throw new BadConfigError('options', 'expected an object');
  const r: ResolvedOnlineOptions = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof ResolvedOnlineOptions)[]) {
    const v = o[key] ?? DEFAULTS[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new BadConfigError(key, `must be a finite number >= 0, got ${String(v)}`);
    r[key] = v;
  }
  if (r.learningRate <= 0) throw new BadConfigError('learningRate', `must be positive, got ${r.learningRate}`);
  if (r.beta1 >= 1 || r.beta2 >= 1) throw new BadConfigError('beta1', 'betas must be below 1');
  for (const key of ['learnEvery', 'guardWarmup', 'guardPatience', 'snapshotEvery'] as const) {
    if (!Number.isInteger(r[key])) throw new BadConfigError(key, `must be an integer, got ${r[key]}`);
  }
  for (const key of ['learnEvery', 'guardHalfLife', 'snapshotEvery', 'guardPatience'] as const) {
    if (r[key] < 1) throw new BadConfigError(key, `must be at least 1, got ${r[key]}`);
  }
  if (r.spikeFactor !== 0 && r.spikeFactor <= 1) throw new BadConfigError('spikeFactor', `must be above 1 (or 0 to disable), got ${r.spikeFactor}`);
  return r;
}

/** Adapts a model's weights to the streams it scores; see the module comment. */
export class OnlineLearner {
  readonly options: Readonly<ResolvedOnlineOptions>;
  private readonly adam: Adam;
  private readonly vars: tf.Variable[];
  private calls = 0;
  private counts = { segmentsScored: 0, segmentsLearned: 0, skippedByGuard: 0, rollbacks: 0 };
  private guard: GuardState = { average: NaN, learned: 0, consecutiveSpikes: 0 };
  private snapshot: Snapshot;
  private disposed = false;
  /**
   * Take the learning step as one compiled native graph ({@link CompiledStep}) when the model's
   * compiled path is on too. Default on; INFINIFORMER_COMPILED_STEP=0 turns it off (e.g. to
   * compare against the eager step).
   */
  compiled = process.env['INFINIFORMER_COMPILED_STEP'] !== '0';
  /** The compiled training step: undefined before first use, null where it does not apply. */
  private compiledRunner: CompiledStep | null | undefined;

  constructor(
    readonly model: InfiniFormer,
    options: OnlineLearnerOptions = {},
    private readonly hooks: OnlineLearnerHooks = {},
  ) {
    this.options = Object.freeze(resolveOptions(options));
    if (hooks.shouldLearn !== undefined && typeof hooks.shouldLearn !== 'function') throw new BadConfigError('shouldLearn', 'must be a function');
    this.adam = new Adam(model.params.byName, this.options);
    this.vars = [...model.params.byName.values()];
    this.snapshot = this.takeSnapshot();
  }

  /** Counters and the guard's running loss. */
  stats(): OnlineStats {
    return { ...this.counts, step: this.adam.updates, runningLoss: this.guard.average };
  }

  /** Counters of the compiled training step (undefined before its first use or where it does not apply). */
  get compiledStats(): Readonly<GraphCacheStats> | undefined {
    return this.compiledRunner?.stats;
  }

  /**
   * Scores one segment per key with the current weights, commits the states, and (budget and
   * guard permitting) takes one gradient step on the same segments. `segments[i]` continues
   * `states[i]`; all states at the same position. `previous[i]`: that key's result of the last
   * call, to score the first token.
   */
  scoreThenLearn(states: readonly StreamState[], segments: readonly ArrayLike<number>[], previous?: readonly (ScoredSegment | undefined)[]): OnlineResult {
    if (this.disposed) throw new BadInputError('learner', 'is disposed');
    this.checkPrevious(states, previous);
    const L = this.model.config.segmentLength;
    const whole = Array.isArray(segments) && segments.length > 0 && segments[0]?.length === L && Array.isArray(states) && states[0]?.pos === 0;
    let result: OnlineResult;
    if (!whole) {
      result = this.scoreOnly(states, segments, previous, 'partial');
    } else {
      const budget = this.calls % this.options.learnEvery === 0;
      const reason: NoStepReason | undefined = !budget ? 'budget' : this.hooks.shouldLearn?.() === false ? 'hook' : undefined;
      result = reason === undefined ? this.learn(states, segments, previous) : this.scoreOnly(states, segments, previous, reason);
      // Counted once the call went through: a rejected batch does not shift the budget.
      this.calls += 1;
    }
    this.counts.segmentsScored += states.length;
    return result;
  }

  private checkPrevious(states: readonly StreamState[], previous?: readonly (ScoredSegment | undefined)[]): void {
    if (previous === undefined) return;
    const V = this.model.config.vocabSize;
    if (!Array.isArray(previous) || previous.length !== (Array.isArray(states) ? states.length : -1)) {
      throw new BadInputError('previous', 'expected one entry (or undefined) per state');
    }
    previous.forEach((p, i) => {
      if (p !== undefined && !(p?.logProbs instanceof Float32Array && p.logProbs.length > 0 && p.logProbs.length % V === 0)) {
        throw new BadInputError(`previous[${i}]`, `expected a scored segment whose logProbs has a multiple of ${V} entries`);
      }
    });
  }

  /**
   * Scores without a step, by inference (the compiled forward where there is one). A whole
   * segment skipped by the hook or the budget used to run the eager training-mode forward, for
   * numbers equal bit for bit to a learned segment's; those agree to float rounding (~1e-6) and
   * cost 2-3x: with the CLI's default `--learn keep-up` a backlog, which it scores without
   * learning, ran at 45 lines/s against 97 with `--no-learn`.
   */
  private scoreOnly(states: readonly StreamState[], segments: readonly ArrayLike<number>[], previous: readonly (ScoredSegment | undefined)[] | undefined, reason: NoStepReason): OnlineResult {
    let out: ChunkOutput | undefined;
    tf.tidy(() => {
      out = this.model.forwardChunk(states, segments, { training: false });
      keepChunk(out);
    });
    return this.finish(states, segments, previous, out!, { learned: false, skipped: reason });
  }

  private learn(states: readonly StreamState[], segments: readonly ArrayLike<number>[], previous: readonly (ScoredSegment | undefined)[] | undefined): OnlineResult {
    const compiled = this.compiledStep();
    if (compiled !== undefined && compiled.applies(states)) {
      const result = this.learnCompiled(compiled, states, segments, previous);
      if (result !== undefined) return result;
    }
    const model = this.model;
    let side: ChunkOutput | undefined;
    let ce: tf.Scalar | undefined;
    const { targets, weights } = inSegmentTargets(segments);
    const { value, grads } = tf.variableGrads(() => {
      const out = model.forwardChunk(states, segments, { training: true, dropout: false });
      keepChunk(out);
      side = out;
      ce = tf.keep(weightedCrossEntropy(out.logits, targets, weights));
      return tf.add(ce, tf.mul(out.kl, model.config.klWeight)) as tf.Scalar;
    }, this.vars);
    const out = side!;
    const objective = value.dataSync()[0]!;
    const loss = ce!.dataSync()[0]!;
    tf.dispose([value, ce!]);
    try {
      if (!Number.isFinite(objective)) {
        // Only corrupt weights make a non-finite loss: restore the last good ones and score again.
        tf.dispose([out.hidden, out.logits, out.kl, ...out.layers.flatMap(layerTensors)]);
        this.rollback();
        const again = this.scoreOnly(states, segments, previous, 'nonFinite');
        this.counts.skippedByGuard += states.length;
        return again;
      }
      const step = this.step(loss, states.length, () => this.adam.gradNorm(grads), (norm) => this.adam.apply(grads, this.options.learningRate, norm));
      return this.finish(states, segments, previous, out, step);
    } finally {
      tf.dispose(Object.values(grads));
    }
  }

  /** The compiled step to use now, if any (model.compiled on native TensorFlow, no sticky sampling). */
  private compiledStep(): CompiledStep | undefined {
    if (!this.compiled || !this.model.compiled || tf.getBackend() !== 'tensorflow') return undefined;
    this.compiledRunner = CompiledStep.refresh(this.model, this.compiledRunner);
    return this.compiledRunner ?? undefined;
  }

  /**
   * {@link learn} through the compiled step: one native call computes the scores, the gradient
   * and the would-be update; the guard then takes or drops the update. Undefined when the batch
   * reaches not every variable (the eager step handles it).
   */
  private learnCompiled(compiled: CompiledStep, states: readonly StreamState[], segments: readonly ArrayLike<number>[], previous: readonly (ScoredSegment | undefined)[] | undefined): OnlineResult | undefined {
    this.model.checkTrainingChunk(states, segments);
    const res = compiled.run(states, segments, this.vars, this.adam.fusedInputs(), this.options);
    if (res === undefined) return undefined;
    const { out, weights, m, v } = res;
    const [objective, loss, norm] = res.scalars.dataSync() as Float32Array;
    res.scalars.dispose();
    let taken = false;
    try {
      if (!Number.isFinite(objective!)) {
        tf.dispose([out.hidden, out.logits, out.kl, ...out.layers.flatMap(layerTensors)]);
        this.rollback();
        const again = this.scoreOnly(states, segments, previous, 'nonFinite');
        this.counts.skippedByGuard += states.length;
        return again;
      }
      const step = this.step(loss!, states.length, () => norm!, () => {
        this.vars.forEach((x, i) => x.assign(weights[i]!));
        this.adam.acceptFused(m, v);
        taken = true;
      });
      return this.finish(states, segments, previous, out, step);
    } finally {
      tf.dispose(weights);
      if (!taken) tf.dispose([m, v]);
    }
  }

  /**
   * The guarded Adam step on a batch of `b` segments with in-segment loss `loss`: `gradNorm`
   * gives the gradient's norm, `apply(norm)` takes the update. Returns what happened.
   */
  private step(loss: number, b: number, gradNorm: () => number, apply: (norm: number) => void): Pick<OnlineResult, 'learned' | 'skipped' | 'gradNorm'> {
    const g = this.guard;
    const o = this.options;
    const spike = o.spikeFactor > 0 && g.learned >= o.guardWarmup && loss > o.spikeFactor * g.average;
    // Patience ran out: a lasting change of the stream, whose level becomes the normal one.
    const newNormal = spike && g.consecutiveSpikes + 1 >= o.guardPatience;
    if (spike && !newNormal) {
      g.consecutiveSpikes += 1;
      this.counts.skippedByGuard += b;
      return { learned: false, skipped: 'spike' };
    }
    const norm = gradNorm();
    if (!Number.isFinite(norm)) {
      this.counts.skippedByGuard += b;
      return { learned: false, skipped: 'nonFinite', gradNorm: norm };
    }
    apply(norm);
    if (!this.weightsFinite()) {
      this.rollback();
      return { learned: false, skipped: 'nonFinite', gradNorm: norm };
    }
    const alpha = 1 - Math.pow(0.5, 1 / o.guardHalfLife);
    g.average = g.learned === 0 || newNormal ? loss : g.average + alpha * (loss - g.average);
    g.learned += 1;
    g.consecutiveSpikes = 0;
    this.counts.segmentsLearned += b;
    if (g.learned % o.snapshotEvery === 0) this.replaceSnapshot();
    return { learned: true, gradNorm: norm };
  }

  /** Reads the scores, commits the states, frees the forward's tensors. */
  private finish(
    states: readonly StreamState[],
    segments: readonly ArrayLike<number>[],
    previous: readonly (ScoredSegment | undefined)[] | undefined,
    out: ChunkOutput,
    how: Pick<OnlineResult, 'learned' | 'skipped' | 'gradNorm'>,
  ): OnlineResult {
    const [b, t, V] = out.logits.shape as [number, number, number];
    const logp = tidyData(() => tf.logSoftmax(out.logits)) as Float32Array;
    this.model.commit(states, out);
    tf.dispose([out.hidden, out.logits, out.kl]);
    let nats = 0;
    const scores = Array.from({ length: b }, (_, i): ScoredSegment => {
      const logProbs = logp.slice(i * t * V, (i + 1) * t * V);
      const seg = segments[i]!;
      const bits = new Float32Array(t);
      const prev = previous?.[i]?.logProbs;
      bits[0] = prev === undefined ? NaN : -prev[prev.length - V + seg[0]!]! / Math.LN2;
      for (let j = 1; j < t; j++) {
        const lp = logProbs[(j - 1) * V + seg[j]!]!;
        bits[j] = -lp / Math.LN2;
        nats -= lp;
      }
      return { logProbs, bits };
    });
    const loss = t > 1 ? nats / (b * (t - 1)) : NaN;
    return { scores, loss, ...how };
  }

  private weightsFinite(): boolean {
    // x * 0 is 0 for every finite x and NaN for NaN and +-Infinity: one read-back for all weights.
    return tf.tidy(() => tf.addN(this.vars.map((v) => tf.sum(tf.mul(v, 0)))).dataSync()[0] === 0);
  }

  private takeSnapshot(): Snapshot {
    const weights = new Map([...this.model.params.byName].map(([k, v]) => [k, tf.clone(v) as tf.Tensor]));
    return { weights, moments: this.adam.cloneMoments(), updates: this.adam.updates };
  }

  private replaceSnapshot(): void {
    const next = this.takeSnapshot();
    disposeSnapshot(this.snapshot);
    this.snapshot = next;
  }

  /** Restores weights and Adam state from the last good snapshot. */
  private rollback(): void {
    for (const [k, v] of this.model.params.byName) v.assign(this.snapshot.weights.get(k)!);
    this.adam.restoreMoments(this.snapshot.moments, this.snapshot.updates);
    this.counts.rollbacks += 1;
  }

  /** Frees the optimizer state and snapshot (not the model, not the stream states). */
  dispose(): void {
    if (this.disposed) return;
    this.adam.clear();
    disposeSnapshot(this.snapshot);
    this.compiledRunner?.dispose();
    this.disposed = true;
  }

  // ---- persistence ----

  /**
   * Everything needed to continue exactly: weights, Adam moments and step, the last good
   * snapshot, counters, guard state and options. Stream states are saved separately
   * (`state.serialize()`). Layout: magic, version, config fingerprint, JSON length, JSON,
   * float32 blocks, CRC-32 of all before it.
   */
  saveState(): Uint8Array {
    if (this.disposed) throw new BadInputError('learner', 'is disposed');
    const blocks: [string, Iterable<[string, tf.Tensor]>][] = [
      ['weights', this.model.params.byName],
      ['snapshotWeights', this.snapshot.weights],
    ];
    const encoded = blocks.map(([name, named]) => ({ name, ...encodeWeights(named) }));
    const moments = this.adam.encode();
    const snapMoments = encodeWeights([...this.snapshot.moments].flatMap(([k, m]): [string, tf.Tensor][] => [[`m/${k}`, m.m], [`v/${k}`, m.v]]));
    encoded.push({ name: 'moments', ...moments }, { name: 'snapshotMoments', ...snapMoments });
    let offset = 0;
    const manifest: Record<string, BlockManifest> = {};
    for (const e of encoded) {
      manifest[e.name] = { offset, byteLength: e.bytes.length, crc32: crc32(e.bytes), tensors: e.tensors };
      offset += e.bytes.length;
    }
    const meta: SavedMeta = {
      options: this.options,
      calls: this.calls,
      counts: this.counts,
      guard: this.guard,
      updates: this.adam.updates,
      snapshotUpdates: this.snapshot.updates,
      blocks: manifest,
    };
    const json = new TextEncoder().encode(JSON.stringify(meta));
    const bytes = new Uint8Array(16 + json.length + offset + 4);
    const view = new DataView(bytes.buffer);
    [MAGIC, FORMAT_VERSION, fingerprint(this.model.config), json.length].forEach((w, i) => view.setUint32(4 * i, w, true));
    bytes.set(json, 16);
    let o = 16 + json.length;
    for (const e of encoded) {
      bytes.set(e.bytes, o);
      o += e.bytes.length;
    }
    view.setUint32(o, crc32(bytes.subarray(0, o)), true);
    return bytes;
  }

  /**
   * A learner continuing from {@link saveState}: writes the saved weights into `model` (same
   * config) and restores the optimizer, snapshot, counters and guard. Options come from the
   * bytes; hooks are given again. Corrupt or foreign bytes are a {@link ModelFileError}.
   */
  static restore(model: InfiniFormer, bytes: Uint8Array, hooks: OnlineLearnerHooks = {}): OnlineLearner {
    const { meta, data } = parseSaved(model, bytes);
    const block = (name: string): { bytes: Uint8Array; manifest: BlockManifest } => {
      const m = meta.blocks[name];
      if (m === undefined || !Number.isInteger(m.offset) || m.offset < 0 || m.offset + m.byteLength > data.length) throw new ModelFileError(`learner state: block ${name} is missing or out of range`);
      return { bytes: data.subarray(m.offset, m.offset + m.byteLength), manifest: m };
    };
    const specs = [...model.params.byName].map(([name, v]) => ({ name, shape: v.shape }));
    const weights = block('weights');
    const saved = decodeWeights(weights.bytes, { file: 'weights', dtype: 'float32', ...weights.manifest }, specs, 'learner state weights');
    const snap = block('snapshotWeights');
    const snapWeights = decodeWeights(snap.bytes, { file: 'snapshotWeights', dtype: 'float32', ...snap.manifest }, specs, 'learner state snapshot');
    for (const [name, v] of model.params.byName) v.assign(saved.get(name)!);
    tf.dispose([...saved.values()]);
    let learner: OnlineLearner;
    try {
      learner = new OnlineLearner(model, meta.options, hooks);
    } catch (cause) {
      tf.dispose([...snapWeights.values()]);
      throw new ModelFileError(`learner state: saved options are invalid: ${(cause as Error).message}`, { cause });
    }
    try {
      learner.loadSaved(meta, block, snapWeights);
    } catch (error) {
      learner.dispose();
      tf.dispose([...snapWeights.values()]);
      throw error;
    }
    return learner;
  }

  private loadSaved(meta: SavedMeta, block: (name: string) => { bytes: Uint8Array; manifest: BlockManifest }, snapWeights: Map<string, tf.Tensor>): void {
    const numbers = [meta.calls, meta.updates, meta.snapshotUpdates, ...Object.values(meta.counts), meta.guard.learned, meta.guard.consecutiveSpikes];
    if (numbers.some((n) => typeof n !== 'number' || !Number.isInteger(n) || n < 0)) throw new ModelFileError('online-learner state: counters are not non-negative integers');
    const moments = block('moments');
    this.adam.load(moments.bytes, moments.manifest, 'learner state moments');
    this.adam.updates = meta.updates;
    const snapMoments = new Adam(this.model.params.byName, this.options);
    const sm = block('snapshotMoments');
    snapMoments.load(sm.bytes, sm.manifest, 'learner state snapshot moments');
    disposeSnapshot(this.snapshot);
    this.snapshot = { weights: snapWeights, moments: snapMoments.cloneMoments(), updates: meta.snapshotUpdates };
    snapMoments.clear();
    this.calls = meta.calls;
    this.counts = { ...meta.counts };
    // JSON writes NaN (no average yet) as null.
    this.guard = { ...meta.guard, average: meta.guard.average ?? NaN };
  }
}

interface BlockManifest extends MomentsManifest {
  offset: number;
  tensors: WeightEntry[];
}

interface SavedMeta {
  options: ResolvedOnlineOptions;
  calls: number;
  counts: OnlineLearner['counts'];
  guard: GuardState;
  updates: number;
  snapshotUpdates: number;
  blocks: Record<string, BlockManifest>;
}

function parseSaved(model: InfiniFormer, bytes: Uint8Array): { meta: SavedMeta; data: Uint8Array } {
  if (!(bytes instanceof Uint8Array)) throw new BadInputError('bytes', 'expected a Uint8Array');
  if (bytes.length < 20) throw new ModelFileError(`learner state is truncated: ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new ModelFileError('not an infiniformer online-learner state (bad magic number)');
  const version = view.getUint32(4, true);
  if (version !== FORMAT_VERSION) throw new ModelFileError(`online-learner state format version ${version} is not supported (expected ${FORMAT_VERSION})`);
  if (view.getUint32(bytes.length - 4, true) !== crc32(bytes.subarray(0, bytes.length - 4))) throw new ModelFileError('online-learner state checksum mismatch (truncated or corrupt)');
  if (view.getUint32(8, true) !== fingerprint(model.config)) throw new ModelFileError('online-learner state was written for a model with another config');
  const jsonLength = view.getUint32(12, true);
  if (16 + jsonLength + 4 > bytes.length) throw new ModelFileError('online-learner state: header length out of range');
  let meta: SavedMeta;
  try {
    meta = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + jsonLength))) as SavedMeta;
  } catch (cause) {
    throw new ModelFileError(`online-learner state: bad header JSON: ${(cause as Error).message}`, { cause });
  }
  if (meta === null || typeof meta !== 'object' || typeof meta.blocks !== 'object' || meta.counts === undefined || meta.guard === undefined) {
    throw new ModelFileError('online-learner state: header lacks blocks, counters or guard state');
  }
  return { meta, data: bytes.subarray(16 + jsonLength, bytes.length - 4) };
}

function disposeSnapshot(s: Snapshot): void {
  tf.dispose([...s.weights.values()]);
  for (const m of s.moments.values()) tf.dispose([m.m, m.v]);
}

function layerTensors(l: ChunkOutput['layers'][number]): tf.Tensor[] {
  return [l.x, l.k, l.v, l.mu, l.sigmaSq, ...(l.active ?? [])].filter((x): x is tf.Tensor => x !== undefined && x !== null);
}

/** Targets of the L - 1 in-segment predictions; the last position (its target unknown) weighs 0. */
function inSegmentTargets(segments: readonly ArrayLike<number>[]): { targets: Int32Array[]; weights: Float32Array[] } {
  const targets = segments.map((s) => {
    const row = new Int32Array(s.length);
    for (let j = 0; j + 1 < s.length; j++) row[j] = s[j + 1]!;
    return row;
  });
  const weights = segments.map((s) => {
    const w = new Float32Array(s.length).fill(1);
    w[s.length - 1] = 0;
    return w;
  });
  return { targets, weights };
}
