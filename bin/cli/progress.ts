/**
 * Training progress on stderr: a bar redrawn in place on a terminal, or plain lines (one every
 * few percent, and at evaluations) when stderr is not a TTY or `CI=true`, so logs stay readable.
 */
import { interactive } from './command.js';

/** Seconds as `1h02m`, `3m05s` or `12s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** A rate as `850`, `3.2k`. */
export function formatRate(x: number): string {
  return x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0);
}

export interface ProgressFigures {
  step: number;
  totalSteps: number;
  /** Training loss in bits per byte (smoothed). */
  bitsPerByte: number;
  tokensPerSecond: number;
  etaSeconds: number;
}

/** Draws progress; `finish()` ends the bar's line. */
export class Progress {
  private readonly tty: boolean;
  private lastPlainStep = 0;
  private readonly every: number;
  private drawn = false;

  constructor(
    private readonly firstStep: number,
    totalSteps: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = interactive(out);
    this.every = Math.max(1, Math.round((totalSteps - firstStep) / 40));
  }

  update(f: ProgressFigures): void {
    const pct = f.totalSteps > 0 ? f.step / f.totalSteps : 1;
    const figures = `step ${f.step}/${f.totalSteps}  ${formatRate(f.tokensPerSecond)} tok/s  loss ${f.bitsPerByte.toFixed(3)} bits/byte  ETA ${formatDuration(f.etaSeconds)}`;
    if (this.tty) {
      const width = 24;
      const fill = Math.round(pct * width);
      const line = `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(pct * 100).toFixed(0).padStart(3)}%  ${figures}`;
      const columns = this.out.columns ?? 120;
      this.out.write(`\r${line.slice(0, columns - 1)}\x1b[K`);
      this.drawn = true;
    } else if (f.step === this.firstStep + 1 || f.step - this.lastPlainStep >= this.every || f.step === f.totalSteps) {
      this.lastPlainStep = f.step;
      this.out.write(`${figures}\n`);
    }
  }

  /** A line of its own (evaluation results, checkpoints) above the bar. */
  note(text: string): void {
    if (this.tty && this.drawn) this.out.write('\r\x1b[K');
    this.out.write(`${text}\n`);
  }

  finish(): void {
    if (this.tty && this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}
