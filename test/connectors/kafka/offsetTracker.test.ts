import test from 'ava';
import { PartitionOffsetTracker } from '../../../connectors/kafka/offsetTracker.js';

test('commit position moves only over a contiguous acknowledged prefix', (t) => {
  const tracker = new PartitionOffsetTracker(10);
  t.is(tracker.committable(), 10);
  for (const o of [10, 11, 12, 14]) t.true(tracker.emit(o));
  tracker.skip(13); // a gap is skipped only once it lies behind emitted offsets; 14 is already emitted
  t.false(tracker.emit(12), 'an offset is emitted once');
  t.is(tracker.inFlight, 4);
  t.true(tracker.ack(11));
  t.is(tracker.committable(), 10, 'offset 10 is not acknowledged yet');
  t.false(tracker.ack(11), 'a second ack is ignored');
  t.false(tracker.ack(13), 'an offset never emitted cannot be acknowledged');
  t.true(tracker.ack(10));
  t.is(tracker.committable(), 12);
  t.true(tracker.ack(14));
  t.is(tracker.committable(), 12);
  t.true(tracker.ack(12));
  t.is(tracker.committable(), 15, 'all acknowledged: commit after the last offset');
  t.is(tracker.inFlight, 0);
});

test('property: for random ack orders the commit position is the first unacknowledged offset', (t) => {
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let trial = 0; trial < 200; trial++) {
    const start = Math.floor(random() * 1000);
    const tracker = new PartitionOffsetTracker(start);
    const offsets: number[] = [];
    let o = start;
    const n = 1 + Math.floor(random() * 300);
    for (let i = 0; i < n; i++) {
      o += 1 + (random() < 0.1 ? Math.floor(random() * 5) : 0); // occasional gaps (compaction, markers)
      offsets.push(o);
      tracker.emit(o);
    }
    const acked = new Set<number>();
    const order = [...offsets].sort(() => random() - 0.5);
    for (const a of order.slice(0, Math.floor(random() * n) + 1)) {
      tracker.ack(a);
      acked.add(a);
      const firstUnacked = offsets.find((x) => !acked.has(x));
      const expected = firstUnacked ?? (offsets[offsets.length - 1] as number) + 1;
      if (tracker.committable() !== expected) {
        t.fail(`trial ${trial}: committable ${tracker.committable()} != ${expected}`);
        return;
      }
      if (tracker.inFlight !== n - acked.size) {
        t.fail(`trial ${trial}: inFlight ${tracker.inFlight} != ${n - acked.size}`);
        return;
      }
    }
  }
  t.pass();
});
