/**
 * Extracts fail2ban's labelled test logs (Debian package `fail2ban`, GPL-2+) into
 * `data/fail2ban/lines.jsonl`: one record per log line, in file order,
 * `{ "service": <log file>, "text": <line>, "label": "attack" | "benign" | null }`.
 * A `# failJSON: {..., "match": true|false}` comment labels the line after it (match = the
 * filter flags it: attack). Run once by a developer (`npx tsx scripts/data/fail2ban.ts`); the
 * result is committed, so nothing downloads at test time.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { filesBelow } from '../../bin/cli/registryData.js';

const out = join(import.meta.dirname, '..', '..', 'data', 'fail2ban');
const work = mkdtempSync(join(tmpdir(), 'fail2ban-'));
try {
  execFileSync('apt-get', ['download', 'fail2ban'], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
  const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
  if (deb === undefined) throw new Error('apt-get download fail2ban produced no .deb');
  execFileSync('dpkg', ['-x', deb, 'x'], { cwd: work });
  const logs = join(work, 'x/usr/lib/python3/dist-packages/fail2ban/tests/files/logs');
  const files = filesBelow(logs);
  const records: string[] = [];
  const counts = { attack: 0, benign: 0, unlabelled: 0 };
  for (const file of files) {
    let pending: boolean | undefined;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^#\s*failJSON:\s*(.*)$/.exec(line);
      if (m !== null) {
        pending = Boolean((JSON.parse(m[1]!) as { match?: boolean }).match);
        continue;
      }
      if (line.startsWith('#') || line.trim() === '') continue;
      const label = pending === undefined ? null : pending ? 'attack' : 'benign';
      counts[label ?? 'unlabelled'] += 1;
      records.push(JSON.stringify({ service: relative(logs, file), text: line, label }));
      pending = undefined;
    }
  }
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'lines.jsonl'), records.join('\n') + '\n');
  copyFileSync(join(work, 'x/usr/share/doc/fail2ban/copyright'), join(out, 'copyright'));
  console.log(`${files.length} log files, ${records.length} lines: ${counts.attack} attack, ${counts.benign} benign, ${counts.unlabelled} unlabelled (from ${deb})`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
