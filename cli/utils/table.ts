/** Formats rows as a plain-text table with a header, columns padded to their widest cell. */
export function formatTable(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = [
    headers.map(String),
    ...rows.map((r) => r.map((c) => (c === undefined || c === null ? '' : String(c)))),
  ];
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
