import test from 'ava';
import { BadInputError, tokenStreamSource } from '../../src/index.js';

test('tokenStreamSource: labels travel with their tokens (stream i, segment s, position j is token i*S + s*L + j)', (t) => {
  const n = 1000;
  const tokens = Int32Array.from({ length: n }, (_, i) => (i * 7) % 13);
  const labels = Int32Array.from({ length: n }, (_, i) => (i % 5 === 0 ? i % 3 : -1));
  const b = 3;
  const L = 16;
  const source = tokenStreamSource(tokens, { numStreams: b, segmentLength: L, labels });
  const S = Math.floor(n / b);
  const segments = Math.floor((S - 1) / L);
  for (let step = 0; step < segments + 2; step++) {
    const batch = source.next();
    const s = step % segments;
    t.deepEqual(batch.reset, new Array<boolean>(b).fill(s === 0));
    for (let i = 0; i < b; i++) {
      for (let j = 0; j < L; j++) {
        const at = i * S + s * L + j;
        t.is(batch.inputs[i]![j], tokens[at]);
        t.is(batch.targets[i]![j], tokens[at + 1]);
        t.is(batch.labels![i]![j], labels[at]);
      }
    }
  }
  t.is(tokenStreamSource(tokens, { numStreams: b, segmentLength: L }).next().labels, undefined);
});

test('tokenStreamSource: labels of another length are a typed error', (t) => {
  const e = t.throws(() => tokenStreamSource(new Int32Array(100), { numStreams: 2, segmentLength: 8, labels: new Int32Array(99) }), { instanceOf: BadInputError });
  t.regex(e.message, /^labels: expected one label per token \(100\), got 99/);
});
