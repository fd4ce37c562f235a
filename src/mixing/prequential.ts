/**
 * Prequential ("test, then train") scoring of one byte stream, as the main job reads it: each
 * byte is scored by the predictor as it is before the byte, then the predictor learns from it.
 * The predictor is a network (frozen or learning), a {@link ContextMixer}, or both mixed. The
 * figure is the stream's ideal code length: what an arithmetic coder driven by the predictor
 * would spend, comparable byte for byte with gzip, xz and PPM on the same bytes.
 */
import { BadInputError } from '../errors.js';
import { ContextMixer } from './contextMixer.js';
import type { NextByteScorer } from './networkScorer.js';

/** What to score with; at least one of the two. */
export interface PrequentialOptions {
  /** The network's next-byte distributions (frozen or learning). Default none. */
  network?: NextByteScorer;
  /** The context mixer (its statistics start empty unless given one that has read before); false: the network alone. Default a new ContextMixer(). */
  mixer?: ContextMixer | false;
  /** Called after each segment with the bytes scored so far (progress). */
  onProgress?: (bytesDone: number) => void;
}

/** The figures of a prequential pass. */
export interface PrequentialResult {
  /** -log2 p(byte | all bytes before it) per byte. */
  bits: Float32Array;
  /** Mean of `bits`. */
  bitsPerByte: number;
  /** The network alone on the same bytes (when there is a network), bits per byte. */
  networkBitsPerByte?: number;
  /** Segments the network learned from. */
  segmentsLearned: number;
  /** Wall time, seconds. */
  seconds: number;
}

const UNIFORM = new Float32Array(256).fill(1 / 256);

/** Scores `bytes` as one stream, prequentially. */
export function scorePrequential(bytes: Uint8Array, options: PrequentialOptions): PrequentialResult {
  const net = options.network;
  const mixer = options.mixer === false ? undefined : (options.mixer ?? new ContextMixer());
  if (net === undefined && mixer === undefined) throw new BadInputError('options', 'give a network, a mixer, or both');
  if (bytes.length === 0) throw new BadInputError('bytes', 'nothing to score (empty input)');
  const t0 = performance.now();
  const bits = new Float32Array(bytes.length);
  const stream = mixer?.createStream();
  let netBits = 0;
  // The network's distribution of the next byte (uniform before the first byte).
  let carry: Float32Array = UNIFORM;
  const L = net?.segmentLength ?? 4096;
  for (let start = 0; start < bytes.length; start += L) {
    const seg = bytes.subarray(start, Math.min(bytes.length, start + L));
    // The network reads the segment first: its row j uses bytes <= j only (causal), so the
    // distribution of byte j (row j - 1, or the carry) never saw byte j.
    const rows = net?.read(Int32Array.from(seg));
    for (let j = 0; j < seg.length; j++) {
      const dist = rows === undefined ? undefined : j === 0 ? carry : rows.subarray((j - 1) * 256, j * 256);
      const b = seg[j]!;
      let own = NaN;
      if (dist !== undefined) {
        let total = 0;
        for (let k = 0; k < 256; k++) total += dist[k]!;
        own = -Math.log2(Math.max(dist[b]! / total, 1e-30));
        netBits += own;
      }
      bits[start + j] = mixer !== undefined && stream !== undefined ? mixer.code(stream, b, dist) : own;
    }
    if (rows !== undefined) carry = rows.slice((seg.length - 1) * 256, seg.length * 256);
    options.onProgress?.(start + seg.length);
  }
  let total = 0;
  for (let i = 0; i < bits.length; i++) total += bits[i]!;
  return {
    bits,
    bitsPerByte: total / bytes.length,
    ...(net !== undefined ? { networkBitsPerByte: netBits / bytes.length } : {}),
    segmentsLearned: net?.segmentsLearned ?? 0,
    seconds: (performance.now() - t0) / 1000,
  };
}
