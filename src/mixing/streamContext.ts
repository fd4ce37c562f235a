/**
 * What one stream (one key) contributes to bitwise context mixing: its recent bytes, its match
 * model, and the hashes of its current contexts, recomputed at each byte boundary. Everything
 * learned (the counter tables, mixers, maps) is shared between streams; this is per key.
 *
 * The contexts are those that predict machine text: the last 1, 2, 3, 4, 6 and 12 bytes; the
 * word so far with the word before it, and with its field number; the word before with the last
 * byte; the column with the byte above it in the previous line (fixed layouts), and the byte
 * above with the last two; the field number in the line with the last byte; the 2nd and 3rd last
 * bytes (a sparse context that skips a changing byte); and the last 6 bytes with digits masked
 * (timestamps, counters, addresses that differ only in their digits).
 */
import { History } from './history.js';
import { MatchModel } from './matchModel.js';

/** Hashed contexts per byte (besides order 0, which is direct). */
export const NUM_HASHED_CONTEXTS = 14;

const isWordByte = (b: number): boolean => (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b >= 128;
const mask = (b: number): number => (b >= 48 && b <= 57 ? 48 : b);

const mixHash = (h: number, x: number): number => Math.imul(h ^ x, 0x5bd1e995) ^ (Math.imul(h ^ x, 0x5bd1e995) >>> 15);

export interface StreamContextOptions {
  historyBits: number;
  matchIndexBits: number;
  matchMinLength: number;
}

/** The scalar state of a {@link StreamContext} besides its arrays (for save and restore). */
export interface StreamScalars {
  length: number;
  partial: number;
  bitsDone: number;
  word: number;
  prevWord: number;
  column: number;
  field: number;
  lineStart: number;
  prevLineStart: number;
  matchPtr: number;
  matchLength: number;
  matchMisses: number;
  matchExpected: number;
}

export class StreamContext {
  readonly options: Readonly<StreamContextOptions>;
  readonly history: History;
  readonly match: MatchModel;
  /** Hash of each hashed context for the next byte. */
  readonly hashes = new Int32Array(NUM_HASHED_CONTEXTS);
  /** The bits of the current byte so far, with a leading 1 (1 at a byte boundary). */
  partial = 1;
  bitsDone = 0;
  private word = 0;
  private prevWord = 0;
  private column = 0;
  private field = 0;
  private lineStart = 0;
  private prevLineStart = -1;

  constructor(o: StreamContextOptions) {
    this.options = Object.freeze({ historyBits: o.historyBits, matchIndexBits: o.matchIndexBits, matchMinLength: o.matchMinLength });
    this.history = new History(o.historyBits);
    this.match = new MatchModel(o.matchIndexBits, o.matchMinLength);
    this.computeHashes();
  }

  /** The last byte (0 before the first). */
  get c1(): number {
    return this.history.last(1);
  }

  /** Appends a whole byte and moves every context on. */
  push(byte: number): void {
    const h = this.history;
    h.push(byte);
    this.match.update(h, byte);
    if (isWordByte(byte)) this.word = mixHash(this.word + 1, byte);
    else if (this.word !== 0) {
      this.prevWord = this.word;
      this.word = 0;
    }
    if (byte === 10) {
      this.prevLineStart = this.lineStart;
      this.lineStart = h.length;
      this.column = 0;
      this.field = 0;
    } else {
      this.column += 1;
      if (byte === 32 || byte === 9) this.field += 1;
    }
    this.partial = 1;
    this.bitsDone = 0;
    this.computeHashes();
  }

  private computeHashes(): void {
    const h = this.history;
    const c = this.hashes;
    let acc = 0;
    const orders = [1, 2, 3, 4, 6];
    let k = 0;
    for (let i = 1; i <= 6; i++) {
      acc = mixHash(acc, h.last(i) + 1);
      if (orders[k] === i) c[k++] = mixHash(acc, 0x1000 * (k + 1));
    }
    c[5] = mixHash(mixHash(this.word, this.prevWord), 0x6001);
    const aboveAt = this.prevLineStart + this.column;
    const above = this.prevLineStart >= 0 && aboveAt < this.lineStart && h.holds(aboveAt) ? h.at(aboveAt) : 0;
    c[6] = mixHash(mixHash(Math.min(this.column, 255), above), 0x7001);
    c[7] = mixHash(mixHash(Math.min(this.field, 63), h.last(1)), 0x8001);
    let m = 0;
    for (let i = 1; i <= 6; i++) m = mixHash(m, mask(h.last(i)) + 1);
    c[8] = mixHash(m, 0x9001);
    c[9] = mixHash(mixHash(this.word, Math.min(this.field, 63)), 0xa001);
    c[10] = mixHash(mixHash(h.last(2), h.last(3)), 0xb001);
    let o = acc;
    for (let i = 7; i <= 12; i++) o = mixHash(o, h.last(i) + 1);
    c[11] = mixHash(o, 0xc001);
    c[12] = mixHash(mixHash(mixHash(above, h.last(1)), h.last(2)), 0xd001);
    c[13] = mixHash(mixHash(this.prevWord, h.last(1)), 0xe001);
  }

  /** The scalar state (the arrays are `history.bytes`, `match.index` and `hashes`). */
  saveScalars(): StreamScalars {
    const m = this.match;
    return {
      length: this.history.length,
      partial: this.partial,
      bitsDone: this.bitsDone,
      word: this.word,
      prevWord: this.prevWord,
      column: this.column,
      field: this.field,
      lineStart: this.lineStart,
      prevLineStart: this.prevLineStart,
      matchPtr: m.ptr,
      matchLength: m.length,
      matchMisses: m.misses,
      matchExpected: m.expected,
    };
  }

  /** Sets the scalar state saved by {@link saveScalars} (the caller restores the arrays). */
  loadScalars(v: StreamScalars): void {
    this.history.length = v.length;
    this.partial = v.partial;
    this.bitsDone = v.bitsDone;
    this.word = v.word;
    this.prevWord = v.prevWord;
    this.column = v.column;
    this.field = v.field;
    this.lineStart = v.lineStart;
    this.prevLineStart = v.prevLineStart;
    this.match.ptr = v.matchPtr;
    this.match.length = v.matchLength;
    this.match.misses = v.matchMisses;
    this.match.expected = v.matchExpected;
  }

  /** Records one bit of the current byte. */
  pushBit(bit: number): void {
    this.partial = (this.partial << 1) | bit;
    this.bitsDone += 1;
    this.match.checkPartial(this.partial, this.bitsDone);
  }
}
