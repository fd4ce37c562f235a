/**
 * Anomaly flags measured on a labelled log: ROC AUC of a per-line score and precision, recall
 * and F1 of a flag rule, for the main job's surprisal and for the novelty rules it must beat
 * (a message template not seen before in its key, unseen byte trigrams, flag everything).
 */

/** One labelled line of a keyed log. */
export interface LabelledLine {
  key: string;
  text: string;
  /** True for the class to detect (an alert / attack). */
  positive: boolean;
}

/** ROC AUC of `scores` for `labels` (Mann-Whitney U, ties counted half); NaN without both classes. */
export function rocAuc(scores: readonly number[], labels: readonly boolean[]): number {
  const idx = scores.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && scores[idx[j + 1]!] === scores[idx[i]!]) j++;
    const rank = (i + j) / 2 + 1; // mean rank of the tie group
    for (let k = i; k <= j; k++) if (labels[idx[k]!]) {
      pos++;
      rankSum += rank;
    }
    i = j + 1;
  }
  const neg = scores.length - pos;
  return pos === 0 || neg === 0 ? Number.NaN : (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** Precision, recall and F1 of boolean flags. */
export function flagMetrics(flags: readonly boolean[], labels: readonly boolean[]): { flagged: number; precision: number; recall: number; f1: number } {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  flags.forEach((f, i) => {
    if (f && labels[i]) tp++;
    else if (f) fp++;
    else if (labels[i]) fn++;
  });
  const precision = tp + fp === 0 ? Number.NaN : tp / (tp + fp);
  const recall = tp + fn === 0 ? Number.NaN : tp / (tp + fn);
  return { flagged: tp + fp, precision, recall, f1: precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0 };
}

/** The message template of a line: runs of digits and hex words masked. */
export function template(text: string): string {
  return text.replace(/\b0x[0-9a-f]+\b|\b[0-9a-f]*[0-9][0-9a-f]*\b/gi, '#').replace(/\d+/g, '#');
}

/** Per line: 1 when its template is new in its key, else 0 (in stream order). */
export function newTemplateScores(lines: readonly LabelledLine[]): number[] {
  const seen = new Map<string, Set<string>>();
  return lines.map((l) => {
    const s = seen.get(l.key) ?? new Set<string>();
    seen.set(l.key, s);
    const t = template(l.text);
    const isNew = !s.has(t);
    s.add(t);
    return isNew ? 1 : 0;
  });
}

/** Per line: the share of its byte trigrams not seen before in its key. */
export function trigramNoveltyScores(lines: readonly LabelledLine[]): number[] {
  const seen = new Map<string, Set<string>>();
  return lines.map((l) => {
    const s = seen.get(l.key) ?? new Set<string>();
    seen.set(l.key, s);
    const grams: string[] = [];
    for (let i = 0; i + 3 <= l.text.length; i++) grams.push(l.text.slice(i, i + 3));
    const fresh = grams.filter((g) => !s.has(g)).length;
    for (const g of grams) s.add(g);
    return grams.length === 0 ? 0 : fresh / grams.length;
  });
}
