/**
 * File and stdin connectors: follow a growing log file like `tail -F`, or read lines of stdin.
 * Every source splits lines by one rule ({@link LineSplitter}: `\n` only, exact bytes, a cap).
 *
 * @packageDocumentation
 */
export { followFile, followFileLines } from './followFile.js';
export type { FollowFileOptions } from './followFile.js';
export { fromLines, fromStdin, readLines } from './stdin.js';
export type { ReadLinesOptions } from './stdin.js';
export { DEFAULT_MAX_LINE_BYTES, LineSplitter, isUtf8, pieceText, splitMessage } from './lines.js';
export type { LinePiece } from './lines.js';
