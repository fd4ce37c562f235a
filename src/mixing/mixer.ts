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
  private dot = 0;

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
    this.dot = dot;
    return squash(dot);
  }

  /** The log-odds of the last {@link mix}. */
  get logit(): number {
    return this.dot;
  }

  /** One gradient step toward `bit` of a mix of inputs `x` (from offset `at`) with weight set `set` that gave `p`. */
  update(x: Float64Array, at: number, set: number, p: number, bit: number, lr: number): void {
    const g = lr * (bit - p);
    const w = this.weights;
    const base = set * this.n;
    for (let i = 0; i < this.n; i++) w[base + i]! += g * x[at + i]!;
  }
}
