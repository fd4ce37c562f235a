/**
 * The main job as users run it: `infiniformer stream --stdin` (default model, mixing, segment
 * mode) over a fixed real log, timed end to end in a child process, for each case:
 *
 * - start-up: `--max-lines 1` (process start, model load, one line);
 * - `--no-learn`, the default `--learn keep-up` and `--learn always`, one key (the whole log); `learneager` is `--learn
 *   always` with the learning step eager (INFINIFORMER_COMPILED_STEP=0; inference compiled);
 * - `--no-learn` with the lines dealt round-robin to 8 and 64 keys (`--key-by`), which the
 *   scheduler batches into one forward per segment position;
 * - `--learn always` over 8 keys: `learnkeys8` one learning step per segment (the default),
 *   `learnkeys8b` with `--segments-per-step 8` (the keys ready together in one batched step).
 *
 * Each figure is lines/s over the whole run and over the run minus start-up, with the load
 * average at the time (the machine is shared: compare ratios from one run, not across runs),
 * and the child's CPU seconds (user + system, from /usr/bin/time when present): on a loaded
 * machine wall time mostly measures the queue for a core, CPU time what the job costs.
 *
 * `npm run bench -- mainjob`. Environment: BENCH_MAINJOB_LOG (default
 * data/quality/apache-error.log, 771 lines, 64 KB), BENCH_MAINJOB_CASES (comma list of
 * startup,nolearn,keepup,learn,learneager,keys8,keys64,learnkeys8,learnkeys8b; default all), BENCH_MAINJOB_ROUNDS (default 1; the
 * median is printed).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LOG = process.env['BENCH_MAINJOB_LOG'] ?? join(ROOT, 'data', 'quality', 'apache-error.log');
const CASES = new Set((process.env['BENCH_MAINJOB_CASES'] ?? 'startup,nolearn,keepup,learn,learneager,keys8,keys64,learnkeys8,learnkeys8b').split(','));
const ROUNDS = Number(process.env['BENCH_MAINJOB_ROUNDS'] ?? 1);

interface Case {
  name: string;
  args: string[];
  /** Keys the lines are dealt to (a "k<i> " prefix; 0: the lines as they are). */
  keys: number;
  /** Extra environment of the child. */
  env?: Record<string, string>;
}

const ALL: Case[] = [
  { name: 'startup', args: ['--no-learn', '--max-lines', '1'], keys: 0 },
  { name: 'nolearn', args: ['--no-learn'], keys: 0 },
  // The default (--learn keep-up): a file piped in at once is a backlog, so it mostly scores.
  { name: 'keepup', args: [], keys: 0 },
  { name: 'learn', args: ['--learn', 'always'], keys: 0 },
  { name: 'learneager', args: ['--learn', 'always'], keys: 0, env: { INFINIFORMER_COMPILED_STEP: '0' } },
  { name: 'keys8', args: ['--no-learn', '--key-by', '/^(k\\d+) /'], keys: 8 },
  { name: 'keys64', args: ['--no-learn', '--key-by', '/^(k\\d+) /'], keys: 64 },
  { name: 'learnkeys8', args: ['--learn', 'always', '--key-by', '/^(k\\d+) /'], keys: 8 },
  { name: 'learnkeys8b', args: ['--learn', 'always', '--segments-per-step', '8', '--key-by', '/^(k\\d+) /'], keys: 8 },
];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

/** The log's lines, dealt to `keys` keys by a prefix when keys > 0. */
function input(keys: number): { text: string; lines: number } {
  const lines = readFileSync(LOG, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const dealt = keys > 0 ? lines.map((l, i) => `k${i % keys} ${l}`) : lines;
  return { text: `${dealt.join('\n')}\n`, lines: dealt.length };
}

const TIME = '/usr/bin/time';
const CPU_MARK = 'bench-cpu-seconds';

/** Wall and CPU seconds of one `stream --stdin` run, and the lines it wrote. */
function runOnce(c: Case, text: string): { seconds: number; cpu: number; lines: number; learned: number } {
  const command = [process.execPath, join(ROOT, 'bin', 'infiniformer'), 'stream', '--stdin', ...c.args];
  const timed = existsSync(TIME) ? [TIME, '-f', `${CPU_MARK} %U %S`, ...command] : command;
  const t0 = performance.now();
  const r = spawnSync(timed[0]!, timed.slice(1), { input: text, maxBuffer: 1 << 30, encoding: 'utf8', env: { ...process.env, ...c.env } });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`stream ${c.args.join(' ')} exited ${String(r.status)}: ${r.stderr.slice(-2000)}`);
  const out = r.stdout.split('\n').filter((l) => l.startsWith('{"key"'));
  const lines = out.length;
  // Segments learned by the end (keep-up and partial chunks make it vary with timing).
  const learned = lines === 0 ? 0 : Number((JSON.parse(out[lines - 1]!) as { learned?: number }).learned ?? 0);
  const mark = new RegExp(`${CPU_MARK} ([\\d.]+) ([\\d.]+)`).exec(r.stderr);
  return { seconds, cpu: mark === null ? Number.NaN : Number(mark[1]) + Number(mark[2]), lines, learned };
}

export async function run(): Promise<void> {
  const cases = ALL.filter((c) => CASES.has(c.name));
  console.log(`log ${LOG}; rounds ${ROUNDS}; node ${process.version}`);
  let startup = 0;
  let startupCpu = 0;
  for (const c of cases) {
    const { text } = input(c.keys);
    const times: number[] = [];
    const cpus: number[] = [];
    let lines = 0;
    let learned = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const r = runOnce(c, text);
      times.push(r.seconds);
      cpus.push(r.cpu);
      lines = r.lines;
      learned = r.learned;
    }
    const s = median(times);
    const cpu = median(cpus);
    if (c.name === 'startup') {
      startup = s;
      startupCpu = cpu;
      console.log(`startup   ${s.toFixed(2)} s, CPU ${cpu.toFixed(2)} s (--max-lines 1)  load ${load()}`);
      continue;
    }
    const kb = Buffer.byteLength(text) / 1024;
    const net = startup > 0 && s > startup ? ` | ${(lines / (s - startup)).toFixed(1)} lines/s, ${(kb / (s - startup)).toFixed(1)} KB/s without start-up` : '';
    const perCpu = Number.isFinite(cpu) ? ` | CPU ${cpu.toFixed(2)} s: ${(lines / (cpu - startupCpu)).toFixed(1)} lines per CPU-second without start-up` : '';
    const learnt = learned > 0 ? `  ${learned} segments learned` : '';
    console.log(`${c.name.padEnd(10)} ${s.toFixed(2)} s  ${lines} lines  ${(lines / s).toFixed(1)} lines/s${net}${perCpu}${learnt}  load ${load()}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run();
