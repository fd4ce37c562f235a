/**
 * The inference chunk forward run as one native TensorFlow graph per shape signature. The first
 * chunk of a signature (batch, length, position, which caches each stream holds) runs eagerly
 * while {@link OpTracer} records it; the recording becomes a graph fed with the token ids, the
 * weights and the states' caches by name (so learning needs no recompiling), with the config's
 * constants baked in. Later chunks of that signature run the graph in one call. A chunk that
 * cannot be compiled (a host read, an input of unknown origin, a graph TensorFlow refuses) runs
 * eagerly, and so does every later chunk of its signature.
 */
import * as tf from '@tensorflow/tfjs';
import { GraphCompileError } from '../errors.js';
import { CompiledGraph } from '../graph/compiledGraph.js';
import { GraphDefBuilder } from '../graph/graphDef.js';
import { nativeBackend } from '../graph/nativeBackend.js';
import type { NativeKernelBackend } from '../graph/nativeBackend.js';
import { OpTracer } from '../graph/opTrace.js';
import type { HostTensor, OpTrace } from '../graph/opTrace.js';
import { rootLogger } from '../logger.js';
import type { ChunkOutput, InfiniFormer } from './model.js';
import type { StreamState } from './state.js';

const log = rootLogger.child('compiled');
const TOKENS = 'tokens';

/** An output of the graph: fetched, or a constant the forward made on the host. */
type OutputSlot = { fetch: number } | { host: { values: number[]; shape: number[]; dtype: tf.DataType } };

interface GraphEntry {
  kind: 'graph';
  graph: CompiledGraph;
  /** Feed names in feed order (`tokens` or a name of {@link InfiniFormer.graphInputs}) and their shapes. */
  feeds: { name: string; shape: number[] }[];
  outputs: OutputSlot[];
  /** Per layer: whether the output carries the densities mu and sigmaSq. */
  layout: boolean[];
}

interface EagerEntry {
  kind: 'eager';
  reason: string;
}

/** Counters, for tests and benchmarks. */
export interface CompiledForwardStats {
  /** Signatures compiled into graphs. */
  compiled: number;
  /** Chunks run as a graph. */
  graphRuns: number;
  /** Chunks run eagerly (tracing runs, failed signatures). */
  eagerRuns: number;
  /** Signatures that could not be compiled. */
  failed: number;
}

export interface CompiledForwardOptions {
  /** Graphs kept (least recently used dropped first). Default 512: token mode needs one per segment position. */
  maxGraphs?: number;
}

export class CompiledForward {
  private readonly cache = new Map<string, GraphEntry | EagerEntry>();
  private readonly tracer: OpTracer;
  private readonly builder: GraphDefBuilder;
  private readonly maxGraphs: number;
  readonly stats: CompiledForwardStats = { compiled: 0, graphRuns: 0, eagerRuns: 0, failed: 0 };

  private constructor(
    private readonly model: InfiniFormer,
    private readonly backend: NativeKernelBackend,
    options: CompiledForwardOptions,
  ) {
    this.tracer = new OpTracer(backend);
    this.builder = new GraphDefBuilder(backend.binding);
    this.maxGraphs = options.maxGraphs ?? 512;
  }

  /** A compiled forward for `model`, or undefined when the active backend is not native TensorFlow. */
  static create(model: InfiniFormer, options: CompiledForwardOptions = {}): CompiledForward | undefined {
    const backend = nativeBackend();
    return backend === undefined ? undefined : new CompiledForward(model, backend, options);
  }

  /** Like `model.forwardChunk(states, tokens)` in inference: call inside a tidy; pass the result to `model.commit`. */
  forward(states: readonly StreamState[], tokens: readonly ArrayLike<number>[]): ChunkOutput {
    const { pos, t } = this.model.prepareChunk(states, tokens);
    const flat = new Int32Array(states.length * t);
    tokens.forEach((row, i) => {
      for (let j = 0; j < t; j++) flat[i * t + j] = row[j]!;
    });
    const ids = tf.tensor1d(flat, 'int32');
    const key = signature(states, pos, t);
    const entry = this.cache.get(key);
    if (entry === undefined) return this.traceAndCompile(key, states, ids, pos, t);
    this.cache.delete(key);
    this.cache.set(key, entry);
    if (entry.kind === 'graph') {
      const out = this.runGraph(entry, states, ids);
      if (out !== undefined) return out;
    }
    this.stats.eagerRuns++;
    return this.model.forwardIds(states, ids, pos, t);
  }

  /** Whether the backend it compiled for is still the active one. */
  isCurrent(): boolean {
    return nativeBackend() === this.backend;
  }

  /** Frees every compiled graph. */
  dispose(): void {
    for (const e of this.cache.values()) if (e.kind === 'graph') e.graph.dispose();
    this.cache.clear();
  }

  private runGraph(entry: GraphEntry, states: readonly StreamState[], ids: tf.Tensor): ChunkOutput | undefined {
    const { fed } = this.model.graphInputs(states);
    const feeds: tf.Tensor[] = [];
    for (const f of entry.feeds) {
      const x = f.name === TOKENS ? ids : fed.get(f.name);
      // A cache of another shape than traced: the signature missed something; stay correct.
      if (x === undefined || !sameShape(x.shape, f.shape)) return undefined;
      feeds.push(x);
    }
    const fetched = entry.graph.run(feeds);
    this.stats.graphRuns++;
    const outs = entry.outputs.map((slot) => ('fetch' in slot ? fetched[slot.fetch]! : tf.tensor(slot.host.values, slot.host.shape, slot.host.dtype)));
    return unflatten(outs, entry.layout, states.length);
  }

  private traceAndCompile(key: string, states: readonly StreamState[], ids: tf.Tensor1D, pos: number, t: number): ChunkOutput {
    const { result, trace } = this.tracer.trace(() => this.model.forwardIds(states, ids, pos, t));
    this.stats.eagerRuns++;
    try {
      const entry = this.compile(trace, states, ids, result);
      this.cache.set(key, entry);
      this.stats.compiled++;
      log.debug('compiled a forward', { key, ops: trace.ops.length, feeds: entry.feeds.length });
      while (this.cache.size > this.maxGraphs) {
        const [oldest, e] = this.cache.entries().next().value as [string, GraphEntry | EagerEntry];
        if (e.kind === 'graph') e.graph.dispose();
        this.cache.delete(oldest);
      }
    } catch (error) {
      if (!(error instanceof GraphCompileError)) throw error;
      this.cache.set(key, { kind: 'eager', reason: error.message });
      this.stats.failed++;
      log.debug('forward stays eager', { key, reason: error.message });
    }
    return result;
  }

  private compile(trace: OpTrace, states: readonly StreamState[], ids: tf.Tensor, result: ChunkOutput): GraphEntry {
    if (trace.hostReads > 0) throw new GraphCompileError(`the forward read ${trace.hostReads} tensor(s) back to the host`);
    const { fed, constants } = this.model.graphInputs(states);
    const fedNames = new Map<object, string>([[ids.dataId, TOKENS]]);
    for (const [name, x] of fed) if (!fedNames.has(x.dataId)) fedNames.set(x.dataId, name);
    const constantIds = new Set<object>(constants.map((x) => x.dataId));
    const feedIds: number[] = [];
    const feeds: GraphEntry['feeds'] = [];
    const baked = new Map<number, HostTensor>();
    for (const [id, ext] of trace.external) {
      const name = fedNames.get(ext.dataId);
      if (name !== undefined) {
        feedIds.push(id);
        feeds.push({ name, shape: ext.shape });
      } else if (ext.host !== undefined && (trace.written.has(ext.dataId) || constantIds.has(ext.dataId))) {
        baked.set(id, ext.host);
      } else if (constantIds.has(ext.dataId)) {
        baked.set(id, { shape: ext.shape, dtype: ext.dtype, values: Array.from(this.backend.binding.tensorDataSync(id)) });
      } else {
        throw new GraphCompileError(`the forward reads a tensor of shape [${ext.shape.join(', ')}] that is neither an input nor a constant`);
      }
    }
    const { tensors, layout } = flatten(result);
    const fetches: number[] = [];
    const outputs = tensors.map((x): OutputSlot => {
      const info = this.backend.tensorMap.get(x.dataId);
      if (info === undefined) throw new GraphCompileError('an output of the forward has no native data');
      if (info.values != null) return { host: { values: Array.from(info.values), shape: [...x.shape], dtype: x.dtype } };
      fetches.push(info.id);
      return { fetch: fetches.length - 1 };
    });
    const built = this.builder.build({ trace, feeds: feedIds, constants: baked, fetches });
    return { kind: 'graph', graph: CompiledGraph.load(this.backend, built), feeds, outputs, layout };
  }
}

/** What decides the traced program besides the config: batch, chunk, position, which caches each stream holds. */
function signature(states: readonly StreamState[], pos: number, t: number): string {
  const flags = states.map((s) => s.layers.map((l) => `${Number(l.prevX !== null)}${Number((l.active ?? null) !== null)}${Number(l.memKeys !== undefined)}${Number((l.curK ?? null) !== null)}`).join('.'));
  return `${states.length}|${t}|${pos}|${flags.join('/')}`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

/** A chunk output's tensors in a fixed order, and which optional ones each layer has. */
function flatten(o: ChunkOutput): { tensors: tf.Tensor[]; layout: boolean[] } {
  const tensors: tf.Tensor[] = [o.hidden, o.logits, o.kl];
  const layout = o.layers.map((l) => {
    tensors.push(l.x, l.k, l.v);
    if (l.active !== undefined) throw new GraphCompileError('a training forward cannot be compiled');
    const dens = l.mu !== undefined && l.sigmaSq !== undefined;
    if (dens) tensors.push(l.mu!, l.sigmaSq!);
    return dens;
  });
  return { tensors, layout };
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
