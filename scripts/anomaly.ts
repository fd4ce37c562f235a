/**
 * `npm run anomaly`: the main job's per-line surprisal as an anomaly score on the labelled
 * fail2ban log (data/quality/labelled: each service's lines are one key, attack = positive),
 * against the novelty rules, in docs/quality.md's anomaly section (printed as markdown).
 */
import { readFileSync } from 'node:fs';
import { from, lastValueFrom, toArray } from 'rxjs';
import { OnlineLearner, initBackend, loadModel, setLogLevel } from '../src/index.js';
import { anomalies, contextMix, infiniteFormer, recordSurprisal, tokenize } from '../operators/index.js';
import { flagMetrics, newTemplateScores, rocAuc, trigramNoveltyScores, type LabelledLine } from '../bin/cli/anomalyEval.js';

setLogLevel('warn');
await initBackend({ workload: 'segments' });
const texts = readFileSync('data/quality/labelled/fail2ban.log', 'utf8').split('\n').slice(0, -1);
const labels = readFileSync('data/quality/labelled/fail2ban.labels.tsv', 'utf8').split('\n').slice(1).filter(Boolean).map((l) => l.split('\t'));
const lines: LabelledLine[] = [];
texts.forEach((text, i) => {
  const [, label, key] = labels[i]!;
  if (label === 'attack' || label === 'benign') lines.push({ key: key!, text, positive: label === 'attack' });
});

async function mainJob(learn: boolean): Promise<{ score: number[]; flag: boolean[] }> {
  const model = await loadModel('models/default');
  const learner = learn ? new OnlineLearner(model) : undefined;
  const out = await lastValueFrom(
    from(lines.map((l, i) => ({ key: l.key, text: `${l.text}\n`, source: i }))).pipe(
      tokenize({ tokenizer: model.tokenizer! }),
      infiniteFormer(model, { mode: 'segment', ...(learner ? { learner } : {}) }),
      contextMix(),
      recordSurprisal(),
      anomalies({ quantile: 0.99, window: 1000, warmup: 50, young: 'allKeys' }),
      toArray(),
    ),
  );
  learner?.dispose();
  model.dispose();
  const score: number[] = [];
  const flag: boolean[] = [];
  for (const r of out) {
    score[r.source as number] = r.surprisal;
    flag[r.source as number] = r.anomaly;
  }
  return { score, flag };
}

const y = lines.map((l) => l.positive);
const frozen = await mainJob(false);
const learning = await mainJob(true);
const tmpl = newTemplateScores(lines);
const tri = trigramNoveltyScores(lines);
const rows: [string, number[], boolean[]][] = [
  ['main job: surprisal (learning + mixing), flag > running 99th percentile (all keys while a key has < 50 lines)', learning.score, learning.flag],
  ['main job, frozen network', frozen.score, frozen.flag],
  ['new message template in its key (digits, hex masked)', tmpl, tmpl.map((s) => s === 1)],
  ['unseen byte trigrams (share), flag > 0.5', tri, tri.map((s) => s > 0.5)],
  ['flag everything', lines.map(() => 1), lines.map(() => true)],
];
const f = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : '—');
console.log(`${lines.length} labelled lines (${y.filter(Boolean).length} attack, ${y.filter((v) => !v).length} benign), ${new Set(lines.map((l) => l.key)).size} keys\n`);
console.log('| score / flag rule | ROC AUC | flagged | precision | recall | F1 |\n|---|---:|---:|---:|---:|---:|');
for (const [name, s, fl] of rows) {
  const m = flagMetrics(fl, y);
  console.log(`| ${name} | ${f(rocAuc(s, y))} | ${m.flagged} | ${f(m.precision)} | ${f(m.recall)} | ${f(m.f1)} |`);
}
