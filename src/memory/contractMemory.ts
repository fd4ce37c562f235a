/**
 * Memory contraction (DESIGN §2.4-2.5): the unbounded memory of the ∞-former. The old signal is
 * read at M positions s_m (uniform, or sticky: where attention went), the M values are laid on
 * the centred grid of [0, tau], the new segment on [tau, 1], and the whole is fitted again with
 * the same N basis functions. The memory stays `[N, e]` however long the stream is; old content
 * loses resolution as it is compressed toward 0, except where sticky reading stretches it.
 *
 * The laid positions never depend on s, so the ridge operator is one cached G for (M, L, tau):
 * sticky and uniform contraction differ only in the read-out Psi(s) B_past.
 */
import * as tf from '@tensorflow/tfjs';
import type { GaussianBasis } from '../basis/gaussianBasis.js';
import { leftMultiply } from '../basis/leftMultiply.js';
import { centredPositions, contractionPositions } from '../basis/positions.js';
import { ridgeTransposed } from '../basis/ridgeOperator.js';
import { BadConfigError, BadInputError } from '../errors.js';
import { markGraphConstant } from '../graph/constants.js';
import { requireDim, requireFinite, requireFiniteArray, requireOpenInterval, requirePositiveInt, requireTensor } from '../validate.js';

/** Options of {@link contractMemory}. */
export interface ContractMemoryOptions {
  basis: GaussianBasis;
  /** Share of [0, 1] given to the past. Default 0.5 (LM; sorting 0.75). */
  tau?: number;
  /** Number of samples M taken from the old signal. Default N (the basis size). */
  numSamples?: number;
  /**
   * Where to read the old signal: M sorted positions in [0, 1] (e.g. from
   * {@link stickyResample}), or one such array per batch item. Default the uniform centred grid
   * (m - 1/2)/M. The values are laid at tau (m - 1/2)/M whatever the positions.
   */
  positions?: ArrayLike<number> | readonly ArrayLike<number>[];
  /**
   * The read-out Psi(s) already evaluated at per-item positions, `[b, M, N]` (the model draws
   * sticky positions on the host before a compiled segment start, which feeds this). Replaces
   * `positions`; for {@link contractUnchecked} only.
   */
  readOut?: tf.Tensor;
  /** Ridge penalty. Default 0.5. */
  lambda?: number;
  /** Zero-padding as in the reference. Default true. */
  pad?: boolean;
}

export const DEFAULT_TAU = 0.5;

// Psi(s) at the uniform grid is the same every segment: keep it.
const uniformPsi = new Map<string, tf.Tensor2D>();
function uniformSamplesPsi(basis: GaussianBasis, m: number): tf.Tensor2D {
  const key = `${basis.key}:M${m}`;
  const hit = uniformPsi.get(key);
  if (hit !== undefined && !hit.isDisposed) return hit;
  const psi = markGraphConstant(tf.keep(basis.evaluate(centredPositions(m))));
  uniformPsi.set(key, psi);
  return psi;
}

function checkPositions(name: string, p: ArrayLike<number>, m: number): void {
  requireFiniteArray(name, p);
  if (p.length !== m) throw new BadInputError(name, `must hold numSamples = ${m} positions, got ${p.length}`);
  for (let i = 0; i < p.length; i++) {
    const v = p[i] as number;
    if (v < 0 || v > 1) throw new BadInputError(name, `position ${i} is ${v}, outside [0, 1]`);
    if (i > 0 && v < (p[i - 1] as number)) throw new BadInputError(name, 'positions must be sorted ascending');
  }
}

/**
 * B_past `[N, e]` (or `[b, N, e]`) and a new segment X `[L, e]` (or `[b, L, e]`, already
 * smoothed) -> the contracted memory B, same shape as B_past. The caller owns the result.
 */
export function contractMemory(bPast: tf.Tensor, x: tf.Tensor, options: ContractMemoryOptions): tf.Tensor {
  if (options?.basis === undefined) throw new BadConfigError('basis', 'a GaussianBasis is required');
  const { basis } = options;
  requireTensor('Bpast', bPast, [2, 3]);
  requireTensor('X', x, [bPast.rank]);
  requireDim('Bpast', bPast, -2, basis.numBasis, 'number of basis functions N');
  requireDim('X', x, -1, bPast.shape[bPast.rank - 1]!, 'model width e of Bpast');
  if (bPast.rank === 3) requireDim('X', x, 0, bPast.shape[0]!, 'batch size of Bpast');
  requireFinite('Bpast', bPast);
  requireFinite('X', x);
  const tau = requireOpenInterval('tau', options.tau ?? DEFAULT_TAU, 0, 1);
  const m = requirePositiveInt('numSamples', options.numSamples ?? basis.numBasis);
  const pos = options.positions;
  const perItem = pos !== undefined && pos.length > 0 && typeof (pos as ArrayLike<unknown>)[0] !== 'number';
  if (perItem) {
    const list = pos as readonly ArrayLike<number>[];
    if (bPast.rank !== 3 || list.length !== bPast.shape[0]) {
      throw new BadInputError('positions', 'one array per batch item needs Bpast of shape [b, N, e] and b arrays');
    }
    list.forEach((p, i) => checkPositions(`positions[${i}]`, p, m));
  } else if (pos !== undefined) checkPositions('positions', pos as ArrayLike<number>, m);
  return contractUnchecked(bPast, x, { ...options, tau, numSamples: m });
}

/**
 * {@link contractMemory} without its checks (NaN scans are host round trips): for the model,
 * whose inputs are its own finite tensors and whose sticky positions come sorted in [0, 1].
 */
export function contractUnchecked(bPast: tf.Tensor, x: tf.Tensor, options: ContractMemoryOptions): tf.Tensor {
  const { basis } = options;
  const tau = options.tau ?? DEFAULT_TAU;
  const m = options.numSamples ?? basis.numBasis;
  const length = x.shape[x.rank - 2]!;
  const fit = { basis, lambda: options.lambda, pad: options.pad };
  const pos = options.positions;
  const perItem = pos !== undefined && pos.length > 0 && typeof (pos as ArrayLike<unknown>)[0] !== 'number';
  return tf.tidy(() => {
    const old = options.readOut === undefined ? readOld(basis, bPast, pos, m, perItem) : tf.matMul(options.readOut as tf.Tensor3D, bPast as tf.Tensor3D);
    const all = tf.concat([old, x], x.rank - 2);
    // The laid positions are a function of (M, L, tau) only: one cached operator for all reads.
    const where = contractionPositions(m, length, tau);
    const gt = ridgeTransposed({ ...fit, positions: where, cacheKey: `contract:M${m}:L${length}:tau${tau}` });
    return leftMultiply(gt, all);
  });
}

/** Psi(s) B_past: the old signal read at s (`[M, e]`, or `[b, M, e]`; per item with `perItem`). */
function readOld(basis: GaussianBasis, bPast: tf.Tensor, pos: ContractMemoryOptions['positions'], m: number, perItem: boolean): tf.Tensor {
  if (pos === undefined) return leftMultiply(uniformSamplesPsi(basis, m), bPast);
  if (!perItem) return leftMultiply(basis.evaluate(pos as ArrayLike<number>), bPast);
  const psi = tf.stack((pos as readonly ArrayLike<number>[]).map((p) => basis.evaluate(p))) as tf.Tensor3D;
  return tf.matMul(psi, bPast as tf.Tensor3D);
}
