// A synthetic stream that needs recall from more than 4 segments back: the first segment shows
// a value (one of 8 tokens) throughout, four segments of random filler follow, and in the sixth
// a query token asks for the value. Only the answer is scored. Without a long-term memory the
// value is out of reach (the short-term window is 2 segments): chance is 1/8.
import type { SegmentSource } from '../../src/index.js';

export const RECALL_VALUES = 8;
export const RECALL_FILLERS = 16;
export const RECALL_QUERY = RECALL_VALUES + RECALL_FILLERS;
export const RECALL_VOCAB = RECALL_QUERY + 1;
export const RECALL_SEGMENTS = 6;

export function recallSource(options: { numStreams: number; segmentLength: number; seed: number }): SegmentSource {
  const { numStreams: b, segmentLength: L } = options;
  let cursor = 0;
  let lines: { tokens: Int32Array; answerAt: number }[] = [];
  // Linear congruential generator: plain, seeded, enough for a synthetic task.
  const draw = (state: { s: number }, n: number): number => {
    state.s = (Math.imul(state.s, 1664525) + 1013904223) >>> 0;
    return Math.floor((state.s / 4294967296) * n);
  };
  const makeLines = (group: number): void => {
    lines = Array.from({ length: b }, (_, i) => {
      const rng = { s: (options.seed * 1_000_003 + group * b + i) >>> 0 };
      for (let k = 0; k < 3; k++) draw(rng, 2);
      const value = draw(rng, RECALL_VALUES);
      const tokens = new Int32Array(RECALL_SEGMENTS * L + 1);
      for (let j = 0; j < tokens.length; j++) tokens[j] = j < L ? value : RECALL_VALUES + draw(rng, RECALL_FILLERS);
      const queryAt = (RECALL_SEGMENTS - 1) * L + Math.floor(L / 2);
      tokens[queryAt] = RECALL_QUERY;
      tokens[queryAt + 1] = value;
      return { tokens, answerAt: queryAt };
    });
  };
  return {
    numStreams: b,
    next() {
      const group = Math.floor(cursor / RECALL_SEGMENTS);
      const seg = cursor % RECALL_SEGMENTS;
      if (seg === 0 || lines.length === 0) makeLines(group);
      cursor += 1;
      return {
        inputs: lines.map((l) => l.tokens.slice(seg * L, seg * L + L)),
        targets: lines.map((l) => l.tokens.slice(seg * L + 1, seg * L + L + 1)),
        weights: lines.map((l) => {
          const w = new Float32Array(L);
          const at = l.answerAt - seg * L;
          if (at >= 0 && at < L) w[at] = 1;
          return w;
        }),
        reset: new Array<boolean>(b).fill(seg === 0),
      };
    },
    getState: () => ({ cursor }),
    setState(state) {
      cursor = (state as { cursor: number }).cursor;
      lines = [];
    },
  };
}
