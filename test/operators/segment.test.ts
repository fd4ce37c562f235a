import test from 'ava';
import { TestScheduler } from 'rxjs/testing';
import { from, lastValueFrom, toArray } from 'rxjs';
import { segment } from '../../operators/segment.js';
import { BadConfigError } from '../../src/errors.js';

const scheduler = (t: { deepEqual: (a: unknown, b: unknown) => void }): TestScheduler => new TestScheduler((actual, expected) => t.deepEqual(actual, expected));

test('full segments as soon as they fill; the partial one on completion', (t) => {
  scheduler(t).run(({ cold, expectObservable, expectSubscriptions }) => {
    const src = cold('a-b-c-d-e-f-g-|');
    expectObservable(src.pipe(segment({ length: 3 }))).toBe('----x-----y---(z|)', {
      x: ['a', 'b', 'c'],
      y: ['d', 'e', 'f'],
      z: ['g'],
    });
    expectSubscriptions(src.subscriptions).toBe('^-------------!');
  });
});

test('a partial segment is flushed maxDelayMs after its first element (low-rate stream)', (t) => {
  scheduler(t).run(({ cold, expectObservable }) => {
    const src = cold('a 2ms b 20ms c d e 20ms |');
    // a at 0, b at 3: flushed at 10 (a's deadline). c at 24, d 25, e 26 fill a segment of 3.
    expectObservable(src.pipe(segment({ length: 3, maxDelayMs: 10 }))).toBe('10ms x 15ms y 20ms |', {
      x: ['a', 'b'],
      y: ['c', 'd', 'e'],
    });
  });
});

test('the timer restarts with the first element of the next segment, and never fires on an empty one', (t) => {
  scheduler(t).run(({ cold, expectObservable }) => {
    const src = cold('a b c 30ms d 30ms |');
    expectObservable(src.pipe(segment({ length: 3, maxDelayMs: 5 }))).toBe('--x 30ms 5ms y 25ms |', {
      x: ['a', 'b', 'c'],
      y: ['d'],
    });
  });
});

test('errors pass through after the partial segment is flushed (nothing lost); or not, if asked', (t) => {
  scheduler(t).run(({ cold, expectObservable }) => {
    const src = cold('a-b-#', undefined, new Error('boom'));
    expectObservable(src.pipe(segment({ length: 3 }))).toBe('----(x#)', { x: ['a', 'b'] }, new Error('boom'));
    expectObservable(src.pipe(segment({ length: 3, flushOnError: false }))).toBe('----#', undefined, new Error('boom'));
  });
});

test('early unsubscribe releases the source and cancels the timer', (t) => {
  scheduler(t).run(({ cold, expectObservable, expectSubscriptions }) => {
    const src = cold('a-b-c-d-e-f-|');
    expectObservable(src.pipe(segment({ length: 2, maxDelayMs: 100 })), '^------!').toBe('--x---y', {
      x: ['a', 'b'],
      y: ['c', 'd'],
    });
    expectSubscriptions(src.subscriptions).toBe('^------!');
  });
});

test('property: concatenated segments equal the input, every segment but the last is full', async (t) => {
  for (let n = 0; n < 50; n++) {
    const len = 1 + (n % 7);
    const input = Array.from({ length: n * 3 }, (_, i) => i);
    const out = await lastValueFrom(from(input).pipe(segment({ length: len }), toArray()));
    t.deepEqual(out.flat(), input);
    t.true(out.slice(0, -1).every((s) => s.length === len));
    t.true(out.every((s) => s.length > 0 && s.length <= len));
  }
});

test('bad options are typed config errors', (t) => {
  t.throws(() => segment({ length: 0 }), { instanceOf: BadConfigError, message: /^length:/ });
  t.throws(() => segment({ length: 2.5 }), { instanceOf: BadConfigError, message: /^length:/ });
  t.throws(() => segment({ length: 2, maxDelayMs: -1 }), { instanceOf: BadConfigError, message: /^maxDelayMs:/ });
});
