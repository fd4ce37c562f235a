/**
 * A training corpus mixed from several sources of real text (logs, docs, code, ...), so that no
 * single source dominates and every part of the file holds every source: each source is cut into
 * blocks of whole lines (4-16 KB by default), one contiguous run of blocks per source is held out,
 * the training blocks are capped per source, and the blocks of all sources are spread evenly
 * along the output. `infiniformer train` reads its data as `--batch` contiguous streams, so each
 * stream then sees a mix. Every choice comes from seeded generators (one per source, keyed by its
 * name, and one for the order): same inputs and seed, same bytes. Used by `scripts/data/corpus.ts`.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { BadInputError } from '../../src/errors.js';
import { CliError } from './command.js';

const NEWLINE = 0x0a;

/** A seeded generator of uniform numbers in [0, 1) (mulberry32: small, fast, enough for shuffles). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a hash of a string's UTF-16 code units (32 bits). */
function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Fisher-Yates shuffle of `items` in place, driven by `random`. */
export function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/**
 * Cuts `bytes` into consecutive blocks of whole `\n`-terminated lines, [start, end) offsets. Each
 * block aims at a size drawn uniformly from [minBlock, maxBlock] and ends at the last newline
 * within it; a single line longer than that is a block of its own. Only the last block may be
 * shorter than minBlock; an unterminated tail is dropped.
 */
export function splitBlocks(bytes: Uint8Array, random: () => number, minBlock: number, maxBlock: number): [number, number][] {
  if (!Number.isInteger(minBlock) || minBlock < 1 || !Number.isInteger(maxBlock) || maxBlock < minBlock) {
    throw new BadInputError('minBlock/maxBlock', `need integers 1 <= minBlock <= maxBlock, got ${minBlock} and ${maxBlock}`);
  }
  const blocks: [number, number][] = [];
  const last = bytes.lastIndexOf(NEWLINE) + 1;
  let pos = 0;
  while (pos < last) {
    const target = minBlock + Math.floor(random() * (maxBlock - minBlock + 1));
    let end = pos + target >= last ? last : bytes.lastIndexOf(NEWLINE, pos + target - 1) + 1;
    if (end <= pos) end = bytes.indexOf(NEWLINE, pos) + 1;
    blocks.push([pos, end]);
    pos = end;
  }
  return blocks;
}

/** One source to mix: its name and all its text (documents joined, whole lines). */
export interface MixSource {
  name: string;
  bytes: Uint8Array;
}

export interface MixOptions {
  seed: number;
  minBlock: number;
  maxBlock: number;
  /** At most this many training bytes per source. */
  capBytes: number;
  /** Held-out bytes per source: about min(heldOutBytes, heldOutFraction x the source). */
  heldOutBytes: number;
  heldOutFraction: number;
  /** Blocks on each side of the held-out run that go to neither split (default 1). */
  marginBlocks?: number;
}

/** Where a block of the output came from. */
export interface PlacedBlock {
  source: number;
  start: number;
  end: number;
}

export interface SourceTally {
  name: string;
  availableBytes: number;
  blocks: number;
  trainBlocks: number;
  trainBytes: number;
  heldOutBlocks: number;
  heldOutBytes: number;
  /** The held-out run, as [first, last] block indices of the source. */
  heldOutRun: [number, number] | null;
}

export interface MixResult {
  train: Uint8Array;
  heldOut: Uint8Array;
  trainBlocks: PlacedBlock[];
  heldOutBlocks: PlacedBlock[];
  sources: SourceTally[];
}

/** A contiguous run of blocks from a random start holding about `target` bytes, as [first, last]. */
function heldOutRun(blocks: readonly [number, number][], target: number, random: () => number): [number, number] | null {
  if (target <= 0 || blocks.length === 0) return null;
  const start = Math.floor(random() * blocks.length);
  let first = start;
  let last = start - 1;
  let bytes = 0;
  const size = (i: number): number => blocks[i]![1] - blocks[i]![0];
  while (bytes < target && last + 1 < blocks.length) bytes += size(++last);
  while (bytes < target && first > 0) bytes += size(--first);
  return [first, last];
}

/** Training blocks of one source: a seeded random subset of those outside the held-out run (and its margin), at most `cap` bytes, in shuffled order. */
function trainSelection(blocks: readonly [number, number][], run: [number, number] | null, margin: number, cap: number, random: () => number): number[] {
  const order = shuffle(
    blocks.map((_, i) => i),
    random,
  );
  const chosen: number[] = [];
  let bytes = 0;
  for (const i of order) {
    if (run !== null && i >= run[0] - margin && i <= run[1] + margin) continue;
    const size = blocks[i]![1] - blocks[i]![0];
    if (bytes + size > cap) continue;
    chosen.push(i);
    bytes += size;
  }
  return chosen;
}

/**
 * Spreads each source's blocks evenly along the output: the i-th of a source's n blocks gets the
 * key (i + u) / n, u uniform in [0, 1), and blocks are written in key order. Any stretch of the
 * output then holds each source in about its overall share (to within a block or two).
 */
function interleave(perSource: PlacedBlock[][], random: () => number): PlacedBlock[] {
  const keyed: { key: number; block: PlacedBlock }[] = [];
  for (const blocks of perSource) blocks.forEach((block, i) => keyed.push({ key: (i + random()) / blocks.length, block }));
  keyed.sort((a, b) => a.key - b.key || a.block.source - b.block.source);
  return keyed.map((k) => k.block);
}

function concat(sources: readonly MixSource[], blocks: readonly PlacedBlock[]): Uint8Array {
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.end - b.start, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(sources[b.source]!.bytes.subarray(b.start, b.end), at);
    at += b.end - b.start;
  }
  return out;
}

/** Mixes `sources` into a training text and a disjoint held-out text (see the module comment). */
export function mixCorpus(sources: readonly MixSource[], o: MixOptions): MixResult {
  if (!(o.capBytes > 0) || !(o.heldOutBytes >= 0) || !(o.heldOutFraction >= 0 && o.heldOutFraction < 1)) {
    throw new BadInputError('options', `need capBytes > 0, heldOutBytes >= 0 and 0 <= heldOutFraction < 1, got ${o.capBytes}, ${o.heldOutBytes}, ${o.heldOutFraction}`);
  }
  const margin = o.marginBlocks ?? 1;
  const train: PlacedBlock[][] = [];
  const held: PlacedBlock[][] = [];
  const tallies: SourceTally[] = [];
  sources.forEach((s, index) => {
    // One generator per source, keyed by its name: adding a source leaves the others' blocks as they were.
    const random = seededRandom(o.seed ^ nameHash(s.name));
    const blocks = splitBlocks(s.bytes, random, o.minBlock, o.maxBlock);
    const available = blocks.length === 0 ? 0 : blocks[blocks.length - 1]![1];
    const run = heldOutRun(blocks, Math.min(o.heldOutBytes, Math.floor(o.heldOutFraction * available)), random);
    const place = (i: number): PlacedBlock => ({ source: index, start: blocks[i]![0], end: blocks[i]![1] });
    const heldOut = run === null ? [] : blocks.slice(run[0], run[1] + 1).map((_, k) => place(run[0] + k));
    const chosen = trainSelection(blocks, run, margin, o.capBytes, random).map(place);
    train.push(chosen);
    held.push(heldOut);
    const sum = (bs: PlacedBlock[]): number => bs.reduce((n, b) => n + b.end - b.start, 0);
    tallies.push({ name: s.name, availableBytes: available, blocks: blocks.length, trainBlocks: chosen.length, trainBytes: sum(chosen), heldOutBlocks: heldOut.length, heldOutBytes: sum(heldOut), heldOutRun: run });
  });
  const random = seededRandom(o.seed);
  const trainBlocks = interleave(train, random);
  const heldOutBlocks = interleave(held, random);
  return { train: concat(sources, trainBlocks), heldOut: concat(sources, heldOutBlocks), trainBlocks, heldOutBlocks, sources: tallies };
}

/** One file of a source. */
export interface CorpusDocument {
  path: string;
  bytes: Uint8Array;
}

/** Documents joined in path order, each ending with a newline (one is added where missing). */
export function joinDocuments(docs: readonly CorpusDocument[]): Uint8Array {
  const sorted = [...docs].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const parts: Uint8Array[] = [];
  for (const d of sorted) {
    if (d.bytes.length === 0) continue;
    parts.push(d.bytes);
    if (d.bytes[d.bytes.length - 1] !== NEWLINE) parts.push(Uint8Array.of(NEWLINE));
  }
  return Buffer.concat(parts);
}

/** Files under `dir` (recursively, symlinks not followed) whose path relative to `dir` matches `pattern`, sorted. */
export function findFiles(dir: string, pattern: RegExp): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir, { recursive: true }) as string[];
  } catch {
    return [];
  }
  return entries
    .map((e) => e.split(sep).join('/'))
    .filter((rel) => pattern.test(rel) && statSync(join(dir, rel), { throwIfNoEntry: false })?.isFile() === true)
    .sort();
}

/** A file's bytes, decompressed when its name ends in `.gz` (zlib) or `.xz` (the xz program). */
export function readDecompressed(path: string): Buffer {
  if (path.endsWith('.gz')) return gunzipSync(readFileSync(path));
  if (!path.endsWith('.xz')) return readFileSync(path);
  const r = spawnSync('xz', ['-dc', path], { maxBuffer: 2 ** 31 - 1 });
  if (r.error !== undefined || r.status !== 0) throw new CliError(`xz -dc ${path} failed: ${r.error?.message ?? r.stderr.toString().trim()}`);
  return r.stdout;
}

/** `findFiles` + `readDecompressed`, as documents named by their path under `dir`'s `base`. */
export function readDocuments(dir: string, pattern: RegExp, base = dir): CorpusDocument[] {
  return findFiles(dir, pattern).map((rel) => ({ path: relative(base, join(dir, rel)), bytes: readDecompressed(join(dir, rel)) }));
}

/**
 * A man page (roff source, `.gz` or plain) rendered as plain text by groff: UTF-8, 78 columns,
 * no overstriking or escape sequences. Returns null for a `.so` link to another page.
 */
export function renderManPage(path: string): Uint8Array | null {
  const roff = readDecompressed(path);
  if (/^\.so\s/.test(roff.subarray(0, 8).toString('latin1')) && roff.length < 256) return null;
  const r = spawnSync('groff', ['-k', '-t', '-man', '-Tutf8', '-P-cbou', '-rLL=78n', '-rLT=78n'], { input: roff, maxBuffer: 1 << 28 });
  if (r.error !== undefined) throw new CliError(`groff: ${r.error.message} (install groff to render man pages)`);
  if (r.status !== 0) return null;
  return r.stdout;
}

/**
 * Distinct lines of at least `minLength` bytes of `corpus` that also occur, byte for byte, in
 * `other`: a check that an evaluation text did not leak into a corpus.
 */
export function sharedLines(corpus: Uint8Array, other: Uint8Array, minLength = 40): number {
  const seen = new Set<string>();
  const key = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
  const eachLine = (bytes: Uint8Array, f: (line: Uint8Array) => void): void => {
    let start = 0;
    for (let i = bytes.indexOf(NEWLINE); i !== -1; i = bytes.indexOf(NEWLINE, start)) {
      if (i - start >= minLength) f(bytes.subarray(start, i));
      start = i + 1;
    }
  };
  eachLine(other, (l) => seen.add(key(l)));
  const shared = new Set<string>();
  eachLine(corpus, (l) => {
    const k = key(l);
    if (seen.has(k)) shared.add(k);
  });
  return shared.size;
}
