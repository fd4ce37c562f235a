/**
 * How much of the context mixer's shared state changes between checkpoints, and what the
 * changelog's base + deltas (connectors/kafka/sharedStateLog.ts) write and restore. A mixer
 * codes the lines of BENCH_MIXER_LOG (default: the embedded gcc log) and is snapshotted every
 * BENCH_MIXER_LINES lines (default 250: about 5 s of the main job, the default
 * --commit-interval); each snapshot goes through a SharedStateLog into an in-memory compacted
 * partition. Printed: the whole size, per snapshot the changed bytes, the 4 KiB and 64 KiB pages
 * they touch, the delta written and the time to encode it; then the time to restore the chain.
 *
 * `npm run bench -- mixerDelta` (not in the default set).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Message } from 'kafkajs';
import { ContextMixer } from '../src/mixing/contextMixer.js';
import { CHANGELOG_HEADERS, type RestoredState } from '../connectors/kafka/changelog.js';
import { SharedStateLog } from '../connectors/kafka/sharedStateLog.js';

const DEFAULT_LOG = fileURLToPath(new URL('../data/gcc-12-test-results/gcc-heldout.txt', import.meta.url));

/** Changed bytes of `b` against `a` (same length) and the pages of 2^k bytes they touch. */
function changes(a: Uint8Array, b: Uint8Array): { bytes: number; pages4k: number; pages64k: number } {
  let bytes = 0;
  const p4 = new Set<number>();
  const p64 = new Set<number>();
  for (let i = 0; i < b.length; i++) {
    if (a[i] === b[i]) continue;
    bytes++;
    p4.add(i >> 12);
    p64.add(i >> 16);
  }
  return { bytes, pages4k: p4.size, pages64k: p64.size };
}

export async function run(): Promise<void> {
  const path = process.env.BENCH_MIXER_LOG ?? DEFAULT_LOG;
  const per = Number(process.env.BENCH_MIXER_LINES ?? 250);
  const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean).slice(0, Number(process.env.BENCH_MIXER_MAX_LINES ?? 5000));
  const mixer = new ContextMixer();
  const stream = mixer.createStream();
  const encoder = new TextEncoder();
  const partition = new Map<string, RestoredState>();
  const land = (messages: Message[]) => {
    for (const m of messages) {
      const h = m.headers as Record<string, string>;
      partition.set(h[CHANGELOG_HEADERS.key]!, { bytes: m.value == null ? null : new Uint8Array(m.value as Buffer), covered: Number(h[CHANGELOG_HEADERS.covered]), shadowed: false });
    }
  };
  const log = new SharedStateLog('bench/mixer');
  let previous = mixer.saveState();
  console.log(`${path}: ${lines.length} lines, a snapshot every ${per}; the mixer's state is ${previous.length} bytes`);
  const deltas: number[] = [];
  for (let i = 0; i < lines.length; i++) {
    for (const b of encoder.encode(`${lines[i]}\n`)) mixer.code(stream, b);
    if ((i + 1) % per !== 0) continue;
    const state = mixer.saveState();
    const c = changes(previous, state);
    const started = performance.now();
    const w = log.write(state, i + 1);
    const ms = performance.now() - started;
    land(w.messages);
    w.durable();
    if (w.kind === 'delta') deltas.push(w.bytes);
    console.log(`  line ${i + 1}: ${c.bytes} bytes changed, ${c.pages4k}/${Math.ceil(state.length / 4096)} 4 KiB pages, ${c.pages64k}/${Math.ceil(state.length / 65536)} 64 KiB pages; wrote ${w.kind} ${w.bytes} bytes in ${ms.toFixed(0)} ms`);
    previous = state;
  }
  const mean = deltas.reduce((a, b) => a + b, 0) / Math.max(1, deltas.length);
  const started = performance.now();
  const restored = SharedStateLog.restore(partition, 'bench/mixer', (m) => console.warn(m));
  const restoreMs = performance.now() - started;
  const same = restored !== undefined && Buffer.compare(Buffer.from(restored.bytes), Buffer.from(previous)) === 0;
  console.log(`deltas: ${deltas.length}, mean ${mean.toFixed(0)} bytes (${(previous.length / mean).toFixed(0)}x less than the whole); restore of the chain: ${restoreMs.toFixed(0)} ms, ${same ? 'equal to the last state' : 'NOT EQUAL to the last state'}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run();
