// The sorting task's counting baselines (src/model/sortingBaseline.ts), against truths worked by
// hand: the frequency-blind predictor is near H_20 / 20 = 0.180 (symbols are exchangeable), and
// the window-count predictor is exact on a sequence whose counts are all distinct.
import test from 'ava';
import { SORT_SYMBOLS, frequencyBlindAccuracy, rankCounts, sortingSequence, sortingTarget, windowCountAccuracy } from '../../src/index.js';

test('frequency-blind accuracy with exclusion is near H_20 / 20', (t) => {
  const counts = rankCounts(4000, 256, (i) => 17 + i);
  const targets = Array.from({ length: 400 }, (_, i) => sortingTarget(sortingSequence(256, 90_000 + i)));
  let h = 0;
  for (let k = 1; k <= SORT_SYMBOLS; k++) h += 1 / k;
  const acc = frequencyBlindAccuracy(counts, targets, true);
  t.true(Math.abs(acc - h / SORT_SYMBOLS) < 0.02, `${acc} vs ${h / SORT_SYMBOLS}`);
});

test('window counts: exact with all of a sequence of distinct counts; the last symbols only when they say so', (t) => {
  // Symbol s appears s + 1 times, in blocks 0, 1, 1, 2, 2, 2, ...: the target is 19, 18, ..., 0.
  const seq = Int32Array.from(Array.from({ length: SORT_SYMBOLS }, (_, s) => new Array<number>(s + 1).fill(s)).flat());
  t.deepEqual(sortingTarget(seq), Array.from({ length: SORT_SYMBOLS }, (_, k) => SORT_SYMBOLS - 1 - k));
  t.is(windowCountAccuracy([seq], seq.length), 1);
  // The last 20 symbols are all 19: the window ranks 19 first (right), then, as the targets
  // 18, 17, ... are emitted, the smallest unseen symbol, 0, which is right only at the last
  // position (target 0): 2 of 20.
  t.is(windowCountAccuracy([seq], 20), 2 / SORT_SYMBOLS);
});
