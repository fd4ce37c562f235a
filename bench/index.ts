/**
 * `npm run bench [-- name ...]`: runs the named benchmarks (default: all). Each prints figures
 * and ratios measured side by side in one run; none passes or fails on time.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const all = ['memory', 'backends', 'model', 'kafka', 'kafkaFlow'];
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const name of wanted.length > 0 ? wanted : all) {
  const file = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  if (!existsSync(file)) {
    if (wanted.length > 0) throw new Error(`no benchmark named ${name} (bench/${name}.ts)`);
    continue;
  }
  console.log(`\n== bench/${name}.ts`);
  const mod = (await import(file)) as { run?: () => Promise<void> };
  if (typeof mod.run !== 'function') throw new Error(`bench/${name}.ts exports no run()`);
  await mod.run();
}
