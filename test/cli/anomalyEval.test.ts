import test from 'ava';
import { flagMetrics, newTemplateScores, rocAuc, template, trigramNoveltyScores } from '../../bin/cli/anomalyEval.js';
import { lcg } from '../helpers/reference64.js';

test('rocAuc is the share of (positive, negative) pairs ranked right, ties half (brute force, random cases)', (t) => {
  const r = lcg(3);
  for (let c = 0; c < 50; c++) {
    const n = 5 + Math.floor(r() * 40);
    const scores = Array.from({ length: n }, () => Math.floor(r() * 6));
    const labels = Array.from({ length: n }, () => r() < 0.4);
    let pairs = 0;
    let right = 0;
    scores.forEach((a, i) => scores.forEach((b, j) => {
      if (labels[i] && !labels[j]) {
        pairs++;
        right += a > b ? 1 : a === b ? 0.5 : 0;
      }
    }));
    const want = pairs === 0 ? Number.NaN : right / pairs;
    const got = rocAuc(scores, labels);
    if (Number.isNaN(want)) t.true(Number.isNaN(got));
    else t.true(Math.abs(got - want) < 1e-12, `case ${c}`);
  }
  t.is(rocAuc([1, 2, 3, 4], [false, false, true, true]), 1);
  t.is(rocAuc([4, 3, 2, 1], [false, false, true, true]), 0);
});

test('flag metrics, templates and novelty rules on a worked example', (t) => {
  t.deepEqual(flagMetrics([true, true, false, false], [true, false, true, false]), { flagged: 2, precision: 0.5, recall: 0.5, f1: 0.5 });
  t.is(template('sshd[1234]: Failed password for root from 10.0.0.7 port 22 0xdeadbeef'), 'sshd[#]: Failed password for root from #.#.#.# port # #');
  const lines = [
    { key: 'a', text: 'conn 1 from 10.0.0.1', positive: false },
    { key: 'a', text: 'conn 2 from 10.0.0.2', positive: false },
    { key: 'b', text: 'conn 3 from 10.0.0.3', positive: false },
    { key: 'a', text: 'disk full', positive: true },
  ];
  t.deepEqual(newTemplateScores(lines), [1, 0, 1, 1]);
  const tri = trigramNoveltyScores(lines);
  t.is(tri[0], 1);
  t.true(tri[1]! > 0 && tri[1]! < 0.5);
  t.is(tri[2], 1);
  t.is(tri[3], 1);
});
