// `infiniformer eval` prints the numbers evaluate() gives when called directly on the saved
// model, with the long-term memory and without it (the model directory's config switched to
// longTermMemory: false, loaded through the file format: an independent path to the same model).
// The baselines it prints on the same bytes equal zlib, the xz program and the order-2 model run
// here on those bytes.
import test from 'ava';
import { execSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { InfiniFormer, evaluate, loadModel, orderNCodeLength, saveModel, tokenStreamSource } from '../../src/index.js';
import type { EvalResult } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { cli, GCC_SLICE, GCC_SLICE_REL, TINY_CONFIG } from './helpers.js';

let root = '';
let modelDir = '';
let noLtmDir = '';
test.before(async () => {
  await backendReady;
  root = await mkdtemp(join(tmpdir(), 'infiniformer-cli-eval-'));
  modelDir = join(root, 'model');
  const model = InfiniFormer.create(TINY_CONFIG, { seed: 3 });
  await saveModel(model, modelDir);
  model.dispose();
  // The same weights file, the config saying the long-term memory is off.
  noLtmDir = join(root, 'model-no-ltm');
  await mkdir(noLtmDir);
  await copyFile(join(modelDir, 'weights.bin'), join(noLtmDir, 'weights.bin'));
  const json = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')) as { config: { longTermMemory: boolean } };
  json.config.longTermMemory = false;
  await writeFile(join(noLtmDir, 'config.json'), JSON.stringify(json));
});
test.after.always(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
});

interface Figures {
  bitsPerByte: number;
  perplexity: number;
  crossEntropy: number;
  accuracy: number;
}
interface Baseline {
  name: string;
  command: string;
  compressedBytes?: number;
  bitsPerByte?: number;
  skipped?: string;
}
interface EvalJson {
  baselines?: Baseline[];
  streams: number;
  segments: number;
  bytesScored: number;
  data: { bytes: number; lines: number };
  withLtm: Figures;
  withoutLtm: Figures;
}

/** evaluate() on `bytes` with the layout the command documents: contiguous streams, one pass. */
async function direct(dir: string, bytes: Uint8Array, maxStreams: number): Promise<{ r: EvalResult; streams: number; segments: number }> {
  const model = await loadModel(dir);
  const L = model.config.segmentLength;
  const streams = Math.min(maxStreams, Math.floor(bytes.length / (L + 1)));
  const segments = Math.floor((Math.floor(bytes.length / streams) - 1) / L);
  const r = evaluate(model, tokenStreamSource(bytes, { numStreams: streams, segmentLength: L }), segments);
  model.dispose();
  return { r, streams, segments };
}

function close(t: { true: (v: boolean, m?: string) => void }, cliFig: Figures, r: EvalResult, what: string): void {
  t.true(Math.abs(cliFig.bitsPerByte - r.bitsPerToken) < 1e-6, `${what}: bits/byte ${cliFig.bitsPerByte} vs ${r.bitsPerToken}`);
  t.true(Math.abs(cliFig.crossEntropy - r.crossEntropy) < 1e-6, `${what}: nats`);
  t.true(Math.abs(cliFig.perplexity - Math.exp(r.crossEntropy)) < 1e-5, `${what}: perplexity`);
  t.true(Math.abs(cliFig.accuracy - r.accuracy) < 1e-9, `${what}: accuracy`);
}

test.serial('--json: the figures equal evaluate() on the saved model, with and without the long-term memory', async (t) => {
  const res = await cli(['eval', '--model', modelDir, '--data', GCC_SLICE_REL, '--max-bytes', '6000', '--streams', '3', '--json']);
  t.is(res.code, 0, res.stderr);
  const out = JSON.parse(res.stdout) as EvalJson;
  // --max-bytes keeps whole lines: the bytes up to the last newline within the first 6000.
  const all = new Uint8Array(await readFile(GCC_SLICE));
  let end = 6000;
  while (all[end - 1] !== 10) end -= 1;
  const bytes = all.subarray(0, end);
  t.is(out.data.bytes, end);
  t.is(out.data.lines, bytes.filter((b) => b === 10).length);
  const on = await direct(modelDir, bytes, 3);
  const off = await direct(noLtmDir, bytes, 3);
  t.is(out.streams, on.streams);
  t.is(out.segments, on.segments);
  t.is(out.bytesScored, on.streams * on.segments * TINY_CONFIG.segmentLength);
  t.is(on.r.count, out.bytesScored);
  close(t, out.withLtm, on.r, 'with LTM');
  close(t, out.withoutLtm, off.r, 'without LTM');
  t.log(`with LTM ${out.withLtm.bitsPerByte.toFixed(5)} bits/byte, without ${out.withoutLtm.bitsPerByte.toFixed(5)}`);
  // The switch does something: an untrained memory still changes the predictions (by 9e-5 bits/byte
  // here, far above the float noise of a mean over thousands of bytes, ~1e-7).
  t.true(Math.abs(out.withLtm.bitsPerByte - out.withoutLtm.bitsPerByte) > 1e-5);
  // Baselines on the same bytes: zlib here, the xz program on them, the order-2 model here.
  const base = new Map((out.baselines ?? []).map((b) => [b.name, b]));
  t.deepEqual([...base.keys()], ['gzip -9', 'brotli -11', 'xz -9e', 'zstd -19', 'PPMd (7z)', 'order-2 model']);
  const gz = gzipSync(bytes, { level: 9 }).length;
  t.is(base.get('gzip -9')!.compressedBytes, gz);
  t.is(base.get('gzip -9')!.bitsPerByte, (8 * gz) / end);
  const xz = execSync('xz -9e -c', { input: bytes }).length;
  t.is(base.get('xz -9e')!.compressedBytes, xz, 'xz must be installed (Debian: xz-utils)');
  t.true(Math.abs(base.get('order-2 model')!.bitsPerByte! - orderNCodeLength(bytes, { order: 2 }).bitsPerByte) < 1e-12);
});

test.serial('one segment per stream: with and without the long-term memory agree exactly (the memory is still empty)', async (t) => {
  const file = join(root, 'one-segment.txt');
  await writeFile(file, 'PASS: gcc.dg/tls/opt-1.c abc\n'); // 29 bytes: one stream, one segment of 16
  const res = await cli(['eval', '--model', modelDir, '--data', file, '--json', '--no-baselines']);
  t.is(res.code, 0, res.stderr);
  const out = JSON.parse(res.stdout) as EvalJson;
  t.deepEqual([out.streams, out.segments, out.bytesScored], [1, 1, 16]);
  t.false('baselines' in out, '--no-baselines: none in the JSON');
  t.is(out.withLtm.bitsPerByte, out.withoutLtm.bitsPerByte);
  const tooShort = join(root, 'short.txt');
  await writeFile(tooShort, 'FAIL\n');
  const bad = await cli(['eval', '--model', modelDir, '--data', tooShort]);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /5 bytes are too few to evaluate: need at least segment length \+ 1 = 17/);
});

test.serial('the table and --append-report carry the same numbers, the command and the baselines; a PATH without xz says "not installed"', async (t) => {
  const report = join(root, 'report.md');
  await writeFile(report, '# Training report\n');
  // node itself is found by its full path, so PATH can be a directory with no programs in it.
  const emptyPath = join(root, 'empty-path');
  await mkdir(emptyPath);
  const res = await cli(['eval', '--model', modelDir, '--data', GCC_SLICE_REL, '--max-bytes', '3000', '--append-report', report], { env: { PATH: emptyPath } });
  t.is(res.code, 0, res.stderr);
  const all = new Uint8Array(await readFile(GCC_SLICE));
  let end = 3000;
  while (all[end - 1] !== 10) end -= 1;
  const on = await direct(modelDir, all.subarray(0, end), 8);
  const off = await direct(noLtmDir, all.subarray(0, end), 8);
  t.regex(res.stdout, new RegExp(`^with LTM +${on.r.bitsPerToken.toFixed(4)} +${Math.exp(on.r.crossEntropy).toFixed(4)} +${on.r.accuracy.toFixed(4)}$`, 'm'));
  t.regex(res.stdout, new RegExp(`^without LTM +${off.r.bitsPerToken.toFixed(4)} `, 'm'));
  const md = await readFile(report, 'utf8');
  t.true(md.startsWith('# Training report\n'));
  t.true(md.includes(`npx infiniformer eval --model ${modelDir} --data ${GCC_SLICE_REL} --max-bytes 3000\n`), md);
  t.true(md.includes(`| with LTM | ${on.r.bitsPerToken.toFixed(4)} |`));
  t.true(md.includes(`| without LTM | ${off.r.bitsPerToken.toFixed(4)} |`));
  const gz = gzipSync(all.subarray(0, end), { level: 9 }).length;
  const gzBits = ((8 * gz) / end).toFixed(4);
  const order2 = orderNCodeLength(all.subarray(0, end), { order: 2 }).bitsPerByte.toFixed(4);
  t.regex(res.stdout, new RegExp(`^baselines on the same ${end.toLocaleString('en-US')} bytes`, 'm'));
  t.regex(res.stdout, new RegExp(`^gzip -9 +${gzBits} +${gz.toLocaleString('en-US')} +node:zlib`, 'm'));
  t.regex(res.stdout, new RegExp(`^order-2 model +${order2} `, 'm'));
  t.regex(res.stdout, /^xz -9e +not installed \(no xz on PATH\)$/m);
  t.regex(res.stdout, /^PPMd \(7z\) +not installed/m);
  t.true(md.includes(`| gzip -9 | ${gzBits} | ${gz.toLocaleString('en-US')} |`), md);
  t.true(md.includes('| xz -9e | not installed (no xz on PATH) |'), md);
});

test('eval --prequential: one stream from the first byte; the main job row equals scorePrequential with a learner and a ContextMixer run here, and --no-learn the frozen one', async (t) => {
  const { ContextMixer, OnlineLearner, frozenScorer, learningScorer, scorePrequential } = await import('../../src/index.js');
  const head = new Uint8Array(await readFile(GCC_SLICE)).subarray(0, 3000);
  const bytes = head.subarray(0, head.lastIndexOf(10) + 1); // whole lines: eval reads them as they are
  const file = join(root, 'slice.txt');
  await writeFile(file, bytes);
  const rowsOf = async (extra: string[]): Promise<{ name: string; bitsPerByte: number }[]> => {
    const r = await cli(['eval', '--model', modelDir, '--data', file, '--prequential', '--json', '--no-baselines', ...extra]);
    t.is(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { prequential: { name: string; bitsPerByte: number }[] }).prequential;
  };
  const learning = await rowsOf([]);
  const frozen = await rowsOf(['--no-learn']);
  const model = await loadModel(modelDir);
  const net = frozenScorer(model);
  const wantFrozen = scorePrequential(bytes, { network: net, mixer: new ContextMixer() });
  net.dispose();
  const learner = new OnlineLearner(model, { learningRate: 3e-4 });
  const lnet = learningScorer(learner, model.createState(0));
  const wantLearning = scorePrequential(bytes, { network: lnet, mixer: new ContextMixer() });
  lnet.dispose();
  learner.dispose();
  model.dispose();
  const mixAlone = scorePrequential(bytes, { mixer: new ContextMixer() }).bitsPerByte;
  t.log(`learning + mixing ${learning[0]!.bitsPerByte.toFixed(4)}, frozen + mixing ${frozen[0]!.bitsPerByte.toFixed(4)}, mixing alone ${mixAlone.toFixed(4)} bits/byte`);
  t.regex(learning[0]!.name, /learning, \d+ segments stepped on/);
  t.true(wantLearning.segmentsLearned > 0);
  t.log(`main row ${learning[0]!.bitsPerByte} vs ${wantLearning.bitsPerByte}; network ${learning[1]!.bitsPerByte} vs ${wantLearning.networkBitsPerByte!}`);
  t.true(Math.abs(learning[0]!.bitsPerByte - wantLearning.bitsPerByte) < 1e-6);
  t.true(Math.abs(learning[1]!.bitsPerByte - wantLearning.networkBitsPerByte!) < 1e-6);
  t.true(Math.abs(frozen[0]!.bitsPerByte - wantFrozen.bitsPerByte) < 1e-6);
  t.true(Math.abs(frozen[2]!.bitsPerByte - mixAlone) < 1e-9);
});
