/**
 * The training loop behind `infiniformer train` (loaded only when training, since it pulls in
 * TensorFlow.js): data split, model and trainer (fresh or resumed), progress, evaluation,
 * checkpoints, SIGINT, the final evaluation with and without the long-term memory, the report.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  InfiniFormer,
  Trainer,
  evaluate,
  initBackend,
  saveModel,
  setLogLevel,
  tokenStreamSource,
} from '../../src/index.js';
import type { ModelConfig, SegmentSource } from '../../src/index.js';
import { CliError, UsageError } from './command.js';
import type { TrainArgs } from './commands/train.js';
import { evalLayout, evalWithAndWithout, perByte } from './evaluation.js';
import type { EvalLayout } from './evaluation.js';
import { countLines, headLines, readData, splitAtLine } from './files.js';
import { Progress } from './progress.js';
import { readHistory, shellLine, writeReport } from './report.js';
import type { HistoryEntry, RunRecord } from './report.js';

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function readRun(file: string): RunRecord {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RunRecord;
  } catch (error) {
    throw new CliError(`cannot read ${file}: ${(error as Error).message}`);
  }
}

function writeJson(file: string, value: unknown): void {
  writeFileSync(`${file}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

/** Runs (or resumes) a training run; resolves to the exit code. */
export async function train(args: TrainArgs): Promise<number> {
  setLogLevel((process.env['INFINIFORMER_LOG_LEVEL'] as 'warn' | undefined) ?? 'warn');
  const backend = await initBackend({ workload: 'training', backend: args.backend });
  const out = args.out;
  mkdirSync(out, { recursive: true });
  const runFile = join(out, 'run.json');
  const historyFile = join(out, 'history.jsonl');
  const ckptDir = join(out, 'checkpoint');

  const data = readData(args.files);
  const cut = splitAtLine(data.bytes, args.evalFraction);
  const trainBytes = data.bytes.subarray(0, cut);
  const evalBytes = data.bytes.subarray(cut);
  const digest = sha256(data.bytes);

  const previous = args.resume ? readRun(runFile) : undefined;
  let config: Readonly<ModelConfig>;
  if (previous !== undefined) {
    if (previous.data.sha256 !== digest) throw new UsageError(`--resume: the data differ from the run's (${previous.data.files.map((f) => f.path).join(', ')})`);
    if (previous.data.evalFraction !== args.evalFraction) throw new UsageError(`--resume: --eval-fraction ${args.evalFraction} differs from the run's ${previous.data.evalFraction}`);
    if (previous.streams !== args.batch) throw new UsageError(`--resume: --batch ${args.batch} differs from the run's ${previous.streams}`);
    config = previous.config;
    if (args.configGiven) {
      if (JSON.stringify(args.config) !== JSON.stringify(config)) throw new UsageError('--resume: --config differs from the run\'s model config (leave it out to resume)');
    }
  } else {
    config = args.config;
  }
  const L = config.segmentLength;
  if (Math.floor(trainBytes.length / args.batch) < L + 1) {
    throw new UsageError(`--data: ${trainBytes.length} training bytes are too few for ${args.batch} streams of at least L + 1 = ${L + 1} bytes (lower --batch or add data)`);
  }
  const evalOn = evalBytes.length >= L + 1;
  if (args.evalFraction > 0 && !evalOn) throw new UsageError(`--eval-fraction ${args.evalFraction} leaves ${evalBytes.length} bytes, fewer than L + 1 = ${L + 1}; raise it or pass 0`);
  const periodicLayout: EvalLayout | undefined = evalOn ? evalLayout(evalBytes.length, L, args.batch) : undefined;
  const evalSegments = periodicLayout === undefined ? 0 : Math.min(args.evalSegments, periodicLayout.segments);
  const evalSource = (): SegmentSource => tokenStreamSource(evalBytes, { numStreams: periodicLayout!.streams, segmentLength: L });

  const source = tokenStreamSource(trainBytes, { numStreams: args.batch, segmentLength: L });
  let trainer: Trainer;
  if (previous !== undefined) {
    trainer = await Trainer.resume(ckptDir, source);
    if (trainer.stepCount >= args.steps) {
      process.stderr.write(`already at step ${trainer.stepCount} of --steps ${args.steps}; nothing to train (raise --steps to go on)\n`);
    }
    // Steps after the checkpoint are replayed: drop their history.
    const kept = readHistory(historyFile).filter((h) => h.step <= trainer.stepCount);
    writeFileSync(historyFile, kept.map((h) => `${JSON.stringify(h)}\n`).join(''));
  } else {
    const model = InfiniFormer.create(config, { seed: args.seed });
    trainer = new Trainer(model, source, { learningRate: args.learningRate, warmupSteps: args.warmup, totalSteps: args.scheduleSteps, seed: args.seed });
    writeFileSync(historyFile, '');
  }
  const model = trainer.model;
  const session = { argv: args.argv, cwd: process.cwd(), startedAt: new Date().toISOString(), backend, node: process.version };
  const run: RunRecord = previous ?? {
    format: 'infiniformer-train-run',
    formatVersion: 1,
    commands: [],
    data: {
      files: data.files,
      bytes: data.bytes.length,
      sha256: digest,
      evalFraction: args.evalFraction,
      trainBytes: trainBytes.length,
      trainLines: countLines(trainBytes),
      evalBytes: evalBytes.length,
      evalLines: countLines(evalBytes),
    },
    config: { ...config, basisWidths: [...config.basisWidths] },
    trainer: { ...trainer.options },
    streams: args.batch,
    steps: args.steps,
    evalEvery: args.evalEvery,
    evalSegments,
    checkpointEvery: args.checkpointEvery,
    evalMaxBytes: args.evalMaxBytes,
  };
  run.commands.push(session);
  run.steps = args.steps;
  delete run.final;
  run.status = { state: 'running', step: trainer.stepCount };
  writeJson(runFile, run);

  const startStep = trainer.stepCount;
  const progress = new Progress(startStep, args.steps);
  process.stderr.write(
    `training ${model.numParameters.toLocaleString('en-US')} parameters on ${trainBytes.length.toLocaleString('en-US')} bytes (${args.batch} streams x L ${L}), ` +
      `${evalOn ? `evaluating on ${evalBytes.length.toLocaleString('en-US')} held-back bytes` : 'no evaluation split'}; backend ${backend}` +
      `${startStep > 0 ? `; resumed at step ${startStep}` : ''}\n`,
  );

  let stop = false;
  const onSignal = (): void => {
    if (stop) process.exit(130);
    stop = true;
    progress.note('interrupt: finishing this step, then checkpointing (Ctrl-C again to quit at once)');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const checkpoint = async (): Promise<void> => {
    const tmp = `${ckptDir}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    await trainer.saveCheckpoint(tmp);
    rmSync(ckptDir, { recursive: true, force: true });
    renameSync(tmp, ckptDir);
  };

  let ema = NaN;
  let sessionTokens = 0;
  let sessionSeconds = 0;
  try {
    while (trainer.stepCount < args.steps && !stop) {
      const t0 = performance.now();
      const r = trainer.step();
      const seconds = (performance.now() - t0) / 1000;
      sessionTokens += r.tokens;
      sessionSeconds += seconds;
      const entry: HistoryEntry = { step: r.step, loss: r.loss, crossEntropy: r.crossEntropy, learningRate: r.learningRate, gradNorm: r.gradNorm, tokens: r.tokens, seconds };
      appendFileSync(historyFile, `${JSON.stringify(entry)}\n`);
      if (!Number.isFinite(r.loss)) throw new CliError(`the loss is ${r.loss} at step ${r.step}: training diverged (lower --lr)`);
      const bits = r.crossEntropy / Math.LN2;
      ema = Number.isNaN(ema) ? bits : 0.95 * ema + 0.05 * bits;
      const rate = sessionTokens / sessionSeconds;
      progress.update({ step: r.step, totalSteps: args.steps, bitsPerByte: ema, tokensPerSecond: rate, etaSeconds: ((args.steps - r.step) * r.tokens) / rate });
      if (evalOn && args.evalEvery > 0 && (r.step % args.evalEvery === 0 || r.step === args.steps)) {
        const ev = perByte(evaluate(model, evalSource(), evalSegments));
        appendFileSync(historyFile, `${JSON.stringify({ step: r.step, eval: ev })}\n`);
        progress.note(`step ${r.step}: eval ${ev.bitsPerByte.toFixed(3)} bits/byte, accuracy ${ev.accuracy.toFixed(3)} (train ${ema.toFixed(3)})`);
      }
      if (args.checkpointEvery > 0 && r.step % args.checkpointEvery === 0 && r.step < args.steps) await checkpoint();
      // Let signals and I/O through between steps.
      await new Promise((resolve) => setImmediate(resolve));
    }
    progress.finish();
    await checkpoint();
    await saveModel(model, out);
    const step = trainer.stepCount;
    if (stop && step < args.steps) {
      run.status = { state: 'interrupted', step };
      writeJson(runFile, run);
      writeReport(out, run);
      process.stderr.write(`stopped at step ${step}; checkpoint in ${ckptDir}; continue with: infiniformer ${shellLine(args.resume ? args.argv : [...args.argv, '--resume'])}\n`);
      return 130;
    }
    if (evalOn && args.evalMaxBytes > 0) {
      const bytes = headLines(evalBytes, args.evalMaxBytes);
      if (bytes.length >= L + 1) {
        const layout = evalLayout(bytes.length, L, args.batch);
        process.stderr.write(`final evaluation on ${layout.bytesScored.toLocaleString('en-US')} bytes of the evaluation split, with and without the long-term memory\n`);
        const r = evalWithAndWithout(model, bytes, layout);
        run.final = { step, layout, ...r };
      }
    }
    run.status = { state: 'finished', step };
    writeJson(runFile, run);
    writeReport(out, run);
    const tail = readHistory(historyFile).filter((h) => h.crossEntropy !== undefined).slice(-Math.max(1, Math.round((step - startStep) / 20)));
    const summary = {
      out,
      step,
      tokensPerSecond: sessionSeconds > 0 ? sessionTokens / sessionSeconds : NaN,
      trainBitsPerByte: tail.reduce((s, h) => s + h.crossEntropy! / Math.LN2, 0) / Math.max(1, tail.length),
      eval: run.final === undefined ? undefined : { withLtm: run.final.withLtm.bitsPerByte, withoutLtm: run.final.withoutLtm?.bitsPerByte },
    };
    const fin = run.final;
    process.stderr.write(
      `done: step ${step}, ${Math.round(summary.tokensPerSecond)} tokens/s, training loss ${summary.trainBitsPerByte.toFixed(3)} bits/byte` +
        `${fin === undefined ? '' : `; evaluation split ${fin.withLtm.bitsPerByte.toFixed(3)} bits/byte with LTM${fin.withoutLtm === undefined ? '' : `, ${fin.withoutLtm.bitsPerByte.toFixed(3)} without`}`}` +
        `; report: ${join(out, 'report.md')}\n`,
    );
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    trainer.dispose();
    model.dispose();
  }
}
