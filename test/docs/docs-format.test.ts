/**
 * The README and the manual stay readable as plain text (in a terminal, a diff, `less`): every table row fits in
 * 160 columns, the README stays a front door of at most 200 lines, and every relative link and image points at a
 * file that exists.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');
const DOCS = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
const MAX_TABLE_ROW = 160;

/** The lines of a Markdown file outside fenced code blocks, with their 1-based line numbers. */
function proseLines(file: string): { n: number; line: string }[] {
  const out: { n: number; line: string }[] = [];
  let fenced = false;
  readFileSync(join(ROOT, file), 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trimStart().startsWith('```')) fenced = !fenced;
      else if (!fenced) out.push({ n: i + 1, line });
    });
  return out;
}

test.each(DOCS)('%s: every table row fits in 160 columns', (file) => {
  const wide = proseLines(file)
    .filter(({ line }) => line.startsWith('|') && [...line].length > MAX_TABLE_ROW)
    .map(({ n, line }) => `${file}:${n} (${[...line].length} columns)`);
  expect(wide).toEqual([]);
});

test.each(DOCS)('%s: every relative link points at a file that exists', (file) => {
  const broken: string[] = [];
  for (const { n, line } of proseLines(file)) {
    for (const match of line.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = match[1]!;
      if (/^[a-z]+:/i.test(target) || target.startsWith('#')) continue;
      if (!existsSync(resolve(ROOT, dirname(file), target.split('#')[0]!))) broken.push(`${file}:${n} ${target}`);
    }
  }
  expect(broken).toEqual([]);
});

test('the README is a front door: at most 200 lines', () => {
  expect(readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n').length).toBeLessThanOrEqual(200);
});
