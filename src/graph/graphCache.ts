/**
 * Runs a computation as one native TensorFlow graph per key. The first call of a key runs
 * eagerly (a shape seen once never pays for a compile); the second runs eagerly too while
 * {@link OpTracer} records it, and the recording becomes a graph whose
 * placeholders are the named input tensors (fed again on every call, so weights may change) and
 * whose constants are values made inside the computation or kept tensors marked by
 * {@link markGraphConstant}. Later calls of the key run the graph in one native call. A key
 * whose computation cannot be compiled (a host read, a tensor of unknown origin, a graph
 * TensorFlow refuses) runs eagerly; it is traced again a few times (caches the first calls
 * fill may have been the cause), then stays eager.
 */
import * as tf from '@tensorflow/tfjs';
import { GraphCompileError } from '../errors.js';
import { rootLogger } from '../logger.js';
import { CompiledGraph } from './compiledGraph.js';
import { isGraphConstant } from './constants.js';
import { GraphDefBuilder } from './graphDef.js';
import { nativeBackend } from './nativeBackend.js';
import type { NativeKernelBackend } from './nativeBackend.js';
import { OpTracer } from './opTrace.js';
import type { HostTensor, OpTrace } from './opTrace.js';

const log = rootLogger.child('graph');

/** One call: what decides the program, the named inputs, and the eager computation. */
export interface TracedCall<M> {
  /** Everything that decides the traced program besides the inputs' values. */
  key: string;
  /** The tensors to feed by name; the same names (and shapes, but for `dynamic` ones) on every call of the key. */
  inputs: ReadonlyMap<string, tf.Tensor>;
  /** Inputs whose shape may differ between calls of the key (their placeholders have no static shape). */
  dynamic?: (name: string) => boolean;
  /** The computation, eagerly: its outputs in a fixed order, and what the caller needs to read them. */
  eager: () => { outputs: tf.Tensor[]; meta: M };
}

/** An output of a graph: fetched, or a constant the computation made on the host. */
type OutputSlot = { fetch: number } | { host: { values: number[]; shape: number[]; dtype: tf.DataType } };

interface GraphEntry<M> {
  graph: CompiledGraph;
  /** In feed order: an input by name with the shape it was traced with (undefined: any shape), or one of `constants`. */
  feeds: ({ name: string; shape: number[] | undefined } | { constant: number })[];
  /** The computation's constants as native tensor ids (outside tfjs's tensor count), fed when not folded into the graph. */
  constants: number[];
  outputs: OutputSlot[];
  meta: M;
}

interface EagerEntry {
  failures: number;
  reason: string;
}

/** Counters, for tests and benchmarks. */
export interface GraphCacheStats {
  /** Keys compiled into graphs. */
  compiled: number;
  /** Calls run as a graph. */
  graphRuns: number;
  /** Calls run eagerly (tracing runs and keys that could not be compiled). */
  eagerRuns: number;
  /** Failed compilations. */
  failed: number;
}

export interface GraphCacheOptions {
  /**
   * Graphs kept (least recently used dropped first). Default 64: a loaded graph holds about
   * 2 MB of native memory (a TensorFlow session), whatever its size.
   */
  maxGraphs?: number;
  /** Calls of a key that run eagerly, untraced, before it is compiled (one-off shapes never pay for a compile). Default 1. */
  warmUp?: number;
  /** Traces of a key that fail before it stays eager. Default 3. */
  maxAttempts?: number;
  /**
   * Bake the computation's constants into the graph, where TensorFlow's optimiser folds and
   * fuses them (reassociating floating point: results then differ from the eager ones in the
   * last bits). Default false: constants are fed like inputs, and a graph computes bit for bit
   * what the eager ops computed.
   */
  foldConstants?: boolean;
  /**
   * Run a freshly compiled graph on the traced call too, and return its results instead of the
   * eager ones. With `warmUp: 0` every call of a compilable key is then computed by the graph,
   * whenever the process started: for computations where TensorFlow's graph optimiser may round
   * differently from the eager kernels (a backward pass), a restored process reproduces an
   * uninterrupted one bit for bit. Default false.
   */
  rerunTraced?: boolean;
  /**
   * Compile graphs whose inputs all have static shapes with XLA (fused CPU kernels; compiled at
   * a graph's first, warming run). XLA rounds differently from the eager kernels (within ~1e-6
   * measured), so results are no longer bit for bit the eager ones. Default false.
   */
  xla?: boolean;
  /**
   * Once this many graphs are held, a new key is compiled only when the time its calls have
   * spent eagerly reaches what a compile has cost on average (the ski-rental rule: never pay
   * much more than twice the better of the two choices). Many one-off shapes (a keyed stream's
   * partial chunks of every length and position) then stay eager instead of each paying a
   * compile of ~0.1 s for a call of a few ms. Default: Infinity (compile after `warmUp` calls).
   */
  breakEvenAfter?: number;
}

export class GraphCache<M> {
  private readonly graphs = new Map<string, GraphEntry<M>>();
  private readonly eager = new Map<string, EagerEntry>();
  private readonly tracer: OpTracer;
  private readonly builder: GraphDefBuilder;
  private readonly maxGraphs: number;
  private readonly maxAttempts: number;
  private readonly warmUp: number;
  private readonly foldConstants: boolean;
  private readonly rerunTraced: boolean;
  readonly xla: boolean;
  private readonly breakEvenAfter: number;
  /** Calls seen per key not compiled yet, and the ms they took eagerly (bounded: cleared when it grows past 4096 keys). */
  private readonly seen = new Map<string, { calls: number; eagerMs: number }>();
  /** Mean ms of a trace and compile, measured (the break-even rule's price of a graph). */
  private readonly compileMs = { total: 0, n: 0 };
  readonly stats: GraphCacheStats = { compiled: 0, graphRuns: 0, eagerRuns: 0, failed: 0 };

  private constructor(
    private readonly backend: NativeKernelBackend,
    options: GraphCacheOptions,
  ) {
    this.tracer = new OpTracer(backend);
    this.builder = new GraphDefBuilder(backend.binding);
    this.maxGraphs = options.maxGraphs ?? 64;
    this.maxAttempts = options.maxAttempts ?? 3;
    this.warmUp = options.warmUp ?? 1;
    this.foldConstants = options.foldConstants ?? false;
    this.rerunTraced = options.rerunTraced ?? false;
    this.xla = options.xla ?? false;
    this.breakEvenAfter = options.breakEvenAfter ?? Infinity;
  }

  /** A cache on the active backend, or undefined when it is not native TensorFlow. */
  static create<M>(options: GraphCacheOptions = {}): GraphCache<M> | undefined {
    const backend = nativeBackend();
    return backend === undefined ? undefined : new GraphCache<M>(backend, options);
  }

  /** Whether the backend it compiled for is still the active one. */
  isCurrent(): boolean {
    return nativeBackend() === this.backend;
  }

  /** The call's outputs (new tensors, in the active tidy scope) and its meta. */
  run(call: TracedCall<M>): { outputs: tf.Tensor[]; meta: M } {
    const entry = this.graphs.get(call.key);
    if (entry !== undefined) {
      this.graphs.delete(call.key);
      this.graphs.set(call.key, entry);
      const outputs = this.runGraph(entry, call.inputs);
      if (outputs !== undefined) return { outputs, meta: entry.meta };
    }
    const failed = this.eager.get(call.key);
    if (entry !== undefined || (failed !== undefined && failed.failures >= this.maxAttempts)) {
      this.stats.eagerRuns++;
      return call.eager();
    }
    const seen = this.seen.get(call.key) ?? { calls: 0, eagerMs: 0 };
    if (seen.calls + 1 <= this.warmUp || !this.worthCompiling(seen.eagerMs)) {
      if (this.seen.size >= 4096) this.seen.clear();
      const started = performance.now();
      const out = call.eager();
      this.seen.set(call.key, { calls: seen.calls + 1, eagerMs: seen.eagerMs + performance.now() - started });
      this.stats.eagerRuns++;
      return out;
    }
    this.seen.delete(call.key);
    const started = performance.now();
    const out = this.traceAndCompile(call);
    this.compileMs.total += performance.now() - started;
    this.compileMs.n++;
    return out;
  }

  /** Whether a key whose eager calls took `eagerMs` so far is compiled now ({@link GraphCacheOptions.breakEvenAfter}). */
  private worthCompiling(eagerMs: number): boolean {
    if (this.graphs.size < this.breakEvenAfter || this.compileMs.n === 0) return true;
    return eagerMs >= this.compileMs.total / this.compileMs.n;
  }

  /** Frees every graph. */
  dispose(): void {
    for (const e of this.graphs.values()) this.disposeEntry(e);
    this.graphs.clear();
    this.eager.clear();
    this.seen.clear();
  }

  private disposeEntry(e: GraphEntry<M>): void {
    e.graph.dispose();
    for (const id of e.constants) this.backend.binding.deleteTensor(id);
  }

  /**
   * Runs a new graph once, its outputs dropped: TensorFlow optimises a session on its first run
   * (15-40 ms measured for the segment start), so that cost lands here, in the already slow
   * compiling call, instead of on the key's next call (a latency spike one call later).
   */
  private warm(entry: GraphEntry<M>, inputs: ReadonlyMap<string, tf.Tensor>): void {
    const ids = this.feedIds(entry, inputs);
    if (ids === undefined) return;
    try {
      tf.dispose(entry.graph.runIds(ids));
    } catch (error) {
      // A graph TensorFlow loads but cannot run: the key stays eager, like one it refuses.
      this.disposeEntry(entry);
      throw new GraphCompileError(`TensorFlow could not run the compiled graph: ${String(error)}`, { cause: error });
    }
  }

  private runGraph(entry: GraphEntry<M>, inputs: ReadonlyMap<string, tf.Tensor>): tf.Tensor[] | undefined {
    const ids = this.feedIds(entry, inputs);
    if (ids === undefined) return undefined;
    const fetched = entry.graph.runIds(ids);
    this.stats.graphRuns++;
    return entry.outputs.map((slot) => ('fetch' in slot ? fetched[slot.fetch]! : hostTensor(slot.host)));
  }

  /** The native ids to feed `entry`'s placeholders, in order; undefined when an input is missing or of another shape than traced (the key missed something: stay correct, run eagerly). */
  private feedIds(entry: GraphEntry<M>, inputs: ReadonlyMap<string, tf.Tensor>): number[] | undefined {
    const named: tf.Tensor[] = [];
    for (const f of entry.feeds) {
      if ('constant' in f) continue;
      const x = inputs.get(f.name);
      if (x === undefined || (f.shape !== undefined && !sameShape(x.shape, f.shape))) return undefined;
      named.push(x);
    }
    const namedIds = this.backend.getInputTensorIds(named);
    let k = 0;
    return entry.feeds.map((f) => ('constant' in f ? entry.constants[f.constant]! : namedIds[k++]!));
  }

  private traceAndCompile(call: TracedCall<M>): { outputs: tf.Tensor[]; meta: M } {
    const { result, trace } = this.tracer.trace(call.eager);
    this.stats.eagerRuns++;
    try {
      const entry = this.compile(trace, call, result);
      this.warm(entry, call.inputs);
      this.graphs.set(call.key, entry);
      this.eager.delete(call.key);
      this.stats.compiled++;
      log.debug('compiled', { key: call.key, ops: trace.ops.length, feeds: entry.feeds.length });
      while (this.graphs.size > this.maxGraphs) {
        const [oldest, e] = this.graphs.entries().next().value as [string, GraphEntry<M>];
        this.disposeEntry(e);
        this.graphs.delete(oldest);
      }
      const rerun = this.rerunTraced ? this.runGraph(entry, call.inputs) : undefined;
      if (rerun !== undefined) {
        tf.dispose(result.outputs);
        return { outputs: rerun, meta: result.meta };
      }
    } catch (error) {
      if (!(error instanceof GraphCompileError)) throw error;
      const failures = (this.eager.get(call.key)?.failures ?? 0) + 1;
      this.eager.set(call.key, { failures, reason: error.message });
      this.stats.failed++;
      log.debug('stays eager', { key: call.key, failures, reason: error.message });
    }
    return result;
  }

  private compile(trace: OpTrace, call: TracedCall<M>, result: { outputs: tf.Tensor[]; meta: M }): GraphEntry<M> {
    if (trace.hostReads > 0) throw new GraphCompileError(`the computation read ${trace.hostReads} tensor(s) back to the host`);
    const names = new Map<object, string>();
    for (const [name, x] of call.inputs) if (!names.has(x.dataId)) names.set(x.dataId, name);
    const feedIds: number[] = [];
    const anyShape = new Set<number>();
    const feeds: GraphEntry<M>['feeds'] = [];
    const baked = new Map<number, HostTensor>();
    for (const [id, ext] of trace.external) {
      const name = names.get(ext.dataId);
      if (name !== undefined) {
        feedIds.push(id);
        const dynamic = call.dynamic?.(name) === true;
        if (dynamic) anyShape.add(id);
        feeds.push({ name, shape: dynamic ? undefined : ext.shape });
      } else if (ext.host !== undefined && (trace.written.has(ext.dataId) || isGraphConstant(ext.dataId))) {
        baked.set(id, ext.host);
      } else if (isGraphConstant(ext.dataId)) {
        baked.set(id, { shape: ext.shape, dtype: ext.dtype, values: Array.from(this.backend.binding.tensorDataSync(id)) });
      } else {
        throw new GraphCompileError(`the computation reads a tensor of shape [${ext.shape.join(', ')}] that is neither an input nor a marked constant`);
      }
    }
    const fetches: number[] = [];
    const outputs = result.outputs.map((x): OutputSlot => {
      const info = this.backend.tensorMap.get(x.dataId);
      if (info === undefined) throw new GraphCompileError('an output has no native data');
      if (info.values != null) return { host: { values: Array.from(info.values), shape: [...x.shape], dtype: x.dtype } };
      fetches.push(info.id);
      return { fetch: fetches.length - 1 };
    });
    // Unfolded constants become placeholders fed from native copies.
    const constants: number[] = [];
    const binding = this.backend.binding;
    try {
      if (!this.foldConstants) {
        for (const [id, h] of baked) {
          feedIds.push(id);
          feeds.push({ constant: constants.length });
          constants.push(binding.createTensor(h.shape, h.dtype, typedValues(h)));
        }
        baked.clear();
      }
      // XLA compiles per input shape: a graph fed shapes that vary would compile on every new one.
      const built = this.builder.build({ trace, feeds: feedIds, anyShape, constants: baked, fetches, xla: this.xla && anyShape.size === 0 });
      return { graph: CompiledGraph.load(this.backend, built), feeds, constants, outputs, meta: result.meta };
    } catch (error) {
      for (const id of constants) binding.deleteTensor(id);
      throw error;
    }
  }
}

/** The values of a constant as the binding uploads them (TF_FLOAT, TF_INT32, TF_BOOL). */
function typedValues(h: HostTensor): ArrayLike<number> {
  if (h.dtype === 1) return Float32Array.from(h.values);
  if (h.dtype === 3) return Int32Array.from(h.values);
  if (h.dtype === 10) return Uint8Array.from(h.values);
  throw new GraphCompileError(`a constant of dtype code ${h.dtype} is not supported`);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

function hostTensor(h: { values: number[]; shape: number[]; dtype: tf.DataType }): tf.Tensor {
  return tf.tensor(h.values, h.shape, h.dtype);
}
