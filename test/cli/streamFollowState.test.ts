// `infiniformer stream --follow FILE --state-dir DIR`, SIGKILLed at random moments and restarted:
// every key continues from its saved state and the file from the position that state covers,
// so every line's bits/byte equals an uninterrupted run's (issue 15).
import anyTest from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { InfiniFormer, saveModel } from '../../src/index.js';
import { backendReady } from '../helpers/backend.js';
import { cli, GCC_SLICE, TINY_CONFIG, type CliResult, type Out } from './helpers.js';

const test = anyTest.serial;
let root = '';
let modelDir = '';

anyTest.before(async () => {
  await backendReady;
  root = await mkdtemp(join(tmpdir(), 'infiniformer-follow-state-'));
  modelDir = join(root, 'model');
  const model = InfiniFormer.create(TINY_CONFIG, { seed: 13 });
  await saveModel(model, modelDir);
  model.dispose();
});

anyTest.after.always(async () => {
  await rm(root, { recursive: true, force: true });
});

type FollowOut = Out & { bitsPerByte: number };

/** Runs the command until `until(outputs so far)` names a signal to send it. */
function runUntil(args: string[], until: (outs: FollowOut[]) => NodeJS.Signals | null): Promise<CliResult & { outs: FollowOut[] }> {
  const outs: FollowOut[] = [];
  let partial = '';
  let child: ChildProcess | undefined;
  let signalled = false;
  return cli(args, {
    onSpawn: (c) => (child = c),
    onStdout: (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (l.startsWith('{')) outs.push(JSON.parse(l) as FollowOut);
      const signal = signalled ? null : until(outs);
      if (signal !== null) {
        signalled = true;
        child?.kill(signal);
      }
    },
  }).then((r) => ({ ...r, outs: [...outs] }));
}

test('--follow --state-dir, SIGKILLed twice and restarted: every line has an output and every key\'s bits/byte equal an uninterrupted run\'s', async (t) => {
  const count = 320;
  // Unique lines (the text identifies a line across runs), 8 keys by --key-by.
  const gcc = readFileSync(GCC_SLICE, 'utf8').split('\n').filter((l) => l.length > 0);
  const lines = Array.from({ length: count }, (_, i) => `k${i % 8} #${i} ${gcc[i % gcc.length]!.slice(0, 50)}`);
  const file = join(root, 'app.log');
  writeFileSync(file, `${lines.join('\n')}\n`);
  const base = ['stream', '--model', modelDir, '--follow', file, '--key-by', '/^(k\\d+) /', '--no-learn', '--no-mix', '--anomaly-threshold', '5'];

  const ref = await runUntil([...base, '--no-state', '--max-lines', String(count)], () => null);
  t.is(ref.code, 0, ref.stderr);
  const want = new Map(ref.outs.map((o) => [o.text, o]));
  t.is(want.size, count);

  const stateDir = join(root, 'state');
  const seen = new Set<string>();
  const all: FollowOut[] = [];
  const kills = 2;
  for (let run = 0; run <= kills; run++) {
    const last = run === kills;
    const killAfter = 20 + Math.floor(Math.random() * 80);
    const r = await runUntil([...base, '--state-dir', stateDir, '--save-every', '1'], (outs) => {
      if (!last) return outs.length >= killAfter ? 'SIGKILL' : null;
      return new Set([...seen, ...outs.map((o) => o.text)]).size >= count ? 'SIGTERM' : null;
    });
    const resumed = /"fileOffset":(\d+)/.exec(r.stderr)?.[1];
    t.log(`run ${run}: ${r.outs.length} outputs, ${last ? `exit ${r.code}` : `SIGKILL after ${killAfter}`}, resumed at byte ${resumed ?? 0}`);
    if (last) t.is(r.code, 0, r.stderr.slice(-2000));
    else t.is(r.signal, 'SIGKILL', r.stderr.slice(-2000));
    for (const o of r.outs) {
      all.push(o);
      seen.add(o.text);
    }
  }
  t.is(seen.size, count, 'every line has an output');
  let maxDiff = 0;
  for (const o of all) maxDiff = Math.max(maxDiff, Math.abs(o.bitsPerByte - want.get(o.text)!.bitsPerByte));
  t.log(`${all.length} outputs of ${count} lines (${all.length - seen.size} written again after a kill), max |bits/byte - uninterrupted| ${maxDiff}`);
  t.true(maxDiff <= 1e-4, `bits/byte differ by ${maxDiff}`);
});
