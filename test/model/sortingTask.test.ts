import test from 'ava';
import { SORT_PADDING, SORT_SEPARATOR, SORT_SYMBOLS, sortingSequence, sortingTarget, sortingTaskSource } from '../../src/index.js';

test('sorting target: a permutation of the 20 symbols, by count descending, ties by first occurrence, unseen last ascending (property)', (t) => {
  for (let seed = 0; seed < 200; seed++) {
    const length = 1 + (seed % 37) * 3;
    const seq = sortingSequence(length, seed);
    const target = sortingTarget(seq);
    t.deepEqual([...target].sort((a, b) => a - b), Array.from({ length: SORT_SYMBOLS }, (_, i) => i));
    const count = (s: number): number => seq.filter((x) => x === s).length;
    const first = (s: number): number => seq.indexOf(s);
    for (let k = 0; k + 1 < SORT_SYMBOLS; k++) {
      const a = target[k]!;
      const b = target[k + 1]!;
      t.true(count(a) >= count(b));
      if (count(a) === count(b)) t.true(count(a) === 0 ? a < b : first(a) < first(b));
    }
  }
});

test('sorting sequences drift from p_init to p_final (the two halves differ) and use symbols 0..19 only', (t) => {
  const seq = sortingSequence(20_000, 5);
  t.true(seq.every((s) => s >= 0 && s < SORT_SYMBOLS));
  const freq = (from: number, to: number): number[] => {
    const f = new Array<number>(SORT_SYMBOLS).fill(0);
    for (let j = from; j < to; j++) f[seq[j]!]! += 1 / (to - from);
    return f;
  };
  const early = freq(0, 2000);
  const late = freq(18_000, 20_000);
  const distance = early.reduce((d, p, i) => d + Math.abs(p - late[i]!), 0);
  t.log(`L1 distance between early and late symbol frequencies: ${distance.toFixed(3)}`);
  t.true(distance > 0.1);
});

test('sorting source: lines of T symbols, separator, 20 targets, padding; loss only on the targets; fresh stream per line', (t) => {
  const L = 16;
  const T = 40;
  const source = sortingTaskSource({ numStreams: 2, length: T, segmentLength: L, seed: 3 });
  const segments = Math.ceil((T + 1 + SORT_SYMBOLS) / L);
  for (let line = 0; line < 2; line++) {
    const inputs: number[][] = [[], []];
    const weights: number[][] = [[], []];
    const targets: number[][] = [[], []];
    for (let s = 0; s < segments; s++) {
      const batch = source.next();
      t.deepEqual(batch.reset, [s === 0, s === 0]);
      for (let i = 0; i < 2; i++) {
        inputs[i]!.push(...batch.inputs[i]!);
        targets[i]!.push(...batch.targets[i]!);
        weights[i]!.push(...batch.weights![i]!);
      }
    }
    for (let i = 0; i < 2; i++) {
      const seq = inputs[i]!.slice(0, T);
      t.is(inputs[i]![T], SORT_SEPARATOR);
      t.deepEqual(inputs[i]!.slice(T + 1, T + 1 + SORT_SYMBOLS), sortingTarget(seq));
      t.true(inputs[i]!.slice(T + 1 + SORT_SYMBOLS).every((x) => x === SORT_PADDING));
      t.deepEqual(targets[i]!.slice(0, -1), inputs[i]!.slice(1));
      const scored = weights[i]!.flatMap((w, p) => (w > 0 ? [p] : []));
      t.deepEqual(scored, Array.from({ length: SORT_SYMBOLS }, (_, k) => T + k));
      t.deepEqual(scored.map((p) => targets[i]![p]), sortingTarget(seq));
    }
  }
});
