// data/quality/: the committed slices match what README.md says of them (bytes, lines, SHA-256),
// each is whole lines within 64 KiB, and the labelled set's labels line up with its log. Also the
// byte-exact line cutting of bin/cli/registryData.ts that made them. No network.
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { countLines, headWholeLines, keepLines, wholeLines } from '../../bin/cli/registryData.js';

const DIR = join(import.meta.dirname, '..', '..', 'data', 'quality');
const README = readFileSync(join(DIR, 'README.md'), 'utf8');
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const newlines = (b: Uint8Array): number => b.reduce((n, x) => n + (x === 0x0a ? 1 : 0), 0);

interface Row {
  file: string;
  bytes: number;
  lines: number;
  sha: string;
}

/** The README's table: `| \`name.log\` | ... | bytes | lines | \`sha256\` |`. */
function rows(readme = README): Row[] {
  const out: Row[] = [];
  for (const line of readme.split('\n')) {
    const m = /^\| `([\w-]+\.log)` \|.*\| (\d+) \| (\d+) \| `([0-9a-f]{64})` \|$/.exec(line);
    if (m !== null) out.push({ file: m[1]!, bytes: Number(m[2]), lines: Number(m[3]), sha: m[4]! });
  }
  return out;
}

test('README lists every slice in data/quality, and only those', (t) => {
  const listed = rows().map((r) => r.file).sort();
  const present = readdirSync(DIR).filter((f) => f.endsWith('.log')).sort();
  t.true(listed.length >= 7, `only ${listed.length} rows parsed`);
  t.deepEqual(listed, present);
});

test('data/quality/machine: its README lists every log written on the machine with its bytes, lines and SHA-256; whole lines within 64 KiB', (t) => {
  const dir = join(DIR, 'machine');
  const listed = rows(readFileSync(join(dir, 'README.md'), 'utf8'));
  t.deepEqual(listed.map((r) => r.file).sort(), readdirSync(dir).filter((f) => f.endsWith('.log')).sort());
  t.true(listed.length >= 9, `only ${listed.length} rows parsed`);
  for (const r of listed) {
    const b = readFileSync(join(dir, r.file));
    t.deepEqual([b.length, newlines(b), sha256(b)], [r.bytes, r.lines, r.sha], r.file);
    t.is(b.at(-1), 0x0a, `${r.file} ends with a newline`);
    t.true(b.length <= 65_536, `${r.file}: ${b.length} bytes`);
  }
});

test('each slice has the README bytes, lines and SHA-256, ends with a newline and fits in 64 KiB', (t) => {
  for (const r of rows()) {
    const b = readFileSync(join(DIR, r.file));
    t.is(b.length, r.bytes, r.file);
    t.is(newlines(b), r.lines, r.file);
    t.is(sha256(b), r.sha, r.file);
    t.is(b.at(-1), 0x0a, `${r.file} ends with a newline`);
    t.true(b.length <= 65_536, `${r.file}: ${b.length} bytes`);
    const licence = join(DIR, 'licences', r.file.replace(/\.log$/, '.txt'));
    t.true(existsSync(licence) && statSync(licence).size > 0, `${r.file} has its licence file`);
  }
});

test('the labelled log: README figures, one label row per line, label counts as stated', (t) => {
  const log = readFileSync(join(DIR, 'labelled', 'fail2ban.log'));
  const m = /^([\d,]+) lines \(([\d,]+) bytes, sha256 `([0-9a-f]{64})`\)/m.exec(README);
  t.not(m, null);
  const num = (s: string): number => Number(s.replace(/,/g, ''));
  t.is(newlines(log), num(m![1]!));
  t.is(log.length, num(m![2]!));
  t.is(sha256(log), m![3]!);
  t.is(log.at(-1), 0x0a);

  const [header, ...tsv] = readFileSync(join(DIR, 'labelled', 'fail2ban.labels.tsv'), 'utf8').trimEnd().split('\n');
  t.is(header, 'line\tlabel\tsource');
  t.is(tsv.length, newlines(log));
  const counts: Record<string, number> = {};
  tsv.forEach((row, i) => {
    const [line, label, source] = row.split('\t');
    t.is(Number(line), i + 1);
    t.true(label === 'attack' || label === 'benign' || label === '-', row);
    t.truthy(source);
    counts[label!] = (counts[label!] ?? 0) + 1;
  });
  const stated = (after: RegExp): number => num(new RegExp(`${after.source}[^(]*\\(([\\d,]+)`).exec(README)?.[1] ?? 'NaN');
  t.is(counts['attack'], stated(/`attack` when/));
  t.is(counts['benign'], stated(/`benign` when/));
  t.is(counts['-'], stated(/`-` when/));
  // A known line of fail2ban's sshd test log, labelled attack.
  const lines = log.toString('latin1').split('\n');
  const i = lines.findIndex((l) => l.includes('Failed password for invalid user ROOT from 194.117.26.69 port 50273 ssh2'));
  t.true(i >= 0);
  t.is(tsv[i]!.split('\t')[1], 'attack');
});

const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const str = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

test('headWholeLines keeps whole lines within the limit, byte for byte (\\r and non-UTF-8 bytes stay)', (t) => {
  const text = 'ab\r\nc\xe9d\n\nxyz\n';
  // Lines end after bytes 4, 8, 9 and 13.
  t.is(str(headWholeLines(bytes(text), 13)), text);
  t.is(str(headWholeLines(bytes(text), 100)), text);
  t.is(str(headWholeLines(bytes(text), 12)), 'ab\r\nc\xe9d\n\n');
  t.is(str(headWholeLines(bytes(text), 9)), 'ab\r\nc\xe9d\n\n');
  t.is(str(headWholeLines(bytes(text), 8)), 'ab\r\nc\xe9d\n');
  t.is(str(headWholeLines(bytes(text), 7)), 'ab\r\n');
  t.is(headWholeLines(bytes(text), 3).length, 0);
  t.is(headWholeLines(bytes(text), 0).length, 0);
  // An unterminated tail is never kept, even when it fits.
  t.is(str(headWholeLines(bytes('one\ntwo'), 100)), 'one\n');
  t.is(headWholeLines(bytes('no newline'), 100).length, 0);
  t.throws(() => headWholeLines(bytes(text), -1), { message: /limit/ });
  t.throws(() => headWholeLines(bytes(text), 1.5), { message: /limit/ });
});

test('wholeLines, keepLines and countLines split at \\n only', (t) => {
  const text = '# note\r\nkeep 1\r\n\nkeep\r2\n# x\ntail';
  t.deepEqual(wholeLines(bytes(text)).map(str), ['# note\r\n', 'keep 1\r\n', '\n', 'keep\r2\n', '# x\n']);
  t.is(str(keepLines(bytes(text), (l) => l[0] !== 0x23 && l.length > 1)), 'keep 1\r\nkeep\r2\n');
  t.is(countLines(bytes(text)), 5);
  t.is(countLines(bytes('')), 0);
});
