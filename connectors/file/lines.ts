/**
 * The one line rule of every text source (stdin, followed files, Kafka values): split on `\n`
 * only, keep every other byte (`\r` included: the byte-level model was trained on them), and cut
 * a line longer than a cap into pieces so a runaway line never stalls a key or exhausts memory.
 * Pure: no streams, no I/O. See docs/ingestion.md for what each kind of input gets.
 */
import { BadConfigError } from '../../src/errors.js';

/**
 * Default cap on a line's bytes (its `\n` not counted): 8 KiB, rsyslog's default maximum
 * message size. At the default model's ~10 KB/s on a CPU a piece is scored within about a second.
 */
export const DEFAULT_MAX_LINE_BYTES = 8192;

const NEWLINE = 0x0a;
const CR = 0x0d;
const display = new TextDecoder('utf-8'); // not fatal: invalid bytes become U+FFFD, for display only

/** One line, or one piece of a line cut at the cap: its exact bytes. */
export interface LinePiece {
  /** The original bytes, with the terminating `\n` when the piece ends a line that had one. */
  bytes: Uint8Array;
  /** The line was cut here at the cap: its next bytes follow in the next piece. */
  truncated: boolean;
  /** This piece continues a line cut before it (it is not the start of a line). */
  continued: boolean;
}

/** Checks a line cap option. */
export function checkMaxLineBytes(maxLineBytes: number): number {
  if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) throw new BadConfigError('maxLineBytes', `must be a positive integer, got ${maxLineBytes}`);
  return maxLineBytes;
}

/**
 * Incremental splitter: `push` chunks of bytes as they arrive, get the complete lines (and cut
 * pieces of over-long lines) so far; `end` returns the final line that had no `\n`, if any.
 * Holds at most `maxLineBytes` bytes of an unfinished line.
 */
export class LineSplitter {
  private pending: Uint8Array = new Uint8Array(0);
  private inLine = false; // the pending bytes continue a line already cut

  constructor(readonly maxLineBytes: number = DEFAULT_MAX_LINE_BYTES) {
    checkMaxLineBytes(maxLineBytes);
  }

  /** Bytes of an unfinished line held back. */
  get held(): number {
    return this.pending.length;
  }

  push(chunk: Uint8Array): LinePiece[] {
    const data = this.pending.length > 0 ? concat(this.pending, chunk) : chunk;
    const out: LinePiece[] = [];
    const scanned = this.pending.length; // held bytes have no \n: not scanned again
    let start = 0;
    for (;;) {
      const newline = data.indexOf(NEWLINE, Math.max(start, scanned));
      const end = newline < 0 ? data.length : newline; // line content is [start, end)
      // Cut while the content reaching the cap is not followed by the line's end within the cap.
      while (end - start > this.maxLineBytes) {
        out.push(this.piece(copy(data, start, start + this.maxLineBytes), true));
        start += this.maxLineBytes;
      }
      if (newline < 0) break;
      out.push(this.piece(copy(data, start, newline + 1), false));
      start = newline + 1;
    }
    this.pending = copy(data, start, data.length);
    return out;
  }

  /** The final line without `\n` (end of input, or its file was replaced), or nothing. */
  end(): LinePiece[] {
    if (this.pending.length === 0) return [];
    const last = this.piece(this.pending, false);
    this.pending = new Uint8Array(0);
    return [last];
  }

  /** Drops an unfinished line (its file was truncated under it). Returns the bytes dropped. */
  reset(): number {
    const dropped = this.pending.length;
    this.pending = new Uint8Array(0);
    this.inLine = false;
    return dropped;
  }

  private piece(bytes: Uint8Array, truncated: boolean): LinePiece {
    const piece = { bytes, truncated, continued: this.inLine };
    this.inLine = truncated;
    return piece;
  }
}

/**
 * The lines of one message (a Kafka value): the same rule, the message's end closing its last
 * line (a `\n` is implied when it has none). An empty message has no lines.
 */
export function splitMessage(bytes: Uint8Array, maxLineBytes: number = DEFAULT_MAX_LINE_BYTES): LinePiece[] {
  if (bytes.length === 0) return [];
  const splitter = new LineSplitter(maxLineBytes);
  const pieces = splitter.push(bytes);
  if (bytes[bytes.length - 1] !== NEWLINE) pieces.push(...splitter.push(Uint8Array.of(NEWLINE)));
  return pieces;
}

/**
 * A piece's text for display: its bytes without the final `\n`, decoded as UTF-8 with U+FFFD
 * for invalid bytes. `trimCr` also drops one `\r` before that `\n` (for plain-text readers).
 */
export function pieceText(piece: LinePiece, trimCr = false): string {
  let end = piece.bytes.length;
  if (end > 0 && piece.bytes[end - 1] === NEWLINE && !piece.truncated) {
    end--;
    if (trimCr && end > 0 && piece.bytes[end - 1] === CR) end--;
  }
  return display.decode(piece.bytes.subarray(0, end));
}

/** Whether bytes are valid UTF-8. */
export function isUtf8(bytes: Uint8Array): boolean {
  try {
    strict.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
const strict = new TextDecoder('utf-8', { fatal: true });

/** A copy of `data[from, to)`: a Buffer's own slice() would share memory with a reused read buffer. */
function copy(data: Uint8Array, from: number, to: number): Uint8Array {
  return Uint8Array.prototype.slice.call(data, from, to);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
