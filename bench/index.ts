/**
 * `npm run bench [-- name ...] [--options]`: runs the named benchmarks (default: all but peers,
 * which installs PyTorch on first use). Each prints figures and ratios measured side by side in
 * one run; none passes or fails on time. Options starting with "-" are left to the benchmarks.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const all = ['memory', 'backends', 'model', 'kafka', 'kafkaFlow'];
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const name of wanted.length > 0 ? wanted : all) {
  // A benchmark is bench/<name>.ts or, when it has several files, bench/<name>/index.ts.
  const single = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  const file = existsSync(single) ? single : fileURLToPath(new URL(`./${name}/index.ts`, import.meta.url));
  if (!existsSync(file)) {
    if (wanted.length > 0) throw new Error(`no benchmark named ${name} (bench/${name}.ts or bench/${name}/index.ts)`);
    continue;
  }
  console.log(`\n== ${file.slice(file.indexOf('bench/'))}`);
  const mod = (await import(file)) as { run?: () => Promise<void> };
  if (typeof mod.run !== 'function') throw new Error(`${file} exports no run()`);
  await mod.run();
}
