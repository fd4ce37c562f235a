/**
 * Shared state (the mixer's 34 MB of statistics, the learner's weights) in the compacted
 * changelog as a base snapshot plus a log of deltas, so a checkpoint writes what changed since
 * the last durable one (~0.7 MB for the mixer at the default 5 s) instead of the whole.
 *
 * Records on changelog partition 0, all under `<name>/` (`<w>` is the writing process's id):
 *   `<name>/<w>/base/<slot>/<i>`  a whole snapshot in one of two slots, chunked
 *   `<name>/<w>/delta/<seq>/<i>`  the delta from the previous state of the chain, chunked
 *   `<name>/manifest/<w>`          written last: base slot, the deltas in order (each with the
 *                                  epoch its chunks carry), length and SHA-1 of the result
 * A write only ever goes to keys the last acknowledged manifest does not reference (the other
 * base slot, a delta sequence number not in its chain), so a kill at any moment leaves that
 * manifest and everything it references intact, and compaction (which keeps the newest record
 * per key) never removes them. A write whose sends failed may still have landed: until a later
 * write is acknowledged, only deltas with fresh sequence numbers are written (never a base slot
 * a landed manifest could reference). A restore takes the newest manifest whose chain is whole
 * and whose result has the recorded SHA-1, else a whole snapshot of the older two-slot format.
 *
 * Each process writes under its own id (members of one group each keep their own mixer; a
 * manifest never mixes two writers' records). Once its first manifest is acknowledged it
 * tombstones the records it restored from (they would otherwise stay in the compacted topic).
 */
import { randomBytes } from 'node:crypto';
import type { Message } from 'kafkajs';
import { CorruptStateError } from '../../src/errors.js';
import { applyDelta, encodeDelta } from './byteDelta.js';
import { changelogMessage, type RestoredState } from './changelog.js';
import { SHARED_STATE_TOPIC, assembleSharedState, assembleSlot, digestOf, sharedStateMessages } from './changelogStore.js';

/** Rebase once the chain's deltas add up to more than this share of the whole (bounds restore reads at 2x). */
const REBASE_SHARE = 1;
/** Rebase after this many deltas (bounds the deltas a restore applies). */
const MAX_DELTAS = 64;

interface Manifest {
  writer: string;
  length: number;
  digest: string;
  base: { slot: number; epoch: number };
  deltas: Array<{ seq: number; epoch: number; bytes: number }>;
}

/** Shared state as restored: its bytes, the newest epoch under its name, the records to tombstone once superseded. */
export interface RestoredSharedState {
  bytes: Uint8Array;
  epoch: number;
  stale: string[];
}

/** What one checkpoint writes of one shared state. */
export interface SharedStateWrite {
  /** The base or delta chunks: sent first. */
  messages: Message[];
  /** The manifest (and tombstones of records it supersedes): sent once `messages` landed, with the checkpoint's key states. */
  seal: Message[];
  /** 'base' (whole), 'delta', or 'none' (unchanged). */
  kind: 'base' | 'delta' | 'none';
  /** Bytes of the base or delta (not counting the manifest). */
  bytes: number;
  durable(): void;
}

const manifestPrefix = (name: string): string => `${name}/manifest/`;

function parseManifest(bytes: Uint8Array): Manifest | undefined {
  try {
    const m = JSON.parse(new TextDecoder().decode(bytes)) as Manifest;
    return typeof m.writer === 'string' && Number.isSafeInteger(m.length) && typeof m.digest === 'string' && Array.isArray(m.deltas) ? m : undefined;
  } catch {
    return undefined;
  }
}

/** The bytes a manifest describes, or undefined when a record it needs is missing or the result is not what it recorded. */
function replay(states: ReadonlyMap<string, RestoredState>, name: string, m: Manifest): Uint8Array | undefined {
  const base = assembleSlot(states, `${name}/${m.writer}/base`, m.base.slot);
  if (base === undefined || base.epoch !== m.base.epoch) return undefined;
  let bytes = base.bytes;
  for (const d of m.deltas) {
    const delta = assembleSlot(states, `${name}/${m.writer}/delta`, d.seq);
    if (delta === undefined || delta.epoch !== d.epoch) return undefined;
    bytes = applyDelta(bytes, delta.bytes, name, true); // the base's bytes are this function's own
  }
  return bytes.length === m.length && digestOf(bytes) === m.digest ? bytes : undefined;
}

export class SharedStateLog {
  /** The last acknowledged write: what a restore finds at least. */
  private certain: { manifest: Manifest; bytes: Uint8Array; digest: string } | undefined;
  /** The write sent and not yet acknowledged. */
  private attempt: { manifest: Manifest; bytes: Uint8Array; digest: string } | undefined;
  /** A write failed after it may have landed: no base slot is safe to overwrite until one is acknowledged. */
  private uncertain = false;
  private nextSeq = 0;
  private bases = 0;
  private stale: string[];
  readonly writer = `w${randomBytes(4).toString('hex')}`;

  constructor(
    readonly name: string,
    restored?: RestoredSharedState,
  ) {
    this.stale = restored?.stale ?? [];
  }

  /** The newest whole state under `name` among restored records (partition 0 of the changelog). */
  static restore(states: ReadonlyMap<string, RestoredState>, name: string, warn: (message: string) => void): RestoredSharedState | undefined {
    const prefix = manifestPrefix(name);
    const stale: string[] = [];
    let epoch = 0;
    const manifests: Array<{ m: Manifest; epoch: number }> = [];
    for (const [key, s] of states) {
      if (!key.startsWith(`${name}/`) || s.bytes === null) continue;
      stale.push(key);
      epoch = Math.max(epoch, s.covered);
      const m = key.startsWith(prefix) ? parseManifest(s.bytes) : undefined;
      if (m !== undefined) manifests.push({ m, epoch: s.covered });
    }
    manifests.sort((a, b) => b.epoch - a.epoch);
    for (const { m } of manifests) {
      try {
        const bytes = replay(states, name, m);
        if (bytes !== undefined) return { bytes, epoch, stale };
      } catch (error) {
        if (!(error instanceof CorruptStateError)) throw error;
      }
      warn(`${name}: the manifest of writer ${m.writer} is not whole (a concurrent member replaced its records?); trying an older one`);
    }
    const legacy = assembleSharedState(states, name);
    return legacy === undefined ? undefined : { bytes: legacy.bytes, epoch, stale };
  }

  /** The records writing `bytes` (a base or a delta, then the manifest) with chunks of `epoch`, newer than any written before. */
  write(bytes: Uint8Array, epoch: number): SharedStateWrite {
    if (this.attempt !== undefined) this.uncertain = true; // never acknowledged: it may or may not have landed
    this.attempt = undefined;
    const digest = digestOf(bytes);
    const certain = this.certain;
    const cleanup = certain !== undefined && this.stale.length > 0;
    if (certain !== undefined && !this.uncertain && certain.digest === digest && !cleanup) return { messages: [], seal: [], kind: 'none', bytes: 0, durable: () => undefined };
    let messages: Message[];
    let manifest: Manifest;
    const delta = certain === undefined ? undefined : encodeDelta(certain.bytes, bytes);
    const chain = certain?.manifest.deltas ?? [];
    const chainBytes = chain.reduce((n, d) => n + d.bytes, 0);
    const rebase = certain === undefined || (!this.uncertain && (delta!.length > bytes.length / 2 || chainBytes + delta!.length > bytes.length * REBASE_SHARE || chain.length >= MAX_DELTAS));
    if (rebase) {
      // The slot the acknowledged manifest does not use; with none acknowledged, alternate.
      const slot = certain === undefined ? this.bases % 2 : 1 - certain.manifest.base.slot;
      this.bases++;
      messages = sharedStateMessages(`${this.name}/${this.writer}/base`, slot, bytes, epoch);
      manifest = { writer: this.writer, length: bytes.length, digest, base: { slot, epoch }, deltas: [] };
    } else {
      const seq = this.nextSeq++;
      messages = sharedStateMessages(`${this.name}/${this.writer}/delta`, seq, delta!, epoch);
      manifest = { ...certain!.manifest, length: bytes.length, digest, deltas: [...chain, { seq, epoch, bytes: delta!.length }] };
    }
    const written = rebase ? bytes.length : delta!.length;
    const seal = [changelogMessage(SHARED_STATE_TOPIC, 0, `${manifestPrefix(this.name)}${this.writer}`, new TextEncoder().encode(JSON.stringify(manifest)), epoch)];
    const stale = cleanup ? this.stale : [];
    for (const key of stale) seal.push(changelogMessage(SHARED_STATE_TOPIC, 0, key, null, epoch));
    const attempt = { manifest, bytes, digest };
    this.attempt = attempt;
    return {
      messages,
      seal,
      kind: rebase ? 'base' : 'delta',
      bytes: written,
      durable: () => {
        if (this.attempt !== attempt) return;
        this.attempt = undefined;
        this.certain = attempt;
        this.uncertain = false;
        // After a base, the old chain is unreferenced: its sequence numbers are free again.
        if (rebase) this.nextSeq = 0;
        if (cleanup) this.stale = this.stale.filter((k) => !stale.includes(k));
      },
    };
  }
}
