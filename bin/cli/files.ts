/**
 * Input files named on the command line: plain paths or globs (`*`, `?`, `[...]`, `**`), for
 * shells that pass a quoted pattern through. Node 20 has no `fs.glob`, so a small matcher here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { UsageError } from './command.js';

const GLOB = /[*?[]/;

/** A glob (relative to its first wildcard segment) as an anchored regular expression. */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*' && pattern[i + 1] === '*') {
      // `**/` matches any number of directories (none included); a trailing `**` anything.
      if (pattern[i + 2] === '/') {
        re += '(?:.*/)?';
        i += 2;
      } else {
        re += '.*';
        i += 1;
      }
    } else if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close === -1) re += '\\[';
      else {
        const body = pattern.slice(i + 1, close).replace(/^!/, '^').replace(/\\/g, '\\\\');
        re += `[${body}]`;
        i = close;
      }
    } else re += ch.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Expands one path or glob to the files it names, sorted. Globs matching nothing give []. */
export function expandOne(pattern: string): string[] {
  const posix = pattern.split(sep).join('/');
  if (!GLOB.test(posix)) return [pattern];
  const parts = posix.split('/');
  const first = parts.findIndex((p) => GLOB.test(p));
  const base = parts.slice(0, first).join('/') || (posix.startsWith('/') ? '/' : '.');
  const rest = parts.slice(first).join('/');
  const re = globToRegExp(rest);
  let entries: string[];
  try {
    entries = readdirSync(base, { recursive: rest.includes('**') || parts.length - first > 1 }) as string[];
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const rel of entries) {
    const relPosix = rel.split(sep).join('/');
    if (!re.test(relPosix)) continue;
    const full = base === '.' && !posix.startsWith('./') ? relPosix : join(base, rel);
    try {
      if (statSync(full).isFile()) out.push(full);
    } catch {
      // vanished or unreadable: not a match
    }
  }
  return out.sort();
}

/**
 * Every file named by `patterns` (in order, duplicates dropped). A pattern that names nothing,
 * or a path that is not a readable file, is a {@link UsageError} naming `option`.
 */
export function expandFiles(option: string, patterns: readonly string[]): string[] {
  if (patterns.length === 0) throw new UsageError(`--${option} is required (one or more files or globs)`);
  const files: string[] = [];
  for (const p of patterns) {
    const found = expandOne(p);
    if (found.length === 0) throw new UsageError(`--${option}: ${p} matches no file`);
    for (const f of found) {
      let isFile = false;
      try {
        isFile = statSync(f).isFile();
      } catch {
        throw new UsageError(`--${option}: ${f} does not exist`);
      }
      if (!isFile) throw new UsageError(`--${option}: ${f} is not a file`);
      if (!files.includes(f)) files.push(f);
    }
  }
  return files;
}

/** What was read: the bytes of every file, each ending with a newline, and per-file sizes. */
export interface ReadData {
  bytes: Uint8Array;
  files: { path: string; bytes: number; lines: number }[];
}

/** Counts `\n` in a byte range. */
export function countLines(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let n = 0;
  for (let i = start; i < end; i++) if (bytes[i] === 10) n += 1;
  return n;
}

/** Reads and concatenates files (a newline is added after a file that lacks one). */
export function readData(files: readonly string[]): ReadData {
  const parts: Uint8Array[] = [];
  const meta: ReadData['files'] = [];
  for (const path of files) {
    const b = new Uint8Array(readFileSync(path));
    parts.push(b);
    if (b.length > 0 && b[b.length - 1] !== 10) parts.push(Uint8Array.of(10));
    meta.push({ path, bytes: b.length, lines: countLines(b) + (b.length > 0 && b[b.length - 1] !== 10 ? 1 : 0) });
  }
  const total = parts.reduce((n, p) => n + p.length, 0);
  const bytes = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    bytes.set(p, o);
    o += p.length;
  }
  return { bytes, files: meta };
}

/**
 * Splits bytes into a training part and an evaluation tail of about `fraction` of the bytes,
 * cut after a newline so both parts hold whole lines. Returns the cut offset.
 */
export function splitAtLine(bytes: Uint8Array, fraction: number): number {
  if (fraction <= 0) return bytes.length;
  const target = Math.floor(bytes.length * (1 - fraction));
  for (let i = target; i < bytes.length; i++) if (bytes[i - 1] === 10) return i;
  return bytes.length;
}

/** The first `max` bytes of `bytes` (all of them when `max` <= 0), cut after a newline when there is one. */
export function headLines(bytes: Uint8Array, max: number): Uint8Array {
  if (max <= 0 || bytes.length <= max) return bytes;
  for (let i = max; i > 0; i--) if (bytes[i - 1] === 10) return bytes.subarray(0, i);
  return bytes.subarray(0, max);
}
