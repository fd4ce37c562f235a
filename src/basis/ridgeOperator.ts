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

/** psi_n(t) for every n and t, in float64: row-major [N, T]. */
export function basisMatrix64(basis: GaussianBasis, t: ArrayLike<number>): Float64Array {
  const n = basis.numBasis;
  const k = t.length;
  const f = new Float64Array(n * k);
  const norm = 1 / Math.sqrt(2 * Math.PI);
  for (let r = 0; r < n; r++) {
    const mu = basis.centers[r]!;
    const s = basis.sigmas[r]!;
    const c = norm / s;
    const inv = 1 / (2 * s * s);
    for (let i = 0; i < k; i++) {
      const d = (t[i] as number) - mu;
      f[r * k + i] = c * Math.exp(-d * d * inv);
    }
  }
  return f;
}

/** In-place Cholesky A = L L^T of a row-major n x n SPD matrix; returns L (lower). */
function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j]!;
    for (let k = 0; k < j; k++) d -= l[j * n + k]! * l[j * n + k]!;
    if (!(d > 0)) throw new BadConfigError('lambda', 'F F^T + lambda I is not positive definite; use lambda > 0');
    const ljj = Math.sqrt(d);
    l[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j]!;
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      l[i * n + j] = s / ljj;
    }
  }
  return l;
}

/**
 * Computes G^T ([N, K], row-major float64) for positions `t` (already padded if wanted),
 * keeping only columns [from, from + count).
 */
export function ridgeTransposed64(basis: GaussianBasis, t: ArrayLike<number>, lambda: number, from: number, count: number): Float64Array {
  const n = basis.numBasis;
  const k = t.length;
  const f = basisMatrix64(basis, t);
  // A = F F^T + lambda I (symmetric: fill both halves from one product).
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const fi = i * k;
    for (let j = 0; j <= i; j++) {
      const fj = j * k;
      let s = 0;
      for (let c = 0; c < k; c++) s += f[fi + c]! * f[fj + c]!;
      a[i * n + j] = s;
      a[j * n + i] = s;
    }
    a[i * n + i]! += lambda;
  }
  const l = cholesky(a, n);
  // G^T = A^{-1} F restricted to the kept columns: solve L Y = F, then L^T X = Y, column by column.
  const out = new Float64Array(n * count);
  const col = new Float64Array(n);
  for (let c = 0; c < count; c++) {
    for (let i = 0; i < n; i++) {
      let s = f[i * k + from + c]!;
      for (let q = 0; q < i; q++) s -= l[i * n + q]! * col[q]!;
      col[i] = s / l[i * n + i]!;
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = col[i]!;
      for (let q = i + 1; q < n; q++) s -= l[q * n + i]! * col[q]!;
      col[i] = s / l[i * n + i]!;
    }
    for (let i = 0; i < n; i++) out[i * count + c] = col[i]!;
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
  cache.set(r.key, tf.keep(gt));
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
