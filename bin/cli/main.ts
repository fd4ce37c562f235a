/**
 * The `infiniformer` command line: finds the commands (one module per file in `./commands/`,
 * each default-exporting a {@link Command}), dispatches, and turns errors into messages and
 * exit codes (2 bad usage, 1 runtime failure). Adding a command = adding a file there.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { EXIT, UsageError } from './command.js';
import type { Command } from './command.js';

const COMMANDS_DIR = new URL('./commands/', import.meta.url);

/** Module files of the commands folder (`.ts` when run through tsx, `.js` when compiled). */
function commandFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const f of readdirSync(COMMANDS_DIR)) {
    const m = /^([a-z][a-z0-9-]*)\.(ts|js|mjs)$/.exec(f);
    if (m === null || f.endsWith('.d.ts') || f.endsWith('.test.ts')) continue;
    if (!files.has(m[1]!) || m[2] === 'ts') files.set(m[1]!, f);
  }
  return files;
}

async function loadCommand(file: string): Promise<Command> {
  const mod = (await import(new URL(file, COMMANDS_DIR).href)) as { default?: Command };
  const c = mod.default;
  if (c === undefined || typeof c.run !== 'function') throw new Error(`internal: bin/cli/commands/${file} exports no command`);
  return c;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function globalHelp(): Promise<string> {
  const files = commandFiles();
  const commands = await Promise.all([...files.values()].map(loadCommand));
  commands.sort((a, b) => a.name.localeCompare(b.name));
  const width = Math.max(...commands.map((c) => c.name.length));
  return `Usage: infiniformer <command> [options]

The ∞-former (Infinite Memory Transformer) over endless streams: train byte-level models on
logs, evaluate them with and without their long-term memory, run the local Kafka broker.

Commands:
${commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run 'infiniformer <command> --help' for a command's options.
Exit codes: 0 success, 1 runtime failure, 2 bad arguments or missing files.
Environment: INFINIFORMER_BACKEND (tensorflow | wasm | cpu), INFINIFORMER_LOG_LEVEL,
INFINIFORMER_DEBUG=1 (stack traces), INFINIFORMER_COMPILED=0 (native backend: eager inference
instead of compiled graphs).
`;
}

/** Runs the command line; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    process.stdout.write(await globalHelp());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${version()}\n`);
    return EXIT.ok;
  }
  const files = commandFiles();
  if (name === 'help') {
    const target = rest[0];
    if (target === undefined) {
      process.stdout.write(await globalHelp());
      return EXIT.ok;
    }
    const file = files.get(target);
    if (file === undefined) return unknown(target, files);
    process.stdout.write((await loadCommand(file)).usage);
    return EXIT.ok;
  }
  const file = files.get(name);
  if (file === undefined) return unknown(name, files);
  const command = await loadCommand(file);
  try {
    return await command.run(rest);
  } catch (error) {
    return report(command.name, error);
  }
}

function unknown(name: string, files: Map<string, string>): number {
  process.stderr.write(`infiniformer: unknown command '${name}'. Commands: ${[...files.keys()].sort().join(', ')}.\nRun 'infiniformer --help' for usage.\n`);
  return EXIT.usage;
}

/** Prints an error the way a user can act on it; returns the exit code. */
export function report(command: string, error: unknown): number {
  if (process.env['INFINIFORMER_DEBUG'] !== undefined && error instanceof Error) process.stderr.write(`${error.stack ?? ''}\n`);
  if (error instanceof UsageError) {
    process.stderr.write(`infiniformer ${command}: ${error.message}\nRun 'infiniformer ${command} --help' for usage.\n`);
    return EXIT.usage;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`infiniformer ${command}: error: ${message}\n`);
  return EXIT.failure;
}
