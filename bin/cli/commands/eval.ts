/**
 * `infiniformer eval`: bits per byte and perplexity of a saved model on text files, with and
 * without its long-term memory.
 */
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { HELP, UsageError, backendOption, intOption, mustExist, parse, required } from '../command.js';
import type { Command } from '../command.js';
import { countLines, expandFiles, headLines, readData } from '../files.js';

const usage = `Usage: infiniformer eval --model <dir> --data <files|globs>... [options]

Bits per byte and perplexity (per byte) of a byte-level model on text, with and without its
long-term memory. The text is cut into --streams contiguous streams, each read segment after
segment with its memory carried along, as in training; every byte after the first of a stream
is predicted once.

"Without LTM": the same weights with the long-term memory's reads switched off in every layer
(the short-term attention over the previous and current segment is unchanged). That is how the
model computes the first segment of any stream, so the gap is what the trained model gains from
its memory; it is not the loss of a model trained without one.

Baselines, on the same bytes (all of the data read, after --max-bytes; compressed size in bits
per byte of input, headers included): gzip -9 and brotli -11 (Node's zlib), xz -9e, zstd -19 and
PPMd (7z -m0=PPMd -mx=9) when those programs are on PATH (a row says "not installed" otherwise),
and an adaptive order-2 byte model learned from nothing as it reads (ideal code length). They
read one stream from the first byte; the model's --streams each start from an empty memory.

Required:
  --model <dir>           a model directory (config.json + weights.bin), e.g. models/default
  --data <files|globs>    text to evaluate on; repeat the option or list several files after it

Options:
  --prequential           read the data as ONE stream from its first byte, as \`stream\` does:
                          each byte scored before anything learns from it; rows for the
                          model mixed with what the stream taught (the main job), the model
                          alone, and the context mixing alone (instead of the --streams table);
                          the model learns each whole segment after scoring it, as stream does
  --no-learn              --prequential: frozen weights
  --streams <n>           parallel streams (default 8)
  --max-bytes <n>         evaluate only the first n bytes (whole lines) of the data
  --no-baselines          do not compute the baselines (below)
  --json                  print the figures as one JSON object on stdout
  --append-report <file>  append the command and a table of the figures to a markdown file
                          (e.g. the model's report.md)
  --backend <name>        auto | tensorflow | wasm | cpu (default auto)
  -h, --help              this text

Exit codes: 0 done, 1 runtime failure (e.g. a corrupt model), 2 bad arguments or missing files.

Example:
  infiniformer eval --model models/default --data data/gcc-12-test-results/gcc-heldout.txt
`;


/** argv without one string option (`--name value` or `--name=value`). */
function withoutOption(argv: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === name) i += 1;
    else if (!argv[i]!.startsWith(`${name}=`)) out.push(argv[i]!);
  }
  return out;
}

const command: Command = {
  name: 'eval',
  summary: 'bits per byte and perplexity of a model on text, with and without its long-term memory',
  usage,
  async run(argv) {
    const { values, positionals } = parse({
      args: argv,
      allowPositionals: true,
      options: {
        ...HELP,
        model: { type: 'string' },
        data: { type: 'string', multiple: true },
        streams: { type: 'string' },
        'max-bytes': { type: 'string' },
        'no-baselines': { type: 'boolean' },
        prequential: { type: 'boolean' },
        'no-learn': { type: 'boolean' },
        json: { type: 'boolean' },
        'append-report': { type: 'string' },
        backend: { type: 'string' },
      },
    });
    if (values.help === true) {
      process.stdout.write(usage);
      return 0;
    }
    const modelDir = required('model', values.model);
    if ((values.data ?? []).length === 0) throw new UsageError('--data is required (one or more files or globs)');
    const streams = intOption('streams', values.streams, 8, 1);
    const maxBytes = intOption('max-bytes', values['max-bytes'], 0, 1);
    const backend = backendOption(values.backend);
    mustExist('model', modelDir, 'dir');
    if (!existsSync(join(modelDir, 'config.json'))) throw new UsageError(`--model: ${modelDir} has no config.json (not a model directory)`);
    const files = expandFiles('data', [...(values.data ?? []), ...positionals]);

    const { initBackend, loadModel, setLogLevel } = await import('../../../src/index.js');
    const { evalLayout, evalWithAndWithout } = await import('../evaluation.js');
    const { baselineLines, baselineTable, evalTable, shellLine, tildePath, WITHOUT_LTM_NOTE } = await import('../report.js');
    const { compressorBaselines } = await import('../baselines.js');
    setLogLevel((process.env['INFINIFORMER_LOG_LEVEL'] as 'warn' | undefined) ?? 'warn');
    const chosen = await initBackend({ workload: 'segments', backend: backend });
    const data = readData(files);
    const bytes = headLines(data.bytes, maxBytes);
    const model = await loadModel(modelDir);
    try {
      if (model.config.vocabSize < 256 || model.tokenizer?.kind !== 'byte') throw new UsageError(`--model: ${modelDir} is not a byte-level model`);
      if (values.prequential === true) {
        const { prequentialLines, prequentialRows } = await import('../prequential.js');
        const rows = prequentialRows(model, bytes, values['no-learn'] !== true);
        const baselines = values['no-baselines'] === true ? undefined : await compressorBaselines(bytes);
        if (values.json === true) process.stdout.write(`${JSON.stringify({ model: modelDir, data: { files: data.files, bytes: bytes.length }, backend: chosen, prequential: rows, ...(baselines === undefined ? {} : { baselines }) })}\n`);
        else process.stdout.write(`${[`data         ${files.join(', ')}: ${bytes.length.toLocaleString('en-US')} bytes`, '', ...prequentialLines(rows), ...(baselines === undefined ? [] : ['', ...baselineLines(baselines, bytes.length)])].join('\n')}\n`);
        return 0;
      }
      const layout = evalLayout(bytes.length, model.config.segmentLength, streams);
      const started = performance.now();
      const r = evalWithAndWithout(model, bytes, layout);
      const seconds = (performance.now() - started) / 1000;
      const baselines = values['no-baselines'] === true ? undefined : await compressorBaselines(bytes);
      const result = {
        model: modelDir,
        data: { files: data.files, bytes: bytes.length, lines: countLines(bytes) },
        backend: chosen,
        ...layout,
        withLtm: r.withLtm,
        withoutLtm: r.withoutLtm,
        seconds,
        ...(baselines === undefined ? {} : { baselines }),
      };
      if (values.json === true) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
      } else {
        const f = (x: number, d = 4): string => x.toFixed(d).padStart(10);
        const lines = [
          `model        ${modelDir} (${model.numParameters.toLocaleString('en-US')} parameters, long-term memory ${model.config.longTermMemory ? 'on' : 'off'})`,
          `data         ${files.join(', ')}: ${bytes.length.toLocaleString('en-US')} bytes, ${result.data.lines.toLocaleString('en-US')} lines`,
          `layout       ${layout.streams} streams x ${layout.segments} segments of ${model.config.segmentLength} bytes = ${layout.bytesScored.toLocaleString('en-US')} bytes predicted (${seconds.toFixed(1)} s, ${chosen})`,
          '',
          `                 bits/byte  perplexity    accuracy`,
          `with LTM        ${f(r.withLtm.bitsPerByte)}  ${f(r.withLtm.perplexity)}  ${f(r.withLtm.accuracy)}`,
        ];
        if (r.withoutLtm !== undefined) {
          lines.push(`without LTM     ${f(r.withoutLtm.bitsPerByte)}  ${f(r.withoutLtm.perplexity)}  ${f(r.withoutLtm.accuracy)}`);
          const gain = r.withoutLtm.bitsPerByte - r.withLtm.bitsPerByte;
          lines.push('', `the long-term memory saves ${gain.toFixed(4)} bits/byte (${((100 * gain) / r.withoutLtm.bitsPerByte).toFixed(2)}%)`);
        }
        if (baselines !== undefined) lines.push('', ...baselineLines(baselines, bytes.length));
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      if (values['append-report'] !== undefined) {
        const md = [
          '',
          `## Evaluation: ${files.map((p) => `\`${tildePath(p)}\``).join(', ')}`,
          '',
          '```sh',
          `npx infiniformer ${shellLine(['eval', ...withoutOption(argv, '--append-report')].map(tildePath))}`,
          '```',
          '',
          `${bytes.length.toLocaleString('en-US')} bytes (${result.data.lines.toLocaleString('en-US')} whole lines); ${layout.streams} streams x ${layout.segments} segments x ${model.config.segmentLength} = ${layout.bytesScored.toLocaleString('en-US')} bytes predicted; backend ${chosen}.`,
          '',
          ...evalTable(r.withLtm, r.withoutLtm),
          '',
          WITHOUT_LTM_NOTE,
          '',
          ...(baselines === undefined ? [] : [...baselineTable(baselines, bytes.length), '']),
        ];
        appendFileSync(values['append-report'], md.join('\n'));
      }
      return 0;
    } finally {
      model.dispose();
    }
  },
};

export default command;
