/**
 * `fleetscore runs gaps --from T1 --to T2 [--schedule ID | --store URI --window-hours N]`: the windows of a
 * schedule (or a store) that should be committed by now and are not (missed, refused, input missing, failed,
 * cancelled, still running), with the reason Temporal knows; exits 1 when there are any. The list to backfill from.
 */
import { Command } from 'commander';
import { z } from 'zod';
import { RUN_DEFAULTS } from '../../lib/shared/run-types';
import { parseWindow, windowAt } from '../../lib/shared/window';
import { durationMs } from '../../lib/shared/duration';
import { openStore } from '../../lib/store/open-store';
import { findGaps, type WindowGap } from '../../lib/temporal/window-gaps';
import { scheduleRun } from '../../schedules/schedule-backfill';
import { formatTable, output } from '../utils/table';
import { positiveInt, storeOption, windowOption } from '../utils/options';
import { parseOptions } from '../utils/parse-options';
import { withClient } from '../utils/with-client';

const optionsSchema = z
  .object({
    from: windowOption,
    to: windowOption,
    schedule: z.string().min(1).optional(),
    store: z.string().min(1).optional(),
    windowHours: positiveInt.optional(),
    json: z.boolean().optional(),
  })
  .refine((o) => parseWindow(o.to).startMs > parseWindow(o.from).startMs, {
    path: ['to'],
    message: 'must be after --from: the range [--from, --to) holds no window',
  })
  .refine((o) => o.schedule === undefined || (o.store === undefined && o.windowHours === undefined), {
    path: ['schedule'],
    message: 'takes the store and window length from the schedule: pass --schedule, or --store and --window-hours',
  });

/** What `runs gaps` found. */
export interface GapsReport {
  store: string;
  schedule?: string;
  windowHours: number;
  from: string;
  to: string;
  gaps: WindowGap[];
}

/**
 * The report as text: a table of the gaps, then how many and, with a schedule, the backfill that rescores those not
 * running (a running window commits when its run ends; a backfill over it would only follow that run).
 */
export function renderGaps(r: GapsReport): string {
  const what = `${r.schedule ? `schedule ${r.schedule}` : r.store} in [${r.from}, ${r.to})`;
  if (r.gaps.length === 0) return `no gaps: every due ${r.windowHours}h window of ${what} is committed`;
  const stopped = r.gaps.filter((g) => g.reason !== 'running');
  const running = r.gaps.length - stopped.length;
  let summary = `${r.gaps.length} window(s) of ${what} not committed`;
  if (running > 0)
    summary += ` (${running} still running: committed when ${running === 1 ? 'its run ends' : 'their runs end'})`;
  if (r.schedule && stopped.length > 0) {
    const first = stopped[0]!.window;
    const end = windowAt(parseWindow(stopped.at(-1)!.window).endMs, 1).id;
    const backfill = `fleetscore backfill --schedule ${r.schedule} --from ${first} --to ${end}`;
    summary += `; rescore ${running > 0 ? 'the others' : 'them'} with: ${backfill}`;
  }
  return [
    formatTable(
      ['window', 'reason', 'workflow id', 'detail'],
      r.gaps.map((g) => [g.window, g.reason, g.workflowId, g.detail]),
    ),
    '',
    summary,
  ].join('\n');
}

export const gapsCommand = new Command('gaps')
  .description(
    'windows of a schedule (or store) that are due and not committed, with why (missed, refused, input missing, ' +
      'failed, cancelled, running); exits 1 when there are any',
  )
  .requiredOption('--from <window>', 'first window, e.g. 2026-11-21T00')
  .requiredOption('--to <window>', 'end of the range, exclusive')
  .option('--schedule <id>', "the schedule's store, window length and settle time")
  .option('--store <uri>', 'store URI, without --schedule (default FLEETSCORE_STORE)')
  .option('--window-hours <n>', 'window length, without --schedule (default 1)')
  .option('--json', 'machine-readable output')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const options = parseOptions(command, optionsSchema, raw);
    await withClient(async (client) => {
      let store = storeOption.parse(options.store);
      let windowHours = options.windowHours ?? RUN_DEFAULTS.windowHours;
      let settleMs = durationMs(RUN_DEFAULTS.settle) ?? 0;
      if (options.schedule) {
        const run = scheduleRun(await client.schedule.getHandle(options.schedule).describe());
        ({ store } = run.input);
        windowHours = run.timing.windowHours;
        settleMs = run.settleMs;
      }
      const gaps = await findGaps(client, openStore(store), {
        fromMs: parseWindow(options.from).startMs,
        toMs: parseWindow(options.to).startMs,
        windowHours,
        settleMs,
        nowMs: Date.now(),
      });
      const report: GapsReport = {
        store,
        ...(options.schedule ? { schedule: options.schedule } : {}),
        windowHours,
        from: options.from,
        to: options.to,
        gaps,
      };
      output(options.json, report, renderGaps);
      if (gaps.length > 0) process.exitCode = 1;
    });
  });
