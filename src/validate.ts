/**
 * Argument checks shared by every public function: each failure is a typed error that names
 * the offending argument or option, so a bad record is diagnosable from the message alone.
 */
import * as tf from '@tensorflow/tfjs';
import { BadConfigError, BadInputError } from './errors.js';

/** Checks that `x` is a tensor of one of `ranks`, with no empty dimension. */
export function requireTensor(name: string, x: unknown, ranks: readonly number[]): tf.Tensor {
  if (!(x instanceof tf.Tensor)) throw new BadInputError(name, `expected a tensor, got ${describe(x)}`);
  if (x.isDisposed) throw new BadInputError(name, 'tensor is disposed');
  if (!ranks.includes(x.rank)) {
    throw new BadInputError(name, `expected rank ${ranks.join(' or ')}, got rank ${x.rank} (shape [${x.shape.join(', ')}])`);
  }
  if (x.shape.some((d: number) => d === 0)) throw new BadInputError(name, `is empty (shape [${x.shape.join(', ')}])`);
  return x;
}

/** Checks a dimension of a tensor against an expected size. */
export function requireDim(name: string, x: tf.Tensor, axis: number, size: number, what: string): void {
  const actual = x.shape[axis < 0 ? x.rank + axis : axis];
  if (actual !== size) {
    throw new BadInputError(name, `dimension ${axis} must be ${size} (${what}), got ${String(actual)} (shape [${x.shape.join(', ')}])`);
  }
}

/** Rejects NaN and infinities (one reduction and a scalar read). */
export function requireFinite(name: string, x: tf.Tensor): void {
  const ok = tf.tidy(() => tf.all(tf.isFinite(x)).dataSync()[0]);
  if (ok !== 1) throw new BadInputError(name, 'contains NaN or Infinity');
}

/** Same as {@link requireFinite} for plain arrays. */
export function requireFiniteArray(name: string, values: ArrayLike<number>): void {
  if (values.length === 0) throw new BadInputError(name, 'is empty');
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw new BadInputError(name, `element ${i} is ${String(values[i])}, expected a finite number`);
  }
}

export function requirePositiveInt(option: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new BadConfigError(option, `must be a positive integer, got ${describe(v)}`);
  }
  return v;
}

export function requirePositive(option: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new BadConfigError(option, `must be a positive finite number, got ${describe(v)}`);
  }
  return v;
}

/** A number strictly inside (lo, hi). */
export function requireOpenInterval(option: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= lo || v >= hi) {
    throw new BadConfigError(option, `must lie strictly between ${lo} and ${hi}, got ${describe(v)}`);
  }
  return v;
}

function describe(v: unknown): string {
  if (v instanceof tf.Tensor) return `tensor of shape [${v.shape.join(', ')}]`;
  if (Array.isArray(v)) return `array of length ${v.length}`;
  return v === null ? 'null' : typeof v === 'number' ? String(v) : typeof v;
}
