/**
 * The figures of docs/concepts.md, computed from real runs of the library: the committed
 * default model (`models/default`) over the first segments of the held-out gcc log
 * (`data/gcc-12-test-results/gcc-heldout.txt`). Writes dependency-free SVGs and the numbers the
 * captions quote (`figures.json`) into `docs/figures/`. The whole run takes about 15 s on two cores.
 *
 *   npm run docs:figures                 # = npx tsx scripts/docs/figures.ts [--out docs/figures]
 *
 * Everything is deterministic: the model is fixed, the data is fixed, state seeds are fixed
 * (sticky sampling draws from the stream's seeded RNG). Each figure takes a few seconds.
 *
 * 1. memory-contraction.svg: one layer's memory signal X(t) = B^T psi(t) before and after the
 *    next segment is absorbed. The "after" memory is computed with the pure stage functions
 *    (smooth with the layer's learned gate, then contractMemory) and checked to equal, bit for
 *    bit, the memory the model itself builds when it runs the next segment.
 * 2. attention-densities.svg: the Gaussian densities N(t; mu, sigma^2) the continuous attention
 *    produces for real queries (every head, a few positions), and the distribution of mu and
 *    sigma over 64 segments.
 * 3. sticky-histogram.svg: the default weights run with `sticky: true` over 64 segments; the
 *    sticky histograms (where attention went) and the sample positions drawn from them, checked
 *    to be the positions the model contracted with; plus an illustration with the same means
 *    and sigma = 0.05.
 * 4. memory-horizon.svg: how much of a segment the memory still holds after 0-9 further
 *    contractions, against the gated input it absorbed and against what it held at first.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  InfiniFormer,
  centredPositions,
  contractMemory,
  createRng,
  fitBasis,
  initBackend,
  keepChunk,
  loadModel,
  reconstruct,
  setLogLevel,
  smooth,
  stickyMass,
  stickyResample,
  type ChunkOutput,
  type StreamState,
} from '../../src/index.js';
import { figureSvg, type Panel, type Series } from './plot.js';

const MODEL_DIR = 'models/default';
const DATA = 'data/gcc-12-test-results/gcc-heldout.txt';
/** Segments run before the contraction shown in figure 1 (the memory then holds 5, the short-term cache the 6th). */
const SEGMENTS_BEFORE = 6;
/** Segments run for the density statistics and the sticky run. */
const SEGMENTS = 64;
const STICKY_SEED = 1;
/** Oldest age (segments ago) figure 4 follows. */
const MAX_AGE = 9;
const HEAD_COLORS = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a'];
const CHANNEL_COLORS = ['#08519c', '#d94801', '#238b45'];

const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
const OUT = outIndex >= 0 ? args[outIndex + 1]! : 'docs/figures';

const round = (v: number, digits = 4): number => Number(v.toPrecision(digits));

interface Densities {
  /** `[H, L]` row-major, per layer. */
  mu: Float32Array;
  sigmaSq: Float32Array;
}

/** Runs one whole segment through one stream (exactly what `model.run` does) and returns its logits and every layer's attention densities. */
function runSegment(model: InfiniFormer, state: StreamState, tokens: ArrayLike<number>): { logits: Float32Array; densities: (Densities | null)[] } {
  let out: ChunkOutput | undefined;
  tf.tidy(() => {
    out = model.forwardChunk([state], [tokens]);
    keepChunk(out);
  });
  const o = out!;
  const densities = o.layers.map((l) => (l.mu === undefined || l.sigmaSq === undefined ? null : { mu: l.mu.dataSync().slice() as Float32Array, sigmaSq: l.sigmaSq.dataSync().slice() as Float32Array }));
  const logits = tf.tidy(() => tf.logSoftmax(o.logits).dataSync() as Float32Array);
  model.commit([state], o);
  tf.dispose([o.hidden, o.logits, o.kl]);
  return { logits, densities };
}

/** Bits per byte of the segments' predictions (position j predicts token j + 1 of the stream). */
function bitsOf(logProbs: Float32Array[], tokens: Int32Array, L: number, V: number): number {
  let bits = 0;
  let n = 0;
  logProbs.forEach((lp, k) => {
    for (let j = 0; j < L; j++) {
      const next = k * L + j + 1;
      if (next >= logProbs.length * L) break;
      bits -= lp[j * V + tokens[next]!]! / Math.LN2;
      n++;
    }
  });
  return bits / n;
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

function relRms(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

/** Column `ch` of a row-major `[rows, e]` array. */
const column = (data: ArrayLike<number>, e: number, ch: number): number[] => Array.from({ length: data.length / e }, (_, i) => data[i * e + ch]!);

/** Normal density. */
const gauss = (t: number, mu: number, sigma: number): number => Math.exp(-0.5 * ((t - mu) / sigma) ** 2) / (sigma * Math.sqrt(2 * Math.PI));

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 erf, |error| < 1.5e-7). */
function phi(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-z * z);
  return 0.5 * (1 + (x >= 0 ? erf : -erf));
}

/** Histogram of values in [0, 1] as a density (integrates to 1 over [0, 1]). */
function densityHistogram(values: ArrayLike<number>, bins: number): number[] {
  const h = new Array<number>(bins).fill(0);
  for (let i = 0; i < values.length; i++) h[Math.min(bins - 1, Math.floor(values[i]! * bins))]! += 1;
  return h.map((c) => (c * bins) / values.length);
}

const binCentres = (bins: number, lo = 0, hi = 1): number[] => Array.from({ length: bins }, (_, j) => lo + ((j + 0.5) * (hi - lo)) / bins);

function stats(values: ArrayLike<number>): { min: number; max: number; mean: number } {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    min = Math.min(min, values[i]!);
    max = Math.max(max, values[i]!);
    sum += values[i]!;
  }
  return { min: round(min), max: round(max), mean: round(sum / values.length) };
}

async function main(): Promise<void> {
  setLogLevel('warn');
  const backend = await initBackend();
  // Figures 1-2 check the stage functions against the model with uniform contraction (the
  // default model is trained with sticky memories; figure 3 runs those).
  const loaded = await loadModel(MODEL_DIR);
  const model = new InfiniFormer({ ...loaded.config, sticky: false }, loaded.params, loaded.tokenizer);
  const c = model.config;
  const basis = model.basis!;
  const L = c.segmentLength;
  const V = c.vocabSize;
  const e = c.width;
  const tau = c.tau;
  const tokens = Int32Array.from(readFileSync(DATA).subarray(0, SEGMENTS * L));
  const segmentOf = (k: number): Int32Array => tokens.subarray(k * L, (k + 1) * L);
  mkdirSync(OUT, { recursive: true });
  const numbers: Record<string, unknown> = {
    command: 'npm run docs:figures',
    backend,
    model: MODEL_DIR,
    data: `${DATA}, first ${SEGMENTS} segments of ${L} bytes`,
    config: { segmentLength: L, width: e, numHeads: c.numHeads, numLayers: c.numLayers, numBasis: c.numBasis, basisWidths: c.basisWidths, numSamples: c.numSamples, tau, ridgeLambda: c.ridgeLambda, ridgePad: c.ridgePad, stickyBins: c.stickyBins },
  };

  // ---------------------------------------------------------------- 1. contraction
  const LAYER = 0;
  const state = model.createState(0);
  const logProbs: Float32Array[] = [];
  // For figure 4: after segment k the memory holds segments 0..k-1; segment s >= 1 went in at
  // [tau, 1] and every later contraction maps t -> tau t, so at age j = k - 1 - s it sits at
  // tau^j [tau, 1]. Compare the memory there with what the model absorbed (the gated inputs).
  const gatedHistory: Float32Array[][] = Array.from({ length: c.numLayers }, () => []);
  const ageErrors: number[][][] = Array.from({ length: c.numLayers }, () => Array.from({ length: MAX_AGE + 1 }, () => []));
  const freshHistory: Float32Array[][] = Array.from({ length: c.numLayers }, () => []);
  const ageDrift: number[][][] = Array.from({ length: c.numLayers }, () => Array.from({ length: MAX_AGE + 1 }, () => []));
  const meanDrift: number[][][] = Array.from({ length: c.numLayers }, () => Array.from({ length: MAX_AGE + 1 }, () => []));
  /** Per-channel mean over a segment's positions: its slowest component. */
  const channelMeans = (x: Float32Array): Float64Array => {
    const m = new Float64Array(e);
    for (let i = 0; i < x.length; i++) m[i % e]! += x[i]! / L;
    return m;
  };
  const observe = (k: number): void => {
    state.layers.forEach((l, li) => {
      const lpi = model.params.layers[li]!;
      for (let j = 0; l.memory !== null && j <= Math.min(MAX_AGE, k - 2); j++) {
        const pos = Array.from(centredPositions(L), (t) => tau ** j * (tau + (1 - tau) * t));
        const rec = tf.tidy(() => reconstruct(l.memory!, pos, { basis }).dataSync() as Float32Array);
        ageErrors[li]![j]!.push(relRms(rec, gatedHistory[li]![k - 1 - j]!));
        if (j === 0) freshHistory[li]![k - 1] = rec;
        else {
          ageDrift[li]![j]!.push(relRms(rec, freshHistory[li]![k - 1 - j]!));
          meanDrift[li]![j]!.push(relRms(channelMeans(rec), channelMeans(freshHistory[li]![k - 1 - j]!)));
        }
      }
      gatedHistory[li]![k] = tf.tidy(() => smooth(l.prevX!, { kind: 'gate', kernel: lpi.gateKernel!, bias: lpi.gateBias! }).dataSync() as Float32Array);
    });
  };
  for (let k = 0; k < SEGMENTS_BEFORE; k++) {
    logProbs.push(runSegment(model, state, segmentOf(k)).logits);
    observe(k);
  }
  // Now: memory = B read during segment 5 (segments 0..4 absorbed), prevX = segment 5's layer inputs.
  const ls = state.layers[LAYER]!;
  const lp = model.params.layers[LAYER]!;
  const before = ls.memory!.clone();
  const gated = smooth(ls.prevX!, { kind: 'gate', kernel: lp.gateKernel!, bias: lp.gateBias! });
  const after = contractMemory(before, gated, { basis, tau, numSamples: c.numSamples, lambda: c.ridgeLambda, pad: c.ridgePad });
  const alone = fitBasis(gated, { basis, lambda: c.ridgeLambda, pad: c.ridgePad });
  const grid = Array.from({ length: 501 }, (_, i) => i / 500);
  const xBefore = reconstruct(before, grid, { basis });
  const xBeforeSqueezed = reconstruct(before, grid.map((t) => Math.min(1, t / tau)), { basis });
  const xAfter = reconstruct(after, grid, { basis });
  const newPositions = Array.from(centredPositions(L), (t) => tau + (1 - tau) * t);
  const afterAtNew = reconstruct(after, newPositions, { basis });
  const aloneAtOwn = reconstruct(alone, centredPositions(L), { basis });
  const half = grid.findIndex((t) => t > tau);
  const [xb, xbs, xa, g, an, al] = [xBefore, xBeforeSqueezed, xAfter, gated, afterAtNew, aloneAtOwn].map((x) => x.dataSync() as Float32Array);
  const variance = Array.from({ length: e }, (_, ch) => {
    const col = column(g!, e, ch);
    const mean = col.reduce((s, v) => s + v, 0) / col.length;
    return col.reduce((s, v) => s + (v - mean) ** 2, 0) / col.length;
  });
  const channels = variance.map((v, i) => [v, i] as const).sort((p, q) => q[0] - p[0]).slice(0, 3).map(([, i]) => i);
  // The model's own next memory: run segment 6; the memory it read is what the stages computed.
  const next = runSegment(model, state, segmentOf(SEGMENTS_BEFORE));
  logProbs.push(next.logits);
  observe(SEGMENTS_BEFORE);
  const modelDiff = maxAbsDiff(after, state.layers[LAYER]!.memory!);
  if (modelDiff > 1e-6) throw new Error(`contractMemory by the stage functions differs from the model's memory by ${modelDiff}`);
  const contraction = {
    layer: LAYER,
    segmentsInMemoryBefore: SEGMENTS_BEFORE - 1,
    memoryShape: before.shape,
    channels,
    stagesVsModelMaxAbsDiff: modelDiff,
    oldPartRelRms: round(relRms(xa!.subarray(0, half * e), xbs!.subarray(0, half * e)), 3),
    newSegmentRelRms: round(relRms(an!, g!), 3),
    segmentAloneRelRms: round(relRms(al!, g!), 3),
    maxAbsBefore: round(Math.max(...Array.from(xb!, Math.abs)), 3),
    maxAbsGated: round(Math.max(...Array.from(g!, Math.abs)), 3),
  };
  numbers['contraction'] = contraction;
  const boundaries: Panel['bands'] = [];
  for (let j = 0; j < SEGMENTS_BEFORE - 1; j++) {
    // Segment s (0-based) of the 5 absorbed lies in [tau^(5-s), tau^(4-s)]; the first fit filled [0, 1].
    const s = SEGMENTS_BEFORE - 2 - j;
    const hi = tau ** j;
    const lo = s === 0 ? 0 : tau ** (j + 1);
    boundaries.push({ from: lo, to: hi, color: j % 2 === 0 ? '#f4f4f4' : '#ffffff', label: hi - lo >= 0.1 ? `segment ${s}` : undefined });
  }
  const linesOf = (data: Float32Array, dash?: string, opacity?: number, labelled = true): Series[] =>
    channels.map((ch, i) => ({ kind: 'line', x: grid, y: column(data, e, ch), color: CHANNEL_COLORS[i]!, dash, opacity, width: dash === undefined ? 1.8 : 1.4, label: labelled ? `channel ${ch}` : undefined }));
  const squeezed = (ch: number): number[] => column(xbs!, e, ch).map((v, i) => (grid[i]! <= tau ? v : NaN));
  const fig1 = figureSvg(
    [
      {
        title: `Before: memory B [${before.shape.join(', ')}] of layer ${LAYER} after segments 0-${SEGMENTS_BEFORE - 2} (X(t) = Bᵀψ(t), 3 of ${e} channels)`,
        xLabel: 't',
        yLabel: 'X(t)',
        xRange: [0, 1],
        bands: boundaries,
        vlines: boundaries.slice(1).map((b) => ({ x: b.to, color: '#999' })),
        series: linesOf(xb!),
      },
      {
        title: `After absorbing segment ${SEGMENTS_BEFORE - 1}: still [${after.shape.join(', ')}]; old signal squeezed into [0, ${tau}], new segment on [${tau}, 1]`,
        xLabel: 't',
        yLabel: 'X(t)',
        xRange: [0, 1],
        bands: [{ from: tau, to: 1, color: '#fff5eb', label: `segment ${SEGMENTS_BEFORE - 1} (gated samples: dots)` }],
        vlines: [{ x: tau, label: `tau = ${tau}`, color: '#444' }],
        series: [
          ...channels.map((ch, i): Series => ({ kind: 'line', x: grid, y: squeezed(ch), color: CHANNEL_COLORS[i]!, dash: '3 3', width: 1.2, opacity: 0.9, label: i === 0 ? 'before, at t / tau (dashed)' : undefined })),
          ...channels.map((ch, i): Series => ({ kind: 'dots', x: newPositions, y: column(g!, e, ch), color: CHANNEL_COLORS[i]!, width: 1.8, opacity: 0.55 })),
          ...linesOf(xa!, undefined, undefined, false),
          { kind: 'line', x: [], y: [], color: '#333', label: 'after (solid)' },
        ],
        legend: 'top-left',
      },
    ],
    { title: 'Memory contraction in the default model (layer 0, held-out gcc log)', subtitle: 'npm run docs:figures — models/default over the first 7 segments of data/gcc-12-test-results/gcc-heldout.txt', panelHeight: 300 },
  );
  writeFileSync(join(OUT, 'memory-contraction.svg'), fig1);
  tf.dispose([before, gated, after, alone, xBefore, xBeforeSqueezed, xAfter, afterAtNew, aloneAtOwn]);

  // ---------------------------------------------------------------- 2. attention densities
  // Segment 6 read the "after" memory of figure 1: its densities are the ones drawn.
  const SHOWN = SEGMENTS_BEFORE;
  const shown = next.densities;
  const all: Densities[][] = Array.from({ length: c.numLayers }, () => []);
  next.densities.forEach((d, li) => d !== null && all[li]!.push(d));
  for (let k = SEGMENTS_BEFORE + 1; k < SEGMENTS; k++) {
    const r = runSegment(model, state, segmentOf(k));
    logProbs.push(r.logits);
    observe(k);
    r.densities.forEach((d, li) => d !== null && all[li]!.push(d));
  }
  const uniformBits = bitsOf(logProbs, tokens, L, V);
  state.dispose();
  const H = c.numHeads;
  const POSITIONS = [0, 64, 127];
  const tGrid = Array.from({ length: 201 }, (_, i) => -0.5 + (2 * i) / 200);
  const layerStats = all.map((list) => {
    const mu = Float32Array.from(list.flatMap((d) => Array.from(d.mu)));
    const sigma = Float32Array.from(list.flatMap((d) => Array.from(d.sigmaSq, Math.sqrt)));
    const inside = Float32Array.from(mu, (m, i) => phi((1 - m) / sigma[i]!) - phi(-m / sigma[i]!));
    return { mu, sigma, inside };
  });
  numbers['densities'] = {
    segments: `${SEGMENTS_BEFORE}-${SEGMENTS - 1}`,
    queriesPerLayer: layerStats[0]!.mu.length,
    layers: layerStats.map((s) => ({ mu: stats(s.mu), sigma: stats(s.sigma), massInside01: stats(s.inside) })),
    shownSegment: SHOWN,
  };
  const densityPanel = (li: number): Panel => {
    const d = shown[li]!;
    const series: Series[] = [];
    for (let h = 0; h < H; h++) {
      POSITIONS.forEach((p, pi) => {
        const mu = d.mu[h * L + p]!;
        const sigma = Math.sqrt(d.sigmaSq[h * L + p]!);
        series.push({ kind: 'line', x: tGrid, y: tGrid.map((t) => gauss(t, mu, sigma)), color: HEAD_COLORS[h]!, width: 1.4, opacity: 0.9, dash: pi === 0 ? undefined : pi === 1 ? '6 2' : '2 2', label: pi === 0 ? `head ${h}` : undefined });
      });
    }
    const muMean = d.mu.reduce((s, v) => s + v, 0) / d.mu.length;
    series.push({ kind: 'line', x: tGrid, y: tGrid.map((t) => gauss(t, muMean, c.klSigma0) / 20), color: '#999', dash: '4 3', width: 1, label: `sigma = ${c.klSigma0} (KL prior), height / 20` });
    return {
      title: `Layer ${li}: 4 heads x tokens 0, 64, 127 of segment ${SHOWN}`,
      xLabel: 't (memory position; [0, 1] unshaded)',
      yLabel: 'N(t; mu, sigma²)',
      xRange: [-0.5, 1.5],
      yRange: [0, 1],
      bands: [
        { from: -0.5, to: 0, color: '#eeeeee', label: 'outside: padded, X ≈ 0' },
        { from: 1, to: 1.5, color: '#eeeeee' },
      ],
      series,
    };
  };
  const histPanel = (what: 'mu' | 'sigma'): Panel => {
    const bins = 60;
    const [lo, hi] = what === 'mu' ? [0.3, 0.7] : [0.75, 0.95];
    const series: Series[] = layerStats.map((s, li) => {
      const v = s[what];
      const counts = new Array<number>(bins).fill(0);
      for (const x of v) counts[Math.min(bins - 1, Math.max(0, Math.floor(((x - lo) / (hi - lo)) * bins)))]! += 1;
      return { kind: 'bars', x: binCentres(bins, lo, hi), y: counts.map((n) => n / v.length), color: li === 0 ? '#3182bd' : '#e6550d', opacity: 0.55, barWidth: (hi - lo) / bins, label: `layer ${li}` };
    });
    return {
      title: `${what === 'mu' ? 'mu' : 'sigma'} of every query, segments ${SEGMENTS_BEFORE}-${SEGMENTS - 1} (${layerStats[0]!.mu.length} per layer)`,
      xLabel: what === 'mu' ? 'mu' : 'sigma',
      yLabel: 'share of queries',
      xRange: [lo, hi],
      series,
    };
  };
  writeFileSync(
    join(OUT, 'attention-densities.svg'),
    figureSvg([densityPanel(0), densityPanel(1), histPanel('mu'), histPanel('sigma')], {
      title: 'Continuous attention densities of the default model over its memory',
      subtitle: `npm run docs:figures — models/default, data/gcc-12-test-results/gcc-heldout.txt; solid: token 0, dashed: 64, dotted: 127`,
      columns: 2,
      panelHeight: 290,
      width: 1000,
    }),
  );

  // ---------------------------------------------------------------- 3. sticky memories
  // The same weights with sticky: true, as the model was trained.
  const sticky = new InfiniFormer({ ...c, sticky: true }, model.params, model.tokenizer);
  const sState = sticky.createState(STICKY_SEED);
  const masses: Float64Array[][] = Array.from({ length: c.numLayers }, () => []);
  const positions: number[][] = Array.from({ length: c.numLayers }, () => []);
  let lastPositions: Float64Array[] = [];
  const lastMu: Float32Array[] = [];
  const stickyLogProbs: Float32Array[] = [];
  let checked = 0;
  for (let k = 0; k < SEGMENTS; k++) {
    // The positions this segment's start draws: from the stream's RNG, layer by layer, for
    // every layer that contracts (has a memory and a previous segment), as the model does.
    const rng = createRng(0);
    rng.setState(sState.rngState);
    const drawn: (Float64Array | null)[] = sState.layers.map((l) => (l.memory !== null && l.prevX !== null ? stickyResample({ mass: l.prevMass }, { numSamples: c.numSamples, rng }) : null));
    // Check them on the first few contractions: contracting with them gives the model's memory.
    const expected =
      checked < 3 && drawn[0] !== null
        ? drawn.map((p, li) => {
            const l = sState.layers[li]!;
            const lpi = sticky.params.layers[li]!;
            return tf.tidy(() => contractMemory(l.memory!, smooth(l.prevX!, { kind: 'gate', kernel: lpi.gateKernel!, bias: lpi.gateBias! }), { basis, tau, numSamples: c.numSamples, lambda: c.ridgeLambda, pad: c.ridgePad, positions: p! }));
          })
        : null;
    const r = runSegment(sticky, sState, segmentOf(k));
    stickyLogProbs.push(r.logits);
    if (expected !== null) {
      expected.forEach((m, li) => {
        const diff = maxAbsDiff(m, sState.layers[li]!.memory!);
        if (diff > 1e-6) throw new Error(`sticky positions do not reproduce the model's memory (layer ${li}, segment ${k}): ${diff}`);
      });
      tf.dispose(expected);
      checked++;
    }
    drawn.forEach((p, li) => p !== null && positions[li]!.push(...p));
    if (drawn[0] !== null) lastPositions = drawn as Float64Array[];
    sState.layers.forEach((l, li) => {
      const total = l.prevMass.reduce((s, v) => s + v, 0);
      if (total > 0) masses[li]!.push(l.prevMass.map((v) => v / total));
    });
    r.densities.forEach((d, li) => {
      if (d !== null) lastMu[li] = d.mu;
    });
  }
  const stickyBits = bitsOf(stickyLogProbs, tokens, L, V);
  sState.dispose();
  const D = c.stickyBins;
  const meanMass = masses.map((list) => Array.from({ length: D }, (_, j) => (list.reduce((s, m) => s + m[j]!, 0) / list.length) * D));
  const SAMPLE_BINS = 32;
  const sampleDensity = positions.map((p) => densityHistogram(p, SAMPLE_BINS));
  // Illustration: the last segment's real means with sigma = sigma_0 = 0.05 (the KL prior).
  const narrow = lastMu.map((mu, li) => {
    const muT = tf.tensor2d(mu, [c.numHeads, L]);
    const sigT = tf.fill([c.numHeads, L], c.klSigma0 ** 2);
    const mass = stickyMass(muT, sigT, D);
    tf.dispose([muT, sigT]);
    const rng = createRng(STICKY_SEED + li);
    const draws: number[] = [];
    for (let rep = 0; rep < SEGMENTS - 2; rep++) draws.push(...stickyResample({ mass }, { numSamples: c.numSamples, rng }));
    return { mass: Array.from(mass, (v) => v * D), draws, one: stickyResample({ mass }, { numSamples: c.numSamples, rng }) };
  });
  const massStats = meanMass.map((m, li) => {
    const newest = m.slice(Math.round(tau * D)).reduce((s, v) => s + v, 0) / D;
    const peak = m.indexOf(Math.max(...m));
    return {
      densityMin: round(Math.min(...m), 3),
      densityMax: round(Math.max(...m), 3),
      peakBinCentre: round((peak + 0.5) / D, 3),
      massOnNewestSegment: round(newest, 3),
      samplesOnNewestSegment: round(positions[li]!.filter((p) => p >= tau).length / positions[li]!.length, 3),
      sampleDensityMin: round(Math.min(...sampleDensity[li]!), 3),
      sampleDensityMax: round(Math.max(...sampleDensity[li]!), 3),
    };
  });
  const narrowStats = narrow.map((n) => {
    const inWindow = n.draws.filter((p) => p >= 0.4 && p <= 0.6).length / n.draws.length;
    return { densityMax: round(Math.max(...n.mass), 3), samplesIn04to06: round(inWindow, 3) };
  });
  numbers['sticky'] = {
    seed: STICKY_SEED,
    segments: SEGMENTS,
    histograms: masses[0]!.length,
    samplesPerLayer: positions[0]!.length,
    positionsCheckedAgainstModel: checked,
    layers: massStats,
    narrowIllustration: narrowStats,
    bitsPerByte: { uniform: round(uniformBits), sticky: round(stickyBits), bytes: SEGMENTS * L - 1 },
  };
  const stickyPanel = (li: number): Panel => ({
    title: `Layer ${li}: real attention (${masses[li]!.length} segments)`,
    xLabel: 't',
    yLabel: 'density (uniform = 1)',
    xRange: [0, 1],
    yRange: [0, 2],
    hlines: [{ y: 1, color: '#444', label: 'uniform' }],
    vlines: [{ x: tau, label: 'tau', color: '#999' }],
    series: [
      { kind: 'bars', x: binCentres(D), y: meanMass[li]!, color: '#6baed6', opacity: 0.7, barWidth: 1 / D, label: `attention mass, ${D} bins (mean)` },
      { kind: 'line', x: binCentres(SAMPLE_BINS), y: sampleDensity[li]!, color: '#d94801', width: 2, label: `${positions[li]!.length} sample positions, ${SAMPLE_BINS} bins` },
      { kind: 'rug', x: lastPositions[li] ?? [], color: '#333', label: undefined },
    ],
    legend: 'top-right',
  });
  const narrowPanel = (li: number): Panel => ({
    title: `Illustration: layer ${li}'s means, sigma = ${c.klSigma0}`,
    xLabel: 't',
    yLabel: 'density (uniform = 1)',
    xRange: [0, 1],
    hlines: [{ y: 1, color: '#444', label: 'uniform' }],
    vlines: [{ x: tau, label: 'tau', color: '#999' }],
    series: [
      { kind: 'bars', x: binCentres(D), y: narrow[li]!.mass, color: '#9e9ac8', opacity: 0.75, barWidth: 1 / D, label: 'attention mass' },
      { kind: 'line', x: binCentres(SAMPLE_BINS), y: densityHistogram(narrow[li]!.draws, SAMPLE_BINS), color: '#d94801', width: 2, label: 'sample positions' },
      { kind: 'rug', x: narrow[li]!.one, color: '#333' },
    ],
  });
  writeFileSync(
    join(OUT, 'sticky-histogram.svg'),
    figureSvg([stickyPanel(0), stickyPanel(1), narrowPanel(0), narrowPanel(1)], {
      title: 'Sticky memories: where attention went, and where the memory is sampled',
      subtitle: `npm run docs:figures — models/default weights with sticky: true, seed ${STICKY_SEED}, ${SEGMENTS} segments of gcc-heldout.txt; ticks: one segment's ${c.numSamples} positions`,
      columns: 2,
      panelHeight: 290,
      width: 1000,
    }),
  );

  // ---------------------------------------------------------------- 4. how long a segment lasts
  const ages = Array.from({ length: MAX_AGE + 1 }, (_, j) => j);
  const meanOf = (v: number[]): number => v.reduce((sum, x) => sum + x, 0) / v.length;
  const summary = (v: number[]) => ({ mean: round(meanOf(v), 3), min: round(Math.min(...v), 3), max: round(Math.max(...v), 3), n: v.length });
  const horizon = ageErrors.map((perAge) => perAge.map(summary));
  const drift = ageDrift.map((perAge) => perAge.slice(1).map(summary));
  const driftOfMeans = meanDrift.map((perAge) => perAge.slice(1).map(summary));
  // The age at which a segment's share of [0, 1], (1 - tau) tau^j, drops below the spacing of the basis centres.
  const spacing = 1 / (c.numBasis / c.basisWidths.length - 1);
  const narrowerAt = ages.find((j) => (1 - tau) * tau ** j < spacing) ?? MAX_AGE;
  numbers['horizon'] = { vsGatedInput: horizon, vsAgeZero: drift, segmentMeanVsAgeZero: driftOfMeans, centreSpacing: round(spacing, 3), segmentNarrowerThanSpacingFromAge: narrowerAt };
  const colour = (li: number): string => (li === 0 ? '#3182bd' : '#e6550d');
  writeFileSync(
    join(OUT, 'memory-horizon.svg'),
    figureSvg(
      [
        {
          title: `Memory vs the segment's gated input, by age (segments 1-${SEGMENTS - 2})`,
          xLabel: 'age: segments absorbed since (0: the newest, on [tau, 1])',
          yLabel: 'relative RMS error',
          xRange: [-0.5, MAX_AGE + 0.5],
          yRange: [0, 1.1],
          hlines: [{ y: 1, color: '#444', label: 'nothing left (X = 0)' }],
          vlines: [{ x: narrowerAt - 0.5, color: '#999' }],
          series: horizon.flatMap((h, li): Series[] => [
            { kind: 'line', x: ages, y: h.map((a) => a.mean), color: colour(li), width: 2, label: `layer ${li} (mean; dots: min, max)` },
            { kind: 'dots', x: ages, y: h.map((a) => a.min), color: colour(li), width: 2.5 },
            { kind: 'dots', x: ages, y: h.map((a) => a.max), color: colour(li), width: 2.5 },
          ]),
          legend: 'bottom-right',
        },
        {
          title: 'Memory vs what it held of the segment at age 0',
          xLabel: 'age: segments absorbed since',
          yLabel: 'relative RMS change',
          xRange: [-0.5, MAX_AGE + 0.5],
          yRange: [0, 1.45],
          hlines: [{ y: 1, color: '#444' }],
          vlines: [{ x: narrowerAt - 0.5, color: '#999' }],
          series: drift.flatMap((h, li): Series[] => [
            { kind: 'line', x: ages.slice(1), y: h.map((a) => a.mean), color: colour(li), width: 2, label: `layer ${li}, whole signal` },
            { kind: 'line', x: ages.slice(1), y: driftOfMeans[li]!.map((a) => a.mean), color: colour(li), width: 1.5, dash: '5 3', label: `layer ${li}, segment mean per channel` },
            { kind: 'dots', x: ages.slice(1), y: h.map((a) => a.min), color: colour(li), width: 2.5 },
            { kind: 'dots', x: ages.slice(1), y: h.map((a) => a.max), color: colour(li), width: 2.5 },
          ]),
          legend: 'top-left',
        },
      ],
      {
        title: 'Contraction trades old detail for a fixed size',
        subtitle: 'npm run docs:figures — models/default over gcc-heldout.txt; tau = 0.5, N = 128 (64 centres)',
        width: 1000,
        columns: 2,
        panelHeight: 330,
      },
    ),
  );

  writeFileSync(join(OUT, 'figures.json'), `${JSON.stringify(numbers, null, 2)}\n`);
  console.log(JSON.stringify(numbers, null, 2));
}

await main();
