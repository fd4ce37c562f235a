import { open, stat, type FileHandle } from 'node:fs/promises';
import { Observable } from 'rxjs';
import { BadConfigError, BadInputError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';

const log = createLogger('infiniformer:file');

export interface FollowFileOptions {
  /** Start at the beginning of the file (true) or at its current end, like `tail -F -n 0` (false). Default true. */
  fromStart?: boolean;
  /** How often the file is checked for growth, truncation and rotation. Default 200 ms. */
  pollIntervalMs?: number;
  /** Lines longer than this are split (a runaway line never exhausts memory). Default 1 MiB. */
  maxLineBytes?: number;
}

const NEWLINE = 0x0a;
const utf8 = new TextDecoder('utf-8');

/**
 * Follows a growing text file like `tail -F`, emitting each complete line (without its newline,
 * `\r\n` trimmed to nothing extra). Truncation (the file got shorter) restarts from its
 * beginning; rotation (the path now names another file) finishes the old file, then reads the
 * new one from its start; a missing file is waited for. A partial last line is held until its
 * newline arrives. Never completes; unsubscribing closes the file.
 */
export function followFile(path: string, options: FollowFileOptions = {}): Observable<string> {
  if (typeof path !== 'string' || path.length === 0) throw new BadInputError('path', 'a file path is needed');
  const pollIntervalMs = options.pollIntervalMs ?? 200;
  const maxLineBytes = options.maxLineBytes ?? 1 << 20;
  if (!(pollIntervalMs > 0)) throw new BadConfigError('pollIntervalMs', `must be > 0, got ${pollIntervalMs}`);
  if (!(maxLineBytes > 0)) throw new BadConfigError('maxLineBytes', `must be > 0, got ${maxLineBytes}`);

  return new Observable<string>((subscriber) => {
    let handle: FileHandle | null = null;
    let inode = -1;
    let position = 0;
    let pending: Buffer = Buffer.alloc(0);
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let first = true;
    const chunk = Buffer.alloc(64 * 1024);

    const emitLines = (data: Buffer) => {
      let buffer = pending.length > 0 ? Buffer.concat([pending, data]) : data;
      let start = 0;
      for (;;) {
        const newline = buffer.indexOf(NEWLINE, start);
        if (newline < 0) break;
        let end = newline;
        if (end > start && buffer[end - 1] === 0x0d) end--;
        subscriber.next(utf8.decode(buffer.subarray(start, end)));
        start = newline + 1;
      }
      buffer = buffer.subarray(start);
      while (buffer.length > maxLineBytes) {
        subscriber.next(utf8.decode(buffer.subarray(0, maxLineBytes)));
        buffer = buffer.subarray(maxLineBytes);
      }
      pending = Buffer.from(buffer);
    };

    const readToEnd = async (h: FileHandle) => {
      for (;;) {
        const { bytesRead } = await h.read(chunk, 0, chunk.length, position);
        if (bytesRead === 0 || stopped) return;
        position += bytesRead;
        emitLines(chunk.subarray(0, bytesRead));
      }
    };

    const close = async () => {
      const h = handle;
      handle = null;
      if (h) await h.close().catch(() => undefined);
    };

    const poll = async () => {
      try {
        let info: Awaited<ReturnType<typeof stat>> | null = null;
        try {
          info = await stat(path);
        } catch {
          info = null; // missing (rotated away, not recreated yet): keep the old file, wait
        }
        if (info !== null && (handle === null || info.ino !== inode)) {
          if (handle !== null) {
            // Rotated: finish what was written to the old file, then switch.
            await readToEnd(handle);
            if (pending.length > 0) emitLines(Buffer.from('\n'));
            await close();
            log.info('file rotated; following the new one', { path });
          }
          handle = await open(path, 'r');
          inode = info.ino;
          position = first && options.fromStart === false ? info.size : 0;
          first = false;
        } else if (info !== null && handle !== null && info.size < position) {
          log.info('file truncated; reading from its start', { path, was: position, now: info.size });
          position = 0;
          pending = Buffer.alloc(0);
        }
        if (handle !== null) await readToEnd(handle);
      } catch (error) {
        log.warn('reading the followed file failed; retrying', { path, error: String(error) });
        await close();
      }
      if (!stopped) timer = setTimeout(() => void poll(), pollIntervalMs);
    };
    void poll();

    return () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      void close();
    };
  });
}
