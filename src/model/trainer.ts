/**
 * Training over long token streams (truncated backpropagation through time): segments arrive
 * in stream order; each step runs one segment of every parallel stream with its carried (and
 * detached) memory, adds the KL regulariser, clips the global gradient norm and takes an Adam
 * step with linear warmup then cosine decay. Checkpoints hold weights, Adam moments, stream
 * states and the data position, so a resumed run replays the uninterrupted one exactly.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BadConfigError, BadInputError, ModelFileError } from '../errors.js';
import type { GraphCacheStats } from '../graph/graphCache.js';
import { rootLogger } from '../logger.js';
import type { SegmentBatch, SegmentSource } from './data.js';
import { Adam } from './adam.js';
import { loadModel, saveModel } from './io.js';
import { CompiledStep } from './compiledStep.js';
import type { StepLoss } from './compiledStep.js';
import { keepChunk } from './model.js';
import type { ChunkOutput, InfiniFormer } from './model.js';
import type { StreamState } from './state.js';
import { crc32 } from './checksum.js';
import { tidyData } from '../tidyData.js';
import { flatLossTargets, weightedCrossEntropy } from './loss.js';

export { weightedCrossEntropy, weightedCrossEntropyOf } from './loss.js';

const log = rootLogger.child('trainer');

/** Options of a {@link Trainer}; every field has a default. */
export interface TrainerOptions {
  /** Peak learning rate. Default 1e-3. */
  learningRate?: number;
  /** Linear warmup steps. Default 100. */
  warmupSteps?: number;
  /** Steps of the cosine schedule (after which the rate stays at its floor). Default 10,000. */
  totalSteps?: number;
  /** Floor of the schedule as a fraction of the peak. Default 0.1. */
  minLearningRateRatio?: number;
  /** Adam beta1, beta2, epsilon. Defaults 0.9, 0.98, 1e-8. */
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** Decoupled weight decay (AdamW) on matrices. Default 0. */
  weightDecay?: number;
  /** Global gradient-norm clip. Default 1.0; 0 disables. */
  maxGradNorm?: number;
  /** Seed of the stream states' sticky sampling. Default 0. */
  seed?: number;
  /** Weight of the LM cross-entropy in the objective. Default 1 (0: train the classifier only). */
  lmWeight?: number;
  /** Weight of the classifier cross-entropy (batches with `labels` / `windowLabels`). Default 1. */
  classifierWeight?: number;
  /**
   * Weight of each label in the classifier cross-entropy (one per label, e.g. inverse class
   * frequencies for imbalanced labels); the loss is the weighted mean. Default all 1.
   */
  classWeights?: readonly number[];
}

/** One step's figures. */
export interface StepResult {
  step: number;
  /** Training objective (cross-entropy + KL term), nats per weighted token; NaN when the segment has no weighted token (no update). */
  loss: number;
  /** LM cross-entropy alone, nats per weighted token (NaN when the LM was not scored). */
  crossEntropy: number;
  /** Classifier cross-entropy, nats per label (when the batch had labels). */
  classifierCrossEntropy?: number;
  kl: number;
  gradNorm: number;
  learningRate: number;
  /** Tokens processed in this step (b x L). */
  tokens: number;
}

/** A progress event (what a CLI progress bar shows). */
export interface ProgressEvent {
  step: number;
  totalSteps: number;
  loss: number;
  crossEntropy: number;
  learningRate: number;
  tokensPerSecond: number;
  /** Seconds left at the current rate. */
  etaSeconds: number;
  /** Set on evaluation steps. */
  eval?: EvalResult;
}

/** Evaluation figures over some segments. */
export interface EvalResult {
  /** Mean cross-entropy in nats per weighted token. */
  crossEntropy: number;
  /** The same in bits. */
  bitsPerToken: number;
  /** Share of weighted positions whose argmax is the target. */
  accuracy: number;
  /** Weighted positions counted. */
  count: number;
  /** Share of labelled events (batches with `labels`) the classifier head gets right. */
  classifierAccuracy?: number;
}

/** Options of {@link Trainer.run}. */
export interface RunOptions {
  /** Steps to run (from the current step). */
  steps: number;
  /** Called after every step (and with `eval` on evaluation steps). */
  onProgress?: (event: ProgressEvent) => void;
  /** Evaluate every this many steps (0 = never). Default 0. */
  evalEvery?: number;
  /** A fresh evaluation source for each evaluation, and how many segments to read from it. */
  evalSource?: () => SegmentSource;
  evalSegments?: number;
  /** Checkpoint into `checkpointDir` every this many steps (0 = never). Default 0. */
  checkpointEvery?: number;
  checkpointDir?: string;
}

/** Trainer options with every default filled in. */
export interface ResolvedTrainerOptions {
  learningRate: number;
  warmupSteps: number;
  totalSteps: number;
  minLearningRateRatio: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
  maxGradNorm: number;
  seed: number;
  lmWeight: number;
  classifierWeight: number;
  /** Empty: every label weighs 1. */
  classWeights: readonly number[];
}

function resolveOptions(o: TrainerOptions): ResolvedTrainerOptions {
  const classWeights = o.classWeights ?? [];
  if (!Array.isArray(classWeights) || classWeights.some((w) => typeof w !== 'number' || !Number.isFinite(w) || w <= 0)) {
    throw new BadConfigError('classWeights', `must be an array of positive finite numbers, got ${JSON.stringify(classWeights)}`);
  }
  const r: Omit<ResolvedTrainerOptions, 'classWeights'> = {
    learningRate: o.learningRate ?? 1e-3,
    warmupSteps: o.warmupSteps ?? 100,
    totalSteps: o.totalSteps ?? 10_000,
    minLearningRateRatio: o.minLearningRateRatio ?? 0.1,
    beta1: o.beta1 ?? 0.9,
    beta2: o.beta2 ?? 0.98,
    epsilon: o.epsilon ?? 1e-8,
    weightDecay: o.weightDecay ?? 0,
    maxGradNorm: o.maxGradNorm ?? 1,
    seed: o.seed ?? 0,
    lmWeight: o.lmWeight ?? 1,
    classifierWeight: o.classifierWeight ?? 1,
  };
  for (const [k, v] of Object.entries(r)) if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new BadConfigError(k, `must be a finite number >= 0, got ${String(v)}`);
  if (r.learningRate <= 0) throw new BadConfigError('learningRate', 'must be positive');
  if (r.beta1 >= 1 || r.beta2 >= 1) throw new BadConfigError('beta1', 'betas must be below 1');
  if (!Number.isInteger(r.warmupSteps) || !Number.isInteger(r.totalSteps)) throw new BadConfigError('totalSteps', 'warmupSteps and totalSteps must be integers');
  return { ...r, classWeights: [...classWeights] };
}

/** Linear warmup to the peak, then cosine decay to `minRatio` x peak at `totalSteps` (1-based step). */
export function learningRateAt(step: number, o: Pick<ResolvedTrainerOptions, 'learningRate' | 'warmupSteps' | 'totalSteps' | 'minLearningRateRatio'>): number {
  if (o.warmupSteps > 0 && step <= o.warmupSteps) return (o.learningRate * step) / o.warmupSteps;
  const span = Math.max(1, o.totalSteps - o.warmupSteps);
  const progress = Math.min(1, (step - o.warmupSteps) / span);
  const floor = o.minLearningRateRatio;
  return o.learningRate * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}

interface LabelTargets {
  perEvent?: Int32Array[];
  perWindow?: Int32Array;
}

function labelTargets(batch: SegmentBatch): LabelTargets | undefined {
  const perEvent = batch.labels?.some((row) => row.some((l) => l >= 0)) ? batch.labels : undefined;
  const perWindow = batch.windowLabels?.some((l) => l >= 0) ? batch.windowLabels : undefined;
  return perEvent === undefined && perWindow === undefined ? undefined : { perEvent, perWindow };
}

/**
 * Mean classifier cross-entropy over labelled events and windows (labels -1 are skipped),
 * weighted by `classWeights[label]` when given.
 */
function classifierLoss(model: InfiniFormer, hidden: tf.Tensor, t: LabelTargets, classWeights: readonly number[]): tf.Scalar {
  const c = model.config.numLabels;
  if (c === 0) throw new BadInputError('labels', 'the batch has labels but the model has no classifier head (numLabels = 0)');
  if (classWeights.length > 0 && classWeights.length !== c) throw new BadConfigError('classWeights', `expected ${c} weights (numLabels), got ${classWeights.length}`);
  const weightOf = (l: number): number => (l < 0 ? 0 : (classWeights[l] ?? 1));
  const check = (name: string, l: number): void => {
    if (!Number.isInteger(l) || l < -1 || l >= c) throw new BadInputError(name, `label ${String(l)} is not -1 or an integer in [0, ${c})`);
  };
  const parts: tf.Scalar[] = [];
  if (t.perEvent !== undefined) {
    t.perEvent.forEach((row, i) => row.forEach((l) => check(`labels[${i}]`, l)));
    const logits = model.classify(hidden, 'event');
    parts.push(weightedCrossEntropy(logits, t.perEvent.map((row) => row.map((l) => Math.max(l, 0))), t.perEvent.map((row) => Float32Array.from(row, weightOf))));
  }
  if (t.perWindow !== undefined) {
    t.perWindow.forEach((l) => check('windowLabels', l));
    const logits = tf.expandDims(model.classify(hidden, 'window'), 1);
    parts.push(weightedCrossEntropy(logits, Array.from(t.perWindow, (l) => Int32Array.of(Math.max(l, 0))), Array.from(t.perWindow, (l) => Float32Array.of(weightOf(l)))));
  }
  return (parts.length === 1 ? parts[0]! : tf.div(tf.addN(parts), parts.length)) as tf.Scalar;
}

function checkBatch(batch: SegmentBatch, b: number, L: number): void {
  if (batch === null || typeof batch !== 'object') throw new BadInputError('batch', 'expected { inputs, targets }');
  for (const key of ['inputs', 'targets'] as const) {
    const rows = batch[key];
    if (!Array.isArray(rows) || rows.length !== b) throw new BadInputError(key, `expected ${b} rows, got ${Array.isArray(rows) ? rows.length : typeof rows}`);
    rows.forEach((r, i) => {
      if (r?.length !== L) throw new BadInputError(`${key}[${i}]`, `expected ${L} tokens, got ${r?.length}`);
    });
  }
}

/** Trains an {@link InfiniFormer} on a {@link SegmentSource}. */
export class Trainer {
  readonly options: Readonly<ResolvedTrainerOptions>;
  /** Steps taken so far. */
  stepCount = 0;
  private states: StreamState[];
  /** Adam state; steps on segments with no weighted token take no update. */
  private readonly adam: Adam;
  private resets = 0;
  /**
   * Take a step on LM batches (no labels) as one compiled native graph ({@link CompiledStep},
   * dropout fed as host draws) when the model's compiled path is on too. Default on;
   * INFINIFORMER_COMPILED_STEP=0 turns it off (e.g. to compare against the eager step).
   */
  compiled = process.env['INFINIFORMER_COMPILED_STEP'] !== '0';
  /**
   * Compile that step with XLA too: ~1.15-1.25x faster steps for a ~3.5 s compile per batch
   * signature (a run has two or three); weights drift from the eager step's faster than the
   * plain graph's (~7e-6 against ~1e-7 relative after 9 steps). Resuming stays exact (every
   * compilable step runs the graph). Default false unless INFINIFORMER_XLA=1.
   */
  xla = process.env['INFINIFORMER_XLA'] === '1';
  /** The compiled training step: undefined before first use, null where it does not apply. */
  private compiledRunner: CompiledStep | null | undefined;

  constructor(
    readonly model: InfiniFormer,
    readonly source: SegmentSource,
    options: TrainerOptions = {},
  ) {
    this.options = Object.freeze(resolveOptions(options));
    this.adam = new Adam(model.params.byName, this.options);
    if (!Number.isInteger(source?.numStreams) || source.numStreams < 1) throw new BadConfigError('source', 'numStreams must be a positive integer');
    this.states = Array.from({ length: source.numStreams }, () => this.freshState());
  }

  private freshState(): StreamState {
    return this.model.createState(this.options.seed * 100_003 + this.resets++);
  }

  /** One training step on the next segment of every stream. */
  step(): StepResult {
    const model = this.model;
    const L = model.config.segmentLength;
    const b = this.source.numStreams;
    const batch = this.source.next();
    checkBatch(batch, b, L);
    batch.reset?.forEach((r, i) => {
      if (r) {
        this.states[i]!.dispose();
        this.states[i] = this.freshState();
      }
    });
    const step = this.stepCount + 1;
    const labelled = labelTargets(batch);
    const lmScored = this.options.lmWeight > 0 && (batch.weights === undefined || batch.weights.some((row) => row.some((w) => w !== 0)));
    if (!lmScored && labelled === undefined) {
      // Nothing to learn from this segment (e.g. a task's prompt): run it only to carry the memory.
      let o: ChunkOutput | undefined;
      tf.tidy(() => {
        o = model.forwardChunk(this.states, batch.inputs, { training: true, dropoutSeed: step });
        keepChunk(o);
      });
      model.commit(this.states, o!);
      tf.dispose([o!.hidden, o!.logits, o!.kl]);
      this.stepCount = step;
      return { step, loss: NaN, crossEntropy: NaN, kl: NaN, gradNorm: 0, learningRate: learningRateAt(step, this.options), tokens: b * L };
    }
    const compiled = labelled === undefined ? this.stepCompiled(batch, step) : undefined;
    if (compiled !== undefined) return compiled;
    const vars = [...model.params.byName.values()];
    let side: ChunkOutput | undefined;
    let ce: tf.Scalar | undefined;
    let clsCe: tf.Scalar | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const out = model.forwardChunk(this.states, batch.inputs, { training: true, dropoutSeed: step });
      keepChunk(out);
      side = out;
      let objective = tf.mul(out.kl, model.config.klWeight);
      if (lmScored) {
        ce = tf.keep(weightedCrossEntropy(out.logits, batch.targets, batch.weights));
        objective = tf.add(objective, tf.mul(ce, this.options.lmWeight));
      }
      if (labelled !== undefined) {
        const cls = classifierLoss(model, out.hidden, labelled, this.options.classWeights);
        objective = tf.add(objective, tf.mul(cls, this.options.classifierWeight));
        clsCe = tf.keep(cls);
      }
      return objective as tf.Scalar;
    }, vars);
    const o = side!;
    const lr = learningRateAt(step, this.options);
    const gradNorm = this.adam.apply(grads, lr);
    tf.dispose(Object.values(grads));
    model.commit(this.states, o);
    const [loss, kl] = [value.dataSync()[0]!, o.kl.dataSync()[0]!];
    const crossEntropy = ce === undefined ? NaN : ce.dataSync()[0]!;
    const classifierCrossEntropy = clsCe === undefined ? undefined : clsCe.dataSync()[0]!;
    tf.dispose([value, o.hidden, o.logits, o.kl, ...(ce ? [ce] : []), ...(clsCe ? [clsCe] : [])]);
    this.stepCount = step;
    if (!Number.isFinite(loss)) log.warn('non-finite loss', { step, loss });
    return { step, loss, crossEntropy, classifierCrossEntropy, kl, gradNorm, learningRate: lr, tokens: b * L };
  }

  /** Counters of the compiled training step (undefined before its first use or where it does not apply). */
  get compiledStats(): Readonly<GraphCacheStats> | undefined {
    return this.compiledRunner?.stats;
  }

  /**
   * {@link step}'s update through the compiled step: the same loss, dropout draws and AdamW
   * update in one native call. Undefined when it does not apply (another backend, switched off,
   * a batch that reaches not every weight): the eager step runs.
   */
  private stepCompiled(batch: SegmentBatch, step: number): StepResult | undefined {
    const runner = this.compiledStep();
    if (runner === undefined || !runner.applies(this.states)) return undefined;
    const model = this.model;
    model.checkTrainingChunk(this.states, batch.inputs);
    const vars = [...model.params.byName.values()];
    const lr = learningRateAt(step, this.options);
    const res = runner.run(this.states, batch.inputs, vars, this.adam.fusedInputs(), { ...this.options, learningRate: lr }, this.lmLoss(batch, step));
    if (res === undefined) return undefined;
    const { out, weights, m, v, scalars } = res;
    vars.forEach((x, i) => x.assign(weights[i]!));
    this.adam.acceptFused(m, v);
    const [loss, crossEntropy, gradNorm] = Array.from(scalars.dataSync()) as [number, number, number];
    const kl = out.kl.dataSync()[0]!;
    model.commit(this.states, out);
    tf.dispose([scalars, ...weights, out.hidden, out.logits, out.kl]);
    this.stepCount = step;
    if (!Number.isFinite(loss)) log.warn('non-finite loss', { step, loss });
    const b = this.source.numStreams;
    return { step, loss, crossEntropy, kl, gradNorm, learningRate: lr, tokens: b * model.config.segmentLength };
  }

  /** The step's LM loss in the compiled step's terms (targets, weights, their sum, dropout seed). */
  private lmLoss(batch: SegmentBatch, step: number): StepLoss {
    return { ...flatLossTargets(batch.targets, batch.weights, this.model.config.segmentLength), lmWeight: this.options.lmWeight, dropoutSeed: step };
  }

  /** The compiled step to use now, if any. */
  private compiledStep(): CompiledStep | undefined {
    if (!this.compiled || !this.model.compiled || tf.getBackend() !== 'tensorflow') return undefined;
    this.compiledRunner = CompiledStep.refresh(this.model, this.compiledRunner, this.xla);
    return this.compiledRunner ?? undefined;
  }

  /** Runs steps, with progress events, periodic evaluation and checkpoints. */
  async run(options: RunOptions): Promise<StepResult[]> {
    const steps = options.steps;
    if (!Number.isInteger(steps) || steps < 0) throw new BadConfigError('steps', `must be a non-negative integer, got ${String(steps)}`);
    const results: StepResult[] = [];
    const started = performance.now();
    let tokens = 0;
    for (let i = 0; i < steps; i++) {
      const r = this.step();
      results.push(r);
      tokens += r.tokens;
      const elapsed = (performance.now() - started) / 1000;
      const rate = tokens / Math.max(elapsed, 1e-9);
      const event: ProgressEvent = {
        step: r.step,
        totalSteps: this.stepCount - i - 1 + steps,
        loss: r.loss,
        crossEntropy: r.crossEntropy,
        learningRate: r.learningRate,
        tokensPerSecond: rate,
        etaSeconds: ((steps - i - 1) * r.tokens) / Math.max(rate, 1e-9),
      };
      if ((options.evalEvery ?? 0) > 0 && r.step % options.evalEvery! === 0 && options.evalSource !== undefined) {
        event.eval = evaluate(this.model, options.evalSource(), options.evalSegments ?? 1);
      }
      options.onProgress?.(event);
      if ((options.checkpointEvery ?? 0) > 0 && r.step % options.checkpointEvery! === 0) {
        if (options.checkpointDir === undefined) throw new BadConfigError('checkpointDir', 'is required with checkpointEvery');
        await this.saveCheckpoint(options.checkpointDir);
      }
      // Let timers and I/O run between steps.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return results;
  }

  /** Writes weights, Adam moments, stream states and the data position to `dir`. */
  async saveCheckpoint(dir: string): Promise<void> {
    await saveModel(this.model, join(dir, 'model'));
    const { bytes, tensors } = this.adam.encode();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'optimizer.bin'), bytes);
    const meta = {
      format: 'infiniformer-checkpoint',
      formatVersion: 1,
      step: this.stepCount,
      resets: this.resets,
      updates: this.adam.updates,
      options: this.options,
      source: this.source.getState(),
      states: this.states.map((s) => Buffer.from(s.serialize()).toString('base64')),
      optimizer: { byteLength: bytes.length, crc32: crc32(bytes), tensors },
    };
    await writeFile(join(dir, 'trainer.json'), JSON.stringify(meta));
  }

  /** Resumes from {@link saveCheckpoint}; `source` must be the same kind of source as before. */
  static async resume(dir: string, source: SegmentSource): Promise<Trainer> {
    const model = await loadModel(join(dir, 'model'));
    let meta: {
      format?: string;
      formatVersion?: number;
      step: number;
      resets: number;
      updates: number;
      options: TrainerOptions;
      source: unknown;
      states: string[];
      optimizer: { byteLength: number; crc32: number; tensors: { name: string; shape: number[]; offset: number }[] };
    };
    try {
      meta = JSON.parse((await readFile(join(dir, 'trainer.json'))).toString('utf8'));
    } catch (cause) {
      throw new ModelFileError(`cannot read ${join(dir, 'trainer.json')}: ${(cause as Error).message}`, { cause });
    }
    if (meta.format !== 'infiniformer-checkpoint' || meta.formatVersion !== 1) throw new ModelFileError(`${dir}: not a version 1 infiniformer checkpoint`);
    const trainer = new Trainer(model, source, meta.options);
    trainer.stepCount = meta.step;
    trainer.resets = meta.resets;
    trainer.adam.updates = meta.updates;
    source.setState(meta.source);
    if (!Array.isArray(meta.states) || meta.states.length !== source.numStreams) throw new ModelFileError(`${dir}: checkpoint has ${meta.states?.length} stream states, the source ${source.numStreams}`);
    trainer.states.forEach((s) => s.dispose());
    trainer.states = meta.states.map((b64) => model.restoreState(new Uint8Array(Buffer.from(b64, 'base64'))));
    const optBytes = new Uint8Array(await readFile(join(dir, 'optimizer.bin')));
    trainer.adam.load(optBytes, meta.optimizer, join(dir, 'optimizer.bin'));
    return trainer;
  }

  /** Frees the stream states and optimizer moments (not the model). */
  dispose(): void {
    this.states.forEach((s) => s.dispose());
    this.adam.clear();
    this.compiledRunner?.dispose();
    this.compiledRunner = undefined;
  }
}

/**
 * Evaluates a model on `segments` segments of a source (inference mode, fresh states, memory
 * carried): cross-entropy, bits per token and accuracy over weighted positions.
 */
export function evaluate(model: InfiniFormer, source: SegmentSource, segments: number): EvalResult {
  const L = model.config.segmentLength;
  const b = source.numStreams;
  let states = Array.from({ length: b }, (_, i) => model.createState(i));
  let nats = 0;
  let correct = 0;
  let count = 0;
  let labelled = 0;
  let labelledCorrect = 0;
  try {
    for (let s = 0; s < segments; s++) {
      const batch = source.next();
      checkBatch(batch, b, L);
      states = states.map((st, i) => {
        if (batch.reset?.[i] !== true) return st;
        st.dispose();
        return model.createState(i);
      });
      const hasLabels = batch.labels !== undefined && model.config.numLabels > 0;
      const hidden = hasLabels ? model.runHidden(states, batch.inputs) : undefined;
      const logits = hidden === undefined ? model.run(states, batch.inputs) : tf.tidy(() => tf.matMul(tf.reshape(hidden, [-1, model.config.width]), model.params.embedding).reshape([b, L, -1]));
      if (hidden !== undefined) {
        const predicted = tidyData(() => tf.argMax(model.classify(hidden, 'event'), -1));
        hidden.dispose();
        batch.labels!.forEach((row, i) =>
          row.forEach((l, j) => {
            if (l < 0) return;
            labelled += 1;
            if (predicted[i * L + j] === l) labelledCorrect += 1;
          }),
        );
      }
      const logp = tidyData(() => tf.logSoftmax(logits)) as Float32Array;
      const argmax = tidyData(() => tf.argMax(logits, -1)) as Int32Array;
      logits.dispose();
      const v = model.config.vocabSize;
      for (let i = 0; i < b; i++) {
        for (let j = 0; j < L; j++) {
          const w = batch.weights?.[i]?.[j] ?? 1;
          if (w === 0) continue;
          const target = batch.targets[i]![j]!;
          nats -= w * logp[(i * L + j) * v + target]!;
          if (argmax[i * L + j] === target) correct += w;
          count += w;
        }
      }
    }
  } finally {
    states.forEach((s) => s.dispose());
  }
  const crossEntropy = count > 0 ? nats / count : NaN;
  const result: EvalResult = { crossEntropy, bitsPerToken: crossEntropy / Math.LN2, accuracy: count > 0 ? correct / count : NaN, count };
  if (labelled > 0) result.classifierAccuracy = labelledCorrect / labelled;
  return result;
}
