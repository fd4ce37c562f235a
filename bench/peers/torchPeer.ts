/**
 * The PyTorch contender: a long-lived Python worker (peer.py) answering one JSON request per
 * line, so its rounds interleave with the library's in one run.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Contender } from './contender.js';

type Answer = Record<string, unknown> & { ok?: boolean; error?: string };

export class TorchPeer implements Contender {
  readonly name: string;
  private readonly pending: ((a: Answer) => void)[] = [];
  private exited: string | undefined;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly info: { torch: string; threads: number; python: string },
  ) {
    this.name = `PyTorch ${info.threads} thread${info.threads > 1 ? 's' : ''}`;
  }

  /** Starts the worker on a model directory written by saveModel. */
  static async start(python: string, modelDir: string, threads: number): Promise<TorchPeer> {
    const script = fileURLToPath(new URL('./peer.py', import.meta.url));
    const child = spawn(python, [script, modelDir], { env: { ...process.env, PEERS_TORCH_THREADS: String(threads) } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const lines = createInterface({ input: child.stdout });
    const first = await new Promise<Answer>((resolve, reject) => {
      lines.once('line', (l) => resolve(JSON.parse(l) as Answer));
      child.once('exit', (code) => reject(new Error(`the PyTorch worker exited (${code}) before it was ready:\n${stderr}`)));
    });
    const peer = new TorchPeer(child, first as unknown as TorchPeer['info']);
    lines.on('line', (l) => peer.pending.shift()?.(JSON.parse(l) as Answer));
    child.on('exit', (code) => {
      peer.exited = `the PyTorch worker exited (${code}):\n${stderr}`;
      for (const p of peer.pending.splice(0)) p({ ok: false, error: peer.exited });
    });
    return peer;
  }

  private async ask(request: Record<string, unknown>): Promise<Answer> {
    if (this.exited !== undefined) throw new Error(this.exited);
    const answer = await new Promise<Answer>((resolve) => {
      this.pending.push(resolve);
      this.child.stdin.write(`${JSON.stringify(request)}\n`);
    });
    if (answer.ok !== true) throw new Error(`PyTorch worker, ${String(request['op'])}: ${answer.error ?? 'no answer'}`);
    return answer;
  }

  async activate(): Promise<void> {}

  async check(reference: string, tokens: number[]): Promise<{ segmentMaxDiff: number; tokenMaxDiff: number; maxAbs: number }> {
    return (await this.ask({ op: 'check', reference, tokens })) as unknown as { segmentMaxDiff: number; tokenMaxDiff: number; maxAbs: number };
  }

  async matmul(n: number, reps: number): Promise<number[]> {
    return (await this.ask({ op: 'matmul', n, reps }))['ms'] as number[];
  }

  async segment(streams: number, segments: number): Promise<number[]> {
    return (await this.ask({ op: 'segment', streams, segments }))['ms'] as number[];
  }

  async token(tokens: number): Promise<number[]> {
    return (await this.ask({ op: 'token', tokens }))['ms'] as number[];
  }

  async train(streams: number, steps: number): Promise<number[]> {
    return (await this.ask({ op: 'train', streams, steps }))['ms'] as number[];
  }

  async fullAttention(context: number, newTokens: number, reps: number): Promise<{ ms: number[]; rssMiB: number }> {
    return (await this.ask({ op: 'full', context, new: newTokens, reps })) as unknown as { ms: number[]; rssMiB: number };
  }

  async sweepStart(): Promise<void> {
    await this.ask({ op: 'sweepStart' });
  }

  async sweep(to: number, segments: number): Promise<{ ms: number[]; rssMiB: number }> {
    return (await this.ask({ op: 'sweepRun', to, segments })) as unknown as { ms: number[]; rssMiB: number };
  }

  async sweepEnd(): Promise<void> {
    await this.ask({ op: 'sweepEnd' });
  }

  async close(): Promise<void> {
    this.child.stdin.end();
    if (this.exited === undefined) await new Promise((resolve) => this.child.once('exit', resolve));
  }
}
