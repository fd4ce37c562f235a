import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { toArray, firstValueFrom } from 'rxjs';
import { fromLines, readLines } from '../../../connectors/file/index.js';

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

test('readLines: exact bytes, split on \\n only (a lone \\r stays), invalid UTF-8 kept, lines cut at the cap', async (t) => {
  const input = new PassThrough();
  const result = firstValueFrom(readLines(input, { maxLineBytes: 5 }).pipe(toArray()));
  input.write(Buffer.from('one\rtwo\nx\r'));
  input.write(Buffer.from([0xff, 0x0d, 0x0a, 0x0a]));
  input.end(Buffer.from('tail'));
  const pieces = await result;
  t.deepEqual(
    pieces.map((p) => [Buffer.from(p.bytes).toString('latin1'), p.truncated, p.continued]),
    [
      ['one\rt', true, false],
      ['wo\n', false, true],
      ['x\r\xff\r\n', false, false],
      ['\n', false, false],
      ['tail', false, false],
    ],
  );
});

test('fromLines: a lone \\r no longer splits a line (readline did)', async (t) => {
  const input = new PassThrough();
  const result = firstValueFrom(fromLines(input).pipe(toArray()));
  input.end('progress 10%\rprogress 20%\rdone\nnext\n');
  t.deepEqual(await result, ['progress 10%\rprogress 20%\rdone', 'next']);
});
