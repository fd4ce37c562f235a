export { ContextMixer } from './contextMixer.js';
export type { ContextMixerOptions } from './contextMixer.js';
export { StreamContext } from './streamContext.js';
export { frozenScorer, learningScorer, byteProbabilities } from './networkScorer.js';
export type { NextByteScorer } from './networkScorer.js';
export { scorePrequential } from './prequential.js';
export type { PrequentialOptions, PrequentialResult } from './prequential.js';
export { stretch, squash } from './logistic.js';
export type { SavedStream } from './streamState.js';
