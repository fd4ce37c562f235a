/**
 * The bytes that changed between two versions of a buffer, compactly: the mixer's shared state
 * (34 MB, mostly hashed counter tables) changes in a few hundred thousand scattered bytes per
 * checkpoint, so runs of changed bytes (varint gap, varint length, the new bytes), deflated, are
 * about 1/40 of the whole. Nearby runs (gaps under {@link MERGE_GAP}) are merged: a varint pair
 * costs more than the few unchanged bytes between them.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { CorruptStateError } from '../../src/errors.js';

const MERGE_GAP = 4;

/** A growable byte buffer. */
class Bytes {
  buf = new Uint8Array(1 << 16);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  varint(v: number): void {
    this.room(8);
    while (v >= 128) {
      this.buf[this.length++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    this.buf[this.length++] = v;
  }

  /** Appends `src[from, to)` (a loop for short ranges: cheaper than a subarray each). */
  append(src: Uint8Array, from: number, to: number): void {
    const n = to - from;
    this.room(n);
    if (n <= 32) for (let k = 0; k < n; k++) this.buf[this.length + k] = src[from + k]!;
    else this.buf.set(src.subarray(from, to), this.length);
    this.length += n;
  }
}

/** The first index >= `from` where `a` and `b` differ (or `n`); compares 4 bytes at a time when both are aligned. */
function nextDiff(a: Uint8Array, b: Uint8Array, from: number, n: number): number {
  let i = from;
  if (a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    while (i < n && i % 4 !== 0 && a[i] === b[i]) i++;
    if (i < n && i % 4 === 0 && a[i] === b[i]) {
      const wa = new Uint32Array(a.buffer, a.byteOffset, n >> 2);
      const wb = new Uint32Array(b.buffer, b.byteOffset, n >> 2);
      let w = i >> 2;
      while (w < wa.length && wa[w] === wb[w]) w++;
      i = w << 2;
    }
  }
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** The delta turning `prev` into `next` (any lengths): `next`'s length, then the deflated runs. */
export function encodeDelta(prev: Uint8Array, next: Uint8Array): Uint8Array {
  const common = Math.min(prev.length, next.length);
  const runs = new Bytes();
  const differs = (k: number): boolean => k >= common || prev[k] !== next[k];
  let end = 0; // end of the last run written
  let i = nextDiff(prev, next, 0, common); // common when the rest of the common part is equal
  while (i < next.length) {
    // The run from i: changed bytes, and unchanged gaps shorter than MERGE_GAP between them.
    let j = i;
    for (;;) {
      while (j < next.length && differs(j)) j++;
      if (j >= next.length) break;
      const k = nextDiff(prev, next, j, common);
      if (k - j >= MERGE_GAP || k >= next.length) break;
      j = k;
    }
    runs.varint(i - end);
    runs.varint(j - i);
    runs.append(next, i, j);
    end = j;
    if (j >= next.length) break;
    i = nextDiff(prev, next, j, common);
  }
  const body = deflateRawSync(runs.buf.subarray(0, runs.length), { level: 1 });
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, next.length, true);
  out.set(body, 4);
  return out;
}

/**
 * `prev` with `delta` ({@link encodeDelta}) applied; `what` names the state in errors. With
 * `inPlace` and an unchanged length, `prev` itself is changed and returned (a restore replaying
 * dozens of deltas onto 34 MB copies nothing).
 */
export function applyDelta(prev: Uint8Array, delta: Uint8Array, what: string, inPlace = false): Uint8Array {
  if (delta.length < 4) throw new CorruptStateError(what, `a delta of ${delta.length} bytes`);
  const length = new DataView(delta.buffer, delta.byteOffset, delta.byteLength).getUint32(0, true);
  let runs: Uint8Array;
  try {
    runs = inflateRawSync(delta.subarray(4));
  } catch (cause) {
    throw new CorruptStateError(what, `a delta does not inflate (${(cause as Error).message})`, { cause });
  }
  let out = prev;
  if (!inPlace || length !== prev.length) {
    out = new Uint8Array(length);
    out.set(prev.subarray(0, Math.min(prev.length, length)));
  }
  let at = 0;
  let p = 0;
  const varint = (): number => {
    let v = 0;
    let scale = 1;
    for (;;) {
      if (p >= runs.length) throw new CorruptStateError(what, 'a delta ends inside a run header');
      const b = runs[p++]!;
      v += (b & 127) * scale;
      if (b < 128) return v;
      scale *= 128;
    }
  };
  while (p < runs.length) {
    at += varint();
    const n = varint();
    if (at + n > length || p + n > runs.length) throw new CorruptStateError(what, `a delta run [${at}, ${at + n}) runs past the end`);
    // Most runs are a few bytes: a loop beats a subarray per run (~300 000 runs per mixer delta).
    if (n <= 32) for (let k = 0; k < n; k++) out[at + k] = runs[p + k]!;
    else out.set(runs.subarray(p, p + n), at);
    p += n;
    at += n;
  }
  return out;
}
