// The CLI's record of what each key of each input partition has applied (bin/cli/kafkaStreamState.ts):
// what a member taking a partition over may skip as applied, and which in-memory states are stale.
import test from 'ava';
import { AppliedOffsets } from '../../bin/cli/kafkaStreamState.js';

const T = 'in';

test('a line is applied once: a record read again after a rebalance is skipped, a record split into lines passes for each of its lines', (t) => {
  const applied = new AppliedOffsets();
  const record = {};
  t.true(applied.accept(T, 0, 'k', 5, record));
  t.true(applied.accept(T, 0, 'k', 5, record), 'the next line of the same record');
  t.false(applied.accept(T, 0, 'k', 5, {}), 'the same offset read again');
  t.false(applied.accept(T, 0, 'k', 4, {}));
  t.true(applied.accept(T, 0, 'k', 6, {}));
  t.true(applied.accept(T, 1, 'k', 0, {}), 'partitions are apart');
});

test('taking a partition over: keys the changelog has no state for are forgotten (a fenced zombie applied them but never committed), restored keys count from their covered offset', (t) => {
  const applied = new AppliedOffsets();
  // Before it froze, this member applied records 0..55 of partition 0 (keys a, b) and 0..9 of partition 1; nothing committed.
  for (let offset = 0; offset <= 55; offset++) t.true(applied.accept(T, 0, offset % 2 === 0 ? 'a' : 'b', offset, {}));
  for (let offset = 0; offset <= 9; offset++) t.true(applied.accept(T, 1, 'c', offset, {}));
  // It gets partition 0 back: the changelog holds no state of it (nobody committed any).
  const stale = applied.takeOver(T, 0, new Map());
  t.deepEqual(stale.sort(), ['a', 'b'], 'both in-memory states are stale');
  // Read again from the committed offset 0, every record is applied (and output) again.
  for (let offset = 0; offset <= 55; offset++) t.true(applied.accept(T, 0, offset % 2 === 0 ? 'a' : 'b', offset, {}), `offset ${offset}`);
  // Partition 1 is untouched.
  t.false(applied.accept(T, 1, 'c', 9, {}));
});

test('taking a partition over: a restored key skips what its state covers; it is stale only when this member applied other input to it', (t) => {
  const applied = new AppliedOffsets();
  t.true(applied.accept(T, 0, 'a', 20, {}));
  t.true(applied.accept(T, 0, 'b', 12, {}));
  const stale = applied.takeOver(T, 0, new Map([['a', 12], ['b', 12], ['d', 3]]));
  t.deepEqual(stale, ['a'], 'a applied up to 20 here, restored at 12; b is exactly the restored state; d never ran here');
  t.false(applied.accept(T, 0, 'a', 12, {}));
  t.true(applied.accept(T, 0, 'a', 13, {}));
  t.false(applied.accept(T, 0, 'd', 2, {}));
  t.true(applied.accept(T, 0, 'd', 4, {}));
});
