// `infiniformer stream` on bad input, signals and its launcher: the bad-input table of
// docs/ingestion.md, each row checked here (Kafka rows in streamKafka.test.ts) against the model run
// directly on the exact input bytes.
import anyTest from 'ava';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InfiniFormer, saveModel } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { BIN, GCC_SLICE, REPO, cli, directBits, signalAfterLines, events, outputs, TINY_CONFIG, type Out } from './helpers.js';

// One at a time: each runs a model process, and the timings are part of what is checked.
const test = anyTest.serial;
let root = '';
let modelDir = '';

anyTest.before(async () => {
  await backendReady;
  root = await mkdtemp(join(tmpdir(), 'infiniformer-cli-ingest-'));
  modelDir = join(root, 'model');
  const model = InfiniFormer.create(TINY_CONFIG, { seed: 11 });
  await saveModel(model, modelDir);
  model.dispose();
});

anyTest.after.always(async () => {
  await rm(root, { recursive: true, force: true });
});

const summaryOf = (stderr: string) => events(stderr).find((e) => 'summary' in e)?.summary as Record<string, number> | undefined;

/** One row of the table: the input bytes, and the outputs `[text, bytes, truncated, continued]` it must give. */
interface Row {
  row: string;
  input: number[] | string;
  want: [string, number, boolean, boolean][];
  event?: string;
}
const CAP = 16;
const ROWS: Row[] = [
  { row: 'a plain line `abc\\n`', input: 'abc\n', want: [['abc', 4, false, false]] },
  { row: 'a lone `\\r` inside a line', input: 'a\rb\n', want: [['a\rb', 4, false, false]] },
  { row: '`\\r\\n` ending', input: 'x\r\n', want: [['x\r', 3, false, false]] },
  { row: '`\\r\\r\\n` ending', input: 'PASS: y\r\r\n', want: [['PASS: y\r\r', 10, false, false]] },
  { row: 'empty line `\\n`', input: '\n', want: [['', 1, false, false]] },
  { row: 'invalid UTF-8', input: [0x66, 0xff, 0xfe, 0x66, 0x0a], want: [['f\uFFFD\uFFFDf', 5, false, false]], event: 'invalidUtf8' },
  {
    row: 'line over the cap',
    input: `${'L'.repeat(2 * CAP + 5)}\n`,
    want: [
      ['L'.repeat(CAP), CAP, true, false],
      ['L'.repeat(CAP), CAP, true, true],
      ['L'.repeat(5), 6, false, true],
    ],
    event: 'cut',
  },
];
const bytesOf = (input: number[] | string) => (typeof input === 'string' ? [...Buffer.from(input, 'utf8')] : input);

/** Checks the outputs of ROWS (in order, one key) against the direct model on the same bytes (the network alone, frozen: --no-mix --no-learn). */
async function checkRows(t: import('ava').ExecutionContext, out: Out[], rows: Row[], tail: number[] = []): Promise<void> {
  const all = Uint8Array.from([...rows.flatMap((r) => bytesOf(r.input)), ...tail]);
  const bits = await directBits(modelDir, all);
  let at = 0;
  let i = 0;
  for (const r of rows) {
    for (const [text, n, truncated, continued] of r.want) {
      const o = out[i++];
      t.truthy(o, `${r.row}: an output`);
      if (o === undefined) return;
      t.deepEqual([o.text, o.bytes, o.truncated === true, o.continued === true], [text, n, truncated, continued], r.row);
      const want = bits.slice(at, at + n).reduce((a, b) => a + b, 0);
      t.true(Math.abs(o.bits - want) <= 1e-3 * want + 1e-3, `${r.row}: bits ${o.bits} vs the direct model's ${want}`);
      at += n;
    }
  }
  t.is(at + tail.length, all.length, 'the outputs cover the input bytes exactly');
}

test('every row of the bad-input table in docs/ingestion.md is a case of these tests', (t) => {
  const doc = readFileSync(join(REPO, 'docs/ingestion.md'), 'utf8');
  const rows = doc
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| input') && !l.startsWith('|---'))
    .map((l) => l.split(' | ')[0]!.slice(2));
  const covered = new Set([
    ...ROWS.map((r) => r.row),
    'last line without `\\n`', // stdin: below; --follow: test/connectors/file/followFile.test.ts and below
    'file rewritten in place (truncate + write, even within one poll)', // followFile.test.ts
    'file rotated (another inode at the path)', // followFile.test.ts
    'file does not exist yet', // below
    'lines read but not scored at a stop', // below
    ...KAFKA_ROWS,
  ]);
  t.is(rows.length, 17);
  t.deepEqual(rows.filter((r) => !covered.has(r)), []);
});
/** Rows checked by test/cli/streamKafka.test.ts. */
const KAFKA_ROWS = ['a Kafka value', 'empty Kafka value', 'tombstone (null value)', 'Kafka value over 8 × the cap'];

test('stdin: each kind of input gets its row of the table; the model scores the original bytes', async (t) => {
  const tail = [...Buffer.from('end, no \\n')];
  const input = Buffer.from([...ROWS.flatMap((r) => bytesOf(r.input)), ...tail]);
  const r = await cli(['stream', '--model', modelDir, '--no-mix', '--no-learn', '--stdin', '--max-line-bytes', String(CAP), '--mode', 'token'], { input });
  t.is(r.code, 0, r.stderr);
  const out = outputs(r.stdout).sort((a, b) => a.line - b.line || Number(a.continued === true) - Number(b.continued === true));
  await checkRows(t, out, ROWS, tail);
  const last = out.at(-1)!;
  t.deepEqual([last.text, last.bytes], ['end, no \\n', tail.length], 'the last line: its bytes, no \\n invented');
  t.is(out.length, ROWS.reduce((n, row) => n + row.want.length, 0) + 1);
  const ev = events(r.stderr);
  for (const row of ROWS.filter((x) => x.event !== undefined)) t.true(ev.some((e) => e.event === row.event), `${row.row}: a ${row.event} line on stderr`);
  t.like(summaryOf(r.stderr), { lines: ROWS.length + 1, scored: out.length, cut: 1, invalidUtf8: 1 });
});

test('--follow: the same rows give the same outputs; the unterminated last line is held until its newline', async (t) => {
  const file = join(root, 'rows.log');
  const rowBytes = Buffer.from(ROWS.flatMap((r) => bytesOf(r.input)));
  await writeFile(file, Buffer.concat([rowBytes, Buffer.from('held')]));
  const n = ROWS.reduce((k, row) => k + row.want.length, 0);
  const seen: string[] = [];
  let completed = false;
  const r = await cli(['stream', '--model', modelDir, '--no-mix', '--no-learn', '--follow', file, '--max-line-bytes', String(CAP), '--mode', 'token', '--max-lines', String(n + 1)], {
    onStdout: (chunk) => {
      seen.push(chunk);
      // Once the rows are out (and 'held' is not), complete the held line.
      if (!completed && outputs(seen.join('')).length >= n) {
        completed = true;
        setTimeout(() => void appendFile(file, ' now\n'), 500);
      }
    },
  });
  t.is(r.code, 0, r.stderr);
  const out = outputs(r.stdout).sort((a, b) => a.line - b.line || Number(a.continued === true) - Number(b.continued === true));
  await checkRows(t, out, ROWS, [...Buffer.from('held now\n')]);
  t.deepEqual([out[n]!.text, out[n]!.bytes], ['held now', 9], 'the held line came out whole');
});

test('--follow on a file that does not exist yet waits for it (tail -F), instead of exiting 2', async (t) => {
  const file = join(root, 'later.log');
  const r = await cli(['stream', '--model', modelDir, '--follow', file, '--max-lines', '2', '--max-delay-ms', '20'], {
    // Created once the command says it waits (it used to exit 2 at once).
    onStderr: (chunk) => void (chunk.includes('"event":"waiting"') && setTimeout(() => void writeFile(file, 'one\ntwo\n'), 500)),
  });
  t.is(r.code, 0, r.stderr);
  t.deepEqual(outputs(r.stdout).map((o) => o.text), ['one', 'two']);
  t.true(events(r.stderr).some((e) => e.event === 'waiting' && e.file === file));
});

test('a 5 MB line without a newline on stdin: pieces come out within seconds (it was ~30 min of silence)', async (t) => {
  const started = Date.now();
  let firstAt = 0;
  const r = await cli(['stream', '--model', modelDir, '--stdin', '--anomaly-threshold', '5'], {
    input: Buffer.alloc(5 << 20, 'ab'),
    onStdout: () => (firstAt ||= Date.now()),
    onSpawn: (child) => {
      const check = setInterval(() => {
        if (firstAt > 0) {
          clearInterval(check);
          child.kill('SIGTERM');
        } else if (Date.now() - started > 120_000) { // the old code wrote nothing for ~30 min
          clearInterval(check);
          child.kill('SIGKILL');
        }
      }, 100);
    },
  });
  t.is(r.code, 0, r.stderr);
  const out = outputs(r.stdout);
  t.log(`first output after ${firstAt - started} ms (process start and model load included)`);
  t.true(out.length >= 1);
  t.deepEqual([out[0]!.bytes, out[0]!.truncated, out[0]!.continued], [8192, true, undefined]);
  t.true(events(r.stderr).some((e) => e.event === 'cut'));
});

/** Many gcc log lines: minutes of work for the model. */
const backlog = (): Buffer => {
  const slice = readFileSync(GCC_SLICE);
  return Buffer.concat(Array.from({ length: Math.ceil((4 << 20) / slice.length) }, () => slice));
};

test('first SIGTERM with a backlog: input stops, the lines in hand finish, summary, exit 0 within ~1 s', async (t) => {
  const stop = signalAfterLines(20, 'SIGTERM');
  const r = await cli(['stream', '--model', modelDir, '--stdin', '--anomaly-threshold', '5'], { input: backlog(), ...stop.options });
  const signalled = stop.sentAt();
  const ms = Date.now() - signalled;
  t.log(`exit ${ms} ms after SIGTERM`);
  t.true(signalled > 0);
  t.is(r.code, 0, r.stderr);
  // The time is logged, not asserted (timings belong in bench/); the backlog left unscored and
  // counted (below) is what shows the stop did not score the whole input.
  const summary = summaryOf(r.stderr);
  t.truthy(summary);
  t.is(summary?.scored, outputs(r.stdout).length, 'every scored line was written');
  t.true((summary?.unscoredAtStop ?? 0) > 0, 'the backlog was left unscored and counted');
});

test('a SIGTERM during the start (backend chosen, model not yet loaded): the job comes up, reads nothing, exits 0 with its summary', async (t) => {
  let signalled = false;
  let child: ChildProcess | undefined;
  const r = await cli(['stream', '--model', modelDir, '--stdin', '--anomaly-threshold', '5'], {
    input: backlog(),
    env: { INFINIFORMER_LOG_LEVEL: 'info' },
    onSpawn: (c) => (child = c),
    onStderr: (chunk) => {
      // initBackend logs its choice: the job is past its option checks and still starting.
      if (!signalled && chunk.includes('"backend selected"')) {
        signalled = true;
        child?.kill('SIGTERM');
      }
    },
  });
  t.true(signalled);
  t.is(r.code, 0, r.stderr);
  t.is(outputs(r.stdout).length, 0);
  t.true(events(r.stderr).some((e) => e.event === 'stopping'));
  t.is(summaryOf(r.stderr)?.scored ?? 0, 0);
});

test('a second signal exits at once, while the first one still finishes a long piece', async (t) => {
  let signalled = 0;
  const r = await cli(['stream', '--model', modelDir, '--stdin', '--max-line-bytes', String(1 << 20), '--anomaly-threshold', '5'], {
    input: Buffer.concat([Buffer.from('short line\n'), Buffer.alloc(64 << 10, 'xyz'), Buffer.from('\n')]),
    onStdout: () => undefined,
    onSpawn: (child) => {
      let seen = '';
      child.stdout!.on('data', (d: Buffer) => {
        seen += d.toString();
        if (signalled === 0 && seen.includes('short line')) {
          signalled = -1;
          // The long line is in the model by now; the first signal waits for it, the second does not.
          setTimeout(() => child.kill('SIGINT'), 1000);
          setTimeout(() => {
            signalled = Date.now();
            child.kill('SIGINT');
          }, 1300);
        }
      });
    },
  });
  const ms = Date.now() - signalled;
  t.log(`exit ${ms} ms after the second SIGINT`);
  t.is(r.code, 130, r.stderr);
  // Exit code 130 says the second signal ended it (the first alone exits 0); the time is logged.
});

test('--anomaly-quantile 1 is refused by a message that says (0, 1)', async (t) => {
  for (const q of ['1', '0']) {
    const r = await cli(['stream', '--model', modelDir, '--stdin', '--anomaly-quantile', q]);
    t.is(r.code, 2);
    t.regex(r.stderr, /--anomaly-quantile must be a number in \(0, 1\), got "[01]"/);
  }
  const ok = await cli(['stream', '--model', modelDir, '--stdin', '--anomaly-quantile', '0.999'], { input: 'a\n' });
  t.is(ok.code, 0, ok.stderr);
});

/** The node workers (not npm, not sh) whose command line contains `marker`. */
const workersWith = (marker: string): number[] =>
  execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && m[2]!.includes(marker) && !/^(npm|sh|ps)\b/.test(m[2]!))
    .map((m) => Number(m[1]));

for (const [name, how] of [
  ['npx infiniformer', (args: string[]) => spawn('npx', ['--offline', 'infiniformer', ...args], { cwd: REPO, stdio: 'ignore', env: { ...process.env, CI: 'true' } })],
  ['sh -c "node bin/infiniformer; ..." killed with SIGKILL', (args: string[]) => spawn('sh', ['-c', `"${process.execPath}" "${BIN}" ${args.map((a) => `'${a}'`).join(' ')}; echo done`], { cwd: REPO, stdio: 'ignore' })],
] as const) {
  test(`killing the launcher chain (${name}) leaves no orphan node process`, async (t) => {
    const marker = join(root, `orphan-${name.length}-${Date.now()}.log`);
    await writeFile(marker, 'x\n'.repeat(10));
    const parent = how(['stream', '--model', modelDir, '--follow', marker]);
    const deadline = Date.now() + 60_000;
    const workers = () => workersWith(marker);
    while (workers().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    t.true(workers().length > 0, 'the worker runs');
    await new Promise((r) => setTimeout(r, 3000)); // past start-up (model loading blocks the event loop)
    parent.kill(name.startsWith('npx') ? 'SIGTERM' : 'SIGKILL');
    const killedAt = Date.now();
    while (workers().length > 0 && Date.now() - killedAt < 10_000) await new Promise((r) => setTimeout(r, 100));
    t.log(`worker gone ${Date.now() - killedAt} ms after its parent was killed`);
    const left = workers();
    for (const p of left) process.kill(p, 'SIGKILL');
    t.deepEqual(left, []);
  });
}
