/**
 * `infiniformer eval --prequential`: the data read as ONE stream from its first byte, each byte
 * scored before anything learns from it, exactly as `stream` scores a log: the main job's
 * predictor (the network mixed with what the stream taught), and its two parts alone. Same
 * bytes as the compressor baselines, so the rows compare directly.
 */
import { ContextMixer, frozenScorer, scorePrequential } from '../../src/index.js';
import type { InfiniFormer, PrequentialResult } from '../../src/index.js';

/** One predictor's figures on the stream. */
export interface PrequentialRow {
  name: string;
  bitsPerByte: number;
  seconds: number;
}

/** The main job's predictor and its parts, each over `bytes` as one stream. */
export function prequentialRows(model: InfiniFormer, bytes: Uint8Array): PrequentialRow[] {
  const net = frozenScorer(model);
  let both: PrequentialResult;
  try {
    both = scorePrequential(bytes, { network: net, mixer: new ContextMixer() });
  } finally {
    net.dispose();
  }
  const mixer = scorePrequential(bytes, { mixer: new ContextMixer() });
  return [
    { name: 'model + context mixing (the main job)', bitsPerByte: both.bitsPerByte, seconds: both.seconds },
    { name: 'model alone', bitsPerByte: both.networkBitsPerByte!, seconds: both.seconds },
    { name: 'context mixing alone', bitsPerByte: mixer.bitsPerByte, seconds: mixer.seconds },
  ];
}

/** The rows as aligned text lines. */
export function prequentialLines(rows: readonly PrequentialRow[]): string[] {
  const width = Math.max(...rows.map((r) => r.name.length));
  return [`${'one stream, prequential'.padEnd(width)}  bits/byte`, ...rows.map((r) => `${r.name.padEnd(width)}  ${r.bitsPerByte.toFixed(4).padStart(9)}`)];
}
