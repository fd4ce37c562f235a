/**
 * At-least-once bookkeeping for one partition: which emitted offsets are still waiting for
 * their outputs to be acknowledged, and the highest offset that may be committed. Acks may
 * arrive in any order; the commit position only moves over a contiguous acknowledged prefix,
 * so a crash never skips a record whose outputs were not delivered.
 */
export class PartitionOffsetTracker {
  /** Emitted offsets in emission (= offset) order, from `head` on. */
  private offsets: number[] = [];
  private acked: boolean[] = [];
  private head = 0;
  private pending = 0;
  /** The offset after the last one emitted or skipped; the commit position when nothing is pending. */
  private next: number;

  /** @param startOffset the first offset this tracker will see (the partition's fetch position). */
  constructor(startOffset: number) {
    this.next = startOffset;
  }

  /** Records emitted and not yet acknowledged. */
  get inFlight(): number {
    return this.pending;
  }

  /** The offset after the last one emitted. */
  get nextOffset(): number {
    return this.next;
  }

  /** Registers an emitted offset (must increase). Returns false for an offset already seen. */
  emit(offset: number): boolean {
    if (offset < this.next) return false;
    this.offsets.push(offset);
    this.acked.push(false);
    this.pending++;
    this.next = offset + 1;
    return true;
  }

  /** Moves past an offset that needs no acknowledgement (a gap, or a record skipped as already applied). */
  skip(offset: number): void {
    if (offset >= this.next) this.next = offset + 1;
  }

  /** Marks an offset's outputs as delivered. Returns false if unknown or already acknowledged. */
  ack(offset: number): boolean {
    // Acks mostly come in order, so search from the head.
    for (let i = this.head; i < this.offsets.length; i++) {
      if (this.offsets[i] === offset) {
        if (this.acked[i]) return false;
        this.acked[i] = true;
        this.pending--;
        this.advance();
        return true;
      }
      if ((this.offsets[i] as number) > offset) return false;
    }
    return false;
  }

  private advance(): void {
    while (this.head < this.offsets.length && this.acked[this.head]) this.head++;
    if (this.head > 4096 && this.head * 2 > this.offsets.length) {
      this.offsets = this.offsets.slice(this.head);
      this.acked = this.acked.slice(this.head);
      this.head = 0;
    }
  }

  /** The offset to commit: the first unacknowledged one, or `nextOffset` when none is pending. */
  committable(): number {
    return this.head < this.offsets.length ? (this.offsets[this.head] as number) : this.next;
  }
}
