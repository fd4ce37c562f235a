// Runs the real command line (bin/infiniformer) as a child process.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { loadModel } from '../../src/index.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = fileURLToPath(new URL('../../bin/infiniformer', import.meta.url));
/** The committed slice of real gcc test-suite log lines. */
export const GCC_SLICE = fileURLToPath(new URL('../../data/gcc-12-test-results/gcc-heldout.txt', import.meta.url));
/** The same, relative to the repository root (where {@link cli} runs). */
export const GCC_SLICE_REL = 'data/gcc-12-test-results/gcc-heldout.txt';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Called with the child once it runs (e.g. to send it a signal). */
  onSpawn?: (child: ReturnType<typeof spawn>) => void;
  /** Written to the child's standard input, which is then closed. Default: no input. */
  input?: string | Uint8Array;
  /** Called with every chunk of standard output as it comes. */
  onStdout?: (chunk: string) => void;
  /** Called with every chunk of standard error as it comes. */
  onStderr?: (chunk: string) => void;
}

/** `infiniformer <args>` with CI=true (plain progress lines), quiet logs. */
export function cli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return runNode([BIN, ...args], options);
}

/** `node <nodeArgs>` from the repository root with CI=true (plain progress lines), quiet logs. */
export function runNode(nodeArgs: string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, nodeArgs, {
      cwd: options.cwd ?? REPO,
      env: { ...process.env, CI: 'true', INFINIFORMER_LOG_LEVEL: 'warn', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdin.on('error', () => undefined); // the child may stop before reading all of it
    child.stdin.end(options.input ?? '');
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      options.onStdout?.(d.toString());
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      options.onStderr?.(d.toString());
    });
    child.once('error', fail);
    child.once('close', (code, signal) => done({ code, signal, stdout, stderr }));
    options.onSpawn?.(child);
  });
}

/** A tiny byte-level config: seconds per run on two cores. */
export const TINY_CONFIG = {
  width: 16,
  numHeads: 2,
  numLayers: 2,
  ffnWidth: 32,
  segmentLength: 16,
  numBasis: 8,
  basisWidths: [0.05, 0.1],
  numSamples: 8,
  dropout: 0,
};

/** One output line of `infiniformer stream`. */
export interface Out {
  key: string;
  line: number;
  bits: number;
  bytes: number;
  text: string;
  truncated?: boolean;
  continued?: boolean;
}
export const outputs = (stdout: string): Out[] =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Out);
/** The JSON lines of stderr with an `event` or a `summary`. */
export const events = (stderr: string): Record<string, unknown>[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{"event"') || l.startsWith('{"summary"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** -log2 p of every byte of `bytes` under the model run directly (the first byte: log2 V). */
export async function directBits(modelDir: string, bytes: Uint8Array): Promise<number[]> {
  const model = await loadModel(modelDir);
  const ids = Array.from(bytes);
  const L = model.config.segmentLength;
  const state = model.createState(0);
  const bits = [Math.log2(model.config.vocabSize)];
  for (let at = 0; at < ids.length; at += L) {
    const chunk = ids.slice(at, at + L);
    const logits = model.run([state], [chunk]);
    const logp = tf.tidy(() => tf.logSoftmax(logits).arraySync() as number[][][]);
    logits.dispose();
    chunk.forEach((_, j) => {
      const next = ids[at + j + 1];
      if (next !== undefined) bits.push(-logp[0]![j]![next]! / Math.LN2);
    });
  }
  state.dispose();
  model.dispose();
  return bits;
}


/**
 * Options for {@link cli} that send `signal` to the child once it has written `lines` JSON output
 * lines; `sentAt()` is when (0 before).
 */
export function signalAfterLines(lines: number, signal: NodeJS.Signals): { options: Pick<CliOptions, 'onStdout' | 'onSpawn'>; sentAt: () => number } {
  let seen = 0;
  let sent = 0;
  return {
    options: {
      onStdout: (chunk) => (seen += chunk.split('\n').filter((l) => l.startsWith('{')).length),
      onSpawn: (child) => {
        const check = setInterval(() => {
          if (seen >= lines) {
            clearInterval(check);
            sent = Date.now();
            child.kill(signal);
          }
        }, 20);
      },
    },
    sentAt: () => sent,
  };
}
