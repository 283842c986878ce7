/**
 * `fleetscore runs start WINDOW`: scores one window now, outside the schedule (the same workflow, with an explicit
 * window), after checking that the window is complete; exits 1 when any device failed.
 */
import { Command } from 'commander';
import { z } from 'zod';
import { webUiBase } from '../../lib/config';
import { AGGREGATES_LAYOUTS, PREDICTIONS_FORMATS } from '../../lib/shared/names';
import { RUN_DEFAULTS } from '../../lib/shared/run-types';
import { assertComplete, parseWindow } from '../../lib/shared/window';
import { runUiUrl, startRun } from '../../lib/temporal/runs';
import { parseOptions } from '../utils/parse-options';
import { commitLines, failureLines, output } from '../utils/table';
import { durationOption, positiveInt, storeOption, windowInput, windowOption } from '../utils/options';
import { withClient } from '../utils/with-client';

/** `fleetscore runs start`. */
export const runsStartCommand = new Command('start')
  .description('score one window now, outside the schedule (the same workflow, with an explicit window)')
  .argument('[window]', 'window, e.g. 2026-11-21T12, or 2026-11-21T00_24h for a 24-hour window')
  .option('--window <window>', 'the same as WINDOW (an alias)')
  .option('--store <uri>', 'store URI')
  .option('--schedule <id>', 'record the run under this schedule id')
  .option('--settle <duration>', "how long after the window's end it may be scored", RUN_DEFAULTS.settle)
  .option('--input-wait <duration>', "how long to wait for the window's input (0: look once)", RUN_DEFAULTS.inputWait)
  .option('--input-marker', "wait for the producer's _SUCCESS marker in every hourly input folder")
  .option('--shard-size <n>', 'the most devices per shard (a small fleet is cut finer)', String(RUN_DEFAULTS.shardSize))
  .option(
    '--aggregates-layout <layout>',
    `where each device's rows are: ${AGGREGATES_LAYOUTS.join(' | ')} (device-partitioned: one part per device, ` +
      'so an unreadable part fails only its devices)',
    'any',
  )
  .option(
    '--predictions-format <format>',
    `prediction files: ${PREDICTIONS_FORMATS.join(' | ')} (parquet: for DuckDB, Spark, Athena; default arrow)`,
  )
  .option('--no-wait', 'return once the run has started')
  .option('--json', 'machine-readable output')
  .action(async (argument: string | undefined, raw: Record<string, unknown>, command: Command) => {
    const { window, label } = windowInput('fleetscore runs start', argument, raw.window);
    const options = parseOptions(
      command,
      z.object({
        window: windowOption,
        store: storeOption,
        schedule: z.string().optional(),
        settle: durationOption(),
        inputWait: durationOption(),
        inputMarker: z.boolean().optional(),
        shardSize: positiveInt,
        aggregatesLayout: z.enum(AGGREGATES_LAYOUTS),
        predictionsFormat: z.enum(PREDICTIONS_FORMATS).optional(),
        wait: z.boolean(),
        json: z.boolean().optional(),
      }),
      { ...raw, window },
      { window: label },
    );
    // Refused here too, before anything starts; the workflow refuses it again by its own clock.
    assertComplete(parseWindow(options.window), options.settle, Date.now());
    await withClient(async (client, target) => {
      const handle = await startRun(client, {
        store: options.store,
        window: options.window,
        scheduleId: options.schedule,
        settle: options.settle,
        inputWait: options.inputWait,
        ...(options.inputMarker ? { inputMarker: true } : {}),
        shardSize: options.shardSize,
        aggregatesLayout: options.aggregatesLayout,
        ...(options.predictionsFormat ? { predictionsFormat: options.predictionsFormat } : {}),
      });
      const url = runUiUrl(webUiBase(), target.namespace, handle.workflowId, handle.firstExecutionRunId);
      if (!options.wait) {
        output(
          options.json,
          { workflowId: handle.workflowId, runId: handle.firstExecutionRunId, url },
          (r) => `started ${r.workflowId}\n${r.url}`,
        );
        return;
      }
      const summary = await handle.result();
      output(options.json, { workflowId: handle.workflowId, url, ...summary }, (r) =>
        [
          `window ${r.window}: ${r.scored} scored, ${r.noData} no data, ${r.failed} failed, ${r.anomalies} anomalies`,
          ...commitLines(r),
          ...failureLines(r),
          r.url,
        ].join('\n'),
      );
      // Like `runs watch`: a run that failed any device is not a success to a script.
      if (summary.failed > 0) process.exitCode = 1;
    });
  });
