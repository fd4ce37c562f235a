/**
 * The per-stream state of the ∞-former: everything one stream (one Kafka key, one log source)
 * carries from token to token. Its size depends only on the config:
 *
 * - per layer: the long-term memory B `[N, e]` read during the last finished segment, that
 *   segment's layer inputs `[L, e]` (the short-term cache, and what the memory absorbs next),
 *   the current segment's inputs so far (at most `[L, e]`), the sticky histogram `[D]` of the
 *   last segment and the current segment's attention densities `[H, L]`;
 * - the sampling RNG (four words) as it stood at the start of the current segment, and counters.
 *
 * The memory is absorbed lazily: when a segment starts, B_new = contract(B, gate(X_prev)) is
 * computed from the stored B and X_prev with the stored RNG state, so a state serialised in the
 * middle of a segment restores to exactly the same numbers. Derived caches (keys and values of
 * the previous segment, the absorbed memory) are rebuilt on demand and never serialised.
 *
 * The model computes (a chunk's layer inputs, keys, values, densities; the caches at a segment
 * start); the state updates itself from those results ({@link StreamState.advance},
 * {@link StreamState.setDerived}), including the roll-over at a segment's end.
 */
import * as tf from '@tensorflow/tfjs';
import { binMassUnchecked } from '../basis/gaussianBasis.js';
import { tidyData } from '../tidyData.js';
import { BadInputError, ModelFileError } from '../errors.js';
import { createRng } from '../memory/rng.js';
import { crc32, fingerprint } from './checksum.js';
import type { ModelConfig } from './config.js';

/** One layer's part of a stream's state. */
export interface LayerState {
  /** Memory read during the last finished segment `[N, e]`, or null before there was one. */
  memory: tf.Tensor | null;
  /** Layer inputs of the last finished segment `[L, e]`, or null at the stream's start. */
  prevX: tf.Tensor | null;
  /** Sticky histogram of the attention during the last finished segment. */
  prevMass: Float64Array;
  /** Layer inputs of the current segment so far `[pos, e]`, or null at pos 0. */
  curX: tf.Tensor | null;
  /** Attention densities (mean, variance) of the current segment's tokens so far, `[H, L]` row-major; the sticky histogram is built from them at the boundary. */
  curMu: Float32Array;
  curSigmaSq: Float32Array;
  /** Derived (not serialised): the memory of the current segment, once absorbed; null = none. */
  active?: tf.Tensor | null;
  /** Derived: keys and values of `prevX`, `[1, H, L, d]` (zeros when prevX is null). */
  prevK?: tf.Tensor;
  prevV?: tf.Tensor;
  /** Derived (inference): the absorbed memory's keys and values per head, `[1, H, N, d]`: read by every chunk of the segment. */
  memKeys?: tf.Tensor;
  memValues?: tf.Tensor;
  /** Derived: keys and values of the current segment so far `[H, pos, d]`. */
  curK?: tf.Tensor | null;
  curV?: tf.Tensor | null;
}

/** One stream's part of one layer of a chunk of T tokens; the state owns its tensors from then on. */
export interface LayerChunk {
  /** Layer inputs after LN `[T, e]`. */
  x: tf.Tensor;
  /** Rotated keys and values `[H, T, d]` (appended to the caches in inference). */
  k: tf.Tensor;
  v: tf.Tensor;
  /** Training: the memory absorbed at the segment start (or null); undefined in inference. */
  active?: tf.Tensor | null;
  /** Sticky sampling: the continuous-attention densities `[H, T]`, row-major. */
  mu?: Float32Array;
  sigmaSq?: Float32Array;
}

/** The derived caches of one layer at a segment start (or of a state restored mid-segment). */
export interface DerivedLayer {
  prevK: tf.Tensor;
  prevV: tf.Tensor;
  active: tf.Tensor | null;
  memKeys?: tf.Tensor;
  memValues?: tf.Tensor;
  curK: tf.Tensor | null;
  curV: tf.Tensor | null;
}

/** First word of a serialised state: "IFST" little-endian. */
export const STATE_MAGIC = 0x54534649;
/**
 * 2: only what the state holds is written (the current segment's `pos` rows, not L; the sticky
 * statistics only with sticky sampling, where they are not all zero). 1 (always L rows and the
 * sticky arrays) is still read.
 */
export const STATE_FORMAT_VERSION = 2;
const HEADER_BYTES = 4 + 4 + 4 + 4 + 8 + 8 + 16;

/** Which parts a layer holds (bit flags in the serialised state). */
const HAS_MEMORY = 1;
const HAS_PREV = 2;
const HAS_CUR = 4;

/** The state of one stream. Create with `model.createState(seed)`; free with {@link dispose}. */
export class StreamState {
  /** Tokens into the current segment, in [0, L). */
  pos = 0;
  /** Tokens seen since the stream started. */
  tokensSeen = 0;
  /** Finished segments. */
  segmentsSeen = 0;
  /** RNG words at the start of the current segment (sticky sampling draws from here). */
  rngState: number[];
  /** Derived: RNG words after this segment's draws; becomes `rngState` at the boundary. */
  rngNext: number[] | undefined;
  readonly layers: LayerState[];
  private disposed = false;

  constructor(
    readonly config: Readonly<ModelConfig>,
    seed = 0,
  ) {
    this.rngState = createRng(seed).getState();
    const d = config.longTermMemory ? config.stickyBins : 0;
    const hl = config.longTermMemory ? config.numHeads * config.segmentLength : 0;
    this.layers = Array.from({ length: config.numLayers }, () => ({
      memory: null,
      prevX: null,
      prevMass: new Float64Array(d),
      curX: null,
      curMu: new Float32Array(hl),
      curSigmaSq: new Float32Array(hl),
    }));
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Drops the derived caches (they are rebuilt on the next token). */
  clearDerived(): void {
    for (const l of this.layers) {
      if (l.active !== undefined && l.active !== null && l.active !== l.memory) l.active.dispose();
      tf.dispose([l.prevK, l.prevV, l.curK ?? undefined, l.curV ?? undefined, l.memKeys, l.memValues].filter((t): t is tf.Tensor => t !== undefined));
      delete l.active;
      delete l.memKeys;
      delete l.memValues;
      delete l.prevK;
      delete l.prevV;
      delete l.curK;
      delete l.curV;
    }
    this.rngNext = undefined;
  }

  /** Installs the derived caches the model computed, and the RNG words after this segment's draws. */
  setDerived(layers: readonly DerivedLayer[], rngNext: number[]): void {
    this.clearDerived();
    layers.forEach((d, i) => Object.assign(this.layers[i]!, d));
    this.rngNext = rngNext;
  }

  /**
   * Folds a chunk's results into the state (short-term caches, sticky densities, counters); at
   * the end of a segment rolls over: memory := absorbed memory, previous segment := this one.
   * `rngNext`: a training chunk's RNG words after its segment-start draws (it recomputed the
   * segment start, so any inference caches are dropped first).
   */
  advance(layers: readonly LayerChunk[], rngNext: number[] | undefined): void {
    const c = this.config;
    const t = layers[0]!.x.shape[0]!;
    if (rngNext !== undefined) this.clearDerived();
    layers.forEach((chunk, li) => {
      const ls = this.layers[li]!;
      ls.curX = appendRows(ls.curX, chunk.x, 0);
      if (chunk.active !== undefined) {
        ls.active = chunk.active;
        if (ls.active !== null) tf.keep(ls.active);
        tf.dispose([chunk.k, chunk.v]);
      } else {
        ls.curK = appendRows(ls.curK ?? null, chunk.k, 1);
        ls.curV = appendRows(ls.curV ?? null, chunk.v, 1);
      }
      // Sticky: keep each token's densities; the histogram is built once at the boundary, so
      // token mode and segment mode bin exactly the same numbers.
      if (chunk.mu !== undefined && chunk.sigmaSq !== undefined) {
        const L = c.segmentLength;
        for (let h = 0; h < c.numHeads; h++) {
          for (let tok = 0; tok < t; tok++) {
            ls.curMu[h * L + this.pos + tok] = chunk.mu[h * t + tok]!;
            ls.curSigmaSq[h * L + this.pos + tok] = chunk.sigmaSq[h * t + tok]!;
          }
        }
      }
    });
    if (rngNext !== undefined) this.rngNext = rngNext;
    this.pos += t;
    this.tokensSeen += t;
    if (this.pos === c.segmentLength) this.rollOver();
  }

  /** The segment is full: its memory and inputs become the previous segment's; the RNG moves on. */
  private rollOver(): void {
    const c = this.config;
    // Sticky histograms of every layer whose memory was read, in one device pass.
    const sticky = this.layers.filter((ls) => c.sticky && (ls.active ?? null) !== null);
    const masses = stickyHistograms(sticky, c);
    for (const ls of this.layers) {
      const active = ls.active ?? null;
      if (ls.memory !== null && ls.memory !== active) ls.memory.dispose();
      ls.memory = active;
      delete ls.active;
      const k = sticky.indexOf(ls);
      ls.prevMass = k >= 0 ? masses[k]! : new Float64Array(ls.prevMass.length);
      ls.curMu.fill(0);
      ls.curSigmaSq.fill(0);
      if (ls.prevX !== null) ls.prevX.dispose();
      ls.prevX = ls.curX;
      ls.curX = null;
    }
    const next = this.rngNext;
    this.clearDerived();
    this.rngState = next ?? this.rngState;
    this.pos = 0;
    this.segmentsSeen += 1;
  }

  /** Frees every tensor. The state is unusable afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.clearDerived();
    for (const l of this.layers) tf.dispose([l.memory, l.prevX, l.curX].filter((t): t is tf.Tensor => t !== null));
    this.disposed = true;
  }

  /**
   * Number of bytes {@link serialize} produces for a state at segment position `pos` whose
   * layers hold a memory and a previous segment (every state after its second segment): a
   * function of the config and `pos`. Earlier states are smaller.
   */
  static byteLength(c: Readonly<ModelConfig>, pos = 0): number {
    return layout(c, pos, HAS_MEMORY | HAS_PREV | (pos > 0 ? HAS_CUR : 0), STATE_FORMAT_VERSION).total;
  }

  /** The whole state as bytes (CRC-protected): its size depends on the config, the position and which parts exist yet. */
  serialize(): Uint8Array {
    if (this.disposed) throw new BadInputError('state', 'is disposed');
    const c = this.config;
    const e = c.width;
    const L = c.segmentLength;
    const H = c.numHeads;
    const pos = this.pos;
    const flagsOf = (l: LayerState): number => (l.memory !== null ? HAS_MEMORY : 0) | (l.prevX !== null ? HAS_PREV : 0) | (l.curX !== null && pos > 0 ? HAS_CUR : 0);
    const total = HEADER_BYTES + this.layers.reduce((n, l) => n + layout(c, pos, flagsOf(l), STATE_FORMAT_VERSION).perLayer, 0) + 4;
    const bytes = new Uint8Array(total);
    const view = new DataView(bytes.buffer);
    let o = 0;
    const u32 = (v: number): void => {
      view.setUint32(o, v, true);
      o += 4;
    };
    const f64 = (v: number): void => {
      view.setFloat64(o, v, true);
      o += 8;
    };
    const f32s = (data: ArrayLike<number>, count = data.length): void => {
      for (let i = 0; i < count; i++) view.setFloat32(o + 4 * i, data[i]!, true);
      o += 4 * count;
    };
    u32(STATE_MAGIC);
    u32(STATE_FORMAT_VERSION);
    u32(fingerprint(c));
    u32(pos);
    f64(this.tokensSeen);
    f64(this.segmentsSeen);
    for (const w of this.rngState) u32(w);
    for (const l of this.layers) {
      const flags = flagsOf(l);
      u32(flags);
      if ((flags & HAS_PREV) !== 0) f32s(l.prevX!.dataSync());
      if ((flags & HAS_CUR) !== 0) f32s(l.curX!.dataSync(), pos * e);
      if (c.longTermMemory && (flags & HAS_MEMORY) !== 0) f32s(l.memory!.dataSync());
      if (c.longTermMemory && c.sticky) {
        for (const v of l.prevMass) f64(v);
        // Only the first pos densities of each head are set; the rest are zero.
        for (const arr of [l.curMu, l.curSigmaSq]) for (let h = 0; h < H; h++) f32s(arr.subarray(h * L, h * L + pos));
      }
    }
    u32(crc32(bytes.subarray(0, o)));
    return bytes;
  }

  /** Restores a state written by {@link serialize} (format 2, or 1) for the same config. */
  static deserialize(config: Readonly<ModelConfig>, bytes: Uint8Array): StreamState {
    if (!(bytes instanceof Uint8Array)) throw new BadInputError('bytes', 'expected a Uint8Array');
    if (bytes.length < HEADER_BYTES + 4) throw new ModelFileError(`state bytes are truncated: ${bytes.length} bytes`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let o = 0;
    const u32 = (): number => {
      const v = view.getUint32(o, true);
      o += 4;
      return v;
    };
    const f64 = (): number => {
      const v = view.getFloat64(o, true);
      o += 8;
      return v;
    };
    if (u32() !== STATE_MAGIC) throw new ModelFileError('not an infiniformer stream state (bad magic number)');
    const version = u32();
    if (version !== 1 && version !== 2) throw new ModelFileError(`stream state format version ${version} is not supported (expected ${STATE_FORMAT_VERSION} or 1)`);
    if (u32() !== fingerprint(config)) throw new ModelFileError('stream state was written for a different model config');
    if (view.getUint32(bytes.length - 4, true) !== crc32(bytes.subarray(0, bytes.length - 4))) throw new ModelFileError('stream state checksum mismatch (truncated or corrupt)');
    const e = config.width;
    const L = config.segmentLength;
    const H = config.numHeads;
    const state = new StreamState(config);
    state.pos = u32();
    if (state.pos >= L) throw new ModelFileError(`stream state position ${state.pos} is not below the segment length ${L}`);
    const pos = state.pos;
    state.tokensSeen = f64();
    state.segmentsSeen = f64();
    state.rngState = [u32(), u32(), u32(), u32()];
    // Every layer's size is known from its flags: check it before reading, so a short buffer is a clear error.
    const need = (n: number): void => {
      if (o + n > bytes.length - 4) throw new ModelFileError(`stream state has ${bytes.length} bytes, too few for its layers (truncated or corrupt)`);
    };
    const f32s = (count: number): Float32Array => {
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getFloat32(o + 4 * i, true);
      o += 4 * count;
      return data;
    };
    const tensor = (rows: number, stored: number, present: boolean): tf.Tensor | null => {
      if (!present) {
        if (version === 1) o += 4 * stored * e;
        return null;
      }
      const data = f32s(rows * e);
      o += 4 * (stored - rows) * e;
      return tf.tensor2d(data, [rows, e]);
    };
    const readLayers = (): void => {
      for (const l of state.layers) {
        need(4);
        const flags = u32();
        const hasCur = (flags & HAS_CUR) !== 0 && pos > 0;
        need(layout(config, pos, flags, version).perLayer - 4);
        l.prevX = tensor(L, L, (flags & HAS_PREV) !== 0);
        l.curX = tensor(pos, version === 1 ? L : hasCur ? pos : 0, hasCur);
        if (config.longTermMemory) {
          l.memory = tensor(config.numBasis, config.numBasis, (flags & HAS_MEMORY) !== 0);
          if (version === 1 || config.sticky) {
            for (let j = 0; j < l.prevMass.length; j++) l.prevMass[j] = f64();
            const per = version === 1 ? L : pos;
            for (const arr of [l.curMu, l.curSigmaSq]) for (let h = 0; h < H; h++) arr.set(f32s(per), h * L);
          }
        }
      }
      if (o !== bytes.length - 4) throw new ModelFileError(`stream state has ${bytes.length} bytes, expected ${o + 4} (truncated or corrupt)`);
    };
    try {
      readLayers();
    } catch (error) {
      state.dispose(); // the layers read so far hold tensors
      throw error;
    }
    return state;
  }
}

/** Bytes of one layer (flags word included) and of the whole state, in format `version`. */
function layout(c: Readonly<ModelConfig>, pos: number, flags: number, version: number): { perLayer: number; total: number } {
  const e = c.width;
  const L = c.segmentLength;
  let perLayer = 4;
  if (version === 1) {
    perLayer += 4 * 2 * L * e + (c.longTermMemory ? 4 * c.numBasis * e + 8 * c.stickyBins + 8 * c.numHeads * L : 0);
  } else {
    if ((flags & HAS_PREV) !== 0) perLayer += 4 * L * e;
    if ((flags & HAS_CUR) !== 0 && pos > 0) perLayer += 4 * pos * e;
    if (c.longTermMemory && (flags & HAS_MEMORY) !== 0) perLayer += 4 * c.numBasis * e;
    if (c.longTermMemory && c.sticky) perLayer += 8 * c.stickyBins + 8 * c.numHeads * pos;
  }
  return { perLayer, total: HEADER_BYTES + c.numLayers * perLayer + 4 };
}

/** `prev` with `next` appended along `axis` (both disposed); `next` itself when there is no `prev`. */
export function appendRows(prev: tf.Tensor | null, next: tf.Tensor, axis: number): tf.Tensor {
  if (prev === null) return next;
  const joined = tf.concat([prev, next], axis);
  tf.dispose([prev, next]);
  return joined;
}

/**
 * Sticky histograms (DESIGN §2.5) of the layers' segment densities `[H, L]` each: bin masses
 * summed over heads and tokens. Every layer's rows go through one bin-mass computation (each
 * row's masses are computed alone, so batching changes no number).
 */
function stickyHistograms(layers: readonly LayerState[], c: Readonly<ModelConfig>): Float64Array[] {
  if (layers.length === 0) return [];
  const D = c.stickyBins;
  const rows = c.numHeads * c.segmentLength;
  const join = (pick: (ls: LayerState) => Float32Array): Float32Array => {
    const all = new Float32Array(layers.length * rows);
    layers.forEach((ls, i) => all.set(pick(ls), i * rows));
    return all;
  };
  const shape: [number, number] = [layers.length * c.numHeads, c.segmentLength];
  const masses = tidyData(() => binMassUnchecked(tf.tensor2d(join((ls) => ls.curMu), shape), tf.tensor2d(join((ls) => ls.curSigmaSq), shape), D));
  return layers.map((_, i) => {
    const out = new Float64Array(D);
    for (let r = i * c.numHeads * c.segmentLength; r < (i + 1) * rows; r++) for (let j = 0; j < D; j++) out[j]! += masses[r * D + j]!;
    return out;
  });
}
