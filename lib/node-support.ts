/**
 * Which Node.js release lines fleetscore supports, and the notice `fleetscore up` prints once on a line past its end
 * of life: it still runs there (CI runs the quick start on it), but gets no security fixes, and its dependencies
 * drop it (the AWS SDK's releases after January 2027 need Node 22).
 */

/** The release lines fleetscore is tested on (CI runs the whole suite on the newest). */
export const SUPPORTED_NODE_LINES = [22, 24] as const;

/**
 * End of life of each release line, from the Node.js release schedule (nodejs.org/en/about/previous-releases).
 * A line newer than any listed here is taken as supported.
 */
export const NODE_END_OF_LIFE: Readonly<Record<number, string>> = {
  18: '2025-04-30',
  19: '2023-06-01',
  20: '2026-04-30',
  21: '2024-06-01',
  22: '2027-04-30',
  23: '2025-06-01',
  24: '2028-04-30',
  25: '2026-06-01',
  26: '2029-04-30',
};

/**
 * One line saying that `version` (e.g. `20.20.2`) has reached its end of life at `nowMs` and what to run instead,
 * or undefined while it is supported.
 */
export function nodeEndOfLifeNotice(version: string, nowMs: number): string | undefined {
  const major = Number(version.split('.')[0]);
  const known = Object.keys(NODE_END_OF_LIFE).map(Number);
  const eol = NODE_END_OF_LIFE[major] ?? (major < Math.min(...known) ? '' : undefined);
  if (eol === undefined || (eol !== '' && Date.parse(`${eol}T00:00:00Z`) > nowMs)) return undefined;
  return (
    `Node.js ${version} is past its end of life${eol ? ` (${eol})` : ''} and gets no security fixes; ` +
    `fleetscore supports Node ${SUPPORTED_NODE_LINES.join(' and ')} LTS (docs/operations.md, Node.js versions)`
  );
}
