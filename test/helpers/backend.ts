// Shared by tests: initialise the default backend once per worker, quietly.
import { initBackend } from '../../src/backend.js';
import { setLogLevel } from '../../src/logger.js';

setLogLevel((process.env['INFINIFORMER_LOG_LEVEL'] as 'warn' | undefined) ?? 'warn');
export const backendReady = initBackend();
