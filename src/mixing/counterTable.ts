/**
 * A hashed table of adaptive bit probabilities, one per (context, partial byte) slot: the
 * n-gram statistics of a context model. Each slot learns p(bit = 1) with the rate 1/(n + 1.5)
 * of its n-th update (a running frequency) until n reaches `limit`, after which the rate stays
 * at 1/(limit + 1.5) so old statistics keep fading (logs change their habits).
 */
import { BadConfigError } from '../errors.js';
import { STRETCH16 } from './logistic.js';

export class CounterTable {
  /** p(bit = 1) of each slot in units of 2^-16 (0.5 when never updated). */
  readonly probs: Uint16Array;
  /** Updates seen by each slot, saturating at `limit`. */
  readonly counts: Uint8Array;
  /**
   * With `checked`: 8 bits of each slot's context hash. A context whose check matches neither
   * slot of its pair has no statistics (it never votes with another context's counts), and on
   * update it takes the pair's less used slot. Without checks, colliding contexts share counts,
   * which on long logs (millions of contexts for 4 M slots) turns confident votes into noise.
   */
  readonly checks: Uint8Array | undefined;
  readonly mask: number;
  private readonly rates: Float64Array;

  constructor(bits: number, limit: number, checked = false) {
    if (!Number.isInteger(bits) || bits < 4 || bits > 28) throw new BadConfigError('tableBits', `must be an integer in [4, 28], got ${String(bits)}`);
    if (!Number.isInteger(limit) || limit < 1 || limit > 255) throw new BadConfigError('counterLimit', `must be an integer in [1, 255], got ${String(limit)}`);
    this.probs = new Uint16Array(1 << bits).fill(32768);
    this.counts = new Uint8Array(1 << bits);
    this.mask = (1 << bits) - 1;
    this.checks = checked ? new Uint8Array(1 << bits) : undefined;
    this.rates = Float64Array.from({ length: limit + 1 }, (_, n) => 1 / (n + 1.5));
  }

  /** p(bit = 1) of slot `i` (never exactly 0 or 1). */
  p(i: number): number {
    return (this.probs[i]! + 0.5) / 65536;
  }

  /** stretch(p(i)), by table lookup (the hot path reads ~16 of these per bit). */
  stretched(i: number): number {
    return STRETCH16[this.probs[i]!]!;
  }

  /** The slot of context `hash` (a 32-bit hash) if it has one (checked tables), else -1. */
  find(hash: number): number {
    const i = hash & this.mask;
    const c = checkOf(hash);
    const k = this.checks!;
    if (k[i] === c) return i;
    if (k[i ^ 1] === c) return i ^ 1;
    return -1;
  }

  /** The slot of context `hash`, claimed (reset) when it has none: the pair's slot with fewer updates. */
  claim(hash: number): number {
    const found = this.find(hash);
    if (found >= 0) return found;
    const i = hash & this.mask;
    const victim = this.counts[i ^ 1]! < this.counts[i]! ? i ^ 1 : i;
    this.checks![victim] = checkOf(hash);
    this.counts[victim] = 0;
    this.probs[victim] = 32768;
    return victim;
  }

  /** Moves slot `i` toward `bit`. */
  update(i: number, bit: number): void {
    const n = this.counts[i]!;
    const p = this.probs[i]!;
    const target = bit === 1 ? 65535 : 0;
    this.probs[i] = p + Math.round((target - p) * this.rates[n]!);
    if (n < this.rates.length - 1) this.counts[i] = n + 1;
  }
}

/** 8 check bits from the hash bits above the slot index (never 0, so an empty slot matches nothing). */
const checkOf = (hash: number): number => ((hash >>> 24) % 255) + 1;
