/**
 * The guides' code is real: every ```ts block of docs/*.md is a complete program that
 * type-checks against the sources and runs, and its `assert`s (node:assert/strict) check what it
 * computed against independent truths (direct model and stage-function calls, hand-computed
 * values). A block opened with ```ts fragment is an excerpt (it needs a broker or names defined
 * elsewhere) and is neither checked nor run.
 *
 * The blocks import the package as a user would ('infiniformer', 'infiniformer/operators', ...);
 * the test rewrites those imports to the sources, writes each block to .cache/doc-snippets/,
 * type-checks them all with the project's tsconfig in one tsc run, then imports them one by one.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { backendReady } from '../helpers/backend.js';

const ROOT = resolve(import.meta.dirname, '../..');
const DOCS = join(ROOT, 'docs');
const OUT = join(ROOT, '.cache', 'doc-snippets');

const PACKAGE_PATHS: Record<string, string> = {
  infiniformer: 'src/index.js',
  'infiniformer/operators': 'operators/index.js',
  'infiniformer/connectors/kafka': 'connectors/kafka/index.js',
  'infiniformer/connectors/file': 'connectors/file/index.js',
};

interface Snippet {
  doc: string;
  /** Line of the opening fence (1-based). */
  line: number;
  code: string;
  file: string;
}

/** The ```ts blocks of a markdown text (not ```ts fragment), with the line of their fence. */
export function extractSnippets(markdown: string): { line: number; code: string }[] {
  const lines = markdown.split('\n');
  const out: { line: number; code: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)(.*)$/.exec(lines[i]!);
    if (open === null) continue;
    const end = lines.findIndex((l, j) => j > i && l.startsWith('```'));
    if (end < 0) throw new Error(`unclosed code block at line ${i + 1}`);
    const info = open[2]!.trim();
    if (open[1] === 'ts' && info !== 'fragment') {
      if (info !== '') throw new Error(`line ${i + 1}: unknown code block tag "ts ${info}" (use \`ts\` or \`ts fragment\`)`);
      out.push({ line: i + 1, code: lines.slice(i + 1, end).join('\n') });
    }
    i = end;
  }
  return out;
}

function rewriteImports(code: string, fromDir: string): string {
  return code.replace(/from '(infiniformer(?:\/[a-z/]+)?)'/g, (whole, name: string) => {
    const target = PACKAGE_PATHS[name];
    if (target === undefined) throw new Error(`unknown package path ${name}`);
    return `from '${relative(fromDir, join(ROOT, target))}'`;
  });
}

function collect(): Snippet[] {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const snippets: Snippet[] = [];
  for (const doc of readdirSync(DOCS).filter((f) => f.endsWith('.md')).sort()) {
    for (const s of extractSnippets(readFileSync(join(DOCS, doc), 'utf8'))) {
      const file = join(OUT, `${doc.replace(/\.md$/, '')}-L${s.line}.ts`);
      const header = `// docs/${doc}, the block at line ${s.line}\n`;
      writeFileSync(file, `${header}${rewriteImports(s.code, OUT)}\nexport {};\n`);
      snippets.push({ doc, line: s.line, code: s.code, file });
    }
  }
  writeFileSync(
    join(OUT, 'tsconfig.json'),
    JSON.stringify({ extends: '../../tsconfig.json', compilerOptions: { noEmit: true, rootDir: '../..' }, include: ['*.ts'] }, null, 2),
  );
  return snippets;
}

const snippets = collect();

test('the guides hold runnable ts blocks, each with asserts', (t) => {
  const docs = new Set(snippets.map((s) => s.doc));
  t.true(docs.has('operators.md'), 'docs/operators.md has runnable examples');
  t.true(docs.has('concepts.md'), 'docs/concepts.md has runnable examples');
  for (const s of snippets) t.regex(s.code, /\bassert\b/, `docs/${s.doc}:${s.line} checks its results with assert`);
  t.log(`${snippets.length} blocks: ${[...docs].map((d) => `${d} ${snippets.filter((s) => s.doc === d).length}`).join(', ')}`);
});

test('extractSnippets: ts blocks with their fence line; fragments and other languages left out; unknown tags rejected', (t) => {
  const md = ['# x', '```ts', 'a();', '```', '```ts fragment', 'b();', '```', '```sh', 'c', '```', '```ts', 'd();', 'e();', '```'].join('\n');
  t.deepEqual(extractSnippets(md), [
    { line: 2, code: 'a();' },
    { line: 11, code: 'd();\ne();' },
  ]);
  t.throws(() => extractSnippets('```ts runme\nx\n```'), { message: /unknown code block tag/ });
  t.throws(() => extractSnippets('```ts\nx\n'), { message: /unclosed/ });
});

test.serial('every ts block type-checks against the sources (strict, the project tsconfig)', (t) => {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(OUT, 'tsconfig.json')], { cwd: ROOT, encoding: 'utf8' });
  // Point errors at the guide: "<file>.ts(12,3)" -> docs/x.md line (fence + 12 - 1).
  const messages = `${r.stdout}${r.stderr}`.replace(/\.cache\/doc-snippets\/([\w-]+)-L(\d+)\.ts\((\d+),(\d+)\)/g, (_, doc: string, fence: string, line: string, col: string) => `docs/${doc}.md:${Number(fence) + Number(line) - 1}:${col}`);
  t.is(r.status, 0, messages);
});

for (const s of snippets) {
  test.serial(`docs/${s.doc}:${s.line} runs and its asserts hold`, async (t) => {
    await backendReady;
    await t.notThrowsAsync(() => import(pathToFileURL(s.file).href));
  });
}
