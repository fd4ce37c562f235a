/**
 * What every contender of the peers benchmark measures; each call returns raw times (ms per
 * call) so the driver takes medians the same way for all of them.
 */
export interface Contender {
  /** Column name, e.g. "library native". */
  readonly name: string;
  /** Called before each of the contender's turns (the library switches tfjs backend here). */
  activate(): Promise<void>;
  /** ms per n x n x n float32 matmul. */
  matmul(n: number, reps: number): Promise<number[]>;
  /** ms per segment-mode forward of `streams` streams x L tokens (after two warm-up segments). */
  segment(streams: number, segments: number): Promise<number[]>;
  /** ms per token-mode step of one stream (after 2L warm-up tokens, so a memory is read). */
  token(tokens: number): Promise<number[]>;
  /** ms per training step (forward, backward, Adam) of `streams` streams x L tokens. */
  train(streams: number, steps: number): Promise<number[]>;
  /** Full-attention transformer: ms per forward of `newTokens` tokens against a cache of `context`, and RSS after. */
  fullAttention(context: number, newTokens: number, reps: number): Promise<{ ms: number[]; rssMiB: number }>;
  /** The ∞-former on one stream: advance it (untimed) to `to` tokens if short of it, then time `segments` more segments. */
  sweep(to: number, segments: number): Promise<{ ms: number[]; rssMiB: number }>;
  /** Starts a fresh sweep stream / frees it. */
  sweepStart(): Promise<void>;
  sweepEnd(): Promise<void>;
  close(): Promise<void>;
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

export const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
