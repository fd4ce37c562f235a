/**
 * infiniformer: the ∞-former's long-term memory as pure tensor functions.
 *
 * @packageDocumentation
 */
export * from './errors.js';
export * from './logger.js';
export * from './backend.js';
