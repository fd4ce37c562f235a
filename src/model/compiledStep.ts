/**
 * The training step of the online learner and of the offline trainer as one native TensorFlow
 * graph per shape signature ({@link GraphCache}): the training-mode forward, the loss, its
 * gradient (the backward kernels reach the binding like the forward's), the global gradient norm,
 * the clip and the fused AdamW update. Fed the weights, the flat Adam moments, the bias corrections, the tokens, the targets
 * and the states' tensors by name; returns the new weights and moments without assigning them,
 * so the learner's guard (spike, non-finite) still decides on the host, after the one native
 * call, whether to take them.
 *
 * Sticky sampling draws its positions on the host: they are drawn before the graph runs
 * (`InfiniFormer.stickyReadOuts`) and their read-outs fed, so no draw is baked into a graph.
 * Dropout's uniform draws likewise (`InfiniFormer.dropoutDraws`, from the step's seed).
 */
import * as tf from '@tensorflow/tfjs';
import { GraphCache } from '../graph/graphCache.js';
import type { GraphCacheStats } from '../graph/graphCache.js';
import { fusedAdamUpdate } from './adam.js';
import type { AdamOptions } from './adam.js';
import { keepChunk } from './model.js';
import type { ChunkOutput, InfiniFormer } from './model.js';
import type { StreamState } from './state.js';
import { weightedCrossEntropyOf } from './loss.js';

/** What one step computed; every tensor is new (in the caller's tidy scope). */
export interface StepOutput {
  out: ChunkOutput;
  /** [objective (loss + KL term), in-segment cross-entropy, gradient norm before clipping]. */
  scalars: tf.Tensor1D;
  /** The weights after the update, in `vars` order, and the new flat moments. */
  weights: tf.Tensor[];
  m: tf.Tensor1D;
  v: tf.Tensor1D;
}

/** Per layer: whether the densities are there, and which streams carry a memory row. */
interface LayerLayout {
  dens: boolean;
  active: boolean[] | undefined;
}

interface StepMeta {
  layers: LayerLayout[];
  numWeights: number;
  /** False when some variable got no gradient (e.g. no memory yet): the fused update does not apply. */
  complete: boolean;
}

/**
 * What a step minimises: `lmWeight` x the cross-entropy of the logits against `targets`,
 * weighted by `weights` (both `[b * T]`, stream-major) and divided by `total` (the weights'
 * sum), plus the KL term; with dropout, drawn from `dropoutSeed`, when that is set.
 */
export interface StepLoss {
  targets: Int32Array;
  weights: Float32Array;
  total: number;
  lmWeight: number;
  dropoutSeed?: number;
}

/** What the fused update reads from the optimizer (see `Adam.fusedInputs`). */
export interface StepAdam {
  m: tf.Tensor1D;
  v: tf.Tensor1D;
  mask: tf.Tensor1D | undefined;
  c1: number;
  c2: number;
}

export class CompiledStep {
  /** Keys whose variables are not all reached: run eagerly by the learner without asking again. */
  private readonly incomplete = new Set<string>();

  private constructor(
    private readonly model: InfiniFormer,
    private readonly cache: GraphCache<StepMeta>,
  ) {}

  /** A compiled step for `model`, or undefined off native TensorFlow; `xla`: compile its graphs with XLA too (default `model.xla`). */
  static create(model: InfiniFormer, xla = model.xla): CompiledStep | undefined {
    // Every step of a compilable batch by the graph, the first one too: the graph's backward may
    // round differently from the eager kernels, and a restored learner must reproduce an
    // uninterrupted one bit for bit. A new batch signature so costs ~0.5 s once (trace, load,
    // TensorFlow's first optimising run; ~5 eager steps): keep as many as the forwards keep.
    const cache = GraphCache.create<StepMeta>({ maxGraphs: 64, warmUp: 0, rerunTraced: true, xla });
    return cache === undefined ? undefined : new CompiledStep(model, cache);
  }

  /**
   * The step to use now for `model`: `current` while its backend is the active one and its XLA
   * setting is `xla`, else a new one (`current` freed); null off native TensorFlow.
   */
  static refresh(model: InfiniFormer, current: CompiledStep | null | undefined, xla = model.xla): CompiledStep | null {
    if (current === null || (current !== undefined && current.isCurrent() && current.cache.xla === xla)) return current;
    current?.dispose();
    return CompiledStep.create(model, xla) ?? null;
  }

  get stats(): GraphCacheStats {
    return this.cache.stats;
  }

  isCurrent(): boolean {
    return this.cache.isCurrent();
  }

  /** The key of a batch: its size and which caches each stream's layers hold. */
  key(states: readonly StreamState[]): string {
    return states.map((s) => s.layers.map((l) => `${Number(l.prevX !== null)}${Number(l.memory !== null)}`).join('.')).join('/');
  }

  /** Whether {@link run} can serve this batch (not for first segments only, nor once it found a variable without a gradient there). */
  applies(states: readonly StreamState[]): boolean {
    // First segments only: no memory, whose weights then get no gradient (known without a compile).
    if (states.every((s) => s.layers.every((l) => l.prevX === null))) return false;
    return !this.incomplete.has(this.key(states));
  }

  /**
   * One step on whole segments at position 0 (checked by the caller) minimising `loss` (default
   * {@link inSegmentLoss}). The caller owns every returned tensor. Undefined when some variable
   * got no gradient (the batch is remembered; use the eager step).
   */
  run(
    states: readonly StreamState[],
    segments: readonly ArrayLike<number>[],
    vars: readonly tf.Variable[],
    adam: StepAdam,
    o: Readonly<AdamOptions & { learningRate: number }>,
    loss: StepLoss = inSegmentLoss(segments),
  ): StepOutput | undefined {
    let res: StepOutput | undefined;
    tf.tidy(() => {
      res = this.compute(states, segments, vars, adam, o, loss);
      if (res === undefined) return;
      for (const x of [res.scalars, res.m, res.v, ...res.weights]) tf.keep(x);
      keepChunk(res.out);
    });
    return res;
  }

  /** {@link run} inside its tidy (the returned tensors are new or already kept). */
  private compute(
    states: readonly StreamState[],
    segments: readonly ArrayLike<number>[],
    vars: readonly tf.Variable[],
    adam: StepAdam,
    o: Readonly<AdamOptions & { learningRate: number }>,
    loss: StepLoss,
  ): StepOutput | undefined {
    const model = this.model;
    const b = states.length;
    const t = model.config.segmentLength;
    const inputs = model.graphInputs(states);
    for (const [name, x] of this.feeds(segments, adam, o, loss)) inputs.set(name, x);
    const { readOuts, rngNext } = model.stickyReadOuts(states);
    readOuts.forEach((r, l) => r !== undefined && inputs.set(`readOut:${l}`, r));
    const draws = loss.dropoutSeed === undefined ? [] : model.dropoutDraws(loss.dropoutSeed, b * t);
    draws.forEach((u, site) => inputs.set(`dropout:${site}`, u));
    const key = this.key(states);
    const get = (name: string): tf.Tensor => inputs.get(name)!;
    const { outputs, meta } = this.cache.run({
      key: `${key}|${o.maxGradNorm}|${o.weightDecay}|${o.beta1}|${o.beta2}|${o.epsilon}|${loss.lmWeight}|${draws.length}`,
      inputs,
      eager: () => {
        let side: ChunkOutput | undefined;
        let ce: tf.Scalar | undefined;
        const { value, grads } = tf.variableGrads(() => {
          const out = model.forwardIds(states, get('tokens') as tf.Tensor1D, 0, t, {
            training: true,
            dropout: draws.length > 0,
            dropoutDraws: draws.map((_, site) => get(`dropout:${site}`)),
            readOuts: readOuts.map((r, l) => (r === undefined ? undefined : get(`readOut:${l}`))),
          });
          // The gradient's forward is a tidy: what the step returns besides the loss is kept (the caller owns it).
          keepChunk(out);
          side = out;
          ce = tf.keep(weightedCrossEntropyOf(out.logits, get('targets') as tf.Tensor1D, get('weights') as tf.Tensor1D, get('total') as tf.Scalar));
          // As the offline trainer sums it (with lmWeight 1 the same numbers as ce + kl term).
          return tf.add(tf.mul(out.kl, model.config.klWeight), tf.mul(ce, loss.lmWeight)) as tf.Scalar;
        }, [...vars]);
        const gs = vars.map((v) => grads[v.name]);
        const complete = gs.every((g) => g !== undefined);
        const present = gs.filter((g): g is tf.Tensor => g !== undefined);
        const norm = tf.sqrt(tf.addN(present.map((g) => tf.sum(tf.square(g)))));
        // The clip as the eager step takes it, in tensors: max / norm when the norm exceeds max.
        const scale = o.maxGradNorm > 0 ? tf.where(tf.greater(norm, o.maxGradNorm), tf.div(o.maxGradNorm, norm), tf.onesLike(norm)) : 1;
        const next = complete
          ? fusedAdamUpdate(vars, gs as tf.Tensor[], adam, { lr: get('adam:lr') as tf.Scalar, scale: scale as tf.Scalar | number, c1: get('adam:c1') as tf.Scalar, c2: get('adam:c2') as tf.Scalar, mask: adam.mask === undefined ? undefined : (get('adam:mask') as tf.Tensor1D) }, o)
          : undefined;
        const out = side!;
        const layers = out.layers.map((l): LayerLayout => ({ dens: l.mu !== undefined && l.sigmaSq !== undefined, active: l.active?.map((a) => a !== null) }));
        const scalars = tf.stack([value, ce!, norm]);
        ce!.dispose();
        // An incomplete batch only reports so (the learner steps eagerly): nothing else to fetch.
        if (!complete) {
          tf.dispose([out.hidden, out.logits, out.kl, ...out.layers.flatMap((l) => [l.x, l.k, l.v, l.mu, l.sigmaSq, ...(l.active ?? [])].filter((x): x is tf.Tensor => x !== undefined && x !== null))]);
          return { outputs: [scalars], meta: { layers: [], numWeights: 0, complete } };
        }
        const flat: tf.Tensor[] = [scalars, next!.m, next!.v, ...next!.weights, out.hidden, out.logits, out.kl];
        for (const l of out.layers) {
          flat.push(l.x, l.k, l.v);
          if (l.mu !== undefined && l.sigmaSq !== undefined) flat.push(l.mu, l.sigmaSq);
          for (const a of l.active ?? []) if (a !== null) flat.push(a);
        }
        return { outputs: flat, meta: { layers, numWeights: next!.weights.length, complete } };
      },
    });
    if (!meta.complete) {
      // The forward's tensors were kept (see the gradient's tidy): free them here.
      tf.dispose(outputs);
      this.incomplete.add(key);
      return undefined;
    }
    return unflatten(outputs, meta, rngNext);
  }

  /** The fed tensors besides the model's: tokens, loss targets and weights, optimizer state. */
  private feeds(segments: readonly ArrayLike<number>[], adam: StepAdam, o: Readonly<{ learningRate: number }>, loss: StepLoss): [string, tf.Tensor][] {
    const t = this.model.config.segmentLength;
    const ids = new Int32Array(segments.length * t);
    segments.forEach((s, i) => {
      for (let j = 0; j < t; j++) ids[i * t + j] = s[j]!;
    });
    const fed: [string, tf.Tensor][] = [
      ['tokens', tf.tensor1d(ids, 'int32')],
      ['targets', tf.tensor1d(loss.targets, 'int32')],
      ['weights', tf.tensor1d(loss.weights)],
      ['total', tf.scalar(loss.total)],
      ['adam:m', adam.m],
      ['adam:v', adam.v],
      ['adam:c1', tf.scalar(adam.c1)],
      ['adam:c2', tf.scalar(adam.c2)],
      ['adam:lr', tf.scalar(o.learningRate)],
    ];
    if (adam.mask !== undefined) fed.push(['adam:mask', adam.mask]);
    return fed;
  }

  dispose(): void {
    this.cache.dispose();
  }
}

/**
 * The online learner's loss on whole segments: every next token inside the segment (the last
 * position has no target), LM weight 1, no dropout.
 */
export function inSegmentLoss(segments: readonly ArrayLike<number>[]): StepLoss {
  const b = segments.length;
  const t = segments[0]!.length;
  const targets = new Int32Array(b * t);
  const weights = new Float32Array(b * t).fill(1);
  segments.forEach((s, i) => {
    for (let j = 0; j + 1 < t; j++) targets[i * t + j] = s[j + 1]!;
    weights[i * t + t - 1] = 0;
  });
  return { targets, weights, total: b * (t - 1), lmWeight: 1 };
}

function unflatten(ts: readonly tf.Tensor[], meta: StepMeta, rngNext: number[][]): StepOutput {
  let k = 0;
  const next = (): tf.Tensor => ts[k++]!;
  const scalars = next() as tf.Tensor1D;
  const m = next() as tf.Tensor1D;
  const v = next() as tf.Tensor1D;
  const weights = Array.from({ length: meta.numWeights }, next);
  const hidden = next();
  const logits = next();
  const kl = next() as tf.Scalar;
  const layers = meta.layers.map((l) => {
    const out: ChunkOutput['layers'][number] = { x: next(), k: next(), v: next() };
    if (l.dens) {
      out.mu = next();
      out.sigmaSq = next();
    }
    if (l.active !== undefined) out.active = l.active.map((has) => (has ? next() : null));
    return out;
  });
  return { out: { hidden, logits, kl, layers, rngNext }, scalars, weights, m, v };
}
