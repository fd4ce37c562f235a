// bin/cli/corpus.ts: the block cutting, capping, holding out and interleaving behind
// scripts/data/corpus.ts, on synthetic sources whose every line is unique and names its source.
import test from 'ava';
import { joinDocuments, mixCorpus, seededRandom, sharedLines, splitBlocks, type MixOptions, type MixSource } from '../../bin/cli/corpus.js';

const enc = new TextEncoder();

/** `lines` unique lines `<name> <i> xxx...` of 20 to 200 bytes, lengths from a seeded generator. */
function source(name: string, lines: number, seed: number): MixSource {
  const r = seededRandom(seed);
  let text = '';
  for (let i = 0; i < lines; i++) text += `${name} ${i} ${'x'.repeat(Math.floor(r() * 180))}\n`;
  return { name, bytes: enc.encode(text) };
}

const SOURCES = [source('alpha', 6000, 1), source('beta', 3000, 2), source('gamma', 800, 3), source('delta', 20000, 4)];
const OPTIONS: MixOptions = { seed: 5, minBlock: 1000, maxBlock: 4000, capBytes: 300_000, heldOutBytes: 20_000, heldOutFraction: 0.1 };
const lines = (b: Uint8Array): string[] => new TextDecoder().decode(b).split('\n').slice(0, -1);

test('splitBlocks tiles the text with whole-line blocks within the size range; a long line is a block of its own; an unterminated tail is dropped', (t) => {
  const text = enc.encode(`${'a'.repeat(50)}\n`.repeat(200) + `${'L'.repeat(9000)}\n` + `${'b'.repeat(30)}\n`.repeat(100) + 'tail');
  const blocks = splitBlocks(text, seededRandom(1), 1000, 4000);
  t.is(blocks[0]![0], 0);
  for (let k = 1; k < blocks.length; k++) t.is(blocks[k]![0], blocks[k - 1]![1]);
  t.is(blocks.at(-1)![1], text.length - 4);
  for (const [s, e] of blocks) {
    t.is(text[e - 1], 10);
    t.true(s === 0 || text[s - 1] === 10);
  }
  const long = blocks.find(([s, e]) => e - s > 4000)!;
  t.is(long[1] - long[0], 9001);
  t.is(text[long[0]], 'L'.charCodeAt(0));
  // Every block but the long line and the last one is within [1000 - one line, 4000].
  for (const [s, e] of blocks.slice(0, -1)) if (e - s !== 9001) t.true(e - s >= 1000 - 51 && e - s <= 4000, `${e - s}`);
  t.throws(() => splitBlocks(text, seededRandom(1), 10, 5), { message: /minBlock <= maxBlock/ });
});

test('mixCorpus caps each source, holds out one contiguous run per source, and shares no line between the splits', (t) => {
  const m = mixCorpus(SOURCES, OPTIONS);
  const trainLines = lines(m.train);
  const heldLines = lines(m.heldOut);
  t.is(new Set([...trainLines, ...heldLines]).size, trainLines.length + heldLines.length);
  for (const [i, s] of m.sources.entries()) {
    const name = SOURCES[i]!.name;
    t.is(s.availableBytes, SOURCES[i]!.bytes.length);
    t.is(trainLines.filter((l) => l.startsWith(`${name} `)).reduce((n, l) => n + l.length + 1, 0), s.trainBytes);
    t.is(heldLines.filter((l) => l.startsWith(`${name} `)).reduce((n, l) => n + l.length + 1, 0), s.heldOutBytes);
    t.true(s.trainBytes <= OPTIONS.capBytes);
    // Capped sources come within one block of the cap; small ones give everything but the held-out run and its margin.
    if (s.availableBytes > 2 * OPTIONS.capBytes) t.true(s.trainBytes > OPTIONS.capBytes - OPTIONS.maxBlock, `${name} ${s.trainBytes}`);
    else t.true(s.trainBytes >= s.availableBytes - s.heldOutBytes - 2 * OPTIONS.maxBlock, `${name} ${s.trainBytes}`);
    // Held out: min(20 KB, 10 %) to within one block, and consecutive lines of the source.
    const target = Math.min(OPTIONS.heldOutBytes, 0.1 * s.availableBytes);
    t.true(s.heldOutBytes >= target && s.heldOutBytes < target + OPTIONS.maxBlock, `${name} ${s.heldOutBytes}`);
    const numbers = heldLines.filter((l) => l.startsWith(`${name} `)).map((l) => Number(l.split(' ')[1]));
    numbers.sort((a, b) => a - b);
    t.is(numbers.at(-1)! - numbers[0]! + 1, numbers.length);
  }
  // gamma (~80 KB) is all used but for its held-out run and margins; delta (~2 MB) is capped.
  t.true(m.sources[3]!.availableBytes > 5 * OPTIONS.capBytes);
});

test('mixCorpus spreads every source evenly: each sixteenth of train holds each source in its share, to within two blocks', (t) => {
  const m = mixCorpus(SOURCES, OPTIONS);
  const parts = 16;
  const partBytes = m.train.length / parts;
  for (const [i, s] of m.sources.entries()) {
    const share = s.trainBytes / m.train.length;
    const inPart = new Float64Array(parts);
    let at = 0;
    for (const b of m.trainBlocks) {
      if (b.source === i) {
        // Bytes of this block in each part it overlaps.
        for (let p = Math.floor(at / partBytes); p < parts && p * partBytes < at + b.end - b.start; p++) {
          inPart[p]! += Math.min(at + b.end - b.start, (p + 1) * partBytes) - Math.max(at, p * partBytes);
        }
      }
      at += b.end - b.start;
    }
    for (let p = 0; p < parts; p++) t.true(Math.abs(inPart[p]! - share * partBytes) <= 2 * OPTIONS.maxBlock, `${s.name} part ${p}: ${inPart[p]} vs ${share * partBytes}`);
  }
  // No long run of one source: the longest stretch of consecutive blocks from one source is short.
  let run = 1;
  let longest = 1;
  for (let k = 1; k < m.trainBlocks.length; k++) {
    run = m.trainBlocks[k]!.source === m.trainBlocks[k - 1]!.source ? run + 1 : 1;
    longest = Math.max(longest, run);
  }
  t.true(longest <= 8, `longest run ${longest}`);
});

test('mixCorpus is deterministic in its seed', (t) => {
  const a = mixCorpus(SOURCES, OPTIONS);
  const b = mixCorpus(SOURCES, OPTIONS);
  const c = mixCorpus(SOURCES, { ...OPTIONS, seed: 6 });
  t.deepEqual(Buffer.from(a.train), Buffer.from(b.train));
  t.deepEqual(Buffer.from(a.heldOut), Buffer.from(b.heldOut));
  t.notDeepEqual(Buffer.from(a.train), Buffer.from(c.train));
  // A source added leaves the other sources' choice of blocks unchanged (only the order moves).
  const d = mixCorpus([...SOURCES, source('epsilon', 3000, 9)], OPTIONS);
  const starts = (m: typeof a, i: number): number[] => m.trainBlocks.filter((b) => b.source === i).map((b) => b.start).sort((x, y) => x - y);
  for (let i = 0; i < SOURCES.length; i++) t.deepEqual(starts(d, i), starts(a, i));
  t.deepEqual(d.sources.slice(0, SOURCES.length), a.sources);
});

test('joinDocuments sorts by path and ends every document with a newline; sharedLines counts the distinct long lines in common', (t) => {
  const joined = new TextDecoder().decode(joinDocuments([
    { path: 'b', bytes: enc.encode('second') },
    { path: 'a', bytes: enc.encode('first\n') },
    { path: 'c', bytes: new Uint8Array(0) },
  ]));
  t.is(joined, 'first\nsecond\n');
  const long = (s: string): string => `${s} ${'-'.repeat(40)}`;
  const corpus = enc.encode([long('one'), long('two'), 'short', long('two')].join('\n') + '\n');
  const other = enc.encode([long('two'), 'short', long('three')].join('\n') + '\n');
  // Distinct lines: 'two' (twice in the corpus) counts once; 'short' only when short lines count.
  t.is(sharedLines(corpus, other), 1);
  t.is(sharedLines(corpus, other, 1), 2);
});
