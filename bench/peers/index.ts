/**
 * `npm run bench -- peers [--quick] [--setup] [--no-torch] [--rounds=N] [--threads=N]`:
 * this library (tfjs native and wasm) against the same ∞-former written in PyTorch
 * (bench/peers/peer.py, checked to compute the same function on the library's weights) and a
 * same-width full-attention transformer (tfjs and PyTorch) over contexts of 1k to 64k tokens.
 * Every workload runs on every contender back to back, in an order that alternates between
 * rounds; the figures are medians over rounds. Prints the tables and writes them to
 * docs/performance.md (a --quick smoke run writes bench/out/performance-quick.md instead).
 *
 * --setup: only install PyTorch into .cache/peers/venv (done automatically on first use).
 * --no-torch: skip the PyTorch columns. --threads=N: one PyTorch column with N threads (default:
 * two columns, 1 thread and the core count, which tfjs-node uses). Python or the install
 * missing: the PyTorch columns are skipped, and the output says why.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_CONFIG, InfiniFormer, initBackend, saveModel, setLogLevel } from '../../src/index.js';
import { median } from './contender.js';
import type { Contender } from './contender.js';
import { LibraryContender, randomTokens } from './library.js';
import { CACHE, TORCH_VERSION, ensureTorch } from './setup.js';
import { TorchPeer } from './torchPeer.js';
import { markdown } from './report.js';
import type { Results } from './report.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function options(argv: readonly string[]): { quick: boolean; setup: boolean; torch: boolean; rounds: number; threads: number[] } {
  const value = (name: string): number | undefined => {
    const a = argv.find((x) => x.startsWith(`--${name}=`));
    return a === undefined ? undefined : Number(a.split('=')[1]);
  };
  const quick = argv.includes('--quick');
  const threads = value('threads');
  return { quick, setup: argv.includes('--setup'), torch: !argv.includes('--no-torch'), rounds: value('rounds') ?? (quick ? 1 : 3), threads: threads !== undefined ? [threads] : [...new Set([1, cpus().length])] };
}

const loadAverage = (): string => loadavg().map((x) => x.toFixed(2)).join(', ');

/** Saves the library's model and its logits on three fixed segments, for the peer to reproduce. */
async function writeReference(dir: string): Promise<{ tokens: number[]; reference: string }> {
  await tf.setBackend('tensorflow');
  const model = InfiniFormer.create({}, { seed: 1 });
  const L = model.config.segmentLength;
  await saveModel(model, dir);
  const tokens = randomTokens(3 * L, 9);
  const state = model.createState(0);
  const parts: Float32Array[] = [];
  for (let s = 0; s < 3; s++) {
    const logits = model.run([state], [tokens.subarray(s * L, (s + 1) * L)]);
    parts.push(logits.dataSync() as Float32Array);
    logits.dispose();
  }
  state.dispose();
  model.dispose();
  const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((o, p) => (all.set(p, o), o + p.length), 0);
  const reference = join(dir, 'reference-logits.f32');
  writeFileSync(reference, Buffer.from(all.buffer));
  return { tokens: [...tokens], reference };
}

/**
 * The PyTorch contenders: one worker per thread count (1, and the core count: on a loaded
 * machine OpenMP's spinning threads make 2 threads far slower than 1), each checked against
 * the library's logits first. None when PyTorch is unavailable.
 */
async function startTorch(opts: ReturnType<typeof options>, results: Results): Promise<TorchPeer[]> {
  if (!opts.torch) {
    results.torchNote = 'PyTorch column skipped (--no-torch).';
    return [];
  }
  const setup = ensureTorch((line) => console.log(line));
  if (!setup.ok) {
    results.torchNote = `PyTorch column skipped: ${setup.reason}.`;
    console.log(results.torchNote);
    return [];
  }
  const dir = join(CACHE, 'model');
  const { tokens, reference } = await writeReference(dir);
  const peers: TorchPeer[] = [];
  for (const threads of opts.threads) {
    try {
      const peer = await TorchPeer.start(setup.python, dir, threads);
      const a = await peer.check(reference, tokens);
      results.torchInfo = `PyTorch ${peer.info.torch} (Python ${peer.info.python})`;
      const worst = results.agreement;
      results.agreement = worst === undefined ? a : { segmentMaxDiff: Math.max(worst.segmentMaxDiff, a.segmentMaxDiff), tokenMaxDiff: Math.max(worst.tokenMaxDiff, a.tokenMaxDiff), maxAbs: a.maxAbs };
      console.log(`${peer.name}: logits against the library's on 3 segments: max |diff| ${a.segmentMaxDiff.toExponential(2)} (segment mode), ${a.tokenMaxDiff.toExponential(2)} (token mode); max |logit| ${a.maxAbs.toFixed(2)}`);
      peers.push(peer);
    } catch (error) {
      results.torchNote = `PyTorch (${threads} threads) skipped: ${(error as Error).message.split('\n')[0]}`;
      console.log(results.torchNote);
    }
  }
  return peers;
}

/**
 * Runs `measure` on each contender back to back (order alternating with the round), storing what
 * it returns. A contender that fails is reported (in the output and the doc) and the run goes on.
 */
async function interleaved<T>(
  results: Results,
  contenders: Contender[],
  round: number,
  what: string,
  measure: (c: Contender) => Promise<T>,
  store: (c: Contender, v: T) => void,
): Promise<void> {
  const order = round % 2 === 0 ? contenders : [...contenders].reverse();
  for (const c of order) {
    try {
      await c.activate();
      store(c, await measure(c));
    } catch (error) {
      const line = `${c.name}, ${what}, round ${round + 1}: failed: ${(error as Error).message.split('\n')[0]}`;
      console.log(line);
      results.failures.push(line);
    }
  }
}

type Counts = Record<'matmulReps' | 'seg1' | 'seg8' | 'tokens' | 'trainSteps' | 'sweepSegments' | 'fullReps', number>;

/** One round of the ∞-former's workloads and the matmul peak, each on every contender in turn. */
async function mainRound(results: Results, contenders: Contender[], r: number, n: Counts): Promise<void> {
  const m = (c: Contender): Results['main'][string] => results.main[c.name]!;
  await interleaved(results, contenders, r, 'matmul', (c) => c.matmul(1024, n.matmulReps), (c, ms) => m(c).matmul.push(ms));
  await interleaved(results, contenders, r, 'segment mode 1 stream', (c) => c.segment(1, n.seg1), (c, ms) => m(c).seg1.push(ms));
  await interleaved(results, contenders, r, 'segment mode 8 streams', (c) => c.segment(8, n.seg8), (c, ms) => m(c).seg8.push(ms));
  await interleaved(results, contenders, r, 'token mode', (c) => c.token(n.tokens), (c, ms) => m(c).token.push(ms));
  await interleaved(results, contenders, r, 'training', (c) => c.train(4, n.trainSteps), (c, ms) => m(c).train.push(ms));
}

/**
 * The context sweep: each contender keeps one ∞-former stream for the whole sweep (each on its
 * own backend), advanced through the contexts in turn; at each context, every round times a few
 * of its segments and the full-attention model at that context, contender after contender.
 * Each figure is stored as soon as it is measured, so a failure at 64k keeps the smaller contexts.
 */
async function sweep(results: Results, contenders: Contender[], rounds: number, contexts: number[], n: Counts): Promise<void> {
  const L = results.config.segmentLength;
  for (const c of contenders) {
    await c.activate();
    await c.sweepStart();
  }
  for (const context of contexts) {
    for (let r = 0; r < rounds; r++) {
      await interleaved(
        results,
        contenders,
        r,
        `context ${context}`,
        async (c) => {
          const inf = await c.sweep(context, n.sweepSegments);
          const full = await c.fullAttention(context, L, n.fullReps);
          const s = (results.sweep[`${c.name}@${context}`] ??= { context, contender: c.name, inf: [], full: [], infRss: [], fullRss: [] });
          s.inf.push(inf.ms);
          s.full.push(full.ms);
          s.infRss.push(inf.rssMiB);
          s.fullRss.push(full.rssMiB);
          console.log(`  ${c.name} at ${context} tokens, round ${r + 1}: ∞-former ${((median(inf.ms) / L) * 1000).toFixed(0)} µs/token, full attention ${((median(full.ms) / L) * 1000).toFixed(0)} µs/token`);
        },
        () => undefined,
      );
    }
  }
  for (const c of contenders) {
    await c.activate();
    await c.sweepEnd();
  }
}

export async function run(): Promise<void> {
  const started = performance.now();
  const opts = options(process.argv.slice(2));
  setLogLevel('warn');
  if (opts.setup) {
    const s = ensureTorch((line) => console.log(line));
    console.log(s.ok ? `PyTorch ready: ${s.python}` : `PyTorch not installed: ${s.reason}`);
    return;
  }
  const results: Results = {
    date: new Date().toISOString(),
    machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, tfjs ${tf.version.tfjs}`,
    command: `npm run bench -- peers${opts.quick ? ' --quick' : ''}${opts.rounds !== (opts.quick ? 1 : 3) ? ` --rounds=${opts.rounds}` : ''}`,
    loadBefore: loadAverage(),
    loadAfter: '',
    rounds: opts.rounds,
    cores: cpus().length,
    minutes: 0,
    contenders: [],
    main: {},
    sweep: {},
    failures: [],
    config: DEFAULT_CONFIG,
    torchVersion: TORCH_VERSION,
  };
  console.log(`load average before: ${results.loadBefore}`);
  await initBackend({ backend: 'wasm' });
  await initBackend({ backend: 'tensorflow' });
  const contenders: Contender[] = [new LibraryContender('tensorflow'), new LibraryContender('wasm')];
  contenders.push(...(await startTorch(opts, results)));
  results.contenders = contenders.map((c) => c.name);
  const q = opts.quick;
  const n: Counts = { matmulReps: q ? 2 : 5, seg1: q ? 3 : 10, seg8: q ? 2 : 4, tokens: q ? 40 : 300, trainSteps: q ? 2 : 4, sweepSegments: q ? 2 : 4, fullReps: q ? 1 : 2 };
  const contexts = q ? [1024, 4096] : [1024, 4096, 16384, 65536];
  for (const c of contenders) results.main[c.name] = { matmul: [], seg1: [], seg8: [], token: [], train: [] };
  for (let r = 0; r < opts.rounds; r++) {
    console.log(`round ${r + 1} of ${opts.rounds} (load ${loadAverage()})`);
    await mainRound(results, contenders, r, n);
  }
  console.log(`context sweep (load ${loadAverage()})`);
  await sweep(results, contenders, opts.rounds, contexts, n);
  for (const c of contenders) await c.close();
  results.loadAfter = loadAverage();
  results.minutes = (performance.now() - started) / 60_000;
  console.log(`load average after: ${results.loadAfter}`);
  const text = markdown(results);
  console.log(`\n${text}`);
  const file = q ? join(ROOT, 'bench', 'out', 'performance-quick.md') : join(ROOT, 'docs', 'performance.md');
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, text);
  // The raw times too (gitignored), to check a figure or render the tables anew.
  const raw = join(ROOT, 'bench', 'out', `peers-results${q ? '-quick' : ''}.json`);
  mkdirSync(join(raw, '..'), { recursive: true });
  writeFileSync(raw, JSON.stringify(results));
  console.log(`written to ${file.slice(ROOT.length)} (raw times: ${raw.slice(ROOT.length)})`);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
