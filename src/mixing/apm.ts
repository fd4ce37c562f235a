/**
 * An adaptive probability map (secondary estimation): refines a probability given a small
 * context by interpolating a learned curve over 33 knots of its log-odds in [-8, 8]. It
 * corrects what the mixer gets systematically wrong in that context (over- or under-confidence).
 */
import { squash, stretch } from './logistic.js';

const KNOTS = 33;
const LOW = -8;
const STEP = 16 / (KNOTS - 1);

export class Apm {
  readonly table: Float32Array;
  private lo = 0;
  private frac = 0;

  constructor(
    readonly numContexts: number,
    private readonly rate: number,
  ) {
    this.table = new Float32Array(numContexts * KNOTS);
    for (let c = 0; c < numContexts; c++) for (let k = 0; k < KNOTS; k++) this.table[c * KNOTS + k] = squash(LOW + k * STEP);
  }

  /** The refined p(bit = 1) of `p` in context `ctx`. */
  refine(p: number, ctx: number): number {
    return this.refineStretched(stretch(p), ctx);
  }

  /** {@link refine} given stretch(p) (several maps refining the same p share one logarithm). */
  refineStretched(sp: number, ctx: number): number {
    let pos = (sp - LOW) / STEP;
    if (pos < 0) pos = 0;
    else if (pos > KNOTS - 1.001) pos = KNOTS - 1.001;
    const k = Math.floor(pos);
    this.lo = ctx * KNOTS + k;
    this.frac = pos - k;
    return this.table[this.lo]! * (1 - this.frac) + this.table[this.lo + 1]! * this.frac;
  }

  /** Where the last {@link refine} read: the lower knot's index plus its interpolation fraction. */
  get position(): number {
    return this.lo + this.frac;
  }

  /** Moves the two knots read at `position` toward `bit`, each by its interpolation weight. */
  update(position: number, bit: number): void {
    const t = this.table;
    const a = Math.floor(position);
    const frac = position - a;
    t[a]! += this.rate * (1 - frac) * (bit - t[a]!);
    t[a + 1]! += this.rate * frac * (bit - t[a + 1]!);
  }
}
