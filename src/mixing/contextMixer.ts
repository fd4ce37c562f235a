/**
 * Bitwise context mixing over byte streams, the method of the PAQ family of compressors: each
 * byte is coded as 8 binary decisions; at each one, n-gram context models, a match model and
 * (optionally) a neural network's byte distribution each predict the bit; three gated linear
 * mixers in the logistic domain (weights selected by match state, by the partial byte, by the
 * last byte and bit position) combine them, a second-layer mixer combines those, and three
 * adaptive probability maps refine the result.
 * Everything adapts as it codes (prequential: each byte is scored before it is learned from),
 * so the model learns the stream it reads, as a compressor does.
 *
 * Learned statistics (counter tables, mixers, maps) are shared by every stream of the mixer;
 * each stream (key) has its own {@link StreamContext}: recent bytes, match pointer, contexts.
 */
import { BadConfigError, BadInputError, InfiniformerError, ModelFileError } from '../errors.js';
import { Apm } from './apm.js';
import { CounterTable } from './counterTable.js';
import { stretch } from './logistic.js';
import { Mixer } from './mixer.js';
import { headerInt, packBlocks, unpackBlocks, type Block } from './stateFormat.js';
import { NUM_HASHED_CONTEXTS, StreamContext } from './streamContext.js';
import { readStreamState, saveStreamState, type SavedStream } from './streamState.js';

/** "IFMX" little-endian: an infiniformer context mixer's learned state. */
const MIXER_MAGIC = 0x584d4649;
const MIXER_VERSION = 2;
const MIXER_WHAT = 'context mixer state';

/** Options of a {@link ContextMixer}; every field has a default. */
export interface ContextMixerOptions {
  /** log2 of the shared counter table's slots (4 bytes each: probability, count, check; in pairs). Default 22 (16 MiB). */
  tableBits?: number;
  /** Updates after which a counter's learning rate stops falling (lower adapts faster). Default 12. */
  counterLimit?: number;
  /** log2 of each stream's byte history (the match model's reach). Default 20 (1 MiB). */
  historyBits?: number;
  /** log2 of each stream's match index. Default 18. */
  matchIndexBits?: number;
  /** Bytes that must repeat before the match model predicts. Default 5. */
  matchMinLength?: number;
  /** Mixer learning rate at the start; it decays toward `mixerRateFloor`. Default 0.02. */
  mixerRate?: number;
  /** Mixer learning rate after long streams. Default 0.002. */
  mixerRateFloor?: number;
}

const DEFAULTS: Required<ContextMixerOptions> = {
  tableBits: 22,
  counterLimit: 12,
  historyBits: 20,
  matchIndexBits: 18,
  matchMinLength: 5,
  mixerRate: 0.02,
  mixerRateFloor: 0.002,
};

/** Inputs of the mixer: bias, order 0, the hashed contexts, the match model, the network. */
const NUM_INPUTS = 1 + 1 + NUM_HASHED_CONTEXTS + 2 + 1;
const IN_MATCH = 2 + NUM_HASHED_CONTEXTS;
const IN_NET = IN_MATCH + 2;
const NET_CLIP = 8;
const MATCH_STATES = 64;

/** A byte distribution as a binary tree of sums: node c (1..255) splits into 2c (bit 0) and 2c + 1. */
class ByteTree {
  readonly sums = new Float64Array(512);

  /** Builds the tree from 256 probabilities (any non-negative weights; a floor keeps every byte possible). */
  set(probs: ArrayLike<number>): void {
    const s = this.sums;
    for (let b = 0; b < 256; b++) s[256 + b] = probs[b]! + 1e-6;
    for (let n = 255; n >= 1; n--) s[n] = s[2 * n]! + s[2 * n + 1]!;
  }

  /** p(bit = 1) at node `c`. */
  p1(c: number): number {
    return this.sums[2 * c + 1]! / this.sums[c]!;
  }
}

/** What the prediction of one bit read, kept until the byte is complete and learned from. */
class BitTrace {
  readonly x = new Float64Array(8 * NUM_INPUTS);
  /** The context hash of each (bit, context): its slot is found again, or claimed, when the byte is learned. */
  readonly slots = new Int32Array(8 * NUM_HASHED_CONTEXTS);
  readonly confSlots = new Int32Array(8 * NUM_HASHED_CONTEXTS);
  readonly partial = new Int32Array(8);
  readonly matchSlot = new Int32Array(8);
  readonly setA = new Int32Array(8);
  readonly pA = new Float64Array(8);
  readonly pB = new Float64Array(8);
  readonly pC = new Float64Array(8);
  readonly setC = new Int32Array(8);
  readonly x2 = new Float64Array(8 * 3);
  readonly setF = new Int32Array(8);
  readonly pF = new Float64Array(8);
  readonly apm1 = new Float64Array(8);
  readonly apm2 = new Float64Array(8);
  readonly apm3 = new Float64Array(8);
}

/** A max-heap of byte-tree nodes by mass (at most 512 entries: every node is pushed once). */
class NodeHeap {
  private readonly nodes = new Int32Array(512);
  private readonly masses = new Float64Array(512);
  size = 0;

  get topMass(): number {
    return this.masses[0]!;
  }

  push(node: number, mass: number): void {
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.masses[parent]! >= mass) break;
      this.nodes[i] = this.nodes[parent]!;
      this.masses[i] = this.masses[parent]!;
      i = parent;
    }
    this.nodes[i] = node;
    this.masses[i] = mass;
  }

  /** Removes the heaviest node and returns it. */
  pop(): number {
    const top = this.nodes[0]!;
    const n = --this.size;
    const node = this.nodes[n]!;
    const mass = this.masses[n]!;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.masses[child + 1]! > this.masses[child]!) child++;
      if (this.masses[child]! <= mass) break;
      this.nodes[i] = this.nodes[child]!;
      this.masses[i] = this.masses[child]!;
      i = child;
    }
    this.nodes[i] = node;
    this.masses[i] = mass;
    return top;
  }
}

export class ContextMixer {
  readonly options: Readonly<Required<ContextMixerOptions>>;
  private readonly counters: CounterTable;
  private readonly order0: CounterTable;
  private readonly matchMap: CounterTable;
  /** Per context: (updates seen, quantised probability) -> learned p(bit = 1): how far a slot's counts can be trusted. */
  private readonly confidence: CounterTable;
  private readonly mixerA: Mixer;
  private readonly mixerB: Mixer;
  private readonly mixerC: Mixer;
  /** The second layer: mixes the three first-layer mixers' outputs, per bit position. */
  private readonly final: Mixer;
  private readonly x2 = new Float64Array(3);
  private readonly apm1: Apm;
  private readonly apm2: Apm;
  private readonly apm3: Apm;
  private readonly x = new Float64Array(NUM_INPUTS);
  private readonly trace = new BitTrace();
  private readonly net = new ByteTree();
  private hasNet = false;
  /** Bits coded so far (all streams): the mixer's learning-rate clock. */
  private bitsCoded = 0;

  constructor(options: ContextMixerOptions = {}) {
    const o = { ...DEFAULTS, ...options };
    for (const [k, v] of Object.entries(o)) if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new BadConfigError(k, `must be a positive number, got ${String(v)}`);
    for (const k of ['historyBits', 'matchIndexBits', 'matchMinLength'] as const) if (!Number.isInteger(o[k])) throw new BadConfigError(k, `must be an integer, got ${o[k]}`);
    if (o.historyBits > 30 || o.matchIndexBits > 28) throw new BadConfigError('historyBits', 'historyBits <= 30 and matchIndexBits <= 28');
    this.options = Object.freeze(o);
    this.counters = new CounterTable(o.tableBits, o.counterLimit, true);
    this.order0 = new CounterTable(8, o.counterLimit);
    this.matchMap = new CounterTable(8, 255);
    this.confidence = new CounterTable(14, 255);
    this.mixerA = new Mixer(NUM_INPUTS, MATCH_STATES * 2, 0.2);
    this.mixerB = new Mixer(NUM_INPUTS, 256, 0.2);
    this.mixerC = new Mixer(NUM_INPUTS, 256 * 8, 0.2);
    this.final = new Mixer(3, 8 * MATCH_STATES, 1 / 3);
    this.apm1 = new Apm(256, 0.02);
    this.apm2 = new Apm(65536, 0.02);
    this.apm3 = new Apm(65536, 0.02);
  }

  /** A new stream (key) reading with this mixer's shared statistics. */
  createStream(): StreamContext {
    const o = this.options;
    return new StreamContext({ historyBits: o.historyBits, matchIndexBits: o.matchIndexBits, matchMinLength: o.matchMinLength });
  }

  /**
   * Scores `byte` as the next byte of stream `s` and learns from it: returns -log2 p(byte), where
   * p is exactly the entry of {@link distribution} (learning happens once the byte is complete).
   * `network` is a network's next-byte distribution (256 probabilities, or undefined for none).
   */
  code(s: StreamContext, byte: number, network?: ArrayLike<number>): number {
    if (!Number.isInteger(byte) || byte < 0 || byte > 255) throw new BadInputError('byte', `expected an integer in [0, 255], got ${String(byte)}`);
    this.setNetwork(network);
    let bits = 0;
    for (let k = 0; k < 8; k++) {
      const bit = (byte >> (7 - k)) & 1;
      const p = this.predictBit(s, k);
      bits -= Math.log2(bit === 1 ? p : 1 - p);
      s.pushBit(bit);
    }
    this.learnByte(byte);
    s.push(byte);
    return bits;
  }

  /**
   * Everything the mixer learned, as bytes for {@link ContextMixer.restore}: options, counter
   * tables, maps, mixer weights, APMs and the learning-rate clock (about 33 MiB with the default
   * tableBits 22, most of it the counter table and the 64 K-context APM). Streams are saved apart
   * ({@link saveStream}).
   */
  saveState(): Uint8Array {
    return packBlocks(MIXER_MAGIC, MIXER_VERSION, { kind: 'ContextMixer', options: this.options, bitsCoded: this.bitsCoded }, this.stateBlocks());
  }

  /** A mixer that continues exactly where the one that made `bytes` ({@link saveState}) was; bad bytes are a ModelFileError. */
  static restore(bytes: Uint8Array): ContextMixer {
    const u = unpackBlocks(bytes, MIXER_MAGIC, MIXER_VERSION, MIXER_WHAT);
    const saved = u.header['options'];
    if (saved === null || typeof saved !== 'object' || Object.keys(DEFAULTS).some((k) => typeof (saved as Record<string, unknown>)[k] !== 'number')) {
      throw new ModelFileError(`${MIXER_WHAT}: the header lacks the mixer options`);
    }
    let m: ContextMixer;
    try {
      m = new ContextMixer(saved as ContextMixerOptions);
    } catch (cause) {
      throw new ModelFileError(`${MIXER_WHAT}: bad options (${cause instanceof InfiniformerError ? cause.message : String(cause)})`, { cause });
    }
    for (const b of m.stateBlocks()) u.readInto(b.name, b.data);
    m.bitsCoded = headerInt(u, 'bitsCoded', 0, Number.MAX_SAFE_INTEGER);
    return m;
  }

  /** The learned arrays, by name (shared by save and restore so their lists cannot drift apart). */
  private stateBlocks(): Block[] {
    const tables = { counters: this.counters, order0: this.order0, matchMap: this.matchMap, confidence: this.confidence };
    const blocks: Block[] = [];
    for (const [name, t] of Object.entries(tables)) {
      blocks.push({ name: `${name}.probs`, data: t.probs }, { name: `${name}.counts`, data: t.counts });
      if (t.checks !== undefined) blocks.push({ name: `${name}.checks`, data: t.checks });
    }
    blocks.push({ name: 'mixerA', data: this.mixerA.weights }, { name: 'mixerB', data: this.mixerB.weights }, { name: 'mixerC', data: this.mixerC.weights }, { name: 'final', data: this.final.weights });
    blocks.push({ name: 'apm1', data: this.apm1.table }, { name: 'apm2', data: this.apm2.table }, { name: 'apm3', data: this.apm3.table });
    return blocks;
  }

  /**
   * Stream `s` as bytes for {@link restoreStream} / {@link readStream}: its history (the bytes
   * written, up to the ring's size), match model, contexts, and optionally `pending`, the
   * network's distribution the caller will pass with the stream's next byte.
   */
  saveStream(s: StreamContext, pending?: ArrayLike<number>): Uint8Array {
    if (!(s instanceof StreamContext)) throw new BadInputError('stream', 'expected a StreamContext');
    const o = this.options;
    if (s.options.historyBits !== o.historyBits || s.options.matchIndexBits !== o.matchIndexBits || s.options.matchMinLength !== o.matchMinLength) {
      throw new BadInputError('stream', 'was made by a mixer with other historyBits / matchIndexBits / matchMinLength');
    }
    if (pending !== undefined && pending.length < 256) throw new BadInputError('pending', `expected 256 byte probabilities, got ${pending.length}`);
    return saveStreamState(s, pending);
  }

  /** The stream saved by {@link saveStream} (made with this mixer's stream options), and its pending distribution. */
  readStream(bytes: Uint8Array): SavedStream {
    const o = this.options;
    return readStreamState(bytes, { historyBits: o.historyBits, matchIndexBits: o.matchIndexBits, matchMinLength: o.matchMinLength });
  }

  /** The stream saved by {@link saveStream}, which must have been made with this mixer's stream options. */
  restoreStream(bytes: Uint8Array): StreamContext {
    return this.readStream(bytes).stream;
  }

  /** The full next-byte distribution of stream `s` (256 probabilities summing to 1), learning nothing. */
  distribution(s: StreamContext, network?: ArrayLike<number>, out = new Float64Array(256)): Float64Array {
    this.setNetwork(network);
    const saved = { partial: s.partial, bitsDone: s.bitsDone, expected: s.match.expected };
    const walk = (node: number, depth: number, mass: number): void => {
      if (depth === 8) {
        out[node - 256] = mass;
        return;
      }
      s.partial = node;
      s.bitsDone = depth;
      s.match.expected = saved.expected;
      s.match.checkPartial(node, depth);
      const p = this.predictBit(s, -1);
      walk(2 * node, depth + 1, mass * (1 - p));
      walk(2 * node + 1, depth + 1, mass * p);
    };
    walk(1, 0, 1);
    s.partial = saved.partial;
    s.bitsDone = saved.bitsDone;
    s.match.expected = saved.expected;
    return out;
  }

  /**
   * The `k` most likely next bytes of stream `s`, most likely first (ties: lower byte first),
   * each with its probability: exactly the top `k` entries of {@link distribution}, learning
   * nothing. The byte tree is walked best first (a node's mass bounds every byte below it), so a
   * confident prediction costs a few dozen bit predictions instead of 255.
   */
  topK(s: StreamContext, network: ArrayLike<number> | undefined, k: number): { token: number; prob: number }[] {
    this.setNetwork(network);
    const saved = { partial: s.partial, bitsDone: s.bitsDone, expected: s.match.expected };
    const open = new NodeHeap();
    const found: { token: number; prob: number }[] = [];
    open.push(1, 1);
    // Nodes come out in falling mass; stop once none left can reach the k-th byte's mass
    // (equal masses are still expanded, so ties break by byte as in distribution()).
    while (open.size > 0 && (found.length < k || open.topMass >= found[k - 1]!.prob)) {
      const mass = open.topMass;
      const node = open.pop();
      if (node >= 256) {
        found.push({ token: node - 256, prob: mass });
        continue;
      }
      const depth = 31 - Math.clz32(node);
      s.partial = node;
      s.bitsDone = depth;
      s.match.expected = saved.expected;
      s.match.checkPartial(node, depth);
      const p = this.predictBit(s, -1);
      open.push(2 * node, mass * (1 - p));
      open.push(2 * node + 1, mass * p);
    }
    s.partial = saved.partial;
    s.bitsDone = saved.bitsDone;
    s.match.expected = saved.expected;
    return found.sort((a, b) => b.prob - a.prob || a.token - b.token).slice(0, k);
  }

  private setNetwork(network: ArrayLike<number> | undefined): void {
    this.hasNet = network !== undefined;
    if (network !== undefined) {
      if (network.length < 256) throw new BadInputError('network', `expected 256 byte probabilities, got ${network.length}`);
      this.net.set(network);
    }
  }

  /**
   * p(next bit = 1) of stream `s` at its current partial byte. With `k` >= 0 (the bit's index
   * in the byte) what it read is traced for {@link learnByte}; -1 traces nothing.
   */
  private predictBit(s: StreamContext, k: number): number {
    const x = this.x;
    const c0 = s.partial;
    const t = this.counters;
    const tr = this.trace;
    x[0] = 0.3;
    x[1] = this.input(this.order0, c0);
    for (let i = 0; i < NUM_HASHED_CONTEXTS; i++) {
      const hash = Math.imul(s.hashes[i]! ^ Math.imul(c0, 0x2f0b4f27), 0x9e3779b1);
      if (k >= 0) tr.slots[k * NUM_HASHED_CONTEXTS + i] = hash;
      const slot = t.find(hash);
      const n = slot < 0 ? 0 : t.counts[slot]!;
      if (n === 0) x[2 + i] = 0;
      else {
        const conf = (i << 9) | (Math.min(n, 15) << 5) | (t.probs[slot]! >> 11);
        if (k >= 0) tr.confSlots[k * NUM_HASHED_CONTEXTS + i] = conf;
        x[2 + i] = this.confidence.counts[conf] === 0 ? t.stretched(slot) : this.confidence.stretched(conf);
      }
      if (k >= 0 && n === 0) tr.confSlots[k * NUM_HASHED_CONTEXTS + i] = -1;
    }
    const m = s.match;
    const eb = m.expectedBit(s.bitsDone);
    const state = eb < 0 ? 0 : m.state;
    const matchSlot = eb < 0 ? -1 : state * 2 + eb;
    x[IN_MATCH] = eb < 0 ? 0 : this.matchMap.stretched(matchSlot);
    // The expected bit, signed, growing with the match length: lets the mixer learn how much a long match is worth.
    x[IN_MATCH + 1] = eb < 0 ? 0 : (eb === 1 ? 1 : -1) * Math.min(m.length, 32) / 8;
    if (this.hasNet) {
      const sn = stretch(this.net.p1(c0));
      x[IN_NET] = sn > NET_CLIP ? NET_CLIP : sn < -NET_CLIP ? -NET_CLIP : sn;
    } else x[IN_NET] = 0;
    const setA = state * 2 + (this.hasNet ? 1 : 0);
    const pA = this.mixerA.mix(x, setA);
    const pB = this.mixerB.mix(x, c0);
    const setC = (s.c1 << 3) | s.bitsDone;
    const pC = this.mixerC.mix(x, setC);
    const x2 = this.x2;
    x2[0] = stretch(pA);
    x2[1] = stretch(pB);
    x2[2] = stretch(pC);
    const setF = s.bitsDone * MATCH_STATES + state;
    const p = this.final.mix(x2, setF);
    const sp = stretch(p);
    const p1 = this.apm1.refineStretched(sp, c0);
    const p2 = this.apm2.refineStretched(sp, c0 | (s.c1 << 8));
    const p3 = this.apm3.refineStretched(sp, c0 | ((Math.imul(s.hashes[1]!, 0x9e3779b1) >>> 24) << 8));
    if (k >= 0) {
      tr.x.set(x, k * NUM_INPUTS);
      tr.partial[k] = c0;
      tr.matchSlot[k] = matchSlot;
      tr.setA[k] = setA;
      tr.pA[k] = pA;
      tr.pB[k] = pB;
      tr.pC[k] = pC;
      tr.setC[k] = setC;
      tr.x2.set(x2, k * 3);
      tr.setF[k] = setF;
      tr.pF[k] = p;
      tr.apm1[k] = this.apm1.position;
      tr.apm2[k] = this.apm2.position;
      tr.apm3[k] = this.apm3.position;
    }
    return (p + p1 + p2 + p3) / 4;
  }

  /** The stretched prediction of slot `i`, or 0 (no vote) for a slot never updated. */
  private input(table: CounterTable, i: number): number {
    return table.counts[i] === 0 ? 0 : table.stretched(i);
  }

  /** Learns the 8 traced bits of `byte`, in order. */
  private learnByte(byte: number): void {
    const o = this.options;
    const tr = this.trace;
    for (let k = 0; k < 8; k++) {
      const bit = (byte >> (7 - k)) & 1;
      const lr = o.mixerRateFloor + (o.mixerRate - o.mixerRateFloor) / Math.sqrt(1 + this.bitsCoded / 65536);
      this.bitsCoded += 1;
      this.mixerA.update(tr.x, k * NUM_INPUTS, tr.setA[k]!, tr.pA[k]!, bit, lr);
      this.mixerB.update(tr.x, k * NUM_INPUTS, tr.partial[k]!, tr.pB[k]!, bit, lr);
      this.mixerC.update(tr.x, k * NUM_INPUTS, tr.setC[k]!, tr.pC[k]!, bit, lr);
      this.final.update(tr.x2, k * 3, tr.setF[k]!, tr.pF[k]!, bit, lr * 0.5);
      this.apm1.update(tr.apm1[k]!, bit);
      this.apm2.update(tr.apm2[k]!, bit);
      this.apm3.update(tr.apm3[k]!, bit);
      this.order0.update(tr.partial[k]!, bit);
      for (let i = 0; i < NUM_HASHED_CONTEXTS; i++) {
        this.counters.update(this.counters.claim(tr.slots[k * NUM_HASHED_CONTEXTS + i]!), bit);
        const conf = tr.confSlots[k * NUM_HASHED_CONTEXTS + i]!;
        if (conf >= 0) this.confidence.update(conf, bit);
      }
      if (tr.matchSlot[k]! >= 0) this.matchMap.update(tr.matchSlot[k]!, bit);
    }
  }
}
