/**
 * `npm run bench -- tokentail [--tokens=N] [--warmup=S]`: where token mode's tail comes from.
 * The peers benchmark's token workload (one stream, seed 1, tokens seeded 4) on the active
 * default backend, timed step by step after S warm-up segments (default 3): p50 / p90 / p99 /
 * max, then every step slower than 4 ms with its segment position and what happened in it (a
 * graph compiled, an eager run, a segment start). Run it with
 * INFINIFORMER_NATIVE_THREADS=1 to see the single-threaded native figures.
 */
import { loadavg } from 'node:os';
import { InfiniFormer, initBackend } from '../src/index.js';
import { randomTokens } from './peers/library.js';

const option = (name: string, fallback: number): number => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? fallback : Number(a.split('=')[1]);
};

const COUNTERS = ['forward compiled', 'forward eager', 'segment start compiled', 'segment start eager', 'segment start graph'];

/** The compiled forward's counters but the token graph's runs (one every step). */
function counters(model: InfiniFormer): number[] {
  const s = model.compiledStats;
  return s === undefined ? [0, 0, 0, 0, 0] : [s.forward.compiled, s.forward.eagerRuns, s.segmentStart.compiled, s.segmentStart.eagerRuns, s.segmentStart.graphRuns];
}

export async function run(): Promise<void> {
  const backend = await initBackend();
  const model = InfiniFormer.create({}, { seed: 1 });
  const L = model.config.segmentLength;
  const state = model.createState(3);
  const warmUp = option('warmup', 3) * L;
  const toks = randomTokens(option('tokens', 300) + warmUp, 4);
  const ms: number[] = [];
  const slow: string[] = [];
  let before = counters(model);
  for (let i = 0; i < toks.length; i++) {
    const t0 = performance.now();
    const logits = model.step([state], [toks[i]!]);
    logits.dataSync();
    logits.dispose();
    const t = performance.now() - t0;
    const after = counters(model);
    if (i >= warmUp) {
      ms.push(t);
      const what = after.map((n, k) => (n > before[k]! ? `${COUNTERS[k]} +${n - before[k]!}` : '')).filter((x) => x !== '');
      if (t > 4) slow.push(`  token ${i} (position ${i % L}): ${t.toFixed(2)} ms${what.length > 0 ? ` (${what.join(', ')})` : ''}`);
    }
    before = after;
  }
  state.dispose();
  model.dispose();
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number): string => s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(2);
  console.log(`${backend}, ${ms.length} steps after ${warmUp / L} warm-up segments: p50 ${q(0.5)} ms, p90 ${q(0.9)}, p99 ${q(0.99)}, max ${q(1)}  load ${loadavg()[0]!.toFixed(2)}`);
  console.log(slow.length === 0 ? '  no step over 4 ms' : slow.join('\n'));
}
