// scripts/fetch-data.ts cuts whole lines byte for byte: lines end at \n only, \r stays.
import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { cutLines, cutTrainBlocks, dataDir } from '../../scripts/fetch-data.js';

let root = '';
test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'infiniformer-fetch-'));
});
test.after.always(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
});

// Line endings as in the gcc log: \n, \r\n, \r\r\n, a lone \r inside a line, and no final newline.
const LINES = ['PASS: a.c (test for excess errors)\n', 'spawn [open ...]\r\n', 'output\r\r\n', 'progress 10%\rprogress 20%\n', 'PASS: b.c execution test\n', 'tail without newline'];

test('cutLines copies whole \\n-terminated lines from a 1-based line, byte for byte, within a byte budget', async (t) => {
  const source = join(root, 'log');
  await writeFile(source, LINES.join(''));
  const size = (from: number, to: number): number => Buffer.byteLength(LINES.slice(from, to).join(''));
  // From line 2, a budget that fits lines 2..4 exactly.
  const a = await cutLines(source, join(root, 'a'), 2, size(1, 4));
  t.deepEqual({ ...a, file: '' }, { file: '', firstLine: 2, lastLine: 4, lines: 3, bytes: size(1, 4) });
  t.is(await readFile(join(root, 'a'), 'utf8'), LINES.slice(1, 4).join(''));
  // One byte less: line 4 no longer fits.
  const b = await cutLines(source, join(root, 'b'), 2, size(1, 4) - 1);
  t.is(b.lastLine, 3);
  t.is(await readFile(join(root, 'b'), 'utf8'), LINES.slice(1, 3).join(''));
  // A budget past the end: every whole line, never the unterminated tail.
  const c = await cutLines(source, join(root, 'c'), 1, 1e6);
  t.is(c.lines, 5);
  t.is(await readFile(join(root, 'c'), 'utf8'), LINES.slice(0, 5).join(''));
  // A budget smaller than the first line still gives that line.
  const d = await cutLines(source, join(root, 'd'), 5, 3);
  t.is(d.bytes, Buffer.byteLength(LINES[4]!));
  t.is(await readFile(join(root, 'd'), 'utf8'), LINES[4]!);
  await t.throwsAsync(cutLines(source, join(root, 'e'), 6, 100), { message: /fewer than 6 whole lines/ });
});

test('cutLines finds lines across read chunks (a 3 MB file, 1 MB chunks)', async (t) => {
  const source = join(root, 'big');
  const lines = Array.from({ length: 60_000 }, (_, i) => `line ${i + 1} ${'x'.repeat(i % 97)}${i % 3 === 0 ? '\r' : ''}\n`);
  await writeFile(source, lines.join(''));
  const r = await cutLines(source, join(root, 'big-cut'), 40_001, 200_000);
  const expected: string[] = [];
  let bytes = 0;
  for (const l of lines.slice(40_000)) {
    if (bytes + l.length > 200_000) break;
    expected.push(l);
    bytes += l.length;
  }
  t.is(r.lines, expected.length);
  t.is(r.bytes, bytes);
  t.is(await readFile(join(root, 'big-cut'), 'utf8'), expected.join(''));
});

test('the data cache: ~/.cache/infiniformer/data by default, INFINIFORMER_DATA_DIR overrides it', (t) => {
  const saved = process.env['INFINIFORMER_DATA_DIR'];
  try {
    delete process.env['INFINIFORMER_DATA_DIR'];
    t.is(dataDir(), join(homedir(), '.cache', 'infiniformer', 'data', 'gcc-12-test-results'));
    process.env['INFINIFORMER_DATA_DIR'] = '/somewhere/data';
    t.is(dataDir(), '/somewhere/data/gcc-12-test-results');
  } finally {
    if (saved === undefined) delete process.env['INFINIFORMER_DATA_DIR'];
    else process.env['INFINIFORMER_DATA_DIR'] = saved;
  }
});

test('cutTrainBlocks: whole-line blocks spread over the first test variation, none in the excluded range', async (t) => {
  // Lines 1..1000 are variation 1, 1001..2000 variation 2 (a second "Running target" line).
  const lines = Array.from({ length: 2000 }, (_, i) => {
    const n = i + 1;
    if (n === 3) return 'Running target unix\n';
    if (n === 1001) return 'Running target unix/-fstack-protector\n';
    return `line ${String(n).padStart(4, '0')}${n % 5 === 0 ? '\r' : ''}\n`;
  });
  const log = new TextEncoder().encode(lines.join(''));
  const target = join(root, 'train-blocks');
  const r = cutTrainBlocks(log, target, { bytes: 8 * 60, blocks: 8, exclude: [401, 600] });
  t.deepEqual(r.range, [1, 1000]);
  t.is(r.blocks.length, 8);
  // 800 allowed lines (1..400, 601..1000): block k starts 100 k lines into them.
  t.deepEqual(r.blocks.map((b) => b.firstLine), [1, 101, 201, 301, 601, 701, 801, 901]);
  const written = await readFile(target, 'utf8');
  const expected = r.blocks.map((b) => lines.slice(b.firstLine - 1, b.lastLine).join('')).join('');
  t.is(written, expected);
  t.is(r.bytes, Buffer.byteLength(expected));
  for (const b of r.blocks) {
    t.true(b.bytes <= 60 && b.bytes + Buffer.byteLength(lines[b.lastLine]!) > 60, `block ${b.firstLine}..${b.lastLine}: ${b.bytes} bytes`);
    t.true(b.lastLine < 401 || b.firstLine > 600);
    t.true(b.lastLine <= 1000);
  }
});
