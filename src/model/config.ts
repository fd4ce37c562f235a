/**
 * The ∞-former's configuration: every size and hyper-parameter of the trunk, the short-term
 * attention and the long-term memory, validated once so the model code can trust it.
 */
import { BadConfigError } from '../errors.js';

/** How the short-term attention encodes positions (the long-term memory needs none). */
export type PositionScheme = 'rotary' | 'relative';

/** Every field of a model configuration. See {@link DEFAULT_CONFIG} for the defaults. */
export interface ModelConfig {
  /** Vocabulary size V (the byte tokenizer has 260). */
  vocabSize: number;
  /** Model width e. Must be divisible by `numHeads`. */
  width: number;
  /** Attention heads H (short- and long-term); head width d = e / H, even for rotary. */
  numHeads: number;
  /** Number of layers. */
  numLayers: number;
  /** Hidden width of the feed-forward block. */
  ffnWidth: number;
  /** Segment length L: tokens per segment; the short-term window is the previous segment plus the current one. */
  segmentLength: number;
  /** Turn the long-term memory on (true) or off (a plain Transformer-XL-style model). */
  longTermMemory: boolean;
  /** Number of Gaussian basis functions N. A multiple of `basisWidths.length`. */
  numBasis: number;
  /** Standard deviations of the basis functions; scale them with 1 / (N / widths). */
  basisWidths: number[];
  /** Ridge penalty lambda of the basis fit. */
  ridgeLambda: number;
  /** Zero-pad the ridge regression as the reference does. */
  ridgePad: boolean;
  /** Samples M taken from the old signal at each contraction. */
  numSamples: number;
  /** Share tau of [0, 1] given to the past at each contraction, in (0, 1). */
  tau: number;
  /** Sticky memories: sample the old signal where attention went (true) or uniformly (false). */
  sticky: boolean;
  /** Sticky histogram bins D. */
  stickyBins: number;
  /** Floor of the continuous attention's sigma^2. */
  sigmaEps: number;
  /** Dropout rate used during training (residual branches and attention outputs). */
  dropout: number;
  /** Weight of the KL regulariser on the continuous attention's sigma^2. */
  klWeight: number;
  /** sigma_0 of the KL regulariser. */
  klSigma0: number;
  /** Position scheme of the short-term attention. */
  positions: PositionScheme;
  /** Classifier labels C; 0 = no classifier head. */
  numLabels: number;
}

/**
 * Defaults sized for streaming on a 2-core CPU (wasm, one thread): e = 128, 2 layers, 4 heads,
 * L = 128, N = M = 128 with widths {0.01, 0.02} (scaled to N = 128 as DESIGN §2.3 says).
 * Measured with `npx tsx bench/model.ts` on the 2-core build machine (shared, so indicative):
 * token mode p50 2.1 ms / p99 8.8 ms on wasm (10 ms p50 on tfjs-node, whose per-op overhead
 * dominates single tokens); segment mode 1.8k tokens/s on wasm and 3.4k on native for one
 * stream, 2.4k and 10k for 8 batched streams; RSS and tf.memory() flat over 10^5 tokens. So one
 * core keeps up with a few hundred events per second token by token, and batched segment mode
 * with thousands.
 */
export const DEFAULT_CONFIG: Readonly<ModelConfig> = Object.freeze({
  vocabSize: 260,
  width: 128,
  numHeads: 4,
  numLayers: 2,
  ffnWidth: 512,
  segmentLength: 128,
  longTermMemory: true,
  numBasis: 128,
  basisWidths: [0.01, 0.02],
  ridgeLambda: 0.5,
  ridgePad: true,
  numSamples: 128,
  tau: 0.5,
  sticky: false,
  stickyBins: 128,
  sigmaEps: 1e-4,
  dropout: 0.1,
  klWeight: 1e-6,
  klSigma0: 0.05,
  positions: 'rotary',
  numLabels: 0,
});

const KEYS = Object.keys(DEFAULT_CONFIG) as (keyof ModelConfig)[];

function int(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new BadConfigError(name, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function num(name: string, v: unknown, lo: number, hi: number, open: boolean): number {
  const ok = typeof v === 'number' && Number.isFinite(v) && (open ? v > lo && v < hi : v >= lo && v <= hi);
  if (!ok) throw new BadConfigError(name, `must be a number in ${open ? '(' : '['}${lo}, ${hi}${open ? ')' : ']'}, got ${JSON.stringify(v)}`);
  return v as number;
}

function bool(name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new BadConfigError(name, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Validates a complete configuration (every field present, no unknown fields) and returns a
 * frozen copy. Errors are {@link BadConfigError}s naming the field.
 */
export function validateConfig(input: unknown): Readonly<ModelConfig> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new BadConfigError('config', 'must be an object');
  const c = input as Record<string, unknown>;
  for (const k of KEYS) if (!(k in c)) throw new BadConfigError(k, 'is missing');
  for (const k of Object.keys(c)) if (!KEYS.includes(k as keyof ModelConfig)) throw new BadConfigError(k, 'is not a config field');
  const width = int('width', c['width'], 1);
  const numHeads = int('numHeads', c['numHeads'], 1);
  if (width % numHeads !== 0) throw new BadConfigError('numHeads', `must divide width ${width}, got ${numHeads}`);
  const positions = c['positions'];
  if (positions !== 'rotary' && positions !== 'relative') throw new BadConfigError('positions', `must be "rotary" or "relative", got ${JSON.stringify(positions)}`);
  if (positions === 'rotary' && (width / numHeads) % 2 !== 0) throw new BadConfigError('numHeads', `rotary positions need an even head width, got ${width / numHeads}`);
  const widths = c['basisWidths'];
  if (!Array.isArray(widths) || widths.length === 0) throw new BadConfigError('basisWidths', 'must be a non-empty array');
  widths.forEach((w, i) => num(`basisWidths[${i}]`, w, 0, Infinity, true));
  const numBasis = int('numBasis', c['numBasis'], 1);
  if (numBasis % widths.length !== 0) throw new BadConfigError('numBasis', `must be a multiple of basisWidths.length (${widths.length}), got ${numBasis}`);
  const config: ModelConfig = {
    vocabSize: int('vocabSize', c['vocabSize'], 2),
    width,
    numHeads,
    numLayers: int('numLayers', c['numLayers'], 1),
    ffnWidth: int('ffnWidth', c['ffnWidth'], 1),
    segmentLength: int('segmentLength', c['segmentLength'], 1),
    longTermMemory: bool('longTermMemory', c['longTermMemory']),
    numBasis,
    basisWidths: [...(widths as number[])],
    ridgeLambda: num('ridgeLambda', c['ridgeLambda'], 0, Infinity, true),
    ridgePad: bool('ridgePad', c['ridgePad']),
    numSamples: int('numSamples', c['numSamples'], 1),
    tau: num('tau', c['tau'], 0, 1, true),
    sticky: bool('sticky', c['sticky']),
    stickyBins: int('stickyBins', c['stickyBins'], 1),
    sigmaEps: num('sigmaEps', c['sigmaEps'], 0, Infinity, true),
    dropout: num('dropout', c['dropout'], 0, 1, false),
    klWeight: num('klWeight', c['klWeight'], 0, Infinity, false),
    klSigma0: num('klSigma0', c['klSigma0'], 0, Infinity, true),
    positions,
    numLabels: int('numLabels', c['numLabels'], 0),
  };
  if (config.dropout >= 1) throw new BadConfigError('dropout', 'must be below 1');
  return Object.freeze(config);
}

/** {@link DEFAULT_CONFIG} overridden by `overrides`, validated. */
export function makeConfig(overrides: Partial<ModelConfig> = {}): Readonly<ModelConfig> {
  if (overrides === null || typeof overrides !== 'object') throw new BadConfigError('config', 'overrides must be an object');
  return validateConfig({ ...DEFAULT_CONFIG, basisWidths: [...DEFAULT_CONFIG.basisWidths], ...overrides });
}
