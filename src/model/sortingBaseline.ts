// Baselines of the sorting task (DESIGN §8) that a trained model must beat, computed by
// counting over sampled sequences, never assumed.
//
// Frequency-blind: the predictor sees the target position k and, as the model does (teacher
// forcing), the targets already emitted, but nothing about how often each symbol occurred.
// The best such predictor is argmax_s P(target_k = s | targets before k); estimated from many
// training sequences as the count of s at rank k, among the symbols not yet emitted. (Symbols
// are exchangeable under the generator, so this comes out near 1 / (20 - k) per position,
// H_20 / 20 = 0.180 on average; the counts measure it rather than assume it.)
import { SORT_SYMBOLS, sortingSequence, sortingTarget } from './sortingTask.js';

/** counts[k][s]: how often symbol s is the k-th target over `numSequences` sequences. */
export function rankCounts(numSequences: number, length: number, seedOf: (i: number) => number): number[][] {
  const counts = Array.from({ length: SORT_SYMBOLS }, () => new Array<number>(SORT_SYMBOLS).fill(0));
  for (let i = 0; i < numSequences; i++) {
    sortingTarget(sortingSequence(length, seedOf(i))).forEach((s, k) => (counts[k]![s]! += 1));
  }
  return counts;
}

/**
 * Accuracy over the 20 target positions of `targets` of the frequency-blind predictor built
 * from `counts`: at position k, the most frequent rank-k symbol in the counts, among the
 * symbols not emitted before k (`exclude` true) or among all (`exclude` false).
 */
export function frequencyBlindAccuracy(counts: number[][], targets: readonly number[][], exclude: boolean): number {
  let correct = 0;
  for (const target of targets) {
    const emitted = new Set<number>();
    target.forEach((y, k) => {
      let best = -1;
      for (let s = 0; s < SORT_SYMBOLS; s++) {
        if (exclude && emitted.has(s)) continue;
        if (best < 0 || counts[k]![s]! > counts[k]![best]!) best = s;
      }
      if (best === y) correct += 1;
      emitted.add(y);
    });
  }
  return correct / (targets.length * SORT_SYMBOLS);
}

/**
 * Accuracy of a predictor that counts only the last `window` symbols of each sequence (what a
 * model whose attention reaches no further could count at best, roughly): at position k, the
 * not-yet-emitted symbol most frequent in the window (ties: the smaller symbol).
 */
export function windowCountAccuracy(sequences: readonly Int32Array[], window: number): number {
  let correct = 0;
  for (const seq of sequences) {
    const counts = new Array<number>(SORT_SYMBOLS).fill(0);
    for (let j = Math.max(0, seq.length - window); j < seq.length; j++) counts[seq[j]!]! += 1;
    const emitted = new Set<number>();
    sortingTarget(seq).forEach((y) => {
      let best = -1;
      for (let s = 0; s < SORT_SYMBOLS; s++) if (!emitted.has(s) && (best < 0 || counts[s]! > counts[best]!)) best = s;
      if (best === y) correct += 1;
      emitted.add(y);
    });
  }
  return correct / (sequences.length * SORT_SYMBOLS);
}
