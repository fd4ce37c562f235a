// The baselines' figures against the real programs run independently by a shell on the same file,
// and a PATH without the programs gives rows that say "not installed".
import test from 'ava';
import { execSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, constants as zc, gzipSync } from 'node:zlib';
import { compressorBaselines, findProgram } from '../../bin/cli/baselines.js';
import type { BaselineResult } from '../../bin/cli/baselines.js';
import { orderNCodeLength } from '../../src/baselines/orderN.js';
import { BadInputError } from '../../src/errors.js';
import { GCC_SLICE } from './helpers.js';

const PATH = process.env['PATH'] ?? '';
const has = (p: string): boolean => findProgram(p, PATH) !== undefined;
/** The byte count of a shell pipeline's output. */
const wc = (pipeline: string): number => Number(execSync(`${pipeline} | wc -c`, { shell: '/bin/sh' }).toString().trim());

let rows: BaselineResult[] = [];
let bytes = new Uint8Array(0);
test.before(async () => {
  bytes = new Uint8Array(await readFile(GCC_SLICE));
  rows = await compressorBaselines(bytes);
});
const get = (name: string): BaselineResult => {
  const r = rows.find((x) => x.name === name);
  if (r === undefined) throw new Error(`no row ${name}`);
  return r;
};

test('rows in a fixed order; bits per byte = 8 x compressed bytes / input bytes', (t) => {
  t.deepEqual(
    rows.map((r) => r.name),
    ['gzip -9', 'brotli -11', 'xz -9e', 'zstd -19', 'PPMd (7z)', 'order-2 model'],
  );
  for (const r of rows.filter((x) => x.skipped === undefined)) t.is(r.bitsPerByte, (8 * r.compressedBytes!) / bytes.length, r.name);
  t.log(rows.map((r) => `${r.name}: ${r.bitsPerByte?.toFixed(4) ?? r.skipped}`).join(', '));
});

test('gzip -9 (zlib) is within the header bytes of GNU gzip -9 on the same bytes, and gunzips to them', (t) => {
  t.true(has('gzip'), 'gzip is needed for this check');
  const gnu = wc(`gzip -9nc < '${GCC_SLICE}'`);
  const ours = get('gzip -9').compressedBytes!;
  // GNU gzip has its own deflate (not zlib): the streams differ by a few bytes, both ways.
  t.true(Math.abs(ours - gnu) <= 18, `zlib ${ours} vs gzip ${gnu}`);
  // Our stream is a valid gzip file of the input: GNU gzip decompresses it.
  const packed = gzipSync(bytes, { level: 9 });
  t.is(packed.length, ours);
  t.deepEqual(new Uint8Array(execSync('gzip -dc', { input: packed, maxBuffer: 1 << 24 })), bytes);
});

test('brotli -11: the size of quality 11 with the stated window, which decompresses to the input; the order-2 row is orderNCodeLength', (t) => {
  // No brotli program here: compress with the settings the row states and check the round trip.
  t.regex(get('brotli -11').command, /quality 11, window 2\^18, size hint/);
  const packed = brotliCompressSync(bytes, { params: { [zc.BROTLI_PARAM_QUALITY]: 11, [zc.BROTLI_PARAM_LGWIN]: 18, [zc.BROTLI_PARAM_SIZE_HINT]: bytes.length } });
  t.is(get('brotli -11').compressedBytes, packed.length);
  t.deepEqual(new Uint8Array(brotliDecompressSync(packed)), bytes);
  t.true(get('brotli -11').bitsPerByte! < get('gzip -9').bitsPerByte!);
  t.is(get('order-2 model').bitsPerByte, orderNCodeLength(bytes, { order: 2 }).bitsPerByte);
});

test('xz -9e, zstd -19 and PPMd (7z) equal the programs\' output on the same bytes exactly, or say "not installed"', async (t) => {
  // .ci/run installs the three (Debian: xz-utils, zstd, p7zip-full); on a machine without one,
  // its row must say so (checked here, and logged), never carry a number.
  const missing = (['xz', 'zstd', '7z'] as const).filter((p) => !has(p));
  if (missing.length > 0) t.log(`not installed here: ${missing.join(', ')} (their rows are checked to say so)`);
  if (has('xz')) t.is(get('xz -9e').compressedBytes, wc(`xz -9e -c < '${GCC_SLICE}'`));
  else t.regex(get('xz -9e').skipped ?? '', /not installed/);
  if (has('zstd')) t.is(get('zstd -19').compressedBytes, wc(`zstd -19 -q -c '${GCC_SLICE}'`));
  else t.regex(get('zstd -19').skipped ?? '', /not installed/);
  const ppmd = get('PPMd (7z)');
  if (!has('7z')) {
    t.regex(ppmd.skipped ?? '', /not installed/);
    return;
  }
  t.regex(ppmd.command, /^7z a -t7z -m0=PPMd -mx=9 .*headers included/);
  // 7z's archive of the same bytes under the same name (the header holds it), made by the shell.
  const dir = await mkdtemp(join(tmpdir(), 'infiniformer-7z-'));
  execSync(`cp '${GCC_SLICE}' ${dir}/data && cd ${dir} && 7z a -t7z -m0=PPMd -mx=9 x.7z data > /dev/null`);
  t.is(ppmd.compressedBytes, wc(`cat ${dir}/x.7z`));
  await rm(dir, { recursive: true, force: true });
});

test('a PATH without the programs gives "not installed" rows, never silent gaps; empty input is a typed error', async (t) => {
  const empty = await mkdtemp(join(tmpdir(), 'infiniformer-empty-path-'));
  try {
    const r = await compressorBaselines(bytes.subarray(0, 5000), { path: empty });
    t.deepEqual(
      r.map((x) => [x.name, x.skipped]),
      [
        ['gzip -9', undefined],
        ['brotli -11', undefined],
        ['xz -9e', 'not installed (no xz on PATH)'],
        ['zstd -19', 'not installed (no zstd on PATH)'],
        ['PPMd (7z)', 'not installed (no 7z, 7za, 7zz or 7zr on PATH)'],
        ['order-2 model', undefined],
      ],
    );
    await t.throwsAsync(compressorBaselines(new Uint8Array(0)), { instanceOf: BadInputError });
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});
