/**
 * The ridge-regression operator G = F^T (F F^T + lambda I)^{-1} ([K, N]) that maps K signal
 * samples to N basis coefficients: B = G^T X (DESIGN §2.3). F[n, i] = psi_n(t_i).
 *
 * The N x N solve runs in float64 on the host (Cholesky: F F^T + lambda I is symmetric positive
 * definite), then G is handed to tfjs as float32. G depends only on (positions, basis, lambda,
 * padding), so operators for uniform positions are cached.
 */
import * as tf from '@tensorflow/tfjs';
import { BadConfigError, BadInputError } from '../errors.js';
import { requireFiniteArray, requirePositive, requirePositiveInt } from '../validate.js';
import type { GaussianBasis } from './gaussianBasis.js';
import { centredPositions, paddedPositions } from './positions.js';
import { markGraphConstant } from '../graph/constants.js';

/** Options of {@link ridgeOperator}. */
export interface RidgeOptions {
  /** The basis the signal is fitted with. */
  basis: GaussianBasis;
  /** Number of samples K. Required unless `positions` is given. */
  length?: number;
  /** Ridge penalty lambda. Default 0.5 (DESIGN §6; sorting uses 1.0). */
  lambda?: number;
  /**
   * Zero-pad the signal to about [-1/2, 3/2] and keep the middle rows of G (the reference's
   * behaviour, default true): the fit is pulled to zero at and beyond the ends of [0, 1].
   */
  pad?: boolean;
  /** Sample positions in [0, 1]; default the centred grid (i - 1/2)/K. Not cached when given. */
  positions?: ArrayLike<number>;
  /**
   * With `positions`: a name that identifies them (same key, same positions), so the operator
   * is cached too. Used for the deterministic positions of uniform contraction.
   */
  cacheKey?: string;
}

export const DEFAULT_LAMBDA = 0.5;

const cache = new Map<string, tf.Tensor2D>();

// Beyond 9 standard deviations a Gaussian is below 3e-18 of its peak: dropping those terms
// leaves every float64 sum unchanged to rounding, and makes F F^T banded.
const CUTOFF_SIGMAS = 9;

/**
 * Computes G^T ([N, K], row-major float64) for positions `t` (already padded if wanted),
 * keeping only columns [from, from + count).
 *
 * Exploits locality: each psi_n is non-negligible on a window of the (sorted) positions, so
 * A = F F^T + lambda I has an envelope (profile) structure that its Cholesky factor keeps.
 * Cost ~ N * band * (window + band + count) instead of N^2 * K.
 */
export function ridgeTransposed64(basis: GaussianBasis, t: ArrayLike<number>, lambda: number, from: number, count: number): Float64Array {
  const n = basis.numBasis;
  const k = t.length;
  // Sort positions, remembering where each original one went.
  const order = Array.from({ length: k }, (_, i) => i).sort((a, b) => (t[a] as number) - (t[b] as number));
  const ts = Float64Array.from(order, (i) => t[i] as number);
  const rank = new Int32Array(k);
  order.forEach((orig, sorted) => (rank[orig] = sorted));

  // Windows [lo, hi) of sorted positions where psi_n is non-negligible, and its values there.
  const lo = new Int32Array(n);
  const hi = new Int32Array(n);
  const vals: Float64Array[] = [];
  const norm = 1 / Math.sqrt(2 * Math.PI);
  const lowerBound = (x: number): number => {
    let a = 0;
    let b = k;
    while (a < b) {
      const m = (a + b) >> 1;
      if (ts[m]! < x) a = m + 1;
      else b = m;
    }
    return a;
  };
  for (let r = 0; r < n; r++) {
    const mu = basis.centers[r]!;
    const s = basis.sigmas[r]!;
    lo[r] = lowerBound(mu - CUTOFF_SIGMAS * s);
    hi[r] = Math.max(lo[r]!, lowerBound(mu + CUTOFF_SIGMAS * s));
    const v = new Float64Array(hi[r]! - lo[r]!);
    const c = norm / s;
    const inv = 1 / (2 * s * s);
    for (let j = 0; j < v.length; j++) {
      const d = ts[lo[r]! + j]! - mu;
      v[j] = c * Math.exp(-d * d * inv);
    }
    vals.push(v);
  }

  // A = F F^T + lambda I on its envelope: first[i] = first column j <= i with A[i][j] != 0.
  const a = new Float64Array(n * n);
  const first = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    first[i] = i;
    for (let j = 0; j <= i; j++) {
      const start = Math.max(lo[i]!, lo[j]!);
      const end = Math.min(hi[i]!, hi[j]!);
      if (start >= end) continue;
      const vi = vals[i]!;
      const vj = vals[j]!;
      let sum = 0;
      for (let c = start; c < end; c++) sum += vi[c - lo[i]!]! * vj[c - lo[j]!]!;
      a[i * n + j] = sum;
      if (j < first[i]!) first[i] = j;
    }
    a[i * n + i]! += lambda;
  }

  // Envelope Cholesky, in place in the lower triangle: A = L L^T (no fill outside the envelope).
  for (let i = 0; i < n; i++) {
    const fi = first[i]!;
    for (let j = fi; j <= i; j++) {
      let sum = a[i * n + j]!;
      for (let q = Math.max(fi, first[j]!); q < j; q++) sum -= a[i * n + q]! * a[j * n + q]!;
      if (j < i) a[i * n + j] = sum / a[j * n + j]!;
      else {
        if (!(sum > 0)) throw new BadConfigError('lambda', 'F F^T + lambda I is not positive definite; use lambda > 0');
        a[i * n + i] = Math.sqrt(sum);
      }
    }
  }
  // For the backward solve: the last row whose envelope reaches column j.
  const lastRow = new Int32Array(n);
  for (let i = 0; i < n; i++) for (let j = first[i]!; j <= i; j++) if (i > lastRow[j]!) lastRow[j] = i;

  // G^T column c = A^{-1} f_c, f_c = F's column at original position from + c.
  const out = new Float64Array(n * count);
  const y = new Float64Array(n);
  for (let c = 0; c < count; c++) {
    const p = rank[from + c]!;
    y.fill(0);
    let startRow = n;
    for (let r = 0; r < n; r++) {
      if (p >= lo[r]! && p < hi[r]!) {
        y[r] = vals[r]![p - lo[r]!]!;
        if (r < startRow) startRow = r;
      }
    }
    // Forward: L z = f (z[r] = 0 before the first non-zero of f).
    for (let r = startRow; r < n; r++) {
      let sum = y[r]!;
      for (let q = Math.max(first[r]!, startRow); q < r; q++) sum -= a[r * n + q]! * y[q]!;
      y[r] = sum / a[r * n + r]!;
    }
    // Backward: L^T x = z.
    for (let r = n - 1; r >= 0; r--) {
      let sum = y[r]!;
      const last = lastRow[r]!;
      for (let q = r + 1; q <= last; q++) if (first[q]! <= r) sum -= a[q * n + r]! * y[q]!;
      y[r] = sum / a[r * n + r]!;
    }
    for (let r = 0; r < n; r++) out[r * count + c] = y[r]!;
  }
  return out;
}

interface Resolved {
  positions: Float64Array;
  lambda: number;
  pad: boolean;
  key: string | undefined;
}

function resolve(options: RidgeOptions): Resolved {
  if (options === null || typeof options !== 'object' || options.basis === undefined) {
    throw new BadConfigError('basis', 'a GaussianBasis is required');
  }
  const lambda = requirePositive('lambda', options.lambda ?? DEFAULT_LAMBDA);
  const pad = options.pad ?? true;
  if (options.positions !== undefined) {
    const p = options.positions;
    requireFiniteArray('positions', p);
    if (options.length !== undefined && options.length !== p.length) {
      throw new BadInputError('positions', `length ${p.length} differs from length option ${options.length}`);
    }
    const key = options.cacheKey === undefined ? undefined : `${options.basis.key}:${options.cacheKey}:l${lambda}:p${pad}`;
    return { positions: Float64Array.from(p), lambda, pad, key };
  }
  const length = requirePositiveInt('length', options.length);
  return { positions: centredPositions(length), lambda, pad, key: `${options.basis.key}:L${length}:l${lambda}:p${pad}` };
}

/**
 * G^T as a float32 `[N, K]` tensor: the fast path (B = G^T X is an untransposed matMul).
 * Cached for uniform positions, in which case the tensor belongs to the cache: do not dispose
 * it. With explicit `positions` the caller owns it.
 */
export function ridgeTransposed(options: RidgeOptions): tf.Tensor2D {
  const r = resolve(options);
  if (r.key !== undefined) {
    const hit = cache.get(r.key);
    if (hit !== undefined && !hit.isDisposed) return hit;
  }
  const n = options.basis.numBasis;
  const k = r.positions.length;
  const padded = r.pad ? paddedPositions(r.positions) : { all: r.positions, offset: 0 };
  const gt64 = ridgeTransposed64(options.basis, padded.all, r.lambda, padded.offset, k);
  const gt = tf.tensor2d(Float32Array.from(gt64), [n, k]);
  if (r.key === undefined) return gt;
  // tf.keep: a cached operator must survive any tf.tidy the caller is inside.
  cache.set(r.key, markGraphConstant(tf.keep(gt)));
  return gt;
}

/**
 * The ridge operator G `[K, N]` for K positions (DESIGN §2.3). With `pad`, the solve runs on
 * the zero-padded grid and G keeps the rows of the real positions. The caller owns the result.
 */
export function ridgeOperator(options: RidgeOptions): tf.Tensor2D {
  const cached = resolve(options).key !== undefined;
  const gt = ridgeTransposed(options);
  const g = tf.transpose(gt) as tf.Tensor2D;
  if (!cached) gt.dispose();
  return g;
}

/** Releases every cached operator. */
export function clearRidgeCache(): void {
  for (const gt of cache.values()) gt.dispose();
  cache.clear();
}

/** Number of cached operators (for tests and leak accounting). */
export function ridgeCacheSize(): number {
  return cache.size;
}
