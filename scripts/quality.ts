/**
 * `npm run quality [-- files...] [--only col,col]`: the quality table of docs/quality.md. Every
 * log of data/quality (or the files given) is read as one stream from its first byte by the main
 * job's predictor and its ablations (bin/cli/quality.ts), beside the compressors on the same
 * bytes. Writes docs/quality/results.json, the figure docs/quality/along-the-stream.svg, and the
 * table between the markers of docs/quality.md. Takes ~5 minutes per 64 KB log on 2 cores.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { initBackend, loadModel, setLogLevel } from '../src/index.js';
import { COLUMNS, compressorWindows, qualityRow, qualityTable, windowed } from '../bin/cli/quality.js';
import type { ColumnId, QualityRow } from '../bin/cli/quality.js';
import { seriesSvg } from '../bin/cli/svg.js';
import type { Series } from '../bin/cli/svg.js';

const args = process.argv.slice(2);
// --figure: only the figure's log, only the figure (the table and results.json stay as they are).
const figureOnly = args.includes('--figure');
if (figureOnly) args.splice(args.indexOf('--figure'), 1);
// --table NAME: the table between the NAME-table markers of docs/quality.md and
// docs/quality/NAME.json instead of the main ones (another set of logs; no figure).
const tableAt = args.indexOf('--table');
const tableName = tableAt >= 0 ? args.splice(tableAt, 2)[1]! : undefined;
const onlyAt = args.indexOf('--only');
const only = onlyAt >= 0 ? (args.splice(onlyAt, 2)[1]!.split(',') as ColumnId[]) : undefined;
const FIGURE_LOG = 'haproxy-syslog';
const files = figureOnly ? [`data/quality/${FIGURE_LOG}.log`] : args.length > 0 ? args : readdirSync('data/quality').filter((f) => f.endsWith('.log')).sort().map((f) => `data/quality/${f}`);

setLogLevel('warn');
const backend = await initBackend({ workload: 'segments' });
const prior = await loadModel('models/default');
const load = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const started = Date.now();
const rows: QualityRow[] = [];
const loads: string[] = [load()];
for (const file of files) {
  const row = await qualityRow(file, prior, { only, trace: file.includes(FIGURE_LOG), log: (s) => console.log(`[quality] ${s}`) });
  rows.push(row);
  loads.push(load());
  console.log(qualityTable(rows).at(-2));
}
const minutes = (Date.now() - started) / 60000;
const meta = figureOnly ? undefined : { date: new Date().toISOString(), backend, minutes: Math.round(minutes * 10) / 10, loadAverages: loads, command: `npm run quality${args.length > 0 || only ? ` -- ${process.argv.slice(2).join(' ')}` : ''}` };
const marker = tableName === undefined ? 'quality-table' : `${tableName}-table`;
if (meta !== undefined) writeFileSync(tableName === undefined ? 'docs/quality/results.json' : `docs/quality/${tableName}.json`, `${JSON.stringify({ ...meta, rows: rows.map(({ trace: _t, ...r }) => r) }, null, 1)}\n`);

const fig = tableName === undefined ? rows.find((r) => r.name === FIGURE_LOG) : undefined;
if (fig?.trace !== undefined) {
  const bytes = new Uint8Array(readFileSync(files.find((f) => f.includes(FIGURE_LOG))!));
  const W = 4096;
  const colour: Partial<Record<ColumnId, string>> = { learningMix: '#08519c', frozenMix: '#6baed6', learningNoLtmMix: '#9e9ac8', scratchMix: '#bdbdbd', mix: '#31a354' };
  const series: Series[] = COLUMNS.filter((c) => fig.trace![c.id] !== undefined).map((c) => ({ label: c.title, color: colour[c.id] ?? '#888', points: windowed(fig.trace![c.id]!, W) }));
  series.push({ label: 'gzip -9 (each 4 KB window)', color: '#e6550d', points: compressorWindows(bytes, W, (b) => gzipSync(b, { level: 9 }).length), dashed: true });
  series.push({ label: 'xz -9e (each 4 KB window)', color: '#756bb1', points: compressorWindows(bytes, W, (b) => execFileSync('xz', ['-9e', '-T1', '-c'], { input: b }).length), dashed: true });
  writeFileSync('docs/quality/along-the-stream.svg', seriesSvg(series, { title: `${FIGURE_LOG}: bits per byte along the stream (4 KB windows)`, xLabel: 'KB read', yLabel: 'bits per byte' }));
}

if (meta !== undefined) {
const doc = readFileSync('docs/quality.md', 'utf8');
const table = [`<!-- ${marker}:start (${meta.command}) -->`, ...qualityTable(rows), '', `Run ${meta.date.slice(0, 16)} UTC on ${backend}, ${meta.minutes} minutes, load averages ${loads[0]} at the start, ${loads.at(-1)} at the end.`, `<!-- ${marker}:end -->`].join('\n');
const markers = new RegExp(`<!-- ${marker}:start[\\s\\S]*?<!-- ${marker}:end -->`);
if (!markers.test(doc)) throw new Error(`docs/quality.md has no <!-- ${marker}:start --> ... <!-- ${marker}:end --> markers`);
writeFileSync('docs/quality.md', doc.replace(markers, table));
}
console.log(`[quality] ${rows.length} logs in ${minutes.toFixed(1)} minutes`);
prior.dispose();
