/**
 * The bytes of one key's state in {@link infiniteFormer}: the model's `StreamState` plus the
 * prediction made after the key's last token (so the next token's surprisal survives eviction,
 * snapshot and restore). Layout, little-endian: u32 magic "IFKS", u32 version, u32 V (0 when
 * there is no prediction yet), V float32 log-probabilities, then the `StreamState` bytes.
 */
import { ModelFileError } from '../src/errors.js';
import type { InfiniFormer } from '../src/model/model.js';
import { STATE_MAGIC, type StreamState } from '../src/model/state.js';

const KEY_MAGIC = 0x534b4649; // "IFKS"
const VERSION = 1;

/** One key's state as {@link infiniteFormer} keeps it. */
export interface KeyState {
  /** The model state of the key's stream. */
  state: StreamState;
  /** Log-probabilities of the next token after the key's last one (undefined before any token). */
  nextLogProbs: Float32Array | undefined;
}

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
  const bytes = new Uint8Array(12 + 4 * V + state.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, KEY_MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, V, true);
  for (let i = 0; i < V; i++) view.setFloat32(12 + 4 * i, k.nextLogProbs![i]!, true);
  bytes.set(state, 12 + 4 * V);
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
  if (version !== VERSION) throw new ModelFileError(`key state format version ${version} is not supported (expected ${VERSION})`);
  const V = view.getUint32(8, true);
  if (V !== 0 && V !== model.config.vocabSize) throw new ModelFileError(`key state holds a prediction over ${V} tokens, the model has ${model.config.vocabSize}`);
  if (bytes.length < 12 + 4 * V) throw new ModelFileError('key state bytes are truncated');
  let nextLogProbs: Float32Array | undefined;
  if (V > 0) {
    nextLogProbs = new Float32Array(V);
    for (let i = 0; i < V; i++) nextLogProbs[i] = view.getFloat32(12 + 4 * i, true);
  }
  return { state: model.restoreState(bytes.subarray(12 + 4 * V)), nextLogProbs };
}
