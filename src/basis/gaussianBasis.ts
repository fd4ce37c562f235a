/**
 * Gaussian radial basis functions psi_n(t) = N(t; mu_n, sigma_n^2) on [0, 1] (DESIGN §2.2),
 * their closed-form expectations under a Gaussian attention density, and the probability mass
 * a Gaussian puts in each of D equal bins of [0, 1] (for sticky memories).
 */
import * as tf from '@tensorflow/tfjs';
import { BadConfigError } from '../errors.js';
import { requireFinite, requireFiniteArray, requirePositive, requirePositiveInt, requireTensor } from '../validate.js';

/** Options of {@link gaussianBasis}. */
export interface GaussianBasisOptions {
  /** Number of basis functions N; must be a multiple of `widths.length`. */
  numBasis: number;
  /**
   * Standard deviations sigma; every centre is used with every width. Default `[0.01, 0.02]`,
   * which suits N = 128 (scale with the centre spacing: the reference's {0.005, 0.01} suit N = 512).
   */
  widths?: readonly number[];
}

/** A fixed set of N Gaussian basis functions. Holds no tensors: nothing to dispose. */
export interface GaussianBasis {
  readonly numBasis: number;
  /** Centre mu_n of each function (centre-major: function n = centre index * widths + width index). */
  readonly centers: Float64Array;
  /** Standard deviation sigma_n of each function. */
  readonly sigmas: Float64Array;
  /** The widths list the basis was built from. */
  readonly widths: readonly number[];
  /** A string that identifies the basis (used as a cache key). */
  readonly key: string;
  /** psi(t): `[T, N]` for T positions. */
  evaluate(t: tf.Tensor | ArrayLike<number>): tf.Tensor2D;
  /**
   * E_{t ~ N(mu, sigmaSq)}[psi_n(t)] = N(mu; mu_n, sigmaSq + sigma_n^2), integrated over the
   * whole real line. Shape `[...mu.shape, N]`; differentiable in mu and sigmaSq.
   */
  expectation(mu: tf.Tensor, sigmaSq: tf.Tensor): tf.Tensor;
  /** {@link expectation} of column vectors `[M, 1]` -> `[M, N]` (no reshapes: the hot path's form). */
  expectationOfColumns(mu: tf.Tensor, sigmaSq: tf.Tensor): tf.Tensor;
  /** Mass of N(mu, sigmaSq) in each of `numBins` equal bins of [0, 1]; see {@link binMass}. */
  binMass(mu: tf.Tensor, sigmaSq: tf.Tensor, numBins: number): tf.Tensor;
}

export const DEFAULT_WIDTHS: readonly number[] = [0.01, 0.02];

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** Builds N Gaussian basis functions: N / |widths| centres evenly spaced on [0, 1] inclusive. */
export function gaussianBasis(options: GaussianBasisOptions): GaussianBasis {
  const numBasis = requirePositiveInt('numBasis', options.numBasis);
  const widths = options.widths ?? DEFAULT_WIDTHS;
  if (!Array.isArray(widths) || widths.length === 0) throw new BadConfigError('widths', 'must be a non-empty array of standard deviations');
  widths.forEach((w, i) => requirePositive(`widths[${i}]`, w));
  if (numBasis % widths.length !== 0) {
    throw new BadConfigError('numBasis', `must be a multiple of widths.length (${widths.length}), got ${numBasis}`);
  }
  const numCenters = numBasis / widths.length;
  const centers = new Float64Array(numBasis);
  const sigmas = new Float64Array(numBasis);
  for (let c = 0; c < numCenters; c++) {
    const mu = numCenters === 1 ? 0.5 : c / (numCenters - 1);
    for (let w = 0; w < widths.length; w++) {
      centers[c * widths.length + w] = mu;
      sigmas[c * widths.length + w] = widths[w]!;
    }
  }
  const key = `N${numBasis}:w${widths.join(',')}`;
  // Constant rows built once per call; small (N floats).
  const muRow = Float32Array.from(centers);
  const varRow = Float32Array.from(sigmas, (s) => s * s);
  const normRow = Float32Array.from(sigmas, (s) => INV_SQRT_2PI / s);

  return {
    numBasis,
    centers,
    sigmas,
    widths: [...widths],
    key,
    evaluate(t) {
      if (!(t instanceof tf.Tensor)) {
        if (t.length === 0) throw new BadConfigError('t', 'is empty');
        requireFiniteArray('t', t);
        return tf.tensor2d(evaluateOnHost(t, centers, widths), [t.length, numBasis]);
      }
      requireTensor('t', t, [1]);
      requireFinite('t', t);
      return tf.tidy(() => {
        const diff = tf.sub(tf.expandDims(t, 1), tf.tensor2d(muRow, [1, numBasis]));
        const z = tf.div(tf.square(diff), tf.tensor2d(varRow, [1, numBasis]).mul(2));
        return tf.mul(tf.exp(tf.neg(z)), tf.tensor2d(normRow, [1, numBasis])) as tf.Tensor2D;
      });
    },
    expectation(mu, sigmaSq) {
      if (!(mu instanceof tf.Tensor)) throw new BadConfigError('mu', 'expected a tensor');
      if (!(sigmaSq instanceof tf.Tensor)) throw new BadConfigError('sigmaSq', 'expected a tensor');
      return basisExpectation(mu, sigmaSq, muRow, varRow);
    },
    expectationOfColumns: (mu, sigmaSq) => columnExpectation(mu, sigmaSq, muRow, varRow),
    binMass: (mu, sigmaSq, numBins) => binMass(mu, sigmaSq, numBins),
  };
}

// Beyond 9 standard deviations a Gaussian is below 3e-18 of its peak (as in the ridge solve).
const CUTOFF_SIGMAS = 9;

/**
 * psi(t) `[T, N]` (row-major) for plain positions, in float64 then rounded: each t meets only
 * the centres within 9 widths, so the cost is T x (a band of centres) instead of T x N
 * exponentials on the device. This is the read-out Psi(s) of every sticky contraction.
 */
function evaluateOnHost(t: ArrayLike<number>, centers: Float64Array, widths: readonly number[]): Float32Array {
  const w = widths.length;
  const numCenters = centers.length / w;
  const reach = CUTOFF_SIGMAS * Math.max(...widths);
  const out = new Float32Array(t.length * centers.length);
  for (let i = 0; i < t.length; i++) {
    const ti = t[i] as number;
    const scale = numCenters - 1;
    const from = numCenters === 1 ? 0 : Math.max(0, Math.ceil((ti - reach) * scale));
    const to = numCenters === 1 ? 0 : Math.min(scale, Math.floor((ti + reach) * scale));
    for (let c = from; c <= to; c++) {
      const d = ti - centers[c * w]!;
      for (let k = 0; k < w; k++) {
        const s = widths[k]!;
        if (Math.abs(d) > CUTOFF_SIGMAS * s) continue;
        out[i * centers.length + c * w + k] = (INV_SQRT_2PI / s) * Math.exp((-d * d) / (2 * s * s));
      }
    }
  }
  return out;
}

/** N(mu; mu_n, sigmaSq + sigma_n^2) for every n; differentiable, no checks (hot path). */
export function basisExpectation(mu: tf.Tensor, sigmaSq: tf.Tensor, centers: Float32Array, variances: Float32Array): tf.Tensor {
  return tf.tidy(() => {
    // Two small uploads per call; a global cache of kept tensors would outlive models.
    const shape = [...new Array<number>(mu.rank).fill(1), centers.length];
    const total = tf.add(tf.expandDims(sigmaSq, -1), tf.tensor(variances, shape));
    const diff = tf.sub(tf.expandDims(mu, -1), tf.tensor(centers, shape));
    const expo = tf.exp(tf.neg(tf.div(tf.square(diff), tf.mul(total, 2))));
    return tf.mul(expo, tf.rsqrt(tf.mul(total, 2 * Math.PI)));
  });
}

/** {@link basisExpectation} for `[M, 1]` columns against `[1, N]` rows: the same arithmetic, no expandDims. */
function columnExpectation(mu: tf.Tensor, sigmaSq: tf.Tensor, centers: Float32Array, variances: Float32Array): tf.Tensor {
  return tf.tidy(() => {
    const total = tf.add(sigmaSq, tf.tensor2d(variances, [1, variances.length]));
    const diff = tf.sub(mu, tf.tensor2d(centers, [1, centers.length]));
    const expo = tf.exp(tf.neg(tf.div(tf.square(diff), tf.mul(total, 2))));
    return tf.mul(expo, tf.rsqrt(tf.mul(total, 2 * Math.PI)));
  });
}

/** Standard normal CDF, Phi(x) = (1 + erf(x / sqrt 2)) / 2. */
function normalCdf(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1), 0.5);
}

/**
 * Probability mass of N(mu, sigmaSq) in each of `numBins` equal bins of [0, 1]:
 * p_j = Phi((e_{j+1} - mu) / sigma) - Phi((e_j - mu) / sigma). Shape `[...mu.shape, D]`.
 * The masses sum to the probability of [0, 1], which is below 1 when the density spills out.
 */
export function binMass(mu: tf.Tensor, sigmaSq: tf.Tensor, numBins: number): tf.Tensor {
  requireTensor('mu', mu, [0, 1, 2, 3, 4]);
  requireTensor('sigmaSq', sigmaSq, [mu.rank]);
  if (mu.shape.join() !== sigmaSq.shape.join()) {
    throw new BadConfigError('sigmaSq', `shape [${sigmaSq.shape.join(', ')}] must equal mu's [${mu.shape.join(', ')}]`);
  }
  const bins = requirePositiveInt('numBins', numBins);
  requireFinite('mu', mu);
  requireFinite('sigmaSq', sigmaSq);
  if (tf.tidy(() => tf.min(sigmaSq).dataSync()[0]!) <= 0) throw new BadConfigError('sigmaSq', 'must be positive');
  return binMassUnchecked(mu, sigmaSq, bins);
}

/**
 * {@link binMass} without its checks (three host round trips: NaN scans and the minimum), for
 * callers whose densities come from the model (finite, sigma^2 >= eps > 0 by construction).
 */
export function binMassUnchecked(mu: tf.Tensor, sigmaSq: tf.Tensor, bins: number): tf.Tensor {
  return tf.tidy(() => {
    const edges = tf.tensor(Float32Array.from({ length: bins + 1 }, (_, j) => j / bins), [...mu.shape.map(() => 1), bins + 1]);
    const z = tf.div(tf.sub(edges, tf.expandDims(mu, -1)), tf.expandDims(tf.sqrt(sigmaSq), -1));
    const cdf = normalCdf(z);
    const last = mu.rank;
    const begin = new Array<number>(last + 1).fill(0);
    const size = [...mu.shape, bins];
    const hi = tf.slice(cdf, [...begin.slice(0, last), 1], size);
    const lo = tf.slice(cdf, begin, size);
    return tf.relu(tf.sub(hi, lo));
  });
}
