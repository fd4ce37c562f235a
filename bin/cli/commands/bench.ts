/**
 * `infiniformer bench`: runs the benchmarks of `bench/` (`bench/index.ts`) with the given
 * arguments, in a child process, and exits with its code.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../command.js';
import type { Command } from '../command.js';

const BENCH_DIR = fileURLToPath(new URL('../../../bench/', import.meta.url));

/** bench/<name>.ts, or bench/<name>/index.ts for a benchmark of several files. */
function names(): string[] {
  if (!existsSync(BENCH_DIR)) return [];
  return readdirSync(BENCH_DIR, { withFileTypes: true })
    .flatMap((f) => (f.isFile() && f.name.endsWith('.ts') && f.name !== 'index.ts' ? [f.name.slice(0, -3)] : f.isDirectory() && existsSync(join(BENCH_DIR, f.name, 'index.ts')) ? [f.name] : []))
    .sort();
}

const usage = `Usage: infiniformer bench [name...] [bench options]

Runs the benchmarks in bench/ (default: all) and prints their figures and ratios; benchmarks
never pass or fail on time. Every argument is passed to bench/index.ts unchanged.

Benchmarks: ${names().join(', ') || '(none found: bench/ is missing)'}

Options:
  -h, --help   this text

Example:
  infiniformer bench model
`;

const command: Command = {
  name: 'bench',
  summary: 'run the benchmarks in bench/ (memory, backends, model, kafka, peers)',
  usage,
  async run(argv) {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(usage);
      return 0;
    }
    const entry = `${BENCH_DIR}index.ts`;
    if (!existsSync(entry)) throw new UsageError(`no benchmarks here (${entry} is missing; they ship with the repository, not the package)`);
    const known = names();
    for (const a of argv) if (!a.startsWith('-') && !known.includes(a)) throw new UsageError(`no benchmark named '${a}' (known: ${known.join(', ')})`);
    const child = spawn(process.execPath, ['--import', 'tsx', entry, ...argv], { stdio: 'inherit' });
    const forward = (signal: NodeJS.Signals) => (): void => void child.kill(signal);
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    try {
      return await new Promise<number>((done, fail) => {
        child.once('error', fail);
        child.once('exit', (code, signal) => done(code ?? (signal === null ? 1 : 128 + 2)));
      });
    } finally {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    }
  },
};

export default command;
