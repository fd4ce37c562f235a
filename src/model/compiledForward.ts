/**
 * The model's inference work as native TensorFlow graphs ({@link GraphCache}): the chunk
 * forward, keyed by its shape signature (batch, length, position, which caches each stream
 * holds; in token mode one graph serves every position after the first), and the segment start
 * of one stream (absorbing the last segment into the memory, keys and values of the short-term
 * cache). Both are fed the weights and the states' tensors by name, so learning and new states
 * need no recompiling.
 */
import * as tf from '@tensorflow/tfjs';
import { GraphCache } from '../graph/graphCache.js';
import type { GraphCacheStats } from '../graph/graphCache.js';
import type { ChunkOutput, InfiniFormer, SegmentStartOutput } from './model.js';
import type { StreamState } from './state.js';

export type CompiledForwardStats = GraphCacheStats;

const TOKENS = 'tokens';
const START_FIELDS = ['prevK', 'prevV', 'active', 'memKeys', 'memValues'] as const;
type StartField = (typeof START_FIELDS)[number];
const ROTARY_COS = 'rotary:cos:token';
const ROTARY_SIN = 'rotary:sin:token';

/** The current segment's keys and values so far: `[H, pos, d]`, one row longer every token. */
function isCurrentCache(name: string): boolean {
  return name.endsWith(':curK') || name.endsWith(':curV');
}

export class CompiledForward {
  private constructor(
    private readonly model: InfiniFormer,
    private readonly forwards: GraphCache<boolean[]>,
    private readonly starts: GraphCache<StartField[][][]>,
  ) {}

  /** A compiled forward for `model`, or undefined when the active backend is not native TensorFlow. */
  static create(model: InfiniFormer): CompiledForward | undefined {
    // A few shapes (whole segments, tokens) compile on their second call; past 8 graphs (a keyed
    // stream's partial chunks come in every length and position) only shapes that recur enough
    // to repay a compile do.
    const forwards = GraphCache.create<boolean[]>({ xla: model.xla, breakEvenAfter: 8 });
    // A segment start runs once per segment and has a handful of keys (which caches each layer
    // holds): compiled on first sight, so the second boundary of a kind is not a slow eager one.
    const starts = GraphCache.create<StartField[][][]>({ maxGraphs: 16, warmUp: 0, xla: model.xla });
    return forwards === undefined || starts === undefined ? undefined : new CompiledForward(model, forwards, starts);
  }

  /** Counters of the chunk forwards and of the segment starts. */
  get stats(): { forward: CompiledForwardStats; segmentStart: CompiledForwardStats } {
    return { forward: this.forwards.stats, segmentStart: this.starts.stats };
  }

  /** Whether its graphs are compiled with XLA. */
  get xla(): boolean {
    return this.forwards.xla;
  }

  /** Whether the backend it compiled for is still the active one. */
  isCurrent(): boolean {
    return this.forwards.isCurrent();
  }

  /** Like `model.forwardChunk(states, tokens)` in inference: call inside a tidy; pass the result to `model.commit`. */
  forward(states: readonly StreamState[], tokens: readonly ArrayLike<number>[]): ChunkOutput {
    const { pos, t } = this.model.prepareChunk(states, tokens);
    const flat = new Int32Array(states.length * t);
    tokens.forEach((row, i) => {
      for (let j = 0; j < t; j++) flat[i * t + j] = row[j]!;
    });
    const ids = tf.tensor1d(flat, 'int32');
    const inputs = this.model.graphInputs(states);
    inputs.set(TOKENS, ids);
    // One token after the first of a segment, every stream with a previous segment (no mask):
    // only the rotary rows of the position and the lengths of the current keys/values depend on
    // the position, so one graph serves every position, fed those rows.
    const rows = t === 1 && pos > 0 && states.every((s) => s.layers[0]!.prevX !== null) ? this.model.tokenRotaryRows(pos) : undefined;
    if (rows !== undefined) {
      inputs.set(ROTARY_COS, rows.cos);
      inputs.set(ROTARY_SIN, rows.sin);
    }
    const { outputs, meta } = this.forwards.run({
      key: forwardKey(states, rows === undefined ? String(pos) : 'any', t),
      inputs,
      dynamic: rows === undefined ? undefined : isCurrentCache,
      eager: () => flatten(this.model.forwardIds(states, ids, pos, t)),
    });
    return unflatten(outputs, meta, states.length);
  }

  /**
   * The segment start of a batch of streams at position 0 (see `InfiniFormer.segmentStartTensors`):
   * `readOuts[l]` is layer l's sticky read-out of its contracting streams, drawn on the host, or undefined.
   */
  segmentStart(states: readonly StreamState[], readOuts: readonly (tf.Tensor | undefined)[]): SegmentStartOutput[][] {
    const inputs = this.model.graphInputs(states);
    readOuts.forEach((r, l) => r !== undefined && inputs.set(`readOut:${l}`, r));
    const flags = states.map((s) => s.layers.map((ls, l) => `${Number(ls.prevX !== null)}${Number(ls.memory !== null)}${Number(readOuts[l] !== undefined)}`).join('.'));
    const { outputs, meta } = this.starts.run({
      key: flags.join('/'),
      inputs,
      eager: () => {
        const streams = this.model.segmentStartTensors(states, readOuts);
        const names = streams.map((layers) => layers.map((l) => START_FIELDS.filter((n) => l[n] !== undefined && l[n] !== null)));
        return { outputs: streams.flatMap((layers, j) => layers.flatMap((l, i) => names[j]![i]!.map((n) => l[n]!))), meta: names };
      },
    });
    let k = 0;
    return meta.map((layers) =>
      layers.map((names) => {
        const layer: SegmentStartOutput = { prevK: outputs[k]!, prevV: outputs[k + 1]!, active: null };
        for (const n of names) layer[n] = outputs[k++]!;
        return layer;
      }),
    );
  }

  /** Frees every compiled graph. */
  dispose(): void {
    this.forwards.dispose();
    this.starts.dispose();
  }
}

/** What decides the traced forward besides the config: batch, chunk, position, which caches each stream holds. */
function forwardKey(states: readonly StreamState[], pos: string, t: number): string {
  const flags = states.map((s) => s.layers.map((l) => `${Number(l.prevX !== null)}${Number((l.active ?? null) !== null)}${Number(l.memKeys !== undefined)}${Number((l.curK ?? null) !== null)}`).join('.'));
  return `${states.length}|${t}|${pos}|${flags.join('/')}`;
}

/** A chunk output's tensors in a fixed order, and per layer whether it carries the densities. */
function flatten(o: ChunkOutput): { outputs: tf.Tensor[]; meta: boolean[] } {
  const outputs: tf.Tensor[] = [o.hidden, o.logits, o.kl];
  const meta = o.layers.map((l) => {
    outputs.push(l.x, l.k, l.v);
    const dens = l.mu !== undefined && l.sigmaSq !== undefined;
    if (dens) outputs.push(l.mu!, l.sigmaSq!);
    return dens;
  });
  return { outputs, meta };
}

function unflatten(ts: readonly tf.Tensor[], layout: readonly boolean[], b: number): ChunkOutput {
  let k = 3;
  const layers = layout.map((dens) => {
    const l = { x: ts[k]!, k: ts[k + 1]!, v: ts[k + 2]! };
    k += 3;
    if (!dens) return l;
    k += 2;
    return { ...l, mu: ts[k - 2]!, sigmaSq: ts[k - 1]! };
  });
  return { hidden: ts[0]!, logits: ts[1]!, kl: ts[2] as tf.Scalar, layers, rngNext: new Array<undefined>(b).fill(undefined) };
}
