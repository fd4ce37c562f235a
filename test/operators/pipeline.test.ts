import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { from, lastValueFrom, reduce } from 'rxjs';
import { anomalies, infiniteFormer, perplexity, predictNext, tokenize, type TextRecord } from '../../operators/index.js';
import { clearRidgeCache } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { lcg } from '../helpers/reference64.js';
import { tinyModel } from '../model/helpers.js';
import { MemoryKeyStore } from '../../src/state/memoryKeyStore.js';

test.before(async () => {
  await backendReady;
});

const HOSTS = ['web-1', 'web-2', 'db-1', 'cache-1', 'auth-1', 'queue-1', 'cron-1', 'mail-1'];
const EVENTS = ['GET /index.html 200', 'GET /api/items 200', 'POST /login 302', 'GET /favicon.ico 404', 'connection reset by peer', 'slow query 812ms'];

/** Interleaved log lines of 8 hosts (keys) until they hold at least `tokens` bytes. */
function logLines(tokens: number, seed: number): TextRecord[] {
  const r = lcg(seed);
  const out: TextRecord[] = [];
  let total = 0;
  for (let i = 0; total < tokens; i++) {
    const key = HOSTS[Math.floor(r() * HOSTS.length)]!;
    const text = `12:${String(i % 60).padStart(2, '0')} ${EVENTS[Math.floor(r() * EVENTS.length)]}\n`;
    out.push({ key, text, source: { offset: i } });
    total += new TextEncoder().encode(text).length;
  }
  return out;
}

// Segment mode, the throughput mode for a backlog like this one (token mode runs a forward pass
// per position group and token: ~8x slower on this backlog; its leaks are covered in
// infiniteFormer.test.ts).
test('acceptance 3: 10k events through tokenize -> infiniteFormer (segment mode) -> predictNext -> perplexity -> anomalies, then completion: no tensor left behind', async (t) => {
  const mode = 'segment';
  clearRidgeCache();
  const model = tinyModel({ vocabSize: 260, numLayers: 1 });
  // 8 keys, 6 in memory: evicted states are spilled as bytes and restored when their key returns.
  let spill = new MemoryKeyStore();
  const pipeline = (lines: TextRecord[]) =>
    from(lines).pipe(
      tokenize({ tokenizer: model.tokenizer }),
      infiniteFormer(model, { mode, maxKeys: 6, store: spill, spillOnComplete: false }),
      predictNext({ topK: 3 }),
      perplexity({ window: 256 }),
      anomalies({ quantile: 0.99, window: 500, warmup: 50 }),
      reduce(
        (acc, p) => {
          acc.count++;
          acc.anomalies += p.anomaly ? 1 : 0;
          acc.lastIndex.set(p.key, p.index);
          acc.bits = p.bitsPerToken;
          return acc;
        },
        { count: 0, anomalies: 0, lastIndex: new Map<string, number>(), bits: 0 },
      ),
    );
  // Warm the shared ridge-operator caches (one set per config: fit and contraction).
  await lastValueFrom(pipeline(logLines(600, 1)));
  spill = new MemoryKeyStore();
  const before = tf.memory().numTensors;
  const lines = logLines(10_000, 2);
  const t0 = performance.now();
  const result = await lastValueFrom(pipeline(lines));
  const ms = performance.now() - t0;
  const after = tf.memory().numTensors;
  const tokens = lines.reduce((s, l) => s + new TextEncoder().encode(l.text as string).length, 0);
  t.true(tokens >= 10_000);
  t.is(result.count, tokens, 'one prediction per token');
  // Per key the indices run without a gap to the key's token count.
  for (const key of HOSTS) {
    const n = lines.filter((l) => l.key === key).reduce((s, l) => s + new TextEncoder().encode(l.text as string).length, 0);
    t.is(result.lastIndex.get(key), n - 1, key);
  }
  t.is(after, before);
  t.log(`${mode} mode: ${result.count} tokens of ${lines.length} lines in ${(ms / 1000).toFixed(1)} s; ${result.anomalies} anomalies flagged; rolling bits/token at the end ${result.bits.toFixed(2)}; live tensors ${before} before, ${after} after`);
  model.dispose();
});
