import type { RunSummary } from '../../lib/shared/run-types';

/** Formats rows as a plain-text table with a header, columns padded to their widest cell. */
export function formatTable(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = [headers.map(String), ...rows.map((r) => r.map(cellText))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(cells[0] ?? []), line(widths.map((w) => '-'.repeat(w))), ...cells.slice(1).map(line)].join('\n');
}

/** Prints `value` as JSON when `json` is set, else the table or text that `render` makes. */
export function output<T>(json: boolean | undefined, value: T, render: (v: T) => string): void {
  process.stdout.write(`${json ? JSON.stringify(value, null, 2) : render(value)}\n`);
}

/**
 * A run's failed devices, one line each as the run's result lists them (capped), and when the result lists fewer
 * than failed, how many more and where to see them all.
 */
export function failureLines(summary: Pick<RunSummary, 'window' | 'failed' | 'failures'>): string[] {
  const more = summary.failed - summary.failures.length;
  return [
    ...summary.failures.map((f) => `  ${f.device}: ${f.reason}`),
    ...(more > 0 ? [`  … and ${more} more: fleetscore runs show ${summary.window}`] : []),
  ];
}

/**
 * What became of the run's commit when it was not written: a run that started later had committed the window
 * (`superseded`), or every device failed and the window keeps its earlier predictions (`kept`). Nothing otherwise.
 */
export function commitLines(summary: Pick<RunSummary, 'window' | 'outcome' | 'supersededBy'>): string[] {
  const by = summary.supersededBy ?? 'another run';
  if (summary.outcome === 'superseded') {
    return [`not committed: run ${by}, started later, has committed window ${summary.window}; its predictions stand`];
  }
  if (summary.outcome === 'kept') {
    return [`not committed: every device failed; window ${summary.window} keeps the predictions of run ${by}`];
  }
  return [];
}

/** A cell as text: empty for nothing, JSON for an object, the value's own string otherwise. */
function cellText(c: unknown): string {
  if (c === undefined || c === null) return '';
  if (typeof c === 'string') return c;
  if (typeof c === 'number' || typeof c === 'boolean' || typeof c === 'bigint') return c.toString();
  return JSON.stringify(c) ?? '';
}
