/**
 * Adam(W) with global gradient-norm clipping over a model's named variables: the one optimizer
 * of the offline {@link Trainer} and the {@link OnlineLearner}. Moments are allocated on a
 * variable's first gradient (variables the loss never reached keep none); the bias correction
 * counts the updates this optimizer took.
 */
import * as tf from '@tensorflow/tfjs';
import { ModelFileError } from '../errors.js';
import { decodeWeights, encodeWeights } from './io.js';
import type { WeightEntry } from './io.js';

/** Adam's hyper-parameters (the learning rate is given per update). */
export interface AdamOptions {
  beta1: number;
  beta2: number;
  epsilon: number;
  /** Decoupled weight decay on matrices (rank >= 2); 0 disables. */
  weightDecay: number;
  /** Global gradient-norm clip; 0 disables. */
  maxGradNorm: number;
}

/** Encoded moments: float32 bytes (`m/<name>`, `v/<name>`) and their manifest. */
export interface EncodedMoments {
  bytes: Uint8Array;
  tensors: WeightEntry[];
}

/** What {@link Adam.load} checks the bytes against. */
export interface MomentsManifest {
  byteLength: number;
  crc32: number;
  tensors: readonly WeightEntry[];
}

/** Adam state over the variables of `params` (name -> variable). */
export class Adam {
  /** Updates taken (drives the bias correction). */
  updates = 0;
  private readonly moments = new Map<string, { m: tf.Tensor; v: tf.Tensor }>();
  /**
   * The moments of every parameter as two flat vectors (params order), when the last update
   * reached every parameter: one fused update then costs ~20 kernels instead of ~17 per
   * parameter. Either this or `moments` holds the moments, never both.
   */
  private flat: { m: tf.Tensor1D; v: tf.Tensor1D } | undefined;
  /** 1 for the entries of matrices (decayed), 0 elsewhere, in the flat layout. */
  private decayMask: tf.Tensor1D | undefined;

  constructor(
    private readonly params: ReadonlyMap<string, tf.Variable>,
    readonly options: Readonly<AdamOptions>,
  ) {}

  /** Global L2 norm of the gradients present in `grads` (keyed by variable name), read back. */
  gradNorm(grads: tf.NamedTensorMap): number {
    const present = [...this.params.values()].flatMap((v) => (grads[v.name] === undefined ? [] : [grads[v.name]!]));
    if (present.length === 0) return 0;
    return tf.tidy(() => Math.sqrt(tf.addN(present.map((g) => tf.sum(tf.square(g)))).dataSync()[0]!));
  }

  /**
   * Clips by global norm and applies one AdamW update with rate `lr`; returns the norm before
   * clipping (pass it as `norm` when already computed). `grads` stay the caller's.
   */
  apply(grads: tf.NamedTensorMap, lr: number, norm = this.gradNorm(grads)): number {
    const o = this.options;
    // Variables the loss did not reach (e.g. the memory's before there is one) have no gradient: skipped.
    const present = [...this.params.entries()].filter(([, v]) => grads[v.name] !== undefined);
    const scale = o.maxGradNorm > 0 && norm > o.maxGradNorm ? o.maxGradNorm / norm : 1;
    this.updates += 1;
    const c1 = 1 - Math.pow(o.beta1, this.updates);
    const c2 = 1 - Math.pow(o.beta2, this.updates);
    if (present.length === this.params.size && present.length > 1) {
      this.applyFlat(grads, lr, scale, c1, c2);
      return norm;
    }
    this.unflatten();
    for (const [name, v] of present) {
      const g0 = grads[v.name]!;
      const prev = this.moments.get(name) ?? { m: tf.zerosLike(v), v: tf.zerosLike(v) };
      const next = tf.tidy(() => {
        const g = tf.mul(g0, scale);
        const m = tf.add(tf.mul(prev.m, o.beta1), tf.mul(g, 1 - o.beta1));
        const s = tf.add(tf.mul(prev.v, o.beta2), tf.mul(tf.square(g), 1 - o.beta2));
        let update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(s, c2)), o.epsilon));
        if (o.weightDecay > 0 && v.rank >= 2) update = tf.add(update, tf.mul(v, o.weightDecay));
        v.assign(tf.sub(v, tf.mul(update, lr)));
        return { m, v: s };
      });
      tf.dispose([prev.m, prev.v]);
      this.moments.set(name, next);
    }
    return norm;
  }

  /**
   * {@link apply}'s update on every parameter at once, as flat vectors: the same elementwise
   * arithmetic on every entry (weight decay through a 0/1 mask: exact), so the same numbers.
   */
  private applyFlat(grads: tf.NamedTensorMap, lr: number, scale: number, c1: number, c2: number): void {
    const vars = [...this.params.values()];
    const prev = this.flatten();
    const mask = this.options.weightDecay > 0 ? this.maskOf(vars) : undefined;
    const next = tf.tidy(() => fusedAdamUpdate(vars, vars.map((v) => grads[v.name]!), prev, { lr, scale, c1, c2, mask }, this.options));
    vars.forEach((v, i) => v.assign(next.weights[i]!));
    tf.dispose([prev.m, prev.v, ...next.weights]);
    this.flat = { m: next.m, v: next.v };
  }

  /**
   * What a fused update computed elsewhere (a compiled training step) reads: the flat moments
   * (built now if need be), the decay mask, and the bias corrections of the next update.
   * Still owned by this optimizer.
   */
  fusedInputs(): { m: tf.Tensor1D; v: tf.Tensor1D; mask: tf.Tensor1D | undefined; c1: number; c2: number } {
    const o = this.options;
    const prev = this.flatten();
    const mask = o.weightDecay > 0 ? this.maskOf([...this.params.values()]) : undefined;
    return { ...prev, mask, c1: 1 - Math.pow(o.beta1, this.updates + 1), c2: 1 - Math.pow(o.beta2, this.updates + 1) };
  }

  /** Takes the moments of a fused update computed from {@link fusedInputs} (owns them now) and counts the update; the caller assigned the weights. */
  acceptFused(m: tf.Tensor1D, v: tf.Tensor1D): void {
    const prev = this.flatten();
    tf.dispose([prev.m, prev.v]);
    this.flat = { m, v };
    this.updates += 1;
  }

  /** The flat moments, built from the per-parameter ones (zeros where there are none yet). */
  private flatten(): { m: tf.Tensor1D; v: tf.Tensor1D } {
    if (this.flat !== undefined) return this.flat;
    const entries = [...this.params].map(([name, v]) => this.moments.get(name) ?? { m: tf.zerosLike(v), v: tf.zerosLike(v) });
    const join = (pick: 'm' | 'v'): tf.Tensor1D => tf.tidy(() => tf.concat(entries.map((e) => tf.reshape(e[pick], [-1]))) as tf.Tensor1D);
    this.flat = { m: join('m'), v: join('v') };
    for (const e of entries) tf.dispose([e.m, e.v]);
    this.moments.clear();
    return this.flat;
  }

  /** Back to per-parameter moments (for the per-parameter update, saving and cloning). */
  private unflatten(): void {
    const flat = this.flat;
    if (flat === undefined) return;
    this.flat = undefined;
    const params = [...this.params];
    const sizes = params.map(([, v]) => v.size);
    const ms = tf.split(flat.m, sizes);
    const vs = tf.split(flat.v, sizes);
    params.forEach(([name, p], i) => {
      this.moments.set(name, { m: tf.tidy(() => tf.reshape(ms[i]!, p.shape)), v: tf.tidy(() => tf.reshape(vs[i]!, p.shape)) });
    });
    tf.dispose([flat.m, flat.v, ...ms, ...vs]);
  }

  /** The weight-decay mask of `vars` in the flat layout (built once). */
  private maskOf(vars: readonly tf.Variable[]): tf.Tensor1D {
    if (this.decayMask === undefined || this.decayMask.isDisposed) {
      const data = new Float32Array(vars.reduce((n, v) => n + v.size, 0));
      let at = 0;
      for (const v of vars) {
        if (v.rank >= 2) data.fill(1, at, at + v.size);
        at += v.size;
      }
      this.decayMask = tf.keep(tf.tensor1d(data));
    }
    return this.decayMask;
  }

  /** The moments as float32 bytes plus manifest (names `m/<param>`, `v/<param>`). */
  encode(): EncodedMoments {
    this.unflatten();
    const named: [string, tf.Tensor][] = [];
    for (const [name, mom] of this.moments) named.push([`m/${name}`, mom.m], [`v/${name}`, mom.v]);
    return encodeWeights(named);
  }

  /** Replaces the moments by those of {@link encode}, checked against their manifest (size, CRC-32, names, shapes). */
  load(bytes: Uint8Array, manifest: MomentsManifest, where: string): void {
    const tensors = manifest.tensors;
    if (!Array.isArray(tensors)) throw new ModelFileError(`${where}: moments manifest has no tensor list`);
    const names = new Set(tensors.map((t) => t.name));
    for (const t of tensors) {
      const param = this.params.get(t.name.slice(2));
      if (!/^[mv]\//.test(t.name) || param === undefined) throw new ModelFileError(`${where}: moment ${t.name} matches no parameter`);
      if (!names.has(`${t.name.startsWith('m/') ? 'v' : 'm'}/${t.name.slice(2)}`)) throw new ModelFileError(`${where}: moments of ${t.name.slice(2)} are incomplete`);
    }
    const specs = tensors.map((t) => ({ name: t.name, shape: this.params.get(t.name.slice(2))!.shape }));
    const vars = decodeWeights(bytes, { file: where, dtype: 'float32', byteLength: manifest.byteLength, crc32: manifest.crc32, tensors: [...tensors] }, specs, where);
    this.clear();
    for (const name of this.params.keys()) {
      const m = vars.get(`m/${name}`);
      const v = vars.get(`v/${name}`);
      if (m !== undefined && v !== undefined) this.moments.set(name, { m, v });
    }
  }

  /** Copies of the moments (for a snapshot); the caller disposes them. */
  cloneMoments(): Map<string, { m: tf.Tensor; v: tf.Tensor }> {
    this.unflatten();
    return new Map([...this.moments].map(([k, mom]) => [k, { m: tf.clone(mom.m), v: tf.clone(mom.v) }]));
  }

  /** Replaces the moments by copies of `moments` and the update count by `updates`. */
  restoreMoments(moments: ReadonlyMap<string, { m: tf.Tensor; v: tf.Tensor }>, updates: number): void {
    this.clear();
    for (const [k, mom] of moments) this.moments.set(k, { m: tf.clone(mom.m), v: tf.clone(mom.v) });
    this.updates = updates;
  }

  /** Frees the moments. */
  clear(): void {
    for (const mom of this.moments.values()) tf.dispose([mom.m, mom.v]);
    this.moments.clear();
    if (this.flat !== undefined) tf.dispose([this.flat.m, this.flat.v]);
    this.flat = undefined;
    this.decayMask?.dispose();
    this.decayMask = undefined;
  }
}

/** A scalar of the update: a number (eager) or a tensor (fed to a compiled graph). */
export type ScalarLike = number | tf.Scalar;

/**
 * One AdamW update of every variable at once, as flat vectors (tensor ops only, so a compiled
 * graph can stand in for it): gradients scaled by `scale`, weight decay through the 0/1 `mask`.
 * Returns the new weights (shaped like `vars`) and moments; call inside a tidy.
 */
export function fusedAdamUpdate(
  vars: readonly tf.Tensor[],
  grads: readonly tf.Tensor[],
  prev: { m: tf.Tensor1D; v: tf.Tensor1D },
  at: { lr: ScalarLike; scale: ScalarLike; c1: ScalarLike; c2: ScalarLike; mask: tf.Tensor1D | undefined },
  o: Readonly<AdamOptions>,
): { m: tf.Tensor1D; v: tf.Tensor1D; weights: tf.Tensor[] } {
  const flatOf = (ts: readonly tf.Tensor[]): tf.Tensor1D => tf.concat(ts.map((t) => tf.reshape(t, [-1]))) as tf.Tensor1D;
  const w = flatOf(vars);
  const g = tf.mul(flatOf(grads), at.scale);
  const m = tf.add(tf.mul(prev.m, o.beta1), tf.mul(g, 1 - o.beta1)) as tf.Tensor1D;
  const s = tf.add(tf.mul(prev.v, o.beta2), tf.mul(tf.square(g), 1 - o.beta2)) as tf.Tensor1D;
  let update = tf.div(tf.div(m, at.c1), tf.add(tf.sqrt(tf.div(s, at.c2)), o.epsilon));
  if (at.mask !== undefined) update = tf.add(update, tf.mul(tf.mul(w, o.weightDecay), at.mask));
  const pieces = tf.split(tf.sub(w, tf.mul(update, at.lr)), vars.map((v) => v.size));
  return { m, v: s, weights: pieces.map((p, i) => tf.reshape(p, vars[i]!.shape)) };
}
