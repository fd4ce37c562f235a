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
export { recordSurprisal } from './recordSurprisal.js';
export type { RecordSurprisalOptions, RecordScore } from './recordSurprisal.js';
export { tokenize } from './tokenize.js';
export type { TokenizeOptions } from './tokenize.js';
export { detokenize } from './detokenize.js';
export type { DetokenizeOptions, DecodedText } from './detokenize.js';
export { infiniteFormer } from './infiniteFormer.js';
export type { InfiniteFormerOptions, InfiniteFormerOperator, InfiniteFormerStats, OverflowStrategy } from './infiniteFormer.js';
export { keyStateToBytes, keyStateFromBytes } from './keyState.js';
export type { KeyState } from './keyState.js';
export { predictNext } from './predictNext.js';
export type { PredictNextOptions } from './predictNext.js';
export { classify } from './classify.js';
export type { ClassifierHead, ClassifyOptions, Classification, HiddenRecord, WindowClassification } from './classify.js';
export type { ErrorSideOutput } from './sideOutput.js';
export type { TokenPrediction, Scored, TextRecord, TokenRecord, TokenInput, ModelOutput, RecordFailure } from './types.js';
export { contextMix } from './contextMix.js';
export type { ContextMixOptions, ContextMixOperator, ContextMixSnapshot } from './contextMix.js';
