/**
 * The ∞-former (DESIGN §2.7): embedding -> layers -> final layer norm -> tied LM head, plus an
 * optional classifier head on the same trunk. Each pre-LN layer adds causal multi-head
 * short-term attention over [previous segment; current segment] and continuous attention over
 * the layer's long-term memory, then a feed-forward block.
 *
 * Streams advance in chunks: a whole segment (segment mode), or one token at a time (token
 * mode, with key/value caches). Both run the same code on the same cached inputs, so their
 * outputs agree to float tolerance. At a segment boundary each layer's memory absorbs the
 * segment (gate -> fit, or contract with uniform or sticky samples); the absorbed memory is
 * detached from the graph (truncated backpropagation through time), but the gate that feeds it
 * is trained through the next segment's reading of it.
 */
import * as tf from '@tensorflow/tfjs';
import { attendHeads, memoryHeads } from '../attention/continuousAttention.js';
import type { MemoryHeads } from '../attention/continuousAttention.js';
import { klRegularizer } from '../attention/klRegularizer.js';
import { gaussianBasis } from '../basis/gaussianBasis.js';
import type { GaussianBasis } from '../basis/gaussianBasis.js';
import { BadInputError } from '../errors.js';
import { contractUnchecked } from '../memory/contractMemory.js';
import { fitUnchecked } from '../memory/fitBasis.js';
import { createRng, uniformFloats } from '../memory/rng.js';
import type { Rng } from '../memory/rng.js';
import { gateUnchecked } from '../memory/smooth.js';
import { stickyResample } from '../memory/stickyResample.js';
import { ByteTokenizer } from '../tokenize/byteTokenizer.js';
import type { Tokenizer } from '../tokenize/tokenizer.js';
import { makeConfig, validateConfig } from './config.js';
import type { ModelConfig } from './config.js';
import { causalMask, dropoutWith, fullRotaryTable, gelu, layerNorm, project, relativeBias, softmaxLastAxis } from './layers.js';
import type { FullRotaryTable } from './layers.js';
import { initParams } from './params.js';
import type { LayerParams, ModelParams } from './params.js';
import { fingerprint } from './checksum.js';
import { appendRows, StreamState } from './state.js';
import { WeightViews } from './weightViews.js';
import { CompiledForward } from './compiledForward.js';
import { markGraphConstant } from '../graph/constants.js';
import type { CompiledForwardStats } from './compiledForward.js';
import type { DerivedLayer, LayerChunk, LayerState } from './state.js';

/** Options of a forward pass. */
export interface ForwardOptions {
  /** Training mode: dropout on, segment start computed inside the gradient tape. Default false. */
  training?: boolean;
  /** Seed of the dropout masks (training only); vary it per step for fresh masks. Default 0. */
  dropoutSeed?: number;
  /**
   * Apply the config's dropout in training mode. Default true; false when the training forward
   * doubles as the scoring pass (the online learner), whose outputs must be the model's own.
   */
  dropout?: boolean;
  /**
   * The dropout draws, per site (see {@link InfiniFormer.dropoutDraws}), instead of drawing them
   * from `dropoutSeed` inside the forward: a compiled step feeds them.
   */
  dropoutDraws?: readonly tf.Tensor[];
  /**
   * Training with sticky sampling: per layer the read-out Psi(s) `[c, M, N]` of its c
   * contracting streams (in stream order), drawn beforehand by {@link InfiniFormer.stickyReadOuts}
   * (a compiled step feeds them), instead of drawing positions inside the forward. The forward's
   * `rngNext` then is not advanced: take the draws' own.
   */
  readOuts?: readonly (tf.Tensor | undefined)[];
}

/** A generator continuing the stream's RNG (its sticky draws). */
function rngOf(state: StreamState): Rng {
  const r = createRng(0);
  r.setState(state.rngState);
  return r;
}

/** What one chunk forward produces (all tensors owned by the receiver). */
export interface ChunkOutput {
  /** Final-layer-norm hidden states `[b, T, e]`. */
  hidden: tf.Tensor;
  /** LM logits `[b, T, V]`. */
  logits: tf.Tensor;
  /** Mean KL regulariser over layers with a memory (a scalar; 0 when none, and outside training). */
  kl: tf.Scalar;
  /** Per-layer bookkeeping consumed by {@link InfiniFormer.commit}. */
  layers: ChunkLayerOutput[];
  /** Per-stream RNG words after the segment-start draws (training mode). */
  rngNext: (number[] | undefined)[];
}

/** Per-layer results of a chunk. */
export interface ChunkLayerOutput {
  /** Layer inputs after LN `[b, T, e]` (the short-term cache and the memory's next input). */
  x: tf.Tensor;
  /** Rotated keys and values of the chunk `[b, H, T, d]`. */
  k: tf.Tensor;
  v: tf.Tensor;
  /** Continuous-attention densities `[b, H, T]` (LTM on). */
  mu?: tf.Tensor;
  sigmaSq?: tf.Tensor;
  /** Training mode: each stream's absorbed memory `[N, e]` (or null). */
  active?: (tf.Tensor | null)[];
}

/** One layer's caches at a segment start (inference): see {@link InfiniFormer.segmentStartTensors}. */
export interface SegmentStartOutput {
  /** Keys and values of the previous segment `[1, H, L, d]` (zeros without one). */
  prevK: tf.Tensor;
  prevV: tf.Tensor;
  /** The memory for this segment `[N, e]`, or null. */
  active: tf.Tensor | null;
  /** Its keys and values per head `[1, H, N, d]`. */
  memKeys?: tf.Tensor;
  memValues?: tf.Tensor;
}

/** Options of {@link InfiniFormer.create}. */
export interface CreateOptions {
  /** Seed of the weight initialisation. Default 0. */
  seed?: number;
  /** Tokenizer saved with the model. Default the byte tokenizer when vocabSize allows it, else none. */
  tokenizer?: Tokenizer;
}

const BYTE_VOCAB = new ByteTokenizer().vocabSize;

/** One ∞-former: config, weights, basis, tokenizer. */
export class InfiniFormer {
  readonly config: Readonly<ModelConfig>;
  readonly params: ModelParams;
  /** The tokenizer saved with the model (undefined for synthetic vocabularies). */
  readonly tokenizer: Tokenizer | undefined;
  /** The Gaussian basis of the long-term memory (undefined when it is off). */
  readonly basis: GaussianBasis | undefined;
  private readonly configPrint: number;
  /** Rotary angles of every window position (2L), built once. */
  private readonly rotaryAngles: FullRotaryTable | undefined;
  /**
   * Kept inputs that are the same every call: the rotary table's rows of a (start, length) for
   * whole segments and single tokens, and the causal mask of a whole segment.
   */
  private readonly constants = new Map<string, tf.Tensor>();
  /** Inference's exact copies of weight parts (the key/value columns, the gate's three kernels). */
  private readonly views = new WeightViews();
  /**
   * Run inference chunks and segment starts as compiled native graphs ({@link CompiledForward})
   * when the backend is tensorflow. Default true unless the environment sets
   * INFINIFORMER_COMPILED=0; training and forwards inside a gradient tape always run eagerly.
   */
  compiled = process.env['INFINIFORMER_COMPILED'] !== '0';
  /**
   * Compile those graphs (and the online learner's step) further with XLA: fused CPU kernels,
   * results within ~1e-6 of the eager ones instead of bit for bit. Default false unless the
   * environment sets INFINIFORMER_XLA=1 (the offline `Trainer` has its own switch).
   */
  xla = process.env['INFINIFORMER_XLA'] === '1';
  /** Built on the first inference chunk on the native backend. */
  private compiledRunner: CompiledForward | undefined;

  constructor(config: Readonly<ModelConfig>, params: ModelParams, tokenizer?: Tokenizer) {
    this.config = validateConfig(config);
    this.params = params;
    this.tokenizer = tokenizer;
    this.basis = this.config.longTermMemory ? gaussianBasis({ numBasis: this.config.numBasis, widths: this.config.basisWidths }) : undefined;
    this.configPrint = fingerprint(this.config);
    const c = this.config;
    const angles = c.positions === 'rotary' ? fullRotaryTable(2 * c.segmentLength, c.width / c.numHeads) : undefined;
    // Kept: a model built inside a caller's tf.tidy must not lose its table.
    const kept = <T extends tf.Tensor>(x: T): T => markGraphConstant(tf.keep(x));
    this.rotaryAngles = angles === undefined ? undefined : { cos: kept(angles.cos), sin: kept(angles.sin), rotate: kept(angles.rotate) };
    if (tokenizer !== undefined && tokenizer.vocabSize > this.config.vocabSize) {
      throw new BadInputError('tokenizer', `vocabulary of ${tokenizer.vocabSize} exceeds the model's vocabSize ${this.config.vocabSize}`);
    }
    this.buildConstants();
    for (const x of this.constants.values()) markGraphConstant(x);
    // Built now, like the constants: the tensor count does not grow on first use.
    this.params.layers.forEach((lp) => this.weightParts(lp, false));
  }

  /**
   * The key/value columns of wQKV `[e, 2e]` and the gate's kernels `[e, e]` x 3 (undefined
   * without a memory): kept copies for inference, fresh ones (inside the gradient tape) for
   * training.
   */
  private weightParts(lp: LayerParams, training: boolean): { kv: tf.Tensor; gate: tf.Tensor[] | undefined } {
    const e = this.config.width;
    const kvOf = (w: tf.Tensor): tf.Tensor[] => [tf.slice(w, [0, e], [e, 2 * e])];
    const gateOf = (w: tf.Tensor): tf.Tensor[] => tf.unstack(w);
    if (training) return { kv: kvOf(lp.wQKV)[0]!, gate: lp.gateKernel === undefined ? undefined : gateOf(lp.gateKernel) };
    return {
      kv: this.views.get(`${lp.wQKV.name}:kv`, lp.wQKV, kvOf)[0]!,
      gate: lp.gateKernel === undefined ? undefined : this.views.get(`${lp.gateKernel.name}:unstacked`, lp.gateKernel, gateOf),
    };
  }

  /**
   * The kept constants, all built now (a fixed set per config, ~2L small tensors) so that the
   * tensor count does not grow on first use: the grouped rotary rows of a whole segment's
   * queries/keys/values (window position L), of every single token's, and of the previous
   * segment's keys/values (position 0); the whole-segment causal masks.
   */
  private buildConstants(): void {
    const L = this.config.segmentLength;
    if (this.rotaryAngles !== undefined) {
      const qkv = [true, true, false];
      for (const name of ['cos', 'sin'] as const) {
        const segment = tf.keep(tf.tidy(() => this.groupRows(name, L, L, qkv)));
        this.constants.set(`rotary:${name}:${L}:${L}:110`, segment);
        this.constants.set(`rotary:${name}:0:${L}:10`, tf.keep(tf.tidy(() => this.groupRows(name, 0, L, [true, false]))));
        // Every token position in one kernel: [3, 1, 1, L, d] -> L x [3, 1, 1, 1, d].
        tf.split(segment, L, 3).forEach((row, j) => this.constants.set(`rotary:${name}:${L + j}:1:110`, tf.keep(row)));
      }
    }
    for (const prev of [false, true]) this.constants.set(`mask:${String(prev)}`, tf.keep(causalMask([prev], L, 0, L)));
  }

  /** A freshly initialised model; `config` fields override {@link DEFAULT_CONFIG}. */
  static create(config: Partial<ModelConfig> = {}, options: CreateOptions = {}): InfiniFormer {
    const c = makeConfig(config);
    const tokenizer = options.tokenizer ?? (c.vocabSize >= BYTE_VOCAB ? new ByteTokenizer() : undefined);
    return new InfiniFormer(c, initParams(c, options.seed ?? 0), tokenizer);
  }

  /** Number of trainable scalars. */
  get numParameters(): number {
    let n = 0;
    for (const v of this.params.byName.values()) n += v.size;
    return n;
  }

  /** A new, empty stream state (`seed` drives sticky sampling). */
  createState(seed = 0): StreamState {
    return new StreamState(this.config, seed);
  }

  /** Restores a stream state from {@link StreamState.serialize}. */
  restoreState(bytes: Uint8Array): StreamState {
    return StreamState.deserialize(this.config, bytes);
  }

  /** Frees the weights. */
  dispose(): void {
    for (const v of this.params.byName.values()) v.dispose();
    if (this.rotaryAngles !== undefined) tf.dispose([this.rotaryAngles.cos, this.rotaryAngles.sin, this.rotaryAngles.rotate]);
    tf.dispose([...this.constants.values()]);
    this.constants.clear();
    this.views.dispose();
    this.compiledRunner?.dispose();
    this.compiledRunner = undefined;
  }

  /** Counters of the compiled forward (undefined before its first use). */
  get compiledStats(): Readonly<{ forward: CompiledForwardStats; segmentStart: CompiledForwardStats }> | undefined {
    return this.compiledRunner?.stats;
  }

  /** The compiled forward to use for an inference chunk now, if any. */
  private compiledForward(): CompiledForward | undefined {
    if (!this.compiled || tf.engine().state.gradientDepth > 0 || tf.getBackend() !== 'tensorflow') return undefined;
    // Made per backend instance: graphs live in one native session set.
    if (this.compiledRunner === undefined || !this.compiledRunner.isCurrent() || this.compiledRunner.xla !== this.xla) {
      this.compiledRunner?.dispose();
      this.compiledRunner = CompiledForward.create(this);
    }
    return this.compiledRunner;
  }

  // ---- segment start: absorb the last segment into the memory, keys/values of the cache ----

  /**
   * Computes, for a batch of streams and one layer, the keys/values of the previous segment
   * `[b, H, L, d]` and the memory for the current segment `[b, N, e]` (absorbing the previous
   * segment: fit the first time, contract after). Streams without a memory get zero rows and
   * `hasMem` false. Draws each stream's sticky positions from its own `rngs[i]`, unless the
   * read-out at them is given (`readOut`, one stream).
   */
  private segmentStart(
    lp: LayerParams,
    layerStates: readonly LayerState[],
    rngs: readonly Rng[],
    training: boolean,
    readOut?: tf.Tensor,
  ): { prevK: tf.Tensor; prevV: tf.Tensor; active: tf.Tensor | null; hasMem: boolean[] } {
    const c = this.config;
    const e = c.width;
    const zerosX = (): tf.Tensor => tf.zeros([c.segmentLength, e]);
    const prevX = tf.stack(layerStates.map((ls) => ls.prevX ?? zerosX()));
    // Missing previous segments give zero keys (no bias, rotation keeps 0); the mask hides them.
    const weights = this.weightParts(lp, training);
    const { k: prevK, v: prevV } = this.keysValues(weights.kv, prevX, 0);
    const hasMem = layerStates.map(() => false);
    if (this.basis === undefined || layerStates.every((ls) => ls.prevX === null)) return { prevK, prevV, active: null, hasMem };
    const gated = gateUnchecked(prevX, weights.gate!, lp.gateBias);
    const fit = { basis: this.basis, lambda: c.ridgeLambda, pad: c.ridgePad };
    const pick = (idx: number[]): tf.Tensor => (idx.length === layerStates.length ? gated : tf.gather(gated, tf.tensor1d(idx, 'int32')));
    const fitIdx = layerStates.flatMap((ls, i) => (ls.prevX !== null && ls.memory === null ? [i] : []));
    const contractIdx = layerStates.flatMap((ls, i) => (ls.prevX !== null && ls.memory !== null ? [i] : []));
    const fitted = fitIdx.length > 0 ? fitUnchecked(pick(fitIdx), fit) : undefined;
    let contracted: tf.Tensor | undefined;
    if (contractIdx.length > 0) {
      const memory = tf.stack(contractIdx.map((i) => layerStates[i]!.memory!));
      const positions = c.sticky && readOut === undefined ? contractIdx.map((i) => stickyResample({ mass: layerStates[i]!.prevMass }, { numSamples: c.numSamples, rng: rngs[i]! })) : undefined;
      contracted = contractUnchecked(memory, pick(contractIdx), { ...fit, tau: c.tau, numSamples: c.numSamples, positions, readOut });
    }
    // Every stream fitted, or every one contracted: the batch is the memory as it is.
    const whole = fitIdx.length === layerStates.length ? fitted : contractIdx.length === layerStates.length ? contracted : undefined;
    if (whole !== undefined) return { prevK, prevV, active: whole, hasMem: layerStates.map(() => true) };
    // A mixed batch: [fitted; contracted; one zero row] gathered back into stream order. (Not
    // unstack -> stack: tfjs fails to build the gradient of an unstack whose rows are regrouped.)
    const parts = [...(fitted ? [fitted] : []), ...(contracted ? [contracted] : []), tf.zeros([1, c.numBasis, e])];
    const zeroRow = fitIdx.length + contractIdx.length;
    const where = layerStates.map((_, i) => {
      const f = fitIdx.indexOf(i);
      const k = contractIdx.indexOf(i);
      hasMem[i] = f >= 0 || k >= 0;
      return f >= 0 ? f : k >= 0 ? fitIdx.length + k : zeroRow;
    });
    const active = tf.gather(tf.concat(parts, 0), tf.tensor1d(where, 'int32'));
    return { prevK, prevV, active, hasMem };
  }

  /** Rotated keys and values `[b, H, T, d]` of layer inputs `[b, T, e]` at window position `start`. */
  private keysValues(wKV: tf.Tensor, x: tf.Tensor, start: number): { k: tf.Tensor; v: tf.Tensor } {
    const e = this.config.width;
    const [b, t] = x.shape as [number, number, number];
    const kv = tf.matMul(tf.reshape(x, [b * t, e]) as tf.Tensor2D, wKV as tf.Tensor2D);
    const [k, v] = tf.unstack(this.rotateGroups(this.groupHeads(kv, b, t, 2), start, [true, false])) as [tf.Tensor, tf.Tensor];
    return { k, v };
  }

  /**
   * Rows `[b * T, g * e]` (g projections side by side) as heads `[g, b, H, T, d]`: unstacking
   * the leading group axis later is one kernel without uploads (a split or slice uploads its
   * sizes) and copies contiguous blocks (wasm's unstack of an inner axis is very slow).
   */
  private groupHeads(x: tf.Tensor, b: number, t: number, g: number): tf.Tensor {
    const H = this.config.numHeads;
    const d = this.config.width / H;
    // Rank-4 and rank-3 transposes only: wasm runs a rank-5 one on a slow path (~2 ms a token).
    const heads = this.heads(x, b, t, g * H); // [b, g * H, T, d]
    const grouped = b === 1 ? heads : tf.transpose(tf.reshape(heads, [b, g, H * t * d]), [1, 0, 2]);
    return tf.reshape(grouped, [g, b, H, t, d]);
  }

  /**
   * Grouped heads `[g, b, H, T, d]` with the groups marked in `rotated` turned to window
   * positions start .. start + T - 1; the others pass unchanged (cos 1, sin 0: x * 1 + (+-x) * 0
   * is x exactly), so one rotation serves queries and keys with the values riding along.
   */
  private rotateGroups(x: tf.Tensor, start: number, rotated: readonly boolean[]): tf.Tensor {
    const table = this.rotaryAngles;
    if (table === undefined) return x;
    const t = x.shape[3]!;
    const key = `${start}:${t}:${rotated.map(Number).join('')}`;
    const rows = (name: 'cos' | 'sin'): tf.Tensor => this.constants.get(`rotary:${name}:${key}`) ?? this.groupRows(name, start, t, rotated);
    return tf.add(tf.mul(x, rows('cos')), tf.mul(tf.matMul(x, table.rotate), rows('sin')));
  }

  /** The `name` rows of the rotary table for positions start .. start + T - 1 per group, `[g, 1, 1, T, d]` (1 or 0 for groups not rotated). */
  private groupRows(name: 'cos' | 'sin', start: number, t: number, rotated: readonly boolean[]): tf.Tensor {
    const rows = tf.slice(this.rotaryAngles![name], [start, 0], [t, -1]);
    const plain = name === 'cos' ? tf.onesLike(rows) : tf.zerosLike(rows);
    return tf.reshape(tf.stack(rotated.map((r) => (r ? rows : plain))), [rotated.length, 1, 1, t, -1]);
  }

  /** Rows `[b * T, n * d]` as n heads `[b, n, T, d]`. */
  private heads(x: tf.Tensor, b: number, t: number, n: number): tf.Tensor {
    return tf.transpose(tf.reshape(x, [b, t, n, this.config.width / this.config.numHeads]), [0, 2, 1, 3]);
  }

  /** The memory heads prepared at the segment start, batched (zeros for streams without a memory), or undefined when a stream lacks them. */
  private cachedMemoryHeads(layers: readonly LayerState[], hasMem: readonly boolean[], batch: (ts: tf.Tensor[]) => tf.Tensor): MemoryHeads | undefined {
    if (!hasMem.some(Boolean) || layers.some((ls, i) => hasMem[i] && ls.memKeys === undefined)) return undefined;
    const c = this.config;
    const zeros = (): tf.Tensor => tf.zeros([1, c.numHeads, c.numBasis, c.width / c.numHeads]);
    return {
      keys: batch(layers.map((ls, i) => (hasMem[i] ? ls.memKeys! : zeros()))),
      values: batch(layers.map((ls, i) => (hasMem[i] ? ls.memValues! : zeros()))),
    };
  }

  /** The causal mask; a whole segment's (the same every call) is kept, one row broadcast over the batch. */
  private mask(hasPrev: readonly boolean[], pos: number, t: number): tf.Tensor {
    const L = this.config.segmentLength;
    const same = hasPrev.every((p) => p === hasPrev[0]);
    if (pos !== 0 || t !== L || !same) return causalMask(hasPrev, L, pos, t);
    return this.constant(`mask:${String(hasPrev[0])}`);
  }

  /**
   * The rotary rows a single token at segment position `pos` uses (kept constants), or undefined
   * when its forward depends on the position otherwise (relative positions).
   */
  tokenRotaryRows(pos: number): { cos: tf.Tensor; sin: tf.Tensor } | undefined {
    if (this.rotaryAngles === undefined) return undefined;
    const L = this.config.segmentLength;
    const cos = this.constants.get(`rotary:cos:${L + pos}:1:110`);
    const sin = this.constants.get(`rotary:sin:${L + pos}:1:110`);
    return cos === undefined || sin === undefined ? undefined : { cos, sin };
  }

  /** One of the kept constants ({@link buildConstants}). */
  private constant(name: string): tf.Tensor {
    return this.constants.get(name)!;
  }

  /**
   * Inference: computes the derived caches of the streams at the start of a segment, all of
   * them in one batch (one graph run on the compiled path), and installs each stream's.
   */
  private prepare(states: readonly StreamState[]): void {
    const todo = states.filter((s) => !s.layers.every((l) => l.prevK !== undefined));
    if (todo.length === 0) return;
    const { readOuts, rngNext } = this.stickyReadOuts(todo);
    let starts: SegmentStartOutput[][] = [];
    tf.tidy(() => {
      const compiled = this.compiledForward();
      starts = compiled === undefined ? this.segmentStartTensors(todo, readOuts) : compiled.segmentStart(todo, readOuts);
      for (const l of starts.flat()) for (const x of [l.prevK, l.prevV, l.active, l.memKeys, l.memValues]) if (x !== undefined && x !== null) tf.keep(x);
    });
    tf.dispose(readOuts.filter((r): r is tf.Tensor => r !== undefined));
    todo.forEach((state, k) => state.setDerived(this.derivedLayers(state, starts[k]!), rngNext[k]!));
  }

  /** A stream's segment start plus, for a state restored mid-segment, its current keys and values. */
  private derivedLayers(state: StreamState, starts: readonly SegmentStartOutput[]): DerivedLayer[] {
    return this.params.layers.map((lp, i): DerivedLayer => {
      const ls = state.layers[i]!;
      // A state restored mid-segment: rebuild the current keys/values row by row, as token
      // mode made them, so a restored stream continues with the same numbers.
      let curK: tf.Tensor | null = null;
      let curV: tf.Tensor | null = null;
      for (let j = 0; j < state.pos; j++) {
        tf.tidy(() => {
          const row = tf.slice(ls.curX!, [j, 0], [1, -1]);
          const kv = this.keysValues(this.weightParts(lp, false).kv, tf.expandDims(row, 0), this.config.segmentLength + j);
          curK = tf.keep(appendRows(curK, tf.keep(tf.squeeze(kv.k, [0])), 1));
          curV = tf.keep(appendRows(curV, tf.keep(tf.squeeze(kv.v, [0])), 1));
        });
      }
      return { ...starts[i]!, curK, curV };
    });
  }

  /**
   * The tensor half of a segment start of a batch of streams (inference): per stream and layer
   * the previous segment's keys and values, the absorbed memory and its heads. `readOuts` from
   * {@link stickyReadOuts}. Tensor ops only, so a compiled graph can stand in for it.
   */
  segmentStartTensors(states: readonly StreamState[], readOuts: readonly (tf.Tensor | undefined)[]): SegmentStartOutput[][] {
    const b = states.length;
    // Per stream `[1, ...]` slices of a batch (one kernel).
    const rows = (x: tf.Tensor): tf.Tensor[] => (b === 1 ? [x] : tf.split(x, b, 0));
    const perStream: SegmentStartOutput[][] = states.map(() => []);
    this.params.layers.forEach((lp, i) => {
      const s = this.segmentStart(lp, states.map((st) => st.layers[i]!), [], false, readOuts[i]);
      const [ks, vs] = [rows(s.prevK), rows(s.prevV)];
      const actives = s.active === null ? [] : b === 1 ? [tf.squeeze(s.active, [0])] : tf.unstack(s.active);
      // The memory's keys and values per head: the same for every chunk of the segment.
      const heads = s.active !== null && s.hasMem.some(Boolean) && lp.ltmWK !== undefined && lp.ltmWV !== undefined ? memoryHeads(s.active, lp.ltmWK, lp.ltmWV, this.config.numHeads) : undefined;
      const [hk, hv] = heads === undefined ? [[], []] : [rows(heads.keys), rows(heads.values)];
      perStream.forEach((out, j) => {
        const has = s.hasMem[j] === true;
        out.push({ prevK: ks[j]!, prevV: vs[j]!, active: has ? actives[j]! : null, ...(has && heads !== undefined ? { memKeys: hk[j]!, memValues: hv[j]! } : {}) });
      });
    });
    return perStream;
  }

  /**
   * The tensors a compiled inference forward or segment start reads, by name, to be fed on
   * every run: the weights and the views derived from them (learning replaces both), and the
   * states' tensors. The kept constants of the config are marked instead ({@link markGraphConstant}).
   */
  graphInputs(states: readonly StreamState[]): Map<string, tf.Tensor> {
    const fed = new Map<string, tf.Tensor>();
    for (const [name, v] of this.params.byName) fed.set(`param:${name}`, v);
    // Rebuilds the views of weights that changed (a graph reads them instead of the eager code).
    for (const lp of this.params.layers) this.weightParts(lp, false);
    for (const [name, v] of this.views.entries()) fed.set(`view:${name}`, v);
    const fields = ['prevK', 'prevV', 'curK', 'curV', 'memKeys', 'memValues', 'active', 'memory', 'prevX'] as const;
    states.forEach((s, i) =>
      s.layers.forEach((ls, li) => {
        for (const f of fields) {
          const v = ls[f];
          if (v !== undefined && v !== null) fed.set(`state:${i}:${li}:${f}`, v);
        }
      }),
    );
    return fed;
  }

  // ---- the chunk forward ----

  private checkChunk(states: readonly StreamState[], tokens: readonly ArrayLike<number>[], training: boolean): { pos: number; t: number } {
    if (!Array.isArray(states) || states.length === 0) throw new BadInputError('states', 'expected a non-empty array of stream states');
    if (!Array.isArray(tokens) || tokens.length !== states.length) {
      throw new BadInputError('tokens', `expected one token array per state (${states.length}), got ${Array.isArray(tokens) ? tokens.length : typeof tokens}`);
    }
    const pos = states[0]!.pos;
    const t = tokens[0]!.length;
    const L = this.config.segmentLength;
    states.forEach((s, i) => {
      if (!(s instanceof StreamState) || s.isDisposed) throw new BadInputError(`states[${i}]`, 'is not a live stream state');
      if (s.config !== this.config && fingerprint(s.config) !== this.configPrint) throw new BadInputError(`states[${i}]`, 'belongs to a model with another config');
      if (s.pos !== pos) throw new BadInputError(`states[${i}]`, `is at position ${s.pos} of its segment, states[0] at ${pos}: batch streams at the same position`);
    });
    if (new Set(states).size !== states.length) throw new BadInputError('states', 'the same stream state appears twice in one batch');
    if (t === 0) throw new BadInputError('tokens', 'is empty');
    if (pos + t > L) throw new BadInputError('tokens', `${t} tokens from position ${pos} overrun the segment length ${L}; split the chunk at the boundary`);
    if (training && (pos !== 0 || t !== L)) throw new BadInputError('tokens', `training runs whole segments: got ${t} tokens at position ${pos}, need ${L} at 0`);
    tokens.forEach((row, i) => {
      if (row === null || typeof row !== 'object' || row.length !== t) throw new BadInputError(`tokens[${i}]`, `expected ${t} tokens like tokens[0], got ${row?.length}`);
      for (let j = 0; j < t; j++) {
        const id = row[j]!;
        if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) {
          throw new BadInputError(`tokens[${i}]`, `token ${j} is ${String(id)}, expected an integer in [0, ${this.config.vocabSize})`);
        }
      }
    });
    return { pos, t };
  }

  /**
   * Runs a chunk of T tokens per stream (all streams at the same segment position; pos + T <= L)
   * and returns every result; pass it to {@link commit} to advance the states (until then only
   * their derived caches may be filled). Call inside a `tf.tidy` / gradient function; nothing
   * here is kept.
   */
  forwardChunk(states: readonly StreamState[], tokens: readonly ArrayLike<number>[], options: ForwardOptions = {}): ChunkOutput {
    const training = options.training === true;
    const compiled = training ? undefined : this.compiledForward();
    if (compiled !== undefined) return compiled.forward(states, tokens);
    const { pos, t } = this.checkChunk(states, tokens, training);
    if (!training) this.prepare(states);
    const ids = new Int32Array(states.length * t);
    tokens.forEach((row, i) => {
      for (let j = 0; j < t; j++) ids[i * t + j] = row[j]!;
    });
    return this.forwardIds(states, tf.tensor1d(ids, 'int32'), pos, t, options);
  }

  /**
   * Prepares the states' segment-start caches (inference) and checks the chunk: what has to
   * run eagerly before {@link forwardIds}. Returns the chunk's position and length.
   */
  prepareChunk(states: readonly StreamState[], tokens: readonly ArrayLike<number>[]): { pos: number; t: number } {
    const chunk = this.checkChunk(states, tokens, false);
    this.prepare(states);
    return chunk;
  }

  /**
   * The host half of a segment start with sticky sampling (inference's and training's): per
   * layer the read-out Psi(s) `[c, M, N]` at the positions each of its c contracting streams
   * draws from its RNG, drawn in the order the eager forward draws them (layer by layer), and
   * each stream's RNG words after the draws. Read-outs are undefined for layers without a
   * contraction (and everywhere without sticky sampling); the caller disposes them.
   */
  stickyReadOuts(states: readonly StreamState[]): { readOuts: (tf.Tensor | undefined)[]; rngNext: number[][] } {
    const c = this.config;
    const rngs = states.map(rngOf);
    const readOuts = this.params.layers.map((_, li) => {
      const contract = states.flatMap((s, i) => (s.layers[li]!.prevX !== null && s.layers[li]!.memory !== null ? [i] : []));
      if (!c.sticky || this.basis === undefined || contract.length === 0) return undefined;
      const basis = this.basis;
      const positions = contract.map((i) => stickyResample({ mass: states[i]!.layers[li]!.prevMass }, { numSamples: c.numSamples, rng: rngs[i]! }));
      return tf.tidy(() => tf.stack(positions.map((p) => basis.evaluate(p))));
    });
    return { readOuts, rngNext: rngs.map((r) => r.getState()) };
  }

  /**
   * The dropout draws of a training forward of `rows` = b x T tokens with seed `seed`: per site
   * (0 the embedding, 1 + 2l and 2 + 2l layer l's attention and feed-forward outputs) uniform
   * draws `[rows, e]`. Empty when the config has no dropout.
   */
  dropoutDraws(seed: number, rows: number): tf.Tensor2D[] {
    if (this.config.dropout === 0) return [];
    return Array.from({ length: 1 + 2 * this.config.numLayers }, (_, site) => this.dropoutDraw(seed, site, rows));
  }

  private dropoutDraw(seed: number, site: number, rows: number): tf.Tensor2D {
    const e = this.config.width;
    return tf.tensor2d(uniformFloats(seed * 1000 + site, rows * e), [rows, e]);
  }

  /** Checks a training chunk (whole segments at position 0) as {@link forwardChunk} does, for a caller running {@link forwardIds} itself. */
  checkTrainingChunk(states: readonly StreamState[], tokens: readonly ArrayLike<number>[]): void {
    this.checkChunk(states, tokens, true);
  }

  /**
   * The chunk forward on token ids `[b * T]` (stream-major), for checked and (inference)
   * prepared states: tensor ops only, no host reads, so a compiled graph can stand in for it.
   */
  forwardIds(states: readonly StreamState[], idsTensor: tf.Tensor1D, pos: number, t: number, options: ForwardOptions = {}): ChunkOutput {
    const training = options.training === true;
    const c = this.config;
    const L = c.segmentLength;
    const b = states.length;
    const e = c.width;
    const H = c.numHeads;
    const d = e / H;
    const rngs = states.map(rngOf);
    const dropout = (x: tf.Tensor, site: number): tf.Tensor => {
      if (!training || options.dropout === false || c.dropout === 0) return x;
      const u = options.dropoutDraws?.[site] ?? this.dropoutDraw(options.dropoutSeed ?? 0, site, x.shape[0]!);
      return dropoutWith(x, c.dropout, u);
    };
    // The trunk runs on rows [b * T, e]: projections are plain rank-2 matMuls, no reshapes.
    let h: tf.Tensor = tf.transpose(tf.gather(this.params.embedding, idsTensor, 1));
    h = dropout(h, 0);
    const hasPrev = states.map((s) => s.layers[0]!.prevX !== null);
    // One token with a previous segment sees every key: no mask needed (the token-mode fast path).
    const mask = t === 1 && hasPrev.every(Boolean) ? undefined : this.mask(hasPrev, pos, t);
    const layerOut: ChunkLayerOutput[] = [];
    const kls: tf.Scalar[] = [];
    this.params.layers.forEach((lp, li) => {
      let prevK: tf.Tensor;
      let prevV: tf.Tensor;
      let memory: tf.Tensor | null;
      let hasMem: boolean[];
      let actives: (tf.Tensor | null)[] | undefined;
      let cachedHeads: MemoryHeads | undefined;
      const batch = (ts: tf.Tensor[]): tf.Tensor => (ts.length === 1 ? ts[0]! : tf.concat(ts, 0));
      if (training) {
        const start = this.segmentStart(lp, states.map((s) => s.layers[li]!), rngs, true, options.readOuts?.[li]);
        ({ prevK, prevV, hasMem } = start);
        memory = start.active;
        const rows = memory === null ? [] : tf.unstack(memory);
        actives = hasMem.map((m, i) => (m ? rows[i]! : null));
      } else {
        // Kept with their batch axis of 1: one stream needs no kernel at all.
        prevK = batch(states.map((s) => s.layers[li]!.prevK!));
        prevV = batch(states.map((s) => s.layers[li]!.prevV!));
        hasMem = states.map((s) => (s.layers[li]!.active ?? null) !== null);
        cachedHeads = this.cachedMemoryHeads(states.map((s) => s.layers[li]!), hasMem, batch);
        // The memories themselves only when their heads were not prepared (e.g. after a training chunk).
        memory = hasMem.some(Boolean) && cachedHeads === undefined ? tf.stack(states.map((s) => s.layers[li]!.active ?? tf.zeros([c.numBasis, e]))) : null;
      }
      const x = layerNorm(h, lp.ln1Gamma, lp.ln1Beta);
      // Queries, keys and values as grouped heads [3, b, H, T, d]; queries and keys rotated together.
      const qkv = this.groupHeads(tf.matMul(x as tf.Tensor2D, lp.wQKV), b, t, 3);
      const [qh, kh, vh] = tf.unstack(this.rotateGroups(qkv, L + pos, [true, true, false])) as [tf.Tensor, tf.Tensor, tf.Tensor];
      const keyParts = [prevK];
      const valueParts = [prevV];
      if (pos > 0) {
        keyParts.push(tf.stack(states.map((s) => s.layers[li]!.curK!)));
        valueParts.push(tf.stack(states.map((s) => s.layers[li]!.curV!)));
      }
      keyParts.push(kh);
      valueParts.push(vh);
      const keys = tf.concat(keyParts, 2);
      const values = tf.concat(valueParts, 2);
      let scores = tf.mul(tf.matMul(qh, keys, false, true), 1 / Math.sqrt(d));
      if (mask !== undefined) scores = tf.add(scores, mask);
      if (lp.relBias !== undefined) scores = tf.add(scores, relativeBias(lp.relBias, L, pos, t));
      const merged = tf.reshape(tf.transpose(tf.matMul(softmaxLastAxis(scores), values), [0, 2, 1, 3]), [b * t, e]);
      let a = tf.matMul(merged as tf.Tensor2D, lp.wO);
      const out: ChunkLayerOutput = { x: tf.reshape(x, [b, t, e]), k: kh, v: vh };
      if (this.basis !== undefined && (memory !== null || cachedHeads !== undefined) && hasMem.some(Boolean)) {
        // The long-term memory reads the unrotated queries.
        const qRaw = tf.unstack(qkv)[0]!;
        const weights = { wMu: lp.ltmWMu!, wSigma: lp.ltmWSigma!, wO: lp.ltmWO! };
        const ca = attendHeads(qRaw, cachedHeads ?? memoryHeads(memory!, lp.ltmWK!, lp.ltmWV!, H), weights, this.basis, c.sigmaEps);
        // Streams without a memory read zeros: their context is masked out.
        const rowHasMem = (): tf.Tensor => tf.tensor2d(hasMem.flatMap((m) => new Array<number>(t).fill(m ? 1 : 0)), [b * t, 1]);
        a = tf.add(a, hasMem.every(Boolean) ? ca.context : tf.mul(ca.context, rowHasMem()));
        out.mu = ca.mu;
        out.sigmaSq = ca.sigmaSq;
        if (training) {
          const withMem = hasMem.flatMap((m, i) => (m ? [i] : []));
          const sig = withMem.length === b ? ca.sigmaSq : tf.gather(ca.sigmaSq, tf.tensor1d(withMem, 'int32'));
          kls.push(klRegularizer(sig, { sigma0: c.klSigma0 }));
        }
      }
      if (actives !== undefined) out.active = actives;
      layerOut.push(out);
      h = tf.add(h, dropout(a, 1 + 2 * li));
      const f = tf.add(tf.matMul(gelu(tf.add(tf.matMul(layerNorm(h, lp.ln2Gamma, lp.ln2Beta) as tf.Tensor2D, lp.ffnW1), lp.ffnB1)) as tf.Tensor2D, lp.ffnW2), lp.ffnB2);
      h = tf.add(h, dropout(f, 2 + 2 * li));
    });
    const hidden = layerNorm(h, this.params.lnFinalGamma, this.params.lnFinalBeta);
    const logits = tf.matMul(hidden as tf.Tensor2D, this.params.embedding);
    const kl = kls.length === 0 ? tf.scalar(0) : (tf.div(tf.addN(kls), kls.length) as tf.Scalar);
    return { hidden: tf.reshape(hidden, [b, t, e]), logits: tf.reshape(logits, [b, t, c.vocabSize]), kl, layers: layerOut, rngNext: training ? rngs.map((r) => r.getState()) : states.map(() => undefined) };
  }

  /**
   * Folds a chunk's results into the states ({@link StreamState.advance}: caches, sticky
   * densities, counters, the roll-over at a segment's end). Disposes the per-layer tensors of
   * `out` (not `hidden`, `logits`, `kl`).
   */
  commit(states: readonly StreamState[], out: ChunkOutput): void {
    const c = this.config;
    const H = c.numHeads;
    const t = out.layers[0]!.x.shape[1]!;
    // Per layer, each stream's slices [T, e], [H, T, d] and densities [H, T].
    const perLayer = out.layers.map((lo) => {
      const xs = tf.unstack(lo.x);
      const ks = tf.unstack(lo.k);
      const vs = tf.unstack(lo.v);
      const mus = c.sticky && lo.mu !== undefined ? (lo.mu.dataSync() as Float32Array) : undefined;
      const sigmas = c.sticky && lo.sigmaSq !== undefined ? (lo.sigmaSq.dataSync() as Float32Array) : undefined;
      tf.dispose([lo.x, lo.k, lo.v, ...(lo.mu ? [lo.mu] : []), ...(lo.sigmaSq ? [lo.sigmaSq] : [])]);
      return states.map(
        (_, i): LayerChunk => ({
          x: xs[i]!,
          k: ks[i]!,
          v: vs[i]!,
          active: lo.active === undefined ? undefined : (lo.active[i] ?? null),
          mu: mus?.subarray(i * H * t, (i + 1) * H * t),
          sigmaSq: sigmas?.subarray(i * H * t, (i + 1) * H * t),
        }),
      );
    });
    states.forEach((s, i) => s.advance(perLayer.map((chunks) => chunks[i]!), out.rngNext[i]));
  }

  /**
   * Runs tokens through the model and advances the states: `tokens[i]` continues stream
   * `states[i]`. Returns LM logits `[b, T, V]` (caller disposes). Segment mode is a chunk of a
   * whole segment; token mode a chunk of one.
   */
  run(states: readonly StreamState[], tokens: readonly ArrayLike<number>[]): tf.Tensor {
    return this.runWith(states, tokens, (o) => o.logits);
  }

  /** Like {@link run} but returns the final hidden states `[b, T, e]` (e.g. for a classifier). */
  runHidden(states: readonly StreamState[], tokens: readonly ArrayLike<number>[]): tf.Tensor {
    return this.runWith(states, tokens, (o) => o.hidden);
  }

  private runWith(states: readonly StreamState[], tokens: readonly ArrayLike<number>[], pick: (o: ChunkOutput) => tf.Tensor): tf.Tensor {
    let out: ChunkOutput | undefined;
    tf.tidy(() => {
      out = this.forwardChunk(states, tokens);
      keepChunk(out);
    });
    const o = out!;
    this.commit(states, o);
    const result = pick(o);
    tf.dispose([o.hidden, o.logits, o.kl].filter((x) => x !== result));
    return result;
  }

  /**
   * Token mode: one token per stream; returns logits `[b, V]` for the next token. Streams may
   * be at different positions of their segments (they run in one batch per position).
   */
  step(states: readonly StreamState[], tokenIds: readonly number[]): tf.Tensor2D {
    if (!Array.isArray(tokenIds)) throw new BadInputError('tokenIds', 'expected an array of token ids');
    if (!Array.isArray(states) || states.length !== tokenIds.length) {
      throw new BadInputError('tokenIds', `expected one token per state (${Array.isArray(states) ? states.length : 0}), got ${tokenIds.length}`);
    }
    // Streams at different positions of their segments run as one batch per position.
    const groups = new Map<number, number[]>();
    states.forEach((s, i) => {
      const pos = s instanceof StreamState ? s.pos : -1;
      const group = groups.get(pos);
      if (group === undefined) groups.set(pos, [i]);
      else group.push(i);
    });
    if (groups.size === 1) {
      const logits = this.run(
        states,
        tokenIds.map((id) => [id]),
      );
      const flat = tf.reshape(logits, [tokenIds.length, this.config.vocabSize]) as tf.Tensor2D;
      logits.dispose();
      return flat;
    }
    const order = [...groups.values()];
    // Validate every group before running any, so a bad token advances no stream.
    for (const idx of order) this.checkChunk(idx.map((i) => states[i]!), idx.map((i) => [tokenIds[i]!]), false);
    const parts = order.map((idx) => this.step(idx.map((i) => states[i]!), idx.map((i) => tokenIds[i]!)));
    const where = new Int32Array(states.length);
    order.flat().forEach((original, row) => (where[original] = row));
    const result = tf.tidy(() => tf.gather(tf.concat(parts), tf.tensor1d(where, 'int32'))) as tf.Tensor2D;
    tf.dispose(parts);
    return result;
  }

  /**
   * Classifier head on final hidden states `[b, T, e]`: per event `[b, T, C]`, or per window
   * (mean over T) `[b, C]`.
   */
  classify(hidden: tf.Tensor, per: 'event' | 'window' = 'event'): tf.Tensor {
    const w = this.params.classifierW;
    const bias = this.params.classifierB;
    if (w === undefined || bias === undefined) throw new BadInputError('classifier', 'this model has no classifier head (config.numLabels = 0)');
    if (!(hidden instanceof tf.Tensor) || hidden.rank !== 3 || hidden.shape[2] !== this.config.width) {
      throw new BadInputError('hidden', `expected [b, T, ${this.config.width}]`);
    }
    return tf.tidy(() => {
      const x = per === 'window' ? tf.mean(hidden, 1) : hidden;
      return tf.add(project(x, w), bias);
    });
  }
}

/** tf.keep on every tensor of a chunk output (to carry it out of a tidy). */
export function keepChunk(o: ChunkOutput): void {
  tf.keep(o.hidden);
  tf.keep(o.logits);
  tf.keep(o.kl);
  for (const l of o.layers) {
    for (const x of [l.x, l.k, l.v, l.mu, l.sigmaSq]) if (x !== undefined) tf.keep(x);
    for (const m of l.active ?? []) if (m !== null) tf.keep(m);
  }
}
