/**
 * infiniformer: the ∞-former's long-term memory as pure tensor functions.
 *
 * The pipeline, stage by stage: {@link smooth} -> {@link fitBasis} (first segment) or
 * {@link contractMemory} (later ones, with {@link stickyResample}d positions) -> the memory B,
 * read by {@link continuousAttention}.
 *
 * @packageDocumentation
 */
export * from './errors.js';
export * from './logger.js';
export * from './backend.js';
export { gaussianBasis, binMass, DEFAULT_WIDTHS } from './basis/gaussianBasis.js';
export type { GaussianBasis, GaussianBasisOptions } from './basis/gaussianBasis.js';
export { ridgeOperator, clearRidgeCache, ridgeCacheSize, DEFAULT_LAMBDA } from './basis/ridgeOperator.js';
export type { RidgeOptions } from './basis/ridgeOperator.js';
export { centredPositions, contractionPositions } from './basis/positions.js';
export { smooth, DEFAULT_SMOOTHING_KERNEL } from './memory/smooth.js';
export type { SmoothOptions, SmoothGateOptions, SmoothFixedOptions } from './memory/smooth.js';
export { fitBasis } from './memory/fitBasis.js';
export type { FitBasisOptions } from './memory/fitBasis.js';
export { reconstruct } from './memory/reconstruct.js';
export type { ReconstructOptions } from './memory/reconstruct.js';
export { contractMemory, DEFAULT_TAU } from './memory/contractMemory.js';
export type { ContractMemoryOptions } from './memory/contractMemory.js';
export { stickyResample, stickyMass, DEFAULT_STICKY_BINS } from './memory/stickyResample.js';
export type { StickyResampleOptions, StickySource } from './memory/stickyResample.js';
export { createRng } from './memory/rng.js';
export { MemoryProvenance } from './memory/provenance.js';
export type { Rng } from './memory/rng.js';
export { continuousAttention, DEFAULT_SIGMA_EPS } from './attention/continuousAttention.js';
export type { ContinuousAttentionOptions, ContinuousAttentionResult, ContinuousAttentionWeights } from './attention/continuousAttention.js';
export { klRegularizer, DEFAULT_KL_SIGMA0 } from './attention/klRegularizer.js';
export type { KlRegularizerOptions } from './attention/klRegularizer.js';
export * from './model/index.js';
export * from './tokenize/index.js';
export * from './mixing/index.js';
export * from './state/index.js';
export { OrderNByteModel, orderNCodeLength } from './baselines/orderN.js';
export type { OrderNOptions, OrderNResult } from './baselines/orderN.js';
