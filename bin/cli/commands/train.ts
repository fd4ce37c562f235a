/**
 * `infiniformer train`: trains a byte-level ∞-former on text files, with a progress bar,
 * periodic evaluation on a held-back split, checkpoints, resume, and a report.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BadConfigError } from '../../../src/errors.js';
import { makeConfig } from '../../../src/model/config.js';
import type { ModelConfig } from '../../../src/model/config.js';
import { HELP, UsageError, backendOption, intOption, numberOption, parse, required } from '../command.js';
import type { Command } from '../command.js';
import { expandFiles } from '../files.js';

const usage = `Usage: infiniformer train --data <files|globs>... --out <dir> [options]

Trains a byte-level ∞-former language model on text (e.g. logs) and writes a model directory.

Required:
  --data <files|globs>    training text; repeat the option, or list several files after it
                          (globs are expanded: "logs/**/*.log")
  --out <dir>             output: the model (config.json, weights.bin), report.md, loss-curve.svg,
                          history.jsonl, run.json and checkpoint/

Options:
  --config <json>         model config overrides: a JSON file, or inline JSON ('{"width":64}');
                          fields as in ModelConfig (default: DEFAULT_CONFIG, e 128, 2 layers, L 128)
  --steps <n>             total training steps (default 1000); with --resume, train up to n
  --schedule-steps <n>    length of the learning-rate schedule (default: --steps); e.g. run the
                          first 1000 steps of a 3000-step schedule now, the rest with --resume
  --resume                continue from <out>/checkpoint (same data and options)
  --eval-fraction <f>     share of the data (the tail, whole lines) held back for evaluation
                          (default 0.05; 0 = none)
  --eval-every <n>        evaluate every n steps (default steps/20)
  --eval-segments <n>     segments per stream in those evaluations (default 8)
  --eval-max-bytes <n>    bytes of the eval split in the final evaluation (default 1000000)
  --checkpoint-every <n>  checkpoint every n steps (default steps/10; always at the end)
  --batch <n>             parallel streams per step (default 8)
  --lr <x>                peak learning rate (default 0.001)
  --warmup <n>            linear warmup steps (default min(100, schedule-steps/10))
  --seed <n>              weight initialisation and sampling seed (default 0)
  --backend <name>        auto | tensorflow | wasm | cpu (default auto: native when installed)
  -h, --help              this text

Progress (tokens/s, loss in bits per byte, ETA) goes to stderr: a bar on a terminal, plain lines
when stderr is not a TTY or CI=true. Ctrl-C checkpoints and stops; run again with --resume.

Exit codes: 0 done, 1 runtime failure, 2 bad arguments or missing files, 130 interrupted.

Example:
  infiniformer train --data ~/.cache/infiniformer/data/gcc-12-test-results/train.log \\
    --out runs/gcc --steps 2000 --batch 16
`;

/** Everything the training run needs, validated. */
export interface TrainArgs {
  argv: string[];
  files: string[];
  out: string;
  /** The model config: DEFAULT_CONFIG with the --config overrides, validated. */
  config: Readonly<ModelConfig>;
  configGiven: boolean;
  steps: number;
  scheduleSteps: number;
  resume: boolean;
  evalFraction: number;
  evalEvery: number;
  evalSegments: number;
  evalMaxBytes: number;
  checkpointEvery: number;
  batch: number;
  learningRate: number;
  warmup: number;
  seed: number;
  backend: 'auto' | 'tensorflow' | 'wasm' | 'cpu';
}


/** Reads `--config`: inline JSON or a JSON file holding an object. */
export function readConfigOption(raw: string | undefined): Record<string, unknown> {
  if (raw === undefined) return {};
  let text = raw;
  if (!raw.trim().startsWith('{')) {
    if (!existsSync(raw)) throw new UsageError(`--config: ${raw} does not exist (give a JSON file or inline JSON)`);
    text = readFileSync(raw, 'utf8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--config: not valid JSON: ${(error as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new UsageError('--config: must be a JSON object of model config fields');
  return json as Record<string, unknown>;
}

/** DEFAULT_CONFIG with `overrides`, validated; a bad field is a usage error naming it. */
export function modelConfig(overrides: Record<string, unknown>): Readonly<ModelConfig> {
  try {
    return makeConfig(overrides as Partial<ModelConfig>);
  } catch (error) {
    if (error instanceof BadConfigError) throw new UsageError(`--config: ${error.message}`);
    throw error;
  }
}

export function parseTrainArgs(argv: string[]): TrainArgs | 'help' {
  const { values, positionals } = parse({
    args: argv,
    allowPositionals: true,
    options: {
      ...HELP,
      data: { type: 'string', multiple: true },
      out: { type: 'string' },
      config: { type: 'string' },
      steps: { type: 'string' },
      'schedule-steps': { type: 'string' },
      resume: { type: 'boolean' },
      'eval-fraction': { type: 'string' },
      'eval-every': { type: 'string' },
      'eval-segments': { type: 'string' },
      'eval-max-bytes': { type: 'string' },
      'checkpoint-every': { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      warmup: { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string' },
    },
  });
  if (values.help === true) return 'help';
  const patterns = [...(values.data ?? []), ...positionals];
  if ((values.data ?? []).length === 0) throw new UsageError('--data is required (one or more files or globs)');
  const out = required('out', values.out);
  const steps = intOption('steps', values.steps, 1000, 1);
  const scheduleSteps = intOption('schedule-steps', values['schedule-steps'], steps, 1);
  const backend = backendOption(values.backend);
  const files = expandFiles('data', patterns);
  const config = modelConfig(readConfigOption(values.config));
  if (config.vocabSize < 256) throw new UsageError(`--config: vocabSize ${config.vocabSize} is too small for bytes (need >= 256; the byte tokenizer has 260)`);
  return {
    argv: ['train', ...argv],
    files,
    out,
    config,
    configGiven: values.config !== undefined,
    steps,
    scheduleSteps,
    resume: values.resume === true,
    evalFraction: numberOption('eval-fraction', values['eval-fraction'], 0.05, 0, 0.9),
    evalEvery: intOption('eval-every', values['eval-every'], Math.max(1, Math.round(steps / 20)), 0),
    evalSegments: intOption('eval-segments', values['eval-segments'], 8, 1),
    evalMaxBytes: intOption('eval-max-bytes', values['eval-max-bytes'], 1_000_000, 0),
    checkpointEvery: intOption('checkpoint-every', values['checkpoint-every'], Math.max(1, Math.round(steps / 10)), 0),
    batch: intOption('batch', values.batch, 8, 1),
    learningRate: numberOption('lr', values.lr, 1e-3, 0, 1, true),
    warmup: intOption('warmup', values.warmup, Math.min(100, Math.ceil(scheduleSteps / 10)), 0),
    seed: intOption('seed', values.seed, 0, 0),
    backend,
  };
}

const command: Command = {
  name: 'train',
  summary: 'train a byte-level model on text files (progress bar, checkpoints, resume, report)',
  usage,
  async run(argv) {
    const args = parseTrainArgs(argv);
    if (args === 'help') {
      process.stdout.write(usage);
      return 0;
    }
    if (!args.resume && existsSync(join(args.out, 'run.json'))) {
      throw new UsageError(`--out ${args.out} already holds a training run; pass --resume to continue it, or choose another directory`);
    }
    if (args.resume && !existsSync(join(args.out, 'checkpoint', 'trainer.json'))) {
      throw new UsageError(`--resume: no checkpoint in ${join(args.out, 'checkpoint')}`);
    }
    const { train } = await import('../training.js');
    return train(args);
  },
};

export default command;
