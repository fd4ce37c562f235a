/**
 * Throughput and memory against the number of distinct keys: a model through `infiniteFormer`
 * (token mode, batched) with a {@link SpillingKeyStore} (LMDB) owning every key
 * beyond BENCH_KEYS_LIVE (default 1,000) live states. Each key gets BENCH_KEYS_RECORDS records
 * (default 2) of BENCH_KEYS_TOKENS bytes (default 1) of gcc log text, in passes over all keys, so
 * past the live bound every key is evicted into LMDB and restored from it on its next pass.
 * Tiny records per key keep the 10^5-key run under a few minutes on a shared CPU. The model is
 * BENCH_KEYS_MODEL: `small` (default: random weights, width 32, 2 layers, L 32, N 32, vocab 260;
 * the store and the scheduling are what is measured, not the model) or `default`
 * (models/default: ~250 tokens/s on a loaded 2-core machine with WASM, too slow for 10^5 keys
 * in minutes). Records are fed
 * in batches of 2,000, the next batch once the model has caught up (so queues stay small and
 * the RSS is the store's and the model's, not a backlog's).
 *
 * Each key count runs in its own process (peak RSS sampled every 50 ms, so runs do not inherit
 * each other's heap). Printed per count: tokens/s, evictions and restores, peak RSS, the LMDB
 * directory's size and the mean bytes per stored key.
 *
 * `npm run bench -- keys` (counts from BENCH_KEYS_COUNTS, default 1,100,10000,100000), or
 * `npx tsx bench/keys.ts one <keys>` for one count.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Subject, type Subscription } from 'rxjs';
import { InfiniFormer, SpillingKeyStore, initBackend, loadModel, setLogLevel } from '../src/index.js';
import { infiniteFormer } from '../operators/infiniteFormer.js';
import type { TokenInput } from '../operators/types.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LIVE = Number(process.env['BENCH_KEYS_LIVE'] ?? 1000);
const RECORDS = Number(process.env['BENCH_KEYS_RECORDS'] ?? 2);
const TOKENS = Number(process.env['BENCH_KEYS_TOKENS'] ?? 1);
const COUNTS = (process.env['BENCH_KEYS_COUNTS'] ?? '1,100,10000,100000').split(',').map(Number);
const BATCH = 2000;
const MODEL = process.env['BENCH_KEYS_MODEL'] ?? 'small';
/** A cap on each run's V8 heap (MiB), to show what the runs need; 0: Node's default. */
const HEAP_MB = Number(process.env['BENCH_KEYS_HEAP_MB'] ?? 0);

interface Result {
  keys: number;
  tokens: number;
  seconds: number;
  evictions: number;
  restores: number;
  peakRssMiB: number;
  /** Peak anonymous RSS (heap, WASM memory, tensors): what grows if anything is unbounded. */
  peakAnonMiB: number;
  /** Peak file-backed RSS: LMDB's memory-mapped pages (and the binaries), reclaimable by the kernel. */
  peakFileMiB: number;
  /** V8 heap in use after a full GC at the end (live objects only). */
  heapAfterGcMiB: number;
  diskMiB: number;
  bytesPerKey: number;
  backend: string;
}

/** RssAnon and RssFile (bytes) from /proc/self/status; zeros where there is none. */
function rssParts(): { anon: number; file: number } {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { anon: kb('RssAnon'), file: kb('RssFile') };
  } catch {
    return { anon: 0, file: 0 };
  }
}

const dirBytes = (dir: string): number => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
const waitFor = async (done: () => boolean): Promise<void> => {
  while (!done()) await new Promise((r) => setTimeout(r, 1));
};

async function one(keys: number): Promise<Result> {
  setLogLevel('warn');
  const backend = await initBackend({ workload: 'segments' });
  const model =
    MODEL === 'default'
      ? await loadModel(join(ROOT, 'models', 'default'))
      : InfiniFormer.create({ vocabSize: 260, width: 32, numHeads: 2, numLayers: 2, ffnWidth: 64, segmentLength: 32, numBasis: 32, numSamples: 32, basisWidths: [0.05, 0.1] }, { seed: 1 });
  const text = readFileSync(join(ROOT, 'data', 'gcc-12-test-results', 'gcc-heldout.txt'));
  const dir = mkdtempSync(join(tmpdir(), 'bench-keys-'));
  const store = new SpillingKeyStore(dir, { maxHotBytes: 16 * 1024 * 1024 });
  // One key alone would be a handful of tokens: give few keys more records (same total order of work as 1,000 keys).
  const records = Math.max(RECORDS, Math.ceil((RECORDS * 1000) / keys));
  const lm = infiniteFormer(model, { mode: 'token', maxKeys: LIVE, store });
  const input = new Subject<TokenInput>();
  let outputs = 0;
  let failed: unknown;
  const sub: Subscription = input.pipe(lm).subscribe({ next: () => outputs++, error: (e: unknown) => (failed = e) });
  const peak = { rss: 0, anon: 0, file: 0 };
  const sample = (): void => {
    const p = rssParts();
    peak.rss = Math.max(peak.rss, process.memoryUsage.rss());
    peak.anon = Math.max(peak.anon, p.anon);
    peak.file = Math.max(peak.file, p.file);
  };
  sample();
  const sampler = setInterval(sample, 50);
  const t0 = performance.now();
  let sent = 0;
  for (let r = 0; r < records; r++) {
    for (let k = 0; k < keys; k++) {
      const at = ((k * 7919 + r * 131) * TOKENS) % (text.length - TOKENS);
      input.next({ key: `key-${k}`, tokens: [...text.subarray(at, at + TOKENS)] });
      sent += TOKENS;
      if (sent % (BATCH * TOKENS) === 0) await waitFor(() => failed !== undefined || lm.stats().pending === 0);
    }
  }
  await waitFor(() => failed !== undefined || lm.stats().pending === 0);
  const seconds = (performance.now() - t0) / 1000;
  if (failed !== undefined) throw failed;
  const stats = lm.stats();
  await lm.checkpoint();
  clearInterval(sampler);
  sub.unsubscribe();
  const stored = [...store.keys()].length;
  let bytes = 0;
  for (const k of store.keys()) bytes += store.get(k)!.length;
  await store.close();
  const disk = dirBytes(dir);
  rmSync(dir, { recursive: true, force: true });
  model.dispose();
  (globalThis as { gc?: () => void }).gc?.();
  const heapAfterGc = process.memoryUsage().heapUsed;
  if (outputs !== sent) throw new Error(`${outputs} outputs for ${sent} tokens`);
  return { keys, tokens: sent, seconds, evictions: stats.evictions, restores: stats.restores, peakRssMiB: peak.rss / 2 ** 20, peakAnonMiB: peak.anon / 2 ** 20, peakFileMiB: peak.file / 2 ** 20, heapAfterGcMiB: heapAfterGc / 2 ** 20, diskMiB: disk / 2 ** 20, bytesPerKey: Math.round(bytes / stored), backend };
}

export async function run(): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  console.log(`model ${MODEL}, live states ${LIVE}, ${RECORDS} records of ${TOKENS} bytes per key (more for few keys), token mode; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`V8 heap cap ${HEAP_MB > 0 ? `${HEAP_MB} MiB` : 'Node default'}`);
  console.log('| keys | tokens | s | tokens/s | evictions | restores | peak RSS MiB | of it anon | of it file | heap after GC MiB | LMDB MiB | bytes/key |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  let backend = '?';
  for (const keys of COUNTS) {
    const r = spawnSync(process.execPath, ['--expose-gc', ...(HEAP_MB > 0 ? [`--max-old-space-size=${HEAP_MB}`] : []), '--import', 'tsx', self, 'one', String(keys)], { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`keys=${keys}: ${r.stderr}`);
    const x = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Result;
    backend = x.backend;
    console.log(`| ${x.keys} | ${x.tokens} | ${x.seconds.toFixed(1)} | ${Math.round(x.tokens / x.seconds)} | ${x.evictions} | ${x.restores} | ${x.peakRssMiB.toFixed(0)} | ${x.peakAnonMiB.toFixed(0)} | ${x.peakFileMiB.toFixed(0)} | ${x.heapAfterGcMiB.toFixed(0)} | ${x.diskMiB.toFixed(0)} | ${x.bytesPerKey} |`);
  }
  console.log(`backend ${backend}; load average at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

if (process.argv[2] === 'one') {
  const r = await one(Number(process.argv[3]));
  process.stdout.write(`${JSON.stringify(r)}\n`);
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await run();
}
