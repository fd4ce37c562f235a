import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Observable } from 'rxjs';

/**
 * The lines of a readable stream (default: standard input), completing at its end. Lines are
 * emitted without their `\n` / `\r\n`. Unsubscribing stops reading.
 */
export function fromLines(input: Readable = process.stdin): Observable<string> {
  return new Observable<string>((subscriber) => {
    const lines = createInterface({ input, crlfDelay: Infinity, terminal: false });
    lines.on('line', (line) => subscriber.next(line));
    lines.on('close', () => subscriber.complete());
    input.on('error', (error) => subscriber.error(error));
    return () => lines.close();
  });
}

/** Lines of standard input. */
export function fromStdin(): Observable<string> {
  return fromLines(process.stdin);
}
