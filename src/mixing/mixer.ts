/**
 * A gated linear mixer in the logistic domain (the neural mixer of PAQ-family compressors):
 * p = squash(sum_i w_i x_i) over stretched input predictions x, with one weight vector per
 * selector value (the context that decides whose inputs to trust), trained online by gradient
 * descent on the coding cost: dw_i = lr (bit - p) x_i.
 */
import { squash } from './logistic.js';

export class Mixer {
  readonly weights: Float32Array;
  private readonly n: number;
  private base = 0;
  private dot = 0;
  private out = 0.5;

  constructor(
    readonly numInputs: number,
    readonly numSets: number,
    initialWeight: number,
  ) {
    this.n = numInputs;
    this.weights = new Float32Array(numInputs * numSets).fill(initialWeight);
  }

  /** p(bit = 1) from the inputs `x` (length numInputs) with the weight set `set`. */
  mix(x: Float64Array, set: number): number {
    const w = this.weights;
    const base = set * this.n;
    let dot = 0;
    for (let i = 0; i < this.n; i++) dot += w[base + i]! * x[i]!;
    this.base = base;
    this.dot = dot;
    this.out = squash(dot);
    return this.out;
  }

  /** The log-odds of the last {@link mix}. */
  get logit(): number {
    return this.dot;
  }

  /** One gradient step of the last {@link mix} toward `bit`. */
  update(x: Float64Array, bit: number, lr: number): void {
    const g = lr * (bit - this.out);
    const w = this.weights;
    const base = this.base;
    for (let i = 0; i < this.n; i++) w[base + i]! += g * x[i]!;
  }
}
