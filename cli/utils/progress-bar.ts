/**
 * Progress of long CLI work on stderr, so stdout stays clean for tables and `--json`: a redrawn bar on a
 * terminal, one plain line per change otherwise (CI logs, pipes).
 */

/** Where a progress bar writes; process.stderr by default. */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

/** A progress bar for `total` items. */
export interface ProgressBar {
  /** Shows `done` of total, with a short status such as "2 running, 1 failed". */
  update(done: number, status?: string): void;
  /** Ends the bar's line. */
  stop(): void;
}

/** Starts a progress bar labelled `label` for `total` items. */
export function createProgressBar(label: string, total: number, stream: ProgressStream = process.stderr): ProgressBar {
  let last = '';
  let drawn = false;
  return {
    update(done, status = '') {
      const line = render(label, done, total, status, stream.isTTY ? (stream.columns ?? 80) : undefined);
      if (line === last) return;
      last = line;
      if (stream.isTTY) {
        stream.write(`\r\x1b[2K${line}`);
        drawn = true;
      } else {
        stream.write(`${line}\n`);
      }
    },
    stop() {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}

/** One line: `label [#####-----] 3/10 status`, the bar fitted to `columns` when on a terminal. */
function render(label: string, done: number, total: number, status: string, columns: number | undefined): string {
  const count = `${done}/${total}`;
  const tail = status ? ` ${status}` : '';
  if (columns === undefined) return `${label} ${count}${tail}`;
  // A fixed width (room kept for a status of ~30 characters) so the bar does not jump as the status changes.
  const width = Math.max(10, Math.min(40, columns - label.length - count.length - 35));
  const filled = total > 0 ? Math.round((Math.min(done, total) / total) * width) : width;
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${count}${tail}`.slice(
    0,
    Math.max(columns - 1, 20),
  );
}
