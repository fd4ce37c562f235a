/**
 * The match model of PAQ-family compressors, per stream: it finds the most recent earlier
 * occurrence of the last `minLength` bytes and predicts the byte that followed it, bit by bit.
 * Logs repeat whole lines kilobytes apart; this is the path that copies them.
 *
 * After a mispredicted byte the pointer keeps moving along the old text (with the miss
 * remembered) instead of being dropped: a line that repeats an earlier one with one field
 * changed is back on track right after the field, without waiting for `minLength` new bytes.
 * Too many recent misses, or a verified longer match elsewhere, replace it.
 */
import type { History } from './history.js';

/** How many of the last 8 bytes the pointer mispredicted before it is dropped. */
const MAX_MISSES = 4;

function popcount8(x: number): number {
  let n = 0;
  for (let v = x & 0xff; v !== 0; v &= v - 1) n++;
  return n;
}

export class MatchModel {
  /** Hash of the last `minLength` bytes -> the position after them (-1 empty); public for save and restore. */
  readonly index: Int32Array;
  private readonly indexMask: number;
  /** Absolute position of the predicted byte, or -1. */
  ptr = -1;
  /** Bytes matched in a row so far. */
  length = 0;
  /** The last 8 byte outcomes of the pointer, 1 = missed (bit 0 the newest). */
  misses = 0;
  /** The predicted byte, or -1 when there is none (or it already failed within this byte). */
  expected = -1;

  constructor(
    indexBits: number,
    readonly minLength: number,
  ) {
    this.index = new Int32Array(1 << indexBits).fill(-1);
    this.indexMask = (1 << indexBits) - 1;
  }

  /** Bucket of the match state for the adaptive tables: 0 none, 1..15 by length, x 4 miss levels. */
  get state(): number {
    if (this.expected < 0) return 0;
    const len = this.length;
    const lb = len < 8 ? 1 + (len >> 1) : len < 16 ? 5 + ((len - 8) >> 2) : len < 32 ? 7 + ((len - 16) >> 3) : len < 64 ? 9 : len < 128 ? 10 : len < 256 ? 11 : len < 512 ? 12 : len < 1024 ? 13 : len < 4096 ? 14 : 15;
    return lb * 4 + Math.min(3, popcount8(this.misses));
  }

  /** Called after each whole byte is appended to `h`. */
  update(h: History, byte: number): void {
    if (this.ptr >= 0) {
      if (h.at(this.ptr) === byte) {
        this.length += 1;
        this.misses = (this.misses << 1) & 0xff;
      } else {
        this.length = 0;
        this.misses = ((this.misses << 1) | 1) & 0xff;
      }
      this.ptr += 1;
      if (popcount8(this.misses) > MAX_MISSES || !h.holds(this.ptr)) this.drop();
    }
    const n = h.length;
    if (n >= this.minLength) {
      let hash = 0;
      for (let i = 1; i <= this.minLength; i++) hash = Math.imul(hash ^ h.last(i), 0x2f0b4f27) + i;
      const slot = (Math.imul(hash, 0x9e3779b1) >>> 0) & this.indexMask;
      if (this.length < this.minLength) {
        const cand = this.index[slot]!;
        if (cand >= 0 && h.holds(cand - 1) && cand - this.minLength >= 0) {
          const len = this.verify(h, cand, n);
          if (len >= this.minLength && len > this.length) {
            this.ptr = cand;
            this.length = len;
            this.misses = 0;
          }
        }
      }
      this.index[slot] = n;
    }
    this.expected = this.ptr >= 0 ? h.at(this.ptr) : -1;
  }

  /** Within a byte: the bits so far (`partial`, with its leading 1) disagree with the prediction. */
  checkPartial(partial: number, bitsDone: number): void {
    if (this.expected >= 0 && ((this.expected | 256) >> (8 - bitsDone)) !== partial) this.expected = -1;
  }

  /** The bit the match predicts at bit `bitsDone` (0 = most significant), or -1. */
  expectedBit(bitsDone: number): number {
    return this.expected < 0 ? -1 : (this.expected >> (7 - bitsDone)) & 1;
  }

  private drop(): void {
    this.ptr = -1;
    this.length = 0;
    this.misses = 0;
  }

  /** How many bytes before `cand` equal those before `end` (at most 32, and 0 on a hash collision). */
  private verify(h: History, cand: number, end: number): number {
    let len = 0;
    while (len < 32 && cand - 1 - len >= 0 && h.holds(cand - 1 - len) && h.at(cand - 1 - len) === h.at(end - 1 - len)) len++;
    return len;
  }
}
