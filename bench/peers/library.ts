/**
 * This library as a contender of the peers benchmark, on one tfjs backend (native tfjs-node or
 * wasm). Both backends live in one process; `activate` switches to this one. Every workload
 * builds its model on the active backend and frees it after; the sweep's model stays on its own
 * backend, used only while that backend is active. (The library's module-level caches, such as
 * the ridge operators, move to whichever backend reads them: a copy of a few 128 x 256 arrays
 * per switch.)
 */
import * as tf from '@tensorflow/tfjs';
import { InfiniFormer, Trainer, createRng, tokenStreamSource } from '../../src/index.js';
import type { StreamState } from '../../src/index.js';
import type { Contender } from './contender.js';
import { FullAttentionLM } from './fullAttention.js';

export type Backend = 'tensorflow' | 'wasm';

export function randomTokens(count: number, seed: number): Int32Array {
  const rng = createRng(seed);
  return Int32Array.from({ length: count }, () => Math.floor(rng.next() * 256));
}

const rssMiB = (): number => process.memoryUsage().rss / 2 ** 20;

function timed(body: () => void): number {
  const t0 = performance.now();
  body();
  return performance.now() - t0;
}

export class LibraryContender implements Contender {
  readonly name: string;
  private sweepModel: InfiniFormer | undefined;
  private sweepState: StreamState | undefined;
  private sweepTokens = 0;

  constructor(private readonly backend: Backend) {
    this.name = `library ${backend === 'tensorflow' ? 'native' : 'wasm'}`;
  }

  async activate(): Promise<void> {
    await tf.setBackend(this.backend);
  }

  async matmul(n: number, reps: number): Promise<number[]> {
    const a = tf.randomNormal([n, n], 0, 1, 'float32', 1) as tf.Tensor2D;
    const b = tf.randomNormal([n, n], 0, 1, 'float32', 2) as tf.Tensor2D;
    const once = (): void => {
      const c = tf.matMul(a, b);
      c.dataSync();
      c.dispose();
    };
    once();
    const ms = Array.from({ length: reps }, () => timed(once));
    tf.dispose([a, b]);
    return ms;
  }

  async segment(streams: number, segments: number): Promise<number[]> {
    const model = InfiniFormer.create({}, { seed: 1 });
    const L = model.config.segmentLength;
    const states = Array.from({ length: streams }, (_, i) => model.createState(i));
    // Five warm-up segments on native: the memory is contracted on every timed one, and the
    // compiled graphs (src/model/compiledForward.ts) are built and run once (a one-off ~0.2 s
    // per model and shape) before the timing; two elsewhere.
    const warmUp = this.backend === 'tensorflow' ? 5 : 2;
    const toks = randomTokens(L * (segments + warmUp) * streams, 2);
    const ms: number[] = [];
    for (let s = 0; s < segments + warmUp; s++) {
      const rows = states.map((_, i) => toks.subarray((s * streams + i) * L, (s * streams + i + 1) * L));
      const t = timed(() => {
        const logits = model.run(states, rows);
        logits.dataSync();
        logits.dispose();
      });
      if (s >= warmUp) ms.push(t);
    }
    states.forEach((s) => s.dispose());
    model.dispose();
    return ms;
  }

  async token(tokens: number): Promise<number[]> {
    const model = InfiniFormer.create({}, { seed: 1 });
    const L = model.config.segmentLength;
    const state = model.createState(3);
    // Three warm-up segments on native: the compiled graphs (a segment start's, the token
    // forward's at position 0 and after) are built on the first three segments (each a one-off
    // 50-130 ms step per model and shape) before the timing; two elsewhere.
    const warmUp = (this.backend === 'tensorflow' ? 3 : 2) * L;
    const toks = randomTokens(tokens + warmUp, 4);
    const ms: number[] = [];
    for (let i = 0; i < toks.length; i++) {
      const t = timed(() => {
        const logits = model.step([state], [toks[i]!]);
        logits.dataSync();
        logits.dispose();
      });
      if (i >= warmUp) ms.push(t);
    }
    state.dispose();
    model.dispose();
    return ms;
  }

  async train(streams: number, steps: number): Promise<number[]> {
    const model = InfiniFormer.create({}, { seed: 1 });
    const L = model.config.segmentLength;
    // Three warm-up steps on native: the first (fresh streams, no memory) runs eagerly and
    // allocates Adam's moments, the next two build the compiled steps (src/model/compiledStep.ts;
    // memory fitted, then contracted: a one-off ~0.5 s each per model and shape); one elsewhere.
    const warmUp = this.backend === 'tensorflow' ? 3 : 1;
    const source = tokenStreamSource(randomTokens(streams * ((steps + warmUp + 1) * L + 1), 5), { numStreams: streams, segmentLength: L });
    const trainer = new Trainer(model, source, { warmupSteps: 1 });
    for (let i = 0; i < warmUp; i++) trainer.step();
    const ms = Array.from({ length: steps }, () => timed(() => void trainer.step()));
    trainer.dispose();
    model.dispose();
    return ms;
  }

  async fullAttention(context: number, newTokens: number, reps: number): Promise<{ ms: number[]; rssMiB: number }> {
    const model = InfiniFormer.create({}, { seed: 1 }); // only for its config
    const lm = new FullAttentionLM(model.config);
    model.dispose();
    const cache = lm.cache(context);
    const toks = randomTokens(newTokens, 6);
    const once = (): void => {
      const logits = lm.forward(cache, toks);
      logits.dataSync();
      logits.dispose();
    };
    once();
    const ms = Array.from({ length: reps }, () => timed(once));
    const rss = rssMiB();
    tf.dispose(cache.flatMap((c) => [c.k, c.v]));
    lm.dispose();
    return { ms, rssMiB: rss };
  }

  async sweepStart(): Promise<void> {
    this.sweepModel = InfiniFormer.create({}, { seed: 1 });
    this.sweepState = this.sweepModel.createState(8);
    this.sweepTokens = 0;
  }

  async sweep(to: number, segments: number): Promise<{ ms: number[]; rssMiB: number }> {
    const model = this.sweepModel!;
    const L = model.config.segmentLength;
    const ms: number[] = [];
    const end = Math.max(this.sweepTokens, to) + segments * L;
    while (this.sweepTokens < end) {
      const row = randomTokens(L, this.sweepTokens);
      const t = timed(() => {
        const logits = model.run([this.sweepState!], [row]);
        logits.dataSync();
        logits.dispose();
      });
      if (this.sweepTokens >= to) ms.push(t);
      this.sweepTokens += L;
    }
    return { ms, rssMiB: rssMiB() };
  }

  async sweepEnd(): Promise<void> {
    this.sweepState?.dispose();
    this.sweepModel?.dispose();
    this.sweepState = undefined;
    this.sweepModel = undefined;
  }

  async close(): Promise<void> {
    await this.sweepEnd();
  }
}
