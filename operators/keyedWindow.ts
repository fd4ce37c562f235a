/**
 * Bounded per-key state for the metric operators: at most `maxKeys` keys, least recently seen
 * evicted first, so an endless stream of new keys cannot grow memory.
 */
export class KeyedState<S> {
  private readonly map = new Map<string, S>();

  constructor(
    private readonly maxKeys: number,
    private readonly create: (key: string) => S,
  ) {}

  /** The state of `key`, created on first sight; marks it most recently used. */
  get(key: string): S {
    let s = this.map.get(key);
    if (s === undefined) {
      s = this.create(key);
      if (this.map.size >= this.maxKeys) this.map.delete(this.map.keys().next().value as string);
    } else this.map.delete(key);
    this.map.set(key, s);
    return s;
  }

  get size(): number {
    return this.map.size;
  }

  /** Every key and its state, least recently used first. */
  entries(): IterableIterator<[string, S]> {
    return this.map.entries();
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }
}

/** A fixed-capacity ring of numbers with a running sum. */
export class Ring {
  private readonly values: Float64Array;
  private start = 0;
  private count = 0;
  private total = 0;

  constructor(capacity: number) {
    this.values = new Float64Array(capacity);
  }

  push(v: number): void {
    const cap = this.values.length;
    if (this.count === cap) {
      this.total -= this.values[this.start]!;
      this.values[this.start] = v;
      this.start = (this.start + 1) % cap;
    } else {
      this.values[(this.start + this.count) % cap] = v;
      this.count++;
    }
    this.total += v;
  }

  get length(): number {
    return this.count;
  }

  get sum(): number {
    return this.total;
  }

  /** A copy of the values, oldest first. */
  toArray(): number[] {
    return Array.from({ length: this.count }, (_, i) => this.values[(this.start + i) % this.values.length]!);
  }
}
