import type { InfiniFormer, StreamState } from '../../src/model/index.js';
import type { StateCodec } from './changelog.js';

/**
 * The changelog codec of a model's per-key {@link StreamState}: its own fixed-size, CRC-checked
 * serialisation (every layer's memory B, short-term cache, sticky statistics, the RNG), restored
 * with `model.restoreState` — a restored state continues bit for bit. Corrupt or foreign bytes
 * are a `ModelFileError` at restore. Replaced, revoked and final states are disposed.
 *
 * @example
 * ```ts
 * const source = fromKafka<Buffer, StreamState>({ groupId: 'g', topics: ['logs'], changelog: { topic: 'g.state', codec: streamStateCodec(model) } });
 * ```
 */
export function streamStateCodec(model: InfiniFormer): StateCodec<StreamState> {
  return {
    encode: (state) => state.serialize(),
    decode: (bytes) => model.restoreState(bytes),
    dispose: (state) => state.dispose(),
  };
}
