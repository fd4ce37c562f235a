/**
 * The recent bytes of one stream in a ring buffer, addressed by absolute position (the count
 * of bytes before it), so older positions stay meaningful as long as they are in the ring.
 */
export class History {
  readonly bytes: Uint8Array;
  private readonly mask: number;
  /** Bytes appended so far (the absolute position of the next byte). */
  length = 0;

  constructor(bits: number) {
    this.bytes = new Uint8Array(1 << bits);
    this.mask = (1 << bits) - 1;
  }

  push(byte: number): void {
    this.bytes[this.length & this.mask] = byte;
    this.length += 1;
  }

  /** True when absolute position `pos` is still in the ring. */
  holds(pos: number): boolean {
    return pos >= 0 && pos < this.length && this.length - pos <= this.bytes.length;
  }

  /** The byte at absolute position `pos` (which must be held). */
  at(pos: number): number {
    return this.bytes[pos & this.mask]!;
  }

  /** The byte `back` positions before the end (1 = the last one), 0 before the start. */
  last(back: number): number {
    return back <= this.length ? this.bytes[(this.length - back) & this.mask]! : 0;
  }
}
