import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { gaussianBasis, continuousAttention, BadInputError, BadConfigError, type ContinuousAttentionWeights } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { lcg, normalPdf, simpson } from '../helpers/reference64.js';

test.before(async () => {
  await backendReady;
});

const N = 16;
const E = 8;
const H = 2;
const D = E / H;
const Q = 3;
const basis = gaussianBasis({ numBasis: N, widths: [0.05, 0.1] });
const EPS = 1e-4;

interface Params {
  b: number[][]; // [N, E]
  q: number[][]; // [Q, E]
  wK: number[][];
  wV: number[][];
  wMu: number[];
  wSigma: number[];
  wO: number[][];
}

function randomParams(seed: number): Params {
  const r = lcg(seed);
  const m = (rows: number, cols: number, scale: number): number[][] => Array.from({ length: rows }, () => Array.from({ length: cols }, () => (r() * 2 - 1) * scale));
  return { b: m(N, E, 1), q: m(Q, E, 1), wK: m(E, E, 0.6), wV: m(E, E, 0.6), wMu: m(1, N, 0.5)[0]!, wSigma: m(1, N, 0.5)[0]!, wO: m(E, E, 0.6) };
}

const matmul = (a: number[][], b: number[][]): number[][] => a.map((row) => b[0]!.map((_, j) => row.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
const softplus = (x: number): number => (x > 30 ? x : Math.log1p(Math.exp(x)));
const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** Independent float64 forward pass (DESIGN §2.6); returns context [Q, E] and mu, sigma^2 [H][Q]. */
function reference(p: Params): { context: number[][]; mu: number[][]; sigmaSq: number[][]; values: number[][] } {
  const k = matmul(p.b, p.wK);
  const v = matmul(p.b, p.wV);
  const mu: number[][] = [];
  const sigmaSq: number[][] = [];
  const z = Array.from({ length: Q }, () => new Array<number>(E).fill(0));
  for (let h = 0; h < H; h++) {
    mu.push([]);
    sigmaSq.push([]);
    for (let q = 0; q < Q; q++) {
      const scores = Array.from({ length: N }, (_, n) => {
        let s = 0;
        for (let j = 0; j < D; j++) s += p.q[q]![h * D + j]! * k[n]![h * D + j]!;
        return s / Math.sqrt(D);
      });
      const m = sigmoid(scores.reduce((s, x, n) => s + x * p.wMu[n]!, 0));
      const s2 = Math.max(softplus(scores.reduce((s, x, n) => s + x * p.wSigma[n]!, 0)), EPS);
      mu[h]!.push(m);
      sigmaSq[h]!.push(s2);
      for (let n = 0; n < N; n++) {
        const rn = normalPdf(m, basis.centers[n]!, s2 + basis.sigmas[n]! ** 2);
        for (let j = 0; j < D; j++) z[q]![h * D + j]! += rn * v[n]![h * D + j]!;
      }
    }
  }
  return { context: matmul(z, p.wO), mu, sigmaSq, values: v };
}

function tensors(p: Params): { b: tf.Tensor; q: tf.Tensor; w: ContinuousAttentionWeights } {
  return {
    b: tf.tensor2d(p.b),
    q: tf.tensor2d(p.q),
    w: { wK: tf.tensor2d(p.wK), wV: tf.tensor2d(p.wV), wMu: tf.tensor1d(p.wMu), wSigma: tf.tensor1d(p.wSigma), wO: tf.tensor2d(p.wO) },
  };
}

test('forward pass equals an independent float64 implementation', (t) => {
  for (const seed of [1, 2, 3]) {
    const p = randomParams(seed);
    const { b, q, w } = tensors(p);
    const out = continuousAttention(b, q, w, { basis, numHeads: H });
    const want = reference(p);
    const ctx = out.context.arraySync() as number[][];
    let worst = 0;
    let scale = 0;
    want.context.forEach((row, i) => row.forEach((v, j) => {
      worst = Math.max(worst, Math.abs(ctx[i]![j]! - v));
      scale = Math.max(scale, Math.abs(v));
    }));
    t.true(worst / scale < 1e-5, `seed ${seed}: ${worst / scale}`);
    const mu = out.mu.arraySync() as number[][];
    const s2 = out.sigmaSq.arraySync() as number[][];
    t.deepEqual(out.mu.shape, [H, Q]);
    want.mu.forEach((row, h) => row.forEach((m, i) => {
      t.true(Math.abs(mu[h]![i]! - m) < 1e-6);
      t.true(Math.abs(s2[h]![i]! - want.sigmaSq[h]![i]!) < 1e-6 * Math.max(1, want.sigmaSq[h]![i]!));
    }));
  }
});

test('context equals brute-force integration of N(t; mu, sigma^2) V^T psi(t) over [-1, 2]', (t) => {
  // Two regimes: broad densities (sigma^2 ~ 0.5-0.8), and with w_sigma, w_mu scaled up, means near
  // the ends of [0, 1] and variances from ~1e-2 to ~8.
  for (const [seed, sigmaScale, muScale] of [[11, 1, 1], [12, 12, 4]] as const) {
    const p = randomParams(seed);
    p.wSigma = p.wSigma.map((x) => x * sigmaScale);
    p.wMu = p.wMu.map((x) => x * muScale);
    const { b, q, w } = tensors(p);
    const { wO: _unused, ...noOutput } = w;
    const out = continuousAttention(b, q, noOutput, { basis, numHeads: H });
    const ctx = out.context.arraySync() as number[][];
    const mu = out.mu.arraySync() as number[][];
    const s2 = out.sigmaSq.arraySync() as number[][];
    const v = reference(p).values;
    let worst = 0;
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Q; i++) {
        for (let j = 0; j < D; j++) {
          const integrand = (x: number): number => {
            let s = 0;
            for (let n = 0; n < N; n++) s += v[n]![h * D + j]! * normalPdf(x, basis.centers[n]!, basis.sigmas[n]! ** 2);
            return normalPdf(x, mu[h]![i]!, s2[h]![i]!) * s;
          };
          const want = simpson(integrand, -1, 2, 60000);
          const got = ctx[i]![h * D + j]!;
          worst = Math.max(worst, Math.abs(got - want) / Math.max(Math.abs(want), 1e-3));
        }
      }
    }
    t.log(`mu ${mu.flat().map((m) => m.toFixed(3)).join(' ')}; sigma^2 ${s2.flat().map((m) => m.toExponential(1)).join(' ')}; worst relative error ${worst.toExponential(2)}`);
    t.true(worst < 1e-3);
  }
});

test('gradients w.r.t. queries, W_K, W_V, w_mu, w_sigma match central finite differences (float64 reference)', (t) => {
  const p = randomParams(5);
  const r = lcg(99);
  const probe = Array.from({ length: Q }, () => Array.from({ length: E }, () => r() * 2 - 1));
  // Loss: <context, probe>; finite differences of the float64 reference, autodiff of the library.
  const loss64 = (pp: Params): number => reference(pp).context.reduce((s, row, i) => s + row.reduce((a, v, j) => a + v * probe[i]![j]!, 0), 0);
  const { b, q, w } = tensors(p);
  const probeT = tf.tensor2d(probe);
  const names = ['q', 'wK', 'wV', 'wMu', 'wSigma'] as const;
  const inputs = [q, w.wK, w.wV, w.wMu, w.wSigma];
  const grads = tf.grads((qq: tf.Tensor, k: tf.Tensor, vv: tf.Tensor, m: tf.Tensor, s: tf.Tensor) =>
    tf.sum(tf.mul(continuousAttention(b, qq, { wK: k, wV: vv, wMu: m, wSigma: s, wO: w.wO }, { basis, numHeads: H }).context, probeT)),
  )(inputs);
  const h = 1e-6;
  names.forEach((name, gi) => {
    const g = grads[gi]!.dataSync();
    let worst = 0;
    let scale = 0;
    for (let idx = 0; idx < g.length; idx++) {
      const perturb = (delta: number): number => {
        const pp: Params = JSON.parse(JSON.stringify(p)) as Params;
        const target = pp[name] as number[] | number[][];
        if (Array.isArray(target[0])) {
          const cols = (target[0] as number[]).length;
          (target as number[][])[Math.floor(idx / cols)]![idx % cols]! += delta;
        } else (target as number[])[idx]! += delta;
        return loss64(pp);
      };
      const fd = (perturb(h) - perturb(-h)) / (2 * h);
      worst = Math.max(worst, Math.abs(g[idx]! - fd));
      scale = Math.max(scale, Math.abs(fd));
    }
    t.log(`${name}: max |autodiff - FD| / max |FD| = ${(worst / scale).toExponential(2)} (max |FD| ${scale.toFixed(3)})`);
    t.true(worst / scale < 1e-3, name);
  });
});

test('batched [b, N, e] memories equal per-item calls', (t) => {
  const ps = [randomParams(21), randomParams(22)];
  const w = tensors(ps[0]!).w;
  const bs = ps.map((p) => tf.tensor2d(p.b));
  const qs = ps.map((p) => tf.tensor2d(p.q));
  const together = continuousAttention(tf.stack(bs), tf.stack(qs), w, { basis, numHeads: H });
  t.deepEqual(together.context.shape, [2, Q, E]);
  t.deepEqual(together.mu.shape, [2, H, Q]);
  bs.forEach((bb, i) => {
    const alone = continuousAttention(bb, qs[i]!, w, { basis, numHeads: H });
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.squeeze(tf.slice(together.context, [i, 0, 0], [1, -1, -1]), [0]), alone.context))).dataSync()[0]!);
    t.true(diff < 1e-5);
  });
});

test('property: mu lies in (0, 1) and sigma^2 >= eps for any inputs', (t) => {
  for (let seed = 30; seed < 40; seed++) {
    const p = randomParams(seed);
    p.q = p.q.map((row) => row.map((v) => v * 50)); // extreme scores
    const { b, q, w } = tensors(p);
    const out = continuousAttention(b, q, w, { basis, numHeads: H, eps: 1e-3 });
    t.true(out.mu.dataSync().every((m) => m >= 0 && m <= 1));
    t.true(out.sigmaSq.dataSync().every((s) => s >= 1e-3 * (1 - 1e-6)));
    t.true(out.context.dataSync().every(Number.isFinite));
  }
});

test('bad inputs get typed errors naming the argument', (t) => {
  const { b, q, w } = tensors(randomParams(1));
  const o = { basis, numHeads: H };
  t.throws(() => continuousAttention(tf.zeros([N - 1, E]), q, w, o), { instanceOf: BadInputError, message: /^B: dimension -2 must be 16/ });
  t.throws(() => continuousAttention(b, tf.zeros([Q, E + 1]), w, o), { instanceOf: BadInputError, message: /^queries: dimension -1/ });
  t.throws(() => continuousAttention(b, tf.zeros([E]), w, o), { instanceOf: BadInputError, message: /^queries: expected rank 2/ });
  t.throws(() => continuousAttention(b, tf.zeros([0, E]), w, o), { instanceOf: BadInputError, message: /^queries: is empty/ });
  t.throws(() => continuousAttention(b, tf.fill([Q, E], Number.NaN), w, o), { instanceOf: BadInputError, message: /^queries: contains NaN/ });
  t.throws(() => continuousAttention(b, q, { ...w, wMu: tf.zeros([N + 1]) }, o), { instanceOf: BadInputError, message: /^wMu:/ });
  t.throws(() => continuousAttention(b, q, { ...w, wK: tf.zeros([E, E - 1]) }, o), { instanceOf: BadInputError, message: /^wK:/ });
  t.throws(() => continuousAttention(b, q, w, { basis, numHeads: 3 }), { instanceOf: BadConfigError, message: /^numHeads: must divide/ });
  t.throws(() => continuousAttention(b, q, w, { basis, numHeads: 0 }), { instanceOf: BadConfigError, message: /^numHeads:/ });
  t.throws(() => continuousAttention(b, q, w, { basis, numHeads: H, eps: 0 }), { instanceOf: BadConfigError, message: /^eps:/ });
});

test('no tensor leaks, including under tf.grad', (t) => {
  const { b, q, w } = tensors(randomParams(1));
  const before = tf.memory().numTensors;
  const out = continuousAttention(b, q, w, { basis, numHeads: H });
  tf.dispose([out.context, out.mu, out.sigmaSq]);
  const g = tf.grad((qq: tf.Tensor) => tf.sum(continuousAttention(b, qq, w, { basis, numHeads: H }).context))(q);
  g.dispose();
  t.throws(() => continuousAttention(b, tf.zeros([E]), w, { basis, numHeads: H }));
  t.is(tf.memory().numTensors, before + 1); // the zeros([E]) created in the last line
});
