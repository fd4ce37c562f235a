// uniformFloats (the dropout draws): createRng's sequence cut to 24 bits, exact in float32, in
// [0, 1), uniform (mean and share below 0.1 within a few standard errors of 1/2 and 1/10).
import test from 'ava';
import { createRng } from '../../src/index.js';
import { uniformFloats } from '../../src/memory/rng.js';

test('uniformFloats follows createRng draw for draw, in [0, 1), exact in float32', (t) => {
  for (const seed of [0, 1, 4242, 2 ** 31 + 7]) {
    const rng = createRng(seed);
    const u = uniformFloats(seed, 20_000);
    let mismatches = 0;
    for (const x of u) if (x !== Math.floor(rng.next() * 2 ** 24) / 2 ** 24) mismatches++;
    t.is(mismatches, 0, `seed ${seed}`);
    t.true(u.every((x) => x >= 0 && x < 1));
  }
});

test('uniformFloats is uniform: mean 1/2, a tenth below 0.1; other seeds, other draws', (t) => {
  const n = 200_000;
  const u = uniformFloats(7, n);
  const mean = u.reduce((s, x) => s + x, 0) / n;
  const low = u.filter((x) => x < 0.1).length / n;
  // Standard errors: sqrt(1/12 / n) ~ 6.5e-4 and sqrt(0.09 / n) ~ 6.7e-4; allow 5.
  t.true(Math.abs(mean - 0.5) < 5 * 6.5e-4, `mean ${mean}`);
  t.true(Math.abs(low - 0.1) < 5 * 6.7e-4, `share below 0.1: ${low}`);
  const other = uniformFloats(8, 1000);
  t.true(other.some((x, i) => x !== u[i]));
});
