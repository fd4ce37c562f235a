/**
 * What every command of the `infiniformer` command line shares: the {@link Command} shape (one
 * module per command in `bin/cli/commands/`, found by the dispatcher at run time), the error
 * that means "bad usage" (exit code 2), and argument helpers on top of `node:util` `parseArgs`.
 */
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';

/** Exit codes of the command line. */
export const EXIT = Object.freeze({ ok: 0, failure: 1, usage: 2 });

/** One sub-command. A module in `bin/cli/commands/` default-exports one. */
export interface Command {
  /** What the user types: `infiniformer <name>`. */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** The full `--help` text. */
  usage: string;
  /** Runs with the arguments after the command name; resolves to the exit code. */
  run(argv: string[]): Promise<number>;
}

/** Bad usage: unknown option, bad value, missing argument or input file. Exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A runtime failure with a message meant for the user as is (exit code 1). */
export class CliError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
  }
}

/** The `--help` option every command takes. */
export const HELP = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * `parseArgs` (strict: unknown options are errors); its errors become {@link UsageError}s.
 * Options not given are `undefined`.
 */
export function parse<const T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      const message = (error as Error).message;
      const unknown = /^Unknown option '([^']+)'/.exec(message);
      throw new UsageError(unknown !== null ? `unknown option '${unknown[1]}'` : message.split('\n')[0]!);
    }
    throw error;
  }
}

const BACKENDS = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;

/** `--backend` checked against the backends there are (default auto). */
export function backendOption(raw: string | undefined): (typeof BACKENDS)[number] {
  const backend = raw ?? 'auto';
  if (!(BACKENDS as readonly string[]).includes(backend)) throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')}, got ${JSON.stringify(backend)}`);
  return backend as (typeof BACKENDS)[number];
}

/** `--name` as an integer >= `min`, or `fallback` when absent. */
export function intOption(name: string, raw: string | undefined, fallback: number, min = 1): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

/** `--name` as a finite number in [lo, hi] (open at an end with `openLow` / `openHigh`), or `fallback`. */
export function numberOption(name: string, raw: string | undefined, fallback: number, lo: number, hi: number, openLow = false, openHigh = false): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  const ok = raw.trim() !== '' && Number.isFinite(n) && (openLow ? n > lo : n >= lo) && (openHigh ? n < hi : n <= hi);
  if (!ok) throw new UsageError(`--${name} must be a number in ${openLow ? '(' : '['}${lo}, ${hi}${openHigh ? ')' : ']'}, got ${JSON.stringify(raw)}`);
  return n;
}

/** A required string option. */
export function required(name: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

/** Checks that `path` exists and is a directory (`dir`) or a file; a {@link UsageError} if not. */
export function mustExist(option: string, path: string, kind: 'file' | 'dir'): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new UsageError(`--${option}: ${path} does not exist`);
  }
  if (kind === 'dir' && !st.isDirectory()) throw new UsageError(`--${option}: ${path} is not a directory`);
  if (kind === 'file' && !st.isFile()) throw new UsageError(`--${option}: ${path} is not a file`);
}

/** Whether progress should be a redrawn bar (a TTY, not CI) or plain lines. */
export function interactive(stream: NodeJS.WriteStream = process.stderr): boolean {
  const ci = process.env['CI'];
  return stream.isTTY === true && (ci === undefined || ci === '' || ci === 'false' || ci === '0');
}
