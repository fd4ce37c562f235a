export { MAX_KEY_BYTES, checkKey, checkValue, storeEntries } from './keyStateStore.js';
export type { KeyStateStore } from './keyStateStore.js';
export { MemoryKeyStore } from './memoryKeyStore.js';
export { SpillingKeyStore } from './spillingKeyStore.js';
export type { SpillingKeyStoreOptions, SpillingKeyStoreStats } from './spillingKeyStore.js';
