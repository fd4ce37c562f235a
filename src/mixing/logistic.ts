/**
 * The logistic domain of bitwise context mixing: predictions are mixed as log-odds
 * ("stretched" probabilities) and mapped back with the logistic function ("squash").
 */

/** Probabilities handed to a coder stay this far from 0 and 1 (at most 16 bits per bit). */
export const P_MIN = 1 / 65536;

/** ln(p / (1 - p)), p clamped to [P_MIN, 1 - P_MIN]. */
export function stretch(p: number): number {
  const q = p < P_MIN ? P_MIN : p > 1 - P_MIN ? 1 - P_MIN : p;
  return Math.log(q / (1 - q));
}

/** 1 / (1 + e^-x), clamped to [P_MIN, 1 - P_MIN]. */
export function squash(x: number): number {
  const p = 1 / (1 + Math.exp(-x));
  return p < P_MIN ? P_MIN : p > 1 - P_MIN ? 1 - P_MIN : p;
}

/**
 * stretch((v + 0.5) / 65536) for every 16-bit counter probability v: the stretched p of a
 * counter slot ({@link CounterTable.p}) by lookup instead of a logarithm, the same numbers.
 */
export const STRETCH16: Float64Array = Float64Array.from({ length: 65536 }, (_, v) => stretch((v + 0.5) / 65536));
