/**
 * RxJS operators over the ∞-former's stages and outputs. One operator per file.
 *
 * @packageDocumentation
 */
export { segment } from './segment.js';
export type { SegmentOptions } from './segment.js';
export { smooth } from './smooth.js';
export { fitBasis } from './fitBasis.js';
export { contractMemory } from './contractMemory.js';
export type { ContractMemoryOperatorOptions } from './contractMemory.js';
export { stickyResample } from './stickyResample.js';
export type { StickyResampleOperatorOptions } from './stickyResample.js';
export { continuousAttention } from './continuousAttention.js';
export type { ContinuousAttentionOperatorOptions } from './continuousAttention.js';
export { MemoryState } from './memoryState.js';
export { asFrame, disposeFrame } from './memoryFrame.js';
export type { MemoryFrame } from './memoryFrame.js';
export type { FrameFailure, StageOptions } from './mapFrames.js';
export { perplexity } from './perplexity.js';
export type { PerplexityOptions, WithPerplexity } from './perplexity.js';
export { anomalies, quantileOf } from './anomalies.js';
export type { AnomalyOptions, QuantileAnomalyOptions, ThresholdAnomalyOptions, WithAnomaly } from './anomalies.js';
export type { TokenPrediction, Scored } from './types.js';
