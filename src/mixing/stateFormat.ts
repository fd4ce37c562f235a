/**
 * The byte container of the mixer's saved state: magic, version, a JSON header (which names
 * each block and its byte length), then the raw little-endian typed-array blocks (8-byte
 * aligned), then a CRC-32 of everything before it. Blocks are copied whole (no per-element
 * work on little-endian hosts), so 16 MiB of counters save and restore at memory speed.
 */
import { ModelFileError } from '../errors.js';
import { crc32 } from '../model/checksum.js';

export type TypedArray = Uint8Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

export interface Block {
  name: string;
  data: TypedArray;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const PREFIX = 12;
const pad8 = (n: number): number => (n + 7) & ~7;
const bytesOf = (a: TypedArray): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Reverses each `size`-byte element of `b` in place (big-endian hosts only). */
function swapBytes(b: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i + size <= b.length; i += size) b.subarray(i, i + size).reverse();
}

/** The bytes of `header` (plus the block table) and `blocks`, sealed by a CRC-32. */
export function packBlocks(magic: number, version: number, header: Record<string, unknown>, blocks: readonly Block[]): Uint8Array {
  const head = new TextEncoder().encode(JSON.stringify({ ...header, blocks: blocks.map((b) => [b.name, b.data.byteLength]) }));
  let size = pad8(PREFIX + head.length);
  for (const b of blocks) size += pad8(b.data.byteLength);
  const out = new Uint8Array(size + 4);
  const view = new DataView(out.buffer);
  view.setUint32(0, magic, true);
  view.setUint32(4, version, true);
  view.setUint32(8, head.length, true);
  out.set(head, PREFIX);
  let o = pad8(PREFIX + head.length);
  for (const b of blocks) {
    out.set(bytesOf(b.data), o);
    if (!LITTLE_ENDIAN) swapBytes(out.subarray(o, o + b.data.byteLength), b.data.BYTES_PER_ELEMENT);
    o += pad8(b.data.byteLength);
  }
  view.setUint32(size, crc32(out.subarray(0, size)), true);
  return out;
}

/** A checked container: its header and its blocks by name. */
export class UnpackedBlocks {
  private readonly blocks = new Map<string, Uint8Array>();

  constructor(
    readonly what: string,
    readonly header: Record<string, unknown>,
    bytes: Uint8Array,
    start: number,
  ) {
    const table = header['blocks'];
    if (!Array.isArray(table)) throw new ModelFileError(`${what}: the header has no block table`);
    let o = start;
    for (const entry of table as unknown[]) {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string' || !Number.isSafeInteger(entry[1]) || (entry[1] as number) < 0) throw new ModelFileError(`${what}: bad block table entry ${JSON.stringify(entry)}`);
      const len = entry[1] as number;
      if (o + len > bytes.length - 4) throw new ModelFileError(`${what}: block "${entry[0]}" runs past the end (truncated)`);
      this.blocks.set(entry[0], bytes.subarray(o, o + len));
      o += pad8(len);
    }
    if (o !== bytes.length - 4) throw new ModelFileError(`${what}: ${bytes.length} bytes, the header describes ${o + 4}`);
  }

  /** Whether block `name` is present. */
  has(name: string): boolean {
    return this.blocks.has(name);
  }

  /** The raw bytes of block `name` (a view into the input). */
  raw(name: string): Uint8Array {
    const b = this.blocks.get(name);
    if (b === undefined) throw new ModelFileError(`${this.what}: block "${name}" is missing`);
    return b;
  }

  /** Copies block `name` into `target`, whose byte length it must have. */
  readInto(name: string, target: TypedArray): void {
    const b = this.raw(name);
    if (b.length !== target.byteLength) throw new ModelFileError(`${this.what}: block "${name}" has ${b.length} bytes, expected ${target.byteLength}`);
    const dst = bytesOf(target);
    dst.set(b);
    if (!LITTLE_ENDIAN) swapBytes(dst, target.BYTES_PER_ELEMENT);
  }

  /** Block `name` as a new array of `ctor`'s type. */
  read<T extends TypedArray>(name: string, ctor: { new (n: number): T; BYTES_PER_ELEMENT: number }): T {
    const b = this.raw(name);
    if (b.length % ctor.BYTES_PER_ELEMENT !== 0) throw new ModelFileError(`${this.what}: block "${name}" has ${b.length} bytes, not a whole number of ${ctor.BYTES_PER_ELEMENT}-byte elements`);
    const out = new ctor(b.length / ctor.BYTES_PER_ELEMENT);
    this.readInto(name, out);
    return out;
  }
}

/** Checks magic, version and CRC-32 of `bytes` and parses its header; anything wrong is a {@link ModelFileError}. */
export function unpackBlocks(bytes: Uint8Array, magic: number, version: number, what: string): UnpackedBlocks {
  if (!(bytes instanceof Uint8Array)) throw new ModelFileError(`${what}: expected a Uint8Array`);
  if (bytes.length < PREFIX + 4) throw new ModelFileError(`${what}: only ${bytes.length} bytes (truncated or not a saved state)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== magic) throw new ModelFileError(`${what}: bad magic number (not a saved ${what})`);
  const v = view.getUint32(4, true);
  if (v !== version) throw new ModelFileError(`${what}: format version ${v} is not supported (this library reads version ${version})`);
  const end = bytes.length - 4;
  if (view.getUint32(end, true) !== crc32(bytes.subarray(0, end))) throw new ModelFileError(`${what}: checksum mismatch (corrupt or truncated)`);
  const headLen = view.getUint32(8, true);
  if (PREFIX + headLen > end) throw new ModelFileError(`${what}: header runs past the end`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(PREFIX, PREFIX + headLen)));
  } catch (cause) {
    throw new ModelFileError(`${what}: the header is not valid JSON`, { cause });
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new ModelFileError(`${what}: the header is not an object`);
  return new UnpackedBlocks(what, header as Record<string, unknown>, bytes, pad8(PREFIX + headLen));
}

/** `header[name]` as an integer in [min, max], or a {@link ModelFileError}. */
export function headerInt(u: UnpackedBlocks, name: string, min: number, max: number): number {
  const v = u.header[name];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw new ModelFileError(`${u.what}: header field ${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return v;
}
