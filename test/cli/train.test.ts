// `infiniformer train` end to end on real gcc log lines with a tiny model: the model directory
// loads, the report and the loss curve describe the run, a run resumed from its checkpoint
// replays the uninterrupted one, and Ctrl-C checkpoints and exits 130.
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluate, loadModel, makeConfig, tokenStreamSource } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { cli, GCC_SLICE, GCC_SLICE_REL, TINY_CONFIG } from './helpers.js';

let root = '';
test.before(async () => {
  await backendReady;
  root = await mkdtemp(join(tmpdir(), 'infiniformer-cli-train-'));
});
test.after.always(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
});

interface Line {
  step: number;
  loss?: number;
  crossEntropy?: number;
  eval?: { bitsPerByte: number };
}

async function history(dir: string): Promise<Line[]> {
  return (await readFile(join(dir, 'history.jsonl'), 'utf8'))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);
}

async function weights(dir: string): Promise<Float32Array> {
  const b = await readFile(join(dir, 'weights.bin'));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

const common = ['--data', GCC_SLICE_REL, '--batch', '4', '--config', JSON.stringify(TINY_CONFIG), '--eval-max-bytes', '2000'];

test.serial('a tiny run writes a loadable model, history, report and loss curve that agree with each other', async (t) => {
  const out = join(root, 'a');
  const r = await cli(['train', ...common, '--out', out, '--steps', '6', '--eval-every', '3']);
  t.is(r.code, 0, r.stderr);
  // Plain progress lines (CI=true), the evaluation notes, the summary.
  t.regex(r.stderr, /^step 1\/6 +\d+ tok\/s +loss \d+\.\d+ bits\/byte +ETA /m);
  t.regex(r.stderr, /^step 6\/6 /m);
  t.regex(r.stderr, /^step 6: eval \d+\.\d+ bits\/byte/m);
  const summary = JSON.parse(r.stdout) as { step: number; tokensPerSecond: number; eval: { withLtm: number; withoutLtm: number } };
  t.is(summary.step, 6);
  t.true(summary.tokensPerSecond > 0);

  // The model directory loads with the config asked for.
  const model = await loadModel(out);
  t.deepEqual({ ...model.config }, { ...makeConfig(TINY_CONFIG) });
  t.is(model.tokenizer?.kind, 'byte');
  t.is((await weights(out)).length, model.numParameters);

  // History: six steps; an untrained model is near uniform over 260 symbols, ln 260 nats.
  const h = await history(out);
  const steps = h.filter((l) => l.eval === undefined);
  t.deepEqual(steps.map((l) => l.step), [1, 2, 3, 4, 5, 6]);
  t.true(steps.every((l) => Number.isFinite(l.loss) && Number.isFinite(l.crossEntropy)));
  t.true(Math.abs(steps[0]!.crossEntropy! - Math.log(260)) < 0.05, `first cross-entropy ${steps[0]!.crossEntropy} vs ln 260 = ${Math.log(260)}`);
  t.true(steps[5]!.crossEntropy! < steps[0]!.crossEntropy!, 'the loss goes down');

  // The split, recomputed here: the eval split starts after the first newline at or past 95%.
  const bytes = new Uint8Array(await readFile(GCC_SLICE));
  const target = Math.floor(bytes.length * 0.95);
  let cut = target;
  while (bytes[cut - 1] !== 10) cut += 1;
  const run = JSON.parse(await readFile(join(out, 'run.json'), 'utf8')) as {
    data: { trainBytes: number; evalBytes: number };
    final: { layout: { streams: number; segments: number; bytesScored: number }; withLtm: { bitsPerByte: number }; withoutLtm: { bitsPerByte: number } };
  };
  t.is(run.data.trainBytes, cut);
  t.is(run.data.evalBytes, bytes.length - cut);
  // The final evaluation: the first 3000 bytes of the eval split, cut after a newline; it matches
  // evaluate() called directly on the saved model.
  let end = cut + 2000;
  while (bytes[end - 1] !== 10) end -= 1;
  const evalBytes = bytes.subarray(cut, end);
  const L = TINY_CONFIG.segmentLength;
  const streams = Math.min(4, Math.floor(evalBytes.length / (L + 1)));
  const segments = Math.floor((Math.floor(evalBytes.length / streams) - 1) / L);
  t.deepEqual(run.final.layout, { streams, segments, bytesScored: streams * segments * L });
  const direct = evaluate(model, tokenStreamSource(evalBytes, { numStreams: streams, segmentLength: L }), segments);
  t.true(Math.abs(direct.bitsPerToken - run.final.withLtm.bitsPerByte) < 1e-6, `${direct.bitsPerToken} vs ${run.final.withLtm.bitsPerByte}`);
  t.is(summary.eval.withLtm, run.final.withLtm.bitsPerByte);
  model.dispose();

  // The report: the exact command, the status, the evaluation table with the same numbers.
  const report = await readFile(join(out, 'report.md'), 'utf8');
  t.true(report.includes(`npx infiniformer train --data ${GCC_SLICE_REL} --batch 4 --config '${JSON.stringify(TINY_CONFIG)}'`), report.slice(0, 600));
  t.true(report.includes('Status: **finished** at step 6 of 6.'));
  t.true(report.includes(`| with LTM | ${run.final.withLtm.bitsPerByte.toFixed(4)} |`));
  t.true(report.includes(`| without LTM | ${run.final.withoutLtm.bitsPerByte.toFixed(4)} |`));
  t.true(report.includes('![loss curve](loss-curve.svg)'));

  // The figure: one point per step on the raw curve, one marker per evaluation, ending at the right edge.
  const svg = await readFile(join(out, 'loss-curve.svg'), 'utf8');
  t.true(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"') && svg.trimEnd().endsWith('</svg>'));
  const raw = /<path d="([^"]+)" fill="none" stroke="#9ecae1"/.exec(svg);
  t.truthy(raw);
  const points = raw![1]!.split(' ');
  t.is(points.length, 6);
  t.true(points[5]!.startsWith('L736,'), points[5]);
  t.is((svg.match(/<circle /g) ?? []).length, h.filter((l) => l.eval !== undefined).length);
  // y grows downwards in SVG: the lower final loss is drawn nearer the x axis (0.1 px resolution).
  const y = (p: string): number => Number(p.split(',')[1]);
  t.true(y(points[5]!) >= y(points[0]!), `${points[0]} -> ${points[5]}`);
});

test.serial('resume: 3 steps of a 6-step schedule, then --resume to 6, equals 6 steps in one go', async (t) => {
  const whole = join(root, 'a');
  if (!existsSync(join(whole, 'weights.bin'))) {
    const r = await cli(['train', ...common, '--out', whole, '--steps', '6', '--eval-every', '3']);
    t.is(r.code, 0, r.stderr);
  }
  // No evaluations here, some in the run above: evaluating must not disturb training either.
  const out = join(root, 'b');
  const first = await cli(['train', ...common, '--out', out, '--steps', '3', '--schedule-steps', '6', '--eval-every', '0']);
  t.is(first.code, 0, first.stderr);
  t.true(existsSync(join(out, 'checkpoint', 'trainer.json')));
  const again = await cli(['train', ...common, '--out', out, '--steps', '6']);
  t.is(again.code, 2, 'a second run into the same directory needs --resume');
  t.regex(again.stderr, /already holds a training run; pass --resume/);
  const resumed = await cli(['train', ...common, '--out', out, '--steps', '6', '--resume', '--eval-every', '0']);
  t.is(resumed.code, 0, resumed.stderr);
  t.regex(resumed.stderr, /resumed at step 3/);

  const a = (await history(whole)).filter((l) => l.eval === undefined);
  const b = (await history(out)).filter((l) => l.eval === undefined);
  t.deepEqual(b.map((l) => l.step), [1, 2, 3, 4, 5, 6]);
  const lossDiff = Math.max(...a.map((l, i) => Math.abs(l.loss! - b[i]!.loss!)));
  const wa = await weights(whole);
  const wb = await weights(out);
  t.is(wa.length, wb.length);
  let weightDiff = 0;
  for (let i = 0; i < wa.length; i++) weightDiff = Math.max(weightDiff, Math.abs(wa[i]! - wb[i]!));
  t.log(`max |loss difference| ${lossDiff.toExponential(2)}, max |weight difference| ${weightDiff.toExponential(2)}`);
  t.true(lossDiff <= 1e-5);
  t.true(weightDiff <= 1e-5);
  const report = await readFile(join(out, 'report.md'), 'utf8');
  t.true(report.includes('--steps 3 --schedule-steps 6 --eval-every 0') && report.includes('--steps 6 --resume --eval-every 0'), 'both commands are in the report');
  t.true(report.includes('Status: **finished** at step 6 of 6.'));
});

test.serial('Ctrl-C (SIGINT) checkpoints, reports "interrupted" and exits 130; --resume goes on from there', async (t) => {
  const out = join(root, 'c');
  const args = ['train', ...common, '--out', out, '--steps', '400', '--eval-every', '0', '--checkpoint-every', '0'];
  let sent = false;
  const r = await cli(args, {
    onSpawn: (child) => {
      const timer = setInterval(() => {
        void readFile(join(out, 'history.jsonl'), 'utf8')
          .then((text) => {
            if (!sent && text.split('\n').length > 3) {
              sent = true;
              clearInterval(timer);
              child.kill('SIGINT');
            }
          })
          .catch(() => undefined);
      }, 50);
      child.once('close', () => clearInterval(timer));
    },
  });
  t.true(sent);
  t.is(r.code, 130, r.stderr);
  const stoppedAt = Number(/stopped at step (\d+)/.exec(r.stderr)?.[1]);
  t.true(stoppedAt >= 3 && stoppedAt < 400, r.stderr);
  const ckpt = JSON.parse(await readFile(join(out, 'checkpoint', 'trainer.json'), 'utf8')) as { step: number };
  t.is(ckpt.step, stoppedAt);
  t.deepEqual((await history(out)).map((l) => l.step), Array.from({ length: stoppedAt }, (_, i) => i + 1));
  t.true((await readFile(join(out, 'report.md'), 'utf8')).includes(`Status: **interrupted** at step ${stoppedAt} of 400.`));
  await loadModel(out).then((m) => m.dispose());

  const more = await cli(['train', ...common, '--out', out, '--steps', String(stoppedAt + 2), '--resume', '--eval-every', '0']);
  t.is(more.code, 0, more.stderr);
  t.deepEqual((await history(out)).filter((l) => l.eval === undefined).map((l) => l.step), Array.from({ length: stoppedAt + 2 }, (_, i) => i + 1));
});
