import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { Observable, map, type Subscribable } from 'rxjs';
import { BadConfigError, BadInputError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter, checkMaxLineBytes, pieceText, type LinePiece } from './lines.js';

const log = createLogger('infiniformer:file');

export interface FollowFileOptions {
  /** Start at the beginning of the file (true) or at its current end, like `tail -F -n 0` (false). Default true. */
  fromStart?: boolean;
  /** How often the file is checked for growth, truncation and replacement. Default 200 ms. */
  pollIntervalMs?: number;
  /** Lines longer than this many bytes are cut into pieces of it. Default {@link DEFAULT_MAX_LINE_BYTES} (8 KiB). */
  maxLineBytes?: number;
  /** `true` pauses reading (the consumer is behind), `false` resumes. */
  backpressure?: Subscribable<boolean>;
  /** Called when the file turned out replaced (`'rotated'`: another file at the path; `'rewritten'`: same file, other content). */
  onReplaced?: (how: 'rotated' | 'rewritten') => void;
  /**
   * Resume a previous run: start at byte `offset` (a line start, e.g. a {@link FollowedPiece}'s
   * `end`) when the file there still begins with `head` (its first bytes then) and is at least
   * that long; otherwise (another file, rewritten) as `fromStart` says.
   */
  startAt?: { offset: number; head: Uint8Array };
}

/** A piece of the followed file, with where it ends in the file (the offset to resume after it). */
export interface FollowedPiece extends LinePiece {
  end: number;
}

/** Bytes compared to tell a rewritten file from a grown one: its first ones, and the last ones read. */
const PROBE = 64;

/** What was read of the followed file: enough to recognise it on the next poll. */
interface Seen {
  dev: number;
  ino: number;
  head: Buffer;
  tail: Buffer;
}

/**
 * Follows a growing file like `tail -F`, emitting its lines as exact bytes ({@link LinePiece}:
 * split on `\n` only, cut at `maxLineBytes`). A file that does not exist yet is waited for.
 * Replacement is detected by identity (device and inode: rotation finishes the old file, then
 * reads the new one from its start) and by content (the file shrank, or its first bytes or the
 * last bytes read changed: a truncate + rewrite, even within one poll, is read again from its
 * start). A last line without `\n` is held until it completes, or emitted on its own when its
 * file is replaced; it is never glued to other bytes. Never completes; unsubscribing closes the file.
 */
export function followFileLines(path: string, options: FollowFileOptions = {}): Observable<FollowedPiece> {
  if (typeof path !== 'string' || path.length === 0) throw new BadInputError('path', 'a file path is needed');
  const pollIntervalMs = options.pollIntervalMs ?? 200;
  if (!(pollIntervalMs > 0)) throw new BadConfigError('pollIntervalMs', `must be > 0, got ${pollIntervalMs}`);
  const maxLineBytes = checkMaxLineBytes(options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);

  return new Observable<FollowedPiece>((subscriber) => {
    const splitter = new LineSplitter(maxLineBytes);
    let handle: FileHandle | null = null;
    let seen: Seen | null = null;
    let position = 0;
    /** Where the next piece starts in the file. */
    let emittedEnd = 0;
    let stopped = false;
    let paused = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let first = true;
    const chunk = Buffer.alloc(64 * 1024);
    const emit = (pieces: LinePiece[]) => {
      for (const piece of pieces) {
        emittedEnd += piece.bytes.length;
        subscriber.next({ ...piece, end: emittedEnd });
      }
    };

    const readAt = async (h: FileHandle, at: number, length: number): Promise<Buffer> => {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await h.read(buffer, 0, length, at);
      return buffer.subarray(0, bytesRead);
    };
    /** Notes the bytes just read at `position` in `seen`'s probes. */
    const remember = (data: Buffer) => {
      if (seen === null) return;
      if (position < PROBE) seen.head = Buffer.concat([seen.head, data.subarray(0, PROBE - position)]);
      seen.tail = Buffer.concat([seen.tail, data]).subarray(-PROBE);
    };
    const readToEnd = async (h: FileHandle) => {
      while (!stopped && !paused) {
        const { bytesRead } = await h.read(chunk, 0, chunk.length, position);
        if (bytesRead === 0 || stopped) return;
        remember(chunk.subarray(0, bytesRead));
        position += bytesRead;
        emit(splitter.push(chunk.subarray(0, bytesRead)));
      }
    };
    /** Starts reading `h` at `at`, with the probes of what lies before it. */
    const start = async (h: FileHandle, at: number) => {
      const info = await h.stat();
      position = at;
      emittedEnd = at;
      seen = { dev: info.dev, ino: info.ino, head: await readAt(h, 0, Math.min(PROBE, at)), tail: await readAt(h, Math.max(0, at - PROBE), Math.min(PROBE, at)) };
    };
    const close = async () => {
      const h = handle;
      handle = null;
      if (h) await h.close().catch(() => undefined);
    };
    /** Same file, same content up to `position`? (a rewrite shows in the first or the last bytes read) */
    const unchanged = async (h: FileHandle, info: Stats, was: Seen): Promise<boolean> => {
      if (info.size < position) return false;
      const head = await readAt(h, 0, was.head.length);
      const tail = await readAt(h, Math.max(0, position - PROBE), was.tail.length);
      return head.equals(was.head) && tail.equals(was.tail);
    };

    const poll = async () => {
      try {
        let info: Stats | null = null;
        try {
          info = await stat(path);
        } catch {
          info = null; // missing (not created yet, or rotated away and not recreated): wait
        }
        if (info !== null && handle !== null && seen !== null && (info.ino !== seen.ino || info.dev !== seen.dev)) {
          // Rotated: finish what was written to the old file, its unfinished last line included, then switch.
          paused = false;
          await readToEnd(handle);
          emit(splitter.end());
          await close();
          log.info('file rotated; following the new one', { path });
          options.onReplaced?.('rotated');
        } else if (info !== null && handle !== null && seen !== null && !(await unchanged(handle, info, seen))) {
          log.info('file rewritten in place; reading it from its start', { path, was: position, now: info.size });
          emit(splitter.end()); // the old content's unfinished last line, on its own
          await start(handle, 0);
          options.onReplaced?.('rewritten');
        }
        if (info !== null && handle === null) {
          handle = await open(path, 'r');
          await start(handle, first ? await firstOffset(handle, info.size, options) : 0);
          first = false;
        }
        if (handle !== null && info !== null) await readToEnd(handle);
      } catch (error) {
        log.warn('reading the followed file failed; retrying', { path, error: String(error) });
        await close();
        seen = null;
      }
      if (!stopped) timer = setTimeout(() => void poll(), pollIntervalMs);
    };
    const flow = options.backpressure?.subscribe({ next: (pause) => (paused = pause) });
    void poll();

    return () => {
      stopped = true;
      flow?.unsubscribe();
      if (timer !== undefined) clearTimeout(timer);
      void close();
    };
  });
}

/** Where reading starts when the file is first opened: `startAt` when it still applies, else per `fromStart`. */
async function firstOffset(h: FileHandle, size: number, options: FollowFileOptions): Promise<number> {
  const resume = options.startAt;
  if (resume !== undefined && resume.offset <= size) {
    const head = Buffer.alloc(resume.head.length);
    const { bytesRead } = await h.read(head, 0, head.length, 0);
    if (bytesRead === head.length && head.equals(resume.head)) return resume.offset;
    log.info('the followed file is not the one a previous run read; reading it from its start', { offset: resume.offset });
  }
  return options.fromStart === false ? size : 0;
}

/**
 * Follows a growing text file like `tail -F` (see {@link followFileLines}), emitting each line as
 * text: without its `\n` and one `\r` before it, invalid UTF-8 shown as U+FFFD.
 */
export function followFile(path: string, options: FollowFileOptions = {}): Observable<string> {
  return followFileLines(path, options).pipe(map((piece) => pieceText(piece, true)));
}
