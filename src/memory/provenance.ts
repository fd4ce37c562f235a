/**
 * Which past segment each point of the memory's domain [0, 1] holds, followed through the
 * contractions (docs/results.md: where the memory's space goes). A contraction reads the old
 * signal at positions s_m and lays the M values on the centred grid tau (m - 1/2) / M
 * (contractMemory), so the m-th laid sample inherits the segment found at s_m; [tau, 1] goes to
 * the segment just absorbed. The basis blurs each read over about one basis width; the label is
 * that of the read position. With uniform reading, the segment absorbed k contractions ago holds
 * (1 - tau) tau^(k-1) of [0, tau]; sticky reading moves that space to where attention went.
 */
import { BadInputError } from '../errors.js';

/** Segment labels over a grid of cells on [0, 1]. */
export class MemoryProvenance {
  /** Segment id held by each cell; -1 before the first fit. */
  owner: Int32Array;

  /** `cells` should be a multiple of M / tau so that each laid sample covers whole cells. */
  constructor(readonly cells = 4096) {
    if (!Number.isInteger(cells) || cells < 1) throw new BadInputError('cells', `must be a positive integer, got ${String(cells)}`);
    this.owner = new Int32Array(cells).fill(-1);
  }

  /** The first fit: the whole domain holds segment `id`. */
  fit(id: number): void {
    this.owner.fill(id);
  }

  /** One contraction reading the old memory at `positions` (M of them in [0, 1]), laying them on [0, tau), and segment `id` on [tau, 1]. */
  contract(positions: ArrayLike<number>, tau: number, id: number): void {
    const M = positions.length;
    if (M < 1) throw new BadInputError('positions', 'need at least one read position');
    if (!(tau > 0 && tau < 1)) throw new BadInputError('tau', `must lie in (0, 1), got ${tau}`);
    const old = this.owner;
    const next = new Int32Array(this.cells);
    for (let c = 0; c < this.cells; c++) {
      const t = (c + 0.5) / this.cells;
      if (t >= tau) next[c] = id;
      else {
        const s = positions[Math.min(M - 1, Math.floor((t / tau) * M))]!;
        if (!(s >= 0 && s <= 1)) throw new BadInputError('positions', `must lie in [0, 1], got ${s}`);
        next[c] = old[Math.min(this.cells - 1, Math.floor(s * this.cells))]!;
      }
    }
    this.owner = next;
  }

  /** Share of [0, tau) held by the segment of each age 1..maxAge, where age = `newest` - id. */
  sharesByAge(tau: number, newest: number, maxAge: number): number[] {
    const shares = new Array<number>(maxAge).fill(0);
    const inPast = Math.round(tau * this.cells);
    for (let c = 0; c < inPast; c++) {
      const age = newest - this.owner[c]!;
      if (age >= 1 && age <= maxAge) shares[age - 1]! += 1 / inPast;
    }
    return shares;
  }
}
