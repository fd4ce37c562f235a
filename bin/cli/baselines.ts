/**
 * The strongest simple baselines on the bytes a model is scored on: general-purpose compressors
 * (compressed size in bits / original bytes, container headers included, as a user who runs the
 * program on the file would measure) and an adaptive order-2 byte model (ideal code length).
 * A compressor that is not installed gives a row that says so, never a silent gap.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, join } from 'node:path';
import { brotliCompressSync, constants as z, gzipSync } from 'node:zlib';
import { orderNCodeLength } from '../../src/baselines/orderN.js';
import { BadInputError } from '../../src/errors.js';

export interface BaselineResult {
  /** Short name, e.g. `xz -9e`. */
  name: string;
  /** What was run, e.g. the command line. */
  command: string;
  /** Compressed size in bytes (for the order-2 model: the ideal code length / 8). */
  compressedBytes?: number;
  bitsPerByte?: number;
  /** Why there is no figure, e.g. `not installed (no xz on PATH)`. */
  skipped?: string;
}

export interface BaselineOptions {
  /** The PATH searched for xz, zstd and 7z. Default: process.env.PATH. */
  path?: string;
  /** Include the order-2 model (default true). */
  orderN?: boolean;
}

/** The first executable `name` in the directories of `path`. */
export function findProgram(name: string, path: string): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

const row = (name: string, command: string, size: number, n: number): BaselineResult => ({ name, command, compressedBytes: size, bitsPerByte: (8 * size) / n });

/** Brotli's window: the smallest covering the input (10..24 bits); beyond 16 MiB the non-standard large window (up to 30). */
function brotliWindow(n: number): { lgwin: number; large: boolean } {
  const bits = Math.max(10, Math.ceil(Math.log2(Math.max(n, 1) + 16)));
  return bits <= 24 ? { lgwin: bits, large: false } : { lgwin: Math.min(bits, 30), large: true };
}

function zlibRows(bytes: Uint8Array): BaselineResult[] {
  const n = bytes.length;
  const gz = gzipSync(bytes, { level: 9 });
  const { lgwin, large } = brotliWindow(n);
  const br = brotliCompressSync(bytes, {
    params: {
      [z.BROTLI_PARAM_QUALITY]: 11,
      [z.BROTLI_PARAM_SIZE_HINT]: n,
      [z.BROTLI_PARAM_LGWIN]: lgwin,
      [z.BROTLI_PARAM_LARGE_WINDOW]: large ? 1 : 0,
    },
  });
  return [
    row('gzip -9', 'node:zlib gzipSync, level 9 (gzip header and trailer included)', gz.length, n),
    row('brotli -11', `node:zlib brotliCompressSync, quality 11, window 2^${lgwin}${large ? ' (large-window mode)' : ''}, size hint`, br.length, n),
  ];
}

/**
 * Runs `program args`; its output size from stdout (`out` undefined) or from the file `out`.
 * The row shows the command with the temporary paths as <file> and <archive>.
 */
function runProgram(name: string, program: string, args: string[], n: number, out?: string): BaselineResult {
  const shown = args.map((a) => (a === out ? '<archive>' : a.startsWith(tmpdir()) ? '<file>' : a));
  const command = `${basename(program)} ${shown.join(' ')}`;
  const r = spawnSync(program, args, { maxBuffer: 64 * n + (1 << 20), stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error !== undefined || r.status !== 0) {
    const why = r.error?.message ?? `exit status ${String(r.status)}: ${r.stderr.toString().trim().split('\n').slice(-1)[0] ?? ''}`;
    return { name, command, skipped: `failed (${why})` };
  }
  return row(name, command, out === undefined ? r.stdout.length : statSync(out).size, n);
}

function programRows(bytes: Uint8Array, path: string): BaselineResult[] {
  const n = bytes.length;
  const dir = mkdtempSync(join(tmpdir(), 'infiniformer-baselines-'));
  try {
    // Programs read a file, as a user would run them (zstd records the size it then knows).
    const input = join(dir, 'data');
    writeFileSync(input, bytes);
    const rows: BaselineResult[] = [];
    const xz = findProgram('xz', path);
    // -T1: one block, as xz 5.4's default; later versions default to threads (blocks) on big inputs.
    rows.push(xz === undefined ? missing('xz -9e', 'xz') : runProgram('xz -9e', xz, ['-9e', '-T1', '-c', input], n));
    const zstd = findProgram('zstd', path);
    rows.push(zstd === undefined ? missing('zstd -19', 'zstd') : runProgram('zstd -19', zstd, ['-19', '-q', '-c', input], n));
    // 7zr (the reduced p7zip) may lack PPMd; it is tried last and fails loudly if so.
    const sevenName = ['7z', '7za', '7zz', '7zr'].find((p) => findProgram(p, path) !== undefined);
    if (sevenName === undefined) rows.push(missing('PPMd (7z)', '7z, 7za, 7zz or 7zr'));
    else {
      const archive = join(dir, 'data.7z');
      const r = runProgram('PPMd (7z)', findProgram(sevenName, path)!, ['a', '-t7z', '-m0=PPMd', '-mx=9', '-bd', '-bso0', '-bsp0', archive, input], n, archive);
      rows.push({ ...r, command: `${r.command} (archive size, 7z headers included)` });
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function missing(name: string, program: string): BaselineResult {
  return { name, command: program, skipped: `not installed (no ${program} on PATH)` };
}

/**
 * Every baseline on `bytes`, in a fixed order: gzip, brotli, xz, zstd, PPMd, order-2 model.
 * Empty input is a BadInputError (no bits per byte to give).
 */
export async function compressorBaselines(bytes: Uint8Array, options: BaselineOptions = {}): Promise<BaselineResult[]> {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new BadInputError('bytes', 'expected a non-empty Uint8Array');
  const rows = [...zlibRows(bytes), ...programRows(bytes, options.path ?? process.env['PATH'] ?? '')];
  if (options.orderN ?? true) {
    const m = orderNCodeLength(bytes, { order: 2 });
    rows.push({
      name: 'order-2 model',
      command: 'adaptive order-2 byte model from nothing (src/baselines/orderN.ts), ideal code length',
      compressedBytes: m.bits / 8,
      bitsPerByte: m.bitsPerByte,
    });
  }
  return rows;
}
