import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { toArray, firstValueFrom } from 'rxjs';
import { fromLines } from '../../../connectors/file/index.js';

test('fromLines: every line of a stream, \\r\\n handled, completes at the end', async (t) => {
  const input = new PassThrough();
  const result = firstValueFrom(fromLines(input).pipe(toArray()));
  input.write('a\r\nb');
  input.write('c\n\n');
  input.end('last without newline');
  t.deepEqual(await result, ['a', 'bc', '', 'last without newline']);
});

test('fromStdin in a real process: 10k piped lines come out in order', async (t) => {
  const script = fileURLToPath(new URL('./fixtures/countStdin.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const lines = Array.from({ length: 10_000 }, (_, i) => `${i} ${'x'.repeat(i % 50)}`);
  child.stdin.end(`${lines.join('\n')}\n`);
  const code = await new Promise<number | null>((done) => child.once('exit', done));
  t.is(code, 0);
  const report = JSON.parse(out) as { count: number; first: string; last: string; ordered: boolean };
  t.deepEqual(report, { count: 10_000, first: lines[0], last: lines[9999], ordered: true });
});
