/**
 * Sample positions on [0, 1]. One convention everywhere (the reference mixes two): K samples
 * sit at the centres of K equal cells, t_i = (i - 1/2) / K.
 */

/** t_i = (i - 1/2) / count for i = 1..count. */
export function centredPositions(count: number): Float64Array {
  const t = new Float64Array(count);
  for (let i = 0; i < count; i++) t[i] = (i + 0.5) / count;
  return t;
}

/**
 * Zero-padding for ridge regression (the reference's behaviour): ceil(K/2) extra positions on
 * each side, continuing the centred grid of spacing 1/K, so K uniform positions become 2K or
 * 2K+2 positions over about [-1/2, 3/2]. The padded samples carry value zero, which pulls the
 * fitted signal toward zero at and beyond the ends of [0, 1].
 */
export function paddedPositions(positions: ArrayLike<number>): { all: Float64Array; offset: number } {
  const k = positions.length;
  const pad = Math.ceil(k / 2);
  const all = new Float64Array(k + 2 * pad);
  for (let j = 0; j < pad; j++) {
    all[pad - 1 - j] = -(j + 0.5) / k;
    all[pad + k + j] = 1 + (j + 0.5) / k;
  }
  for (let i = 0; i < k; i++) all[pad + i] = positions[i] as number;
  return { all, offset: pad };
}

/**
 * Where contraction puts things on the new [0, 1]: the M old samples s_m squeezed into
 * [0, tau], then the L new vectors on the centred grid of [tau, 1].
 */
export function contractionPositions(samples: ArrayLike<number>, length: number, tau: number): Float64Array {
  const m = samples.length;
  const out = new Float64Array(m + length);
  for (let i = 0; i < m; i++) out[i] = tau * (samples[i] as number);
  for (let j = 0; j < length; j++) out[m + j] = tau + ((1 - tau) * (j + 0.5)) / length;
  return out;
}
