/**
 * `fleetscore runs rescore --stale [--from T1 --to T2]`: scores again, through the same durable workflow, every
 * committed window whose input changed since its run read it, with the settings of the run whose commit stands
 * (else its schedule's, else the defaults). Each new run starts after that commit, so the commit fence lets it
 * replace the window; its manifest names the run it superseded.
 */
import { ScheduleNotFoundError, WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { Command } from 'commander';
import { z } from 'zod';
import { forEachLimited } from '../../lib/shared/concurrency';
import { messageOf } from '../../lib/shared/errors';
import type { RunSummary, ScoringRunInput } from '../../lib/shared/run-types';
import { findStaleWindows, type StaleWindow } from '../../lib/scoring/stale-windows';
import { openStore } from '../../lib/store/open-store';
import { runStartedWith, startRun } from '../../lib/temporal/runs';
import { scheduleRun } from '../../schedules/schedule-backfill';
import { formatTable, output } from '../utils/table';
import { positiveInt, storeOption } from '../utils/options';
import { parseOptions } from '../utils/parse-options';
import { withClient } from '../utils/with-client';
import { rangeSchema } from './runs-stale';

const optionsSchema = z.object({
  stale: z.boolean().refine((v) => v, 'is required: rescore scores again the windows `runs stale` lists'),
  store: storeOption,
  parallel: positiveInt,
  json: z.boolean().optional(),
});

/** Where a rescore's run settings came from. */
export type RescoreSettings = 'run' | 'schedule' | 'defaults';

/** One window scored again. */
export interface Rescored {
  window: string;
  supersedes: string;
  workflowId: string;
  settings: RescoreSettings;
  status: 'completed' | 'failed';
  summary?: RunSummary;
  failure?: string;
}

/** A run's input and task queue, and where they came from. */
interface RescoreRun {
  input: ScoringRunInput;
  taskQueue?: string;
  settings: RescoreSettings;
}

/**
 * The settings a stale window is scored again with: those of the run whose commit stands (its input, read from its
 * workflow history while the server keeps it), else its schedule's when that still exists, else the defaults.
 */
async function rescoreRun(client: Client, store: string, stale: StaleWindow): Promise<RescoreRun> {
  try {
    const started = await runStartedWith(client.workflow.getHandle(stale.workflowId, stale.runId));
    if (started) {
      // Not its late-data horizon: a rescore scores its own window, nothing before it.
      const { rescoreLateWithin: _late, ...input } = started.input;
      return { input, taskQueue: started.taskQueue, settings: 'run' };
    }
  } catch (err) {
    // The server no longer keeps that run's history (retention): its schedule, or the defaults, tell the settings.
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  if (stale.scheduleId) {
    try {
      const run = scheduleRun(await client.schedule.getHandle(stale.scheduleId).describe());
      const { rescoreLateWithin: _late, ...input } = run.input;
      return { input: { ...input, scheduleId: stale.scheduleId }, taskQueue: run.taskQueue, settings: 'schedule' };
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
  }
  return { input: { store }, settings: 'defaults' };
}

export const rescoreCommand = new Command('rescore')
  .description(
    'score again the committed windows whose input changed since their run read it (see `runs stale`); each new ' +
      'commit replaces its window and names the run it superseded',
  )
  .option('--stale', 'the windows `runs stale` lists (required)')
  .option('--from <window>', 'only windows starting from this one (with --to)')
  .option('--to <window>', 'only windows starting before this one (with --from)')
  .option('--store <uri>', 'store URI')
  .option('--parallel <n>', 'windows scored at once', '1')
  .option('--json', 'machine-readable output')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const range = parseOptions(command, rangeSchema, raw);
    const options = parseOptions(command, optionsSchema, { ...raw, stale: raw.stale ?? false });
    const { stale } = await findStaleWindows(openStore(options.store), range);
    const done: Rescored[] = [];
    await withClient(async (client) => {
      await forEachLimited(stale, options.parallel, async (s, i) => {
        const run = await rescoreRun(client, options.store, s);
        // The window was committed, so it is complete (no settle wait) and its input is there (no input wait).
        const input = { ...run.input, store: options.store, window: s.window, settle: 0, inputWait: 0 };
        const handle = await startRun(client, input, run.taskQueue);
        const row: Rescored = {
          window: s.window,
          supersedes: s.runId,
          workflowId: handle.workflowId,
          settings: run.settings,
          status: 'failed',
        };
        done[i] = row;
        try {
          row.summary = await handle.result();
          row.status = 'completed';
        } catch (err) {
          if (!(err instanceof WorkflowFailedError)) throw err;
          row.failure = messageOf(err.cause ?? err);
        }
      });
    });
    output(options.json, done, (rows) =>
      rows.length === 0
        ? 'no stale windows to score again'
        : formatTable(
            ['window', 'status', 'scored', 'failed', 'supersedes run', 'settings of', 'workflow id', 'why'],
            rows.map((r) => [
              r.window,
              r.status,
              r.summary?.scored,
              r.summary?.failed,
              r.supersedes,
              r.settings,
              r.workflowId,
              r.failure,
            ]),
          ),
    );
    if (done.some((r) => r.status !== 'completed' || (r.summary?.failed ?? 0) > 0)) process.exitCode = 1;
  });
