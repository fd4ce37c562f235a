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
 * Where contraction lays things on the new [0, 1] (DESIGN §2.4, the paper's §3.3): the M values
 * read from the old signal go to the centred grid of [0, tau], tau (m - 1/2) / M, wherever they
 * were read (uniformly or at sticky positions); the L new vectors to the centred grid of
 * [tau, 1]. Sticky reading therefore stretches the attended regions over the past's share of
 * the interval, and the positions (hence the ridge operator) are the same every segment.
 */
export function contractionPositions(numSamples: number, length: number, tau: number): Float64Array {
  const out = new Float64Array(numSamples + length);
  for (let i = 0; i < numSamples; i++) out[i] = (tau * (i + 0.5)) / numSamples;
  for (let j = 0; j < length; j++) out[numSamples + j] = tau + ((1 - tau) * (j + 0.5)) / length;
  return out;
}
