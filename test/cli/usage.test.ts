// The command line's help texts, and its exit codes for bad arguments (2), missing files (2),
// runtime failures such as a corrupt model or an unreachable broker (1).
import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, GCC_SLICE } from './helpers.js';

const COMMANDS = ['bench', 'eval', 'kafka', 'setup-native', 'train'];

let root = '';
test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'infiniformer-cli-usage-'));
});
test.after.always(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
});

test('--help lists every command; no command prints it with exit code 2', async (t) => {
  const help = await cli(['--help']);
  t.is(help.code, 0);
  for (const c of COMMANDS) t.regex(help.stdout, new RegExp(`^  ${c} +\\S`, 'm'));
  t.regex(help.stdout, /Exit codes: 0 success, 1 runtime failure, 2 bad arguments/);
  const none = await cli([]);
  t.is(none.code, 2);
  t.is(none.stdout, help.stdout);
  const version = await cli(['--version']);
  t.is(version.code, 0);
  t.regex(version.stdout, /^\d+\.\d+\.\d+\n$/);
});

for (const c of COMMANDS) {
  test(`${c} --help and help ${c} print the command's usage and exit 0`, async (t) => {
    const [a, b] = await Promise.all([cli([c, '--help']), cli(['help', c])]);
    t.is(a.code, 0);
    t.is(b.code, 0);
    t.true(a.stdout.startsWith(`Usage: infiniformer ${c}`), a.stdout.slice(0, 80));
    t.is(a.stdout, b.stdout);
    t.is(a.stderr, '');
  });
}

test('an unknown command exits 2 and names the commands', async (t) => {
  const r = await cli(['frobnicate']);
  t.is(r.code, 2);
  t.regex(r.stderr, /unknown command 'frobnicate'.*bench, eval, kafka, setup-native, stream, train/);
});

const usageErrors: [string, string[], RegExp][] = [
  ['train: unknown option', ['train', '--data', GCC_SLICE, '--out', 'x', '--bogus'], /unknown option '--bogus'/],
  ['train: no --data', ['train', '--out', 'x'], /--data is required/],
  ['train: no --out', ['train', '--data', GCC_SLICE], /--out is required/],
  ['train: a missing data file', ['train', '--data', 'no/such/file.log', '--out', 'x'], /--data: no\/such\/file\.log does not exist/],
  ['train: a glob matching nothing', ['train', '--data', 'data/**/*.nothing', '--out', 'x'], /--data: data\/\*\*\/\*\.nothing matches no file/],
  ['train: a directory as data', ['train', '--data', 'data', '--out', 'x'], /--data: data is not a file/],
  ['train: --steps not a number', ['train', '--data', GCC_SLICE, '--out', 'x', '--steps', 'many'], /--steps must be an integer >= 1, got "many"/],
  ['train: --steps 0', ['train', '--data', GCC_SLICE, '--out', 'x', '--steps', '0'], /--steps must be an integer >= 1/],
  ['train: --eval-fraction 1.5', ['train', '--data', GCC_SLICE, '--out', 'x', '--eval-fraction', '1.5'], /--eval-fraction must be a number in \[0, 0\.9\]/],
  ['train: --config not JSON', ['train', '--data', GCC_SLICE, '--out', 'x', '--config', '{width: 3'], /--config: not valid JSON/],
  ['train: --config file missing', ['train', '--data', GCC_SLICE, '--out', 'x', '--config', 'nope.json'], /--config: nope\.json does not exist/],
  ['train: --backend unknown', ['train', '--data', GCC_SLICE, '--out', 'x', '--backend', 'gpu'], /--backend must be one of auto, tensorflow, wasm, cpu/],
  ['eval: no --model', ['eval', '--data', GCC_SLICE], /--model is required/],
  ['eval: a missing model directory', ['eval', '--model', 'no/such/model', '--data', GCC_SLICE], /--model: no\/such\/model does not exist/],
  ['eval: a directory that is not a model', ['eval', '--model', 'data', '--data', GCC_SLICE], /--model: data has no config\.json/],
  ['eval: --streams 0', ['eval', '--model', 'data', '--data', GCC_SLICE, '--streams', '0'], /--streams must be an integer >= 1/],
  ['stream: --exactly-once to standard output', ['stream', '--kafka-topic', 'logs', '--exactly-once'], /--exactly-once needs --kafka-topic and --out-topic/],
  ['stream: --transactional-id without --exactly-once', ['stream', '--kafka-topic', 'logs', '--transactional-id', 'x'], /--transactional-id and --transaction-timeout need --exactly-once/],
  ['kafka: no action', ['kafka'], /missing action: up, down or status/],
  ['kafka: an unknown action', ['kafka', 'restart'], /unknown action 'restart'/],
  ['kafka: malformed --brokers', ['kafka', 'status', '--brokers', 'localhost'], /--brokers must look like host:port/],
  ['bench: an unknown benchmark', ['bench', 'nosuch'], /no benchmark named 'nosuch'/],
  ['setup-native: unknown option', ['setup-native', '--fast'], /unknown option '--fast'/],
];

for (const [name, args, message] of usageErrors) {
  test(`exit 2 with a clear message: ${name}`, async (t) => {
    const r = await cli(args);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, message);
    t.regex(r.stderr, new RegExp(`Run 'infiniformer ${args[0]} --help' for usage\\.`));
    t.is(r.stdout, '');
  });
}

test('train: a bad model config field is a usage error naming the field', async (t) => {
  const r = await cli(['train', '--data', GCC_SLICE, '--out', join(root, 'badcfg'), '--config', '{"width": 30, "numHeads": 4}']);
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /--config: numHeads: must divide width 30, got 4/);
  const unknown = await cli(['train', '--data', GCC_SLICE, '--out', join(root, 'badcfg2'), '--config', '{"depth": 3}']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /--config: depth: is not a config field/);
});

test('train: --resume without a checkpoint is a usage error', async (t) => {
  const r = await cli(['train', '--data', GCC_SLICE, '--out', join(root, 'fresh'), '--resume']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--resume: no checkpoint in .*fresh\/checkpoint/);
});

test('eval: a corrupt model is a runtime failure (exit 1) that says what is wrong', async (t) => {
  const dir = join(root, 'corrupt');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), '{"format": "something-else"}');
  const r = await cli(['eval', '--model', dir, '--data', GCC_SLICE]);
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /infiniformer eval: error: .*config\.json: not an infiniformer model/);
});

test('kafka status: an unreachable broker exits 1; kafka down without a broker of ours exits 0', async (t) => {
  // A port that is certainly closed: bind one, note it, release it.
  const port = await new Promise<number>((done) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const p = (server.address() as { port: number }).port;
      server.close(() => done(p));
    });
  });
  const status = await cli(['kafka', 'status', '--brokers', `127.0.0.1:${port}`]);
  t.is(status.code, 1, status.stderr);
  t.regex(status.stderr, new RegExp(`infiniformer kafka: error: no broker answers on 127\\.0\\.0\\.1:${port}`));
  // Its own data directory and port: never touches the shared broker.
  const down = await cli(['kafka', 'down'], { env: { KAFKA_DATA_DIR: join(root, 'kafka'), KAFKA_PORT: String(port) } });
  t.is(down.code, 0, down.stderr);
  t.regex(down.stdout, /no broker started by 'kafka up' was running/);
});
