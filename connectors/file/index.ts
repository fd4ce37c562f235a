/**
 * File and stdin connectors: follow a growing log file like `tail -F`, or read lines of stdin.
 *
 * @packageDocumentation
 */
export { followFile } from './followFile.js';
export type { FollowFileOptions } from './followFile.js';
export { fromLines, fromStdin } from './stdin.js';
