/**
 * Keyed log streams through the ∞-former with RxJS: a few hosts' log lines arrive interleaved;
 * each host (key) gets its own fixed-size model state; every byte gets a prediction (surprisal,
 * top-3 next bytes) and a rolling perplexity; each line gets an anomaly flag from its mean
 * surprisal against the host's recent lines. A small model is created fresh and trained for a
 * few seconds on similar logs first, so its predictions mean something; a few odd lines are
 * planted in the stream and should be flagged.
 *
 *   npx tsx examples/keyed-predictions.ts [--short] [--lines 600] [--train-steps 150] [--mode segment|token]
 *
 * `--short` (or INFINIFORMER_EXAMPLE_SHORT=1) runs a smaller stream and less training.
 */
import * as tf from '@tensorflow/tfjs';
import { from, lastValueFrom, share, tap } from 'rxjs';
import { ByteTokenizer, InfiniFormer, MemoryKeyStore, Trainer, createRng, initBackend, tokenStreamSource } from '../src/index.js';
import { anomalies, infiniteFormer, perplexity, predictNext, recordSurprisal, tokenize, type TextRecord } from '../operators/index.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const short = args.includes('--short') || process.env['INFINIFORMER_EXAMPLE_SHORT'] === '1';
const totalLines = Number(flag('lines', short ? '160' : '600'));
const trainSteps = Number(flag('train-steps', short ? '60' : '150'));
const mode = flag('mode', 'segment') as 'segment' | 'token';

const HOSTS = ['web-1', 'web-2', 'db-1', 'cache-1'];
const NORMAL: Record<string, string[]> = {
  'web-1': ['GET /index.html 200', 'GET /api/items 200', 'POST /api/login 302', 'GET /static/app.js 304'],
  'web-2': ['GET /index.html 200', 'GET /api/cart 200', 'POST /api/order 201', 'GET /healthz 200'],
  'db-1': ['checkpoint complete', 'autovacuum: table items', 'connection authorized: user=app', 'duration: 3 ms'],
  'cache-1': ['GET key:session 1', 'SET key:session OK', 'EXPIRE key:cart 1', 'GET key:items 1'],
};
const ODD = ['kernel: Out of memory: Killed process 4242 (postgres)', 'sshd: Failed password for root from 203.0.113.9', 'segfault at 0000 ip 7f3a sp 7ffd error 4'];

/** Interleaved log lines; every `oddEvery`-th line (if any) is an odd one out. */
function logLines(count: number, seed: number, oddEvery = 0): (TextRecord & { odd: boolean })[] {
  const rng = createRng(seed);
  return Array.from({ length: count }, (_, i) => {
    const key = HOSTS[Math.floor(rng.next() * HOSTS.length)]!;
    const odd = oddEvery > 0 && i > 0 && i % oddEvery === 0;
    const events = odd ? ODD : NORMAL[key]!;
    const ev = events[Math.floor(rng.next() * events.length)]!;
    const text = `12:${String(Math.floor(i / 60) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')} ${key} ${ev}\n`;
    return { key, text, source: { line: i }, odd };
  });
}

async function main(): Promise<void> {
  const backend = await initBackend();
  const tokenizer = new ByteTokenizer();
  const model = InfiniFormer.create(
    { width: 32, numHeads: 2, numLayers: 2, ffnWidth: 64, segmentLength: 32, numBasis: 16, basisWidths: [0.05, 0.1], numSamples: 16, dropout: 0 },
    { seed: 1, tokenizer },
  );
  console.log(`backend ${backend}; a fresh model of ${model.numParameters} parameters; training ${trainSteps} steps on similar logs ...`);
  const t0 = performance.now();
  const trainText = logLines(400, 7).map((l) => l.text).join('');
  const trainer = new Trainer(model, tokenStreamSource(tokenizer.encode(trainText), { numStreams: 8, segmentLength: 32 }), { learningRate: 1e-2, warmupSteps: 10, totalSteps: trainSteps });
  await trainer.run({ steps: trainSteps });
  trainer.dispose();
  console.log(`trained in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

  const lines = logLines(totalLines, 3, 37);
  const startTensors = tf.memory().numTensors;
  // Segment mode: 4 hosts, 3 states in memory, so one is always spilled (as bytes, into the
  // store) and restored when its turn comes. Token mode would do that for every token: there
  // all 4 stay in memory. (A SpillingKeyStore would keep the spilled states on disk.)
  const lm = infiniteFormer(model, { mode, maxKeys: mode === 'segment' ? 3 : HOSTS.length, store: new MemoryKeyStore() });
  const t1 = performance.now();

  const predictions$ = from(lines).pipe(tokenize({ tokenizer }), lm, predictNext({ topK: 3 }), perplexity({ window: 400 }), share());
  let tokens = 0;
  // Per line: the mean surprisal of its bytes, then a flag against the host's recent lines.
  const perLine$ = predictions$.pipe(
    tap(() => tokens++),
    recordSurprisal(),
    anomalies({ quantile: 0.98, window: 200, warmup: 10 }),
  );

  let flagged = 0;
  let caught = 0;
  let count = 0;
  await lastValueFrom(
    perLine$.pipe(
      tap((line) => {
        count++;
        const i = (line.source as { line: number }).line;
        const text = lines[i]!.text as string;
        if (line.anomaly) {
          flagged++;
          if (lines[i]!.odd) caught++;
          console.log(`ANOMALY ${line.key.padEnd(8)} ${line.surprisal.toFixed(2)} bits/byte (host's 98% quantile ${line.threshold.toFixed(2)}): ${text.trim()}`);
        }
        if (count % Math.max(1, Math.floor(totalLines / 8)) === 0) {
          const next = line.last.topK!.map((t) => JSON.stringify(String.fromCharCode(t.token))).join(' ');
          console.log(`line ${String(i).padStart(4)} ${line.key.padEnd(8)} ${line.surprisal.toFixed(2)} bits/byte, rolling perplexity ${line.last.perplexity.toFixed(2)}; after "\\n" expected next ${next}`);
        }
      }),
    ),
  );
  const seconds = (performance.now() - t1) / 1000;
  const odd = lines.filter((l) => l.odd).length;
  const stats = lm.stats();
  console.log(
    `\n${count} lines, ${tokens} bytes in ${seconds.toFixed(1)} s (${mode} mode, ${stats.forwardPasses} forward passes, ${stats.evictions} evictions / ${stats.restores} restores);` +
      ` ${flagged} lines flagged, ${caught} of the ${odd} planted odd lines among them; live tensors ${startTensors} at the start, ${tf.memory().numTensors} now`,
  );
  model.dispose();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
