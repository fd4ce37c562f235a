/**
 * `npm run data:gcc`: real machine-written logs for training and evaluation (DESIGN §10).
 *
 * Gets Debian's `gcc-12-test-results` package (and `gcc-12-base`, which holds the copyright file
 * the test-results package's doc directory links to) with `apt-get download`, unpacks them with
 * `dpkg -x`, decompresses `gcc.log.xz` (the GCC 12 C test-suite log of a Debian build, ~306 MB,
 * ~1.2 M lines) with `xz`, and cuts two files of whole lines:
 *
 *   heldout.log   a contiguous block of `--held-out-kb` KB (default 1024) starting at line
 *                 `--held-out-line` (default 400001);
 *   train.log     `--train-mb` MB (default 16) in `--train-blocks` blocks (default 64) of
 *                 contiguous lines, spread evenly over the log's first test variation (`Running
 *                 target unix`, lines 1 to 608,587) and never within `--margin` lines (default
 *                 20,000) of the held-out block. The second variation (`unix/-fstack-protector`)
 *                 re-runs the same tests, so its lines would nearly duplicate the held-out
 *                 block's: no training line comes from it.
 *
 * Everything goes to `~/.cache/infiniformer/data/gcc-12-test-results/` (or
 * `$INFINIFORMER_DATA_DIR/gcc-12-test-results/`), never into the repository, with a
 * `manifest.json` giving line ranges, sizes and SHA-256s. `--slice <file>` also writes the first
 * `--slice-kb` KB (default 190) of whole lines of heldout.log to `<file>` (how the repository's
 * `data/gcc-12-test-results/` slice was made).
 *
 * Works as root or as any user: `apt-get download` only needs the package lists (run
 * `apt-get update` as root once if the package is not found) and a writable directory. On a
 * machine without apt, download the two .deb files elsewhere and pass `--deb <dir>`.
 */
import { spawnSync } from 'node:child_process';
import { fetchPackage, unpack } from '../bin/cli/registryData.js';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, copyFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const PACKAGE = 'gcc-12-test-results';
export const BASE_PACKAGE = 'gcc-12-base';
/** The Debian version fetched (Debian 12 "bookworm"); `--deb` takes any version. */
export const VERSION = '12.2.0-14+deb12u1';
const LOG_IN_PACKAGE = 'usr/share/doc/gcc-12-base/test/gcc.log.xz';
const COPYRIGHT_IN_PACKAGE = 'usr/share/doc/gcc-12-base/copyright';

const USAGE = `Usage: npm run data:gcc -- [options]

Downloads Debian's ${PACKAGE} with apt-get, extracts gcc.log and cuts train.log and
heldout.log (whole lines) into the data cache.

Options:
  --out <dir>            data directory (default $INFINIFORMER_DATA_DIR or ~/.cache/infiniformer/data,
                         the files go to <dir>/${PACKAGE}/)
  --train-mb <n>         size of train.log in MB (default 16)
  --train-blocks <n>     contiguous blocks it is made of, spread over the first test variation
                         (default 64)
  --margin <n>           lines around the held-out block that no training block touches
                         (default 20000)
  --held-out-line <n>    first line (1-based) of heldout.log (default 400001)
  --held-out-kb <n>      size of heldout.log in KB (default 1024)
  --slice <file>         also write the first --slice-kb KB of heldout.log (whole lines) to <file>
  --slice-kb <n>         size of that slice in KB (default 190)
  --deb <dir>            use the .deb files in <dir> instead of running apt-get download
  --force                redo every step even if cached
  -h, --help             this text
`;

/** Where the data cache lives. */
export function dataDir(base = process.env['INFINIFORMER_DATA_DIR'] ?? join(homedir(), '.cache', 'infiniformer', 'data')): string {
  return join(base, PACKAGE);
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** A `<pkg>_*.deb` in `dir` (any version), for `--deb`. */
function findDeb(dir: string, pkg: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  const name = readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  return name === undefined ? undefined : join(dir, name);
}

/** Line-by-line copy of a range of whole lines; returns what was written. */
export interface CutResult {
  file: string;
  firstLine: number;
  lastLine: number;
  lines: number;
  bytes: number;
}

/**
 * Copies whole lines of `source`, starting at line `firstLine` (1-based), to `target` until the
 * next line would take it past `maxBytes` (at least one line is written). Lines end at `\n`
 * only and are copied byte for byte (the log's `\r\n` and `\r\r\n` endings stay as they are).
 */
export async function cutLines(source: string, target: string, firstLine: number, maxBytes: number): Promise<CutResult> {
  const out = createWriteStream(target);
  const write = async (b: Uint8Array): Promise<void> => {
    if (!out.write(b)) await new Promise<void>((r) => out.once('drain', () => r()));
  };
  let line = 1;
  let bytes = 0;
  let lines = 0;
  let pending: Uint8Array[] = [];
  let pendingLength = 0;
  let done = false;
  for await (const chunk of createReadStream(source, { highWaterMark: 1 << 20 })) {
    const b = chunk as Buffer;
    let pos = 0;
    while (pos < b.length && !done) {
      const nl = b.indexOf(10, pos);
      const end = nl === -1 ? b.length : nl + 1;
      if (line >= firstLine) {
        pending.push(b.subarray(pos, end));
        pendingLength += end - pos;
        if (nl !== -1) {
          if (lines > 0 && bytes + pendingLength > maxBytes) done = true;
          else {
            for (const p of pending) await write(p);
            bytes += pendingLength;
            lines += 1;
          }
          pending = [];
          pendingLength = 0;
        }
      }
      if (nl !== -1) line += 1;
      pos = end;
    }
    if (done) break;
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  if (lines === 0) throw new Error(`${source} has fewer than ${firstLine} whole lines`);
  return { file: target, firstLine, lastLine: firstLine + lines - 1, lines, bytes };
}

/** Line start offsets of `bytes` (line i, 0-based, is [starts[i], starts[i + 1])); whole lines only. */
export function lineStarts(bytes: Uint8Array): Float64Array {
  let n = 0;
  for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, i + 1)) n += 1;
  const starts = new Float64Array(n + 1);
  let k = 1;
  for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, i + 1)) starts[k++] = i + 1;
  return starts;
}

/** What {@link cutTrainBlocks} wrote. */
export interface TrainCut {
  file: string;
  /** Lines (1-based, inclusive) of the variation the blocks were drawn from. */
  range: [number, number];
  blocks: { firstLine: number; lastLine: number; bytes: number }[];
  lines: number;
  bytes: number;
}

/**
 * Writes `blocks` blocks of whole lines, about `bytes / blocks` bytes each, spread evenly over
 * the first test variation of a DejaGnu log (from line 1 to the line before the second
 * `Running target ` line, or the end), skipping any line in `exclude` (1-based, inclusive).
 */
export function cutTrainBlocks(log: Uint8Array, target: string, o: { bytes: number; blocks: number; exclude: [number, number] }): TrainCut {
  const starts = lineStarts(log);
  const lineCount = starts.length - 1;
  const marker = new TextEncoder().encode('Running target ');
  const targets: number[] = [];
  for (let i = 0; i < lineCount && targets.length < 2; i++) {
    const at = starts[i]!;
    let match = true;
    for (let j = 0; j < marker.length && match; j++) match = log[at + j] === marker[j];
    if (match) targets.push(i + 1);
  }
  const last = targets.length >= 2 ? targets[1]! - 1 : lineCount;
  const [ex0, ex1] = o.exclude;
  // The allowed lines, as 1-based inclusive ranges.
  const candidates: [number, number][] = [
    [1, Math.min(last, ex0 - 1)],
    [Math.max(1, ex1 + 1), last],
  ];
  const allowed = candidates.filter((r) => r[1] >= r[0]);
  if (allowed.length === 0) throw new Error('no lines left for training outside the excluded range');
  const allowedCount = allowed.reduce((n, [a, b]) => n + b - a + 1, 0);
  const per = Math.floor(o.bytes / o.blocks);
  const chunks: Uint8Array[] = [];
  const blocks: TrainCut['blocks'] = [];
  let total = 0;
  let lines = 0;
  for (let k = 0; k < o.blocks; k++) {
    // The k-th block starts k/blocks of the way through the allowed lines, and stays inside its range.
    let offset = Math.floor((k * allowedCount) / o.blocks);
    let range = allowed[0]!;
    for (const r of allowed) {
      if (offset < r[1] - r[0] + 1) {
        range = r;
        break;
      }
      offset -= r[1] - r[0] + 1;
    }
    const first = range[0] + offset;
    let end = first;
    while (end <= range[1] && starts[end]! - starts[first - 1]! <= per) end += 1;
    const lastLine = Math.max(first, end - 1);
    const from = starts[first - 1]!;
    const to = starts[lastLine]!;
    if (blocks.length > 0 && first <= blocks[blocks.length - 1]!.lastLine) throw new Error('training blocks overlap: ask for fewer --train-blocks or fewer --train-mb');
    chunks.push(log.subarray(from, to));
    blocks.push({ firstLine: first, lastLine, bytes: to - from });
    total += to - from;
    lines += lastLine - first + 1;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  writeFileSync(target, out);
  return { file: target, range: [1, last], blocks, lines, bytes: total };
}

async function countLines(file: string): Promise<{ lines: number; bytes: number }> {
  let lines = 0;
  for await (const chunk of createReadStream(file)) {
    const b = chunk as Buffer;
    for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) lines += 1;
  }
  return { lines, bytes: statSync(file).size };
}

export interface FetchOptions {
  out?: string;
  trainMb?: number;
  trainBlocks?: number;
  margin?: number;
  heldOutLine?: number;
  heldOutKb?: number;
  slice?: string;
  sliceKb?: number;
  deb?: string;
  force?: boolean;
}

/** Runs every step; returns the manifest written next to the files. */
export async function fetchGccData(o: FetchOptions = {}): Promise<Record<string, unknown>> {
  const dir = dataDir(o.out);
  const debDir = o.deb ?? join(dir, 'deb');
  const extracted = join(dir, 'extracted');
  const log = (m: string): void => void process.stderr.write(`[data] ${m}\n`);
  if (o.force === true) rmSync(extracted, { recursive: true, force: true });
  const debs = [PACKAGE, BASE_PACKAGE].map((name) => {
    if (o.deb === undefined) {
      log(`fetching ${name} ${VERSION} (apt-get download, cached in ${debDir})`);
      return fetchPackage({ registry: 'debian', name, version: VERSION }, debDir);
    }
    const f = findDeb(o.deb, name);
    if (f === undefined) throw new Error(`no ${name}_*.deb in ${o.deb}`);
    return f;
  });
  const [testRoot, baseRoot] = debs.map((deb, i) => unpack(deb, join(extracted, i === 0 ? PACKAGE : BASE_PACKAGE)));
  const logXz = join(testRoot!, LOG_IN_PACKAGE);
  const gccLog = join(dir, 'gcc.log');
  if (o.force === true || !existsSync(gccLog)) {
    log(`xz -dc gcc.log.xz > ${gccLog}`);
    const r = spawnSync('sh', ['-c', 'xz -dc "$1" > "$2.tmp" && mv "$2.tmp" "$2"', 'sh', logXz, gccLog], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) throw new Error(`xz failed to decompress ${logXz}`);
  }
  copyFileSync(join(baseRoot!, COPYRIGHT_IN_PACKAGE), join(dir, 'copyright'));
  const whole = await countLines(gccLog);
  log(`gcc.log: ${whole.lines} lines, ${whole.bytes} bytes`);
  const heldOutLine = o.heldOutLine ?? 400_001;
  const heldOut = await cutLines(gccLog, join(dir, 'heldout.log'), heldOutLine, Math.round((o.heldOutKb ?? 1024) * 1000));
  const train = cutTrainBlocks(new Uint8Array(readFileSync(gccLog)), join(dir, 'train.log'), {
    bytes: Math.round((o.trainMb ?? 16) * 1e6),
    blocks: o.trainBlocks ?? 64,
    exclude: [heldOut.firstLine - (o.margin ?? 20_000), heldOut.lastLine + (o.margin ?? 20_000)],
  });
  log(`train.log: ${train.blocks.length} blocks of lines ${train.blocks[0]!.firstLine}..${train.blocks[train.blocks.length - 1]!.lastLine} of variation 1 (lines ${train.range[0]}..${train.range[1]}), ${train.lines} lines, ${train.bytes} bytes`);
  log(`heldout.log: lines ${heldOut.firstLine}..${heldOut.lastLine} (${heldOut.lines} lines, ${heldOut.bytes} bytes)`);
  const version = /_([^_]+)_[^_]+\.deb$/.exec(debs[0]!)?.[1] ?? 'unknown';
  const manifest: Record<string, unknown> = {
    package: PACKAGE,
    version,
    deb: { file: debs[0], sha256: sha256(debs[0]!) },
    source: `${LOG_IN_PACKAGE} (decompressed)`,
    gccLog: { file: gccLog, ...whole },
    train: { ...train, blocks: train.blocks },
    heldOut,
  };
  if (o.slice !== undefined) {
    mkdirSync(dirname(resolve(o.slice)), { recursive: true });
    const slice = await cutLines(join(dir, 'heldout.log'), resolve(o.slice), 1, Math.round((o.sliceKb ?? 190) * 1000));
    // Line numbers in gcc.log, not in heldout.log.
    manifest['slice'] = { ...slice, firstLine: heldOut.firstLine, lastLine: heldOut.firstLine + slice.lines - 1, sha256: sha256(slice.file) };
    log(`slice: ${slice.file} (${slice.lines} lines, ${slice.bytes} bytes; gcc.log lines ${heldOut.firstLine}..${heldOut.firstLine + slice.lines - 1})`);
  }
  writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

function positive(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`--${name} must be a positive number, got ${JSON.stringify(v)}`);
  return n;
}

function nonNegativeInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`--${name} must be an integer >= 0, got ${JSON.stringify(v)}`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string' },
        'train-mb': { type: 'string' },
        'train-blocks': { type: 'string' },
        margin: { type: 'string' },
        'held-out-line': { type: 'string' },
        'held-out-kb': { type: 'string' },
        slice: { type: 'string' },
        'slice-kb': { type: 'string' },
        deb: { type: 'string' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
    if (values.help === true) {
      process.stdout.write(USAGE);
      return 0;
    }
    const manifest = await fetchGccData({
      out: values.out,
      trainMb: positive('train-mb', values['train-mb']),
      trainBlocks: positive('train-blocks', values['train-blocks']),
      margin: nonNegativeInt('margin', values.margin),
      heldOutLine: positive('held-out-line', values['held-out-line']),
      heldOutKb: positive('held-out-kb', values['held-out-kb']),
      slice: values.slice,
      sliceKb: positive('slice-kb', values['slice-kb']),
      deb: values.deb,
      force: values.force,
    });
    console.log(JSON.stringify(manifest, null, 2));
    return 0;
  } catch (error) {
    const usage = error instanceof RangeError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS') === true;
    console.error(`error: ${(error as Error).message}`);
    if (usage) console.error('see --help');
    return usage ? 2 : 1;
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
