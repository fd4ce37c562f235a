import type { Readable } from 'node:stream';
import { Observable, map, type Subscribable } from 'rxjs';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter, pieceText, type LinePiece } from './lines.js';

/** Options of {@link readLines}. */
export interface ReadLinesOptions {
  /** Lines longer than this many bytes are cut into pieces of it (see {@link LineSplitter}). Default {@link DEFAULT_MAX_LINE_BYTES}. */
  maxLineBytes?: number;
  /** `true` pauses reading (the consumer is behind), `false` resumes: memory stays bounded. */
  backpressure?: Subscribable<boolean>;
}

/**
 * The lines of a readable stream as exact bytes ({@link LinePiece}: split on `\n` only, cut at
 * `maxLineBytes`), completing at its end with its last line even without a `\n`. Unsubscribing
 * stops reading.
 */
export function readLines(input: Readable = process.stdin, options: ReadLinesOptions = {}): Observable<LinePiece> {
  return new Observable<LinePiece>((subscriber) => {
    const splitter = new LineSplitter(options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    const onData = (chunk: Buffer | string) => {
      for (const piece of splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)) subscriber.next(piece);
    };
    const onEnd = () => {
      for (const piece of splitter.end()) subscriber.next(piece);
      subscriber.complete();
    };
    const onError = (error: unknown) => subscriber.error(error);
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', onError);
    const flow = options.backpressure?.subscribe({ next: (pause) => (pause ? input.pause() : input.resume()) });
    return () => {
      flow?.unsubscribe();
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
      input.pause();
    };
  });
}

/**
 * The lines of a readable stream (default: standard input) as text, completing at its end: split
 * on `\n` only (a lone `\r` stays in the line), one `\r` before the `\n` trimmed, invalid UTF-8
 * shown as U+FFFD, lines over 8 KiB cut into pieces. For the exact bytes use {@link readLines}.
 */
export function fromLines(input: Readable = process.stdin): Observable<string> {
  return readLines(input).pipe(map((piece) => pieceText(piece, true)));
}

/** Lines of standard input. */
export function fromStdin(): Observable<string> {
  return fromLines(process.stdin);
}
