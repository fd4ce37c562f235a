/**
 * The bytes of one key's state in {@link infiniteFormer}: the model's `StreamState` plus the
 * prediction made after the key's last token (so the next token's surprisal survives eviction,
 * snapshot and restore), plus the tokens held ahead of the state (see {@link KeyState.held}).
 * Layout, little-endian: u32 magic "IFKS", u32 version, u32 V (0 when there is no prediction
 * yet), V float32 log-probabilities; version 2 then u32 n and n u32 held tokens; then the
 * `StreamState` bytes. A state without held tokens is written as version 1 (as before them).
 */
import { ModelFileError } from '../src/errors.js';
import type { InfiniFormer } from '../src/model/model.js';
import { STATE_MAGIC, type StreamState } from '../src/model/state.js';

const KEY_MAGIC = 0x534b4649; // "IFKS"
const VERSION = 1;
/** Version 1 plus the held tokens. */
const VERSION_HELD = 2;

/** One key's state as {@link infiniteFormer} keeps it. */
export interface KeyState {
  /** The model state of the key's stream. */
  state: StreamState;
  /** Log-probabilities of the next token after the key's last one (undefined before any token). */
  nextLogProbs: Float32Array | undefined;
  /**
   * Segment mode with a learner: the start of the current segment, scored and output but not yet
   * run into `state` (still at the segment's start). A partial chunk is scored ahead and run
   * again with the rest of its segment, so the learner steps on every segment whole, however
   * the input happened to be chunked (timers, checkpoints, restarts). Empty or absent otherwise.
   */
  held?: number[];
}

/** Where the key's next token goes in its segment: the state's position plus the tokens held ahead of it. */
export const positionOf = (k: KeyState): number => k.state.pos + (k.held?.length ?? 0);

/**
 * Serialises a key's state (what {@link infiniteFormer} puts into its store).
 *
 * @example
 * ```ts
 * const bytes = keyStateToBytes({ state, nextLogProbs: undefined });
 * ```
 */
export function keyStateToBytes(k: KeyState): Uint8Array {
  const state = k.state.serialize();
  const V = k.nextLogProbs?.length ?? 0;
  const held = k.held ?? [];
  const heldBytes = held.length === 0 ? 0 : 4 + 4 * held.length;
  const bytes = new Uint8Array(12 + 4 * V + heldBytes + state.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, KEY_MAGIC, true);
  view.setUint32(4, held.length === 0 ? VERSION : VERSION_HELD, true);
  view.setUint32(8, V, true);
  for (let i = 0; i < V; i++) view.setFloat32(12 + 4 * i, k.nextLogProbs![i]!, true);
  if (held.length > 0) {
    view.setUint32(12 + 4 * V, held.length, true);
    held.forEach((token, i) => view.setUint32(16 + 4 * V + 4 * i, token, true));
  }
  bytes.set(state, 12 + 4 * V + heldBytes);
  return bytes;
}

/**
 * Restores a key's state from {@link keyStateToBytes} bytes, or from bare `StreamState.serialize()`
 * bytes (then without a prediction: the next token's surprisal is NaN). Corrupt or foreign
 * bytes are a `ModelFileError`.
 *
 * @example
 * ```ts
 * const { state, nextLogProbs } = keyStateFromBytes(model, bytes);
 * ```
 */
export function keyStateFromBytes(model: InfiniFormer, bytes: Uint8Array): KeyState {
  if (!(bytes instanceof Uint8Array) || bytes.length < 12) throw new ModelFileError(`key state bytes are truncated (${bytes?.length ?? 0} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  if (magic === STATE_MAGIC) return { state: model.restoreState(bytes), nextLogProbs: undefined };
  if (magic !== KEY_MAGIC) throw new ModelFileError('not an infiniformer key state (bad magic number)');
  const version = view.getUint32(4, true);
  if (version !== VERSION && version !== VERSION_HELD) throw new ModelFileError(`key state format version ${version} is not supported (expected ${VERSION} or ${VERSION_HELD})`);
  const V = view.getUint32(8, true);
  if (V !== 0 && V !== model.config.vocabSize) throw new ModelFileError(`key state holds a prediction over ${V} tokens, the model has ${model.config.vocabSize}`);
  if (bytes.length < 12 + 4 * V) throw new ModelFileError('key state bytes are truncated');
  let nextLogProbs: Float32Array | undefined;
  if (V > 0) {
    nextLogProbs = new Float32Array(V);
    for (let i = 0; i < V; i++) nextLogProbs[i] = view.getFloat32(12 + 4 * i, true);
  }
  const { held, end } = version === VERSION_HELD ? readHeld(model, view, 12 + 4 * V) : { held: undefined, end: 12 + 4 * V };
  const state = model.restoreState(bytes.subarray(end));
  if (held !== undefined && state.pos + held.length >= model.config.segmentLength) {
    state.dispose();
    throw new ModelFileError(`key state holds ${held.length} tokens past position ${state.pos}: more than a segment (${model.config.segmentLength})`);
  }
  return { state, nextLogProbs, ...(held !== undefined ? { held } : {}) };
}

/** The held tokens of a version-2 key state at byte `at`, and where the `StreamState` bytes start. */
function readHeld(model: InfiniFormer, view: DataView, at: number): { held: number[]; end: number } {
  if (view.byteLength < at + 4) throw new ModelFileError('key state bytes are truncated');
  const n = view.getUint32(at, true);
  if (n === 0 || n >= model.config.segmentLength || view.byteLength < at + 4 + 4 * n) throw new ModelFileError(`key state: ${n} held tokens (segment length ${model.config.segmentLength}) or truncated bytes`);
  const held = Array.from({ length: n }, (_, i) => view.getUint32(at + 4 + 4 * i, true));
  if (held.some((t) => t >= model.config.vocabSize)) throw new ModelFileError(`key state: a held token is outside the vocabulary (${model.config.vocabSize})`);
  return { held, end: at + 4 + 4 * n };
}
