import test from 'ava';
import { InfiniFormer } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { maxAbsDiff, TINY } from './helpers.js';

test.before(async () => {
  await backendReady;
});

// tfjs treats an op seed of 0 as "no seed"; seed 0 (the Trainer's and the CLI's default) must
// still give the same weights every time, the embedding (the first tensor) included.
for (const seed of [0, 1, 7]) {
  test(`InfiniFormer.create with seed ${seed} gives the same weights twice, and other seeds other weights`, (t) => {
    const a = InfiniFormer.create(TINY, { seed });
    const b = InfiniFormer.create(TINY, { seed });
    const c = InfiniFormer.create(TINY, { seed: seed + 1 });
    for (const [name, v] of a.params.byName) {
      t.is(maxAbsDiff(v.dataSync(), b.params.byName.get(name)!.dataSync()), 0, name);
    }
    t.true(maxAbsDiff(a.params.embedding.dataSync(), c.params.embedding.dataSync()) > 1e-3);
    [a, b, c].forEach((m) => m.dispose());
  });
}
