/**
 * `fleetscore backfill [--schedule ID] --from T1 --to T2`: scores the windows in `[T1, T2)` with the schedule's run
 * settings (the one fleetscore schedule on the server when not named), each as its own run (see
 * schedules/schedule-backfill.ts for why not through the schedule), then waits for them and prints one row per
 * window.
 */
import { Command } from 'commander';
import { z } from 'zod';
import { parseWindow } from '../../lib/shared/window';
import { runBackfill, soleSchedule, type BackfillResult } from '../../schedules/schedule-backfill';
import { createProgressBar, type ProgressBar } from '../utils/progress-bar';
import { formatTable, output } from '../utils/table';
import { messageOf } from '../../lib/shared/errors';
import { durationOption, positiveInt } from '../utils/options';
import { parseOptions } from '../utils/parse-options';
import { withClient } from '../utils/with-client';

/** A window time: `2026-11-21T12` or any ISO time on a whole UTC hour, as epoch milliseconds. */
const windowTime = z.string().transform((value, ctx) => {
  try {
    return parseWindow(value).startMs;
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: messageOf(err) });
    return z.NEVER;
  }
});

const optionsSchema = z
  .object({
    schedule: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a schedule id such as fleetscore-hourly')
      .optional(),
    from: windowTime,
    to: windowTime,
    parallel: positiveInt,
    inputWait: durationOption().optional(),
    wait: z.boolean(),
    json: z.boolean().default(false),
  })
  .refine((o) => o.to > o.from, {
    path: ['to'],
    message: 'must be after --from: the range [--from, --to) holds no window',
  });

function renderResult(r: BackfillResult): string {
  const table = formatTable(
    ['WINDOW', 'STATUS', 'SCORED', 'FAILED', 'WORKFLOW ID', 'WHY'],
    r.runs.map((x) => [x.window, x.status, x.summary?.scored, x.summary?.failed, x.workflowId, x.failure]),
  );
  if (r.waited) return table;
  return `${table}\nstarted ${r.runs.length} run(s) of ${r.schedule}; follow one with \`fleetscore runs watch --window W\``;
}

/** `fleetscore backfill`: score past windows with a schedule's settings, and wait for them. */
export const backfillCommand = new Command('backfill')
  .description(
    "score the windows in [--from, --to) with a schedule's run settings, each as its own run that never takes " +
      "or blocks one of the schedule's own actions, and wait for them",
  )
  .option('--schedule <id>', 'schedule id, e.g. fleetscore-hourly (default: the one fleetscore schedule on the server)')
  .requiredOption('--from <window>', 'first window, e.g. 2026-11-21T12 (or an ISO time on a whole hour)')
  .requiredOption('--to <window>', 'end of the range, exclusive: the window after the last one scored')
  .option('--parallel <n>', 'windows scored at once', '1')
  .option(
    '--input-wait <duration>',
    "how long each run waits for its window's input (0: look once; default: until the schedule's own run of the " +
      'window would have stopped waiting, its end + settle + inputWait, so past windows look once)',
  )
  .option('--no-wait', 'return once every run has started (all at once)')
  .option('--json', 'print the runs as JSON')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const options = parseOptions(command, optionsSchema, raw);
    let bar: ProgressBar | undefined;
    let result: BackfillResult;
    try {
      result = await withClient(async (client) => {
        const schedule = options.schedule ?? (await soleSchedule(client));
        return runBackfill(client, { ...options, schedule }, (done, total) => {
          bar ??= createProgressBar(`backfill ${schedule}`, total);
          bar.update(done, `${done} of ${total} closed`);
        });
      });
    } finally {
      bar?.stop();
    }
    output(options.json, result, renderResult);
    const bad = result.runs.filter((r) => r.status !== 'completed' && r.status !== 'started');
    const failedDevices = result.runs.reduce((n, r) => n + (r.summary?.failed ?? 0), 0);
    if (bad.length > 0) {
      throw new Error(
        `${bad.length} of ${result.runs.length} window(s) were not scored: ${bad.map((r) => `${r.window} ${r.status}`).join(', ')}`,
      );
    }
    if (failedDevices > 0) process.exitCode = 1;
  });
