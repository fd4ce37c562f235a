/**
 * Bitwise context mixing over byte streams, the method of the PAQ family of compressors: each
 * byte is coded as 8 binary decisions; at each one, n-gram context models, a match model and
 * (optionally) a neural network's byte distribution each predict the bit; a gated linear mixer
 * in the logistic domain combines them, and two adaptive probability maps refine the result.
 * Everything adapts as it codes (prequential: each byte is scored before it is learned from),
 * so the model learns the stream it reads, as a compressor does.
 *
 * Learned statistics (counter tables, mixers, maps) are shared by every stream of the mixer;
 * each stream (key) has its own {@link StreamContext}: recent bytes, match pointer, contexts.
 */
import { BadConfigError, BadInputError } from '../errors.js';
import { Apm } from './apm.js';
import { CounterTable } from './counterTable.js';
import { squash, stretch } from './logistic.js';
import { Mixer } from './mixer.js';
import { NUM_HASHED_CONTEXTS, StreamContext } from './streamContext.js';

/** Options of a {@link ContextMixer}; every field has a default. */
export interface ContextMixerOptions {
  /** log2 of the shared counter table's slots (3 bytes each). Default 22 (12 MiB). */
  tableBits?: number;
  /** Updates after which a counter's learning rate stops falling (lower adapts faster). Default 60. */
  counterLimit?: number;
  /** log2 of each stream's byte history (the match model's reach). Default 20 (1 MiB). */
  historyBits?: number;
  /** log2 of each stream's match index. Default 18. */
  matchIndexBits?: number;
  /** Bytes that must repeat before the match model predicts. Default 6. */
  matchMinLength?: number;
  /** Mixer learning rate at the start; it decays toward `mixerRateFloor`. Default 0.02. */
  mixerRate?: number;
  /** Mixer learning rate after long streams. Default 0.002. */
  mixerRateFloor?: number;
}

const DEFAULTS: Required<ContextMixerOptions> = {
  tableBits: 22,
  counterLimit: 60,
  historyBits: 20,
  matchIndexBits: 18,
  matchMinLength: 6,
  mixerRate: 0.02,
  mixerRateFloor: 0.002,
};

/** Inputs of the mixer: bias, order 0, the hashed contexts, the match model, the network. */
const NUM_INPUTS = 1 + 1 + NUM_HASHED_CONTEXTS + 1 + 1;
const IN_MATCH = 2 + NUM_HASHED_CONTEXTS;
const IN_NET = IN_MATCH + 1;
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

export class ContextMixer {
  readonly options: Readonly<Required<ContextMixerOptions>>;
  private readonly counters: CounterTable;
  private readonly order0: CounterTable;
  private readonly matchMap: CounterTable;
  private readonly mixerA: Mixer;
  private readonly mixerB: Mixer;
  private readonly apm1: Apm;
  private readonly apm2: Apm;
  private readonly x = new Float64Array(NUM_INPUTS);
  private readonly slots = new Int32Array(NUM_HASHED_CONTEXTS);
  private readonly net = new ByteTree();
  private hasNet = false;
  private matchSlot = -1;
  private pMix = 0.5;
  /** Bits coded so far (all streams): the mixer's learning-rate clock. */
  private bitsCoded = 0;

  constructor(options: ContextMixerOptions = {}) {
    const o = { ...DEFAULTS, ...options };
    for (const [k, v] of Object.entries(o)) if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new BadConfigError(k, `must be a positive number, got ${String(v)}`);
    for (const k of ['historyBits', 'matchIndexBits', 'matchMinLength'] as const) if (!Number.isInteger(o[k])) throw new BadConfigError(k, `must be an integer, got ${o[k]}`);
    if (o.historyBits > 30 || o.matchIndexBits > 28) throw new BadConfigError('historyBits', 'historyBits <= 30 and matchIndexBits <= 28');
    this.options = Object.freeze(o);
    this.counters = new CounterTable(o.tableBits, o.counterLimit);
    this.order0 = new CounterTable(8, o.counterLimit);
    this.matchMap = new CounterTable(8, 255);
    this.mixerA = new Mixer(NUM_INPUTS, MATCH_STATES * 2, 0.2);
    this.mixerB = new Mixer(NUM_INPUTS, 256, 0.2);
    this.apm1 = new Apm(256, 0.02);
    this.apm2 = new Apm(65536, 0.02);
  }

  /** A new stream (key) reading with this mixer's shared statistics. */
  createStream(): StreamContext {
    const o = this.options;
    return new StreamContext({ historyBits: o.historyBits, matchIndexBits: o.matchIndexBits, matchMinLength: o.matchMinLength });
  }

  /**
   * Scores `byte` as the next byte of stream `s` and learns from it: returns -log2 p(byte).
   * `network` is a network's next-byte distribution (256 probabilities, or undefined for none).
   */
  code(s: StreamContext, byte: number, network?: ArrayLike<number>): number {
    if (!Number.isInteger(byte) || byte < 0 || byte > 255) throw new BadInputError('byte', `expected an integer in [0, 255], got ${String(byte)}`);
    this.setNetwork(network);
    let bits = 0;
    for (let k = 7; k >= 0; k--) {
      const bit = (byte >> k) & 1;
      const p = this.predictBit(s);
      bits -= Math.log2(bit === 1 ? p : 1 - p);
      this.learnBit(s, bit);
      s.pushBit(bit);
    }
    s.push(byte);
    return bits;
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
      const p = this.predictBit(s);
      walk(2 * node, depth + 1, mass * (1 - p));
      walk(2 * node + 1, depth + 1, mass * p);
    };
    walk(1, 0, 1);
    s.partial = saved.partial;
    s.bitsDone = saved.bitsDone;
    s.match.expected = saved.expected;
    return out;
  }

  private setNetwork(network: ArrayLike<number> | undefined): void {
    this.hasNet = network !== undefined;
    if (network !== undefined) {
      if (network.length < 256) throw new BadInputError('network', `expected 256 byte probabilities, got ${network.length}`);
      this.net.set(network);
    }
  }

  /** p(next bit = 1) of stream `s` at its current partial byte; fills the inputs for {@link learnBit}. */
  private predictBit(s: StreamContext): number {
    const x = this.x;
    const c0 = s.partial;
    const t = this.counters;
    x[0] = 0.3;
    x[1] = this.input(this.order0, c0);
    for (let i = 0; i < NUM_HASHED_CONTEXTS; i++) {
      const slot = (Math.imul(s.hashes[i]! ^ Math.imul(c0, 0x2f0b4f27), 0x9e3779b1) >>> 0) & t.mask;
      this.slots[i] = slot;
      x[2 + i] = this.input(t, slot);
    }
    const m = s.match;
    const eb = m.expectedBit(s.bitsDone);
    const state = eb < 0 ? 0 : m.state;
    this.matchSlot = eb < 0 ? -1 : state * 2 + eb;
    x[IN_MATCH] = eb < 0 ? 0 : stretch(this.matchMap.p(this.matchSlot));
    if (this.hasNet) {
      const sn = stretch(this.net.p1(c0));
      x[IN_NET] = sn > NET_CLIP ? NET_CLIP : sn < -NET_CLIP ? -NET_CLIP : sn;
    } else x[IN_NET] = 0;
    const la = stretch(this.mixerA.mix(x, state * 2 + (this.hasNet ? 1 : 0)));
    const lb = stretch(this.mixerB.mix(x, c0));
    const p = squash((la + lb) / 2);
    this.pMix = p;
    const p1 = this.apm1.refine(p, c0);
    const p2 = this.apm2.refine(p, c0 | (s.c1 << 8));
    return (2 * p + p1 + p2) / 4;
  }

  /** The stretched prediction of slot `i`, or 0 (no vote) for a slot never updated. */
  private input(table: CounterTable, i: number): number {
    return table.counts[i] === 0 ? 0 : stretch(table.p(i));
  }

  private learnBit(s: StreamContext, bit: number): void {
    const o = this.options;
    const lr = o.mixerRateFloor + (o.mixerRate - o.mixerRateFloor) / Math.sqrt(1 + this.bitsCoded / 65536);
    this.bitsCoded += 1;
    this.mixerA.update(this.x, bit, lr);
    this.mixerB.update(this.x, bit, lr);
    this.apm1.update(bit);
    this.apm2.update(bit);
    this.order0.update(s.partial, bit);
    for (let i = 0; i < NUM_HASHED_CONTEXTS; i++) this.counters.update(this.slots[i]!, bit);
    if (this.matchSlot >= 0) this.matchMap.update(this.matchSlot, bit);
    void this.pMix;
  }
}
