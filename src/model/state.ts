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
 */
import * as tf from '@tensorflow/tfjs';
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
  /** Derived: keys and values of `prevX`, `[H, L, d]` (zeros when prevX is null). */
  prevK?: tf.Tensor;
  prevV?: tf.Tensor;
  /** Derived: keys and values of the current segment so far `[H, pos, d]`. */
  curK?: tf.Tensor | null;
  curV?: tf.Tensor | null;
}

/** First word of a serialised state: "IFST" little-endian. */
export const STATE_MAGIC = 0x54534649;
export const STATE_FORMAT_VERSION = 1;
const HEADER_BYTES = 4 + 4 + 4 + 4 + 8 + 8 + 16;

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
      tf.dispose([l.prevK, l.prevV, l.curK ?? undefined, l.curV ?? undefined].filter((t): t is tf.Tensor => t !== undefined));
      delete l.active;
      delete l.prevK;
      delete l.prevV;
      delete l.curK;
      delete l.curV;
    }
    this.rngNext = undefined;
  }

  /** Frees every tensor. The state is unusable afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.clearDerived();
    for (const l of this.layers) tf.dispose([l.memory, l.prevX, l.curX].filter((t): t is tf.Tensor => t !== null));
    this.disposed = true;
  }

  /** Number of bytes {@link serialize} produces: a function of the config only. */
  static byteLength(c: Readonly<ModelConfig>): number {
    const e = c.width;
    const L = c.segmentLength;
    const perLayer = 4 + 4 * 2 * L * e + (c.longTermMemory ? 4 * c.numBasis * e + 8 * c.stickyBins + 8 * c.numHeads * L : 0);
    return HEADER_BYTES + c.numLayers * perLayer + 4;
  }

  /** The whole state as bytes (fixed size per config, CRC-protected). */
  serialize(): Uint8Array {
    if (this.disposed) throw new BadInputError('state', 'is disposed');
    const c = this.config;
    const e = c.width;
    const L = c.segmentLength;
    const bytes = new Uint8Array(StreamState.byteLength(c));
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
    const f32 = (v: number): void => {
      view.setFloat32(o, v, true);
      o += 4;
    };
    const f32s = (t: tf.Tensor | null, count: number): void => {
      if (t !== null) {
        const data = t.dataSync();
        for (let i = 0; i < data.length; i++) view.setFloat32(o + 4 * i, data[i]!, true);
      }
      o += 4 * count;
    };
    u32(STATE_MAGIC);
    u32(STATE_FORMAT_VERSION);
    u32(fingerprint(c));
    u32(this.pos);
    f64(this.tokensSeen);
    f64(this.segmentsSeen);
    for (const w of this.rngState) u32(w);
    for (const l of this.layers) {
      u32((l.memory !== null ? 1 : 0) | (l.prevX !== null ? 2 : 0) | (l.curX !== null ? 4 : 0));
      f32s(l.prevX, L * e);
      f32s(l.curX, L * e);
      if (c.longTermMemory) {
        f32s(l.memory, c.numBasis * e);
        for (const v of l.prevMass) f64(v);
        for (const v of l.curMu) f32(v);
        for (const v of l.curSigmaSq) f32(v);
      }
    }
    u32(crc32(bytes.subarray(0, o)));
    return bytes;
  }

  /** Restores a state written by {@link serialize} for the same config. */
  static deserialize(config: Readonly<ModelConfig>, bytes: Uint8Array): StreamState {
    if (!(bytes instanceof Uint8Array)) throw new BadInputError('bytes', 'expected a Uint8Array');
    const expected = StreamState.byteLength(config);
    if (bytes.length < HEADER_BYTES) throw new ModelFileError(`state bytes are truncated: ${bytes.length} bytes, expected ${expected}`);
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
    const f32 = (): number => {
      const v = view.getFloat32(o, true);
      o += 4;
      return v;
    };
    if (u32() !== STATE_MAGIC) throw new ModelFileError('not an infiniformer stream state (bad magic number)');
    const version = u32();
    if (version !== STATE_FORMAT_VERSION) throw new ModelFileError(`stream state format version ${version} is not supported (expected ${STATE_FORMAT_VERSION})`);
    if (u32() !== fingerprint(config)) throw new ModelFileError('stream state was written for a different model config');
    if (bytes.length !== expected) throw new ModelFileError(`stream state has ${bytes.length} bytes, expected ${expected} (truncated or corrupt)`);
    if (view.getUint32(expected - 4, true) !== crc32(bytes.subarray(0, expected - 4))) throw new ModelFileError('stream state checksum mismatch (corrupt)');
    const e = config.width;
    const L = config.segmentLength;
    const state = new StreamState(config);
    state.pos = u32();
    if (state.pos >= L) throw new ModelFileError(`stream state position ${state.pos} is not below the segment length ${L}`);
    state.tokensSeen = f64();
    state.segmentsSeen = f64();
    state.rngState = [u32(), u32(), u32(), u32()];
    const f32s = (rows: number, present: boolean, stride: number): tf.Tensor | null => {
      const start = o;
      o += 4 * stride * e;
      if (!present) return null;
      const data = new Float32Array(rows * e);
      for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(start + 4 * i, true);
      return tf.tensor2d(data, [rows, e]);
    };
    for (const l of state.layers) {
      const flags = u32();
      l.prevX = f32s(L, (flags & 2) !== 0, L);
      l.curX = f32s(state.pos, (flags & 4) !== 0 && state.pos > 0, L);
      if (config.longTermMemory) {
        l.memory = f32s(config.numBasis, (flags & 1) !== 0, config.numBasis);
        for (let j = 0; j < l.prevMass.length; j++) l.prevMass[j] = f64();
        for (let j = 0; j < l.curMu.length; j++) l.curMu[j] = f32();
        for (let j = 0; j < l.curSigmaSq.length; j++) l.curSigmaSq[j] = f32();
      }
    }
    return state;
  }
}
