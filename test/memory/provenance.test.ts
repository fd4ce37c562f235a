// MemoryProvenance: which segment each point of the memory holds, through contractions. The
// uniform case is checked against the closed form (1 - tau) tau^(k-1); the sticky case against
// the example (every read in [0.45, 0.55]: that tenth of the old memory fills [0, tau)).
import test from 'ava';
import { BadInputError, MemoryProvenance, centredPositions } from '../../src/index.js';

test('uniform contraction: the segment absorbed k contractions ago holds (1 - tau) tau^(k-1) of [0, tau)', (t) => {
  const M = 128;
  const tau = 0.5;
  const p = new MemoryProvenance(4096);
  p.fit(0);
  for (let id = 1; id <= 6; id++) p.contract(centredPositions(M), tau, id);
  const shares = p.sharesByAge(tau, 6, 6);
  // Ages 1..5 exactly; age 6 also holds what was left of the first fit (the whole domain at id 0).
  [0.5, 0.25, 0.125, 0.0625, 0.03125].forEach((want, k) => t.is(shares[k], want, `age ${k + 1}`));
  t.is(p.sharesByAge(tau, 6, 7).reduce((a, b) => a + b, 0), 1);
  // [tau, 1] holds the newest segment.
  t.true(Array.from(p.owner.subarray(2048)).every((id) => id === 6));
});

test('sticky reads in [0.45, 0.55] fill [0, tau) with what the old memory held there', (t) => {
  const tau = 0.5;
  const p = new MemoryProvenance(4096);
  p.fit(0);
  p.contract(centredPositions(128), tau, 1); // segment 0 on [0, 0.5), segment 1 on [0.5, 1)
  const reads = Float64Array.from({ length: 128 }, (_, m) => 0.45 + (0.1 * (m + 0.5)) / 128);
  p.contract(reads, tau, 2);
  // Half the reads fall below 0.5 (segment 0), half above (segment 1): each gets half of [0, tau).
  t.deepEqual(p.sharesByAge(tau, 2, 2), [0.5, 0.5]);
  // Reads all above 0.5: segment 0 is gone, segment 1 fills [0, tau).
  p.contract(Float64Array.from({ length: 128 }, () => 0.75), tau, 3);
  t.deepEqual(p.sharesByAge(tau, 3, 3), [1, 0, 0]);
});

test('bad inputs are typed errors', (t) => {
  const p = new MemoryProvenance(256);
  t.throws(() => p.contract([], 0.5, 1), { instanceOf: BadInputError });
  t.throws(() => p.contract([0.5], 1, 1), { instanceOf: BadInputError });
  t.throws(() => p.contract([1.5], 0.5, 1), { instanceOf: BadInputError });
  t.throws(() => new MemoryProvenance(0), { instanceOf: BadInputError });
});
