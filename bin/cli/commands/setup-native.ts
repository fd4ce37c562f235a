/**
 * `infiniformer setup-native`: builds and installs the native TensorFlow backend
 * (`scripts/setup-native.mjs`, the same as `npm run setup:native`).
 */
import { CliError, HELP, parse } from '../command.js';
import type { Command } from '../command.js';

const usage = `Usage: infiniformer setup-native [--force] [--keep-wheel]

Builds the native TensorFlow backend (@tensorflow/tfjs-node) from the tensorflow-cpu wheel and
installs it into this project's node_modules (Linux x86_64; needs python3 with pip, a C++
compiler and make). Cached: after the first build it takes seconds. Re-run after npm ci.

Options:
  --force        rebuild from scratch
  --keep-wheel   keep the downloaded wheel (274 MB) in the cache
  -h, --help     this text

Environment: INFINIFORMER_NATIVE_CACHE, INFINIFORMER_PYTHON, INFINIFORMER_NODEDIR.
Exit codes: 0 installed, 1 failed (the message says why), 2 bad arguments.
`;

const command: Command = {
  name: 'setup-native',
  summary: 'build and install the native TensorFlow backend (tfjs-node)',
  usage,
  async run(argv) {
    const { values } = parse({ args: argv, options: { ...HELP, force: { type: 'boolean' }, 'keep-wheel': { type: 'boolean' } } });
    if (values.help === true) {
      process.stdout.write(usage);
      return 0;
    }
    const { setupNative } = (await import(new URL('../../../scripts/setup-native.mjs', import.meta.url).href)) as {
      setupNative: (o: { force?: boolean; keepWheel?: boolean }) => Promise<{ installed: string; built: boolean; seconds: number }>;
    };
    try {
      const r = await setupNative({ force: values.force === true, keepWheel: values['keep-wheel'] === true });
      process.stdout.write(`${r.installed} (${r.built ? 'built' : 'cached build'}, ${r.seconds.toFixed(1)} s)\n`);
      return 0;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new CliError(`setup-native failed${typeof code === 'string' ? ` [${code}]` : ''}: ${(error as Error).message}`, { cause: error });
    }
  },
};

export default command;
