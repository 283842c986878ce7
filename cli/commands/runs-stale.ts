/**
 * `fleetscore runs stale [--from T1 --to T2]`: the committed windows whose input changed since their run read it
 * (parts added, replaced or removed); exits 1 when there are any. `runs rescore --stale` scores them again.
 */
import { Command } from 'commander';
import { z } from 'zod';
import { findStaleWindows, type StaleReport } from '../../lib/scoring/stale-windows';
import { parseWindow } from '../../lib/shared/window';
import { openStore } from '../../lib/store/open-store';
import { formatTable, output } from '../utils/table';
import { storeOption, windowOption } from '../utils/options';
import { parseOptions } from '../utils/parse-options';

/** `--from`/`--to` as a range of window starts, or undefined for every window; shared with `runs rescore`. */
export const rangeSchema = z
  .object({ from: windowOption.optional(), to: windowOption.optional() })
  .refine((o) => (o.from === undefined) === (o.to === undefined), {
    path: ['to'],
    message: 'pass --from and --to together',
  })
  .transform((o) =>
    o.from === undefined || o.to === undefined
      ? undefined
      : { fromMs: parseWindow(o.from).startMs, toMs: parseWindow(o.to).startMs },
  );

const optionsSchema = z.object({ store: storeOption, json: z.boolean().optional() });

/** The stale windows as a table and a line of what to do. */
export function renderStale(r: StaleReport): string {
  const lines =
    r.stale.length === 0
      ? [`no stale windows: the input of ${r.checked} committed window(s) is as their runs read it`]
      : [
          formatTable(
            ['window', 'committed', 'run', 'added', 'replaced', 'removed'],
            r.stale.map((s) => [s.window, s.committedAt, s.runId, s.added.length, s.replaced.length, s.removed.length]),
          ),
          '',
          `${r.stale.length} of ${r.checked} committed window(s) have input that changed after their run read it; ` +
            'score them again with `fleetscore runs rescore --stale` and the same range',
        ];
  if (r.unknown.length > 0) {
    lines.push(`${r.unknown.length} window(s) committed before runs recorded their input cannot be checked`);
  }
  return lines.join('\n');
}

export const staleCommand = new Command('stale')
  .description(
    'committed windows whose input changed (parts added, replaced or removed) since their run read it; exits 1 ' +
      'when there are any',
  )
  .option('--from <window>', 'only windows starting from this one (with --to)')
  .option('--to <window>', 'only windows starting before this one (with --from)')
  .option('--store <uri>', 'store URI')
  .option('--json', 'machine-readable output')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const range = parseOptions(command, rangeSchema, raw);
    const options = parseOptions(command, optionsSchema, raw);
    const report = await findStaleWindows(openStore(options.store), range);
    output(options.json, report, renderStale);
    if (report.stale.length > 0) process.exitCode = 1;
  });
