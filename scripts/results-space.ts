/**
 * Where the memory's space goes (docs/results.md, issue 14 item 4): for one real stream, the
 * share of [0, tau] that each past segment occupies after k contractions, sticky vs uniform.
 *
 * Provenance is tracked through the contractions by MemoryProvenance (src/memory/provenance.ts):
 * each cell of [0, 1] is labelled with the segment whose values it holds. Uniform contraction reads at s_m = (m - 1/2) / M; sticky reads at the positions
 * the model itself draws in a real run: the default weights with `sticky: true` over the held-out
 * gcc log, positions reproduced from the stream's RNG as the model draws them and checked to
 * rebuild the model's own memory.
 *
 *   npx tsx scripts/results-space.ts [--model models/default] [--segments 96] [--seed 1]
 *     [--data data/gcc-12-test-results/gcc-heldout.txt] [--out docs]
 * writes <out>/figures/memory-space.svg and <out>/results/space.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InfiniFormer, MemoryProvenance, centredPositions, contractMemory, createRng, initBackend, keepChunk, loadModel, setLogLevel, smooth, stickyResample, type StreamState } from '../src/index.js';
import { figureSvg, type Series } from './docs/plot.js';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

function runSegment(model: InfiniFormer, state: StreamState, tokens: ArrayLike<number>): void {
  let out: ReturnType<InfiniFormer['forwardChunk']> | undefined;
  tf.tidy(() => {
    out = model.forwardChunk([state], [tokens]);
    keepChunk(out);
  });
  model.commit([state], out!);
  tf.dispose([out!.hidden, out!.logits, out!.kl]);
}

async function main(): Promise<void> {
  setLogLevel('warn');
  const backend = await initBackend();
  const modelDir = option('model', 'models/default');
  const data = option('data', 'data/gcc-12-test-results/gcc-heldout.txt');
  const segments = Number(option('segments', '96'));
  const seed = Number(option('seed', '1'));
  const out = option('out', 'docs');
  const MAX_AGE = 12;
  const base = await loadModel(modelDir);
  const c = base.config;
  const L = c.segmentLength;
  const tau = c.tau;
  const model = new InfiniFormer({ ...c, sticky: true }, base.params, base.tokenizer);
  const state = model.createState(seed);
  const tokens = Int32Array.from(readFileSync(data).subarray(0, segments * L));
  const sticky = c.numLayers > 0 ? Array.from({ length: c.numLayers }, () => new MemoryProvenance()) : [];
  const uniform = new MemoryProvenance();
  const uniformPositions = centredPositions(c.numSamples);
  /** Per layer (and uniform last), per contraction, the shares by age. */
  const history: number[][][] = Array.from({ length: c.numLayers + 1 }, () => []);
  let absorbed = -1;
  let checked = false;
  for (let k = 0; k < segments; k++) {
    const rng = createRng(0);
    rng.setState(state.rngState);
    const drawn = state.layers.map((l) => (l.memory !== null && l.prevX !== null ? stickyResample({ mass: l.prevMass }, { numSamples: c.numSamples, rng }) : null));
    const wasEmpty = state.layers[0]!.memory === null;
    const expected =
      !checked && drawn[0] !== null
        ? drawn.map((p, li) => {
            const l = state.layers[li]!;
            const lp = model.params.layers[li]!;
            return tf.tidy(() => contractMemory(l.memory!, smooth(l.prevX!, { kind: 'gate', kernel: lp.gateKernel!, bias: lp.gateBias! }), { basis: model.basis!, tau, numSamples: c.numSamples, lambda: c.ridgeLambda, pad: c.ridgePad, positions: p! }));
          })
        : null;
    runSegment(model, state, tokens.subarray(k * L, (k + 1) * L));
    if (expected !== null) {
      expected.forEach((m, li) => {
        const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(m, state.layers[li]!.memory!))).dataSync()[0]!);
        if (diff > 1e-6) throw new Error(`sticky positions do not rebuild the model's memory (layer ${li}, segment ${k}): ${diff}`);
      });
      tf.dispose(expected);
      checked = true;
    }
    if (wasEmpty && state.layers[0]!.memory !== null) {
      absorbed += 1;
      sticky.forEach((p) => p.fit(absorbed));
      uniform.fit(absorbed);
    } else if (drawn[0] !== null) {
      absorbed += 1;
      drawn.forEach((p, li) => sticky[li]!.contract(p!, tau, absorbed));
      uniform.contract(uniformPositions, tau, absorbed);
      [...sticky, uniform].forEach((p, i) => history[i]!.push(p.sharesByAge(tau, absorbed, MAX_AGE)));
    }
  }
  if (!checked) throw new Error('no contraction happened: too few segments');
  // Shares by age, averaged over the contractions where that age exists (age a needs a contractions before).
  const ages = Array.from({ length: MAX_AGE }, (_, a) => a + 1);
  const summary = history.map((h) =>
    ages.map((a) => {
      const v = h.slice(a + 1).map((s) => s[a - 1]!);
      return { mean: v.reduce((x, y) => x + y, 0) / v.length, min: Math.min(...v), max: Math.max(...v), n: v.length };
    }),
  );
  const finalMap = [...sticky, uniform].map((p) => Array.from(p.owner, (id) => absorbed - id));
  const CELLS = uniform.cells;
  const names = [...sticky.map((_, li) => `sticky, layer ${li}`), 'uniform'];
  const colours = ['#3182bd', '#e6550d', '#444'];
  const r4 = (v: number): number => Number(v.toPrecision(4));
  const json = {
    command: `npx tsx scripts/results-space.ts ${process.argv.slice(2).join(' ')}`.trim(),
    backend,
    model: modelDir,
    data: `${data}, first ${segments} segments of ${L} bytes, one stream, sticky seed ${seed}`,
    tau,
    numSamples: c.numSamples,
    contractions: history[0]!.length,
    sharesByAge: Object.fromEntries(names.map((n, i) => [n, summary[i]!.map((s, a) => ({ age: a + 1, mean: r4(s.mean), min: r4(s.min), max: r4(s.max), n: s.n }))])),
    uniformAnalytic: ages.map((a) => r4((1 - tau) * tau ** (a - 1))),
    /** Share of [0, tau] held by segments older than MAX_AGE after the last segment. */
    olderThanMaxAgeAtEnd: Object.fromEntries(names.map((n, i) => [n, r4(1 - history[i]![history[i]!.length - 1]!.reduce((x, y) => x + y, 0))])),
  };
  mkdirSync(join(out, 'results'), { recursive: true });
  mkdirSync(join(out, 'figures'), { recursive: true });
  writeFileSync(join(out, 'results', 'space.json'), `${JSON.stringify(json, null, 2)}\n`);
  const xs = Array.from({ length: CELLS }, (_, i) => (i + 0.5) / CELLS);
  const svg = figureSvg(
    [
      {
        title: `Share of [0, tau] held by the segment absorbed k contractions ago (mean over ${history[0]!.length} contractions; dots: min, max)`,
        xLabel: 'k: contractions since the segment was absorbed',
        yLabel: 'share of [0, tau]',
        xRange: [0.5, MAX_AGE + 0.5],
        yRange: [0, 0.8],
        series: summary.flatMap((s, i): Series[] => [
          { kind: 'line', x: ages, y: s.map((a) => a.mean), color: colours[i]!, width: 2, dash: i === summary.length - 1 ? '5 3' : undefined, label: names[i] },
          { kind: 'dots', x: ages, y: s.map((a) => a.min), color: colours[i]!, width: 2.5 },
          { kind: 'dots', x: ages, y: s.map((a) => a.max), color: colours[i]!, width: 2.5 },
        ]),
      },
      {
        title: `After segment ${segments}: which segment each point of [0, 1] holds (age in contractions)`,
        xLabel: 't (memory position)',
        yLabel: 'age of the segment held',
        xRange: [0, 1],
        vlines: [{ x: tau, color: '#999', dash: '4 3', label: 'tau' }],
        series: finalMap.map((m, i): Series => ({ kind: 'line', x: xs, y: m, color: colours[i]!, width: i === finalMap.length - 1 ? 2 : 1.5, dash: i === finalMap.length - 1 ? '5 3' : undefined, label: names[i] })),
        legend: 'top-right',
      },
    ],
    {
      title: 'Where the memory’s space goes: sticky vs uniform contraction',
      subtitle: `npx tsx scripts/results-space.ts — ${modelDir} with sticky: true (seed ${seed}), ${segments} segments of ${data.split('/').pop()}; tau = ${tau}, M = ${c.numSamples}`,
      width: 1000,
      columns: 1,
      panelHeight: 300,
    },
  );
  writeFileSync(join(out, 'figures', 'memory-space.svg'), svg);
  console.log(JSON.stringify(json.sharesByAge, null, 1).slice(0, 3000));
  console.log(JSON.stringify(json.olderThanMaxAgeAtEnd));
}

await main();
