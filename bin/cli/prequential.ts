/**
 * `infiniformer eval --prequential`: the data read as ONE stream from its first byte, each byte
 * scored before anything learns from it, exactly as `stream` scores a log: the main job's
 * predictor (the network mixed with what the stream taught), and its two parts alone. Same
 * bytes as the compressor baselines, so the rows compare directly.
 */
import { ContextMixer, OnlineLearner, frozenScorer, learningScorer, scorePrequential } from '../../src/index.js';
import type { InfiniFormer, PrequentialResult } from '../../src/index.js';

/** One predictor's figures on the stream. */
export interface PrequentialRow {
  name: string;
  bitsPerByte: number;
  seconds: number;
}

/**
 * The main job's predictor and its parts, each over `bytes` as one stream. With `learn` the
 * network learns every whole segment after scoring it (what \`stream\` does while it keeps up;
 * the weights of `model` change); without, it is frozen.
 */
export function prequentialRows(model: InfiniFormer, bytes: Uint8Array, learn = true, learningRate = 3e-4): PrequentialRow[] {
  const learner = learn ? new OnlineLearner(model, { learningRate }) : undefined;
  const net = learner !== undefined ? learningScorer(learner, model.createState(0)) : frozenScorer(model);
  let both: PrequentialResult;
  try {
    both = scorePrequential(bytes, { network: net, mixer: new ContextMixer() });
  } finally {
    net.dispose(); // and the state it reads with
    learner?.dispose();
  }
  const mixer = scorePrequential(bytes, { mixer: new ContextMixer() });
  const how = learn ? `learning, ${both.segmentsLearned} segments stepped on` : 'frozen';
  return [
    { name: `model (${how}) + context mixing: the main job`, bitsPerByte: both.bitsPerByte, seconds: both.seconds },
    { name: `model (${how}) alone`, bitsPerByte: both.networkBitsPerByte!, seconds: both.seconds },
    { name: 'context mixing alone', bitsPerByte: mixer.bitsPerByte, seconds: mixer.seconds },
  ];
}

/** The rows as aligned text lines. */
export function prequentialLines(rows: readonly PrequentialRow[]): string[] {
  const width = Math.max(...rows.map((r) => r.name.length));
  return [`${'one stream, prequential'.padEnd(width)}  bits/byte`, ...rows.map((r) => `${r.name.padEnd(width)}  ${r.bitsPerByte.toFixed(4).padStart(9)}`)];
}
