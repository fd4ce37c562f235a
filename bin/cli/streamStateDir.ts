/**
 * `stream --state-dir`: what the main job has learned, on disk, so a restart continues it: the
 * online learner (adapted weights, optimizer moments, counters), the context mixer's shared
 * statistics and every key's mixing context, saved whole and atomically (a new directory renamed
 * over the old one), periodically and at exit, loaded at start when written for the same model;
 * and every key's model state, in a {@link SpillingKeyStore} under `keys-<model>/` (hot keys in
 * RAM, the rest on disk, flushed at each save), so RAM stays bounded however many keys there are.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { crc32 } from '../../src/model/checksum.js';
import type { KeyStateStore } from '../../src/state/keyStateStore.js';
import { SpillingKeyStore } from '../../src/state/spillingKeyStore.js';
import { CliError } from './command.js';

/** What a state directory holds. */
export interface SavedStream {
  /** The learner's bytes (OnlineLearner.saveState), when it learns. */
  learner?: Uint8Array;
  /** The contextMix snapshot, when it mixes. */
  mix?: { mixer: Uint8Array; keys: Map<string, Uint8Array> };
  /** Lines scored over all runs so far. */
  lines: number;
}

const FORMAT = 'infiniformer-stream-state';

/**
 * Reserved key of the key store holding --follow's position: the file offset after the last
 * line the stored key states cover, and the file's first bytes (to recognise it). Written and
 * flushed with the key states, so a crash never leaves states and position apart.
 */
export const FOLLOW_POSITION_KEY = '\u0000follow-position';
const HEAD_BYTES = 64;

/** The stored position of `path` at byte `offset`. */
export function followPosition(path: string, offset: number): Uint8Array {
  const head = Buffer.alloc(Math.min(HEAD_BYTES, offset));
  const fd = openSync(path, 'r');
  try {
    const n = readSync(fd, head, 0, head.length, 0);
    return new TextEncoder().encode(JSON.stringify({ offset, head: head.subarray(0, n).toString('base64') }));
  } finally {
    closeSync(fd);
  }
}

/** The position stored by {@link followPosition}, or undefined. */
export function readFollowPosition(store: KeyStateStore): { offset: number; head: Uint8Array } | undefined {
  const bytes = store.get(FOLLOW_POSITION_KEY);
  if (bytes === undefined) return undefined;
  const p = JSON.parse(new TextDecoder().decode(bytes)) as { offset?: unknown; head?: unknown };
  if (typeof p.offset !== 'number' || typeof p.head !== 'string') throw new CliError('the saved --follow position is malformed');
  return { offset: p.offset, head: new Uint8Array(Buffer.from(p.head, 'base64')) };
}

/** Keys and their bytes as one buffer: count, then (key length, key, bytes length, bytes) each. */
export function packKeys(keys: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const head = new Uint8Array(4);
  new DataView(head.buffer).setUint32(0, keys.size, true);
  parts.push(head);
  for (const [k, v] of keys) {
    const kb = enc.encode(k);
    const lens = new Uint8Array(8);
    new DataView(lens.buffer).setUint32(0, kb.length, true);
    new DataView(lens.buffer).setUint32(4, v.length, true);
    parts.push(lens, kb, v);
  }
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The inverse of {@link packKeys}; a CliError on malformed bytes. */
export function unpackKeys(bytes: Uint8Array, what: string): Map<string, Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder();
  const out = new Map<string, Uint8Array>();
  const fail = (): never => {
    throw new CliError(`${what}: truncated or corrupt`);
  };
  if (bytes.length < 4) fail();
  const n = view.getUint32(0, true);
  let at = 4;
  for (let i = 0; i < n; i++) {
    if (at + 8 > bytes.length) fail();
    const kl = view.getUint32(at, true);
    const vl = view.getUint32(at + 4, true);
    at += 8;
    if (at + kl + vl > bytes.length) fail();
    out.set(dec.decode(bytes.subarray(at, at + kl)), bytes.slice(at + kl, at + kl + vl));
    at += kl + vl;
  }
  return out;
}

/** A fingerprint of a model directory's config and weights (state of another model is not loaded). */
export function modelFingerprint(modelDir: string): string {
  const a = crc32(readFileSync(join(modelDir, 'config.json')));
  const b = crc32(readFileSync(join(modelDir, 'weights.bin')));
  return `${a.toString(16).padStart(8, '0')}${b.toString(16).padStart(8, '0')}`;
}

/** The default state directory of a followed file: under the user's cache, by model and path. */
export function defaultStateDir(fingerprint: string, source: string): string {
  const base = process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache');
  const id = crc32(new TextEncoder().encode(resolve(source))).toString(16).padStart(8, '0');
  return join(base, 'infiniformer', 'state', `${fingerprint}-${id}`);
}

export class StreamStateDir {
  private readonly current: string;

  constructor(
    readonly dir: string,
    private readonly fingerprint: string,
  ) {
    this.current = join(dir, 'current');
  }

  /** The saved state, or undefined when there is none (or it belongs to another model: then it is left alone and a note returned). */
  load(): { saved?: SavedStream; note?: string } {
    const metaFile = join(this.current, 'meta.json');
    if (!existsSync(metaFile)) return {};
    const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as { format?: string; model?: string; lines?: number; files?: string[] };
    if (meta.format !== FORMAT) throw new CliError(`${this.dir}: not a stream state directory`);
    if (meta.model !== this.fingerprint) return { note: `${this.dir} holds the state of another model (${meta.model}); starting fresh, it is overwritten at the next save` };
    const read = (name: string): Uint8Array | undefined => (meta.files?.includes(name) ? new Uint8Array(readFileSync(join(this.current, name))) : undefined);
    const mixer = read('mixer.bin');
    const learner = read('learner.bin');
    const saved: SavedStream = {
      lines: meta.lines ?? 0,
      ...(learner ? { learner } : {}),
      ...(mixer ? { mix: { mixer, keys: unpackKeys(read('mix-keys.bin') ?? new Uint8Array(4), 'mix-keys.bin') } } : {}),
    };
    return { saved };
  }

  /**
   * The store of every key's model state for this model (created when missing). A directory
   * saved before the store existed holds them in `current/model-keys.bin`: they are moved in.
   */
  openKeyStore(options: { maxHotBytes?: number } = {}): SpillingKeyStore {
    const keys = new SpillingKeyStore(join(this.dir, `keys-${this.fingerprint}`), options);
    const legacy = join(this.current, 'model-keys.bin');
    const metaFile = join(this.current, 'meta.json');
    if (existsSync(legacy) && existsSync(metaFile) && (JSON.parse(readFileSync(metaFile, 'utf8')) as { model?: string }).model === this.fingerprint) {
      for (const [k, v] of unpackKeys(new Uint8Array(readFileSync(legacy)), 'model-keys.bin')) if (keys.get(k) === undefined) keys.put(k, v);
    }
    return keys;
  }

  /** Writes `s` as the new current state (all files, then one rename). */
  save(s: SavedStream): void {
    mkdirSync(this.dir, { recursive: true });
    const next = join(this.dir, `next-${process.pid}`);
    rmSync(next, { recursive: true, force: true });
    mkdirSync(next);
    const files: string[] = [];
    if (s.learner) {
      writeFileSync(join(next, 'learner.bin'), s.learner);
      files.push('learner.bin');
    }
    if (s.mix) {
      writeFileSync(join(next, 'mixer.bin'), s.mix.mixer);
      writeFileSync(join(next, 'mix-keys.bin'), packKeys(s.mix.keys));
      files.push('mixer.bin', 'mix-keys.bin');
    }
    writeFileSync(join(next, 'meta.json'), JSON.stringify({ format: FORMAT, model: this.fingerprint, lines: s.lines, files, saved: new Date().toISOString() }));
    const old = join(this.dir, `old-${process.pid}`);
    if (existsSync(this.current)) renameSync(this.current, old);
    renameSync(next, this.current);
    rmSync(old, { recursive: true, force: true });
  }
}
