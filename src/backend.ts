/**
 * Picks the TensorFlow.js backend: `tensorflow` (tfjs-node, native TF) when importable,
 * else `wasm`, else `cpu`. An explicit option, then the environment variable
 * `INFINIFORMER_BACKEND`, override the automatic choice. The choice is logged once.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendError, BadConfigError } from './errors.js';
import { rootLogger } from './logger.js';
import { registerWasmKernels } from './wasmKernels.js';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
const NAMES: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

/** What a process mostly runs; `auto` picks the backend measured fastest for it (docs/backends.md). */
export type BackendWorkload = 'training' | 'segments' | 'tokens';

export interface BackendOptions {
  /** `auto` (default) tries tensorflow, wasm, cpu in that order (wasm first for `workload: 'tokens'`). */
  backend?: BackendName | 'auto';
  /**
   * Default `segments`. `training` and `segments` (segment mode) prefer native tensorflow
   * (measured 1.6-3.5x faster than wasm); `tokens` (token-by-token streaming of up to ~8 streams
   * per step, latency-bound) prefers wasm, whose small ops cost less (measured 2.4x lower
   * latency for one stream). Figures: docs/backends.md, `npm run bench -- backends`. Only
   * affects `auto`.
   */
  workload?: BackendWorkload;
  /**
   * Threads of each native TensorFlow op (its intra-op pool), set when tfjs-node loads (later
   * calls cannot change it). Default: TensorFlow's own (one per core). 1 suits latency-bound
   * small ops (token mode, inference on one stream): measured token-mode p50 2.0 -> 1.2 ms and
   * the `stream --no-learn` main job ~15% less CPU on 2 loaded cores (docs/backends.md); the
   * environment variables `INFINIFORMER_NATIVE_THREADS` or TensorFlow's `TF_NUM_INTRAOP_THREADS`
   * take precedence.
   */
  nativeThreads?: number;
}

const AUTO_ORDER: Record<BackendWorkload, readonly BackendName[]> = {
  training: NAMES,
  segments: NAMES,
  tokens: ['wasm', 'tensorflow', 'cpu'],
};

const log = rootLogger.child('backend');
let chosen: BackendName | undefined;
let pending: Promise<BackendName> | undefined;

/** Sets TensorFlow's intra-op thread count for tfjs-node to read when it loads (a value the user set wins). */
function setNativeThreads(option: number | undefined): void {
  const fromEnv = process.env['INFINIFORMER_NATIVE_THREADS'];
  const n = fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : option;
  if (n === undefined) return;
  if (!Number.isInteger(n) || n < 1) throw new BadConfigError(fromEnv !== undefined && fromEnv !== '' ? 'INFINIFORMER_NATIVE_THREADS' : 'nativeThreads', `must be an integer >= 1, got ${String(fromEnv ?? option)}`);
  process.env['TF_NUM_INTRAOP_THREADS'] ??= String(n);
}

async function tryLoad(name: BackendName): Promise<boolean> {
  try {
    if (name === 'tensorflow') {
      // Optional dependency: built by `npm run setup:native`; absent on most machines.
      const moduleName = '@tensorflow/tfjs-node';
      // TensorFlow's C++ info/warning logs (e.g. the CPU-features notice) go to stderr unless
      // told otherwise; keep them out of streams' logs, but respect a value the user set.
      process.env['TF_CPP_MIN_LOG_LEVEL'] ??= '2';
      await import(moduleName);
    } else if (name === 'wasm') {
      await import('@tensorflow/tfjs-backend-wasm');
      registerWasmKernels();
    }
    return await tf.setBackend(name);
  } catch (error) {
    log.debug('backend unavailable', { backend: name, error: String(error) });
    return false;
  }
}

function requested(options: BackendOptions): BackendName | 'auto' {
  if (options.workload !== undefined && !Object.hasOwn(AUTO_ORDER, options.workload)) {
    throw new BadConfigError('workload', `unknown workload "${String(options.workload)}"; use one of ${Object.keys(AUTO_ORDER).join(', ')}`);
  }
  const fromOption = options.backend;
  if (fromOption !== undefined) {
    if (fromOption !== 'auto' && !NAMES.includes(fromOption)) {
      throw new BadConfigError('backend', `unknown backend "${String(fromOption)}"; use one of ${NAMES.join(', ')} or auto`);
    }
    return fromOption;
  }
  const fromEnv = process.env['INFINIFORMER_BACKEND'];
  if (fromEnv !== undefined && fromEnv !== '') {
    if (fromEnv !== 'auto' && !NAMES.includes(fromEnv as BackendName)) {
      throw new BadConfigError('INFINIFORMER_BACKEND', `unknown backend "${fromEnv}"; use one of ${NAMES.join(', ')} or auto`);
    }
    return fromEnv as BackendName | 'auto';
  }
  return 'auto';
}

/**
 * Select and initialise the backend. Idempotent: later calls return the first choice unless
 * a different explicit backend is asked for.
 */
export async function initBackend(options: BackendOptions = {}): Promise<BackendName> {
  const want = requested(options);
  setNativeThreads(options.nativeThreads);
  if (chosen !== undefined && (want === 'auto' || want === chosen)) return chosen;
  if (pending !== undefined && want === 'auto') return pending;
  pending = (async () => {
    const order = want === 'auto' ? AUTO_ORDER[options.workload ?? 'segments'] : [want];
    for (const name of order) {
      if (await tryLoad(name)) {
        await tf.ready();
        const first = chosen === undefined;
        chosen = name;
        if (first || want !== 'auto') log.info('backend selected', { backend: name, requested: want });
        return name;
      }
    }
    throw new BackendError(`backend "${want}" could not be initialised (tried ${order.join(', ')})`);
  })();
  try {
    return await pending;
  } finally {
    pending = undefined;
  }
}

/** The backend chosen by {@link initBackend}, or undefined before it ran. */
export function currentBackend(): BackendName | undefined {
  return chosen;
}
