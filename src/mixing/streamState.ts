/**
 * Saving and restoring one stream (key) of a {@link ContextMixer}: its history ring (only the
 * bytes written so far), match index, context hashes and scalars, plus optionally the caller's
 * pending network distribution for the stream's next byte, so a restored stream codes its next
 * bytes exactly as the uninterrupted one would have.
 */
import { ModelFileError } from '../errors.js';
import { headerInt, packBlocks, unpackBlocks, type Block, type UnpackedBlocks } from './stateFormat.js';
import { StreamContext, type StreamContextOptions, type StreamScalars } from './streamContext.js';

/** "IFMS" little-endian: an infiniformer mixer stream. */
export const STREAM_MAGIC = 0x534d4649;
export const STREAM_VERSION = 2;
const WHAT = 'context mixer stream state';
const INT32 = 2 ** 31;
const SAFE = Number.MAX_SAFE_INTEGER;

/** A restored stream and the pending network distribution saved with it (if any). */
export interface SavedStream {
  stream: StreamContext;
  pending: Float64Array | undefined;
}

/** The match index, sparse ((slot, position) pairs) when that is smaller: young streams have few entries. */
function indexBlocks(index: Int32Array): Block[] {
  let used = 0;
  for (let i = 0; i < index.length; i++) if (index[i]! >= 0) used++;
  if (used * 8 >= index.byteLength) return [{ name: 'index', data: index }];
  const slots = new Uint32Array(used);
  const values = new Int32Array(used);
  for (let i = 0, j = 0; i < index.length; i++) {
    if (index[i]! >= 0) {
      slots[j] = i;
      values[j++] = index[i]!;
    }
  }
  return [
    { name: 'indexSlots', data: slots },
    { name: 'indexValues', data: values },
  ];
}

/** Bytes of stream `s` (and of `pending`, 256 probabilities, when given). */
export function saveStreamState(s: StreamContext, pending?: ArrayLike<number>): Uint8Array {
  const h = s.history;
  const written = Math.min(h.length, h.bytes.length);
  const blocks: Block[] = [{ name: 'ring', data: h.bytes.subarray(0, written) }, { name: 'hashes', data: s.hashes }, ...indexBlocks(s.match.index)];
  if (pending !== undefined) blocks.push({ name: 'pending', data: Float64Array.from({ length: 256 }, (_, i) => pending[i]!) });
  return packBlocks(STREAM_MAGIC, STREAM_VERSION, { kind: 'StreamContext', options: s.options, ...s.saveScalars() }, blocks);
}

/** Reads bytes of {@link saveStreamState} for a mixer with stream options `o` (which they must have been made with). */
export function readStreamState(bytes: Uint8Array, o: Readonly<StreamContextOptions>): SavedStream {
  const u = unpackBlocks(bytes, STREAM_MAGIC, STREAM_VERSION, WHAT);
  const saved = u.header['options'] as Partial<StreamContextOptions> | undefined;
  for (const k of ['historyBits', 'matchIndexBits', 'matchMinLength'] as const) {
    if (saved?.[k] !== o[k]) throw new ModelFileError(`${WHAT}: made with ${k} ${JSON.stringify(saved?.[k])}, this mixer has ${o[k]}`);
  }
  const v = readScalars(u);
  const s = new StreamContext(o);
  const ring = u.raw('ring');
  if (ring.length !== Math.min(v.length, s.history.bytes.length)) throw new ModelFileError(`${WHAT}: history of ${ring.length} bytes for a stream of ${v.length}`);
  s.history.bytes.set(ring);
  u.readInto('hashes', s.hashes);
  readIndex(u, s.match.index, v.length);
  s.loadScalars(v);
  let pending: Float64Array | undefined;
  if (u.has('pending')) {
    pending = u.read('pending', Float64Array);
    if (pending.length !== 256) throw new ModelFileError(`${WHAT}: pending distribution of ${pending.length} entries, expected 256`);
  }
  return { stream: s, pending };
}

function readScalars(u: UnpackedBlocks): StreamScalars {
  const length = headerInt(u, 'length', 0, SAFE);
  return {
    length,
    partial: headerInt(u, 'partial', 1, 511),
    bitsDone: headerInt(u, 'bitsDone', 0, 8),
    word: headerInt(u, 'word', -INT32, INT32 - 1),
    prevWord: headerInt(u, 'prevWord', -INT32, INT32 - 1),
    column: headerInt(u, 'column', 0, SAFE),
    field: headerInt(u, 'field', 0, SAFE),
    lineStart: headerInt(u, 'lineStart', 0, length),
    prevLineStart: headerInt(u, 'prevLineStart', -1, length),
    matchPtr: headerInt(u, 'matchPtr', -1, length),
    matchLength: headerInt(u, 'matchLength', 0, SAFE),
    matchMisses: headerInt(u, 'matchMisses', 0, 255),
    matchExpected: headerInt(u, 'matchExpected', -1, 255),
  };
}

/** Fills the (fresh, all -1) match `index` from its dense or sparse block. */
function readIndex(u: UnpackedBlocks, index: Int32Array, length: number): void {
  if (u.has('index')) {
    u.readInto('index', index);
    return;
  }
  const slots = u.read('indexSlots', Uint32Array);
  const values = u.read('indexValues', Int32Array);
  if (slots.length !== values.length) throw new ModelFileError(`${WHAT}: ${slots.length} match index slots but ${values.length} positions`);
  for (let j = 0; j < slots.length; j++) {
    const slot = slots[j]!;
    const pos = values[j]!;
    if (slot >= index.length || pos < 0 || pos > length) throw new ModelFileError(`${WHAT}: match index entry ${slot} -> ${pos} out of range`);
    index[slot] = pos;
  }
}
